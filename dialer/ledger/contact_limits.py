"""Calls to one person across every campaign of a `state/` folder (SPEC 10, `[limits]`).

    book = ContactBook.open(state_folder, now, create=campaign.limits is not None)
    book.recent("+917359043943", now)                          # Recent(day=1, week=2)
    book.reserve(["+917359043943"], "spring", "run-key", now, rule)   # {number: Refusal}

`state/contacts.sqlite` holds one line per call any campaign of the folder is about to place.
A campaign with `[limits]` checks and records its claims in one `BEGIN IMMEDIATE` transaction
(`reserve`), so two campaigns running at once in two processes cannot both pass a limit:
SQLite serialises the two transactions and the second sees the first one's line. The book
only counts: whether a count is over a limit is the caller's rule (`OverLimit`, the engine's
`limit_rule`), judged inside that transaction.

The file is created by the first campaign that has `[limits]`, and then filled from every
ledger in the folder (its calls of the last 7 days, its claims in flight, its `unknown`
people): campaigns in a folder that never uses limits pay nothing. A dry run before the file
exists fills the same counts in memory, so it shows what the run will do. Once it exists,
every campaign's claims are recorded in it, limits or not. A line is removed again only
when the call was certainly not placed (`release`); a process killed between this commit and
the ledger's keeps a line for a call never made, which can only hold a person back, never
call them more.

The book summarises the ledgers, so it is checked against them as a ledger is checked
against its reports (SPEC 6.3): a lost `contacts.sqlite-wal` rolls it back to its last
checkpoint, and the calls made since would no longer count. Every open compares each ledger
of the folder with what the book has verified of it (`ledger_marks`: the ledger's files'
size and time, its newest `dials` id). An unchanged ledger costs one `stat`; a changed one is
read from its high-water mark on, and each person it shows must have at least as many lines
here as the ledger holds calls of the last 7 days. If anyone is short, the book is topped up
from every ledger of the folder (read-only) before anyone is judged: it is never trusted
while it could be behind. The marks live in the book itself, so they are lost with the lines
they vouch for. A dry run makes the same check and tops up a copy in memory.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dialer.core.clock import stamp
from dialer.core.statuses import KIND_RULES, LedgerError, Status
from dialer.ledger.claims import claims_path, read_claims
from dialer.ledger.facts import NONE_RECENT, Recent, Refusal
from dialer.ledger.optouts import opted_out_refusals
from dialer.ledger.shared_file import SHARED_FILE_NAMES, book_path, connect_shared
from dialer.ledger.sqlite import readonly_uri, transaction

DAY = timedelta(days=1)
WEEK = timedelta(days=7)
# The caller's limits rule: why one more call to a person with these recent calls would break
# a limit (the row's reason), or None.
OverLimit = Callable[[Recent], "str | None"]

# Lines older than the longest limit's window are never read again.
_KEEP_FOR = WEEK + DAY
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS contact_calls (
    id INTEGER PRIMARY KEY,
    called_to TEXT NOT NULL,
    campaign TEXT NOT NULL,
    run TEXT NOT NULL,
    at TEXT NOT NULL,
    placed INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS contact_calls_by_number ON contact_calls (called_to, at);
CREATE TABLE IF NOT EXISTS ledger_marks (
    ledger TEXT PRIMARY KEY,
    files TEXT NOT NULL,
    dial_mark TEXT NOT NULL,
    checked_at TEXT NOT NULL
);
"""
# Above this many people, one grouped read of the book beats a lookup each.
_ONE_BY_ONE = 2000
_MARK = (
    "INSERT OR REPLACE INTO ledger_marks (ledger, files, dial_mark, checked_at) VALUES (?, ?, ?, ?)"
)
_RECENT = (
    "SELECT COUNT(*) FILTER (WHERE at >= ?2), COUNT(*), "
    "COUNT(*) FILTER (WHERE at >= ?2 AND NOT placed), COUNT(*) FILTER (WHERE NOT placed) "
    "FROM contact_calls WHERE called_to = ?1 AND at >= ?3"
)
_PLACED = (
    "UPDATE contact_calls SET placed = 1 WHERE id = (SELECT MAX(id) FROM contact_calls "
    "WHERE called_to = ? AND campaign = ? AND run = ?)"
)
_ADD = "INSERT INTO contact_calls (called_to, campaign, run, at, placed) VALUES (?, ?, ?, ?, ?)"
# A ledger's test calls that may have rung: all but those the upstream certainly refused
# before placing anything (released from the book at once, as a run's are).
_NO_CALL = ", ".join(f"'{k.value}'" for k, rule in KIND_RULES.items() if rule.placed_no_call)
_TEST_CALLS = (
    "SELECT called_to, placed_at, status = 'triggered' FROM test_calls "
    f"WHERE placed_at >= :since AND status NOT IN ({_NO_CALL})"
)


