"""`dialer sync --sheet FILE --out FILE`: the user's own sheet with each row's outcome
appended, so the results go back where marketing keeps its list (SPEC 10).

    >>> back = Writeback.open(campaign, Path("leads.xlsx"), Path("leads-called.xlsx"))
    >>> back.write(ledger.connection)            # rows written
    1200

The sheet is read as the campaign reads a sheet (`dialer.sheets.reader`, the campaign's sheet
name and phone and country columns) and each row's phone read as the contacts builder reads it,
so a row finds the person the ledger knows under that number. Every row is written, in order
(rows with nothing in them are left out, as they are when a sheet is read for a run), with
`OUTCOME_COLUMNS` appended: blank for a row whose number this campaign never called.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from dialer.campaign.model import Campaign
from dialer.core.cells import clean_cell
from dialer.core.statuses import UsageError
from dialer.ledger import dials
from dialer.outcomes.results_file import TableWriter, check_output, outcome_kinds, person_cells
from dialer.sheets.cell_types import Kind, phones_as_text
from dialer.sheets.reader import Sheet, iter_rows, open_sheet
from dialer.sheets.row_phone import PhoneColumns, phone_columns

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
    phones: PhoneColumns
    out: Path

    @classmethod
    def open(cls, campaign: Campaign, sheet: Path, out: Path) -> Writeback:
        """Check everything before the call logs are read: the sheet's header and phone
        column, and an `--out` that is new and is not the sheet itself."""
        if out.absolute().resolve() == sheet.absolute().resolve():
            raise UsageError(f"--out {out} is the --sheet itself: the sheet is never overwritten")
        check_output(out, "--out")
        opened = open_sheet(sheet, campaign.contacts.sheet)
        # Through [contacts] columns and the country column, as a run reads the sheet.
        return cls(opened, phone_columns(campaign, opened), out)

    def write(self, conn: sqlite3.Connection) -> int:
        """Every row of the sheet with its person's outcome columns; rows written."""
        phones = self.phones
        header = [*self.sheet.headers, *OUTCOME_COLUMNS]
        sheet = self.sheet

        def kinds() -> list[Kind]:
            theirs = phones_as_text(sheet.column_kinds(), phones.indexes)
            return [*theirs, *outcome_kinds(OUTCOME_COLUMNS)]

        with TableWriter(
            self.out,
            header,
            kinds=kinds,
            title=sheet.sheet_name or sheet.path.stem,
            what="the sheet with outcomes",
        ) as t:
            # Phone cells come uncleaned, as the contacts builder normalises them.
            for chunk in iter_rows(self.sheet, raw_columns=frozenset(phones.indexes)):
                for _, cells in chunk:
                    e164 = phones.read(cells).phone.e164
                    found = dials.person(conn, e164) if e164 else None
                    outcome = person_cells(found)
                    row = [clean_cell(c) if i in phones.indexes else c for i, c in enumerate(cells)]
                    t.write([*row, *(outcome[c] for c in OUTCOME_COLUMNS)])
            return t.rows
