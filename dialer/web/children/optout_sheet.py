"""The register page's import: every number of a sheet's phone columns opted out, all of them
or none, read and written by this child with a check's memory cap (a hostile workbook fails
this child, not the server).

    $ echo '{"state": "...", "sheet": "uploads/3f....xlsx", "name": "dnc.xlsx",
    ...       "reason": "...", "who": "alice", "region": "IN"}' |
    ...   python -m dialer.web.children.optout_sheet
    {"added": 12, "already": 3}                          # or {"bad": [...], "bad_rows": 4}

The sheet is read as `dialer optout import` reads it (`sheets.numbers.read_numbers`): a
row with a number that is not a phone number is listed and nothing is imported. A sheet
that cannot be read is one line on stderr and exit code 2, like the CLI.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from dialer.core.clock import system_clock
from dialer.core.statuses import DialerError, SheetError
from dialer.ledger.optouts import Ask, Register, Source
from dialer.sheets.numbers import read_numbers
from dialer.web.children.one_request import answer

SHOWN_BAD_ROWS = 50  # bad rows listed on the page; the rest counted


def import_sheet(ask: dict[str, Any]) -> dict[str, Any]:
    """Opt out every number of the sheet, or none when a row is bad (listed)."""
    sheet, name = Path(ask["sheet"]), str(ask["name"])
    try:
        found, bad = read_numbers(sheet, ask.get("region") or None, None, None)
    except DialerError as exc:  # the message names the file as the uploader named it
        raise SheetError(str(exc).replace(str(sheet), name)) from None
    if bad:
        return {"bad": bad[:SHOWN_BAD_ROWS], "bad_rows": len(bad)}
    if not found:
        raise SheetError(f"{name}: no phone numbers in it: nothing imported")
    asks = [
        Ask(number, Source.PAGE, ask["who"], ask["reason"], evidence=f"{name} row {row}")
        for row, number in found
    ]
    with Register.open(Path(ask["state"])) as register:
        done = register.add(asks, system_clock())
    return {"added": len(done.added), "already": len(done.already)}


def main() -> int:
    return answer(import_sheet)


if __name__ == "__main__":
    sys.exit(main())