class ContactBook:
    """The shared count of calls per person; one connection per run or dry run."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn
        # Calls the ledgers show that a book checked before lacked (a lost -wal): restored.
        self.restored = 0

    @classmethod
    def open(
        cls, state: Path, now: datetime, *, create: bool, readonly: bool = False
    ) -> ContactBook | None:
        """The folder's book, checked against every ledger here and topped up from them if
        it is behind; None when there is none and `create` is False. Read-only: what the
        book would hold after a run opened it, writing nothing (in memory when it differs)."""
        path = book_path(state)
        if readonly:
            return cls._for_reading(state, now, path)
        if not path.exists() and not create:
            return None
        try:
            conn = connect_shared(state)
            with transaction(conn):
                _make_schema(conn)
        except sqlite3.Error as exc:
            raise LedgerError(f"{path}: cannot open the shared contact counts: {exc}") from None
        book = cls(path, conn)
        try:
            # One write transaction: no claim of another campaign interleaves with a top-up.
            with transaction(conn):
                # No marks (a new book, or one from before them): nothing verified, top up.
                marked = (
                    "ledger_marks" in _tables(conn)
                    and conn.execute("SELECT 1 FROM ledger_marks LIMIT 1").fetchone()
                )
                if not marked:
                    book._top_up(state, now, keep_marks=True)
                elif not book._holds_every_ledger(state, now, keep_marks=True):
                    book.restored = book._top_up(state, now, keep_marks=True)
        except sqlite3.Error as exc:
            book.close()
            raise LedgerError(
                f"{path}: cannot check the shared contact counts against the ledgers: {exc}"
            ) from None
        book.prune(now)
        return book

    @classmethod
    def _for_reading(cls, state: Path, now: datetime, path: Path) -> ContactBook:
        """For a dry run: the file itself when it holds every ledger's calls, else a copy
        in memory topped up as a run would (none, or no tables: filled from the ledgers)."""
        disk: sqlite3.Connection | None = None
        try:
            if path.exists():
                disk = sqlite3.connect(readonly_uri(path), uri=True, isolation_level=None)
                disk.execute("PRAGMA busy_timeout = 5000")
                if "contact_calls" not in _tables(disk):
                    # Made by a run killed before its schema was kept: the next run fills it.
                    disk.close()
                    disk = None
            # A book from before `placed`: read through a copy that has the column.
            old = disk is not None and "placed" not in _columns(disk, "contact_calls")
            behind = disk is not None and not cls(path, disk)._holds_every_ledger(state, now)
            if disk is not None and not behind and not old:
                return cls(path, disk)
            memory = sqlite3.connect(":memory:", isolation_level=None)
            if disk is not None:
                disk.backup(memory)
                disk.close()
            _make_schema(memory)
            book = cls(path, memory)
            added = book._top_up(state, now)
            book.restored = added if behind else 0
            return book
        except sqlite3.Error as exc:
            if disk is not None:
                disk.close()
            raise LedgerError(f"{path}: cannot read the shared contact counts: {exc}") from None

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ContactBook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _holds_every_ledger(self, state: Path, now: datetime, *, keep_marks: bool = False) -> bool:
        """Whether every call of the last 7 days that a ledger here shows has its line.
        Ledgers unchanged since they were last verified are not read; a changed one is read
        from its newest verified dial on. With `keep_marks`, what was verified is noted."""
        conn = self._conn
        marks: dict[str, tuple[str, str]] = {}
        if "ledger_marks" in _tables(conn):  # a book from before the marks has none
            marks = {
                name: (files, dial_mark)
                for name, files, dial_mark in conn.execute(
                    "SELECT ledger, files, dial_mark FROM ledger_marks"
                )
            }
        verified: list[tuple[str, str, str, str]] = []
        for ledger in _ledgers(state):
            files = _fingerprint(ledger)  # before reading: a later write is read next time
            mark = marks.get(ledger.name)
            if mark is not None and mark[0] == files:
                continue
            calls = _ledger_calls(ledger, now, after=mark[1] if mark else "")
            if calls is None:
                continue
            if self._missing(calls, now):
                return False
            verified.append((ledger.name, files, calls.dial_mark, stamp(now)))
        if keep_marks:
            conn.executemany(_MARK, verified)
        return True

    def _missing(self, calls: LedgerCalls, now: datetime) -> dict[str, int]:
        """{number: how many of the ledger's calls have no line here}."""
        # A line is written just before its call's `placed_at`; lines live a day past a week.
        kept = stamp(now - _KEEP_FOR)
        if len(calls.times) > _ONE_BY_ONE:
            held = dict(
                self._conn.execute(
                    "SELECT called_to, COUNT(*) FROM contact_calls WHERE campaign = ? AND at >= ? "
                    "GROUP BY called_to",
                    (calls.campaign, kept),
                )
            )
        else:
            held = {
                number: self._conn.execute(
                    "SELECT COUNT(*) FROM contact_calls WHERE called_to = ? AND campaign = ? "
                    "AND at >= ?",
                    (number, calls.campaign, kept),
                ).fetchone()[0]
                for number in calls.times
            }
        return {
            number: len(times) - held.get(number, 0)
            for number, times in calls.times.items()
            if held.get(number, 0) < len(times)
        }

    def _top_up(self, state: Path, now: datetime, *, keep_marks: bool = False) -> int:
        """Every ledger read whole (its last 7 days): each call without a line gets one, at
        the ledger's time (the newest when some are there: the stricter guess), placed or a
        maybe as the ledger says (a `dials` row, or a claim or `unknown` person). Never
        removes a line: one more than the ledger shows can only hold a person back. Returns
        how many lines were added."""
        conn, added = self._conn, 0
        for ledger in _ledgers(state):
            files = _fingerprint(ledger)
            calls = _ledger_calls(ledger, now)
            if calls is None:
                continue
            missing = self._missing(calls, now)
            added += sum(missing.values())
            conn.executemany(
                _ADD,
                [
                    (number, calls.campaign, "ledger", at, placed)
                    for number, count in missing.items()
                    for at, placed in sorted(calls.times[number])[-count:]
                ],
            )
            if keep_marks:
                conn.execute(_MARK, (ledger.name, files, calls.dial_mark, stamp(now)))
        return added

    def restored_warning(self) -> str | None:
        """What a run or dry run says when the book was found behind its ledgers."""
        if not self.restored:
            return None
        return (
            f"{self.path}: the shared contact counts were behind the folder's ledgers (its "
            f"-wal lost?): {self.restored} call(s) restored from the ledgers before any limit "
            "was checked"
        )

    def vouch_for(self, ledger: Path, now: datetime) -> None:
        """After a run that recorded every claim here first: its ledger holds no call this
        book lacks, so the next open need not read it (best effort: else it is read)."""
        files = _fingerprint(ledger)
        with contextlib.suppress(sqlite3.Error):
            conn = sqlite3.connect(readonly_uri(ledger), uri=True)
            try:
                mark = _dial_mark(conn, "dials" in _tables(conn))
            finally:
                conn.close()
            with transaction(self._conn):
                self._conn.execute(_MARK, (ledger.name, files, mark, stamp(now)))

    def recent(self, called_to: str, now: datetime) -> Recent:
        try:
            found = self._conn.execute(
                _RECENT, (called_to, stamp(now - DAY), stamp(now - WEEK))
            ).fetchone()
        except sqlite3.Error as exc:
            raise LedgerError(
                f"{self.path}: cannot read the shared contact counts: {exc}"
            ) from None
        return Recent(*found) if found and found[1] else NONE_RECENT

    def reserve(
        self,
        numbers: list[str],
        campaign: str,
        run: str,
        now: datetime,
        over_limit: OverLimit | None,
        *,
        placed: Iterable[str] = (),
    ) -> dict[str, Refusal]:
        """Record these calls about to leave, except those the opt-out register holds and
        those `over_limit` refuses: {number: refusal}. Checked and recorded in one write
        transaction, so no other process interleaves (an opt-out committed before it is
        seen); the run's calls the upstream accepted since (`placed`) are marked in it too."""
        at, day, week = stamp(now), stamp(now - DAY), stamp(now - WEEK)
        conn = self._conn
        try:
            with transaction(conn):
                conn.executemany(_PLACED, [(n, campaign, run) for n in placed])
                refused = opted_out_refusals(conn, numbers)
                if over_limit is not None:
                    for number in numbers:
                        if number in refused:
                            continue
                        found = conn.execute(_RECENT, (number, day, week)).fetchone()
                        why = over_limit(Recent(*found))
                        if why is not None:
                            refused[number] = Refusal(Status.LIMITED, why)
                # A maybe until the ledger records the call placed (`placed`).
                conn.executemany(
                    _ADD, [(n, campaign, run, at, 0) for n in numbers if n not in refused]
                )
        except sqlite3.Error as exc:
            raise LedgerError(
                f"{self.path}: cannot write the shared contact counts: {exc}"
            ) from None
        return refused

    def release(self, numbers: Iterable[str], campaign: str, run: str) -> None:
        """Calls certainly not placed (a 402, retries used up, a stop before sending)."""
        try:
            with transaction(self._conn):
                self._conn.executemany(
                    "DELETE FROM contact_calls WHERE id = (SELECT MAX(id) FROM contact_calls "
                    "WHERE called_to = ? AND campaign = ? AND run = ?)",
                    [(n, campaign, run) for n in numbers],
                )
        except sqlite3.Error as exc:
            raise LedgerError(
                f"{self.path}: cannot write the shared contact counts: {exc}"
            ) from None

    def placed(self, numbers: Iterable[str], campaign: str, run: str) -> None:
        """Calls the ledger recorded placed, in a batch without claims to carry the mark: no
        longer a maybe in a limit's reason. Only the wording depends on it (a maybe counts as a
        call), so it is written without waiting for the disk, best effort: a kill just before
        it leaves these few saying "maybe", the more cautious word."""
        conn = self._conn
        with contextlib.suppress(sqlite3.Error):
            conn.execute("PRAGMA synchronous = NORMAL")
            try:
                with transaction(conn):
                    conn.executemany(_PLACED, [(n, campaign, run) for n in numbers])
            finally:
                conn.execute("PRAGMA synchronous = FULL")

    def prune(self, now: datetime) -> None:
        """Forget lines no limit can count any more (best effort)."""
        with contextlib.suppress(sqlite3.Error), transaction(self._conn):
            self._conn.execute("DELETE FROM contact_calls WHERE at < ?", (stamp(now - _KEEP_FOR),))


@dataclass(frozen=True, slots=True)
class LedgerCalls:
    """One ledger's calls of the last 7 days per person (dials, claims in flight, people
    `unknown`), the campaign that made them, and its newest `dials` id."""

    campaign: str
    times: dict[str, list[tuple[str, bool]]]  # per number: (when, placed: else a maybe)
    dial_mark: str  # the ledger's identity and newest dials id: `ledger_id#id`


def _ledgers(state: Path) -> list[Path]:
    return [p for p in sorted(state.glob("*.sqlite")) if p.name not in SHARED_FILE_NAMES]


def _make_schema(conn: sqlite3.Connection) -> None:
    for statement in filter(str.strip, _SCHEMA.split(";")):
        conn.execute(statement)
    if "placed" not in _columns(conn, "contact_calls"):
        # Lines of a book from before: calls it counted as made, as it always said.
        conn.execute("ALTER TABLE contact_calls ADD COLUMN placed INTEGER NOT NULL DEFAULT 1")


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}  # fixed table names


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _fingerprint(ledger: Path) -> str:
    """The ledger's file, its -wal and its claims journal, size and time: any commit
    changes one of them, and so does the loss of a -wal."""
    parts = []
    for path in (ledger, ledger.with_name(ledger.name + "-wal"), claims_path(ledger)):
        try:
            info = path.stat()
        except OSError:
            info = None
        # An empty -wal holds nothing (a reader may leave one): the same as none.
        parts.append(f"{info.st_size}:{info.st_mtime_ns}" if info and info.st_size else "-")
    return " ".join(parts)


