"""A lost ledger is noticed, never silently survived, and rebuilt from the reports (SPEC 6.3).

    ledger = open_for_run(campaign)       # refuses a lost ledger (exit 2), nothing sent
    ledger = open_for_reading(campaign)   # `validate` and `status`: the same verdict
    rebuild(campaign, out)                # `dialer ledger rebuild CAMPAIGN`

The ledger is lost when it is missing, empty (0 bytes) or has no tables (only its main file
left, its -wal gone) while the campaign's reports or its claims journal show people called
(or, for a main file a run wrote in WAL mode, while any run's report exists); or when it
misses what a run did: a report of a run it does not know (its runs table names each run's
report; a rebuilt ledger names the reports it was rebuilt from), or of a run it knows but
that never finished (SQLite may have checkpointed part of a killed run's WAL), shows people
called whom it does not account for, or a number in the claims journal (`dialer.ledger.claims`) is
neither a call nor a claim in it. Finished runs' reports, and unfinished ones checked when a
later run started, are not read again, so a normal start costs a directory listing.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from dialer.campaign.model import Campaign
from dialer.campaign.paths import ledger_path, reports_folder
from dialer.core.atomic import sync_folder
from dialer.core.clock import Clock, parse_stamp, stamp, system_clock
from dialer.core.statuses import ExitCode, LedgerError, Status
from dialer.ledger.claims import Claim, claims_path, read_claims
from dialer.ledger.entries import Entry, PastDial
from dialer.ledger.evidence import (
    CalledRow,
    ReportFile,
    called_rows,
    campaign_reports,
    report_key,
    report_of_run,
)
from dialer.ledger.rebuilt_file import write_rebuilt
from dialer.ledger.schema import BLANK_WAL, blank_reason, fresh_reason
from dialer.ledger.sqlite import CorruptLedger, rebuild_advice, take_lock
from dialer.ledger.store import Ledger

# Why a claim that only the claims journal still shows is `unknown` after a rebuild.
JOURNAL_REASON = "rebuilt from the claims journal: its request may have left when the run stopped"


@dataclass(frozen=True, slots=True)
class Loss:
    """Why the ledger is lost, and what the reports show that it does not know."""

    why: str
    called: int  # people the campaign's reports show called
    missing: int  # of them, people the ledger would call again
    journal: int = 0  # more people, only in the claims journal: maybe called

    def message(self, path: Path, folder: Path, campaign_file: Path | str) -> str:
        if not self.called and not self.journal:  # a WAL-mode file without tables
            return (
                f"{path}: {self.why}, and a run's report is in {folder}: calls that run "
                f"placed may be in no file; {rebuild_advice(campaign_file)}"
            )
        missing = "" if self.missing == self.called else f", {self.missing} of them missing from it"
        people = "person" if self.called == 1 else "people"
        more = (
            f", and its claims journal {claims_path(path)} {self.journal} more whose calls "
            "may have been placed"
            if self.journal
            else ""
        )
        return (
            f"{path}: {self.why}, yet the reports in {folder} show {self.called} {people} "
            f"called (triggered or unknown){missing}{more}: a run now could call them again; "
            f"{rebuild_advice(campaign_file)}"
        )


def _newest(rows: Iterable[CalledRow]) -> dict[str, CalledRow]:
    """Each person's row from the newest report showing them called."""
    people: dict[str, CalledRow] = {}
    for row in rows:  # oldest report first: a newer row replaces an older one
        people[row.called_to] = row
    return people


def _all_rows(reports: list[ReportFile]) -> Iterator[CalledRow]:
    for report in reports:
        yield from called_rows(report)


