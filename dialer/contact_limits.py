"""Calls to one person across every campaign of a `state/` folder (SPEC 10, `[limits]`).

    >>> book = ContactBook.open(state_folder, now, create=campaign.limits is not None)
    >>> book.recent("+917359043943", now)                        # Recent(day=1, week=2)
    >>> book.reserve(["+917359043943"], "spring", "run-key", now, limits)   # {number: reason}

`state/contacts.sqlite` holds one line per call any campaign of the folder is about to place.
A campaign with `[limits]` checks and records its claims in one `BEGIN IMMEDIATE` transaction
(`reserve`), so two campaigns running at once in two processes cannot both pass a limit:
SQLite serialises the two transactions and the second sees the first one's line.

The file is created by the first campaign that has `[limits]`, and then filled from every
ledger in the folder (its calls of the last 7 days, its claims in flight, its `unknown`
people): campaigns in a folder that never uses limits pay nothing. A dry run before the file
exists fills the same counts in memory, so it shows what the run will do. Once it exists,
every campaign's claims are recorded in it, limits or not. A line is removed again only
when the call was certainly not placed (`release`); a process killed between this commit and
the ledger's keeps a line for a call never made, which can only hold a person back, never
call them more.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path

from dialer.campaign import RESERVED_NAME, Limits
from dialer.clock import stamp
from dialer.gate import NONE_RECENT, Recent, over_limit
from dialer.ledger import readonly_uri, transaction
from dialer.statuses import LedgerError

BOOK_NAME = f"{RESERVED_NAME}.sqlite"  # never a campaign's ledger: that name is refused
DAY = timedelta(days=1)
WEEK = timedelta(days=7)
# Lines older than the longest limit's window are never read again.
_KEEP_FOR = WEEK + DAY
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS contact_calls (
    id INTEGER PRIMARY KEY,
    called_to TEXT NOT NULL,
    campaign TEXT NOT NULL,
    run TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS contact_calls_by_number ON contact_calls (called_to, at);
"""
_RECENT = (
    "SELECT COUNT(*) FILTER (WHERE at >= ?2), COUNT(*) FROM contact_calls "
    "WHERE called_to = ?1 AND at >= ?3"
)


def book_path(state: Path) -> Path:
    return state / BOOK_NAME


