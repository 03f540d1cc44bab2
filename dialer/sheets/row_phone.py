"""A row's number: which of its phone columns, read as which country's (SPEC 4.3a).

    >>> columns = PhoneColumns((2, 5), ("Phone", "Default Address Phone"), 7, "IN")
    >>> found = columns.read(["Ann", "", "", "", "", "(512) 553-9542", "", "US"])
    >>> found.phone.e164, found.index, found.note
    ('+15125539542', 5, "phone from 'Default Address Phone' ('Phone' is empty)")

The region a national number is read with is decided per row, most specific first: the
number's own `+`/`00` prefix, the row's country cell, then the campaign's `default_region`. A
number written the way the +1 plan writes it (`(512) 553-9542`) read with any other region is
refused rather than read as that region's (a landline in Kanpur; `dialer.sheets.phones` holds that
rule): the costs are not symmetric.
One reader serves the run, the check, the page's preview and `dialer sync --sheet`, so a row is
the same person everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from dialer.campaign.model import Campaign
from dialer.core.files import shown
from dialer.sheets.columns import column_index, phone_indexes
from dialer.sheets.countries import region_of_cell
from dialer.sheets.phones import INVALID, Phone, normalise_phone
from dialer.sheets.reader import Sheet

_EMPTY = Phone(None, INVALID + "empty", False)
# A country cell longer than this is not a country: it is shown cut in the reason.
_SHOWN_COUNTRY_CHARS = 40


class RowNumber(NamedTuple):
    """The row's phone (valid or why not), the column it came from, and what to tell the user
    about that choice ("" when it was the first column, read as usual)."""

    phone: Phone
    index: int
    note: str


@dataclass(frozen=True, slots=True)
class PhoneColumns:
    """Where a sheet keeps its numbers and countries; small and picklable for worker processes."""

    indexes: tuple[int, ...]  # the phone columns, in the campaign's order
    labels: tuple[str, ...]  # their headers as the user wrote them, for reasons
    country_index: int | None = None
    default_region: str | None = None

    @classmethod
    def of(
        cls, sheet: Sheet, indexes: tuple[int, ...], country: int | None, region: str | None
    ) -> PhoneColumns:
        return cls(indexes, tuple(sheet.headers[i] for i in indexes), country, region)

    def region(self, cells: Sequence[str]) -> tuple[str | None, str]:
        """(region, "") for this row, or (None, why the row's country cannot be used)."""
        if self.country_index is not None:
            cell = cells[self.country_index].strip()
            if cell:
                region = region_of_cell(cell)
                if region is None:
                    said = shown(cell[:_SHOWN_COUNTRY_CHARS])
                    return None, f"country '{said}' not recognised"
                return region, ""
        return self.default_region, ""

    def read(self, cells: Sequence[str]) -> RowNumber:
        """The first column holding a valid number gives the row's number; when none does,
        the first non-empty column says why."""
        first = self.indexes[0]
        if self.country_index is None and len(self.indexes) == 1:  # most campaigns
            return RowNumber(normalise_phone(cells[first], self.default_region), first, "")
        region, problem = self.region(cells)
        if problem:
            return RowNumber(Phone(None, problem, False), first, "")
        chosen: RowNumber | None = None
        failed: RowNumber | None = None
        skipped: list[str] = []
        for index, label in zip(self.indexes, self.labels, strict=True):
            raw = cells[index]
            if not raw or raw.isspace():
                if chosen is None:
                    skipped.append(f"'{label}' is empty")
                continue
            phone = normalise_phone(raw, region)
            if chosen is not None:
                if phone.valid and phone.e164 != chosen.phone.e164:
                    also = f"'{label}' holds another number; the one in '{self.labels[0]}' "
                    if chosen.index != first:
                        also = f"'{label}' holds another number; the first one "
                    note = "; ".join(filter(None, (chosen.note, also + "was used")))
                    return RowNumber(chosen.phone, chosen.index, note)
                continue
            if phone.valid:
                note = ""
                if index != first:
                    note = f"phone from '{label}' ({', '.join(skipped)})"
                chosen = RowNumber(phone, index, note)
            else:
                if failed is None:
                    failed = RowNumber(phone, index, "")
                skipped.append(f"'{label}': {phone.reason.removeprefix(INVALID)}")
        if chosen is not None:
            return chosen
        return failed or RowNumber(_EMPTY, first, "")


def phone_columns(campaign: Campaign, sheet: Sheet) -> PhoneColumns:
    """The campaign's phone and country columns in `sheet`, for a reader without templates
    (`dialer sync --sheet`); a SheetError names a column the sheet lacks."""
    indexes = phone_indexes(campaign, sheet)
    name = campaign.contacts.country_column
    country = column_index(campaign, sheet, name, "country") if name else None
    return PhoneColumns.of(sheet, indexes, country, campaign.contacts.default_region)
