"""A lost ledger is noticed, never silently survived, and rebuilt from the reports (SPEC 6.3).

    >>> ledger = open_for_run(campaign)       # refuses a lost ledger (exit 2), nothing sent
    >>> ledger = open_for_reading(campaign)   # `validate` and `status`: the same verdict
    >>> rebuild(campaign, out)                # `dialer ledger rebuild CAMPAIGN`

The ledger is lost when it is missing, empty (0 bytes) or has no tables (only its main file
left, its -wal gone) while the campaign's reports show people called; or when reports in the
campaign's folder belong to runs the ledger does not know (its runs table names each run's
report; a rebuilt ledger names the reports it was rebuilt from) and show people called whom
it would call again. Only those unknown reports are read on a normal start, so the check
costs a directory listing.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from dialer.campaign import Campaign
from dialer.clock import Clock, system_clock
from dialer.evidence import CalledRow, ReportFile, called_rows, campaign_reports
from dialer.ledger import (
    BLANK,
    CorruptLedger,
    Entry,
    Ledger,
    fresh_reason,
    rebuild_advice,
    take_lock,
    write_rebuilt,
)
from dialer.paths import ledger_path, reports_folder
from dialer.statuses import ExitCode, LedgerError


@dataclass(frozen=True, slots=True)
class Loss:
    """Why the ledger is lost, and what the reports show that it does not know."""

    why: str
    called: int  # people the campaign's reports show called
    missing: int  # of them, people the ledger would call again

    def message(self, path: Path, folder: Path, campaign_file: Path | str) -> str:
        missing = "" if self.missing == self.called else f", {self.missing} of them missing from it"
        people = "person" if self.called == 1 else "people"
        return (
            f"{path}: {self.why}, yet the reports in {folder} show {self.called} {people} "
            f"called (triggered or unknown){missing}: a run now could call them again; "
            f"{rebuild_advice(campaign_file)}"
        )


def _newest(reports: list[ReportFile]) -> dict[str, CalledRow]:
    """Each person's row from the newest report showing them called."""
    people: dict[str, CalledRow] = {}
    for report in reports:  # oldest first: a newer row replaces an older one
        for row in called_rows(report):
            people[row.called_to] = row
    return people


def loss_when_new(campaign: Campaign, why: str) -> Loss | None:
    """No ledger yet (`why`): lost if any report shows anyone called."""
    people = _newest(campaign_reports(reports_folder(campaign)))
    return Loss(why, len(people), len(people)) if people else None


def loss_when_existing(campaign: Campaign, ledger: Ledger) -> Loss | None:
    """An existing ledger: lost if a run report it does not account for shows people called
    whom it would call again. Dry-run reports mirror a ledger, they record no call."""
    folder = reports_folder(campaign)
    missed = 0
    for report in campaign_reports(folder, skip=frozenset(ledger.report_names())):
        if report.dry_run or report.called_in_summary == 0:
            continue
        if any(not ledger.knows(row.called_to) for row in called_rows(report)):
            missed += 1
    if not missed:
        return None
    people = _newest(campaign_reports(folder))
    unknown = sum(1 for phone in people if not ledger.knows(phone))
    why = (
        f"the ledger does not know {missed} of the campaign's runs (was its -wal file "
        "lost, or an older copy restored?)"
    )
    return Loss(why, len(people), unknown)


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
        self._refuse(loss_when_existing(self.campaign, ledger))


def open_for_run(campaign: Campaign, clock: Clock = system_clock) -> Ledger:
    """The run's ledger, locked; a lost one is refused before anything is written."""
    return Ledger.open(
        ledger_path(campaign),
        campaign.name,
        check=_LossCheck(campaign),
        campaign_file=campaign.path,
        clock=clock,
    )


def open_for_reading(campaign: Campaign) -> Ledger | None:
    """For `validate` and `status`: None when there is no ledger yet; lost is refused."""
    return Ledger.open_readonly(
        ledger_path(campaign), check=_LossCheck(campaign), campaign_file=campaign.path
    )


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def _judge(campaign: Campaign, path: Path) -> tuple[Ledger | None, str]:
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
                loss = loss_when_existing(campaign, old)
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
        why = BLANK
    if loss_when_new(campaign, why) is None:
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
        old, why = _judge(campaign, path)
        try:
            reports = campaign_reports(folder)
            people = _newest(reports)
            per_report = Counter(row.report for row in people.values())
            entries = [_entry(row) for row in people.values()]
            tmp = path.with_name(path.name + ".rebuilding")
            tmp.unlink(missing_ok=True)  # our own output from a rebuild that was interrupted
            done = write_rebuilt(
                tmp,
                campaign.name,
                old=old,
                entries=entries,
                reports={r.name: per_report.get(r.name, 0) for r in reports},
            )
        finally:
            if old is not None:
                old.close()
        aside = _keep_aside(path)
        os.replace(tmp, path)
        _sync_folder(path.parent)
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
    print(f"  people recorded from the reports: {done.from_reports}", file=out)
    if aside:
        print(f"  the old file is kept as {aside}", file=out)
    if killed:
        print(
            f"  warning: {killed} report(s) have no summary (a run killed mid-way): calls "
            "in flight when it died are in no report; check Tabbly's call logs for them",
            file=out,
        )
    print(f"next: dialer validate {campaign.path} shows who the next run would call", file=out)
    return int(ExitCode.OK)


def _entry(row: CalledRow) -> Entry:
    note = f"rebuilt from report {row.report}"
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


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
