"""The files of a `state/` folder every campaign shares: `contacts.sqlite`, holding the
contact counts (`ledger.contact_limits`) and the opt-out register (`ledger.optouts`), and
`team.sqlite`, the people and the audit trail (`team/`), and `outbox.sqlite`, the
notifications not yet delivered (`notify/`). Their names, and how a writer opens
them, live here, so each part finds the others' tables without importing them and the
folder's ledgers are told apart from them.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from dialer.campaign.model import OUTBOX_NAME, RESERVED_NAME, TEAM_NAME
from dialer.ledger.sqlite import readonly_uri

BOOK_NAME = f"{RESERVED_NAME}.sqlite"  # never a campaign's ledger: that name is refused
TEAM_FILE_NAME = f"{TEAM_NAME}.sqlite"  # nor this one
OUTBOX_FILE_NAME = f"{OUTBOX_NAME}.sqlite"  # nor this one
# The files of `state/` that are no campaign's ledger.
SHARED_FILE_NAMES = frozenset({BOOK_NAME, TEAM_FILE_NAME, OUTBOX_FILE_NAME})


def book_path(state: Path) -> Path:
    return state / BOOK_NAME


# How long a writer waits for another campaign's transaction on the shared file.
BUSY_TIMEOUT_MS = 10_000


def connect_shared(state: Path, name: str = BOOK_NAME) -> sqlite3.Connection:
    """A shared file of `state` (`contacts.sqlite` unless named: `team.sqlite`, the
    notifications' `outbox.sqlite`) opened for writing (made, with its folder, when missing):
    WAL, and `synchronous = FULL`, as a line committed before a request leaves (a claim's
    count, an opt-out, an audit entry) must survive a power cut. Raises OSError or
    sqlite3.Error; each caller names which of its parts could not be opened."""
    state.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(state / name, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
    except sqlite3.Error:
        conn.close()
        raise
    return conn


def read_shared(path: Path) -> sqlite3.Connection:
    """A shared file of `state` (it exists) opened for reading only, waiting on a writer as
    long as a writer would; the first read is made here, so a file that is no database fails
    now. Raises sqlite3.Error; each caller names which of its parts could not be read."""
    conn = sqlite3.connect(readonly_uri(path), uri=True, isolation_level=None)
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    except sqlite3.Error:
        conn.close()
        raise
    return conn
