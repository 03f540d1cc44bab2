"""Every phone number of a sheet, each with its spreadsheet row: what an opt-out import reads
(`dialer optout import`, the page's register), whatever the sheet's other columns are.

    found, bad = read_numbers(Path("do-not-call.xlsx"), region="IN", column=None, tab=None)
"""

from __future__ import annotations

from pathlib import Path

from dialer.core.files import shown_names
from dialer.core.masking import mask_text
from dialer.core.statuses import SheetError
from dialer.sheets.columns import country_header, phone_headers
from dialer.sheets.phones import normalise_phone
from dialer.sheets.reader import iter_rows, open_sheet
from dialer.sheets.row_phone import PhoneColumns


def read_numbers(
    path: Path, region: str | None, column: str | None, tab: str | None
) -> tuple[list[tuple[int, str]], list[str]]:
    """([(spreadsheet row, E.164)], [bad row's line]): every number of every phone column
    of each row (a person with two numbers is opted out of both)."""
    sheet = open_sheet(path, tab)
    names = sheet.named_headers
    if column is not None:
        indexes: tuple[int, ...] = (sheet.column_index(column, "phone"),)
    else:
        indexes = tuple(names.index(h) for h in phone_headers(names))
    if not indexes:
        raise SheetError(
            f"{path}: no phone column; columns found: {shown_names(names)}; name it with --column"
        )
    country = country_header(names, taken=[names[i] for i in indexes])
    columns = PhoneColumns.of(sheet, indexes, names.index(country) if country else None, region)
    found: list[tuple[int, str]] = []
    bad: list[str] = []
    for chunk in iter_rows(sheet):
        for n, cells in chunk:
            row = sheet.excel_header_row + n
            row_region, problem = columns.region(cells)
            numbers, problems = [], [problem] if problem else []
            for index, label in zip(columns.indexes, columns.labels, strict=True):
                if problem or not cells[index]:
                    continue
                phone = normalise_phone(cells[index], row_region)
                if phone.e164 is None:
                    problems.append(f"'{label}': {mask_text(phone.reason)}")
                else:
                    numbers.append(phone.e164)
            if not numbers and not problems:
                problems.append("no phone number")
            if problems:
                bad.append(f"row {row}: {'; '.join(problems)}")
            else:
                found += [(row, number) for number in numbers]
    return found, bad
