"""`dialer status`: what a campaign's ledger holds, read without writing: counts by status, the
last run, who the next run sends again (judged by the run's own gate)."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from typing import TextIO

from dialer.campaign.model import Campaign
from dialer.campaign.parse import load_campaign
from dialer.campaign.paths import ledger_path, state_folder
from dialer.commands.arguments import Subparsers, add_campaign, command_parser
from dialer.core.statuses import CallOutcome, ExitCode, Status
from dialer.engine.gate import Gate
from dialer.engine.options import RunOptions
from dialer.ledger.facts import Facts
from dialer.ledger.optouts import Register
from dialer.ledger.rebuild import open_for_reading
from dialer.ledger.store import Ledger


def add_parser(subparsers: Subparsers) -> None:
    parser = command_parser(
        subparsers,
        "status",
        "Show what the ledger holds: counts, last run, rows waiting.",
        "dialer status campaigns/example.toml",
    )
    add_campaign(parser)
    parser.set_defaults(handle=handle)


def handle(args: argparse.Namespace) -> int:
    """What the ledger holds; then what an earlier command left in the folder's outbox is
    delivered (dialer.notify), after the status is shown."""
    from dialer.campaign.paths import state_folder
    from dialer.notify.notices import deliver_after

    campaign = load_campaign(args.campaign)
    code = status(campaign)
    deliver_after(state_folder(campaign), wrote=False)
    return code


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
        opted = _opted_out(campaign, ledger)
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
    for facts in opted:  # never sent again, whatever their record says
        if plain.judge(facts) is None and waiting[_label(facts)]:
            waiting[_label(facts)] -= 1
        elif retry.judge(facts) is None and unknown:
            unknown -= 1
    waiting = +waiting
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
    if opted:
        print(
            f"opted out: {len(opted)} of these people are on the folder's opt-out register: "
            "no campaign calls them (`dialer optout list`)",
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


def _opted_out(campaign: Campaign, ledger: Ledger) -> list[Facts]:
    """The records of this campaign's people the folder's opt-out register holds (the
    register is small: each of its numbers is looked up in the ledger)."""
    register = Register.reading(state_folder(campaign))
    if register is None:
        return []
    with register:
        numbers = [entry.called_to for entry in register.listed()]
    found = (ledger.facts(n) for n in numbers)
    return [facts for facts in found if facts.status is not None]
