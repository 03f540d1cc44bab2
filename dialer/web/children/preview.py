"""What a campaign makes of a sheet's rows before anyone is called: the live preview and the
test call ("call me first"), through the very code a check and a run use.

    answer = await in_child(settings, jobs.child_failure, campaign, toml_text, upload,
                            {"count": 5})           # {"rows": [...]}: preview_rows
    answer = await in_child(..., {"row": 3, "number": "+917359043943", "max_row": 100_000})
    contact = contact_of(answer["contact"])         # answer["contact"]["countries"]: ["IN"]

`preview_rows` and `test_contact` run in a memory-capped child (`python -m
dialer.web.children.preview`, with a check's memory cap and `preview_timeout`), like a check:
calamine parses a whole XLSX sheet, and a 300,000-row workbook must cost that child, never the
server.
So does the trial render of a form's templates before a save ({"check": true}): a template
costing a second per render must not hold the server's threads.

Rows are read by `open_contacts` (the same sheet reading, column names, templates sandbox,
phone rules, duplicates and do-not-call list as `dialer validate`), so a row the preview
calls invalid is invalid in the check too. A test call is one trigger request with the row's
greeting and instruction to the number the user typed (placed by `dialer.web.services.test_calls`).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from aiohttp import web

from dialer.campaign.model import Campaign, parse_campaign
from dialer.core.masking import mask_phone, mask_text
from dialer.core.statuses import ERROR_PREFIX, DialerError, ExitCode, Status, UsageError
from dialer.sheets.contacts import Contact, Templates
from dialer.sheets.countries import country_name, country_of
from dialer.sheets.pipeline import ContactStream, open_contacts
from dialer.sheets.reader import iter_rows
from dialer.web import texts
from dialer.web.services.jobs import communicate_within, limited_python
from dialer.web.settings import Settings
from dialer.web.views.columns import _excel_row

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
        _excel_row(
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


class ChildrenBusy(web.HTTPServiceUnavailable):
    """Every child slot taken and `previews_waiting` asks waiting already: 503, Retry-After."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(
            text=texts.PREVIEWS_BUSY,
            headers={"Retry-After": str(settings.previews_retry_after)},
        )


class ChildQueue:
    """The page's children for the campaign form (previews, saves' template checks, test
    calls, header probes): `previews_at_once` at a time, `previews_waiting` more waiting in
    turn; one more is refused at once (ChildrenBusy), so no ask queues without bound.

        async with queue:          # ChildrenBusy when full
            answer = await in_child(...)
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._running = asyncio.Semaphore(settings.previews_at_once)
        self._waiting = 0

    async def __aenter__(self) -> None:
        if self._running.locked() and self._waiting >= self.settings.previews_waiting:
            raise ChildrenBusy(self.settings)
        self._waiting += 1
        try:
            await self._running.acquire()
        finally:
            self._waiting -= 1

    async def __aexit__(self, *exc: object) -> None:
        self._running.release()


async def in_child(
    settings: Settings,
    failure: Callable[[str, int | None], str],
    campaign: Campaign,
    toml_text: str,
    upload: Path,
    ask: dict[str, Any],
) -> dict[str, Any]:
    """`preview_rows` ({"count": n} -> {"rows": [...]}) or `test_contact` ({"row", "number",
    "max_row"} -> {"contact": {...}}) run by a child with a check's memory cap, stopped after
    `preview_timeout`; a UsageError says why not, in the line `failure` makes of its stderr.
    {"check": True} -> {"ok": True}: the form's templates compiled and trial-rendered."""
    request = {"path": str(campaign.path), "toml": toml_text, "upload": str(upload), **ask}
    env = {k: v for k, v in os.environ.items() if k in _CHILD_ENV}
    proc = await asyncio.create_subprocess_exec(
        *limited_python(settings.check_memory, "dialer.web.children.preview"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**env, "PYTHONUNBUFFERED": "1", "OPENBLAS_NUM_THREADS": "1"},
        start_new_session=True,
    )
    try:
        out, err = await communicate_within(
            proc, settings.preview_timeout, json.dumps(request).encode()
        )
    except TimeoutError:
        raise UsageError(texts.PREVIEW_TOO_SLOW) from None
    if proc.returncode != 0:
        raise UsageError(failure(err.decode("utf-8", "replace"), proc.returncode))
    try:
        answer = json.loads(out)
    except ValueError:
        raise UsageError(texts.UNREADABLE_UPLOAD) from None
    return answer if isinstance(answer, dict) else {}


def contact_of(found: dict[str, Any]) -> Contact:
    """The test call's contact as the child described it."""
    return Contact(
        row=int(found["row"]),
        custom_identifiers=str(found["custom_identifiers"]),
        phone_raw=str(found["called_to"]),
        called_to=str(found["called_to"]),
        status=Status.READY,
        reason="",
        first_line=str(found["first_line"]),
        instruction=str(found["instruction"]),
        cells=(),
    )


def main() -> int:
    """The child: one JSON request on stdin, one JSON answer on stdout, an error on stderr."""
    try:
        request = json.loads(sys.stdin.buffer.read())
        campaign = parse_campaign(Path(request["path"]), request["toml"].encode())
        upload = Path(request["upload"])
        if request.get("check"):  # a save's templates: compiled and trial-rendered here
            Templates.compile(campaign)
            print(json.dumps({"ok": True}))
            return int(ExitCode.OK)
        if "row" in request:
            contact, countries = test_contact(
                campaign, upload, request["row"], request["number"], request["max_row"]
            )
            answer: dict[str, Any] = {
                "contact": {
                    "row": contact.row,
                    "custom_identifiers": contact.custom_identifiers,
                    "called_to": contact.called_to,
                    "first_line": contact.first_line,
                    "instruction": contact.instruction,
                    "countries": countries,
                }
            }
        else:
            answer = {"rows": preview_rows(campaign, upload, request["count"])}
    except DialerError as exc:
        print(f"{ERROR_PREFIX}{exc}", file=sys.stderr)
        return int(ExitCode.INPUT_ERROR)
    print(json.dumps(answer, ensure_ascii=False))
    return int(ExitCode.OK)


if __name__ == "__main__":
    sys.exit(main())
