"""`dialer sync --sheet FILE --out FILE`: the user's own sheet with each row's outcome
appended, so the results go back where marketing keeps its list (SPEC 10).

    back = Writeback.open(campaign, Path("leads.xlsx"), Path("leads-called.xlsx"))
    back.write(ledger.connection)            # rows written
    # 1200

The sheet is read as the campaign reads a sheet (`dialer.sheets.reader`, the campaign's sheet
name and phone and country columns) and each row's phone read as the contacts builder reads it,
so a row finds the person the ledger knows under that number. Every row is written, in order
(rows with nothing in them are left out, as they are when a sheet is read for a run), with
`OUTCOME_COLUMNS` and the campaign's `ai_` columns appended: blank for a row whose number this
campaign never called (but `opted_out`, which the folder's register says of any number).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from dialer.campaign.model import Campaign
from dialer.core.cells import clean_cell
from dialer.core.statuses import UsageError
from dialer.ledger import dials
from dialer.outcomes.results_file import (
    OptOuts,
    TableWriter,
    ai_cells,
    ai_columns,
    check_output,
    outcome_kinds,
    person_cells,
)
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
    "disposition",
    "sentiment",
    "opted_out",
)


@dataclass(frozen=True, slots=True)
class Writeback:
    """A sheet opened and checked, and where its copy with outcomes goes."""

    sheet: Sheet
    phones: PhoneColumns
    out: Path
    campaign: Campaign  # whose folder's opt-out register the `opted_out` column reads

    @classmethod
    def open(cls, campaign: Campaign, sheet: Path, out: Path) -> Writeback:
        """Check everything before the call logs are read: the sheet's header and phone
        column, and an `--out` that is new and is not the sheet itself."""
        if out.absolute().resolve() == sheet.absolute().resolve():
            raise UsageError(f"--out {out} is the --sheet itself: the sheet is never overwritten")
        check_output(out, "--out")
        opened = open_sheet(sheet, campaign.contacts.sheet)
        # Through [contacts] columns and the country column, as a run reads the sheet.
        return cls(opened, phone_columns(campaign, opened), out, campaign)

    def write(self, conn: sqlite3.Connection) -> int:
        """Every row of the sheet with its person's outcome columns; rows written."""
        phones = self.phones
        ai = ai_columns(conn)
        header = [*self.sheet.headers, *OUTCOME_COLUMNS, *ai]
        sheet = self.sheet

        def kinds() -> list[Kind]:
            theirs = phones_as_text(sheet.column_kinds(), phones.indexes)
            return [*theirs, *outcome_kinds(OUTCOME_COLUMNS), *[Kind.TEXT] * len(ai)]

        with (
            OptOuts(self.campaign) as optouts,
            TableWriter(
                self.out,
                header,
                kinds=kinds,
                title=sheet.sheet_name or sheet.path.stem,
                what="the sheet with outcomes",
            ) as t,
        ):
            # Phone cells come uncleaned, as the contacts builder normalises them.
            for chunk in iter_rows(self.sheet, raw_columns=frozenset(phones.indexes)):
                numbers = [phones.read(cells).phone.e164 for _, cells in chunk]
                opted_out = optouts.of(n for n in numbers if n)
                for (_, cells), e164 in zip(chunk, numbers, strict=True):
                    found = dials.person(conn, e164) if e164 else None
                    outcome = person_cells(found, opted_out=e164 in opted_out)
                    row = [clean_cell(c) if i in phones.indexes else c for i, c in enumerate(cells)]
                    t.write([*row, *(outcome[c] for c in OUTCOME_COLUMNS), *ai_cells(found, ai)])
            return t.rows