def _held(ledger: Ledger, row: CalledRow, run: int | None) -> bool:
    """Does the ledger hold what this report row shows? A call (`triggered`) by its room,
    its run or its time in `dials`; an `unknown` by the person's record; a row that places
    no call (`already_called`, `redial_later`) by the person being accounted for."""
    if row.placed:
        return ledger.holds_call(
            row.called_to, room=row.call_id, run_id=run, started_at=row.started_at, at=row.at
        )
    if row.status is Status.UNKNOWN:
        # A killed run's report also carries `unknown` rows of earlier runs (not sent again):
        # held by this run's record of the person, or by the person still being `unknown`.
        if run is not None and ledger.accounts_for(row.called_to, run):
            return True
        return ledger.holds_maybe(row.called_to, row.at)
    return ledger.knows(row.called_to)


def _claims(campaign: Campaign) -> list[Claim]:
    return read_claims(claims_path(ledger_path(campaign)))


@dataclass(frozen=True, slots=True)
class Evidence:
    """Every report of the campaign, each person's newest called row, the claims journal:
    read once by a rebuild, which both judges the loss and rebuilds from them."""

    reports: list[ReportFile]
    people: dict[str, CalledRow]
    claims: list[Claim]
    calls: list[CalledRow]  # the `triggered` rows, one per call placed: the calls to restore
    # The `unknown` rows whose run sent the request (it has a start): maybe-calls to restore.
    maybes: list[CalledRow] = field(default_factory=list)

    @classmethod
    def read(cls, campaign: Campaign) -> Evidence:
        reports = campaign_reports(reports_folder(campaign))
        calls: list[CalledRow] = []
        maybes: list[CalledRow] = []

        def noting_calls() -> Iterator[CalledRow]:
            for row in _all_rows(reports):
                if row.placed:  # kept apart: the rows that place no call are not held
                    calls.append(row)
                elif row.status is Status.UNKNOWN and row.started_at:
                    maybes.append(row)
                yield row

        people = _newest(noting_calls())
        return cls(reports, people, _claims(campaign), calls, maybes)


def loss_when_new(campaign: Campaign, why: str, evidence: Evidence | None = None) -> Loss | None:
    """No ledger yet (`why`): lost if any report or the claims journal shows anyone called,
    or, for a file a run wrote in WAL mode, if any run's report exists."""
    evidence = evidence or Evidence.read(campaign)
    people = evidence.people
    journal = {c.called_to for c in evidence.claims} - people.keys()
    if people or journal:
        return Loss(why, len(people), len(people), len(journal))
    if why == BLANK_WAL and any(not r.dry_run for r in evidence.reports):
        return Loss(why, 0, 0)
    return None


def loss_when_existing(
    campaign: Campaign,
    ledger: Ledger,
    evidence: Evidence | None = None,
    killed_rows: dict[Path, list[CalledRow]] | None = None,
) -> Loss | None:
    """An existing ledger: lost if it misses what a run did. Read for that: the reports of
    runs it does not know, and of runs it knows that never finished and were not checked
    since (dry-run reports mirror a ledger, they record no call), and the claims journal."""
    folder = reports_folder(campaign)
    verified = ledger.verified_through()
    skip = set(ledger.rebuilt_from())
    unfinished: dict[str, int] = {}
    for run, stored, finished in ledger.run_reports():
        key = report_key(stored, folder)
        if finished or run <= verified:
            skip.add(key)
        else:
            unfinished[key] = run
    missed_runs = partly = calls = 0
    missing: set[str] = set()
    for report in campaign_reports(folder, skip=frozenset(skip)):
        run = unfinished.get(report.name)
        if run is not None:  # a run it knows, killed: were its calls kept?
            # Its claims left whose answer the report shows `triggered` are kept for
            # `_use_reports`, which would otherwise read the same report again.
            orphans = ledger.orphans_of(run) if killed_rows is not None else frozenset()
            lost, reported = set(), []
            for row in called_rows(report):
                if not _held(ledger, row, run):
                    lost.add(row.called_to)
                    calls += row.placed
                if row.called_to in orphans and row.status is Status.TRIGGERED:
                    reported.append(row)
            if killed_rows is not None:
                killed_rows[report.path] = reported
            partly += bool(lost)
        elif report.dry_run or report.called_in_summary == 0:
            continue
        else:
            lost = set()
            for row in called_rows(report):
                if not _held(ledger, row, None):
                    lost.add(row.called_to)
                    calls += row.placed
            missed_runs += bool(lost)
        missing |= lost
    journal_claims = evidence.claims if evidence is not None else _claims(campaign)
    claims = [c for c in journal_claims if not ledger.accounts_for(c.called_to, c.run_id)]
    if not missing and not claims:
        return None
    people = (
        evidence.people if evidence is not None else _newest(_all_rows(campaign_reports(folder)))
    )
    missing |= {phone for phone in people if not ledger.knows(phone)}
    journal = {c.called_to for c in claims} - people.keys()
    causes = []
    if missed_runs:
        causes.append(f"does not know {missed_runs} of the campaign's runs")
    if partly:
        causes.append(f"misses calls of {partly} run(s) it knows, which never finished")
    if calls:
        causes.append(f"does not hold {calls} call(s) the reports show placed")
    if claims:
        causes.append(f"misses {len(claims)} claim(s) of its claims journal")
    why = f"the ledger {', and '.join(causes)} (was its -wal file lost, or an older copy restored?)"
    return Loss(why, len(people), len(missing & people.keys()), len(journal))


