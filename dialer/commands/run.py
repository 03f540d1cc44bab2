"""What each command does, wired from the parts: `validate`, `run`, `status`.

The CLI parses options and turns exceptions into exit codes; this module holds the order of
operations, so that a dry run and a real run read, check and report a sheet the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from dialer.campaign.model import Campaign
from dialer.core.clock import Clock, stamp, system_clock
from dialer.core.interrupts import STOP_SIGNALS, honoured
from dialer.core.masking import mask_phone, mask_text
from dialer.core.paths import default_report_path, ledger_path, reports_folder, state_folder
from dialer.core.settings import DEFAULTS, Settings
from dialer.core.statuses import (
    CallOutcome,
    DialerError,
    ExitCode,
    Status,
    StopReason,
    UsageError,
    close_reason,
    exit_code_for,
)
from dialer.engine.gate import Gate, limit_rule
from dialer.engine.options import RunOptions
from dialer.engine.progress import Progress
from dialer.ledger.contact_limits import ContactBook
from dialer.ledger.evidence import note_report
from dialer.ledger.facts import Facts
from dialer.ledger.rebuild import open_for_reading, open_for_run
from dialer.ledger.store import Ledger
from dialer.reports.summary import (
    SAMPLE_MESSAGES,
    Samples,
    build_summary,
    print_summary,
)
from dialer.reports.writer import (
    ReportWriter,
    RowResult,
    check_report_path,
    status_counts,
    write_summary,
)
from dialer.sheets.cell_types import typed_columns
from dialer.sheets.contacts import Contact
from dialer.sheets.countries import country_name, country_of
from dialer.sheets.files import shown_names
from dialer.sheets.pipeline import ContactStream, open_contacts

if TYPE_CHECKING:  # aiohttp and the dispatcher are loaded only by `run`
    from dialer.engine.dispatch import RunResult
    from dialer.tabbly.client import Secret


@dataclass(slots=True)
class Prepared:
    """A sheet opened and checked, ready to be reported or sent."""

    stream: ContactStream
    chunks: Iterator[list[Contact]]
    warnings: list[str]


# What to do about template variables the sheet lacks, as the CLI's warning says it.
MATCH_COLUMNS = "match them in [contacts] columns or give [contacts] defaults"


def prepare(campaign: Campaign, contacts: Path | None) -> Prepared:
    """Open the sheet and read its first chunk, so a bad sheet fails before anything is written."""
    stream = open_contacts(campaign, contacts)
    chunks = stream.chunks()
    first = next(chunks)  # raises SheetError for a sheet without data rows
    warnings = []
    missing = stream.preparer.missing_columns()
    if missing:
        warnings.append(
            f"the templates use {', '.join(missing)}, not columns of this sheet "
            f"(columns: {shown_names(stream.sheet.named_headers)}); {MATCH_COLUMNS}"
        )
    return Prepared(stream, chain([first], chunks), warnings)


@dataclass(slots=True)
class Tally:
    """What the consent step and the dry run tell besides the statuses: ready rows that only
    `--retry-unknown` lets through (an earlier call to them may have been placed), the
    ready rows that are redials, by their last call's outcome, and the `redial_later` rows
    whose last outcome is not synced (the run reads the logs first; the dry run reads none)."""

    maybe_called: int = 0
    redials: Counter[str] = field(default_factory=Counter)
    unsynced: int = 0  # `redial_later` only because their last call's outcome is not read yet
    countries: Counter[str] = field(default_factory=Counter)  # ready rows by their number's

    def country_line(self) -> str | None:
        """ "ready by country: India 8, United States 5": a number read as the wrong
        country's shows here before anyone is called."""
        if not self.countries:
            return None
        shown = ", ".join(f"{country_name(c)} {n}" for c, n in self.countries.most_common())
        return f"ready by country: {shown}"

    def redial_line(self, max_calls: int) -> str | None:
        n = sum(self.redials.values())
        if not n:
            return None
        kinds = ", ".join(f"{k} {words}" for words, k in self.redials.most_common())
        return f"{n} will be called again ({kinds}; at most {max_calls} calls per person)"


