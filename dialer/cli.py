"""Argument parsing and exit codes only: every command's work is in `commands`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from dialer.campaign.model import Campaign
from dialer.campaign.parse import load_campaign
from dialer.commands import run as commands
from dialer.core import console
from dialer.core.statuses import (
    EXIT_MEANINGS,
    DialerError,
    ExitCode,
    UsageError,
    error_line,
    internal_error,
)
from dialer.engine.options import RunOptions
from dialer.engine.progress import MODES

EPILOG = "exit codes:\n" + "\n".join(
    f"  {int(code):>3}  {meaning}" for code, meaning in EXIT_MEANINGS.items()
)


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so the one-line error path is shared."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


# Tabbly did not exist before this: an earlier --since is a typo (and 0001-01-01 minus a day
# would not even be a date).
EARLIEST_SINCE = date(2000, 1, 1)


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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="dialer",
        description="Bulk campaign dialer for Tabbly voice-AI agents: one personalised call "
        "per spreadsheet row, paced, retried only where safe, accounted for in a report.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

    def campaign_command(name: str, help_text: str, example: str) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=help_text,
            description=f"{help_text}\n\nexample:\n  {example}",
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.add_argument("campaign", type=Path, metavar="CAMPAIGN", help="the campaign TOML file")
        return p

    def sheet_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--contacts",
            type=Path,
            metavar="FILE",
            help="contact sheet (.csv/.xlsx) instead of the campaign's [contacts] source",
        )
        p.add_argument(
            "--report",
            type=Path,
            metavar="PATH",
            help="report path (.csv, or .xlsx for Excel); default "
            "reports/<campaign>/<UTC time>.csv beside the campaigns folder",
        )

    v = campaign_command(
        "validate",
        "Dry run: check every row, write the report, call nobody.",
        "dialer validate campaigns/example.toml",
    )
    sheet_options(v)

    r = campaign_command(
        "run",
        "Run the campaign: call every ready row once, write the report.",
        "TABBLY_API_KEY=... dialer run campaigns/example.toml --yes",
    )
    sheet_options(r)
    r.add_argument(
        "--dry-run", action="store_true", help="only validate (same as `dialer validate`)"
    )
    r.add_argument(
        "--limit", type=_positive_int, metavar="N", help="call at most N people this run"
    )
    r.add_argument(
        "--recall", action="store_true", help="call again people an earlier run already triggered"
    )
    r.add_argument(
        "--retry-unknown",
        action="store_true",
        help="send again rows whose earlier call may or may not have been placed "
        "(no answer, dropped connection, 504, killed run)",
    )
    r.add_argument(
        "--no-sync",
        action="store_true",
        help="a campaign with [redial] reads the call logs first to know who answered; "
        "skip that and redial on the outcomes the ledger already holds",
    )
    r.add_argument(
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
    r.add_argument(
        "--expect-campaign-sha256",
        metavar="HEX",
        help=bound + "the campaign file read has this SHA-256 (as sha256sum prints it)",
    )
    r.add_argument(
        "--expect-contacts-sha256",
        metavar="HEX",
        help=bound + "the contact sheet has this SHA-256; when the campaign has do-not-call "
        "lists, the SHA-256 of the sheet's and each list's hex SHA-256, one a line",
    )
    r.add_argument(
        "--yes",
        action="store_true",
        help="do not ask for confirmation (required when stdin is not a terminal)",
    )

    campaign_command(
        "status",
        "Show what the ledger holds: counts, last run, rows waiting.",
        "dialer status campaigns/example.toml",
    )

    s = campaign_command(
        "sync",
        "Read call outcomes from Tabbly's call logs into the ledger; write a results file.",
        "TABBLY_API_KEY=... dialer sync campaigns/example.toml --sheet leads.xlsx "
        "--out leads-called.xlsx",
    )
    s.description = (s.description or "") + (
        "\n\nThe call logs are read into the ledger in one step: when they cannot be read "
        "(exit 2) nothing is stored and no file is written."
    )
    s.add_argument(
        "--since",
        type=_day,
        metavar="YYYY-MM-DD",
        help="read the logs from this day (default: the day before the oldest call still "
        "waiting for its outcome; nothing is read when none is waiting)",
    )
    s.add_argument(
        "--results",
        type=Path,
        metavar="PATH",
        help="results file, one line per person called (.csv, or .xlsx for Excel); default "
        "reports/<campaign>/<UTC time>.results.csv beside the campaigns folder",
    )
    s.add_argument(
        "--transcripts",
        action="store_true",
        help="keep each call's transcript in the ledger too (they are large)",
    )
    s.add_argument(
        "--sheet",
        type=Path,
        metavar="FILE",
        help="a sheet (.csv/.xlsx) to copy with each row's outcome appended; needs --out",
    )
    s.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help="where the copy of --sheet goes (.csv or .xlsx; must not exist yet)",
    )

    maintenance = sub.add_parser(
        "ledger",
        help="Ledger maintenance: rebuild a lost ledger from the campaign's reports.",
        description="Ledger maintenance: rebuild a lost ledger from the campaign's reports."
        "\n\nexample:\n  dialer ledger rebuild campaigns/example.toml",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = maintenance.add_subparsers(
        dest="ledger_command",
        required=True,
        metavar="ACTION",
        parser_class=_Parser,
        help="rebuild: a new ledger from the reports' triggered and unknown rows",
    )
    rebuild_help = (
        "Rebuild a lost ledger (missing, empty, or missing runs) from the campaign's reports: "
        "their triggered and unknown rows, newest report first. A ledger that is not lost is "
        "never replaced; the old file is kept aside, never deleted."
    )
    rebuild = actions.add_parser(
        "rebuild",
        help=rebuild_help,
        description=f"{rebuild_help}\n\nexample:\n  dialer ledger rebuild campaigns/example.toml",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rebuild.add_argument("campaign", type=Path, metavar="CAMPAIGN", help="the campaign TOML file")

    web = sub.add_parser(
        "serve",
        help="Serve the web page for marketing: upload, check, launch, watch, download.",
        description="Serve the web page on which a sheet is uploaded, checked, launched, "
        "watched and its report downloaded. Needs DIALER_UI_TOKEN (the page's password) and, "
        "to launch, the API key in the environment. To try it against a local fake Tabbly, "
        "`dialer demo --page` starts both.\n\nexample:\n"
        "  export DIALER_UI_TOKEN=\"$(python3 -c 'import secrets; "
        "print(secrets.token_urlsafe(24))')\"\n"
        "  TABBLY_API_KEY=... dialer serve --port 8080",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    web.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: this machine only)"
    )
    web.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    web.add_argument(
        "--root",
        type=Path,
        default=Path("."),
        metavar="DIR",
        help="project folder holding campaigns/ (reports/ and uploads/ go beside)",
    )
    web.add_argument(
        "--https-proxy",
        action="store_true",
        help="the page is served to browsers over HTTPS by a reverse proxy in front of this "
        "server: the session cookie is marked Secure (never sent over plain HTTP)",
    )

    demo = sub.add_parser(
        "demo",
        help="Try dialer against a local fake Tabbly: the sample campaign, or the web page.",
        description="Without --page: the sample campaign's whole loop (check, run, sync, "
        "redial) against a local fake Tabbly. With --page: the fake and the web page on free "
        "ports of 127.0.0.1, with a new token printed once; Ctrl-C stops both. Nothing reaches "
        "tabbly.io.\n\nexample:\n  dialer demo --page",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--page", action="store_true", help="serve the web page against the fake (make serve-demo)"
    )
    demo.add_argument(
        "--folder",
        type=Path,
        metavar="DIR",
        help="with --page: the project folder (campaigns/, reports/); default demo/<UTC time>",
    )

    from dialer import fake_tabbly

    f = sub.add_parser(
        "fake-tabbly",
        help="Run a local stand-in for the Tabbly trigger-call API (demo, tests, benchmarks).",
        description="A local stand-in for the Tabbly trigger-call API on 127.0.0.1.\n\n"
        "example:\n  dialer fake-tabbly --port 8787 --balance 5 --fail-rate 0.1",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fake_tabbly.add_arguments(f)
    return parser


def _load(path: Path) -> Campaign:
    return load_campaign(path)


def run_command(args: argparse.Namespace) -> int:
    """The parsed command, handed to the module that does it."""
    if args.command == "serve":
        from dialer.web import serve

        return serve(args.root, args.host, args.port, https_proxy=args.https_proxy)
    if args.command == "demo":
        if args.page:
            from dialer.commands.demo_page import serve_demo

            return serve_demo(args.folder)
        from dialer.commands.demo import main as demo

        return demo()
    if args.command == "fake-tabbly":
        from dialer import fake_tabbly

        return fake_tabbly.run_from_args(args)
    campaign = _load(args.campaign)
    if args.command == "status":
        return commands.status(campaign)
    if args.command == "sync":
        from dialer.outcomes import sync

        return sync.sync(
            campaign,
            since=args.since,
            results_path=args.results,
            transcripts=args.transcripts,
            sheet=args.sheet,
            out=args.out,
        )
    if args.command == "ledger":
        from dialer.ledger.rebuild import rebuild

        return rebuild(campaign)
    if args.command == "validate" or args.dry_run:
        return commands.validate(campaign, contacts=args.contacts, report_path=args.report)
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
    return commands.run(
        campaign,
        contacts=contacts,
        report_path=args.report,
        options=options,
        yes=args.yes,
        progress_mode=args.progress,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """The command's exit code; whatever it prints is shown, never obeyed (`console`)."""
    with console.guarded():
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return run_command(args)
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
