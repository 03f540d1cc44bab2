"""`dialer run`: the campaign called, from the command line's request to the report's summary.

    code = run(Run(campaign, yes=True), IOContext(out=buffer, clock=fixed))

A `Run` is what was asked (campaign, sheet, report, options); an `IOContext` is where the run
prints and asks, and what it reads of the machine (environment, clock). The order of
operations: the API key and endpoint checked, the call logs synced first for a campaign with
`[redial]` (`outcomes/sync.py`), the question (judged by the dry run's own parts,
`commands/validate.py`), then under the ledger's lock the dispatcher (`engine/`) sends and the
report is written (`reports/`), and the summary closes it. aiohttp is loaded by this command
alone, when it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from dialer.campaign.model import Campaign
from dialer.campaign.parse import load_campaign
from dialer.campaign.paths import default_report_path, reports_folder, state_folder
from dialer.commands.arguments import Subparsers, add_campaign, add_sheet_options, command_parser
from dialer.commands.trail import record
from dialer.commands.validate import (
    Prepared,
    Tally,
    prepare,
    reading_gate,
    summary_of,
    tally_notes,
    validate,
    verdicts,
)
from dialer.core.clock import Clock, stamp, system_clock
from dialer.core.interrupts import STOP_SIGNALS, honoured
from dialer.core.masking import mask_phone, mask_text
from dialer.core.settings import DEFAULTS, Settings
from dialer.core.statuses import (
    DialerError,
    ExitCode,
    Status,
    UsageError,
    close_reason,
    exit_code_for,
)
from dialer.engine.gate import Gate, limit_rule
from dialer.engine.options import RunOptions
from dialer.engine.progress import MODES, Progress
from dialer.ledger.contact_limits import ContactBook
from dialer.ledger.evidence import note_report
from dialer.ledger.optouts import Watch
from dialer.ledger.rebuild import open_for_run
from dialer.ledger.store import Ledger
from dialer.reports.summary import Samples, print_summary
from dialer.reports.writer import ReportWriter, check_report_path, status_counts, write_summary
from dialer.sheets.contacts import Contact

if TYPE_CHECKING:  # aiohttp and the dispatcher are loaded only by `run`
    from dialer.engine.dispatch import RunResult
    from dialer.outcomes.sync import SyncResult
    from dialer.tabbly.client import Secret


@dataclass(frozen=True, slots=True)
class Run:
    """What a run was asked to do: `dialer run`'s arguments, or a test's."""

    campaign: Campaign
    contacts: Path | None = None  # a sheet instead of the campaign's [contacts] source
    report_path: Path | None = None  # default: reports/<campaign>/<UTC time>.csv
    options: RunOptions = field(default_factory=RunOptions)
    yes: bool = False  # no question: required when stdin is not a terminal
    progress_mode: str = "auto"  # one of `engine.progress.MODES`
    settings: Settings = DEFAULTS
    # The check the run is bound to (--expect-*): name -> sha256, for the audit trail.
    fingerprints: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class IOContext:
    """Where a run prints and asks, and what it reads of the machine: the process's own unless
    given (a test passes its streams, answers, environment or clock)."""

    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    stdin: TextIO = field(default_factory=lambda: sys.stdin)
    ask: Callable[[str], str] = input
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    clock: Clock = system_clock


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where the calls go: the endpoint and key, checked before anyone is asked."""

    endpoint: str
    api_key: Secret  # its repr never shows the key


