"""SQLite ledger: who was called, crash safety, resume (SPEC 6.3).

    >>> ledger = Ledger.open(path, campaign="order-followup")      # takes the run lock
    >>> ledger.facts("+917359043943")                              # what the gate judges
    >>> await ledger.claim(Claim(run_id, "+917359043943", 7))      # durable before the POST
    >>> ledger.record(Entry("+917359043943", Status.TRIGGERED))    # committed with the next batch

One row per person (E.164) per campaign in `calls`, the last outcome. A claim (`sending`)
lives in its own table from just before the request leaves until the answer is recorded; a
run that dies leaves it there, and the next run records that person `unknown` instead of
calling again. "Not sent" records (`not_attempted`, `outside_window`) never overwrite a
`triggered` or `unknown` person, so a `--recall` run that stops early cannot make the next
night forget who was called.

Commits are grouped: every claim made in the same event-loop turn shares one transaction
(synchronous=FULL: a claim survives a power cut), so the ledger costs little at thousands of
calls a second while no request ever leaves before its claim is on disk. Each committed batch
of claims is also appended to the claims journal (`dialer.ledger.claims`) before its requests leave,
so a lost -wal cannot hide a call in flight. Closing a run's ledger checkpoints the WAL, so a
finished run leaves one file, safe to copy on its own; only then is the journal emptied.

Opening never writes before the caller's `OpenCheck` has seen the file: a ledger that is new
(missing, 0 bytes, no tables) or one that may be stale is judged against the campaign's reports
first (`dialer.ledger.rebuild`), and an SQLite file that is not a ledger is refused untouched.
A file that cannot be opened or written (read-only, disk full) is the environment, never "corrupt".
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import secrets
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from dialer.core.clock import Clock, parse_stamp, stamp, system_clock
from dialer.core.statuses import CLAIM, LedgerError, Status, stored_outcome
from dialer.ledger.claims import Claim, ClaimsJournal, claims_path
from dialer.ledger.facts import NO_FACTS, Facts, History
from dialer.ledger.sqlite import readonly_uri, transaction

if TYPE_CHECKING:
    from dialer.campaign.model import Limits
    from dialer.ledger.contact_limits import ContactBook

SCHEMA_VERSION = "1"
# Why a claim left by an earlier run is `unknown`: it may have reached the person.
ORPHAN_REASON = "an earlier run stopped before recording this call's answer"
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
CREATE TABLE IF NOT EXISTS dials (
    id INTEGER PRIMARY KEY,
    called_to TEXT NOT NULL,
    custom_identifiers TEXT NOT NULL DEFAULT '',
    row INTEGER,
    run_id INTEGER,
    placed_at TEXT NOT NULL,
    room_name TEXT NOT NULL DEFAULT '',
    participant_identity TEXT NOT NULL DEFAULT '',
    outcome TEXT,
    raw_status TEXT NOT NULL DEFAULT '',
    duration_s INTEGER,
    cost REAL,
    summary TEXT NOT NULL DEFAULT '',
    recording_url TEXT NOT NULL DEFAULT '',
    transcript TEXT,
    log_rows INTEGER NOT NULL DEFAULT 0,
    synced_at TEXT,
    maybe INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS dials_by_number ON dials (called_to, id);
CREATE TABLE IF NOT EXISTS test_calls (
    id INTEGER PRIMARY KEY,
    placed_at TEXT NOT NULL,
    called_to TEXT NOT NULL,
    row INTEGER,
    sheet TEXT NOT NULL DEFAULT '',
    custom_identifiers TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    http_status INTEGER,
    call_id TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS rebuilt_from (
    report TEXT PRIMARY KEY,
    people INTEGER NOT NULL,
    read_at TEXT NOT NULL
);
"""
# What makes an SQLite file a ledger; `rebuilt_from` came later and is added when missing.
_CORE_TABLES = frozenset({"meta", "calls", "sending", "runs"})
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
# Records of a row a run did not send ...
_NOT_SENT = frozenset(
    {Status.NOT_ATTEMPTED, Status.OUTSIDE_WINDOW, Status.LIMITED, Status.REDIAL_LATER}
)
# ... may never replace these: the person may have been called.
_KEEP = (Status.TRIGGERED.value, Status.UNKNOWN.value)  # plain text, for the SQL below
# Records of a request that left: each is a call in `dials` (an `unknown` one a maybe).
_DIALLED = frozenset({Status.TRIGGERED, Status.UNKNOWN})
_CLAIM = "INSERT OR REPLACE INTO sending (called_to, row, run_id, started_at) VALUES (?, ?, ?, ?)"
_UNCLAIM = "DELETE FROM sending WHERE called_to = ?"
# A claim answered "not sent" (a 402 on a redial) keeps the person's earlier call, but the
# record names this run: its claims-journal line is accounted for, not taken for a lost -wal.
_MARK_RUN = """
UPDATE calls SET run_id = ?1 WHERE called_to = ?2
AND EXISTS (SELECT 1 FROM sending WHERE called_to = ?2 AND run_id = ?1)
"""
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
# A rebuild's record from a report: it replaces what the old ledger holds when that is no
# call, or older than the report's row (a newer `unknown` is a newer maybe-call: it wins,
# and the calls before it stay in `dials`). A tie keeps the ledger's own record.
_UPSERT_UNLESS_NEWER = _UPSERT + (
    f"WHERE calls.status NOT IN {_KEEP!r} OR calls.updated_at < excluded.updated_at"
)
# One row per call placed (SPEC 10): what the call logs are matched against, and how many
# times, and when, this campaign called a person (the redial rule). A maybe-call (`unknown`:
# its request left without a usable answer, or a killed run's claim) is one too, `maybe`:
# its log rows are its own, never an earlier call's, and it counts toward `max_calls`.
_DIAL = (
    "INSERT INTO dials (called_to, custom_identifiers, row, run_id, placed_at, room_name, "
    "participant_identity, maybe) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
# A call already held (the same room, or the same run: one call per person per run) is never
# written twice: adopting a killed run's claim after a rebuild restored its dial from the
# report must not make one call two.
_DIAL_ONCE = """
INSERT INTO dials (called_to, custom_identifiers, row, run_id, placed_at, room_name,
                   participant_identity, maybe)
SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8 WHERE NOT EXISTS (
    SELECT 1 FROM dials WHERE called_to = ?1
    AND ((?6 != '' AND room_name = ?6) OR (?4 IS NOT NULL AND run_id = ?4)
         OR (?6 = '' AND ?4 IS NULL AND placed_at BETWEEN ?9 AND ?10)))
"""
# Ledgers from before `dials`: each person recorded `triggered` is one call, pending.
_BACKFILL_DIALS = f"""
INSERT INTO dials (called_to, custom_identifiers, row, run_id, placed_at, room_name)
SELECT called_to, custom_identifiers, row, run_id, updated_at, call_id FROM calls
WHERE status = '{Status.TRIGGERED.value}'
  AND NOT EXISTS (SELECT 1 FROM dials d WHERE d.called_to = calls.called_to)
"""


@dataclass(frozen=True, slots=True)
class Entry:
    """A row's outcome, the person's last record."""

    called_to: str
    status: Status
    reason: str = ""
    retryable: bool = False
    http_status: int | None = None
    attempts: int = 0
    call_id: str = ""
    custom_identifiers: str = ""
    row: int | None = None
    participant_identity: str = ""  # a triggered call's, with call_id (room_name): `dials`
    at: str = ""  # a rebuild's: when its report row was written (else: the time of the write)

    def params(self, run_id: int | None, now: str) -> tuple[Any, ...]:
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
            self.at or now,
        )