def _verdicts(
    campaign: Campaign,
    prepared: Prepared,
    gate: Gate,
    now: datetime,
    samples: Samples,
    tally: Tally | None = None,
) -> Iterator[list[RowResult]]:
    """Each chunk's rows with the status the gate gives them if the run started now (no
    network); the first ready ones go to `samples`. Shared by the dry run and the consent step."""
    options = gate.options
    # The same rules without --retry-unknown: which ready rows only that option lets through.
    strict = None
    if tally is not None and options.retry_unknown:
        strict = gate.with_options(replace(options, retry_unknown=False))
    for chunk in prepared.chunks:
        results = []
        for contact in chunk:
            verdict, facts = gate.read(contact)
            verdict = verdict or gate.on_send(contact, now)
            if verdict is not None:
                results.append(RowResult(contact, verdict.status, verdict.reason))
                if tally is not None and verdict.status is Status.REDIAL_LATER:
                    history = facts.history
                    if history is None or history.last_outcome is CallOutcome.PENDING:
                        tally.unsynced += 1
                continue
            if strict is not None and tally is not None:
                again = strict.judge(facts)  # the same facts, judged without the option
                if again is not None and again.status is Status.UNKNOWN:
                    tally.maybe_called += 1
            reason = contact.reason
            note = gate.note(facts)
            if note:
                if tally is not None:
                    tally.redials[note.rsplit("last: ", 1)[-1]] += 1
                reason = f"{note}; {reason}" if reason else note
            if len(samples.items) < SAMPLE_MESSAGES:
                samples.offer(contact)
            if tally is not None:
                tally.countries[country_of(contact.called_to)] += 1
            results.append(RowResult(contact, Status.READY, reason))
        yield results


@contextlib.contextmanager
def _reading_gate(
    campaign: Campaign,
    options: RunOptions,
    clock: Clock,
    outcomes_known: bool = True,
    warnings: list[str] | None = None,
) -> Iterator[Gate]:
    """The gate of a dry run: the ledger (None: none yet) and the folder's contact counts,
    read without writing, closed on leaving. A lost ledger is refused here (SPEC 6.3):
    called before the report is created, so a refusal leaves no report."""
    with contextlib.ExitStack() as stack:
        ledger = open_for_reading(campaign)
        if ledger is not None:
            stack.enter_context(ledger)
        book = None
        if campaign.limits is not None:
            book = ContactBook.open(state_folder(campaign), clock(), create=False, readonly=True)
            if book is not None:
                stack.enter_context(book)
                restored = book.restored_warning()
                if restored and warnings is not None:
                    warnings.append(restored)
        yield Gate.for_campaign(
            campaign, options, ledger, book=book, clock=clock, outcomes_known=outcomes_known
        )


def validate(
    campaign: Campaign,
    *,
    contacts: Path | None = None,
    report_path: Path | None = None,
    options: RunOptions | None = None,
    clock: Clock = system_clock,
    out: TextIO | None = None,
) -> int:
    """The dry run: every row's verdict in a report, a summary, the first messages; no network."""
    options = options or RunOptions()
    out = out or sys.stdout
    now, t0 = clock(), time.monotonic()
    prepared = prepare(campaign, contacts)
    report_path = report_path or default_report_path(campaign, now)
    samples = Samples()
    tally = Tally()
    with (
        _reading_gate(campaign, options, clock, warnings=prepared.warnings) as gate,
        ReportWriter(
            report_path,
            prepared.stream.sheet.headers,
            flush_each=False,
            title=campaign.name,
            sheet_kinds=prepared.stream.column_kinds,
        ) as report,
    ):
        for results in _verdicts(campaign, prepared, gate, now, samples, tally):
            report.write_in_order(results)
    code = exit_code_for(report.counts, None)
    notes = _notes(campaign, tally)
    if tally.unsynced:  # the run reads the logs first (SPEC 10); this dry run reads none
        notes.append(
            f"{tally.unsynced} with their last call's outcome not synced yet: `dialer run` "
            "reads the call logs first and may call them again (`dialer sync` first shows whom)"
        )
    summary = _summary(
        campaign, "validate", prepared, report, stamp(now), t0, code, prepared.warnings, clock
    )
    summary["notes"] = notes
    summary["countries"] = dict(tally.countries.most_common())
    summary["samples"] = samples.as_json()
    # The page shows spreadsheet row numbers (data row N is row header_row + N there).
    summary["header_row"] = prepared.stream.sheet.excel_header_row
    summary["tab"] = prepared.stream.sheet.sheet_name
    write_summary(report.path, summary)
    print_summary(summary, samples, out)
    return int(code)


