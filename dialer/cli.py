"""The `dialer` command line: a parser assembled from each command's own module, and every
exception turned into one line and an exit code. No command's work is here.

Each module of `commands/` holds its command's options, help and example (`add_parser`) and
its handler; the work is where the table says:

    validate     commands/validate.py   the dry run: every row's verdict, no network
    run          commands/run.py        question, ledger lock, dispatch (engine/), report
    status       commands/status.py     what the ledger holds
    sync         commands/sync.py       options; the work is outcomes/sync.py's
    ledger       commands/ledger.py     options; `ledger rebuild` is ledger/rebuild.py's
    optout       commands/optout.py     the opt-out register's commands; it is ledger/optouts.py
    users        commands/users.py      the page's people; the store is team/people.py
    audit        commands/audit.py      the audit trail listed, exported, verified: team/audit.py
    serve        commands/serve.py      options; the page is web/'s
    demo         commands/demo.py       `make demo`; `--page` is commands/demo_page.py
    fake-tabbly  commands/fake_tabbly.py  options and serving are fake_tabbly/command.py's

Only the module of the command given is loaded (`dialer sync` loads none of the run's
parts); `dialer --help` loads them all, and the work they hand over is loaded by handlers.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from dialer.commands.arguments import EPILOG, Parser
from dialer.core import console
from dialer.core.statuses import DialerError, ExitCode, error_line, internal_error

# Each command's name and its module in `dialer.commands`, in the order `--help` lists them.
COMMANDS = {
    "validate": "validate",
    "run": "run",
    "status": "status",
    "sync": "sync",
    "ledger": "ledger",
    "optout": "optout",
    "users": "users",
    "audit": "audit",
    "serve": "serve",
    "demo": "demo",
    "fake-tabbly": "fake_tabbly",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or, given a command's name, of that command alone (what
    `main` parses with: the other commands' modules stay unloaded)."""
    parser = Parser(
        prog="dialer",
        description="Bulk campaign dialer for Tabbly voice-AI agents: one personalised call "
        "per spreadsheet row, paced, retried only where safe, accounted for in a report.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in [command] if command in COMMANDS else COMMANDS:
        importlib.import_module(f"dialer.commands.{COMMANDS[name]}").add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The command's exit code; whatever it prints is shown, never obeyed (`console`)."""
    with console.guarded():
        return _main(list(sys.argv[1:] if argv is None else argv))


def _main(argv: list[str]) -> int:
    try:
        args = build_parser(argv[0] if argv else None).parse_args(argv)
        return int(args.handle(args))
    except DialerError as exc:
        print(error_line(exc), file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("dialer: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        return int(ExitCode.ROW_PROBLEMS)
    except Exception as exc:
        if os.environ.get("DIALER_DEBUG"):
            raise
        error = internal_error(exc)
        print(f"dialer: {error} (set DIALER_DEBUG=1 for details)", file=sys.stderr)
        return int(error.exit_code)