class ContactBook:
    """The shared count of calls per person; one connection per run or dry run."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn

    @classmethod
    def open(
        cls, state: Path, now: datetime, *, create: bool, readonly: bool = False
    ) -> ContactBook | None:
        """The folder's book; None when there is none and `create` is False (or read-only)."""
        path = book_path(state)
        if not path.exists():
            if readonly:
                return cls._in_memory(state, now, path)
            if not create:
                return None
        try:
            if readonly:
                conn = sqlite3.connect(readonly_uri(path), uri=True, isolation_level=None)
                conn.execute("PRAGMA busy_timeout = 5000")
                return cls(path, conn)
            state.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 10000")
            conn.execute("PRAGMA journal_mode = WAL")
            # FULL: a line committed before a request leaves survives a power cut.
            conn.execute("PRAGMA synchronous = FULL")
            with transaction(conn):
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    conn.execute(statement)
        except sqlite3.Error as exc:
            raise LedgerError(f"{path}: cannot open the shared contact counts: {exc}") from None
        book = cls(path, conn)
        book._fill_from_ledgers(state, now)
        book.prune(now)
        return book

    @classmethod
    def _in_memory(cls, state: Path, now: datetime, path: Path) -> ContactBook:
        """What the file would hold if a run created it now: for a dry run, which writes nothing."""
        conn = sqlite3.connect(":memory:", isolation_level=None)
        for statement in filter(str.strip, _SCHEMA.split(";")):
            conn.execute(statement)
        book = cls(path, conn)
        book._fill_from_ledgers(state, now)
        return book

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ContactBook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fill_from_ledgers(self, state: Path, now: datetime) -> None:
        """Once, when the book is new: the last 7 days of calls from every ledger here."""
        conn = self._conn
        try:
            with transaction(conn):
                done = conn.execute("SELECT 1 FROM meta WHERE key = 'filled_from_ledgers'")
                if done.fetchone() is not None:
                    return
                since = stamp(now - WEEK)
                for ledger in sorted(state.glob("*.sqlite")):
                    if ledger.name == BOOK_NAME:
                        continue
                    conn.executemany(
                        "INSERT INTO contact_calls (called_to, campaign, run, at) VALUES (?,?,?,?)",
                        _ledger_dials(ledger, since),
                    )
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('filled_from_ledgers', ?)",
                    (stamp(now),),
                )
        except sqlite3.Error as exc:
            raise LedgerError(
                f"{self.path}: cannot fill the shared contact counts: {exc}"
            ) from None

    def recent(self, called_to: str, now: datetime) -> Recent:
        try:
            found = self._conn.execute(
                _RECENT, (called_to, stamp(now - DAY), stamp(now - WEEK))
            ).fetchone()
        except sqlite3.Error as exc:
            raise LedgerError(
                f"{self.path}: cannot read the shared contact counts: {exc}"
            ) from None
        return Recent(found[0], found[1]) if found and found[1] else NONE_RECENT

    def reserve(
        self,
        numbers: list[str],
        campaign: str,
        run: str,
        now: datetime,
        limits: Limits | None,
    ) -> dict[str, str]:
        """Record these calls about to leave, except those over `limits`: {number: why}.
        Checked and recorded in one write transaction, so no other process interleaves."""
        refused: dict[str, str] = {}
        at, day, week = stamp(now), stamp(now - DAY), stamp(now - WEEK)
        conn = self._conn
        try:
            with transaction(conn):
                if limits is not None:
                    for number in numbers:
                        found = conn.execute(_RECENT, (number, day, week)).fetchone()
                        why = over_limit(Recent(found[0], found[1]), limits)
                        if why is not None:
                            refused[number] = why
                conn.executemany(
                    "INSERT INTO contact_calls (called_to, campaign, run, at) VALUES (?, ?, ?, ?)",
                    [(n, campaign, run, at) for n in numbers if n not in refused],
                )
        except sqlite3.Error as exc:
            raise LedgerError(
                f"{self.path}: cannot write the shared contact counts: {exc}"
            ) from None
        return refused

    def release(self, numbers: Iterable[str], campaign: str, run: str) -> None:
        """Calls certainly not placed (a 402, retries used up, a stop before sending)."""
        try:
            with transaction(self._conn):
                self._conn.executemany(
                    "DELETE FROM contact_calls WHERE id = (SELECT MAX(id) FROM contact_calls "
                    "WHERE called_to = ? AND campaign = ? AND run = ?)",
                    [(n, campaign, run) for n in numbers],
                )
        except sqlite3.Error as exc:
            raise LedgerError(
                f"{self.path}: cannot write the shared contact counts: {exc}"
            ) from None

    def prune(self, now: datetime) -> None:
        """Forget lines no limit can count any more (best effort)."""
        with contextlib.suppress(sqlite3.Error), transaction(self._conn):
            self._conn.execute("DELETE FROM contact_calls WHERE at < ?", (stamp(now - _KEEP_FOR),))


def _ledger_dials(ledger: Path, since: str) -> list[tuple[str, str, str, str]]:
    """A ledger's calls since `since`, read without writing: its dials, its claims in flight
    (a run going now), and people recorded `unknown` (maybe called); a ledger from before
    `dials` gives its `triggered` people at their last record's time. None if unreadable:
    a file here that is no ledger cannot hold anyone's calls."""
    try:
        conn = sqlite3.connect(readonly_uri(ledger), uri=True)
    except sqlite3.Error:
        return []
    try:
        campaign = conn.execute("SELECT value FROM meta WHERE key = 'campaign'").fetchone()
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        called = "('unknown')" if "dials" in tables else "('unknown', 'triggered')"
        rows = conn.execute(
            "SELECT called_to, updated_at FROM calls WHERE updated_at >= ? AND status IN " + called,
            (since,),
        ).fetchall()
        rows += conn.execute("SELECT called_to, started_at FROM sending").fetchall()
        if "dials" in tables:
            rows += conn.execute(
                "SELECT called_to, placed_at FROM dials WHERE placed_at >= ?", (since,)
            ).fetchall()
    except sqlite3.Error:
        return []
    finally:
        conn.close()
    name = campaign[0] if campaign else ledger.stem
    return [(number, name, "ledger", at) for number, at in rows]
