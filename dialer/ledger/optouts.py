"""The opt-out register: people who said "don't call me again", held for every campaign of a
`state/` folder, whether or not it has `[limits]`.

    with Register.open(state) as register:
        register.add([Ask("+15125550100", Source.COMMAND, "alice@host1", "by email")], now)
        register.entries(["+15125550100", "+917359043943"])      # {number: OptOut}
    entries_in(book_connection, numbers)     # inside another transaction on the same file

It lives in `state/contacts.sqlite`, beside the shared contact counts
(`ledger.contact_limits`), in two tables of its own:

- `optouts`: one current entry per number (E.164): since when, from which source, who, why,
  the campaign and call it was heard on, and the evidence (numbers in it masked).
- `optout_history`: every change, `added` or `removed`, with its time, source, who, reason and
  evidence. Append-only: triggers refuse every UPDATE and DELETE, whatever code asks.

Adding is idempotent: a number already opted out keeps its entry (the day the person first
asked is what counts) and nothing is written. An opt-out heard on a call is recorded once per
call: a sync that reads the same call again after a person removed the entry does not put it
back. Removing needs a reason and is kept in the history. Writes are one `BEGIN IMMEDIATE`
transaction each (an import is whole or not at all), on a connection with the same habits as
the contact counts: WAL, `synchronous = FULL`, a busy timeout. After each write the WAL is
checkpointed (best effort) so the main file alone holds the register: the contact counts can
be rebuilt from the ledgers, the register cannot.

Reading never creates the file: a folder where nobody opted out stays without one.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import re
import socket
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from dialer.core.cells import clean_cell
from dialer.core.clock import stamp
from dialer.core.masking import mask_phone, mask_text
from dialer.core.statuses import DialerError, LedgerError, Status, UsageError
from dialer.ledger.facts import Refusal
from dialer.ledger.shared_file import book_path, connect_shared, read_shared
from dialer.ledger.sqlite import append_only, transaction

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
# Longest texts kept: a reason is a sentence, the evidence a matched phrase and 200
# characters around it (with room for the campaign and call it names), who is user@host.
MAX_REASON_CHARS = 500
MAX_EVIDENCE_CHARS = 1_000
MAX_WHO_CHARS = 200
# How much of a reason a row's reason (a report cell, a log line) repeats.
SHOWN_REASON_CHARS = 80

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS optouts (
        called_to TEXT PRIMARY KEY,
        since TEXT NOT NULL,
        source TEXT NOT NULL,
        who TEXT NOT NULL,
        reason TEXT NOT NULL,
        campaign TEXT NOT NULL DEFAULT '',
        call_id TEXT NOT NULL DEFAULT '',
        evidence TEXT NOT NULL DEFAULT ''
    )""",
    "CREATE INDEX IF NOT EXISTS optouts_by_since ON optouts (since)",
    """CREATE TABLE IF NOT EXISTS optout_history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        action TEXT NOT NULL CHECK (action IN ('added', 'removed')),
        called_to TEXT NOT NULL,
        source TEXT NOT NULL,
        who TEXT NOT NULL,
        reason TEXT NOT NULL,
        campaign TEXT NOT NULL DEFAULT '',
        call_id TEXT NOT NULL DEFAULT '',
        evidence TEXT NOT NULL DEFAULT ''
    )""",
    "CREATE INDEX IF NOT EXISTS optout_history_by_number ON optout_history (called_to, call_id)",
    *append_only("optout_history", "optout_history_no_", "the opt-out history"),
)
_ENTRY_COLUMNS = "called_to, since, source, who, reason, campaign, call_id, evidence"
_CHANGE_COLUMNS = "id, at, action, called_to, source, who, reason, campaign, call_id, evidence"
_ADD_ENTRY = (
    f"INSERT INTO optouts ({_ENTRY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (called_to) DO NOTHING"
)
_ADD_CHANGE = (
    f"INSERT INTO optout_history ({_CHANGE_COLUMNS.removeprefix('id, ')}) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_HEARD_ON = (
    "SELECT 1 FROM optout_history WHERE called_to = ? AND call_id = ? AND action = 'added' LIMIT 1"
)
# Many numbers in one query, whatever their count: a JSON array is one parameter.
_ENTRIES = (
    f"SELECT {_ENTRY_COLUMNS} FROM optouts WHERE called_to IN (SELECT value FROM json_each(?))"
)


class Source(StrEnum):
    """Where an opt-out came from."""

    CALL = "call"  # heard on a call: the call logs' outcome, extraction or transcript
    COMMAND = "command"  # `dialer optout add` / `remove`
    IMPORT = "import"  # `dialer optout import` of a sheet
    PAGE = "page"  # the web page's register


class Action(StrEnum):
    ADDED = "added"
    REMOVED = "removed"


