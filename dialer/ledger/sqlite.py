"""The two SQLite habits every store of `state/` shares: one write transaction taken at
once, and a read that never writes (a read-only mount included)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path


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


def readonly_uri(path: Path) -> str:
    """Read without writing. In a folder nobody can write (a read-only mount), SQLite cannot
    create the -shm a WAL reader needs; with no WAL content left the main file is the whole
    ledger and is read as immutable (no locks: nobody can be writing it there)."""
    uri = f"{path.absolute().as_uri()}?mode=ro"
    wal = path.with_name(path.name + "-wal")
    if not os.access(path.parent, os.W_OK) and (not wal.exists() or wal.stat().st_size == 0):
        uri += "&immutable=1"
    return uri
