"""`dialer audit` and `dialer audit verify`: the folder's audit trail read, exported and
checked (the trail is `team/audit.py`'s).

    dialer audit --since 2026-12-01 --who alice          # one line per entry, oldest first
    dialer audit --campaign spring --out trail.csv       # the entries as a new CSV
    dialer audit verify                                  # exit 0 intact, 1 changed

Exit codes: 0 done (`verify`: every entry matches), 1 `verify`: an entry was changed or
removed (the first one is named), 2 bad input or no project folder.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from dialer.commands.arguments import (
    EPILOG,
    Subparsers,
    add_root,
    command_parser,
    project_state,
    since_date,
)
from dialer.commands.csv_out import check_new_csv, write_new_csv
from dialer.core.statuses import ExitCode

if TYPE_CHECKING:  # the handlers load the trail: building the parser loads none of it
    from dialer.team.audit import AuditEntry

EXAMPLE = "dialer audit --since 2026-12-01 --who alice"
# Of an entry's details, on one line of the listing.
SHOWN_DETAILS_CHARS = 80


def add_parser(subparsers: Subparsers) -> None:
    trail = command_parser(
        subparsers,
        "audit",
        "The audit trail: who did what to the folder's campaigns and people, and when.",
        EXAMPLE,
        description="The folder's audit trail, oldest first: logins, checks, launches, "
        "stops, schedules, syncs, downloads, opt-outs and people, by the page's users and "
        "by commands (their OS user and host). `dialer audit verify` checks that no entry "
        "was changed or removed.",
    )
    add_root(trail)
    trail.add_argument(
        "--since", metavar="DATE", help="only entries on or after DATE (YYYY-MM-DD, UTC)"
    )
    trail.add_argument("--who", metavar="NAME", help="only entries by NAME (as listed)")
    trail.add_argument("--campaign", metavar="NAME", help="only entries of campaign NAME")
    trail.add_argument("--out", type=Path, metavar="FILE", help="write the entries to a new .csv")
    trail.set_defaults(handle=handle_list)
    actions = trail.add_subparsers(dest="audit_command", required=False, metavar="ACTION")
    verify = actions.add_parser(
        "verify",
        help="Check every entry against its digest and the one before it.",
        description="Check every entry against its digest and the one before it: exit 0 "
        "when none was changed or removed, 1 naming the first that does not match."
        "\n\nexample:\n  dialer audit verify",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_root(verify, default=argparse.SUPPRESS)
    verify.set_defaults(handle=handle_verify)


def handle_list(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from dialer.team.audit import CSV_COLUMNS, AuditTrail, csv_row

    out = out or sys.stdout
    state = project_state(args.root)
    since = since_date(args.since) if args.since is not None else None
    if args.out is not None:
        check_new_csv(args.out, "the audit trail")
    entries = AuditTrail(state).entries(since, args.who, args.campaign)
    if args.out is not None:
        write_new_csv(args.out, CSV_COLUMNS, map(csv_row, entries), "the audit trail")
        print(
            f"{len(entries)} audit entr{'y' if len(entries) == 1 else 'ies'} written to {args.out}",
            file=out,
        )
        return int(ExitCode.OK)
    for entry in entries:
        print(_line(entry), file=out)
    print(f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}", file=out)
    return int(ExitCode.OK)


def handle_verify(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from dialer.team.audit import AuditTrail

    out = out or sys.stdout
    trail = AuditTrail(project_state(args.root))
    found = trail.verify()
    if found is None:
        count, digest = trail.head()
        last = f"; last digest {digest}" if digest else ""
        print(f"audit trail intact: {count} entr{'y' if count == 1 else 'ies'}{last}", file=out)
        return int(ExitCode.OK)
    if isinstance(found, int):
        print(
            f"audit trail changed: entry {found} and any after it were removed ({trail.path})",
            file=out,
        )
    else:
        print(
            f"audit trail changed: entry {found.seq} ({found.time}, {found.action}) does not "
            "match: it was edited, or the entry before it removed "
            f"({trail.path})",
            file=out,
        )
    return int(ExitCode.ROW_PROBLEMS)


def _line(entry: AuditEntry) -> str:
    details = ", ".join(f"{k}={_shown(v)}" for k, v in entry.details.items())
    if len(details) > SHOWN_DETAILS_CHARS:
        details = details[: SHOWN_DETAILS_CHARS - 3] + "..."
    who, campaign = _shown(entry.who), _shown(entry.campaign or "-")
    return f"{entry.time}  {who}  {_shown(entry.action)}  {campaign}  {details}"


def _shown(value: object) -> str:
    """A value on one line: a text holding a line break or a control character is shown as
    JSON, escaped (an uploaded file's name is the browser's to choose: it must not forge a
    listed entry, nor move the terminal's cursor)."""
    if isinstance(value, str) and value.isprintable():
        return value
    shown = json.dumps(value, ensure_ascii=False)
    return shown if shown.isprintable() else json.dumps(value)