@dataclass(frozen=True, slots=True)
class OptOut:
    """A number's current entry: it is not called, by any campaign of the folder."""

    called_to: str
    since: str  # stamp(): when the person asked (a call's time), else when it was recorded
    source: str
    who: str
    reason: str
    campaign: str = ""
    call_id: str = ""
    evidence: str = ""

    def row_reason(self) -> str:
        """A row's reason in a report, on the page and in a log line: the source and date,
        never the whole number ("asked not to be called, call of 2026-12-04 (spring)")."""
        day = self.since[:10]
        if self.source == Source.CALL:
            return f"asked not to be called, call of {day} ({self.campaign})"
        said = (
            self.reason
            if len(self.reason) <= SHOWN_REASON_CHARS
            else (self.reason[: SHOWN_REASON_CHARS - 3] + "...")
        )
        return f"opted out {day} ({self.source}: {said})"


@dataclass(frozen=True, slots=True)
class Change:
    """One line of a number's history, oldest first."""

    id: int
    at: str
    action: str
    called_to: str
    source: str
    who: str
    reason: str
    campaign: str = ""
    call_id: str = ""
    evidence: str = ""


@dataclass(frozen=True, slots=True)
class Ask:
    """One opt-out to record. `at`: when the person asked (a call's time); None: now."""

    called_to: str
    source: Source
    who: str
    reason: str
    campaign: str = ""
    call_id: str = ""
    evidence: str = ""
    at: datetime | None = None


@dataclass(slots=True)
class Added:
    """What `add` did with each number asked."""

    added: list[str] = field(default_factory=list)  # new entries
    already: list[str] = field(default_factory=list)  # opted out before: left as it was
    heard_before: list[str] = field(default_factory=list)  # this call's opt-out was recorded


class NotOnRegister(DialerError):
    """A removal of a number the register does not hold (exit 2: nothing was changed)."""


def acting_user() -> str:
    """Who is acting, for the history: `user@host` of this process (never a secret)."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name in the environment nor the password file
        user = "unknown"
    return f"{user}@{socket.gethostname() or 'unknown'}"


def _text(value: str, limit: int) -> str:
    """A free text as stored: one line, invisible characters gone, numbers masked, cut."""
    return mask_text(clean_cell(value))[:limit]


def _checked_number(number: str) -> str:
    if not E164.match(number):
        # A defect of the caller: numbers reach the register normalised.
        raise ValueError(f"not an E.164 number: {mask_text(number)!r}")
    return number


def entries_in(conn: sqlite3.Connection, numbers: Iterable[str]) -> dict[str, OptOut]:
    """{number: entry} for those of `numbers` that are opted out, in one query, on any
    connection to the folder's `contacts.sqlite` (inside the claim's own transaction, so a
    number opted out by a commit before the claim is never claimed). A file from before the
    register holds nobody."""
    wanted = list(dict.fromkeys(numbers))
    if not wanted:
        return {}
    try:
        rows = conn.execute(_ENTRIES, (json.dumps(wanted),)).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return {}
        raise
    return {row[0]: OptOut(*row) for row in rows}


def opted_out_refusals(conn: sqlite3.Connection, numbers: Iterable[str]) -> dict[str, Refusal]:
    """`entries_in` as the claim's refusals: `opted_out`, naming the source and date."""
    return {number: _refusal(entry) for number, entry in entries_in(conn, numbers).items()}


def _refusal(entry: OptOut) -> Refusal:
    return Refusal(Status.OPTED_OUT, entry.row_reason())