def add_parser(subparsers: Subparsers) -> None:
    parser = command_parser(
        subparsers,
        "run",
        "Run the campaign: call every ready row once, write the report.",
        "TABBLY_API_KEY=... dialer run campaigns/example.toml --yes",
    )
    add_campaign(parser)
    add_sheet_options(parser)
    add = parser.add_argument
    add("--dry-run", action="store_true", help="only validate (same as `dialer validate`)")
    add("--limit", type=_positive_int, metavar="N", help="call at most N people this run")
    add("--recall", action="store_true", help="call again people an earlier run already triggered")
    add(
        "--retry-unknown",
        action="store_true",
        help="send again rows whose earlier call may or may not have been placed "
        "(no answer, dropped connection, 504, killed run)",
    )
    add(
        "--no-sync",
        action="store_true",
        help="a campaign with [redial] reads the call logs first to know who answered; "
        "skip that and redial on the outcomes the ledger already holds",
    )
    add(
        "--progress",
        choices=MODES,
        default="auto",
        help="progress on stderr: a bar on a terminal, log lines otherwise (auto), "
        "or JSON lines for a program watching the run (jsonl)",
    )
    bound = (
        "for programs, such as the web page, that bind a launch to the check they showed: "
        "refuse to run (exit 2, nothing sent) unless "
    )
    add(
        "--expect-campaign-sha256",
        metavar="HEX",
        help=bound + "the campaign file read has this SHA-256 (as sha256sum prints it)",
    )
    add(
        "--expect-contacts-sha256",
        metavar="HEX",
        help=bound + "the contact sheet has this SHA-256; when the campaign has do-not-call "
        "lists, the SHA-256 of the sheet's and each list's hex SHA-256, one a line",
    )
    add(
        "--yes",
        action="store_true",
        help="do not ask for confirmation (required when stdin is not a terminal)",
    )
    parser.set_defaults(handle=handle)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def handle(args: argparse.Namespace) -> int:
    campaign = load_campaign(args.campaign)
    if args.dry_run:
        return validate(campaign, contacts=args.contacts, report_path=args.report)
    contacts = args.contacts
    if args.expect_campaign_sha256 is not None or args.expect_contacts_sha256 is not None:
        from dialer.campaign.binding import enforce
        from dialer.sheets.pipeline import sheet_path

        # Resolved once: the run reads the very sheet that was hashed, even if a newer file
        # matching the campaign's `source` glob appears meanwhile.
        contacts = sheet_path(campaign, args.contacts)
        enforce(
            campaign,
            contacts,
            expect_campaign=args.expect_campaign_sha256,
            expect_contacts=args.expect_contacts_sha256,
        )
    options = RunOptions(
        limit=args.limit,
        recall=args.recall,
        retry_unknown=args.retry_unknown,
        sync=not args.no_sync,
    )
    return run(
        Run(
            campaign,
            contacts=contacts,
            report_path=args.report,
            options=options,
            yes=args.yes,
            progress_mode=args.progress,
            fingerprints=_fingerprints(args),
        )
    )


def _fingerprints(args: argparse.Namespace) -> dict[str, str]:
    """The --expect-* digests given (checked by `binding.enforce` before this is read)."""
    given = {
        "campaign_sha256": args.expect_campaign_sha256,
        "contacts_sha256": args.expect_contacts_sha256,
    }
    return {name: digest for name, digest in given.items() if digest is not None}


def run(request: Run, io: IOContext | None = None) -> int:
    """The campaign: consent, ledger lock, dispatch, report, summary; returns the exit code.
    How it ended is then told to the folder's webhooks (`dialer.notify`), which never
    changes the exit code; a run declined at the question tells nothing."""
    io = io or IOContext()
    said = _Said()
    try:
        code = _run(request, io, said)
    except BaseException as exc:
        _notify_end(request, io, said, exc)
        raise
    if said.summary:
        _notify_end(request, io, said, None, code)
    return code


@dataclass(slots=True)
class _Said:
    """What a run's end tells the webhooks: its summary, and what the sync it made first
    found (told at the end: nothing is written for them before the first call)."""

    summary: dict[str, object] = field(default_factory=dict)
    synced: SyncResult | None = None


def _notify_end(
    request: Run, io: IOContext, said: _Said, exc: BaseException | None, code: int = 0
) -> None:
    """The run's event (`run_finished`, `wallet_empty`, `run_failed`) into the outbox, and
    the outbox delivered; an interrupted run only writes it (the next command delivers)."""
    from dialer.notify.notices import run_ended

    error = None
    if isinstance(exc, DialerError):
        code, error = int(exc.exit_code), str(exc)
    elif isinstance(exc, (KeyboardInterrupt, SystemExit)):
        code, error = int(ExitCode.INTERRUPTED), "interrupted"
    elif exc is not None:
        code, error = int(ExitCode.INTERNAL), f"internal error ({type(exc).__name__})"
    synced = said.synced
    run_ended(
        request.campaign,
        code=code,
        summary=said.summary or None,
        error=error,
        interrupted=code == ExitCode.INTERRUPTED,
        now=io.clock(),
        environ=io.environ,
        err=io.err,
        settings=request.settings,
        opted_out=synced.opted_out if synced else (),
        changed=synced.changed if synced else (),
    )


def _run(request: Run, io: IOContext, said: _Said) -> int:
    campaign = request.campaign
    from dialer.tabbly.client import api_key_from  # aiohttp: loaded by `run` alone

    api_key = api_key_from(campaign, io.environ)
    endpoint = campaign.checked_endpoint(io.environ)
    if request.report_path is not None:  # before the question: a run that cannot report is refused
        check_report_path(request.report_path)
    if not request.yes and not io.stdin.isatty():
        raise UsageError("--yes is required when stdin is not a terminal (cron, scripts)")
    unread = None
    if campaign.redial is not None and request.options.sync:
        unread = _sync_first(request, api_key, io, said)
        if unread is not None:
            print(f"warning: {unread}", file=io.err)
    rows: int | None = None
    if not request.yes:
        rows = _ask_consent(request, io, outcomes_known=unread is None)
        if rows is None:
            print("Nothing sent.", file=io.out)
            return int(ExitCode.OK)
    code = _call(request, io, Upstream(endpoint, api_key), unread, rows, said)
    if code == ExitCode.INTERRUPTED:
        from dialer.team.audit import STOP  # the trail: loaded by a run, not by the parser

        record(state_folder(campaign), STOP, campaign.name, exit_code=code)
    return code


