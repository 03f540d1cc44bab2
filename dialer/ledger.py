"""SQLite ledger: who was called, crash safety, resume (SPEC 6.3).

    >>> ledger = Ledger.open(path, campaign="order-followup")      # takes the run lock
    >>> verdict = ledger.verdict("+917359043943")                  # None: may be sent
    >>> await ledger.claim(contact, run_id)                        # durable before the POST
    >>> ledger.record(contact, Status.TRIGGERED, ...)              # committed with the next batch

One row per person (E.164) per campaign in `calls`, the last outcome. A claim (`sending`)
lives in its own table from just before the request leaves until the answer is recorded; a
run that dies leaves it there, and the next run records that person `unknown` instead of
calling again. "Not sent" records (`not_attempted`, `outside_window`) never overwrite a
`triggered` or `unknown` person, so a `--recall` run that stops early cannot make the next
night forget who was called.

Commits are grouped: every claim made in the same event-loop turn shares one transaction
(synchronous=FULL: a claim survives a power cut), so the ledger costs little at thousands of
calls a second while no request ever leaves before its claim is on disk.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dialer.paths import utc_now_text
from dialer.statuses import LedgerError, Status

SCHEMA_VERSION = "1"
SENDING = "sending"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS calls (
    called_to TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    retryable INTEGER NOT NULL DEFAULT 0,
    http_status INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    call_id TEXT NOT NULL DEFAULT '',
    custom_identifiers TEXT NOT NULL DEFAULT '',
    row INTEGER,
    run_id INTEGER,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sending (
    called_to TEXT PRIMARY KEY,
    row INTEGER,
    run_id INTEGER,
    started_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    exit_code INTEGER,
    close_reason TEXT,
    sheet TEXT,
    report TEXT,
    counts TEXT
);
"""
# Ledger statuses after which the next run sends the row again (SPEC 6.3).
_SEND_AGAIN = frozenset({str(Status.NOT_ATTEMPTED), str(Status.OUTSIDE_WINDOW)})
# What these "not sent" records may never replace: the person may have been called.
_KEEP = (str(Status.TRIGGERED), str(Status.UNKNOWN))
_CLAIM = "INSERT OR REPLACE INTO sending (called_to, row, run_id, started_at) VALUES (?, ?, ?, ?)"
_UNCLAIM = "DELETE FROM sending WHERE called_to = ?"
_UPSERT = """
INSERT INTO calls (called_to, status, reason, retryable, http_status, attempts, call_id,
                   custom_identifiers, row, run_id, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(called_to) DO UPDATE SET
    status = excluded.status, reason = excluded.reason, retryable = excluded.retryable,
    http_status = excluded.http_status, attempts = excluded.attempts, call_id = excluded.call_id,
    custom_identifiers = excluded.custom_identifiers, row = excluded.row,
    run_id = excluded.run_id, updated_at = excluded.updated_at
"""
_UPSERT_UNLESS_CALLED = _UPSERT + f"WHERE calls.status NOT IN {_KEEP!r}"


@dataclass(frozen=True, slots=True)
class Verdict:
    """Why the ledger says a ready row must not be sent now."""

    status: Status
    reason: str


@dataclass(frozen=True, slots=True)
class Entry:
    called_to: str
    status: str
    reason: str = ""
    retryable: bool = False
    http_status: int | None = None
    attempts: int = 0
    call_id: str = ""
    custom_identifiers: str = ""
    row: int | None = None

    def params(self, run_id: int | None) -> tuple[Any, ...]:
        return (
            self.called_to,
            self.status,
            self.reason,
            int(self.retryable),
            self.http_status,
            self.attempts,
            self.call_id,
            self.custom_identifiers,
            self.row,
            run_id,
            utc_now_text(),
        )


def _connect(path: Path, readonly: bool) -> sqlite3.Connection:
    try:
        if readonly:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        else:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 5000")
        check = conn.execute("PRAGMA quick_check").fetchone()
        if not check or check[0] != "ok":
            raise sqlite3.DatabaseError(check[0] if check else "quick_check gave no answer")
        if not readonly:
            conn.execute("PRAGMA journal_mode = WAL")
            # FULL: a committed claim survives a power cut, not only a killed process.
            conn.execute("PRAGMA synchronous = FULL")
            conn.executescript(_SCHEMA)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not {"meta", "calls", "sending", "runs"} <= tables:
            raise sqlite3.DatabaseError("tables meta, calls, sending, runs are missing")
        return conn
    except sqlite3.DatabaseError as exc:
        raise LedgerError(
            f"{path}: ledger is unreadable or corrupt ({exc}); it is never repaired "
            "automatically. Move it aside to start afresh (that forgets who was already called)"
        ) from None


