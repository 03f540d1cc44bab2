"""`dialer sync --sheet FILE --out FILE`: the user's own sheet with each row's outcome
appended, so the results go back where marketing keeps its list (SPEC 10).

    >>> back = Writeback.open(campaign, Path("leads.xlsx"), Path("leads-called.xlsx"))
    >>> back.write(ledger.connection)            # rows written
    1200

The sheet is read as the campaign reads a sheet (`dialer.sheet`, the campaign's sheet name and
phone column) and each row's phone normalised as the contacts builder does (`default_region`),
so a row finds the person the ledger knows under that number. Every row is written, in order
(rows with nothing in them are left out, as they are when a sheet is read for a run), with
`OUTCOME_COLUMNS` appended: blank for a row whose number this campaign never called.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from dialer import dials
from dialer.campaign import Campaign
from dialer.column_map import phone_index
from dialer.phones import normalise_phone
from dialer.results import TableWriter, check_output, person_cells
from dialer.sheet import Sheet, clean_cell, iter_rows, open_sheet
from dialer.statuses import UsageError

OUTCOME_COLUMNS = (
    "outcome",
    "calls",
    "last_called_at",
    "raw_status",
    "duration_s",
    "cost",
    "summary",
    "recording_url",
)


@dataclass(frozen=True, slots=True)
class Writeback:
    """A sheet opened and checked, and where its copy with outcomes goes."""

    sheet: Sheet
    phone_index: int
    default_region: str | None
    out: Path

    @classmethod
    def open(cls, campaign: Campaign, sheet: Path, out: Path) -> Writeback:
        """Check everything before the call logs are read: the sheet's header and phone
        column, and an `--out` that is new and is not the sheet itself."""
        if out.absolute().resolve() == sheet.absolute().resolve():
            raise UsageError(f"--out {out} is the --sheet itself: the sheet is never overwritten")
        check_output(out, "--out")
        opened = open_sheet(sheet, campaign.contacts.sheet)
        phone = phone_index(campaign, opened)  # through [contacts] columns, as a run reads it
        return cls(opened, phone, campaign.contacts.default_region, out)

    def write(self, conn: sqlite3.Connection) -> int:
        """Every row of the sheet with its person's outcome columns; rows written."""
        phone, region = self.phone_index, self.default_region
        header = [*self.sheet.headers, *OUTCOME_COLUMNS]
        width = len(self.sheet.headers)
        numbers = [width + OUTCOME_COLUMNS.index(c) for c in ("calls", "duration_s")]
        with TableWriter(self.out, header, numbers=numbers, what="the sheet with outcomes") as t:
            # The phone cell comes uncleaned, as the contacts builder normalises it.
            for chunk in iter_rows(self.sheet, raw_columns=frozenset({phone})):
                for _, cells in chunk:
                    raw = cells[phone]
                    e164 = normalise_phone(raw, region).e164
                    found = dials.person(conn, e164) if e164 else None
                    outcome = person_cells(found)
                    row = list(cells)
                    row[phone] = clean_cell(raw)
                    t.write([*row, *(outcome[c] for c in OUTCOME_COLUMNS)])
            return t.rows