def _summary(
    campaign: Campaign,
    mode: str,
    prepared: Prepared,
    report: ReportWriter,
    started: str,
    t0: float,
    code: ExitCode,
    warnings: list[str],
    clock: Clock,
    requests_sent: int = 0,
    stop: StopReason | None = None,
) -> dict[str, object]:
    summary = build_summary(
        campaign=campaign,
        mode=mode,
        sheet_path=prepared.stream.sheet.path,
        report_path=report.rows_path,
        counts=report.counts,
        started_at=started,
        finished_at=stamp(clock()),
        wall_seconds=time.monotonic() - t0,
        requests_sent=requests_sent,
        stop=stop,
        exit_code=code,
        warnings=warnings,
    )
    # The sheet's typed columns: an XLSX made later from the CSV report keeps them (SPEC 4.3b).
    summary["column_types"] = typed_columns(
        prepared.stream.sheet.headers, prepared.stream.column_kinds()
    )
    return summary


def _ask_consent(
    campaign: Campaign,
    contacts: Path | None,
    options: RunOptions,
    clock: Clock,
    out: TextIO,
    ask: Callable[[str], str],
    outcomes_known: bool = True,
) -> int | None:
    """Show who would be called and ask; reads the whole sheet once (no network, no report).

    The number of rows in the sheet when the answer is yes (the progress bar's total), else None.
    """
    prepared = prepare(campaign, contacts)
    counts: Counter[str] = Counter()
    samples = Samples()
    tally = Tally()
    with _reading_gate(campaign, options, clock, outcomes_known) as gate:
        for results in _verdicts(campaign, prepared, gate, clock(), samples, tally):
            counts.update(r.status for r in results)
    to_call = counts[Status.READY]
    if options.limit is not None:
        to_call = min(to_call, options.limit)
    print(f"campaign {campaign.name}: {prepared.stream.sheet.path}", file=out)
    for status, n in status_counts(counts).items():
        if n:
            print(f"  {status:<15} {n}", file=out)
    for note in _notes(campaign, tally):
        print(f"  {note}", file=out)
    for warning in prepared.warnings:
        print(f"  warning: {warning}", file=out)
    if samples.items:
        first = samples.items[0]
        print(
            f"  first message ({mask_phone(first.called_to)}): {mask_text(first.first_line)}",
            file=out,
        )
    print(
        f"About to call {to_call} people from {campaign.call_from} with agent "
        f"{campaign.agent_id} (organization {campaign.organization_id}).",
        file=out,
    )
    resent = min(tally.maybe_called, to_call)
    if resent:
        print(retry_unknown_warning(resent), file=out)
    try:
        answer = ask("Start calling? [y/N] ")
    except EOFError:  # Ctrl-D, or the terminal's input closed: the default answer, no
        print(file=out)
        answer = ""
    return sum(counts.values()) if answer.strip().lower() in ("y", "yes") else None


def _notes(campaign: Campaign, tally: Tally) -> list[str]:
    """The dry run's lines on redials (SPEC 10): who is called again, and why."""
    redials = tally.redial_line(campaign.redial.max_calls) if campaign.redial else None
    return [line for line in (tally.country_line(), redials) if line]