@dataclass(frozen=True, slots=True)
class PastDial:
    """A call a report shows (a `triggered` row, or a maybe: an `unknown` row its run sent, a
    claims-journal line), for a rebuild to restore into `dials`."""

    called_to: str
    custom_identifiers: str
    row: int | None
    run_id: int | None  # the run that placed it, when the old ledger still names its report
    placed_at: str
    room_name: str
    started_at: str = ""  # with no room and no run, a dial placed from here ...
    until: str = ""  # ... to here is this call
    maybe: bool = False  # a claim or an `unknown` row: the request may have placed it

    def params(self) -> tuple[Any, ...]:
        return (
            self.called_to,
            self.custom_identifiers,
            self.row,
            self.run_id,
            self.placed_at,
            self.room_name,
            "",
            int(self.maybe),
            self.started_at or self.placed_at,
            self.until or self.placed_at,
        )


def _dial_params(entry: Entry, run_id: int | None, now: str) -> tuple[Any, ...]:
    return (
        entry.called_to,
        entry.custom_identifiers,
        entry.row,
        run_id,
        now,
        entry.call_id,
        entry.participant_identity,
        int(entry.status is Status.UNKNOWN),
    )


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


def fresh_reason(path: Path) -> str | None:
    """Why the file at `path` holds no ledger yet (missing, 0 bytes), or None."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "the ledger is missing"
    except OSError as exc:
        raise LedgerError(f"{path}: cannot read the ledger: {exc.strerror}") from None
    return "the ledger is empty (0 bytes)" if size == 0 else None


BLANK = "the ledger has no tables (only its main file is left: was its -wal file lost?)"
# A main file in WAL mode was written by a run (`_prepare`): with no tables, its -wal is gone.
BLANK_WAL = "the ledger has no tables though a run used it (its -wal file was lost)"


def blank_reason(path: Path) -> str:
    """Why an SQLite file with no tables holds no ledger: WAL mode means a run wrote it."""
    try:
        with open(path, "rb") as f:
            header = f.read(20)
    except OSError:
        return BLANK
    return BLANK_WAL if header[18:20] == b"\x02\x02" else BLANK


def _connect(
    path: Path, readonly: bool, campaign_file: Path | str
) -> tuple[sqlite3.Connection, set[str]]:
    """Open and check, writing nothing; the file's own tables (none: a blank SQLite file)."""
    conn: sqlite3.Connection | None = None
    try:
        if readonly:
            conn = sqlite3.connect(readonly_uri(path), uri=True, isolation_level=None)
        else:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 5000")
        check = conn.execute("PRAGMA quick_check").fetchone()
        if not check or check[0] != "ok":
            raise corrupt(path, check[0] if check else "quick_check gave no answer", campaign_file)
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite%'"
            )
        }
    except (sqlite3.Error, LedgerError) as exc:
        if conn is not None:
            conn.close()
        if isinstance(exc, LedgerError):
            raise
        if is_environment(exc):
            if readonly:
                raise LedgerError(f"{path}: cannot read the ledger: {exc}") from None
            raise cannot_write(path, exc) from None
        raise corrupt(path, exc, campaign_file) from None
    if tables and not tables >= _CORE_TABLES:
        conn.close()
        shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise LedgerError(
            f"{path}: an SQLite database but not a dialer ledger (its tables: {shown}); "
            "refusing to use it, and it was left untouched: move it out of the way"
        )
    if tables:
        try:
            _known_schema(path, _meta(conn, "schema_version"))
        except BaseException:
            conn.close()
            raise
    return conn, tables