class _LossCheck:
    """The `OpenCheck` of every command that reads or writes a campaign's ledger."""

    def __init__(self, campaign: Campaign) -> None:
        self.campaign = campaign

    def _refuse(self, loss: Loss | None) -> None:
        if loss is not None:
            c = self.campaign
            raise LedgerError(loss.message(ledger_path(c), reports_folder(c), c.path))

    def new(self, why: str) -> None:
        self._refuse(loss_when_new(self.campaign, why))

    def existing(self, ledger: Ledger) -> None:
        killed_rows: dict[Path, list[CalledRow]] = {}
        self._refuse(loss_when_existing(self.campaign, ledger, killed_rows=killed_rows))
        _use_reports(self.campaign, ledger, killed_rows)


def _use_reports(
    campaign: Campaign, ledger: Ledger, read: dict[Path, list[CalledRow]] | None = None
) -> None:
    """Claims a stopped run left: those its own report shows `triggered` (the answer came,
    the ledger could not record it) are adopted as such, with their call id. `read`: those
    rows of killed runs' reports, found by the loss check that has just read them."""
    folder = reports_folder(campaign)
    reported: dict[str, Entry] = {}
    for run, stored in ledger.orphan_runs().items():
        report = report_of_run(stored, folder)
        if report is None:
            continue
        orphans = ledger.orphans_of(run)
        rows = read.get(report.path) if read is not None else None
        for row in rows if rows is not None else called_rows(report):
            if row.called_to in orphans and row.status is Status.TRIGGERED:
                note = f"recorded from the report of run {run}, which stopped before its ledger did"
                reported[row.called_to] = _entry(row, note)
    ledger.use_reported(reported)


def open_for_run(campaign: Campaign, clock: Clock = system_clock) -> Ledger:
    """The run's ledger, locked; a lost one is refused before anything is written."""
    ledger = Ledger.open(
        ledger_path(campaign),
        campaign.name,
        check=_LossCheck(campaign),
        campaign_file=campaign.path,
        clock=clock,
    )
    try:
        ledger.mark_verified()  # every run so far matches its report: not read again
    except BaseException:
        ledger.close()
        raise
    return ledger


