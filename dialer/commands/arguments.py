"""What every command's parser shares: the parser class, the exit-code epilog, the campaign
positional, the sheet and report options. Standard library and `core.statuses` only, so that
building a parser loads none of the work behind it."""

from __future__ import annotations

import argparse
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from dialer.core.statuses import EXIT_MEANINGS, UsageError

EPILOG = "exit codes:\n" + "\n".join(
    f"  {int(code):>3}  {meaning}" for code, meaning in EXIT_MEANINGS.items()
)

# What `add_subparsers` hands each command's `add_parser`.
Subparsers = Any  # argparse._SubParsersAction[Parser]: a private type of argparse


class Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so the one-line error path is shared.

    Subparsers made from it are of this class too (argparse's default `parser_class`)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def command_parser(
    subparsers: Subparsers,
    name: str,
    help_text: str,
    example: str,
    *,
    description: str | None = None,
    epilog: str | None = EPILOG,
) -> argparse.ArgumentParser:
    """A command's parser: its one-line help, its description (the help unless longer) with an
    example, the exit codes."""
    return subparsers.add_parser(
        name,
        help=help_text,
        description=f"{description or help_text}\n\nexample:\n  {example}",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_campaign(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("campaign", type=Path, metavar="CAMPAIGN", help="the campaign TOML file")


def add_sheet_options(parser: argparse.ArgumentParser) -> None:
    """--contacts and --report: `validate` and `run` read and report a sheet the same way."""
    parser.add_argument(
        "--contacts",
        type=Path,
        metavar="FILE",
        help="contact sheet (.csv/.xlsx) instead of the campaign's [contacts] source",
    )
    parser.add_argument(
        "--report",
        type=Path,
        metavar="PATH",
        help="report path (.csv, or .xlsx for Excel); default "
        "reports/<campaign>/<UTC time>.csv beside the campaigns folder",
    )


def add_root(parser: argparse.ArgumentParser, default: object = Path(".")) -> None:
    """--root: the project folder a folder-wide command (`optout`, `users`, `audit`) acts on.
    A subcommand's `--root` takes `argparse.SUPPRESS`, so its command's stays when not given."""
    parser.add_argument(
        "--root",
        type=Path,
        default=default,
        metavar="DIR",
        help="project folder holding campaigns/ and state/ (default: the current folder)",
    )


def project_state(root: Path) -> Path:
    """The folder's `state/`, once `root` is seen to be a project folder: one with neither
    `campaigns/` nor `state/` is refused, so a typo never writes where no campaign reads."""
    if not root.is_dir():
        raise UsageError(f"{root}: no such folder (--root names the project folder)")
    if not (root / "campaigns").is_dir() and not (root / "state").is_dir():
        raise UsageError(
            f"{root.absolute()}: no campaigns/ or state/ folder here; run from the project "
            "folder or pass --root DIR"
        )
    return root / "state"


def since_date(text: str) -> datetime:
    """`--since YYYY-MM-DD` as the start of that day in UTC, or a UsageError."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--since {text!r}: give a date as YYYY-MM-DD") from None
    return datetime(day.year, day.month, day.day, tzinfo=UTC)
