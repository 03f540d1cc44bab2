"""`dialer sync`: read Tabbly's call logs into the ledger, write the results (SPEC 10).

    result = await sync_ledger(ledger, campaign, api_key=key, since=None, transcripts=False)
    result.counts[CallOutcome.ANSWERED], result.answer_rate
    sync(campaign, since=None, results_path=None)       # the command: exit code 0

The logs are read for the campaign's agent from the day before the oldest `pending` call
(no further back than `logs_lookback_days`; or from `--since`) to tomorrow, in the campaign's
`logs_timezone`; with nothing pending and no `--since` nothing is read. Each row is matched to
a call this campaign placed (`dialer.outcomes.matching`), unless a call another campaign of the
folder placed with the same agent is nearer it (`dialer.outcomes.shared_agent`): a call whose
only candidate row is another's stays pending and is read again. What the rows say is stored in
one transaction at the end: a sync that cannot read every page stores nothing and writes no file.
`dialer run` calls `sync_ledger` with the ledger it holds; the command holds it the same way
(`open_for_run`), so a sync while a run of the campaign is going is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sqlite3
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, TextIO
from zoneinfo import ZoneInfo

from dialer.campaign.model import Campaign
from dialer.campaign.paths import default_results_path, ledger_path
from dialer.core.clock import Clock, stamp, system_clock
from dialer.core.files import shown
from dialer.core.settings import DEFAULTS, Settings
from dialer.core.statuses import CallOutcome, ExitCode, LedgerError, UsageError
from dialer.ledger import dials
from dialer.ledger.rebuild import open_for_reading, open_for_run
from dialer.outcomes.results_file import check_output, write_results

if TYPE_CHECKING:
    from dialer.ledger.store import Ledger
    from dialer.tabbly.client import Secret


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What a sync found. `counts`: each person's last call's outcome, every outcome
    present; `answer_rate`: answered over the people with a known outcome (None: nobody)."""

    counts: dict[CallOutcome, int]
    matched_rows: int
    ignored_rows: int  # rows of someone else's calls (another agent, a number not called)
    pages: int
    cost: float  # every call the logs priced, added up
    answer_rate: float | None
    dates: tuple[date, date] | None = None  # the logs' days read; None: nothing was pending
    updated: int = 0  # calls whose outcome this sync stored or improved
    others_rows: int = 0  # of the ignored rows, those of other campaigns' calls (same agent)
    bad_rows: int = 0  # rows with a value unreadable or out of range (ignored, the row kept)
    bad_fields: tuple[str, ...] = ()  # which fields those were, sorted
    opted_out: tuple[str, ...] = ()  # people newly in the opt-out register, heard on a call
    # What each person's last call's disposition (`call_outcome`) was, most first: the top
    # ones and "other"; people whose last call has none are not counted.
    dispositions: tuple[tuple[str, int], ...] = ()


# The longest disposition `dialer sync` prints whole (a label, not a text).
_DISPOSITION_CHARS = 40
# How `dialer sync` says what it stored; the page reads the number back (dialer/web/results).
UPDATED = "{n} call(s) updated"
UPDATED_LINE = re.compile(r"(\d+) call\(s\) updated")


def describe(result: SyncResult) -> str:
    """One line for `dialer run`'s start: what the last calls came to, and what was read."""
    said = ", ".join(f"{n} {o.value}" for o, n in result.counts.items() if n) or "nobody called"
    rate = "-" if result.answer_rate is None else f"{result.answer_rate:.1%}"
    read = (
        f"{result.matched_rows} log row(s) matched from {result.pages} page(s)"
        if result.dates is not None
        else "no call waiting for its outcome, logs not read"
    )
    return f"{said}; answer rate {rate}; total cost {result.cost:.2f} ({read}){_bad(result)}"


def _bad(result: SyncResult) -> str:
    """What a sync says of rows with values it ignored; '' when there were none."""
    if not result.bad_rows:
        return ""
    return (
        f"; {result.bad_rows} row(s) with unreadable or out-of-range values, those values "
        f"ignored ({', '.join(result.bad_fields)})"
    )


def date_range(
    since: date | None,
    oldest_pending: datetime | None,
    now: datetime,
    zone: tzinfo,
    settings: Settings = DEFAULTS,
) -> tuple[date, date] | None:
    """The days of logs to read: `since` (else the day before the oldest pending call, no
    earlier than the lookback) to tomorrow, in the logs' zone; None when there is nothing to
    read (no `since`, nothing pending)."""
    today = now.astimezone(zone).date()
    if since is None:
        if oldest_pending is None:
            return None
        since = max(
            oldest_pending.astimezone(zone).date() - timedelta(days=1),
            today - timedelta(days=settings.logs_lookback_days),
        )
    return since, today + timedelta(days=1)


