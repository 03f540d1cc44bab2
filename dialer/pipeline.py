"""Campaign + sheet -> a lazy stream of prepared `Contact` chunks, in sheet order.

    >>> stream = open_contacts(campaign)
    >>> for chunk in stream.chunks():
    ...     ...

This is the one place that decides which file is read (`--contacts` or the newest match of
`source`) and checks that it holds contacts at all, so `validate` and `run` agree.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dialer.campaign import Campaign
from dialer.contacts import Contact, Preparer, load_suppression
from dialer.sheet import Sheet, iter_rows, open_sheet
from dialer.sources import resolve_source
from dialer.statuses import SheetError


@dataclass(slots=True)
class ContactStream:
    campaign: Campaign
    sheet: Sheet
    preparer: Preparer
    chunk_rows: int = 5_000

    def chunks(self) -> Iterator[list[Contact]]:
        """Prepared chunks; a sheet with a header and no data rows is an error."""
        empty = True
        # The phone cell comes uncleaned so a removed invisible character is reported.
        raw_columns = frozenset({self.preparer.plan.phone_index})
        for raw in iter_rows(self.sheet, self.chunk_rows, raw_columns):
            if raw:
                empty = False
                yield list(self.preparer.prepare(raw))
        if empty:
            raise SheetError(f"{self.sheet.path}: has a header but no data rows")


def open_contacts(campaign: Campaign, contacts: Path | None = None) -> ContactStream:
    path = Path(contacts) if contacts else resolve_source(campaign.contacts.source, campaign.folder)
    path = path.resolve()
    sheet = open_sheet(path, campaign.contacts.sheet)
    preparer = Preparer.for_campaign(campaign, sheet, load_suppression(campaign))
    return ContactStream(campaign, sheet, preparer)