def _dial_mark(conn: sqlite3.Connection, has_dials: bool) -> str:
    """`ledger_id#newest dials id`: where a later check of this ledger starts reading."""
    identity = conn.execute("SELECT value FROM meta WHERE key = 'ledger_id'").fetchone()
    top = (conn.execute("SELECT MAX(id) FROM dials").fetchone()[0] or 0) if has_dials else 0
    return f"{identity[0] if identity else ''}#{top}"


def _ledger_calls(ledger: Path, now: datetime, after: str = "") -> LedgerCalls | None:
    """A ledger's calls since a week ago, read without writing, for everyone it called after
    the dial of mark `after` ("", or another ledger's: everyone): its dials, its claims in
    flight (a run going now), and people recorded `unknown` (maybe called); a ledger from
    before `dials` gives its
    `triggered` people at their last record's time. Its claims journal counts too: a run
    killed and then its ledger's -wal lost leaves its calls there alone (at the journal's
    time). None if neither can be read: a file here that is no ledger holds no calls."""
    journal: Counter[str] = Counter()
    journal_at = ""
    path = claims_path(ledger)
    with contextlib.suppress(OSError):
        journal_at = stamp(datetime.fromtimestamp(path.stat().st_mtime, UTC))
        if journal_at >= stamp(now - WEEK):
            journal = Counter(c.called_to for c in read_claims(path))
    calls = _ledger_rows(ledger, now, after, set(journal))
    if not journal:
        return calls
    if calls is None:
        calls = LedgerCalls(ledger.stem, {}, "")
    # One claim is one call, in the ledger or not: the larger count of the two, never both.
    for number, count in journal.items():
        times = calls.times.setdefault(number, [])
        times += [(journal_at, False)] * (count - len(times))
    return calls


