"""CSV/XLSX contact sheet -> rows of clean text cells, streamed in chunks.

    sheet = open_sheet(Path("sample_data/contacts.csv"))
    phone = sheet.column_index("Phone", role="phone")
    for chunk in iter_rows(sheet):
        for row_number, cells in chunk:
            print(row_number, cells[phone])

`open_sheet` checks what reading will cost before reading (a CSV's every byte for its encoding
and NUL bytes, `csv_stream`; an XLSX's part sizes and cell range, `xlsx_bounds`) and reads the
header, so a broken or hostile file fails before any work starts. `iter_rows` then streams the
data rows in bounded memory: every cell is text (a phone's `+` and leading zeros survive), cleaned
of invisible characters, and padded or cut to the header's width. Row 1 is the first data row;
entirely empty rows are skipped but keep their number, so row N is what a user finds N rows below
the header. Every user-caused problem is a one-line `SheetError` naming the file; sheet text in it
is masked and cut (`sheet_files.shown`).
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import operator
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from python_calamine import (
    CalamineError,
    CalamineSheet,
    CalamineWorkbook,
    SheetTypeEnum,
    SheetVisibleEnum,
)

from dialer.core.cells import clean_cell, normalise_header
from dialer.core.files import human_size, open_regular, shown, shown_names
from dialer.core.settings import DEFAULTS, Settings
from dialer.core.statuses import SheetError
from dialer.sheets.cell_types import Kind, cells_kind, merge, text_of
from dialer.sheets.csv_stream import CsvReader, scan_encoding
from dialer.sheets.xlsx_bounds import check_range, check_xlsx

SUPPORTED_FORMATS = ".csv, .xlsx"
_CSV_SUFFIXES = frozenset({".csv", ".tsv", ".txt"})
_XLSX_SUFFIXES = frozenset({".xlsx", ".xlsm"})
_DELIMITERS = (",", ";", "\t")
_SEP_HINT = re.compile(r'"?sep=([,;\t|])"?\r?\n', re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Sheet:
    """A sheet whose header has been read and checked; `iter_rows` streams its data rows.

    `header_row` is the 0-based index of the header among the file's rows (blank rows before it
    are allowed) and `first_column` the index of the header's first non-empty cell. An XLSX
    sheet carries `open_sheet`'s parse to the first `iter_rows`.
    """

    path: Path
    kind: str
    headers: tuple[str, ...]
    columns: tuple[str, ...]
    encoding: str | None = None
    delimiter: str | None = None
    sheet_name: str | None = None
    header_row: int = 0
    first_column: int = 0
    hidden_rows: int = 0  # a CSV's "sep=;" line: Excel reads it as a setting, not a row
    settings: Settings = field(default=DEFAULTS, repr=False, compare=False)  # its reading's bounds
    _parse: _ParsedXlsx | None = field(default=None, repr=False, compare=False)
    _kinds: _KindTally = field(default_factory=lambda: _KindTally(), repr=False, compare=False)

    @property
    def named_headers(self) -> tuple[str, ...]:
        """The headers as written; an empty one by its `column_N` name."""
        return tuple(h or c for h, c in zip(self.headers, self.columns, strict=True))

    @property
    def excel_header_row(self) -> int:
        """The header's row number as a spreadsheet shows it (1 = the top row); data row N of
        `iter_rows` is then row `excel_header_row + N` there."""
        return self.header_row - self.hidden_rows + 1

    def column_kinds(self) -> tuple[Kind, ...]:
        """Each column's type in the source XLSX, in column order (`Kind`: a column is a number
        only if every filled cell is one; a CSV's are all text). Decided from the rows
        `iter_rows` has read, so a run's report describes exactly the rows it holds; a sheet
        not read yet is read once here."""
        if self.kind != "xlsx":
            return (Kind.TEXT,) * len(self.columns)
        if not self._kinds.read:
            for _ in iter_rows(self):
                pass
        return tuple(k or Kind.TEXT for k in self._kinds.kinds)

    def column_index(self, name: str, role: str) -> int:
        """Position of column `name` (normalised first); a SheetError lists the columns found,
        as the user wrote them."""
        wanted = normalise_header(name)
        try:
            return self.columns.index(wanted)
        except ValueError:
            asked = f"'{name}'" if wanted == name else f"'{name}' (as '{wanted}')"
            raise SheetError(
                f"{self.path}: no {role} column {asked}; "
                f"columns found: {shown_names(self.named_headers)}"
            ) from None


def open_sheet(path: Path, sheet_name: str | None = None, settings: Settings = DEFAULTS) -> Sheet:
    """Read and check the header of a .csv or .xlsx file; nothing else is read yet.

    The file is judged by the bounds in `settings`, and so are its rows (`iter_rows`)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _CSV_SUFFIXES and suffix not in _XLSX_SUFFIXES:
        raise SheetError(
            f"{path}: unsupported file type '{path.suffix or '(none)'}'; "
            f"supported formats: {SUPPORTED_FORMATS}"
        )
    if suffix in _XLSX_SUFFIXES:
        return _open_xlsx(path, sheet_name, settings)
    return _open_csv(path, settings)


