"""`dialer sync`: its options; the work (call logs -> outcomes -> ledger, results file, the
sheet written back) is `outcomes/sync.py`'s, loaded when the command runs."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from dialer.commands.arguments import Subparsers, add_campaign, command_parser

if TYPE_CHECKING:  # loaded by the handler
    from dialer.outcomes.sync import SyncResult

# Tabbly did not exist before this: an earlier --since is a typo (and 0001-01-01 minus a day
# would not even be a date).
EARLIEST_SINCE = date(2000, 1, 1)


def add_parser(subparsers: Subparsers) -> None:
    parser = command_parser(
        subparsers,
        "sync",
        "Read call outcomes from Tabbly's call logs into the ledger; write a results file.",
        "TABBLY_API_KEY=... dialer sync campaigns/example.toml --sheet leads.xlsx "
        "--out leads-called.xlsx",
    )
    parser.description = (parser.description or "") + (
        "\n\nThe call logs are read into the ledger in one step: when they cannot be read "
        "(exit 2) nothing is stored and no file is written."
    )
    add_campaign(parser)
    add = parser.add_argument
    add(
        "--since",
        type=_day,
        metavar="YYYY-MM-DD",
        help="read the logs from this day (default: the day before the oldest call still "
        "waiting for its outcome; nothing is read when none is waiting)",
    )
    add(
        "--results",
        type=Path,
        metavar="PATH",
        help="results file, one line per person called (.csv, or .xlsx for Excel); default "
        "reports/<campaign>/<UTC time>.results.csv beside the campaigns folder",
    )
    add(
        "--transcripts",
        action="store_true",
        help="keep each call's transcript in the ledger too (they are large)",
    )
    add(
        "--sheet",
        type=Path,
        metavar="FILE",
        help="a sheet (.csv/.xlsx) to copy with each row's outcome appended; needs --out",
    )
    add(
        "--out",
        type=Path,
        metavar="FILE",
        help="where the copy of --sheet goes (.csv or .xlsx; must not exist yet)",
    )
    parser.set_defaults(handle=handle)


def _day(text: str) -> date:
    try:
        if len(text) != 10:
            raise ValueError
        day = date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}") from None
    if day < EARLIEST_SINCE:
        raise argparse.ArgumentTypeError(f"must be {EARLIEST_SINCE.isoformat()} or later")
    return day


def handle(args: argparse.Namespace) -> int:
    from dialer.campaign.parse import load_campaign
    from dialer.campaign.paths import state_folder
    from dialer.commands.trail import record
    from dialer.outcomes.sync import sync
    from dialer.team.audit import SYNC

    campaign = load_campaign(args.campaign)
    found: list[SyncResult] = []
    code = sync(
        campaign,
        since=args.since,
        results_path=args.results,
        transcripts=args.transcripts,
        sheet=args.sheet,
        out=args.out,
        on_result=found.append,
    )
    for result in found:
        record(state_folder(campaign), SYNC, campaign.name, **_counts(result))
    return code


def _counts(result: SyncResult) -> dict[str, object]:
    """What the audit trail keeps of a sync: what it read and stored, each outcome's count."""
    return {
        "matched_rows": result.matched_rows,
        "updated": result.updated,
        "opted_out": len(result.opted_out),
        "outcomes": {outcome.value: n for outcome, n in result.counts.items() if n},
    }
