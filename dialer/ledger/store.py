"""A campaign's SQLite ledger: who was called, crash safety, resume (SPEC 6.3).

    ledger = Ledger.open(path, campaign="order-followup")     # takes the run lock
    ledger.facts("+917359043943")                             # what the gate judges
    await ledger.claim(Claim(run_id, "+917359043943", 7))     # durable before the POST
    ledger.record(Entry("+917359043943", Status.TRIGGERED))   # committed with the next batch

The `Ledger` opens and closes the file and answers what it holds (facts, histories, counts,
what a report's rows are accounted for by); its tables are in `dialer.ledger.schema`, a run's
grouped writes in `dialer.ledger.batch`. A claim (`sending`) lives from just before the
request leaves until the answer is recorded; a run that dies leaves it there, and the next
run records that person `unknown` instead of calling again (`adopt_orphans`). Closing a
run's ledger checkpoints the WAL, so a finished run leaves one file, safe to copy on its
own; only then is the claims journal emptied.

Opening never writes before the caller's `OpenCheck` has seen the file: a ledger that is new
(missing, 0 bytes, no tables) or one that may be stale is judged against the campaign's reports
first (`dialer.ledger.rebuild`), and an SQLite file that is not a ledger is refused untouched.
A file that cannot be opened or written (read-only, disk full) is the environment, never "corrupt".
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from dialer.core.clock import Clock, parse_stamp, stamp, system_clock
from dialer.core.statuses import CLAIM, LedgerError, Status, stored_outcome
from dialer.ledger.batch import Batches
from dialer.ledger.claims import Claim, ClaimsJournal, claims_path
from dialer.ledger.entries import Entry, dial_params
from dialer.ledger.facts import NO_FACTS, Facts, History
from dialer.ledger.schema import (
    INSERT_DIAL_ONCE,
    UPSERT,
    blank_reason,
    connect,
    fresh_reason,
    meta,
    prepare,
)
from dialer.ledger.sqlite import cannot_write, take_lock, transaction, write_error

if TYPE_CHECKING:
    from dialer.ledger.contact_limits import ContactBook, OverLimit
    from dialer.ledger.facts import Refusal
    from dialer.ledger.optouts import Watch

# Why a claim left by an earlier run is `unknown`: it may have reached the person.
ORPHAN_REASON = "an earlier run stopped before recording this call's answer"


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
        self._batches = Batches(path, conn, clock)  # a run's grouped commits
        # Nobody in the ledger when the run starts: no row can be `already_called`, so the
        # per-row lookup is skipped (a repeat within the sheet is a `duplicate` already).
        self._empty = conn.execute("SELECT NOT EXISTS (SELECT 1 FROM calls)").fetchone()[0] == 1
        # Claims a killed run left behind: a run adopts them first, but a dry run must show
        # them as the run will (`unknown`), so it looks them up too.
        self._orphans = conn.execute("SELECT EXISTS (SELECT 1 FROM sending)").fetchone()[0] == 1
        self.run_id: int | None = None
        self.ledger_id = meta(conn, "ledger_id")
        # A ledger from before the outcome loop, read without writing, has no `dials` yet.
        self.has_dials = (
            conn.execute(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type='table' AND name='dials')"
            ).fetchone()[0]
            == 1
        )
        # Outcomes that orphan claims' own reports show (`triggered` rows): adopted as such.
        self._reported: dict[str, Entry] = {}

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
            conn, tables = connect(path, readonly=False, campaign_file=campaign_file)
            try:
                ledger = None
                if tables:
                    stored = meta(conn, "campaign")
                    if stored and stored != campaign:
                        raise LedgerError(
                            f"{path}: ledger belongs to campaign '{stored}', not '{campaign}'"
                        )
                    ledger = cls(path, conn, lock_fd, clock)
                    if check is not None:
                        check.existing(ledger)
                elif why is None and check is not None:
                    check.new(blank_reason(path))
                prepare(conn, path, campaign, stamp(clock()))
                ledger = ledger or cls(path, conn, lock_fd, clock)
                ledger.has_dials = True  # `prepare` made it
                journal = claims_path(path)
                try:
                    ledger._batches.journal = ClaimsJournal.open(journal)
                except OSError as exc:
                    raise cannot_write(path, exc) from None
            except BaseException:
                conn.close()
                raise
        except BaseException:
            os.close(lock_fd)
            raise
        ledger.ledger_id = meta(conn, "ledger_id")
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
            conn, tables = connect(path, readonly=True, campaign_file=campaign_file)
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
        journal = self._batches.journal
        try:
            self._batches.commit_pending()
            if self._lock_fd is not None and self._batches.error is None:
                # The WAL's contents into the main file: a finished run's ledger is one file,
                # so a copy or backup of `x.sqlite` alone holds every call (SPEC 6.3). Best
                # effort: what is committed is safe in the WAL even if this fails (disk full).
                with contextlib.suppress(sqlite3.Error, OSError):
                    busy = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                    # Not blocked, every frame of the WAL copied: only then may the claims
                    # journal forget this run's claims (the main file holds them).
                    done = busy is not None and busy[0] == 0 and 0 <= busy[2] == busy[1]
                    if done and journal is not None:
                        journal.empty()
        finally:
            self._conn.close()
            if journal is not None:
                journal.close()
                self._batches.journal = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None
        self._batches.check()

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
                conn.executemany(UPSERT, [e.params(run, now) for e, run in reported if e])
                # A call placed: its dial too, or the redial rule would count one call short.
                conn.executemany(
                    INSERT_DIAL_ONCE,
                    [(*dial_params(e, run, now), "", "") for e, run in reported if e],
                )
                maybes = [o for o in orphans if o[0] not in self._reported]
                conn.executemany(
                    UPSERT,
                    [
                        (phone, Status.UNKNOWN, reason, 0, None, 1, "", "", row, run, now)
                        for phone, row, run, _ in maybes
                    ],
                )
                # Each a maybe-call from its claim's time: its log rows are its own.
                conn.executemany(
                    INSERT_DIAL_ONCE,
                    [
                        (phone, "", row, run, at, "", "", 1, "", "")
                        for phone, row, run, at in maybes
                    ],
                )
                conn.execute("DELETE FROM sending")
        except sqlite3.Error as exc:
            raise write_error(self.path, exc) from None
        if orphans:
            self._empty = False
        self._orphans = False
        return len(maybes)

    def _now(self) -> str:
        return stamp(self.clock())

    def campaign(self) -> str | None:
        return meta(self._conn, "campaign")

    @property
    def connection(self) -> sqlite3.Connection:
        """For the modules that keep their own tables here (`dialer.ledger.dials`): autocommit, so
        writes go inside `transaction(conn)`."""
        return self._conn

    def rebuilt(self) -> tuple[str, int] | None:
        """When this ledger was rebuilt, and from how many reports; None if never."""
        at = meta(self._conn, "rebuilt_at")
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
        value = meta(self._conn, "verified_through_run")
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
            raise write_error(self.path, exc) from None

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
            raise write_error(self.path, exc) from None
        self.run_id = self._batches.run_id = cur.lastrowid
        return self.run_id or 0

    def finish_run(self, exit_code: int, close_reason: str, counts: dict[str, int]) -> None:
        """Record how the run ended. After a failed write the run already stops with that
        error, so this records nothing more rather than raising it a second time."""
        self._batches.commit_pending()
        if self._batches.error is not None:
            return
        try:
            self._conn.execute(
                "UPDATE runs SET finished_at = ?, exit_code = ?, close_reason = ?, counts = ? "
                "WHERE id = ?",
                (self._now(), exit_code, close_reason, json.dumps(counts), self.run_id),
            )
        except sqlite3.Error as exc:
            raise write_error(self.path, exc) from None

    def use_book(self, book: ContactBook, campaign: str, over_limit: OverLimit | None) -> None:
        """Record this run's claims in the folder's contact counts, refusing those the
        caller's rule judges over a limit (checked and recorded in one transaction with every
        other campaign's); None: refusing none."""
        self._batches.use_book(book, campaign, f"{self.ledger_id}:{self.run_id}", over_limit)

    def use_optouts(self, watch: Watch) -> None:
        """Without the folder's contact counts: each batch of claims is looked up in the
        opt-out register (once its file exists) before it is committed."""
        self._batches.use_optouts(watch)

    async def claim(self, claim: Claim) -> Refusal | None:
        """Record `sending` and wait until it is committed: only then may the request leave.
        A refusal instead when the person opted out or a contact limit refuses the call
        (nothing is then recorded)."""
        return await self._batches.claim(claim)

    def release(self, called_to: str) -> None:
        """A claimed call certainly not placed: it no longer counts against a limit."""
        self._batches.release(called_to)

    def record(self, entry: Entry) -> None:
        """Record an outcome; committed with the next batch (no need to wait)."""
        self._batches.record(entry)

    async def drain(self) -> None:
        """Wait until everything recorded so far is committed."""
        await self._batches.drain()

    @property
    def failed(self) -> LedgerError | None:
        """The write failure that stopped this ledger, if any: no request may leave after it."""
        return self._batches.error

    def copy_into(self, conn: sqlite3.Connection) -> int:
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
            raise write_error(self.path, exc) from None
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
            raise write_error(self.path, exc) from None

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

    def counts(self) -> dict[str, int]:
        """How many people hold each status, and the claims left (`dialer status`)."""
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
