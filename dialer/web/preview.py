"""What a campaign makes of a sheet's rows before anyone is called: the live preview and the
test call ("call me first"), through the very code a check and a run use.

    rows = preview_rows(campaign, upload, 5)                 # blocking: run in a thread
    contact = test_contact(campaign, upload, row=3, number="+917359043943")
    outcome = await place_test_call(campaign, contact, environ, sheet_name="june.xlsx")

Rows are read by `open_contacts` (the same sheet reading, column names, templates sandbox,
phone rules, duplicates and do-not-call list as `dialer validate`), so a row the preview
calls invalid is invalid in the check too. A test call is one trigger request with the row's
greeting and instruction to the number the user typed; it is recorded in the ledger's
`test_calls` table only, under the run lock (a test call while the campaign runs is refused).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from dialer.campaign import Campaign
from dialer.contacts import Contact
from dialer.pipeline import open_contacts
from dialer.rebuild import open_for_run
from dialer.sheet import iter_rows
from dialer.statuses import Status, UsageError
from dialer.tabbly import BodyBuilder, Outcome, Secret, TabblyClient
from dialer.web import texts

# What a test call's `custom_identifiers` starts with: a sync never takes its log row for
# the sheet row's own call (matching refuses a row whose identifiers a dial does not have).
TEST_ID_PREFIX = "test:"


def preview_rows(campaign: Campaign, upload: Path, count: int) -> list[dict[str, Any]]:
    """The first `count` data rows: status, reason, greeting and instruction of each."""
    stream = open_contacts(campaign, upload, parallel=False)
    stream.chunk_rows = count
    chunks = stream.chunks()
    try:
        first = next(chunks)
    finally:
        chunks.close()
    return [
        {
            "row": c.row,
            "called_to": c.called_to or c.phone_raw,
            "status": str(c.status),
            "reason": c.reason,
            "first_line": c.first_line,
            "instruction": c.instruction,
        }
        for c in first[:count]
    ]


def test_contact(campaign: Campaign, upload: Path, row: int, number: str, max_row: int) -> Contact:
    """Row `row` of the sheet personalised as the run would, but to `number`; a UsageError
    says why it cannot be called (the row's template fails, the number is invalid or on the
    do-not-call list)."""
    if not 1 <= row <= max_row:
        raise UsageError(texts.NO_SUCH_ROW.format(row=row))
    stream = open_contacts(campaign, upload, parallel=False)
    plan = stream.preparer.plan
    for chunk in iter_rows(stream.sheet):
        for number_in_sheet, cells in chunk:
            if number_in_sheet == row:
                cells = list(cells)
                cells[plan.phone_index] = number
                (built,) = stream.preparer.build([(row, cells)])
                (contact,) = stream.preparer.deduper.apply([built])
                if contact.status is not Status.READY:
                    raise UsageError(contact.reason or str(contact.status))
                ident = f"{TEST_ID_PREFIX}{contact.custom_identifiers}"
                return replace(contact, custom_identifiers=ident)
            if number_in_sheet > row:
                break
        if chunk[-1][0] >= row:
            break
    raise UsageError(texts.NO_SUCH_ROW.format(row=row))


async def place_test_call(
    campaign: Campaign, contact: Contact, environ: Mapping[str, str], sheet_name: str
) -> Outcome:
    """One trigger request, recorded in `test_calls` before it leaves and after it answers;
    raises UsageError/LedgerError when it cannot be placed (no key, a run holds the lock)."""
    key = environ.get(campaign.api_key_env, "")
    if not key:
        raise UsageError(texts.NO_API_KEY.format(env=campaign.api_key_env))
    secret = Secret(key)
    endpoint = campaign.checked_endpoint(environ)
    ledger = await asyncio.to_thread(open_for_run, campaign)
    try:
        test_id = await asyncio.to_thread(
            ledger.start_test_call,
            contact.called_to,
            contact.row,
            sheet_name,
            contact.custom_identifiers,
        )
        body = BodyBuilder(campaign, secret).build(contact)
        timeout = campaign.dispatch.timeout_seconds
        async with TabblyClient(endpoint, secret, 1, timeout) as client:
            outcome = await client.post(body)
        status = outcome.kind.value
        await asyncio.to_thread(
            ledger.finish_test_call,
            test_id,
            status,
            outcome.reason,
            outcome.http_status,
            outcome.call_id,
        )
    finally:
        await asyncio.to_thread(ledger.close)
    return outcome