class Register:
    """The folder's opt-out register on one connection; a context manager."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn

    @classmethod
    def open(cls, state: Path) -> Register:
        """For writing: the file and its tables are made when missing."""
        path = book_path(state)
        try:
            conn = connect_shared(state)
        except (OSError, sqlite3.Error) as exc:
            raise LedgerError(f"{path}: cannot open the opt-out register: {exc}") from None
        try:
            with transaction(conn):
                for statement in _SCHEMA:
                    conn.execute(statement)
        except sqlite3.Error as exc:
            conn.close()
            raise LedgerError(f"{path}: cannot open the opt-out register: {exc}") from None
        return cls(path, conn)

    @classmethod
    def reading(cls, state: Path) -> Register | None:
        """For reading only (a dry run, `check`, `list`); None when the folder has no file
        yet (nobody opted out). Nothing is created or written."""
        path = book_path(state)
        if not path.exists():
            return None
        try:
            conn = read_shared(path)
        except sqlite3.Error as exc:
            raise LedgerError(f"{path}: cannot read the opt-out register: {exc}") from None
        return cls(path, conn)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Register:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        try:
            with transaction(self._conn):
                yield self._conn
        except sqlite3.Error as exc:
            raise LedgerError(f"{self.path}: cannot write the opt-out register: {exc}") from None
        # The register has no other copy: put it in the main file now (best effort; a
        # reader holding the WAL leaves the rest to the next checkpoint).
        with contextlib.suppress(sqlite3.Error):
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def _reading(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        try:
            return self._conn.execute(sql, args).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # a file made by the contact counts alone
                return []
            raise LedgerError(f"{self.path}: cannot read the opt-out register: {exc}") from None
        except sqlite3.Error as exc:
            raise LedgerError(f"{self.path}: cannot read the opt-out register: {exc}") from None

    def add(self, asks: Iterable[Ask], now: datetime) -> Added:
        """Record these opt-outs in one transaction: all of them, or none on an error."""
        done = Added()
        at = stamp(now)
        seen: set[str] = set()
        with self._writing() as conn:
            for ask in asks:
                number = _checked_number(ask.called_to)
                if number in seen:
                    continue
                seen.add(number)
                call_id = _text(ask.call_id, MAX_WHO_CHARS)
                if call_id and conn.execute(_HEARD_ON, (number, call_id)).fetchone():
                    done.heard_before.append(number)
                    continue
                texts = (
                    ask.source.value,
                    _text(ask.who, MAX_WHO_CHARS),
                    _text(ask.reason, MAX_REASON_CHARS),
                    _text(ask.campaign, MAX_WHO_CHARS),
                    call_id,
                    _text(ask.evidence, MAX_EVIDENCE_CHARS),
                )
                since = stamp(ask.at) if ask.at is not None else at
                if conn.execute(_ADD_ENTRY, (number, since, *texts)).rowcount == 0:
                    done.already.append(number)
                    continue
                conn.execute(_ADD_CHANGE, (at, Action.ADDED.value, number, *texts))
                done.added.append(number)
        return done

    def remove(self, number: str, source: Source, who: str, reason: str, now: datetime) -> OptOut:
        """Give a number back to the campaigns: its entry goes, the history keeps why."""
        number = _checked_number(number)
        reason = _text(reason, MAX_REASON_CHARS)
        if not reason:
            raise UsageError("an opt-out is removed only with a reason: who allowed calls again")
        with self._writing() as conn:
            entry = entries_in(conn, [number]).get(number)
            if entry is None:
                raise NotOnRegister(
                    f"{mask_phone(number)} is not on the opt-out register: nothing removed"
                )
            conn.execute("DELETE FROM optouts WHERE called_to = ?", (number,))
            conn.execute(
                _ADD_CHANGE,
                (
                    stamp(now),
                    Action.REMOVED.value,
                    number,
                    source.value,
                    _text(who, MAX_WHO_CHARS),
                    reason,
                    "",
                    "",
                    "",
                ),
            )
        return entry

    def entries(self, numbers: Iterable[str]) -> dict[str, OptOut]:
        """{number: entry} for those of `numbers` opted out: one query for the whole batch."""
        try:
            return entries_in(self._conn, numbers)
        except sqlite3.Error as exc:
            raise LedgerError(f"{self.path}: cannot read the opt-out register: {exc}") from None

    def entry(self, number: str) -> OptOut | None:
        return self.entries([number]).get(number)

    def listed(self, since: datetime | None = None) -> list[OptOut]:
        """Every current entry (opted out at or after `since`), oldest first."""
        where, args = ("WHERE since >= ?", (stamp(since),)) if since else ("", ())
        rows = self._reading(
            f"SELECT {_ENTRY_COLUMNS} FROM optouts {where} ORDER BY since, called_to", args
        )
        return [OptOut(*row) for row in rows]  # type: ignore[arg-type]

    def history(self, number: str) -> list[Change]:
        """Every change of one number, oldest first."""
        rows = self._reading(
            f"SELECT {_CHANGE_COLUMNS} FROM optout_history WHERE called_to = ? ORDER BY id",
            (number,),
        )
        return [Change(*row) for row in rows]  # type: ignore[arg-type]


class Watch:
    """The register as a run or a dry run reads it, many numbers a query: opened when its
    file first appears (a sync or `dialer optout add` may create it mid-run), never created."""

    def __init__(self, state: Path) -> None:
        self._state = state
        self._register: Register | None = None

    def entries(self, numbers: Iterable[str]) -> dict[str, OptOut]:
        if self._register is None:
            self._register = Register.reading(self._state)
            if self._register is None:
                return {}
        return self._register.entries(numbers)

    def refusals(self, numbers: Iterable[str]) -> dict[str, Refusal]:
        """The claims' refusals, as `opted_out_refusals` gives them inside a book's claim."""
        return {number: _refusal(entry) for number, entry in self.entries(numbers).items()}

    def close(self) -> None:
        if self._register is not None:
            self._register.close()
            self._register = None
