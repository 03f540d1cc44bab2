"""The SQLite habits every store of `state/` shares, and the ledger's file-level ones.

    with transaction(conn): ...                    # one write transaction, taken at once
    append_only("audit", "audit_append_only_", "the audit trail")   # its two triggers
    sqlite3.connect(readonly_uri(path), uri=True)  # a read that never writes
    lock_fd = take_lock(path, campaign)            # the run lock: one run per campaign
    lock_held(path)                                # the one probe of it

Also the errors a ledger's file gives: the environment (space, permissions, locks: never
"corrupt"), a damaged file (`CorruptLedger`, with the way out), each on one line.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from dialer.core.statuses import LedgerError

# SQLite's primary result codes that mean the environment (space, permissions, locks), not
# a damaged file: the message names the cause and never suggests starting afresh.
_ENVIRONMENT_CODES = frozenset(
    {
        sqlite3.SQLITE_PERM,
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
    }
)


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction, taken at once (IMMEDIATE): committed whole, or rolled back."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def append_only(table: str, trigger: str, what: str) -> tuple[str, str]:
    """The two triggers that make `table` refuse UPDATE and DELETE (`<trigger>update`,
    `<trigger>delete`): whatever code asks, no line of it is changed or removed."""
    update, delete = (
        f"CREATE TRIGGER IF NOT EXISTS {trigger}{verb.lower()} BEFORE {verb} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{what} is append-only'); END"
        for verb in ("UPDATE", "DELETE")
    )
    return update, delete


def readonly_uri(path: Path) -> str:
    """Read without writing. In a folder nobody can write (a read-only mount), SQLite cannot
    create the -shm a WAL reader needs; with no WAL content left the main file is the whole
    ledger and is read as immutable (no locks: nobody can be writing it there)."""
    uri = f"{path.absolute().as_uri()}?mode=ro"
    wal = path.with_name(path.name + "-wal")
    if not os.access(path.parent, os.W_OK) and (not wal.exists() or wal.stat().st_size == 0):
        uri += "&immutable=1"
    return uri


def rebuild_advice(campaign_file: Path | str) -> str:
    """The documented way out of a lost or corrupt ledger (SPEC 6.3)."""
    return f"rebuild it from the campaign's reports: dialer ledger rebuild {campaign_file}"


def is_environment(exc: sqlite3.Error) -> bool:
    """True when SQLite failed because of space, permissions or locks, not a damaged file."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and (code & 0xFF) in _ENVIRONMENT_CODES


def cannot_write(path: Path, exc: sqlite3.Error | OSError) -> LedgerError:
    cause = exc.strerror if isinstance(exc, OSError) else str(exc)
    failed = getattr(exc, "filename", None)
    if failed and Path(failed) != path:
        cause = f"{cause} ({Path(failed).name})"
    return LedgerError(f"{path}: cannot open the ledger for writing: {cause}")


class CorruptLedger(LedgerError):
    """The file is damaged (not the environment): `dialer ledger rebuild` replaces it."""


# SQLite's integrity reports span lines ("*** in database main ***\nPage 3: ..."): the
# error is one line, so the cause is folded and cut to this many characters.
_CAUSE_CHARS = 160


def one_line(text: object, limit: int = _CAUSE_CHARS) -> str:
    folded = " ".join(str(text).split())
    return folded if len(folded) <= limit else folded[: limit - 3] + "..."


def corrupt(path: Path, cause: object, campaign_file: Path | str) -> CorruptLedger:
    return CorruptLedger(
        f"{path}: the ledger is unreadable or corrupt ({one_line(cause)}); it is never repaired "
        f"automatically; {rebuild_advice(campaign_file)} (it keeps this file aside)"
    )


def write_error(path: Path, exc: sqlite3.Error) -> LedgerError:
    """A write to an open ledger failed: the run stops with this, naming the cause."""
    return LedgerError(f"{path}: cannot write the ledger: {exc}")


def _lock_path(ledger: Path) -> str:
    return f"{ledger}.lock"


def take_lock(path: Path, campaign: str) -> int:
    """The run lock beside the ledger: a second run (or a rebuild) of a campaign is refused."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(_lock_path(path), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise cannot_write(path, exc) from None
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock_fd)
        raise LedgerError(
            f"{path}: another run of campaign '{campaign}' is going; refusing to start a second"
        ) from None
    return lock_fd


def lock_held(path: Path) -> bool:
    """Whether another process (a cron run, a second server) holds the run lock of the ledger
    at `path` now. Probed without creating the lock file and let go at once."""
    try:
        fd = os.open(_lock_path(path), os.O_RDWR)
    except OSError:
        return False  # no lock file: no run ever took it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing lets our probe's lock go too
    return False
