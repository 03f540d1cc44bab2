"""`dialer fake-tabbly`: the local stand-in upstream; its options and serving are
`fake_tabbly/command.py`'s (also `python -m dialer.fake_tabbly`), its aiohttp server loaded
only when it runs."""

from __future__ import annotations

import argparse

from dialer.commands.arguments import Subparsers, command_parser
from dialer.fake_tabbly import add_arguments, run_from_args


def add_parser(subparsers: Subparsers) -> None:
    parser = command_parser(
        subparsers,
        "fake-tabbly",
        "Run a local stand-in for the Tabbly trigger-call API (demo, tests, benchmarks).",
        "dialer fake-tabbly --port 8787 --balance 5 --fail-rate 0.1",
        description="A local stand-in for the Tabbly trigger-call API on 127.0.0.1.",
        epilog=None,
    )
    add_arguments(parser)
    parser.set_defaults(handle=handle)


def handle(args: argparse.Namespace) -> int:
    return run_from_args(args)
