"""`state/team.sqlite`: the one file the people (`team.people`) and the audit trail
(`team.audit`) live in, opened here for both.

    conn = connect_team(state)          # for writing: made (WAL, synchronous FULL) when missing
    conn = read_team(state)             # for reading: None when there is no file yet
    with writing_team(state, "the people", SCHEMA) as conn: ...   # one transaction
    with reading_team(state, "the people", "people") as conn: ... # None: nothing yet

The pragmas are the shared contact file's (`ledger.shared_file.connect_shared`): a line
committed here (a person removed, an audit entry) must survive a power cut too.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from dialer.core.statuses import DialerError
from dialer.ledger.shared_file import TEAM_FILE_NAME, connect_shared, read_shared
from dialer.ledger.sqlite import transaction


class TeamFileError(DialerError):
    """`state/team.sqlite` cannot be opened, read or written (a disk, a lock, a bad file)."""


def team_path(state: Path) -> Path:
    return state / TEAM_FILE_NAME


def connect_team(state: Path, what: str) -> sqlite3.Connection:
    """The team file for writing, made with its folder when missing. `what` names the part
    (the audit trail, the people) in the TeamFileError raised when it cannot be opened."""
    try:
        return connect_shared(state, TEAM_FILE_NAME)
    except (OSError, sqlite3.Error) as exc:
        raise TeamFileError(f"{team_path(state)}: cannot open {what}: {exc}") from None


def read_team(state: Path, what: str) -> sqlite3.Connection | None:
    """The team file for reading only, or None when it does not exist: reading never makes
    it (a folder nobody added people to stays as it was)."""
    path = team_path(state)
    if not path.exists():
        return None
    try:
        conn = read_shared(path)
    except sqlite3.Error as exc:
        raise TeamFileError(f"{path}: cannot read {what}: {exc}") from None
    return conn


@contextlib.contextmanager
def writing_team(state: Path, what: str, schema: Sequence[str]) -> Iterator[sqlite3.Connection]:
    """One write transaction on the team file, its part's tables (`schema`) made first; any
    SQLite error is a TeamFileError naming `what`."""
    conn = connect_team(state, what)
    try:
        with transaction(conn):
            for statement in schema:
                conn.execute(statement)
            yield conn
    except sqlite3.Error as exc:
        raise TeamFileError(f"{team_path(state)}: cannot write {what}: {exc}") from None
    finally:
        conn.close()


@contextlib.contextmanager
def reading_team(state: Path, what: str, table: str) -> Iterator[sqlite3.Connection | None]:
    """A read-only connection to the team file, None when there is no file or no `table`
    in it yet; any SQLite error is a TeamFileError naming `what`."""
    conn = read_team(state, what)
    if conn is None:
        yield None
        return
    try:
        yield conn if has_table(conn, table) else None
    except sqlite3.Error as exc:
        raise TeamFileError(f"{team_path(state)}: cannot read {what}: {exc}") from None
    finally:
        conn.close()


def has_table(conn: sqlite3.Connection, table: str) -> bool:
    found = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).fetchone()
    return found is not None


def team_stamp(when: datetime, timespec: str = "seconds") -> str:
    """A time as the team file writes it: UTC, to the second (or `timespec`), `Z`-suffixed."""
    return when.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")