def open_for_reading(campaign: Campaign) -> Ledger | None:
    """For `validate` and `status`: None when there is no ledger yet; lost is refused."""
    return Ledger.open_readonly(
        ledger_path(campaign), check=_LossCheck(campaign), campaign_file=campaign.path
    )


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def _judge(campaign: Campaign, path: Path, evidence: Evidence) -> tuple[Ledger | None, str]:
    """The old ledger to copy from (None: nothing readable) and why it may be rebuilt;
    refuses a ledger that is not lost, a foreign file and another campaign's ledger."""
    folder = reports_folder(campaign)
    why = fresh_reason(path)
    if why is None:
        try:
            old = Ledger.open_readonly(path, campaign_file=campaign.path)
        except CorruptLedger:
            return None, "the ledger was unreadable or corrupt"
        if old is not None:
            stored = old.campaign()
            if stored and stored != campaign.name:
                old.close()
                raise LedgerError(
                    f"{path}: ledger belongs to campaign '{stored}', not '{campaign.name}'; "
                    "nothing rebuilt"
                )
            try:
                loss = loss_when_existing(campaign, old, evidence)
            except BaseException:
                old.close()
                raise
            if loss is None:
                old.close()
                raise LedgerError(
                    f"{path}: the ledger is not lost: it knows every run whose report is in "
                    f"{folder}; nothing rebuilt (a working ledger is never replaced)"
                )
            return old, loss.why
        why = blank_reason(path)
    if loss_when_new(campaign, why, evidence) is None:
        raise LedgerError(
            f"{path}: {why}, and no report in {folder} shows anyone called: nothing to "
            "rebuild; the next run starts a new ledger"
        )
    return None, why


def rebuild(campaign: Campaign, out: TextIO | None = None) -> int:
    """`dialer ledger rebuild`: a new ledger from the reports (and whatever the old one still
    holds); the old file is kept aside under a new name, never deleted."""
    out = out or sys.stdout
    path = ledger_path(campaign)
    folder = reports_folder(campaign)
    lock_fd = take_lock(path, campaign.name)  # no run may use the ledger meanwhile
    try:
        evidence = Evidence.read(campaign)
        old, why = _judge(campaign, path, evidence)
        try:
            reports, people = evidence.reports, evidence.people
            per_report = Counter(row.report for row in people.values())
            # Each stamped with its row's time: newer than the old ledger's record, it wins.
            entries = [replace(_entry(row), at=row.at) for row in people.values()]
            runs = old.run_reports() if old is not None else []
            run_of = {report_key(stored, folder): run for run, stored, _ in runs}
            finished = {report_key(stored, folder) for _, stored, done in runs if done}
            # Claims whose request may have left but that no report of their run and no
            # surviving part of the old ledger shows: maybe called, so `unknown` (the newest
            # record of the person), never sent again unasked, and a maybe-call in `dials`.
            journal = {
                c.called_to: c
                for c in evidence.claims
                if not _shown(c, people.get(c.called_to), finished, run_of)
                and (old is None or not old.accounts_for(c.called_to, c.run_id))
            }
            entries += [_journal_entry(c) for c in journal.values()]
            now = system_clock()
            dials = [_dial(row, run_of.get(row.report), now) for row in evidence.calls]
            dials += [
                replace(_dial(row, run_of.get(row.report), now), maybe=True)
                for row in evidence.maybes
            ]
            dials += [_journal_dial(c, now) for c in journal.values()]
            tmp = path.with_name(path.name + ".rebuilding")
            tmp.unlink(missing_ok=True)  # our own output from a rebuild that was interrupted
            done = write_rebuilt(
                tmp,
                campaign.name,
                old=old,
                entries=entries,
                reports={r.name: per_report.get(r.name, 0) for r in reports},
                dials=dials,
            )
        finally:
            if old is not None:
                old.close()
        aside = _keep_aside(path)
        os.replace(tmp, path)
        sync_folder(path.parent)
        # Its claims are in the rebuilt ledger (synced): the journal starts afresh.
        claims_path(path).unlink(missing_ok=True)
    except OSError as exc:
        raise LedgerError(f"{path}: cannot rebuild the ledger: {exc.strerror}") from None
    finally:
        os.close(lock_fd)
    by_status = Counter(str(row.status) for row in people.values())
    killed = sum(1 for r in reports if r.summary is None)
    print(f"rebuilt {path}: {why}", file=out)
    print(f"  reports read: {len(reports)} in {folder}", file=out)
    shown = ", ".join(f"{status} {n}" for status, n in sorted(by_status.items()))
    print(f"  people the reports show called: {len(people)} ({shown or 'none'})", file=out)
    if old is not None:
        print(f"  people kept from the old ledger: {done.kept}", file=out)
    print(f"  people recorded from the reports: {done.from_reports - len(journal)}", file=out)
    if done.dials:
        print(f"  calls restored from the reports: {done.dials}", file=out)
    if journal:
        print(
            f"  people recorded from the claims journal as unknown (maybe called; in no "
            f"report): {len(journal)}",
            file=out,
        )
    if aside:
        print(f"  the old file is kept as {aside}", file=out)
    if killed and not journal:
        print(
            f"  warning: {killed} report(s) have no summary (a run killed mid-way): calls "
            "in flight when it died are in no report; check Tabbly's call logs for them",
            file=out,
        )
    print(f"next: dialer validate {campaign.path} shows who the next run would call", file=out)
    return int(ExitCode.OK)