def _launch_details(request: Run, rows: int | None) -> dict[str, object]:
    """What the audit trail keeps of a launch: the check it is bound to, the sheet, what was
    asked, and the sheet's rows when someone was shown them."""
    options, sheet = request.options, request.contacts
    given = {
        "sheet": sheet.name if sheet else None,
        "sheet_rows": rows,
        "limit": options.limit,
        "recall": options.recall,
        "retry_unknown": options.retry_unknown,
    }
    shown = {name: value for name, value in given.items() if value}
    return {**request.fingerprints, **shown, "asked": not request.yes}


def _ask_consent(request: Run, io: IOContext, outcomes_known: bool) -> int | None:
    """Show who would be called and ask; reads the whole sheet once (no network, no report).

    The number of rows in the sheet when the answer is yes (the progress bar's total), else None.
    """
    campaign, options, out = request.campaign, request.options, io.out
    prepared = prepare(campaign, request.contacts)
    counts: Counter[str] = Counter()
    samples = Samples()
    tally = Tally()
    with reading_gate(campaign, options, io.clock, outcomes_known) as gate:
        for results in verdicts(prepared, gate, io.clock(), samples, tally):
            counts.update(r.status for r in results)
    to_call = counts[Status.READY]
    if options.limit is not None:
        to_call = min(to_call, options.limit)
    print(f"campaign {campaign.name}: {prepared.stream.sheet.path}", file=out)
    for status, n in status_counts(counts).items():
        if n:
            print(f"  {status:<15} {n}", file=out)
    for note in tally_notes(campaign, tally):
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
        answer = io.ask("Start calling? [y/N] ")
    except EOFError:  # Ctrl-D, or the terminal's input closed: the default answer, no
        print(file=out)
        answer = ""
    return sum(counts.values()) if answer.strip().lower() in ("y", "yes") else None


def retry_unknown_warning(maybe_called: int, *, upper_bound: bool = False) -> str:
    """The line `--retry-unknown` earns before anything is sent: nobody should pass it lightly."""
    n = f"up to {maybe_called}" if upper_bound else str(maybe_called)
    return (
        f"WARNING: --retry-unknown: {n} of the people to call may already have been called "
        "by an earlier run (status unknown: sent, no answer); they will be called again"
    )


_NOBODY_REDIALED = "nobody is redialed this run (new rows are still called)"


def _sync_first(request: Run, api_key: Secret, io: IOContext, said: _Said) -> str | None:
    """A campaign with `[redial]` reads the call logs before it runs (SPEC 10); None when
    they were read, else why not: then nobody is redialed (an unknown outcome is never a
    reason to call again), while new rows are still called. A sync failing in any way,
    a defect of ours included, is such a why: the nightly run still calls its new rows."""
    from dialer.outcomes.sync import describe, synced

    try:
        with synced(
            request.campaign,
            api_key=api_key,
            environ=io.environ,
            clock=io.clock,
            settings=request.settings,
        ) as done:
            if done is None:
                return None  # never run: nobody to redial
            result = done[1]
    except DialerError as exc:
        return f"{exc}; {_NOBODY_REDIALED}"
    except Exception as exc:  # its text may hold the logs URL, so the key: its type only
        return f"call logs: the sync failed ({type(exc).__name__}); {_NOBODY_REDIALED}"
    print(f"call outcomes synced: {describe(result)}", file=io.out)
    said.synced = result
    return None


def _keep_first(errors: list[DialerError], action: Callable[[], object]) -> None:
    """Run one closing step; a file that cannot be written is remembered, not raised, so the
    steps after it (the summary above all) still happen. The first error is the run's."""
    try:
        action()
    except DialerError as exc:
        errors.append(exc)


