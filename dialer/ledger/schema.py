"""The ledger's tables and the SQL that writes them; opening a file as a ledger.

    conn, tables = connect(path, readonly=False, campaign_file=file)  # checks, writes nothing
    prepare(conn, path, campaign, now)                                # a run's first write

One row per person (E.164) per campaign in `calls`, the last outcome; a claim in `sending`
from just before its request leaves until its answer is recorded; one row per call placed in
`dials` (what the call logs are matched against, what they said of it, and the redial
history); the runs; test calls in their own table; the reports a rebuild read. An SQLite
file that is not a ledger, or one a newer dialer made, is refused untouched. Ledgers from
before a column or table are brought up to date here (`create_schema`), inside the caller's
transaction.
"""

from __future__ import annotations

import secrets
import sqlite3
from pathlib import Path

from dialer.core.statuses import LedgerError, Status
from dialer.ledger.sqlite import cannot_write, corrupt, is_environment, readonly_uri, transaction

SCHEMA_VERSION = "1"
SCHEMA = """
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
    maybe INTEGER NOT NULL DEFAULT 0,
    disposition TEXT NOT NULL DEFAULT '',
    sentiment TEXT NOT NULL DEFAULT '',
    json_output TEXT NOT NULL DEFAULT ''
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
# Columns of `dials` later than the table, added to older ledgers: `maybe` (a maybe-call's
# dial), and what the person said (the call logs' `call_outcome`, `call_sentiment` and
# `call_json_output`, SPEC 12).
ADDED_DIAL_COLUMNS = (
    ("maybe", "INTEGER NOT NULL DEFAULT 0"),
    ("disposition", "TEXT NOT NULL DEFAULT ''"),
    ("sentiment", "TEXT NOT NULL DEFAULT ''"),
    ("json_output", "TEXT NOT NULL DEFAULT ''"),
)
# What makes an SQLite file a ledger; `rebuilt_from` came later and is added when missing.
CORE_TABLES = frozenset({"meta", "calls", "sending", "runs"})
# Records of a request that may have placed a call: a "not sent" record never replaces them.
_KEEP = (Status.TRIGGERED.value, Status.UNKNOWN.value)  # plain text, for the SQL below
INSERT_CLAIM = (
    "INSERT OR REPLACE INTO sending (called_to, row, run_id, started_at) VALUES (?, ?, ?, ?)"
)
DELETE_CLAIM = "DELETE FROM sending WHERE called_to = ?"
# A claim answered "not sent" (a 402 on a redial) keeps the person's earlier call, but the
# record names this run: its claims-journal line is accounted for, not taken for a lost -wal.
MARK_RUN = """
UPDATE calls SET run_id = ?1 WHERE called_to = ?2
AND EXISTS (SELECT 1 FROM sending WHERE called_to = ?2 AND run_id = ?1)
"""
UPSERT = """
INSERT INTO calls (called_to, status, reason, retryable, http_status, attempts, call_id,
                   custom_identifiers, row, run_id, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(called_to) DO UPDATE SET
    status = excluded.status, reason = excluded.reason, retryable = excluded.retryable,
    http_status = excluded.http_status, attempts = excluded.attempts, call_id = excluded.call_id,
    custom_identifiers = excluded.custom_identifiers, row = excluded.row,
    run_id = excluded.run_id, updated_at = excluded.updated_at
"""
UPSERT_UNLESS_CALLED = UPSERT + f"WHERE calls.status NOT IN {_KEEP!r}"
# A rebuild's record from a report: it replaces what the old ledger holds when that is no
# call, or older than the report's row (a newer `unknown` is a newer maybe-call: it wins,
# and the calls before it stay in `dials`). A tie keeps the ledger's own record.
UPSERT_UNLESS_NEWER = UPSERT + (
    f"WHERE calls.status NOT IN {_KEEP!r} OR calls.updated_at < excluded.updated_at"
)
# One row per call placed (SPEC 10): what the call logs are matched against, and how many
# times, and when, this campaign called a person (the redial rule). A maybe-call (`unknown`:
# its request left without a usable answer, or a killed run's claim) is one too, `maybe`:
# its log rows are its own, never an earlier call's, and it counts toward `max_calls`.
INSERT_DIAL = (
    "INSERT INTO dials (called_to, custom_identifiers, row, run_id, placed_at, room_name, "
    "participant_identity, maybe) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
# A call already held (the same room, or the same run: one call per person per run) is never
# written twice: adopting a killed run's claim after a rebuild restored its dial from the
# report must not make one call two.
INSERT_DIAL_ONCE = """
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


def meta(conn: sqlite3.Connection, key: str) -> str | None:
    """A value of the ledger's `meta` table (its campaign, identity, marks), or None."""
    found = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return found[0] if found else None


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
# A main file in WAL mode was written by a run (`prepare`): with no tables, its -wal is gone.
BLANK_WAL = "the ledger has no tables though a run used it (its -wal file was lost)"


def blank_reason(path: Path) -> str:
    """Why an SQLite file with no tables holds no ledger: WAL mode means a run wrote it."""
    try:
        with open(path, "rb") as f:
            header = f.read(20)
    except OSError:
        return BLANK
    return BLANK_WAL if header[18:20] == b"\x02\x02" else BLANK


def connect(
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
    if tables and not tables >= CORE_TABLES:
        conn.close()
        shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise LedgerError(
            f"{path}: an SQLite database but not a dialer ledger (its tables: {shown}); "
            "refusing to use it, and it was left untouched: move it out of the way"
        )
    if tables:
        try:
            known_schema(path, meta(conn, "schema_version"))
        except BaseException:
            conn.close()
            raise
    return conn, tables


def known_schema(path: Path, version: str | None) -> None:
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


def prepare(conn: sqlite3.Connection, path: Path, campaign: str, now: str) -> None:
    """WAL, durability, the schema and the ledger's identity; the first write of a run."""
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        # FULL: a committed claim survives a power cut, not only a killed process.
        conn.execute("PRAGMA synchronous = FULL")
        with transaction(conn):
            create_schema(conn, campaign, now)
            conn.execute(_BACKFILL_DIALS)
    except sqlite3.Error as exc:
        raise cannot_write(path, exc) from None


def create_schema(conn: sqlite3.Connection, campaign: str, now: str) -> None:
    """The tables and the ledger's identity, where they are not yet (inside a transaction)."""
    for statement in filter(str.strip, SCHEMA.split(";")):
        conn.execute(statement)
    columns = {r[1] for r in conn.execute("PRAGMA table_info(dials)")}
    for column, kind in ADDED_DIAL_COLUMNS:
        if column not in columns:  # a ledger from before the column
            conn.execute(f"ALTER TABLE dials ADD COLUMN {column} {kind}")  # fixed names
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
