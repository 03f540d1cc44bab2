"""`state/outbox.sqlite`: the notifications written before a command ends, until they are
delivered or given up (SPEC 13). Whichever process of the folder comes next delivers them.

    with Outbox.open(state) as outbox:
        outbox.add(events, now=time.time())                # one transaction, before the end
        entry = outbox.claim(now=time.time(), lease=30.0)  # one entry, leased to this process
        outbox.delivered(entry, now=time.time())

A row holds the names of the URL's and the secret's environment variables, never their
values: the URL of a Slack or Teams webhook is a secret. Claiming is one `BEGIN IMMEDIATE`
transaction that leases the entry (`claimed_until`), so two processes delivering at once
never send one event at the same time; a process killed mid-send lets the lease lapse and the
next one sends it again (at-least-once: the receiver drops repeats by `event_id`). Times are
the wall clock's seconds, the one clock every process of the folder shares.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dialer.campaign.model import OUTBOX_NAME
from dialer.ledger.shared_file import connect_shared
from dialer.ledger.sqlite import transaction

OUTBOX_FILE = f"{OUTBOX_NAME}.sqlite"
PENDING, DELIVERED, GIVEN_UP = "pending", "delivered", "given_up"
# A last_error is one line of at most this many characters.
_ERROR_CHARS = 300

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    event_id TEXT PRIMARY KEY,
    campaign TEXT NOT NULL,
    event TEXT NOT NULL,
    body TEXT NOT NULL,
    url_env TEXT NOT NULL,
    secret_env TEXT,
    tries INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    last_error TEXT NOT NULL DEFAULT '',
    claimed_until REAL NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    done_at REAL
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, next_at)
"""
_COLUMNS = "event_id, campaign, event, body, url_env, secret_env, tries, next_at"


@dataclass(frozen=True, slots=True)
class Entry:
    """One event to deliver: `body` is the exact JSON text sent (and signed)."""

    event_id: str
    campaign: str
    event: str
    body: str
    url_env: str
    secret_env: str | None
    tries: int = 0  # tries made so far, by any process
    next_at: float = 0.0


def outbox_path(state: Path) -> Path:
    return state / OUTBOX_FILE


class Outbox:
    """The outbox of one `state/` folder, opened for writing."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @classmethod
    def open(cls, state: Path) -> Outbox:
        """The outbox (made when missing); OSError or sqlite3.Error when it cannot be."""
        conn = connect_shared(state, OUTBOX_FILE)
        try:
            for statement in filter(str.strip, _SCHEMA.split(";")):
                conn.execute(statement)
        except sqlite3.Error:
            conn.close()
            raise
        return cls(conn)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, entries: Sequence[Entry], now: float, keep_seconds: float) -> None:
        """Write `entries` in one transaction, due at once; forget finished rows older than
        `keep_seconds`."""
        with transaction(self._conn):
            self._conn.executemany(
                f"INSERT INTO outbox ({_COLUMNS}, created_at) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)",
                [
                    (e.event_id, e.campaign, e.event, e.body, e.url_env, e.secret_env, now, now)
                    for e in entries
                ],
            )
            self._conn.execute(
                "DELETE FROM outbox WHERE state != ? AND done_at < ?", (PENDING, now - keep_seconds)
            )

    def claim(
        self, now: float, lease: float, skip: Collection[str] = (), tried: Collection[str] = ()
    ) -> Entry | None:
        """The next due entry, leased to this process for `lease` seconds; None: none due.
        `skip`: variables this process lacks; entries naming one are not claimed. `tried`:
        event ids not to claim again (a pass that tries each entry once)."""
        names = ", ".join("?" * len(skip))
        ids = ", ".join("?" * len(tried))
        with transaction(self._conn):
            row = self._conn.execute(
                f"SELECT {_COLUMNS} FROM outbox WHERE state = ? AND next_at <= ? "
                f"AND claimed_until <= ? AND url_env NOT IN ({names}) "
                f"AND IFNULL(secret_env, '') NOT IN ({names}) AND event_id NOT IN ({ids}) "
                "ORDER BY next_at, created_at LIMIT 1",
                (PENDING, now, now, *skip, *skip, *tried),
            ).fetchone()
            if row is None:
                return None
            self._conn.execute(
                "UPDATE outbox SET claimed_until = ? WHERE event_id = ?", (now + lease, row[0])
            )
        return Entry(*row)

    def delivered(self, entry: Entry, tries: int, now: float) -> None:
        self._finish(entry, DELIVERED, tries, "", now)

    def given_up(self, entry: Entry, tries: int, error: str, now: float) -> None:
        self._finish(entry, GIVEN_UP, tries, error, now)

    def release(self, entry: Entry) -> None:
        """Untried: the lease given back, for another process."""
        with transaction(self._conn):
            self._conn.execute(
                "UPDATE outbox SET claimed_until = 0 WHERE event_id = ?", (entry.event_id,)
            )

    def retry(self, entry: Entry, tries: int, next_at: float, error: str) -> None:
        """Tried `tries` times so far: again at `next_at`, by this process or another."""
        with transaction(self._conn):
            self._conn.execute(
                "UPDATE outbox SET tries = ?, next_at = ?, last_error = ?, claimed_until = 0 "
                "WHERE event_id = ?",
                (tries, next_at, _one_line(error), entry.event_id),
            )

    def _finish(self, entry: Entry, state: str, tries: int, error: str, now: float) -> None:
        with transaction(self._conn):
            self._conn.execute(
                "UPDATE outbox SET state = ?, tries = ?, last_error = ?, claimed_until = 0, "
                "done_at = ? WHERE event_id = ?",
                (state, tries, _one_line(error), now, entry.event_id),
            )

    def next_due(self, skip: Collection[str] = ()) -> float | None:
        """When the soonest pending entry (naming no variable of `skip`) is due: it may be
        now or past; None: none left."""
        names = ", ".join("?" * len(skip))
        row = self._conn.execute(
            "SELECT MIN(MAX(next_at, claimed_until)) FROM outbox WHERE state = ? "
            f"AND url_env NOT IN ({names}) AND IFNULL(secret_env, '') NOT IN ({names})",
            (PENDING, *skip, *skip),
        ).fetchone()
        return row[0]

    def rows(self) -> list[dict[str, object]]:
        """Every row as the file holds it (what `dialer` tells of the outbox, and tests)."""
        cursor = self._conn.execute("SELECT * FROM outbox ORDER BY created_at, event_id")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]


@contextmanager
def existing_outbox(state: Path) -> Iterator[Outbox | None]:
    """The folder's outbox when there is one; None, creating nothing, when there is not."""
    if not outbox_path(state).exists():
        yield None
        return
    with Outbox.open(state) as outbox:
        yield outbox


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _ERROR_CHARS else f"{line[: _ERROR_CHARS - 3]}..."