async def sync_ledger(
    ledger: Ledger,
    campaign: Campaign,
    *,
    api_key: Secret,
    since: date | None,
    transcripts: bool = False,
    environ: Mapping[str, str] = os.environ,
    clock: Clock = system_clock,
    settings: Settings = DEFAULTS,
) -> SyncResult:
    """Read the logs into `ledger` (held by the caller); a LogsError when they cannot be read,
    with nothing stored."""
    conn = ledger.connection
    zone = ZoneInfo(campaign.logs_timezone)
    dates = date_range(since, dials.oldest_pending(conn), clock(), zone, settings)
    matched = ignored = pages = updated = others = bad_rows = 0
    bad_fields: set[str] = set()
    opted_out: tuple[str, ...] = ()
    if dates is not None:
        from dialer.outcomes.listening import Listening
        from dialer.outcomes.matching import OWN_CLAIM, Matcher
        from dialer.outcomes.shared_agent import other_dials
        from dialer.tabbly.call_logs import LogsQuery, read_logs  # aiohttp: only when logs are read
        from dialer.tabbly.client import Scrubber

        url = campaign.checked_endpoint(environ, logs=True)
        # Dials from a day before the first day read: a row is logged when its call is placed.
        first = datetime.combine(dates[0], time(), zone) - timedelta(days=1)
        dialled = dials.dials_from(conn, first)
        # Without --transcripts none is kept, not even in memory while the pages come. The
        # other campaigns' calls with this agent are there so that their rows stay theirs.
        matcher = Matcher(
            dialled,
            campaign.agent_id,
            # This campaign's own claims left by a killed run: their rows are theirs.
            others=chain(
                other_dials(campaign, first), dials.claims_in_flight(conn, first, OWN_CLAIM)
            ),
            transcripts=transcripts,
            skew=timedelta(seconds=settings.logs_clock_skew_seconds),
        )
        query = LogsQuery(
            url=url,
            organization_id=campaign.organization_id,
            agent_id=campaign.agent_id,
            api_key=api_key,
            date_from=dates[0],
            date_to=dates[1],
            zone=zone,
        )
        listening = Listening(campaign)
        async for page in read_logs(query, settings):
            pages += 1
            for row in page:
                if row.bad_values:
                    bad_rows += 1
                    bad_fields.update(row.bad_values)
                if matcher.feed(row) is None:
                    ignored += 1
                else:
                    matched += 1
                if matcher.last is not None:  # a call of the folder: did the person say no?
                    listening.hear(row, matcher.last)
        others = matcher.others_rows
        # Before the outcomes: a sync killed between the two has recorded who said no.
        opted_out = listening.record(clock())
        try:
            updated = dials.store(
                conn,
                matcher.results(),
                transcripts=transcripts,
                synced_at=stamp(clock()),
                scrub=Scrubber(api_key),
            )
        except sqlite3.Error as exc:
            raise LedgerError(f"{ledger.path}: cannot write the ledger: {exc}") from None
    counts = dials.last_outcomes(conn)
    return SyncResult(
        counts=counts,
        matched_rows=matched,
        ignored_rows=ignored,
        pages=pages,
        cost=dials.total_cost(conn),
        answer_rate=dials.answer_rate(counts),
        dates=dates,
        updated=updated,
        others_rows=others,
        bad_rows=bad_rows,
        bad_fields=tuple(sorted(bad_fields)),
        opted_out=opted_out,
        dispositions=tuple(dials.dispositions(conn)),
    )


@contextlib.contextmanager
def synced(
    campaign: Campaign,
    *,
    api_key: Secret,
    since: date | None = None,
    transcripts: bool = False,
    environ: Mapping[str, str] = os.environ,
    clock: Clock = system_clock,
    settings: Settings = DEFAULTS,
) -> Iterator[tuple[Ledger, SyncResult] | None]:
    """The campaign's ledger, taken (refused during a run) and synced, with what the sync
    found; None for a campaign never run (no ledger is created for it). A LogsError when the
    logs cannot be read, with nothing stored."""
    if _never_run(campaign):
        yield None
        return
    with open_for_run(campaign, clock) as ledger:
        result = asyncio.run(
            sync_ledger(
                ledger,
                campaign,
                api_key=api_key,
                since=since,
                transcripts=transcripts,
                environ=environ,
                clock=clock,
                settings=settings,
            )
        )
        yield ledger, result


