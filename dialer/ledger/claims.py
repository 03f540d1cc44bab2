"""The claims journal: a line per call about to leave, kept outside SQLite (SPEC 6.3).

    journal = ClaimsJournal.open(claims_path(ledger_path))   # by the run holding the lock
    journal.append([Claim(run_id, "+917359043943", 12)], at)  # one write(2) per batch
    read_claims(claims_path(ledger_path))                     # at start: what may be lost

A run's claims live in the ledger's WAL until it is checkpointed; an operator who copies or
tidies only `x.sqlite` after a kill -9 loses them, and with them the calls in flight at the
kill, which no report shows (the report gets a row only when the answer comes). Each batch of
claims is appended here after its SQLite commit and before any of its requests leaves, so a
number in the journal that the ledger holds neither as a call nor as a claim proves the ledger
lost data, and a number whose request left is always here.

Written after the commit, not before: a kill between the two leaves a claim in the ledger only
(its request never left), never a journal line the ledger never had, so the loss check cannot
fire on a plain kill -9. No fsync: this protects against a killed process plus a lost -wal
file, not against a power cut (the page cache holds the line once write(2) returns). The
journal is emptied only when a run has ended and its WAL checkpoint fully succeeded: from then
on the main file alone holds every claim.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from dialer.core.files import regular_fd
from dialer.core.statuses import LedgerError

# What to do about a journal that is not a file: no run reads or writes through a pipe.
NOT_A_FILE = "the claims journal must be a file: move it out of the way (nothing was sent)"


@dataclass(frozen=True, slots=True)
class Claim:
    run_id: int
    called_to: str
    row: int | None
    at: str = ""  # when it was committed (a stamp); "" in lines written before it was kept


def claims_path(ledger: Path) -> Path:
    """`state/x.sqlite` -> `state/x.claims`."""
    return ledger.with_name(ledger.name.removesuffix(".sqlite") + ".claims")


def read_claims(path: Path) -> list[Claim]:
    """Every whole line of the journal; a line cut short (a disk that filled mid-write) is
    skipped: its batch's requests never left, as the write failed before they could."""
    try:
        fd = regular_fd(path, os.O_RDONLY, LedgerError, NOT_A_FILE)
    except FileNotFoundError:
        return []
    with os.fdopen(fd, "rb") as f:
        data = f.read()
    found = []
    for line in data.decode("utf-8", "replace").split("\n")[:-1]:
        parts = line.split("\t")
        if len(parts) not in (3, 4) or not parts[0].isdigit() or not parts[1].startswith("+"):
            continue
        row = int(parts[2]) if parts[2].isdigit() else None
        found.append(Claim(int(parts[0]), parts[1], row, parts[3] if len(parts) == 4 else ""))
    return found


class ClaimsJournal:
    """The run's open journal, appended to in batches."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd
        size = os.fstat(fd).st_size
        # A line cut short by an earlier run's full disk: the next line starts on its own.
        self._lead = b""
        if size:
            os.lseek(fd, size - 1, os.SEEK_SET)
            self._lead = b"" if os.read(fd, 1) == b"\n" else b"\n"

    @classmethod
    def open(cls, path: Path) -> ClaimsJournal:
        """Raises OSError when the journal cannot be opened for appending, LedgerError when
        something else than a file (a pipe, a folder) has its name."""
        fd = regular_fd(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, LedgerError, NOT_A_FILE)
        try:
            return cls(path, fd)
        except BaseException:
            os.close(fd)
            raise

    def append(self, claims: Iterable[Claim], at: str) -> None:
        """One write(2) for the batch committed at `at`; raises OSError (disk full) so no
        request leaves."""
        data = self._lead + b"".join(
            f"{c.run_id}\t{c.called_to}\t{'' if c.row is None else c.row}\t{at}\n".encode()
            for c in claims
        )
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError:
            self._lead = b"\n"  # part of a line may be on disk: the next batch starts afresh
            raise
        self._lead = b""

    def empty(self) -> None:
        """Every claim is in the ledger's main file now (checkpointed): forget them."""
        os.ftruncate(self._fd, 0)
        self._lead = b""

    def close(self) -> None:
        os.close(self._fd)
