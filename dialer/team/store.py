"""`state/team.sqlite`: the one file the people (`team.people`) and the audit trail
(`team.audit`) live in, opened here for both.

    conn = connect_team(state)          # for writing: made (WAL, synchronous FULL) when missing
    conn = read_team(state)             # for reading: None when there is no file yet

The pragmas are the shared contact file's (`ledger.shared_file.connect_shared`): a line
committed here (a person removed, an audit entry) must survive a power cut too.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from dialer.core.statuses import DialerError
from dialer.ledger.shared_file import BUSY_TIMEOUT_MS, TEAM_FILE_NAME, connect_shared
from dialer.ledger.sqlite import readonly_uri


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
        conn = sqlite3.connect(readonly_uri(path), uri=True, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        raise TeamFileError(f"{path}: cannot read {what}: {exc}") from None
    return conn


def has_table(conn: sqlite3.Connection, table: str) -> bool:
    found = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).fetchone()
    return found is not None


def team_stamp(when: datetime) -> str:
    """A time as the team file writes it: UTC, to the second, `Z`-suffixed."""
    return when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