class NumericText(str):
    """The text of a numeric XLSX cell, for a caller that must know a number was typed as one
    (Excel's General format may have cut its digits, SPEC 4.3). Only `raw_columns` carry it."""

    __slots__ = ()


def iter_rows(
    sheet: Sheet,
    chunk_rows: int = DEFAULTS.chunk_rows,
    raw_columns: frozenset[int] = frozenset(),
) -> Iterator[list[tuple[int, list[str]]]]:
    """Yield chunks of (row_number, cells); cells are cleaned text, exactly len(columns) long.

    Cells at `raw_columns` (indexes into `columns`) are handed over uncleaned, for a caller that
    must tell the user a value was cleaned (a phone, SPEC 7); emptiness still uses the clean value.
    There, a numeric XLSX cell comes as `NumericText`.
    """
    reader = _iter_csv if sheet.kind == "csv" else _iter_xlsx
    for first, rows in reader(sheet, chunk_rows, raw_columns):
        if _is_clean(rows):
            chunk = [(n, cells) for n, cells in enumerate(rows, first) if any(cells)]
        else:
            chunk = []
            for n, cells in enumerate(rows, first):
                cleaned = [clean_cell(c) for c in cells]
                if any(cleaned):
                    for i in raw_columns:
                        cleaned[i] = cells[i]
                    chunk.append((n, cleaned))
        if chunk:
            yield chunk


def _is_clean(rows: list[list[str]]) -> bool:
    """True when no cell needs clean_cell: one C-speed check over the whole chunk."""
    joined = "|".join(itertools.chain.from_iterable(rows))
    return (
        joined.isascii()
        and joined.isprintable()
        and not joined.startswith(" ")
        and not joined.endswith(" ")
        and " |" not in joined
        and "| " not in joined
    )