def _ledger_rows(ledger: Path, now: datetime, after: str, also: set[str]) -> LedgerCalls | None:
    """`_ledger_calls` from the ledger alone; `also`: people to read in full in any case."""
    since = stamp(now - WEEK)
    try:
        conn = sqlite3.connect(readonly_uri(ledger), uri=True)
    except sqlite3.Error:
        return None
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        campaign = conn.execute("SELECT value FROM meta WHERE key = 'campaign'").fetchone()
        has_dials = "dials" in _tables(conn)
        called = "('unknown')" if has_dials else "('unknown', 'triggered')"
        dial_mark = _dial_mark(conn, has_dials)
        top = int(dial_mark.rpartition("#")[2])
        # A mark of another ledger (new, rebuilt: its own id, its ids begun again) is none.
        mark_id, _, mark_dial = after.rpartition("#")
        same = bool(after) and mark_id == dial_mark.rpartition("#")[0] and mark_dial.isdigit()
        after_dial = int(mark_dial) if same and int(mark_dial) <= top else 0
        # (number, when, placed): a dial was placed; a claim in flight or an `unknown`
        # person is a maybe (a ledger from before `dials`: its `triggered` people were placed).
        queries = [
            "SELECT called_to, updated_at, status = 'triggered' FROM calls "
            f"WHERE status IN {called} AND updated_at >= :since",
            "SELECT called_to, started_at, 0 FROM sending WHERE 1",
        ]
        if "test_calls" in _tables(conn):  # "call me first" on the page rings a person too
            queries.append(_TEST_CALLS)
        few = len(queries)  # small tables, read whole; `dials` is read from its mark on
        if has_dials:
            queries.append("SELECT called_to, placed_at, 1 FROM dials WHERE placed_at >= :since")
        times: dict[str, list[tuple[str, bool]]] = {}
        if after_dial == 0:
            for sql in queries:
                for number, at, placed in conn.execute(sql, {"since": since}):
                    times.setdefault(number, []).append((at, bool(placed)))
        else:
            # Who could be new since the mark; then each of them in full, by index.
            new = set(also)
            new.update(
                r[0]
                for r in conn.execute("SELECT called_to FROM dials WHERE id > ?", (after_dial,))
            )
            for sql in queries[:few]:
                new.update(r[0] for r in conn.execute(sql, {"since": since}))
            for number in new:
                args = {"since": since, "number": number}
                found = [
                    (at, bool(placed))
                    for sql in queries
                    for _, at, placed in conn.execute(sql + " AND called_to = :number", args)
                ]
                if found:
                    times[number] = found
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    name = campaign[0] if campaign else ledger.stem
    return LedgerCalls(name, times, dial_mark)
