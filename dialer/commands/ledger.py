"""`dialer ledger rebuild`: its options; the work (a lost ledger rebuilt from the campaign's
reports) is `ledger/rebuild.py`'s, loaded when the command runs."""

from __future__ import annotations

import argparse

from dialer.commands.arguments import EPILOG, Subparsers, add_campaign, command_parser

EXAMPLE = "dialer ledger rebuild campaigns/example.toml"
REBUILD_HELP = (
    "Rebuild a lost ledger (missing, empty, or missing runs) from the campaign's reports: "
    "their triggered and unknown rows, newest report first. A ledger that is not lost is "
    "never replaced; the old file is kept aside, never deleted."
)


def add_parser(subparsers: Subparsers) -> None:
    maintenance = command_parser(
        subparsers,
        "ledger",
        "Ledger maintenance: rebuild a lost ledger from the campaign's reports.",
        EXAMPLE,
    )
    actions = maintenance.add_subparsers(
        dest="ledger_command",
        required=True,
        metavar="ACTION",
        help="rebuild: a new ledger from the reports' triggered and unknown rows",
    )
    rebuild = actions.add_parser(
        "rebuild",
        help=REBUILD_HELP,
        description=f"{REBUILD_HELP}\n\nexample:\n  {EXAMPLE}",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_campaign(rebuild)
    rebuild.set_defaults(handle=handle)


def handle(args: argparse.Namespace) -> int:
    from dialer.campaign.parse import load_campaign
    from dialer.ledger.rebuild import rebuild

    return rebuild(load_campaign(args.campaign))
