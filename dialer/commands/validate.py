"""`dialer validate`, the dry run: every row's verdict in a report, a summary, the first messages;
no network. Its parts are `run`'s too (the consent step judges the sheet the same way, a run's
summary is built the same way), so that a dry run and a real run read, check and report a sheet
alike.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from itertools import chain
from pathlib import Path
from typing import TextIO

from dialer.campaign.model import MATCH_COLUMNS, Campaign
from dialer.campaign.parse import load_campaign
from dialer.campaign.paths import default_report_path, state_folder
from dialer.commands.arguments import Subparsers, add_campaign, add_sheet_options, command_parser
from dialer.core.clock import Clock, stamp, system_clock
from dialer.core.files import shown_names
from dialer.core.statuses import CallOutcome, ExitCode, Status, StopReason, exit_code_for
from dialer.engine.gate import Gate
from dialer.engine.legal_hours import LEGAL_REASON
from dialer.engine.options import RunOptions
from dialer.ledger.contact_limits import ContactBook
from dialer.ledger.optouts import Watch
from dialer.ledger.rebuild import open_for_reading
from dialer.reports.summary import SAMPLE_MESSAGES, Samples, build_summary, print_summary
from dialer.reports.writer import ReportWriter, RowResult, write_summary
from dialer.sheets.cell_types import typed_columns
from dialer.sheets.contacts import Contact
from dialer.sheets.countries import country_name, country_of
from dialer.sheets.pipeline import ContactStream, open_contacts


def add_parser(subparsers: Subparsers) -> None:
    parser = command_parser(
        subparsers,
        "validate",
        "Dry run: check every row, write the report, call nobody.",
        "dialer validate campaigns/example.toml",
    )
    add_campaign(parser)
    add_sheet_options(parser)
    parser.set_defaults(handle=handle)


def handle(args: argparse.Namespace) -> int:
    return validate(load_campaign(args.campaign), contacts=args.contacts, report_path=args.report)


@dataclass(slots=True)
class Prepared:
    """A sheet opened and checked, ready to be reported or sent."""

    stream: ContactStream
    chunks: Iterator[list[Contact]]
    warnings: list[str]


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
    legal: int = 0  # held back now by the legal calling hours alone (the campaign's allow)

    def legal_line(self) -> str | None:
        if not self.legal:
            return None
        return f"{self.legal} held back by legal calling hours now (a later run calls them)"

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


def verdicts(
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
        for contact, (verdict, facts) in zip(chunk, gate.read_chunk(chunk), strict=True):
            verdict = verdict or gate.on_send(contact, now)
            if verdict is not None:
                results.append(RowResult(contact, verdict.status, verdict.reason))
                if tally is not None and verdict.reason.startswith(LEGAL_REASON):
                    tally.legal += 1
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
def reading_gate(
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
        optouts = Watch(state_folder(campaign))  # never created by a dry run
        stack.callback(optouts.close)
        yield Gate.for_campaign(
            campaign,
            options,
            ledger,
            book=book,
            clock=clock,
            outcomes_known=outcomes_known,
            optouts=optouts,
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
        reading_gate(campaign, options, clock, warnings=prepared.warnings) as gate,
        ReportWriter(
            report_path,
            prepared.stream.sheet.headers,
            flush_each=False,
            title=campaign.name,
            sheet_kinds=prepared.stream.column_kinds,
        ) as report,
    ):
        for results in verdicts(prepared, gate, now, samples, tally):
            report.write_in_order(results)
    code = exit_code_for(report.counts, None)
    notes = tally_notes(campaign, tally)
    if tally.unsynced:  # the run reads the logs first (SPEC 10); this dry run reads none
        notes.append(
            f"{tally.unsynced} with their last call's outcome not synced yet: `dialer run` "
            "reads the call logs first and may call them again (`dialer sync` first shows whom)"
        )
    summary = summary_of(
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


def summary_of(
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


def tally_notes(campaign: Campaign, tally: Tally) -> list[str]:
    """The dry run's lines on redials (SPEC 10): who is called again, and why."""
    redials = tally.redial_line(campaign.redial.max_calls) if campaign.redial else None
    return [line for line in (tally.country_line(), tally.legal_line(), redials) if line]
