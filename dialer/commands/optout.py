"""`dialer optout add|remove|import|list|check`: the folder's opt-out register by hand (the
register itself is `ledger/optouts.py`'s).

The register belongs to a project folder, not to one campaign: every campaign of
`<root>/campaigns/` consults `<root>/state/contacts.sqlite`. `--root` names that folder (the
current one by default, as for `dialer serve`); a folder with neither `campaigns/` nor
`state/` is refused, so a typo never records an opt-out where no campaign reads it.

Numbers on the terminal are masked; `list --out FILE` writes them whole. Exit codes: 0 done
(`check`: the number is opted out), 1 `check`: it is not, 2 bad input (nothing changed).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from dialer.commands.arguments import (
    Subparsers,
    add_root,
    command_parser,
    project_state,
    since_date,
)
from dialer.commands.csv_out import check_new_csv, write_new_csv
from dialer.commands.trail import record
from dialer.core.clock import system_clock
from dialer.core.masking import mask_phone, mask_text
from dialer.core.statuses import ExitCode, SheetError, UsageError

if TYPE_CHECKING:  # the handlers load the register: building the parser loads none of it
    from dialer.ledger.optouts import Change, OptOut

EXAMPLE = 'dialer optout add +15125550100 --reason "asked by email, ticket 4411"'
# Bad rows of an import shown on the terminal before the count of the rest.
SHOWN_BAD_ROWS = 20
# Of a reason, on one line of `list`.
SHOWN_REASON_CHARS = 60
OUT_COLUMNS = ("called_to", "since", "source", "who", "reason", "campaign", "call_id", "evidence")

_ACTIONS = {
    "add": "Opt numbers out: no campaign of the folder calls them again.",
    "remove": "Give a number back to the campaigns (a reason is required and kept).",
    "import": "Opt out every number of a sheet (.csv/.xlsx): all of them, or none.",
    "list": "List the numbers opted out (masked; --out FILE writes them whole).",
    "check": "Show a number's entry and history; exit 0 if opted out, 1 if not.",
}
_EXAMPLES = {
    "add": EXAMPLE,
    "remove": 'dialer optout remove +15125550100 --reason "signed consent form, 2026-12-05"',
    "import": "dialer optout import data/dnc.xlsx --region IN",
    "list": "dialer optout list --since 2026-12-01 --out optouts.csv",
    "check": "dialer optout check +15125550100",
}


def add_parser(subparsers: Subparsers) -> None:
    register = command_parser(
        subparsers,
        "optout",
        "The opt-out register: people never called again, by any campaign of the folder.",
        EXAMPLE,
        description="The opt-out register of a project folder: numbers no campaign of the "
        "folder calls, until a person removes them with a reason. Opt-outs heard on calls are "
        "added by `dialer sync`; these commands add, import, remove, list and check by hand.",
    )
    actions = register.add_subparsers(dest="optout_command", required=True, metavar="ACTION")
    parsers = {
        name: command_parser(actions, name, text, _EXAMPLES[name])
        for name, text in _ACTIONS.items()
    }
    for parser in parsers.values():
        add_root(parser)
    parsers["add"].add_argument("numbers", nargs="+", metavar="NUMBER", help="phone numbers")
    parsers["remove"].add_argument("number", metavar="NUMBER", help="the phone number")
    parsers["check"].add_argument("number", metavar="NUMBER", help="the phone number")
    parsers["import"].add_argument("file", type=Path, metavar="FILE", help="a .csv or .xlsx sheet")
    for name in ("add", "remove", "check", "import"):
        parsers[name].add_argument(
            "--region",
            metavar="CC",
            help="country (ISO code, e.g. IN, US) of numbers written without +country code",
        )
    parsers["add"].add_argument("--reason", required=True, help="why (kept in the history)")
    parsers["remove"].add_argument(
        "--reason", required=True, help="who allowed calls again, and how (kept in the history)"
    )
    _add_import_options(parsers["import"])
    parsers["list"].add_argument(
        "--since", metavar="DATE", help="only numbers opted out on or after DATE (YYYY-MM-DD)"
    )
    parsers["list"].add_argument(
        "--out", type=Path, metavar="FILE", help="write the list, numbers whole, to a new .csv"
    )
    for name, handler in _HANDLERS.items():
        parsers[name].set_defaults(handle=handler)


def _add_import_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reason", help="why (default: imported from FILE)")
    parser.add_argument(
        "--column",
        metavar="NAME",
        help="the phone column (default: every column named like a phone)",
    )
    parser.add_argument("--sheet", metavar="TAB", help="the XLSX tab (default: the first)")


def _region(region: str | None) -> str | None:
    import phonenumbers

    if region is None:
        return None
    if region.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise UsageError(f"--region {region!r} is not a country code (e.g. IN, US, GB)")
    return region.upper()


def _number(raw: str, region: str | None) -> str:
    """One number from the command line, in E.164, or exit 2 naming it (masked)."""
    from dialer.sheets.phones import normalise_phone

    phone = normalise_phone(raw, region)
    if phone.e164 is None:
        hint = "" if region else " (a national number needs --region)"
        raise UsageError(f"{mask_text(raw)}: {mask_text(phone.reason)}{hint}")
    return phone.e164


def _reason(text: str) -> str:
    if not text.strip():
        raise UsageError("--reason is empty: say why (it is kept in the history)")
    return text


def handle_add(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from dialer.ledger.optouts import Ask, Register, Source, acting_user
    from dialer.team.audit import OPTOUT_ADDED

    out = out or sys.stdout
    state, region, reason = project_state(args.root), _region(args.region), _reason(args.reason)
    numbers = [_number(raw, region) for raw in args.numbers]  # all valid, or nothing added
    who = acting_user()
    with Register.open(state) as register:
        done = register.add([Ask(n, Source.COMMAND, who, reason) for n in numbers], system_clock())
        entries = register.entries(done.already)
    for number in done.added:
        record(state, OPTOUT_ADDED, number=mask_phone(number), reason=reason)
        print(f"{mask_phone(number)}: opted out", file=out)
    for number in done.already:
        print(f"{mask_phone(number)}: already opted out ({entries[number].since})", file=out)
    print(f"register: {register.path}", file=out)
    return int(ExitCode.OK)


def handle_remove(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from dialer.ledger.optouts import Register, Source, acting_user
    from dialer.team.audit import OPTOUT_REMOVED

    out = out or sys.stdout
    state, reason = project_state(args.root), _reason(args.reason)
    number = _number(args.number, _region(args.region))
    with Register.open(state) as register:
        entry = register.remove(number, Source.COMMAND, acting_user(), reason, system_clock())
    record(state, OPTOUT_REMOVED, number=mask_phone(number), reason=reason)
    print(
        f"{mask_phone(number)}: removed from the opt-out register (opted out {entry.since}, "
        f"{entry.source}); campaigns may call it again. The history keeps both.",
        file=out,
    )
    return int(ExitCode.OK)


def handle_check(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from dialer.ledger.optouts import Register

    out = out or sys.stdout
    state = project_state(args.root)
    number = _number(args.number, _region(args.region))
    register = Register.reading(state)
    entry, history = None, []
    if register is not None:
        with register:
            entry, history = register.entry(number), register.history(number)
    shown = mask_phone(number)
    if entry is None:
        print(f"{shown}: not opted out", file=out)
    else:
        print(f"{shown}: opted out since {entry.since}", file=out)
        print(f"  source: {entry.source}, by {entry.who}", file=out)
        print(f"  reason: {entry.reason}", file=out)
        if entry.campaign or entry.call_id:
            print(f"  call: {entry.call_id or '-'} of campaign {entry.campaign or '-'}", file=out)
        if entry.evidence:
            print(f"  evidence: {entry.evidence}", file=out)
    if history:
        print("history:", file=out)
        for change in history:
            print(f"  {_change_line(change)}", file=out)
    return int(ExitCode.OK if entry is not None else ExitCode.ROW_PROBLEMS)


def _change_line(change: Change) -> str:
    heard = f" [{change.campaign} call {change.call_id}]" if change.call_id else ""
    evidence = f" evidence: {change.evidence}" if change.evidence else ""
    return (
        f"{change.at} {change.action:<7} {change.source} by {change.who}: "
        f"{change.reason}{heard}{evidence}"
    )


def handle_list(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from dialer.ledger.optouts import Register

    out = out or sys.stdout
    state = project_state(args.root)
    since = since_date(args.since) if args.since is not None else None
    if args.out is not None:
        check_new_csv(args.out, "the list")
    register = Register.reading(state)
    entries: list[OptOut] = []
    if register is not None:
        with register:
            entries = register.listed(since)
    if args.out is not None:
        _write_out(args.out, entries)
        print(f"{len(entries)} opted-out number(s) written to {args.out}", file=out)
        return int(ExitCode.OK)
    for entry in entries:
        reason = entry.reason
        if len(reason) > SHOWN_REASON_CHARS:
            reason = reason[: SHOWN_REASON_CHARS - 3] + "..."
        print(
            f"{entry.since}  {mask_phone(entry.called_to):<16} {entry.source:<7} "
            f"{entry.who}  {reason}",
            file=out,
        )
    after = f" since {args.since}" if since else ""
    print(f"{len(entries)} number(s) opted out{after}", file=out)
    return int(ExitCode.OK)


def _write_out(path: Path, entries: Sequence[OptOut]) -> None:
    """The list as a new CSV, numbers whole; text cells never run as formulas."""
    from dialer.reports.writer import defuse

    rows = (
        # The number is `+` and digits, checked when it was added: it stays as it is.
        [entry.called_to, *(defuse(getattr(entry, c)) for c in OUT_COLUMNS[1:])]
        for entry in entries
    )
    write_new_csv(path, OUT_COLUMNS, rows, "the list")


def handle_import(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from dialer.campaign.binding import file_sha256
    from dialer.ledger.optouts import Ask, Register, Source, acting_user
    from dialer.sheets.numbers import read_numbers
    from dialer.team.audit import OPTOUT_IMPORTED

    out = out or sys.stdout
    state, region = project_state(args.root), _region(args.region)
    reason = _reason(args.reason) if args.reason is not None else f"imported from {args.file.name}"
    found, bad = read_numbers(args.file, region, args.column, args.sheet)
    if bad:
        for line in bad[:SHOWN_BAD_ROWS]:
            print(f"{args.file}: {line}", file=sys.stderr)
        if len(bad) > SHOWN_BAD_ROWS:
            print(f"{args.file}: ... and {len(bad) - SHOWN_BAD_ROWS} more", file=sys.stderr)
        raise SheetError(
            f"{args.file}: {len(bad)} bad row(s): nothing imported; correct or delete them and "
            "import again"
        )
    if not found:
        raise SheetError(f"{args.file}: no phone numbers in it: nothing imported")
    who = acting_user()
    asks = [
        Ask(number, Source.IMPORT, who, reason, evidence=f"{args.file.name} row {row}")
        for row, number in found
    ]
    with Register.open(state) as register:
        done = register.add(asks, system_clock())
    record(
        state,
        OPTOUT_IMPORTED,
        file=args.file.name,
        file_sha256=file_sha256(args.file),
        added=len(done.added),
        already=len(done.already),
        reason=reason,
    )
    print(
        f"imported {args.file}: {len(done.added)} number(s) opted out, "
        f"{len(done.already)} already on the register",
        file=out,
    )
    return int(ExitCode.OK)


_HANDLERS = {
    "add": handle_add,
    "remove": handle_remove,
    "import": handle_import,
    "list": handle_list,
    "check": handle_check,
}