def _entry(row: CalledRow, note: str = "") -> Entry:
    note = note or f"rebuilt from report {row.report}"
    return Entry(
        called_to=row.called_to,
        status=row.status,
        reason=f"{note}: {row.reason}" if row.reason else note,
        http_status=row.http_status,
        attempts=row.attempts,
        call_id=row.call_id,
        custom_identifiers=row.custom_identifiers,
        row=row.row,
    )


# A report row's `finished_at` is stamped just before the ledger commits its dial: a dial
# without room or run placed this long after the row's start is taken to be the same call.
_SAME_CALL = timedelta(seconds=5)


def _dial(row: CalledRow, run: int | None, now: datetime) -> PastDial:
    """The call a report's `triggered` row shows, as `dials` holds it (pending: the next
    sync reads its outcome again)."""
    placed = row.at or stamp(now)
    ended = parse_stamp(placed)
    return PastDial(
        called_to=row.called_to,
        custom_identifiers=row.custom_identifiers,
        row=row.row,
        run_id=run,
        placed_at=placed,
        room_name=row.call_id,
        started_at=row.started_at or placed,
        until=stamp(ended + _SAME_CALL) if ended else placed,
    )


def _shown(claim: Claim, row: CalledRow | None, finished: set[str], run_of: dict[str, int]) -> bool:
    """Whether the person's newest report row is this claim's answer, written by the claim's
    own run (one the old ledger never saw end). With a redial, an earlier run's row of the
    person is no answer to a later run's claim: by time when the journal line has one (an
    answer is recorded after its claim), else by the run, when the old ledger names the
    report's run, else (a run it never knew) only for a claim of a run it never knew."""
    if row is None or row.report in finished:
        return False
    if claim.at and row.at:
        return row.at >= claim.at
    run = run_of.get(row.report)
    return run == claim.run_id if run is not None else claim.run_id not in run_of.values()


def _journal_dial(claim: Claim, now: datetime) -> PastDial:
    """A claim only the journal shows, as a maybe-call placed when it was claimed (else now)."""
    placed = claim.at or stamp(now)
    ended = parse_stamp(placed)
    return PastDial(
        called_to=claim.called_to,
        custom_identifiers="",
        row=claim.row,
        run_id=None,
        placed_at=placed,
        room_name="",
        started_at=placed,
        until=stamp(ended + _SAME_CALL) if ended else placed,
        maybe=True,
    )


def _journal_entry(claim: Claim) -> Entry:
    return Entry(
        called_to=claim.called_to,
        status=Status.UNKNOWN,
        reason=JOURNAL_REASON,
        attempts=1,
        row=claim.row,
    )


def _keep_aside(path: Path) -> Path | None:
    """Rename the old ledger (with its -wal and -shm, kept paired) out of the way."""
    if not path.exists():
        return None
    aside = path.with_name(f"{path.name}.lost-{_stamp()}")
    n = 2
    while aside.exists():
        aside = path.with_name(f"{path.name}.lost-{_stamp()}-{n}")
        n += 1
    os.rename(path, aside)
    for suffix in ("-wal", "-shm"):
        extra = path.with_name(path.name + suffix)
        if extra.exists():
            os.rename(extra, aside.with_name(aside.name + suffix))
    return aside