def _known_schema(path: Path, version: str | None) -> None:
    """A ledger whose schema is newer than this code knows may record calls where this code
    never looks (and this code would write it wrongly): refused, left untouched."""
    if version is None or version == SCHEMA_VERSION:
        return  # a ledger from before the version was stored is version 1
    newer = not (version.isascii() and version.isdigit()) or int(version) > int(SCHEMA_VERSION)
    if newer:
        raise LedgerError(
            f"{path}: this ledger was made by a newer dialer (schema {version[:20]!r}; this "
            f"one knows {SCHEMA_VERSION}); refusing to use it, and it was left untouched: "
            "run the newer dialer"
        )


def _prepare(conn: sqlite3.Connection, path: Path, campaign: str, now: str) -> None:
    """WAL, durability, the schema and the ledger's identity; the first write of a run."""
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        # FULL: a committed claim survives a power cut, not only a killed process.
        conn.execute("PRAGMA synchronous = FULL")
        with transaction(conn):
            _create_schema(conn, campaign, now)
            conn.execute(_BACKFILL_DIALS)
    except sqlite3.Error as exc:
        raise cannot_write(path, exc) from None


def _create_schema(conn: sqlite3.Connection, campaign: str, now: str) -> None:
    """The tables and the ledger's identity, where they are not yet (inside a transaction)."""
    for statement in filter(str.strip, _SCHEMA.split(";")):
        conn.execute(statement)
    columns = {r[1] for r in conn.execute("PRAGMA table_info(dials)")}
    if "maybe" not in columns:  # a ledger from before maybe-calls had their dial
        conn.execute("ALTER TABLE dials ADD COLUMN maybe INTEGER NOT NULL DEFAULT 0")
    conn.executemany(
        "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)",
        [
            ("campaign", campaign),
            ("schema_version", SCHEMA_VERSION),
            # Created once per ledger: a report's summary names the ledger that ran it, so
            # a new or rebuilt ledger is never mistaken for the old one.
            ("ledger_id", secrets.token_hex(8)),
            ("created_at", now),
        ],
    )


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


def _meta(conn: sqlite3.Connection, key: str) -> str | None:
    found = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return found[0] if found else None


class OpenCheck(Protocol):
    """What a caller checks before a ledger is created or written (the loss check)."""

    def new(self, why: str) -> None:
        """No ledger yet (`why`: missing, 0 bytes, no tables); raise to refuse creating one."""

    def existing(self, ledger: Ledger) -> None:
        """An existing ledger, nothing written yet; raise to refuse it."""


