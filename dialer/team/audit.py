"""The audit trail: what people (on the page) and commands (on a terminal, from cron) did to a
project folder, append-only and hash-chained in `state/team.sqlite`.

    trail = AuditTrail(root / "state")
    trail.append(cli_actor(), LAUNCH, "spring-sale", campaign_sha256=hex_, people=120)
    trail.entries(since=a_day, who="alice")    # oldest first
    trail.verify()                             # None when nothing was changed or removed

Each entry carries `previous`, the digest of the entry before it ("" for the first), and
`digest`, the SHA-256 of its own canonical JSON (`seq`, `time`, `who`, `action`, `campaign`,
`details`, `previous`). An entry edited in the file no longer matches its digest; one removed
from the middle leaves the next entry's `previous` pointing at nothing. Removing the last
entry leaves no such trace in the chain, so a second table (`audit_head`) holds the count
and the last digest, written in the same transaction as each entry: a plain DELETE of the
last entry no longer matches it. SQLite triggers refuse UPDATE and DELETE as a first wall;
`verify` does not rely on them. Whoever can write the file can also rewrite the head and
every digest after an edit: `dialer audit verify` prints the last digest so it can be kept
somewhere else and compared.

`append` is the one place that makes details safe: any run of 7 or more digits (a phone
number, written with or without separators) is masked in `who`, `campaign` and every detail,
and a detail named like a secret (a password, a key, a token) is refused. Kept whole, as no
phone number holds a letter: hex digests and ids (8 or more hex characters, one a letter: a
file's sha256, a schedule's id) and a report name's time stamp (20261207T041717.172Z).
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import re
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path

from dialer.core.clock import Clock, system_clock
from dialer.core.masking import mask_phone, mask_text
from dialer.ledger.optouts import acting_user
from dialer.ledger.sqlite import append_only
from dialer.team.store import (
    has_table,
    reading_team,
    team_path,
    team_stamp,
    writing_team,
)

LOGIN = "login"
LOGIN_FAILED = "login_failed"
LOGOUT = "logout"
CAMPAIGN_CREATED = "campaign_created"
CAMPAIGN_EDITED = "campaign_edited"
UPLOAD = "upload"
CHECK = "check"
TEST_CALL = "test_call"
LAUNCH = "launch"
STOP = "stop"
RESUME = "resume"
SCHEDULE_CREATED = "schedule_created"
SCHEDULE_CHANGED = "schedule_changed"
SCHEDULE_FIRED = "schedule_fired"
SCHEDULE_MISSED = "schedule_missed"
SCHEDULE_DELETED = "schedule_deleted"
SYNC = "sync"
DOWNLOAD = "download"
OPTOUT_ADDED = "optout_added"
OPTOUT_REMOVED = "optout_removed"
OPTOUT_IMPORTED = "optout_imported"
PERSON_ADDED = "person_added"
PERSON_REMOVED = "person_removed"
PERSON_ROLE = "person_role"
PERSON_PASSWORD = "person_password"

ACTIONS = (
    LOGIN, LOGIN_FAILED, LOGOUT, CAMPAIGN_CREATED, CAMPAIGN_EDITED, UPLOAD, CHECK, TEST_CALL,
    LAUNCH, STOP, RESUME, SCHEDULE_CREATED, SCHEDULE_CHANGED, SCHEDULE_FIRED, SCHEDULE_MISSED,
    SCHEDULE_DELETED, SYNC, DOWNLOAD, OPTOUT_ADDED, OPTOUT_REMOVED, OPTOUT_IMPORTED,
    PERSON_ADDED, PERSON_REMOVED, PERSON_ROLE, PERSON_PASSWORD,
)  # fmt: skip

# Set (to the person's name) in the environment of a command the page starts for someone
# (a run, a sync): the page writes that entry itself, naming the person, so the command
# writes none of its own.
BY_PAGE_ENV = "DIALER_AUDITED_BY"

_WHAT = "the audit trail"
# A detail's name that says it holds a secret: refused, never stored.
_SECRET_KEY = re.compile(
    r"pass(word|wd|phrase)?|secret|token|api_?key|^key$|_key$|auth|cookie|session|salt|hash",
    re.IGNORECASE,
)
# Kept whole, as no phone number holds a letter: a digest or an id (8+ hex characters, one of
# them a letter: a sha256, a run's or a schedule's id) and a compact UTC time stamp (a report's
# name: 20261207T041717.172Z).
_KEPT = re.compile(r"(?<![0-9A-Za-z])(?:[0-9a-fA-F]{8,}|\d{8}T\d{6}(?:\.\d+)?Z?)(?![0-9A-Za-z])")
_LONG_DIGITS = re.compile(r"\+?\d{7,}")
# A whole number at or above this has 7 digits: masked like a phone number.
_LONG_NUMBER = 10**6

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS audit (
        seq INTEGER PRIMARY KEY,
        time TEXT NOT NULL,
        who TEXT NOT NULL,
        action TEXT NOT NULL,
        campaign TEXT NOT NULL,
        details TEXT NOT NULL,
        previous TEXT NOT NULL,
        digest TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS audit_time ON audit (time)",
    """CREATE TABLE IF NOT EXISTS audit_head (
        one INTEGER PRIMARY KEY CHECK (one = 1),
        entries INTEGER NOT NULL,
        digest TEXT NOT NULL
    )""",
    # A first wall only: `verify` does not rely on it.
    *append_only("audit", "audit_append_only_", "the audit trail"),
)
_COLUMNS = "seq, time, who, action, campaign, details, previous, digest"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    time: str  # UTC, ISO 8601 to the second, `Z`-suffixed
    who: str
    action: str
    campaign: str
    details: dict[str, object]
    previous: str  # the digest of the entry before ("" for the first)
    digest: str  # SHA-256 hex of this entry's canonical JSON, `previous` included


def cli_actor() -> str:
    """Who a command acts as: `cli:<os user>@<host>` (never a secret)."""
    return f"cli:{acting_user()}"


def entry_digest(
    seq: int,
    time: str,
    who: str,
    action: str,
    campaign: str,
    details: Mapping[str, object],
    previous: str,
) -> str:
    """SHA-256 hex of an entry's canonical JSON (sorted keys, no spaces, UTF-8)."""
    body = {
        "seq": seq,
        "time": time,
        "who": who,
        "action": action,
        "campaign": campaign,
        "details": details,
        "previous": previous,
    }
    return hashlib.sha256(_canonical(body).encode("utf-8")).hexdigest()