class Ledger:
    """A campaign's ledger, held by one run at a time."""

    def __init__(self, path: Path, conn: sqlite3.Connection, lock_fd: int | None) -> None:
        self.path = path
        self._conn = conn
        self._lock_fd = lock_fd
        self._pending: list[Entry] = []
        self._flush_waiter: asyncio.Future[None] | None = None
        self._error: LedgerError | None = None  # a failed write stops every later one
        # Nobody in the ledger when the run starts: no row can be `already_called`, so the
        # per-row lookup is skipped (a repeat within the sheet is a `duplicate` already).
        self._empty = conn.execute("SELECT NOT EXISTS (SELECT 1 FROM calls)").fetchone()[0] == 1
        self.run_id: int | None = None

    @classmethod
    def open(cls, path: Path, campaign: str) -> Ledger:
        """Open for a run: take the lock (a second run is refused), check, create if new."""
        path.parent.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            raise LedgerError(
                f"{path}: another run of campaign '{campaign}' is going; refusing to start a second"
            ) from None
        try:
            conn = _connect(path, readonly=False)
            stored = conn.execute("SELECT value FROM meta WHERE key='campaign'").fetchone()
            if stored and stored[0] != campaign:
                raise LedgerError(
                    f"{path}: ledger belongs to campaign '{stored[0]}', not '{campaign}'"
                )
            conn.executemany(
                "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)",
                [("campaign", campaign), ("schema_version", SCHEMA_VERSION)],
            )
        except BaseException:
            os.close(lock_fd)
            raise
        return cls(path, conn, lock_fd)

    @classmethod
    def open_readonly(cls, path: Path) -> Ledger | None:
        """For `validate` and `status`: no lock, no writes; None when there is no ledger yet."""
        if not path.exists():
            return None
        return cls(path, _connect(path, readonly=True), None)

    def close(self) -> None:
        if self._pending:
            batch, self._pending = self._pending, []
            self._commit(batch)
            self._check()
        self._conn.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def adopt_orphans(self) -> int:
        """Claims left by a run that died become `unknown`: maybe called (SPEC 6.3)."""
        now = utc_now_text()
        reason = "an earlier run stopped while this call was being sent"
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        orphans = conn.execute("SELECT called_to, row, run_id FROM sending").fetchall()
        conn.executemany(
            _UPSERT,
            [
                (phone, str(Status.UNKNOWN), reason, 0, None, 1, "", "", row, run, now)
                for phone, row, run in orphans
            ],
        )
        conn.execute("DELETE FROM sending")
        conn.execute("COMMIT")
        if orphans:
            self._empty = False
        return len(orphans)

    def verdict(
        self, called_to: str, *, recall: bool = False, retry_unknown: bool = False
    ) -> Verdict | None:
        """None when the row may be sent now; otherwise the status it gets instead."""
        if self._empty:
            return None
        found = self._conn.execute(
            "SELECT status, reason, retryable FROM calls WHERE called_to = ?", (called_to,)
        ).fetchone()
        if found is None:
            return None
        status, reason, retryable = found
        if status in _SEND_AGAIN:
            return None
        if status == str(Status.TRIGGERED):
            return None if recall else Verdict(Status.ALREADY_CALLED, "triggered by an earlier run")
        if status == str(Status.UNKNOWN):
            if retry_unknown:
                return None
            return Verdict(
                Status.UNKNOWN,
                f"earlier run: {reason or 'no answer'}; --retry-unknown sends it again",
            )
        if status == str(Status.FAILED):
            return None if retryable else Verdict(Status.FAILED, f"earlier run: {reason}")
        return None

    def start_run(self, sheet: str, report: str) -> int:
        cur = self._conn.execute(
            "INSERT INTO runs (started_at, sheet, report) VALUES (?, ?, ?)",
            (utc_now_text(), sheet, report),
        )
        self.run_id = cur.lastrowid
        return self.run_id or 0

    def finish_run(self, exit_code: int, close_reason: str, counts: dict[str, int]) -> None:
        batch, self._pending = self._pending, []
        self._commit(batch)
        self._check()
        self._conn.execute(
            "UPDATE runs SET finished_at = ?, exit_code = ?, close_reason = ?, counts = ? "
            "WHERE id = ?",
            (utc_now_text(), exit_code, close_reason, json.dumps(counts), self.run_id),
        )

    async def claim(self, entry: Entry) -> None:
        """Record `sending` and wait until it is committed: only then may the request leave."""
        self._check()
        self._pending.append(entry)
        await self._schedule_flush()

    def record(self, entry: Entry) -> None:
        """Record an outcome; committed with the next batch (no need to wait)."""
        self._check()
        self._pending.append(entry)
        self._schedule_flush()

    async def drain(self) -> None:
        """Wait until everything recorded so far is committed."""
        while self._pending:
            await self._schedule_flush()
        self._check()

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    @property
    def failed(self) -> LedgerError | None:
        """The write failure that stopped this ledger, if any: no request may leave after it."""
        return self._error

    def _schedule_flush(self) -> asyncio.Future[None]:
        if self._flush_waiter is None:
            loop = asyncio.get_running_loop()
            self._flush_waiter = loop.create_future()
            # After every callback already queued: claims made this turn share a commit.
            loop.call_soon(self._flush)
        return self._flush_waiter

    def _flush(self) -> None:
        # On the loop's own thread: a commit is ~0.2 ms here, and a hand-off to a writer
        # thread cost 40% of the throughput (each batch waited for the GIL).
        waiter, self._flush_waiter = self._flush_waiter, None
        batch, self._pending = self._pending, []
        self._commit(batch)
        if waiter is not None and not waiter.done():
            if self._error is not None:
                waiter.set_exception(self._error)
                # Marked retrieved: `record()` never awaits it (asyncio would print "Future
                # exception was never retrieved"); claims awaiting it still get the error.
                waiter.exception()
            else:
                waiter.set_result(None)

    def _commit(self, batch: list[Entry]) -> None:
        """One transaction for the batch; a failure is kept and raised on every later use."""
        if not batch or self._error is not None:
            return
        run_id, now = self.run_id, utc_now_text()
        # Grouped by statement for executemany; safe because a batch holds at most one entry
        # per person (a claim is committed before its request leaves, the outcome comes after).
        claims = [(e.called_to, e.row, run_id, now) for e in batch if e.status == SENDING]
        outcomes = [e for e in batch if e.status != SENDING]
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(_CLAIM, claims)
                conn.executemany(
                    _UPSERT, [e.params(run_id) for e in outcomes if e.status not in _SEND_AGAIN]
                )
                conn.executemany(
                    _UPSERT_UNLESS_CALLED,
                    [e.params(run_id) for e in outcomes if e.status in _SEND_AGAIN],
                )
                conn.executemany(_UNCLAIM, [(e.called_to,) for e in outcomes])
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._error = LedgerError(f"{self.path}: cannot write the ledger: {exc}")

    # ---- reading, for `dialer status` ----

    def counts(self) -> dict[str, int]:
        counts = dict(self._conn.execute("SELECT status, COUNT(*) FROM calls GROUP BY status"))
        sending = self._conn.execute("SELECT COUNT(*) FROM sending").fetchone()[0]
        if sending:
            counts[SENDING] = sending
        return counts

    def last_run(self) -> dict[str, Any] | None:
        found = self._conn.execute(
            "SELECT id, started_at, finished_at, exit_code, close_reason, sheet, report, counts "
            "FROM runs ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if found is None:
            return None
        keys = ("id", "started_at", "finished_at", "exit_code", "close_reason", "sheet", "report")
        run = dict(zip(keys, found[:7], strict=True))
        run["counts"] = json.loads(found[7]) if found[7] else {}
        return run

    def waiting(self) -> int:
        """Rows the next run would send again."""
        return self._conn.execute(
            "SELECT COUNT(*) FROM calls WHERE status IN (?, ?) OR (status = ? AND retryable = 1)",
            (str(Status.NOT_ATTEMPTED), str(Status.OUTSIDE_WINDOW), str(Status.FAILED)),
        ).fetchone()[0]