class Ledger:
    """A campaign's ledger, held by one run at a time."""

    def __init__(
        self,
        path: Path,
        conn: sqlite3.Connection,
        lock_fd: int | None,
        clock: Clock = system_clock,
    ) -> None:
        self.path = path
        self.clock = clock  # every time the ledger writes (`updated_at`, a run's start and end)
        self._conn = conn
        self._lock_fd = lock_fd
        self._pending: list[Entry | Claim] = []
        self._flush_waiter: asyncio.Future[None] | None = None
        self._error: LedgerError | None = None  # a failed write stops every later one
        # Nobody in the ledger when the run starts: no row can be `already_called`, so the
        # per-row lookup is skipped (a repeat within the sheet is a `duplicate` already).
        self._empty = conn.execute("SELECT NOT EXISTS (SELECT 1 FROM calls)").fetchone()[0] == 1
        # Claims a killed run left behind: a run adopts them first, but a dry run must show
        # them as the run will (`unknown`), so it looks them up too.
        self._orphans = conn.execute("SELECT EXISTS (SELECT 1 FROM sending)").fetchone()[0] == 1
        self.run_id: int | None = None
        self.ledger_id = _meta(conn, "ledger_id")
        self._journal: ClaimsJournal | None = None  # a run's claims journal, when writable
        # A ledger from before the outcome loop, read without writing, has no `dials` yet.
        self.has_dials = (
            conn.execute(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type='table' AND name='dials')"
            ).fetchone()[0]
            == 1
        )
        # Outcomes that orphan claims' own reports show (`triggered` rows): adopted as such.
        self._reported: dict[str, Entry] = {}
        # The folder's shared contact counts (`dialer.ledger.contact_limits`), when there are any:
        # each batch of claims is reserved there first; refused claims get their reason.
        self._book: ContactBook | None = None
        self._book_limits: Limits | None = None
        self._book_names = ("", "")  # campaign, run key
        self._refused: dict[str, str] = {}
        # Calls the upstream accepted whose line in the book still says maybe: marked in
        # the same batch's claims transaction, or on their own after a batch without claims.
        self._placed: list[str] = []

    @classmethod
    def open(
        cls,
        path: Path,
        campaign: str,
        *,
        check: OpenCheck | None = None,
        campaign_file: Path | str = "CAMPAIGN",
        clock: Clock = system_clock,
    ) -> Ledger:
        """Open for a run: take the lock (a second run is refused), check, create if new."""
        lock_fd = take_lock(path, campaign)
        try:
            why = fresh_reason(path)
            if why is not None and check is not None:
                check.new(why)  # before sqlite creates anything
            if why is None:
                try:  # a read-only file or mount: sqlite would open it read-only, silently
                    os.close(os.open(path, os.O_RDWR))
                except OSError as exc:
                    raise cannot_write(path, exc) from None
            conn, tables = _connect(path, readonly=False, campaign_file=campaign_file)
            try:
                ledger = None
                if tables:
                    stored = _meta(conn, "campaign")
                    if stored and stored != campaign:
                        raise LedgerError(
                            f"{path}: ledger belongs to campaign '{stored}', not '{campaign}'"
                        )
                    ledger = cls(path, conn, lock_fd, clock)
                    if check is not None:
                        check.existing(ledger)
                elif why is None and check is not None:
                    check.new(blank_reason(path))
                _prepare(conn, path, campaign, stamp(clock()))
                ledger = ledger or cls(path, conn, lock_fd, clock)
                ledger.has_dials = True  # `_prepare` made it
                journal = claims_path(path)
                try:
                    ledger._journal = ClaimsJournal.open(journal)
                except OSError as exc:
                    raise cannot_write(path, exc) from None
            except BaseException:
                conn.close()
                raise
        except BaseException:
            os.close(lock_fd)
            raise
        ledger.ledger_id = _meta(conn, "ledger_id")
        return ledger

    @classmethod
    def open_readonly(
        cls,
        path: Path,
        *,
        check: OpenCheck | None = None,
        campaign_file: Path | str = "CAMPAIGN",
    ) -> Ledger | None:
        """For `validate` and `status`: no lock, no writes; None when there is no ledger yet."""
        why = fresh_reason(path)
        if why is None:
            conn, tables = _connect(path, readonly=True, campaign_file=campaign_file)
            if tables:
                ledger = cls(path, conn, None)
                if check is not None:
                    try:
                        check.existing(ledger)
                    except BaseException:
                        ledger.close()
                        raise
                return ledger
            conn.close()
            why = blank_reason(path)
        if check is not None:
            check.new(why)
        return None

    def close(self) -> None:
        """Commit what is pending, checkpoint, release; a write failure is raised after the
        connection and the lock are let go (the next run must not find them held)."""
        try:
            if self._pending:
                batch, self._pending = self._pending, []
                self._commit(batch)
            if self._lock_fd is not None and self._error is None:
                # The WAL's contents into the main file: a finished run's ledger is one file,
                # so a copy or backup of `x.sqlite` alone holds every call (SPEC 6.3). Best
                # effort: what is committed is safe in the WAL even if this fails (disk full).
                with contextlib.suppress(sqlite3.Error, OSError):
                    busy = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                    # Not blocked, every frame of the WAL copied: only then may the claims
                    # journal forget this run's claims (the main file holds them).
                    done = busy is not None and busy[0] == 0 and 0 <= busy[2] == busy[1]
                    if done and self._journal is not None:
                        self._journal.empty()
        finally:
            self._conn.close()
            if self._journal is not None:
                self._journal.close()
                self._journal = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None
        self._check()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def orphan_runs(self) -> dict[int, str]:
        """The runs whose claims are left (`sending`), each with the report it named."""
        return {
            run: report or ""
            for run, report in self._conn.execute(
                "SELECT DISTINCT s.run_id, r.report FROM sending s "
                "LEFT JOIN runs r ON r.id = s.run_id WHERE s.run_id IS NOT NULL"
            )
        }

    def orphans_of(self, run_id: int) -> set[str]:
        found = self._conn.execute("SELECT called_to FROM sending WHERE run_id = ?", (run_id,))
        return {r[0] for r in found}

    def use_reported(self, entries: dict[str, Entry]) -> None:
        """Orphan claims whose own run's report shows them `triggered` (by number): the dry
        run shows them and the run adopts them as such, not as `unknown`."""
        self._reported = {k: v for k, v in entries.items() if v.status is Status.TRIGGERED}

    def adopt_orphans(self) -> int:
        """Claims left by a run that stopped before recording the answer (killed, or its
        ledger could not be written) become `unknown`: maybe called (SPEC 6.3); those its
        report shows `triggered` are recorded so. Returns how many became `unknown`."""
        now = self._now()
        reason = ORPHAN_REASON
        conn = self._conn
        try:
            with transaction(conn):
                orphans = conn.execute(
                    "SELECT called_to, row, run_id, started_at FROM sending"
                ).fetchall()
                # A claim whose run wrote `triggered` (with its call id) in its report, but
                # could not record it here (disk full): recorded as the report says.
                reported = [(self._reported.get(p), run) for p, _, run, _ in orphans]
                conn.executemany(_UPSERT, [e.params(run, now) for e, run in reported if e])
                # A call placed: its dial too, or the redial rule would count one call short.
                conn.executemany(
                    _DIAL_ONCE, [(*_dial_params(e, run, now), "", "") for e, run in reported if e]
                )
                maybes = [o for o in orphans if o[0] not in self._reported]
                conn.executemany(
                    _UPSERT,
                    [
                        (phone, Status.UNKNOWN, reason, 0, None, 1, "", "", row, run, now)
                        for phone, row, run, _ in maybes
                    ],
                )
                # Each a maybe-call from its claim's time: its log rows are its own.
                conn.executemany(
                    _DIAL_ONCE,
                    [
                        (phone, "", row, run, at, "", "", 1, "", "")
                        for phone, row, run, at in maybes
                    ],
                )
                conn.execute("DELETE FROM sending")
        except sqlite3.Error as exc:
            raise self._write_error(exc) from None
        if orphans:
            self._empty = False
        self._orphans = False
        return len(maybes)

    def _now(self) -> str:
        return stamp(self.clock())

    def _write_error(self, exc: sqlite3.Error) -> LedgerError:
        return LedgerError(f"{self.path}: cannot write the ledger: {exc}")

    def campaign(self) -> str | None:
        return _meta(self._conn, "campaign")

    @property
    def connection(self) -> sqlite3.Connection:
        """For the modules that keep their own tables here (`dialer.ledger.dials`): autocommit, so
        writes go inside `transaction(conn)`."""
        return self._conn

    def rebuilt(self) -> tuple[str, int] | None:
        """When this ledger was rebuilt, and from how many reports; None if never."""
        at = _meta(self._conn, "rebuilt_at")
        if at is None:
            return None
        return at, self._conn.execute("SELECT COUNT(*) FROM rebuilt_from").fetchone()[0]

    def knows(self, called_to: str) -> bool:
        """True when the next run would not send this person again (they are accounted for)."""
        return self.facts(called_to).accounted_for

    def facts(self, called_to: str) -> Facts:
        """The person's last record, for `dialer.engine.gate` to judge."""
        if self._orphans and self._is_orphan(called_to):
            # What the run adopts the claim as, before anything is sent: a dry run agrees.
            reported = self._reported.get(called_to)
            if reported is not None:  # its own run's report shows it triggered
                return Facts(Status.TRIGGERED, reported.reason)
            return Facts(Status.UNKNOWN, ORPHAN_REASON)
        if self._empty:
            return NO_FACTS
        found = self._conn.execute(
            "SELECT status, reason, retryable FROM calls WHERE called_to = ?", (called_to,)
        ).fetchone()
        if found is None:
            return NO_FACTS
        return Facts(Status(found[0]), found[1], bool(found[2]))

    def history(self, called_to: str) -> History | None:
        """This campaign's calls to the person, for the redial rule; None: none recorded."""
        if not self.has_dials:
            return None
        found = self._conn.execute(
            "SELECT placed_at, outcome, (SELECT COUNT(*) FROM dials WHERE called_to = ?1) "
            "FROM dials WHERE called_to = ?1 ORDER BY id DESC LIMIT 1",
            (called_to,),
        ).fetchone()
        if found is None:
            return None
        placed, outcome, calls = found
        return History(calls, parse_stamp(placed), stored_outcome(outcome))

    def histories(self) -> list[History]:
        """Every `triggered` person's calls (`dialer status`: who is redialed, and when)."""
        if not self.has_dials:
            return []
        found = self._conn.execute(
            "SELECT placed_at, outcome, n FROM (SELECT called_to, placed_at, outcome, "
            "COUNT(*) OVER (PARTITION BY called_to) AS n, "
            "ROW_NUMBER() OVER (PARTITION BY called_to ORDER BY id DESC) AS k FROM dials) "
            "WHERE k = 1 AND called_to IN (SELECT called_to FROM calls WHERE status = ?)",
            (Status.TRIGGERED.value,),
        )
        return [
            History(n, parse_stamp(placed), stored_outcome(outcome)) for placed, outcome, n in found
        ]

    def accounts_for(self, called_to: str, run_id: int) -> bool:
        """True when the ledger holds what run `run_id` did with this person: a claim, that
        run's call, or an outcome recorded by that run or a later one. Calls, not people: an
        earlier call (a person `triggered` before a redial) does not account for this run's.
        One statement, so one snapshot even while a run is writing."""
        dial = (
            " OR EXISTS (SELECT 1 FROM dials WHERE called_to = ?1 AND run_id = ?2)"
            if self.has_dials
            else ""
        )
        found = self._conn.execute(
            "SELECT EXISTS (SELECT 1 FROM sending WHERE called_to = ?1) OR EXISTS (SELECT 1 "
            f"FROM calls WHERE called_to = ?1 AND run_id >= ?2){dial}",
            (called_to, run_id),
        )
        return bool(found.fetchone()[0])

    def holds_call(
        self, called_to: str, *, room: str, run_id: int | None, started_at: str, at: str
    ) -> bool:
        """True when `dials` holds the call a report row shows (or its claim is still left):
        the same room, else the same run (one call per person per run), else, with neither
        known, a call of the person recorded from the row's start on."""
        if self._orphans and self._is_orphan(called_to):
            return True
        if not self.has_dials:
            return self.knows(called_to)
        if room:
            query, params = "room_name = ?", (room,)
        elif run_id is not None:
            query, params = "run_id = ?", (run_id,)
        else:
            query, params = "placed_at >= ?", (started_at or at,)
        found = self._conn.execute(
            f"SELECT EXISTS (SELECT 1 FROM dials WHERE called_to = ? AND {query})",
            (called_to, *params),
        )
        return bool(found.fetchone()[0])

    def holds_maybe(self, called_to: str, at: str) -> bool:
        """True when the ledger holds a report's `unknown` row (maybe called): the person is
        `unknown` here, or was recorded again from the row's time on."""
        if self._orphans and self._is_orphan(called_to):
            return True
        found = self._conn.execute(
            "SELECT EXISTS (SELECT 1 FROM calls WHERE called_to = ?1 "
            "AND (status = ?2 OR updated_at >= ?3))",
            (called_to, Status.UNKNOWN.value, at),
        )
        return bool(found.fetchone()[0])

    def run_reports(self) -> list[tuple[int, str, bool]]:
        """Each run's id, the report it named, and whether it finished."""
        return [
            (run, report, finished is not None)
            for run, report, finished in self._conn.execute(
                "SELECT id, report, finished_at FROM runs WHERE report IS NOT NULL"
            )
        ]

    def rebuilt_from(self) -> set[str]:
        """The reports this ledger was rebuilt from (names, or paths outside the folder)."""
        # A ledger from before rebuilds existed, opened read-only, has no `rebuilt_from`.
        with contextlib.suppress(sqlite3.OperationalError):
            return {r[0] for r in self._conn.execute("SELECT report FROM rebuilt_from")}
        return set()

    def verified_through(self) -> int:
        """Runs up to this id were checked against their reports when a later run started."""
        value = _meta(self._conn, "verified_through_run")
        return int(value) if value and value.isdigit() else 0

    def mark_verified(self) -> None:
        """Every run so far matches its report: later starts need not read those again. A
        later loss of the WAL that keeps this mark keeps everything committed before it."""
        try:
            self._conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) "
                "SELECT 'verified_through_run', COALESCE(MAX(id), 0) FROM runs"
            )
        except sqlite3.Error as exc:
            raise self._write_error(exc) from None

    def _is_orphan(self, called_to: str) -> bool:
        found = self._conn.execute("SELECT 1 FROM sending WHERE called_to = ?", (called_to,))
        return found.fetchone() is not None

    def start_run(self, sheet: str, report: str) -> int:
        try:
            cur = self._conn.execute(
                "INSERT INTO runs (started_at, sheet, report) VALUES (?, ?, ?)",
                # Absolute: the report is found again whatever the next run's cwd.
                (self._now(), sheet, str(Path(report).absolute())),
            )
        except sqlite3.Error as exc:
            raise self._write_error(exc) from None
        self.run_id = cur.lastrowid
        return self.run_id or 0

    def finish_run(self, exit_code: int, close_reason: str, counts: dict[str, int]) -> None:
        """Record how the run ended. After a failed write the run already stops with that
        error, so this records nothing more rather than raising it a second time."""
        batch, self._pending = self._pending, []
        self._commit(batch)
        if self._error is not None:
            return
        try:
            self._conn.execute(
                "UPDATE runs SET finished_at = ?, exit_code = ?, close_reason = ?, counts = ? "
                "WHERE id = ?",
                (self._now(), exit_code, close_reason, json.dumps(counts), self.run_id),
            )
        except sqlite3.Error as exc:
            raise self._write_error(exc) from None

    def use_book(self, book: ContactBook, campaign: str, limits: Limits | None) -> None:
        """Record this run's claims in the folder's contact counts, refusing those over
        `limits` (checked and recorded in one transaction with every other campaign's)."""
        self._book, self._book_limits = book, limits
        self._book_names = (campaign, f"{self.ledger_id}:{self.run_id}")

    async def claim(self, claim: Claim) -> str | None:
        """Record `sending` and wait until it is committed: only then may the request leave.
        A reason instead when a contact limit refuses the call (nothing is then recorded)."""
        self._check()
        self._pending.append(claim)
        await self._schedule_flush()
        return self._refused.pop(claim.called_to, None)

    def release(self, called_to: str) -> None:
        """A claimed call certainly not placed: it no longer counts against a limit."""
        if self._book is not None:
            self._book.release([called_to], *self._book_names)

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
        # On the loop's own thread: a commit is short, and a hand-off to a writer thread
        # cost far more than it saved (each batch waited for the GIL; see bench/).
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

    def _commit(self, batch: list[Entry | Claim]) -> None:
        """One transaction for the batch; a failure is kept and raised on every later use."""
        if not batch or self._error is not None:
            return
        run_id, now = self.run_id, self._now()
        # Grouped by statement for executemany; safe because a batch holds at most one entry
        # per person (a claim is committed before its request leaves, the outcome comes after).
        claimed = [c for c in batch if isinstance(c, Claim)]
        book_error: LedgerError | None = None
        if self._book is not None:  # accepted by the upstream: placed, committed or not
            self._placed += [
                e.called_to for e in batch if isinstance(e, Entry) and e.status is Status.TRIGGERED
            ]
        if claimed and self._book is not None:
            try:
                refused = self._book.reserve(
                    [c.called_to for c in claimed],
                    self._book_names[0],
                    self._book_names[1],
                    self.clock(),
                    self._book_limits,
                    placed=self._placed,
                )
                self._placed = []
            except LedgerError as exc:
                # No claim of this batch may leave, but the outcomes of calls already placed
                # are still recorded: the run stops with this error after the commit.
                book_error = exc
                claimed = []
                refused = {}
            if refused:
                self._refused.update(refused)
                claimed = [c for c in claimed if c.called_to not in refused]
        claims = [(c.called_to, c.row, run_id, now) for c in claimed]
        outcomes = [e for e in batch if isinstance(e, Entry)]
        conn = self._conn
        try:
            with transaction(conn):
                conn.executemany(_CLAIM, claims)
                conn.executemany(
                    _UPSERT, [e.params(run_id, now) for e in outcomes if e.status not in _NOT_SENT]
                )
                unsent = [e for e in outcomes if e.status in _NOT_SENT]
                conn.executemany(_UPSERT_UNLESS_CALLED, [e.params(run_id, now) for e in unsent])
                conn.executemany(_MARK_RUN, [(run_id, e.called_to) for e in unsent])
                conn.executemany(_UNCLAIM, [(e.called_to,) for e in outcomes])
                conn.executemany(
                    _DIAL,
                    [_dial_params(e, run_id, now) for e in outcomes if e.status in _DIALLED],
                )
        except sqlite3.Error as exc:
            self._error = self._write_error(exc)
            return
        if book_error is not None:
            self._error = book_error
            return
        if claimed and self._journal is not None:
            # After the commit and before any of these requests leaves (their claims await
            # this flush): see `dialer.ledger.claims` for why this order.
            try:
                self._journal.append(claimed, now)
            except OSError as exc:
                self._error = LedgerError(
                    f"{self._journal.path}: cannot write the claims journal: {exc.strerror}"
                )
                return
        if self._placed and self._book is not None:  # no claims carried them
            self._book.placed(self._placed, *self._book_names)
            self._placed = []

    def _copy_into(self, conn: sqlite3.Connection) -> int:
        """Every call, claim and run of this ledger into `conn` (a rebuild); people copied."""
        tables = ["calls", "sending", "runs"]
        if self.has_dials:
            tables.append("dials")
        for table in tables:
            rows = self._conn.execute(f"SELECT * FROM {table}")  # fixed table names
            columns = [d[0] for d in rows.description]
            marks = ", ".join("?" * len(columns))
            conn.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                rows,
            )
        return self._conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0]

    # ---- test calls ("call me first" on the page, SPEC 11) ----

    def start_test_call(self, called_to: str, row: int, sheet: str, identifiers: str) -> int:
        """Record a test call as `sending` before its request leaves; its id. Test calls live
        in their own table: never `calls` or `dials`, so no limit, redial or report sees them."""
        try:
            with transaction(self._conn):
                cur = self._conn.execute(
                    "INSERT INTO test_calls (placed_at, called_to, row, sheet, "
                    "custom_identifiers, status) VALUES (?, ?, ?, ?, ?, ?)",
                    (self._now(), called_to, row, sheet, identifiers, CLAIM),
                )
        except sqlite3.Error as exc:
            raise self._write_error(exc) from None
        return cur.lastrowid or 0

    def finish_test_call(
        self, test_id: int, status: str, reason: str, http_status: int | None, call_id: str
    ) -> None:
        try:
            with transaction(self._conn):
                self._conn.execute(
                    "UPDATE test_calls SET status = ?, reason = ?, http_status = ?, call_id = ? "
                    "WHERE id = ?",
                    (status, reason, http_status, call_id, test_id),
                )
        except sqlite3.Error as exc:
            raise self._write_error(exc) from None

    def test_calls_since(self, since: str) -> tuple[int, str | None]:
        """How many test calls were recorded at or after `since` (a stamp), whatever came of
        them (a cap counts attempts), and when the oldest of them was."""
        count, oldest = self._conn.execute(
            "SELECT COUNT(*), MIN(placed_at) FROM test_calls WHERE placed_at >= ?", (since,)
        ).fetchone()
        return count, oldest

    def recent_test_calls(self, count: int) -> list[tuple[str, str, str, str]]:
        """The newest `count` test calls, newest first: (placed_at, called_to, status, reason)."""
        return self._conn.execute(
            "SELECT placed_at, called_to, status, reason FROM test_calls ORDER BY id DESC LIMIT ?",
            (count,),
        ).fetchall()

    # ---- reading, for `dialer status` ----

    def counts(self) -> dict[str, int]:
        counts = dict(self._conn.execute("SELECT status, COUNT(*) FROM calls GROUP BY status"))
        sending = self._conn.execute("SELECT COUNT(*) FROM sending").fetchone()[0]
        if sending:
            counts[CLAIM] = sending
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

    def fact_groups(self) -> list[tuple[Facts, int]]:
        """How many people share each kind of record (reasons left out), for `dialer status`
        to ask the gate which of them the next run sends again."""
        groups = [
            (Facts(Status(status), "", bool(retryable)), n)
            for status, retryable, n in self._conn.execute(
                "SELECT status, retryable, COUNT(*) FROM calls "
                "WHERE called_to NOT IN (SELECT called_to FROM sending) GROUP BY status, retryable"
            )
        ]
        # A claim left is what the run adopts it as: `triggered` when its run's report says
        # so (`use_reported`), else `unknown`.
        claims = [r[0] for r in self._conn.execute("SELECT called_to FROM sending")]
        reported = sum(1 for phone in claims if phone in self._reported)
        for facts, n in (
            (Facts(Status.TRIGGERED, ""), reported),
            (Facts(Status.UNKNOWN, ORPHAN_REASON), len(claims) - reported),
        ):
            if n:
                groups.append((facts, n))
        return groups