def _columns(
    path: Path, header: list[str], offset: int, settings: Settings
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Header cells -> (headers, normalised columns); duplicates are an error listing them all."""
    if len(header) > settings.max_header_columns:
        raise SheetError(
            f"{path}: the header row has {len(header):,} columns (over "
            f"{settings.max_header_columns:,}): the first filled row must hold the column names"
        )
    for i, text in enumerate(header):
        if len(text) > settings.max_header_chars:
            raise SheetError(
                f"{path}: column {offset + i + 1} of the header row is {len(text):,} characters "
                f"long ('{shown(text)}'): the first filled row must hold short column names"
            )
    headers = tuple(header)
    columns = tuple(
        normalise_header(h) or f"column_{offset + i + 1}" for i, h in enumerate(headers)
    )
    seen: dict[str, str] = {}
    for text, name in zip(headers, columns, strict=True):
        if name in seen:
            raise SheetError(
                f"{path}: columns '{shown(seen[name])}' and '{shown(text)}' are both named "
                f"'{shown(name)}' after normalising; columns found: "
                f"{shown_names(h or c for h, c in zip(headers, columns, strict=True))}"
            )
        seen[name] = text
    return headers, columns


def _trim_header(cells: list[str]) -> tuple[list[str], int]:
    """Drop empty cells around the header (Excel exports trailing empty columns)."""
    start = next(i for i, c in enumerate(cells) if c)
    end = max(i for i, c in enumerate(cells) if c) + 1
    return cells[start:end], start


def _open_csv(path: Path, settings: Settings) -> Sheet:
    with open_regular(path) as f:
        size = f.seek(0, 2)
        f.seek(0)
        head = f.read(settings.csv_sniff_bytes)
    if size == 0:
        raise SheetError(f"{path}: the file is empty")
    if size > settings.max_csv_bytes:
        raise SheetError(
            f"{path}: {human_size(size)} is over the {human_size(settings.max_csv_bytes)} limit "
            f"for CSV files; split it into smaller files"
        )
    _refuse_binary(path, head)
    newline = b"\n" if b"\n" in head or b"\r" not in head else b"\r"
    encoding = scan_encoding(path, newline)
    text = codecs.getincrementaldecoder(encoding)().decode(head, final=len(head) == size)
    # Excel writes and honours a first line "sep=;" naming the delimiter.
    if hint := _SEP_HINT.match(text):
        delimiter, skip = hint[1], 1
    else:
        delimiter, skip = _detect_delimiter(text, settings.csv_sniff_records), 0
    header_row, cells = _find_header(path, encoding, delimiter, skip, settings)
    header, offset = _trim_header(cells)
    headers, columns = _columns(path, header, offset, settings)
    return Sheet(
        path=path,
        kind="csv",
        headers=headers,
        columns=columns,
        encoding=encoding,
        delimiter=delimiter,
        header_row=header_row,
        first_column=offset,
        hidden_rows=skip,
        settings=settings,
    )


def _refuse_binary(path: Path, head: bytes) -> None:
    """Name the usual wrong files (a workbook renamed .csv, Excel's UTF-16 'Unicode Text')."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise SheetError(f"{path}: the file is UTF-16 text; save it as 'CSV UTF-8' instead")
    if head.startswith(b"PK\x03\x04"):
        raise SheetError(f"{path}: this is a zip/XLSX file, not CSV; give it the .xlsx name")
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise SheetError(
            f"{path}: this is an old .xls or password-protected workbook, not CSV; "
            f"save it as .xlsx or CSV UTF-8"
        )


def _records(text: str, delimiter: str) -> Iterator[list[str]]:
    """Parse a sample; a sample cut inside a quoted cell just ends the records."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        yield from reader
    except csv.Error:
        return


def _detect_delimiter(text: str, records: int) -> str:
    """The delimiter that splits the header into most columns, consistently over the next
    rows (`records` at most)."""
    best, best_score = ",", (0, 0, 0)
    for delimiter in _DELIMITERS:
        widths = []
        for record in _records(text, delimiter):
            if any(c.strip() for c in record):
                widths.append(len(record))
                if len(widths) >= records:
                    break
        if not widths or widths[0] < 2:
            continue
        same = sum(w == widths[0] for w in widths)
        score = (1, same, widths[0])
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _find_header(
    path: Path, encoding: str, delimiter: str, skip: int, settings: Settings
) -> tuple[int, list[str]]:
    """The first record with a non-empty cell, and its index among the file's records."""
    reader = CsvReader(path, encoding, delimiter, settings)
    try:
        index = 0
        while record := reader.rows(1):
            if index >= skip:
                cells = [clean_cell(c) for c in record[0]]
                if any(cells):
                    return index, cells
            index += 1
    finally:
        reader.close()
    raise SheetError(f"{path}: the file is empty (no header row)")


def _iter_csv(
    sheet: Sheet, chunk_rows: int, raw_columns: frozenset[int]
) -> Iterator[tuple[int, list[list[str]]]]:
    """Stream (first row_number, rows) chunks, every cell a str, cut to the header's width."""
    assert sheet.encoding is not None and sheet.delimiter is not None
    start, stop = sheet.first_column, sheet.first_column + len(sheet.columns)
    reader = CsvReader(sheet.path, sheet.encoding, sheet.delimiter, sheet.settings)
    try:
        reader.rows(sheet.header_row + 1)
        number = 1
        while rows := reader.rows(chunk_rows, start, stop):
            yield number, rows
            number += len(rows)
    finally:
        reader.close()


def _checked_parse(
    path: Path, sheet_name: str | None, settings: Settings
) -> tuple[str, CalamineSheet]:
    """The sheet's name and calamine's parse of it, once its parts and its cell range have
    been judged (xlsx_bounds): nothing is parsed that could blow the memory bound."""
    ranges = check_xlsx(path, settings)
    workbook = _workbook(path)
    try:
        name = _pick_sheet(path, workbook, sheet_name)
        check_range(path, ranges, name, settings)
        return name, _parse_sheet(path, workbook, name)
    finally:
        workbook.close()


def _open_xlsx(path: Path, sheet_name: str | None, settings: Settings) -> Sheet:
    name, parsed = _checked_parse(path, sheet_name, settings)
    reading = f"reading sheet '{shown(name)}'"
    for index, raw in enumerate(_readable(path, parsed, reading)):
        if type(raw) is _UnreadableRow:
            raise SheetError(
                f"{path}: row {index + 1} of sheet '{shown(name)}', before the data, "
                f"could not be read: {UNREADABLE_REASON.split(': ', 1)[1]}"
            )
        cells = [clean_cell(text_of(v)) for v in raw]
        if any(cells):
            header, offset = _trim_header(cells)
            headers, columns = _columns(path, header, offset, settings)
            return Sheet(
                path=path,
                kind="xlsx",
                headers=headers,
                columns=columns,
                sheet_name=name,
                header_row=index,
                first_column=offset,
                settings=settings,
                _parse=_ParsedXlsx(path, parsed),
            )
    raise SheetError(f"{path}: sheet '{shown(name)}' is empty (no header row)")


# What each cell of a row calamine could not convert (a date past 9999, a duration of 1e15 days:
# beyond Python's datetime) reads as: the row is kept, and reported invalid (`contacts`).
UNREADABLE_CELL = "#OUT-OF-RANGE!"
UNREADABLE_REASON = (
    "this row could not be read: a cell holds a date, time or duration out of range "
    "(before 1900, after 9999 or a huge duration); fix that cell in the sheet"
)


class _UnreadableRow(list):  # type: ignore[type-arg]
    """A row calamine failed to convert, as `UNREADABLE_CELL`s."""

    __slots__ = ()


def _readable(path: Path, parsed: CalamineSheet, doing: str) -> Iterator[list[Any]]:
    """calamine's rows (from the sheet's first row); one it fails to convert to Python values
    (OverflowError, or a Rust panic) comes as an `_UnreadableRow` of the rows' width, and the
    next rows follow: calamine has moved past it. No more rows than the sheet has, so a reader
    stuck on one row cannot loop."""
    rows = _calamine(path, doing, parsed.iter_rows)
    width = parsed.width
    limit = parsed.end[0] + 1 if parsed.end is not None else 0
    given = 0
    while given < limit:
        try:
            for row in rows:
                yield row
                given += 1
            return
        except BaseException as exc:
            if not _unconvertible(exc):
                raise
        yield _UnreadableRow([UNREADABLE_CELL] * width)
        given += 1
    try:
        more = next(rows, None) is not None
    except BaseException as exc:
        if not _unconvertible(exc):
            raise
        more = True
    if more:
        raise SheetError(f"{path}: the .xlsx reader gave more rows than the sheet has")


def _unconvertible(exc: BaseException) -> bool:
    """calamine failed on a cell's value, not on the file: past Python's range, or a Rust panic
    (pyo3's PanicException, a BaseException) converting it."""
    return isinstance(exc, OverflowError) or type(exc).__name__ == "PanicException"


def _calamine(path: Path, doing: str, call: Any) -> Any:
    """Run a python-calamine call; its errors (and Rust panics) become one-line SheetErrors."""
    try:
        return call()
    except (CalamineError, OSError, ValueError) as exc:
        raise SheetError(
            f"{path}: not a valid .xlsx file ({doing}: {shown(str(exc), 120)}); it may be a "
            f"renamed file or a corrupt download"
        ) from None
    except BaseException as exc:
        # pyo3 raises a Rust panic as PanicException, a BaseException: never show its text.
        if type(exc).__name__ != "PanicException":
            raise
        raise SheetError(
            f"{path}: the .xlsx reader failed on this file ({doing}); open it in a spreadsheet "
            f"and save it again"
        ) from None


def _workbook(path: Path) -> CalamineWorkbook:
    return _calamine(path, "opening", lambda: CalamineWorkbook.from_path(str(path)))


def _pick_sheet(path: Path, workbook: CalamineWorkbook, wanted: str | None) -> str:
    """The named sheet (exact, then case-insensitive), else the first visible worksheet."""
    names: list[str] = list(workbook.sheet_names)
    if wanted is not None:
        if wanted in names:
            return wanted
        folded = [n for n in names if n.strip().casefold() == wanted.strip().casefold()]
        if len(folded) == 1:
            return folded[0]
        raise SheetError(
            f"{path}: no sheet named '{shown(wanted)}'; sheets found: {shown_names(names)}"
        )
    for meta in workbook.sheets_metadata:
        if meta.typ == SheetTypeEnum.WorkSheet and meta.visible == SheetVisibleEnum.Visible:
            return meta.name
    raise SheetError(f"{path}: the workbook has no visible worksheet")


def sheet_tabs(path: Path, settings: Settings = DEFAULTS) -> list[str]:
    """The visible worksheets of an XLSX file, in the workbook's order ([] for a CSV)."""
    path = Path(path)
    if path.suffix.lower() not in _XLSX_SUFFIXES:
        return []
    check_xlsx(path, settings)
    workbook = _workbook(path)
    try:
        return [
            meta.name
            for meta in workbook.sheets_metadata
            if meta.typ == SheetTypeEnum.WorkSheet and meta.visible == SheetVisibleEnum.Visible
        ]
    finally:
        workbook.close()


def _parse_sheet(path: Path, workbook: CalamineWorkbook, name: str) -> CalamineSheet:
    return _calamine(
        path, f"reading sheet '{shown(name)}'", lambda: workbook.get_sheet_by_name(name)
    )


class _ParsedXlsx:
    """`open_sheet`'s parse of an XLSX sheet, handed once to `iter_rows`: calamine parses a whole
    sheet at once, seconds on a big workbook. Given away on the first `take`, so a finished
    stream does not keep it; a file changed since is parsed (and checked) again."""

    __slots__ = ("_key", "_parsed")

    def __init__(self, path: Path, parsed: CalamineSheet) -> None:
        self._key = _file_key(path)
        self._parsed: CalamineSheet | None = parsed

    def take(self, path: Path) -> CalamineSheet | None:
        parsed, self._parsed = self._parsed, None
        return parsed if parsed is not None and _file_key(path) == self._key else None


class _KindTally:
    """The merged kind of each column over the XLSX rows read so far (`Sheet.column_kinds`)."""

    __slots__ = ("kinds", "read")

    def __init__(self) -> None:
        self.kinds: list[Kind | None] = []
        self.read = False

    def add(self, batch: list[Any], start: int, width: int) -> None:
        if not self.read:
            self.kinds = [None] * width
            self.read = True
        kinds = self.kinds
        for i, kind in enumerate(kinds):
            if kind is Kind.TEXT:
                continue  # decided: a text column stays text, its cells are not looked at
            # One column's cells in a C loop, not a Python call per cell; calamine's rows all
            # span the sheet's range, a short one would only mean empty cells.
            try:
                cells = list(map(operator.itemgetter(start + i), batch))
            except IndexError:
                cells = [r[start + i] for r in batch if len(r) > start + i]
            kinds[i] = merge(kind, cells_kind(cells))


def _file_key(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


def _iter_xlsx(
    sheet: Sheet, chunk_rows: int, raw_columns: frozenset[int]
) -> Iterator[tuple[int, list[list[str]]]]:
    """Stream (first row_number, rows) chunks; calamine holds the sheet, we convert lazily."""
    assert sheet.sheet_name is not None
    parsed = sheet._parse.take(sheet.path) if sheet._parse is not None else None
    if parsed is None:  # read again (or changed since open_sheet): check it again
        _, parsed = _checked_parse(sheet.path, sheet.sheet_name, sheet.settings)
    start, width = sheet.first_column, len(sheet.columns)
    numeric = sorted(raw_columns)
    rows = _readable(sheet.path, parsed, "reading rows")
    for _ in range(sheet.header_row + 1):
        next(rows, None)
    number = 1
    while batch := _calamine(
        sheet.path, "reading rows", lambda: list(itertools.islice(rows, chunk_rows))
    ):
        sheet._kinds.add(batch, start, width)
        texts = []
        for row in batch:
            values = row[start : start + width]
            cells = [v if type(v) is str else text_of(v) for v in values]
            if len(cells) < width:
                cells += [""] * (width - len(cells))
            for i in numeric:
                if i < len(values) and type(values[i]) in (int, float):
                    cells[i] = NumericText(cells[i])
            texts.append(cells)
        yield number, texts
        number += len(batch)