def retry_unknown_warning(maybe_called: int, *, upper_bound: bool = False) -> str:
    """The line `--retry-unknown` earns before anything is sent: nobody should pass it lightly."""
    n = f"up to {maybe_called}" if upper_bound else str(maybe_called)
    return (
        f"WARNING: --retry-unknown: {n} of the people to call may already have been called "
        "by an earlier run (status unknown: sent, no answer); they will be called again"
    )


_NOBODY_REDIALED = "nobody is redialed this run (new rows are still called)"


def _sync_first(
    campaign: Campaign,
    api_key: Secret,
    environ: Mapping[str, str],
    clock: Clock,
    settings: Settings,
    out: TextIO,
) -> str | None:
    """A campaign with `[redial]` reads the call logs before it runs (SPEC 10); None when
    they were read, else why not: then nobody is redialed (an unknown outcome is never a
    reason to call again), while new rows are still called. A sync failing in any way,
    a defect of ours included, is such a why: the nightly run still calls its new rows."""
    from dialer.outcomes.sync import describe, synced

    try:
        with synced(
            campaign, api_key=api_key, environ=environ, clock=clock, settings=settings
        ) as done:
            if done is None:
                return None  # never run: nobody to redial
            result = done[1]
    except DialerError as exc:
        return f"{exc}; {_NOBODY_REDIALED}"
    except Exception as exc:  # its text may hold the logs URL, so the key: its type only
        return f"call logs: the sync failed ({type(exc).__name__}); {_NOBODY_REDIALED}"
    print(f"call outcomes synced: {describe(result)}", file=out)
    return None


def _keep_first(errors: list[DialerError], action: Callable[[], object]) -> None:
    """Run one closing step; a file that cannot be written is remembered, not raised, so the
    steps after it (the summary above all) still happen. The first error is the run's."""
    try:
        action()
    except DialerError as exc:
        errors.append(exc)