@dataclass(frozen=True, slots=True)
class Rebuilt:
    kept: int  # people copied from the old ledger
    from_reports: int  # people only the reports knew, or whose newest record is a report's
    dials: int = 0  # calls restored from the reports that the old ledger did not hold


def write_rebuilt(
    path: Path,
    campaign: str,
    *,
    old: Ledger | None,
    entries: list[Entry],
    reports: dict[str, int],
    dials: Sequence[PastDial] = (),
    clock: Clock = system_clock,
) -> Rebuilt:
    """A new ledger at `path` (a fresh file): the old ledger's rows if it can be read, then
    every entry whose person it does not hold as `triggered` or `unknown`, or holds by an
    older record than the entry's (`Entry.at`: the newest evidence wins, and a record never
    makes `dials` forget a call), every call of `dials` it does not hold (one row per call,
    in the order placed: the redial history whole), and the names of the reports read, so
    the loss check accounts for them. Synced to disk before returning."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = FULL")
        now = stamp(clock())
        with transaction(conn):
            _create_schema(conn, campaign, now)
            kept = old._copy_into(conn) if old is not None else 0
            before = conn.total_changes
            conn.executemany(_UPSERT_UNLESS_NEWER, [e.params(None, now) for e in entries])
            from_reports = conn.total_changes - before
            before = conn.total_changes
            conn.executemany(_DIAL_ONCE, [d.params() for d in dials])
            restored = conn.total_changes - before
            if restored:
                _order_dials(conn)
            conn.executemany(
                "INSERT OR REPLACE INTO rebuilt_from (report, people, read_at) VALUES (?, ?, ?)",
                [(name, people, now) for name, people in reports.items()],
            )
            conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [
                    ("rebuilt_at", now),
                    ("rebuilt_from_ledger", (old.ledger_id or "") if old is not None else ""),
                ],
            )
    except sqlite3.Error as exc:
        raise cannot_write(path, exc) from None
    finally:
        conn.close()
    with open(path, "rb") as f:
        os.fsync(f.fileno())
    return Rebuilt(kept, from_reports, restored)


def _order_dials(conn: sqlite3.Connection) -> None:
    """Renumber `dials` in the order the calls were placed: a person's last call is their
    dial with the highest id, and restored calls may be older than those copied."""
    columns = ", ".join(r[1] for r in conn.execute("PRAGMA table_info(dials)") if r[1] != "id")
    conn.execute("CREATE TEMP TABLE placed AS SELECT * FROM dials")
    conn.execute("DELETE FROM dials")
    conn.execute(
        f"INSERT INTO dials ({columns}) SELECT {columns} FROM temp.placed ORDER BY placed_at, id"
    )
    conn.execute("DROP TABLE temp.placed")