def safe_text(text: str) -> str:
    """`text` with every phone-like number masked (7+ digits in a row, or a number written
    with separators); digests, ids and time stamps kept whole."""
    kept, end = [], 0
    for found in _KEPT.finditer(text):
        if found.group(0).isdigit():
            continue  # all digits: a number, not a digest
        kept += [_masked(text[end : found.start()]), found.group(0)]
        end = found.end()
    return "".join([*kept, _masked(text[end:])])


class AuditTrail:
    """The folder's audit trail in `state/team.sqlite`; each call opens and closes its own
    connection (any thread may use one AuditTrail). Reads never make the file."""

    def __init__(self, state: Path, clock: Clock = system_clock) -> None:
        self.path = team_path(state)
        self._state = state
        self._clock = clock

    def append(self, who: str, action: str, campaign: str = "", **details: object) -> AuditEntry:
        """Write the next entry, chained to the last, in one transaction. ValueError for an
        unknown action or a detail named like a secret (a defect of the caller); TeamFileError
        when the file cannot be written."""
        if action not in ACTIONS:
            raise ValueError(f"unknown audit action {action!r}")
        safe = _safe_details(details)
        who, campaign = safe_text(who), safe_text(campaign)
        when = team_stamp(self._clock())
        with self._writing() as conn:
            head = conn.execute("SELECT entries, digest FROM audit_head").fetchone()
            count, previous = head if head else (0, "")
            seq = count + 1
            digest = entry_digest(seq, when, who, action, campaign, safe, previous)
            conn.execute(
                f"INSERT INTO audit ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (seq, when, who, action, campaign, _canonical(safe), previous, digest),
            )
            conn.execute(
                "INSERT OR REPLACE INTO audit_head (one, entries, digest) VALUES (1, ?, ?)",
                (seq, digest),
            )
        return AuditEntry(seq, when, who, action, campaign, safe, previous, digest)

    def entries(
        self,
        since: datetime | None = None,
        who: str | None = None,
        campaign: str | None = None,
        limit: int | None = None,
    ) -> list[AuditEntry]:
        """The entries at or after `since`, by `who`, of `campaign` (each when given), oldest
        first; with `limit`, the newest `limit` of them."""
        where, params = ["1 = 1"], []
        if since is not None:
            when = since if since.tzinfo else since.replace(tzinfo=UTC)
            where.append("time >= ?")
            params.append(when.astimezone(UTC).isoformat(timespec="seconds")[:19])
        if who is not None:
            where.append("who = ?")
            params.append(who)
        if campaign is not None:
            where.append("campaign = ?")
            params.append(campaign)
        sql = f"SELECT {_COLUMNS} FROM audit WHERE {' AND '.join(where)} ORDER BY seq DESC"
        if limit is not None:
            sql += f" LIMIT {max(int(limit), 0)}"
        with self._reading() as conn:
            rows = conn.execute(sql, params).fetchall() if conn is not None else []
        return [_entry(row) for row in reversed(rows)]

    def verify(self) -> AuditEntry | int | None:
        """None when every entry matches its digest and the one before it, and the head
        matches the last. Otherwise the first entry that does not match (an edited entry, or
        the one after a removed entry), or the seq of the first entry missing at the end
        (the last ones removed)."""
        with self._reading() as conn:
            if conn is None:  # no entries table: none written, or it was dropped whole
                return 1 if self.head()[0] else None
            rows = conn.execute(f"SELECT {_COLUMNS} FROM audit ORDER BY seq").fetchall()
            head = _head(conn)
        previous = ""
        entry = None
        for number, row in enumerate(rows, start=1):
            entry = _entry(row)
            if entry.seq != number or entry.previous != previous or not _matches(entry, row):
                return entry
            previous = entry.digest
        count = len(rows)
        if head is None:
            return entry  # entries and no head: the head was removed
        if head[0] > count:
            return count + 1
        if head[0] != count or head[1] != previous:
            return entry
        return None

    def head(self) -> tuple[int, str]:
        """How many entries the head counts and the last digest ((0, "") when none)."""
        with reading_team(self._state, _WHAT, "audit_head") as conn:  # the entries' or not
            found = _head(conn) if conn is not None else None
        return found or (0, "")

    def _writing(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return writing_team(self._state, _WHAT, _SCHEMA)

    def _reading(self) -> contextlib.AbstractContextManager[sqlite3.Connection | None]:
        """A read-only connection, None when there is no file or no audit in it yet."""
        return reading_team(self._state, _WHAT, "audit")


def _head(conn: sqlite3.Connection) -> tuple[int, str] | None:
    """The head's count and last digest; None when it is missing (or was removed)."""
    if not has_table(conn, "audit_head"):
        return None
    found = conn.execute("SELECT entries, digest FROM audit_head").fetchone()
    return (int(found[0]), str(found[1])) if found else None


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _masked(text: str) -> str:
    return _LONG_DIGITS.sub(lambda m: mask_phone(m.group(0)), mask_text(text))


def _safe_details(details: Mapping[str, object]) -> dict[str, object]:
    return {_safe_key(key): _safe_value(value) for key, value in details.items()}


def _safe_key(key: object) -> str:
    name = str(key)
    if _SECRET_KEY.search(name):
        raise ValueError(f"audit detail {name!r} is named like a secret: never recorded")
    return safe_text(name)


def _safe_value(value: object) -> object:
    """A detail as JSON can hold it, numbers masked; anything else as its text."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return str(value)  # made one by the code (a login's client), never typed: kept whole
    if isinstance(value, Enum):
        return safe_text(str(value))
    if isinstance(value, int):
        return value if abs(value) < _LONG_NUMBER else safe_text(str(value))
    if isinstance(value, float):
        text = repr(value)
        return value if safe_text(text) == text else safe_text(text)
    if isinstance(value, Mapping):
        return _safe_details(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [_safe_value(item) for item in items]
    return safe_text(str(value))


def _entry(row: tuple[object, ...]) -> AuditEntry:
    seq, time, who, action, campaign, details, previous, digest = row
    try:
        loaded = json.loads(str(details))
    except ValueError:
        loaded = None
    return AuditEntry(
        int(str(seq)),
        str(time),
        str(who),
        str(action),
        str(campaign),
        loaded if isinstance(loaded, dict) else {"unreadable": safe_text(str(details))[:200]},
        str(previous),
        str(digest),
    )


def _matches(entry: AuditEntry, row: tuple[object, ...]) -> bool:
    """The entry as stored (its details text too) is the one its digest was made of."""
    if _canonical(entry.details) != row[5]:
        return False
    expected = entry_digest(
        entry.seq,
        entry.time,
        entry.who,
        entry.action,
        entry.campaign,
        entry.details,
        entry.previous,
    )
    return expected == entry.digest


# A CSV of the trail (`dialer audit --out`, the page's /audit.csv): one row per entry.
CSV_COLUMNS = ("seq", "time", "who", "action", "campaign", "details", "previous", "digest")


def csv_row(entry: AuditEntry) -> list[object]:
    """An entry as a CSV row of `CSV_COLUMNS`: text cells never run as formulas."""
    from dialer.reports.writer import defuse

    details = json.dumps(entry.details, ensure_ascii=False, sort_keys=True)
    return [
        entry.seq,
        entry.time,
        defuse(entry.who),
        entry.action,
        defuse(entry.campaign),
        defuse(details),
        entry.previous,
        entry.digest,
    ]