def run(
    campaign: Campaign,
    *,
    contacts: Path | None = None,
    report_path: Path | None = None,
    options: RunOptions | None = None,
    yes: bool = False,
    environ: Mapping[str, str] = os.environ,
    clock: Clock = system_clock,
    out: TextIO | None = None,
    err: TextIO | None = None,
    stdin: TextIO | None = None,
    ask: Callable[[str], str] = input,
    progress_mode: str = "auto",
    settings: Settings = DEFAULTS,
) -> int:
    """The campaign: consent, ledger lock, dispatch, report, summary; returns the exit code."""
    options = options or RunOptions()
    out, err, stdin = out or sys.stdout, err or sys.stderr, stdin or sys.stdin
    from dialer.tabbly.client import api_key_from  # aiohttp: loaded by `run` alone

    api_key = api_key_from(campaign, environ)
    endpoint = campaign.checked_endpoint(environ)
    if report_path is not None:
        check_report_path(report_path)  # before the question: a run that cannot report is refused
    rows: int | None = None
    if not yes and not stdin.isatty():
        raise UsageError("--yes is required when stdin is not a terminal (cron, scripts)")
    unread = None
    if campaign.redial is not None and options.sync:
        unread = _sync_first(campaign, api_key, environ, clock, settings, out)
        if unread is not None:
            print(f"warning: {unread}", file=err)
    if not yes:
        rows = _ask_consent(campaign, contacts, options, clock, out, ask, unread is None)
        if rows is None:
            print("Nothing sent.", file=out)
            return int(ExitCode.OK)

    now, t0 = clock(), time.monotonic()
    prepared = prepare(campaign, contacts)
    report_path = report_path or default_report_path(campaign, now)
    errors: list[DialerError] = []  # files that could not be written; the first is reported
    ledger = open_for_run(campaign, clock)  # refuses a lost, foreign or unwritable ledger
    book: ContactBook | None = None
    try:
        # The folder's contact counts: made by the first campaign with [limits] (SPEC 10).
        book = ContactBook.open(state_folder(campaign), now, create=campaign.limits is not None)
        orphans = ledger.adopt_orphans()
        warnings = list(prepared.warnings)
        restored = book.restored_warning() if book is not None else None
        if restored:
            print(f"warning: {restored}", file=err)
            warnings.append(restored)
        if unread is not None:
            warnings.append(unread)
        if orphans:
            warnings.append(
                f"{orphans} row(s) were being sent when an earlier run stopped before "
                "recording the answer (killed, or its ledger could not be written): now "
                "'unknown' (maybe called); --retry-unknown sends them again"
            )
        # Nobody was asked (--yes): say it before the first call, and keep it in the summary.
        unknown = ledger.counts().get(Status.UNKNOWN, 0) if options.retry_unknown and yes else 0
        if unknown:
            warning = retry_unknown_warning(unknown, upper_bound=True)
            print(warning, file=err)
            warnings.append(warning)
        note_report(reports_folder(campaign), report_path)  # found again if the ledger is lost
        report = ReportWriter(
            report_path,
            prepared.stream.sheet.headers,
            title=campaign.name,
            sheet_kinds=prepared.stream.column_kinds,
        )
        try:
            ledger.start_run(str(prepared.stream.sheet.path), str(report_path))
            if book is not None:
                ledger.use_book(book, campaign.name, limit_rule(campaign.limits))
            gate = Gate.for_campaign(
                campaign, options, ledger, book=book, clock=clock, outcomes_known=unread is None
            )
            progress = Progress(err, progress_mode, total=rows, settings=settings)
            try:
                result = asyncio.run(
                    _send_all(
                        campaign,
                        endpoint,
                        api_key,
                        ledger,
                        gate,
                        report,
                        options,
                        progress,
                        prepared.chunks,
                        clock,
                        settings,
                    )
                )
            finally:
                progress.close()
        finally:
            _keep_first(errors, report.close)
        if result.error:
            errors.insert(0, result.error)
        code = exit_code_for(report.counts, result.stop, errors[0] if errors else None)
        _keep_first(
            errors,
            lambda: ledger.finish_run(
                int(code), close_reason(result.stop), status_counts(report.counts)
            ),
        )
    finally:
        _keep_first(errors, ledger.close)
        if book is not None:
            if not errors:  # every claim of this run went through the book first
                book.vouch_for(ledger.path, clock())
            book.close()
    code = exit_code_for(report.counts, result.stop, errors[0] if errors else None)
    if errors:
        warnings.append(f"stopped by an error: {errors[0]}")
    summary = _summary(
        campaign,
        "run",
        prepared,
        report,
        stamp(now),
        t0,
        code,
        warnings,
        clock,
        requests_sent=result.requests_sent,
        stop=result.stop,
    )
    # Which ledger, and which of its runs, wrote this report (its `runs` row names it back).
    summary.update(ledger_id=ledger.ledger_id, run_id=ledger.run_id)
    _keep_first(errors, lambda: write_summary(report.path, summary))
    with contextlib.suppress(OSError):  # a terminal gone with its SSH session: files hold it
        print_summary(summary, Samples(), out)
    if errors:
        raise errors[0]  # the CLI prints it in one line, with its exit code
    return int(code)


async def _send_all(
    campaign: Campaign,
    endpoint: str,
    api_key: Secret,
    ledger: Ledger,
    gate: Gate,
    report: ReportWriter,
    options: RunOptions,
    progress: Progress,
    chunks: Iterator[list[Contact]],
    clock: Clock,
    settings: Settings,
) -> RunResult:
    """The event loop's part of `run`: one client, the dispatcher, the stop signals."""
    from dialer.engine.dispatch import Dispatcher
    from dialer.tabbly.client import BodyBuilder, TabblyClient

    client = TabblyClient(
        endpoint,
        api_key,
        campaign.dispatch.concurrency,
        campaign.dispatch.timeout_seconds,
        settings,
    )
    async with client:
        dispatcher = Dispatcher(
            campaign,
            client,
            BodyBuilder(campaign, api_key),
            ledger,
            report,
            options,
            progress=progress,
            gate=gate,
            clock=clock,
            settings=settings,
        )
        loop = asyncio.get_running_loop()
        installed = []
        for sig in filter(honoured, STOP_SIGNALS):  # SIGHUP too: a dropped SSH session
            try:
                previous = signal.getsignal(sig)
                loop.add_signal_handler(sig, dispatcher.interrupt)
                installed.append((sig, previous))
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # not the main thread (tests): stop() is still reachable
        try:
            return await dispatcher.run(chunks)
        finally:
            for sig, previous in installed:
                loop.remove_signal_handler(sig)
                if previous is not None:  # the CLI's start-up handler, back for the summary
                    signal.signal(sig, previous)