def _call(
    request: Run,
    io: IOContext,
    upstream: Upstream,
    unread: str | None,
    rows: int | None,
    said: _Said,
) -> int:
    """The sending, under the ledger's lock: from the sheet's first chunk to the summary
    (into `said` too). `unread` says why the call logs were not read (None: read, or no
    [redial])."""
    campaign = request.campaign
    now, t0 = io.clock(), time.monotonic()
    prepared = prepare(campaign, request.contacts)
    report_path = request.report_path or default_report_path(campaign, now)
    errors: list[DialerError] = []  # files that could not be written; the first is reported
    ledger = open_for_run(campaign, io.clock)  # refuses a lost, foreign or unwritable ledger
    from dialer.team.audit import LAUNCH  # the trail: loaded by a run, not by the parser

    # A launch is in the trail once its ledger is held, before anyone is called.
    record(state_folder(campaign), LAUNCH, campaign.name, **_launch_details(request, rows))
    book: ContactBook | None = None
    optouts = Watch(state_folder(campaign))  # the register, read as rows are read
    try:
        # The folder's contact counts: made by the first campaign with [limits] (SPEC 10).
        book = ContactBook.open(state_folder(campaign), now, create=campaign.limits is not None)
        warnings = _opening_warnings(request, io, ledger, book, prepared, unread)
        note_report(reports_folder(campaign), report_path)  # found again if the ledger is lost
        report = ReportWriter(
            report_path,
            prepared.stream.sheet.headers,
            title=campaign.name,
            sheet_kinds=prepared.stream.column_kinds,
        )
        try:
            ledger.start_run(str(prepared.stream.sheet.path), str(report_path))
            if book is not None:  # its claim refuses opt-outs too, in the same transaction
                ledger.use_book(book, campaign.name, limit_rule(campaign.limits))
            else:  # no shared file yet: the claims look the register up once it appears
                ledger.use_optouts(optouts)
            gate = Gate.for_campaign(
                campaign,
                request.options,
                ledger,
                book=book,
                clock=io.clock,
                outcomes_known=unread is None,
                optouts=optouts,
            )
            progress = Progress(
                io.err, request.progress_mode, total=rows, settings=request.settings
            )
            try:
                result = asyncio.run(
                    _send_all(
                        request, io, upstream, ledger, gate, report, progress, prepared.chunks
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
        optouts.close()
        if book is not None:
            if not errors:  # every claim of this run went through the book first
                book.vouch_for(ledger.path, io.clock())
            book.close()
    code = exit_code_for(report.counts, result.stop, errors[0] if errors else None)
    if errors:
        warnings.append(f"stopped by an error: {errors[0]}")
    summary = summary_of(
        campaign,
        "run",
        prepared,
        report,
        stamp(now),
        t0,
        code,
        warnings,
        io.clock,
        requests_sent=result.requests_sent,
        stop=result.stop,
    )
    # Which ledger, and which of its runs, wrote this report (its `runs` row names it back).
    summary.update(ledger_id=ledger.ledger_id, run_id=ledger.run_id)
    said.summary.update(summary)
    _keep_first(errors, lambda: write_summary(report.path, summary))
    with contextlib.suppress(OSError):  # a terminal gone with its SSH session: files hold it
        print_summary(summary, Samples(), io.out)
    if errors:
        raise errors[0]  # the CLI prints it in one line, with its exit code
    return int(code)


def _opening_warnings(
    request: Run,
    io: IOContext,
    ledger: Ledger,
    book: ContactBook | None,
    prepared: Prepared,
    unread: str | None,
) -> list[str]:
    """The summary's warnings as the ledger is opened; those nobody saw yet go to stderr
    before the first call. Adopts the rows an earlier run left being sent."""
    orphans = ledger.adopt_orphans()
    warnings = list(prepared.warnings)
    restored = book.restored_warning() if book is not None else None
    if restored:
        print(f"warning: {restored}", file=io.err)
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
    options = request.options
    unknown = ledger.counts().get(Status.UNKNOWN, 0) if options.retry_unknown and request.yes else 0
    if unknown:
        warning = retry_unknown_warning(unknown, upper_bound=True)
        print(warning, file=io.err)
        warnings.append(warning)
    return warnings


async def _send_all(
    request: Run,
    io: IOContext,
    upstream: Upstream,
    ledger: Ledger,
    gate: Gate,
    report: ReportWriter,
    progress: Progress,
    chunks: Iterator[list[Contact]],
) -> RunResult:
    """The event loop's part of `run`: one client, the dispatcher, the stop signals."""
    from dialer.engine.dispatch import Dispatcher
    from dialer.tabbly.client import BodyBuilder, TabblyClient

    campaign, settings = request.campaign, request.settings
    client = TabblyClient(
        upstream.endpoint,
        upstream.api_key,
        campaign.dispatch.concurrency,
        campaign.dispatch.timeout_seconds,
        settings,
    )
    async with client:
        dispatcher = Dispatcher(
            campaign,
            client,
            BodyBuilder(campaign, upstream.api_key),
            ledger,
            report,
            request.options,
            progress=progress,
            gate=gate,
            clock=io.clock,
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