def sync(
    campaign: Campaign,
    *,
    since: date | None = None,
    results_path: Path | None = None,
    transcripts: bool = False,
    sheet: Path | None = None,
    out: Path | None = None,
    environ: Mapping[str, str] = os.environ,
    clock: Clock = system_clock,
    settings: Settings = DEFAULTS,
    out_stream: TextIO | None = None,
    on_result: Callable[[SyncResult], object] | None = None,
) -> int:
    """The command: check every input, sync, write the results (and the sheet with outcomes),
    print what was found; the exit code. `on_result` is handed what a sync that ran found
    (the command's audit entry)."""
    from dialer.outcomes.writeback import Writeback

    out_stream = out_stream or sys.stdout
    if (sheet is None) != (out is None):
        raise UsageError("--sheet and --out go together: the sheet to read and the file to write")
    from dialer.tabbly.client import api_key_from

    api_key = api_key_from(campaign, environ)
    campaign.checked_endpoint(environ, logs=True)
    now = clock()
    tomorrow = now.astimezone(ZoneInfo(campaign.logs_timezone)).date() + timedelta(days=1)
    if since is not None and since > tomorrow:
        raise UsageError(f"--since {since.isoformat()} is in the future")
    results_path = results_path or default_results_path(campaign, now)
    check_output(results_path, "--results")
    writeback = Writeback.open(campaign, sheet, out) if sheet and out else None
    with synced(
        campaign,
        api_key=api_key,
        since=since,
        transcripts=transcripts,
        environ=environ,
        clock=clock,
        settings=settings,
    ) as done:
        if done is None:
            print(
                f"campaign {campaign.name}: never run (no ledger yet): nothing to sync",
                file=out_stream,
            )
            return int(ExitCode.OK)
        ledger, result = done
        people = write_results(ledger.connection, campaign, results_path)
        rows = writeback.write(ledger.connection) if writeback else None
    _print(campaign, result, out_stream)
    if on_result is not None:
        on_result(result)
    print(f"results: {results_path} ({people} people)", file=out_stream)
    if writeback is not None:
        print(f"sheet with outcomes: {writeback.out} ({rows} rows)", file=out_stream)
    return int(ExitCode.OK)


def _never_run(campaign: Campaign) -> bool:
    """No ledger, and no report showing anyone called (a lost ledger is refused here): a
    sync must not create an empty ledger for a campaign that never ran."""
    if ledger_path(campaign).exists():
        return False
    found = open_for_reading(campaign)
    if found is not None:  # made meanwhile by a run
        found.close()
    return found is None


def _others(result: SyncResult) -> str:
    if not result.others_rows:
        return ""
    return f" ({result.others_rows} of them other campaigns' calls with this agent)"


def _print(campaign: Campaign, result: SyncResult, out: TextIO) -> None:
    if result.dates is None:
        print(
            f"campaign {campaign.name}: no call is waiting for its outcome; call logs not read "
            "(--since YYYY-MM-DD reads them anyway)",
            file=out,
        )
    else:
        first, last = result.dates
        print(
            f"campaign {campaign.name}: call logs {first.isoformat()} to {last.isoformat()}, "
            f"{result.pages} page(s): {result.matched_rows} row(s) matched this campaign's "
            f"calls, {result.ignored_rows} ignored{_others(result)}; "
            f"{UPDATED.format(n=result.updated)}{_bad(result)}",
            file=out,
        )
    print("each person's last call:", file=out)
    for outcome in CallOutcome:
        print(f"  {outcome.value:<10} {result.counts.get(outcome, 0)}", file=out)
    known = sum(n for o, n in result.counts.items() if o is not CallOutcome.PENDING)
    if result.answer_rate is None:
        print("answer rate: - (no call has a known outcome yet)", file=out)
    else:
        answered = result.counts.get(CallOutcome.ANSWERED, 0)
        print(
            f"answer rate: {result.answer_rate:.1%} ({answered} of {known} people with a "
            "known outcome)",
            file=out,
        )
    print(f"total cost: {result.cost:.2f}", file=out)
    if result.dispositions:
        print("what they said (each person's last call's disposition):", file=out)
        # An upstream's text on one line, numbers masked, cut.
        names = [shown(d, _DISPOSITION_CHARS) for d, _ in result.dispositions]
        width = max(10, *map(len, names))
        for name, (_, n) in zip(names, result.dispositions, strict=True):
            print(f"  {name:<{width}} {n}", file=out)
    if result.opted_out:
        print(
            f"opted out on a call: {len(result.opted_out)} (asked not to be called: no "
            "campaign of this folder calls them again; dialer optout list shows them)",
            file=out,
        )