def status(campaign: Campaign, out: TextIO | None = None) -> int:
    """What the ledger holds: counts by status, the last run, rows waiting."""
    out = out or sys.stdout
    path = ledger_path(campaign)
    ledger = open_for_reading(campaign)
    if ledger is None:
        print(f"campaign {campaign.name}: no ledger yet at {path} (never run)", file=out)
        return int(ExitCode.OK)
    with ledger:
        counts = ledger.counts()
        last = ledger.last_run()
        groups = ledger.fact_groups()
        rebuilt = ledger.rebuilt()
        histories = ledger.histories()
    # The gate says who the next run sends again, and who only `--retry-unknown` would.
    plain = Gate.for_campaign(campaign, RunOptions(), None)
    retry = plain.with_options(RunOptions(retry_unknown=True))
    waiting: Counter[str] = Counter()
    unknown = 0
    for facts, n in groups:
        if campaign.redial is not None and facts.status is Status.TRIGGERED:
            continue  # judged one person at a time below
        if plain.judge(facts) is None:
            waiting[_label(facts)] += n
        elif retry.judge(facts) is None:
            unknown += n
    outcomes: Counter[str] = Counter(h.last_outcome.value for h in histories)
    later = 0
    if campaign.redial is not None:
        for history in histories:
            verdict = plain.judge(Facts(Status.TRIGGERED, history=history))
            if verdict is None:
                waiting["redial due"] += 1
            elif verdict.status is Status.REDIAL_LATER:
                later += 1
    print(f"campaign {campaign.name}: ledger {path}", file=out)
    if rebuilt:
        print(f"  rebuilt {rebuilt[0]} from {rebuilt[1]} report(s)", file=out)
    print(f"  people in ledger: {sum(counts.values())}", file=out)
    for name, n in sorted(counts.items()):
        print(f"  {name:<15} {n}", file=out)
    if last:
        finished = last["finished_at"] or "never finished (killed?)"
        print(
            f"last run: #{last['id']} started {last['started_at']}, finished {finished}, "
            f"exit {last['exit_code'] if last['exit_code'] is not None else '-'} "
            f"({last['close_reason'] or 'unknown'})",
            file=out,
        )
        if last["report"]:
            print(f"  report: {last['report']}", file=out)
    kinds = ", ".join(f"{n} {label}" for label, n in sorted(waiting.items()))
    print(
        f"waiting: {sum(waiting.values())} row(s) the next run sends again"
        f"{f' ({kinds})' if kinds else ''}, plus any new rows in the sheet",
        file=out,
    )
    if unknown:
        print(
            f"unknown: {unknown} maybe called; `dialer run --retry-unknown` calls them again",
            file=out,
        )
    if outcomes:
        said = ", ".join(f"{outcomes[o]} {o}" for o in CallOutcome if outcomes[o])
        print(f"last call per person: {said} (`dialer sync` reads new outcomes)", file=out)
    if later:
        print(f"redial later: {later} (not due yet, or outcome not synced)", file=out)
    return int(ExitCode.OK)


def _label(facts: Facts) -> str:
    """How `status` names a kind of record the next run sends again."""
    return f"{facts.status} (retryable)" if facts.retryable else str(facts.status)
