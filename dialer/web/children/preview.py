"""The child that reads a sheet's rows for the campaign form, through the very code a check
and a run use: the live preview, the row of a test call ("call me first"), and the trial
render of a form's templates before a save.

    $ python -m dialer.web.children.preview < ask.json   # {"path", "toml", "upload", ...}
    {"count": 5}                                   ->  {"rows": [...]}  (preview_rows)
    {"row": 3, "number": "+917359043943", "max_row": 100000}  ->  {"contact": {...}}
    {"check": true}                                ->  {"ok": true}

Run by the server (`services.child_processes.in_child`) with a check's memory cap and
`preview_timeout`, like a check: calamine parses a whole XLSX sheet, and a 300,000-row
workbook must cost this child, never the server; a template costing a second per render must
not hold the server's threads either.

Rows are read by `open_contacts` (the same sheet reading, column names, templates sandbox,
phone rules, duplicates and do-not-call list as `dialer validate`), so a row the preview
calls invalid is invalid in the check too. A test call is one trigger request with the row's
greeting and instruction to the number the user typed (placed by `services.test_calls`).
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from dialer.campaign.model import Campaign
from dialer.campaign.parse import parse_campaign
from dialer.core.masking import mask_phone, mask_text
from dialer.core.statuses import Status, UsageError
from dialer.sheets.contacts import Contact, Templates
from dialer.sheets.countries import country_name, country_of
from dialer.sheets.pipeline import ContactStream, open_contacts
from dialer.sheets.reader import iter_rows
from dialer.web import texts
from dialer.web.children.one_request import answer
from dialer.web.sheet_rows import excel_row

# What a test call's `custom_identifiers` starts with: a sync never takes its log row for
# the sheet row's own call (matching refuses a row whose identifiers a dial does not have).
TEST_ID_PREFIX = "test:"
# What the child may see of the server's environment: never the API key or the page's token.
_CHILD_ENV = ("PATH", "PYTHONPATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV")


def preview_rows(campaign: Campaign, upload: Path, count: int) -> list[dict[str, Any]]:
    """The first `count` data rows: status, reason, greeting and instruction of each, numbered
    as the spreadsheet and the check page number them (the header is row 1)."""
    stream = open_contacts(campaign, upload, parallel=False)
    offset = stream.sheet.excel_header_row
    stream.chunk_rows = count
    chunks = stream.chunks()
    try:
        first = next(chunks)
    finally:
        chunks.close()
    return [
        excel_row(
            {
                "row": c.row,
                # Masked as on the check page: the page shows whose row it is, not the number.
                "called_to": mask_phone(c.called_to) if c.called_to else mask_text(c.phone_raw),
                # Beside the masked number: a number read as the wrong country's is seen.
                "country": country_text(c.called_to) if c.called_to else "",
                "status": str(c.status),
                "reason": mask_text(c.reason),
                "first_line": c.first_line,
                "instruction": c.instruction,
            },
            offset,
        )
        for c in first[:count]
    ]


def country_text(e164: str) -> str:
    """'+14155550100' -> 'US United States': the number's country, code and name."""
    region = country_of(e164)
    return f"{region} {country_name(region)}" if region != "??" else "?"


def test_contact(
    campaign: Campaign, upload: Path, row: int, number: str, max_row: int
) -> tuple[Contact, list[str]]:
    """Row `row` of the spreadsheet (numbered as the check page and the preview show it: the
    header is row 1) personalised as the run would, but to `number`, and the countries the
    campaign calls with this sheet (the row's own number's, and each one its country column
    names in the first `max_row` rows); the contact keeps its data-row number, as the ledger
    counts rows. A UsageError says why it cannot be called (no such row, the row's template
    fails, the number is invalid or on the do-not-call list)."""
    stream = open_contacts(campaign, upload, parallel=False)
    data_row = row - stream.sheet.excel_header_row
    if not 1 <= data_row <= max_row:
        raise UsageError(texts.NO_SUCH_ROW.format(row=row))
    phones = stream.preparer.plan.phones
    countries: set[str | None] = set()
    found: Contact | None = None
    for chunk in iter_rows(stream.sheet):
        for number_in_sheet, cells in chunk:
            if number_in_sheet > max_row:
                break
            if phones.country_index is not None:
                countries.add(phones.region(cells)[0])
            if number_in_sheet == data_row:
                found, own = _as_test(stream, data_row, list(cells), number)
                countries.add(own)
        if chunk[-1][0] >= max_row or (found is not None and phones.country_index is None):
            break
    if found is None:
        raise UsageError(texts.NO_SUCH_ROW.format(row=row))
    return found, sorted(c for c in countries if c and c != "??")


def _as_test(
    stream: ContactStream, data_row: int, cells: list[str], number: str
) -> tuple[Contact, str]:
    """The row built to `number` (a UsageError if it may not be called), and the country of
    the row's own number ("??": none)."""
    (own,) = stream.preparer.build([(data_row, list(cells))])
    cells[stream.preparer.plan.phone_index] = number
    (built,) = stream.preparer.build([(data_row, cells)])
    (contact,) = stream.preparer.deduper.apply([built])
    if contact.status is not Status.READY:
        raise UsageError(contact.reason or str(contact.status))
    ident = f"{TEST_ID_PREFIX}{contact.custom_identifiers}"
    region = country_of(own.called_to) if own.called_to else "??"
    return replace(contact, custom_identifiers=ident), region


def work(request: dict[str, Any]) -> dict[str, Any]:
    """The answer to one request of the server (`child_processes.in_child` says which)."""
    campaign = parse_campaign(Path(request["path"]), request["toml"].encode())
    upload = Path(request["upload"])
    if request.get("check"):  # a save's templates: compiled and trial-rendered here
        Templates.compile(campaign)
        return {"ok": True}
    if "row" not in request:
        return {"rows": preview_rows(campaign, upload, request["count"])}
    contact, countries = test_contact(
        campaign, upload, request["row"], request["number"], request["max_row"]
    )
    return {
        "contact": {
            "row": contact.row,
            "custom_identifiers": contact.custom_identifiers,
            "called_to": contact.called_to,
            "first_line": contact.first_line,
            "instruction": contact.instruction,
            "countries": countries,
        }
    }


def main() -> int:
    """The child: one JSON request on stdin, one JSON answer on stdout, an error on stderr."""
    return answer(work)


if __name__ == "__main__":
    sys.exit(main())
