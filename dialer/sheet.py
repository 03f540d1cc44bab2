"""CSV/XLSX contact sheet -> rows of clean text cells, streamed in chunks.

    >>> sheet = open_sheet(Path("sample_data/contacts.csv"))
    >>> phone = sheet.column_index("Phone", role="phone")
    >>> for chunk in iter_rows(sheet):
    ...     for row_number, cells in chunk:
    ...         print(row_number, cells[phone])

`open_sheet` reads only the header (and detects a CSV's encoding and delimiter), so a broken file
fails before any work starts. `iter_rows` then streams the data rows: every cell is text (a
phone's `+` and leading zeros survive), cleaned of invisible characters, and padded or cut to the
header's width. Row 1 is the first data row; entirely empty rows are skipped but keep their number,
so row N is what a user finds N rows below the header. Every user-caused problem is a one-line
`SheetError` naming the file.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import itertools
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from python_calamine import (
    CalamineError,
    CalamineSheet,
    CalamineWorkbook,
    SheetTypeEnum,
    SheetVisibleEnum,
)

from dialer.statuses import SheetError

MAX_CSV_BYTES = 1 << 30
MAX_XLSX_UNCOMPRESSED = 1 << 30
# A member this much bigger than its compressed size is a zip bomb; real sheet XML is ~5-30x.
MAX_XLSX_RATIO = 200
# Tiny members cannot hurt whatever their ratio (an empty styles part compresses very well).
_RATIO_MIN_BYTES = 1 << 20

SUPPORTED_FORMATS = ".csv, .xlsx"
_CSV_SUFFIXES = frozenset({".csv", ".tsv", ".txt"})
_XLSX_SUFFIXES = frozenset({".xlsx", ".xlsm"})
_DELIMITERS = (",", ";", "\t")
_SNIFF_BYTES = 1 << 20
_SNIFF_RECORDS = 50
_SEP_HINT = re.compile(r'"?sep=([,;\t|])"?\r?\n', re.IGNORECASE)
# Bytes that cp1252 leaves undefined: a file holding them can only be latin-1.
_CP1252_UNDEFINED = re.compile(rb"[\x81\x8d\x8f\x90\x9d]")

_ZERO_WIDTH = "\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad\u180e"
# Blank-looking letters and joiners (Hangul fillers, braille blank, grapheme joiner): they
# make an empty name look filled in ("Hello ㅤ,").
_BLANK_LOOKING = "\u115f\u1160\u3164\uffa0\u2800\u034f"
_BIDI = "\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_CONTROL_WHITESPACE = "\t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\u2028\u2029"
# Characters a reader cannot see: C0/C1 controls, zero-width and bidi controls, and Unicode tag
# characters (U+E0000..U+E007F, used to smuggle invisible text into AI prompts).
INVISIBLE_CHARS = (
    "".join(chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)] if chr(c) not in _CONTROL_WHITESPACE)
    + _ZERO_WIDTH
    + _BLANK_LOOKING
    + _BIDI
    + "".join(chr(c) for c in range(0xE0000, 0xE0080))
)
_DROP_INVISIBLE = str.maketrans("", "", INVISIBLE_CHARS)
# Any run of whitespace holding a tab, newline or non-breaking/odd space becomes one space.
_ODD_SPACE_RUN = re.compile(r"\s*[^\S ]\s*")
_NOT_ALNUM_RUN = re.compile(r"[\W_]+")
# calamine parses a whole sheet at once: iter_rows reuses open_sheet's parse instead of doing
# it twice (seconds on a big workbook). One entry, so at most one parsed sheet is held.
_PARSED: dict[tuple[str, str, int, int], CalamineSheet] = {}


def normalise_header(name: str) -> str:
    """'First Name ' -> 'first_name', 'Order-ID' -> 'order_id' (SPEC 4.2)."""
    return _NOT_ALNUM_RUN.sub("_", clean_cell(name).lower()).strip("_")


def clean_cell(value: str) -> str:
    """Drop invisible characters, turn tabs/newlines/NBSP runs into one space, strip the ends."""
    if value.isascii() and value.isprintable():
        return value.strip()
    return _ODD_SPACE_RUN.sub(" ", value.translate(_DROP_INVISIBLE)).strip()


@dataclass(frozen=True, slots=True)
class Sheet:
    """A sheet whose header has been read and checked; `iter_rows` streams its data rows.

    `header_row` is the 0-based index of the header among the file's rows (blank rows before it
    are allowed) and `first_column` the index of the header's first non-empty cell.
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

    def column_index(self, name: str, role: str) -> int:
        """Position of column `name` (normalised first); a SheetError lists the columns found."""
        wanted = normalise_header(name)
        try:
            return self.columns.index(wanted)
        except ValueError:
            shown = f"'{name}'" if wanted == name else f"'{name}' (as '{wanted}')"
            raise SheetError(
                f"{self.path}: no {role} column {shown}; columns found: {', '.join(self.columns)}"
            ) from None


def open_sheet(path: Path, sheet_name: str | None = None) -> Sheet:
    """Read and check the header of a .csv or .xlsx file; nothing else is read yet."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _CSV_SUFFIXES and suffix not in _XLSX_SUFFIXES:
        raise SheetError(
            f"{path}: unsupported file type '{path.suffix or '(none)'}'; "
            f"supported formats: {SUPPORTED_FORMATS}"
        )
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise SheetError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not path.is_file():
        raise SheetError(f"{path}: not a file")
    if size == 0:
        raise SheetError(f"{path}: the file is empty")
    if suffix in _XLSX_SUFFIXES:
        return _open_xlsx(path, sheet_name)
    return _open_csv(path, size)


def iter_rows(
    sheet: Sheet, chunk_rows: int = 20_000, raw_columns: frozenset[int] = frozenset()
) -> Iterator[list[tuple[int, list[str]]]]:
    """Yield chunks of (row_number, cells); cells are cleaned text, exactly len(columns) long.

    Cells at `raw_columns` (indexes into `columns`) are handed over uncleaned, for a caller that
    must tell the user a value was cleaned (a phone, SPEC 7); emptiness still uses the clean value.
    """
    reader = _iter_csv if sheet.kind == "csv" else _iter_xlsx
    for first, raw in reader(sheet, chunk_rows):
        cleaned = [_clean_column(column) for column in raw]
        numbers = range(first, first + len(raw[0]))
        rows = zip(*cleaned, strict=True)
        if raw_columns:
            shown = [raw[i] if i in raw_columns else c for i, c in enumerate(cleaned)]
            pairs = zip(numbers, rows, zip(*shown, strict=True), strict=True)
            chunk = [(n, list(cells)) for n, check, cells in pairs if any(check)]
        else:
            chunk = [(n, list(cells)) for n, cells in zip(numbers, rows, strict=True) if any(cells)]
        if chunk:
            yield chunk


def _clean_column(column: list[str]) -> list[str]:
    """clean_cell on every cell, skipped when one C-speed check shows the column is clean."""
    joined = "|".join(column)
    if (
        joined.isascii()
        and joined.isprintable()
        and not joined.startswith(" ")
        and not joined.endswith(" ")
        and " |" not in joined
        and "| " not in joined
    ):
        return column
    return [clean_cell(c) for c in column]


def _columns(path: Path, header: list[str], offset: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Header cells -> (headers, normalised columns); duplicates are an error listing them all."""
    headers = tuple(header)
    columns = tuple(
        normalise_header(h) or f"column_{offset + i + 1}" for i, h in enumerate(headers)
    )
    seen: dict[str, str] = {}
    for text, name in zip(headers, columns, strict=True):
        if name in seen:
            raise SheetError(
                f"{path}: columns '{seen[name]}' and '{text}' are both named '{name}' after "
                f"normalising; columns found: {', '.join(columns)}"
            )
        seen[name] = text
    return headers, columns


def _trim_header(cells: list[str]) -> tuple[list[str], int]:
    """Drop empty cells around the header (Excel exports trailing empty columns)."""
    start = next(i for i, c in enumerate(cells) if c)
    end = max(i for i, c in enumerate(cells) if c) + 1
    return cells[start:end], start


# --- CSV -------------------------------------------------------------------------------------


def _open_csv(path: Path, size: int) -> Sheet:
    if size > MAX_CSV_BYTES:
        raise SheetError(
            f"{path}: {_human(size)} is over the {_human(MAX_CSV_BYTES)} limit for CSV files; "
            f"split it into smaller files"
        )
    with path.open("rb") as f:
        head = f.read(_SNIFF_BYTES)
    whole = len(head) == size
    _refuse_binary(path, head)
    encoding, text = _decode_head(head, whole)
    # Excel writes and honours a first line "sep=;" naming the delimiter.
    if hint := _SEP_HINT.match(text):
        delimiter, skip = hint[1], 1
    else:
        delimiter, skip = _detect_delimiter(text), 0
    found = _find_header(text, delimiter, skip)
    if found is None:
        raise SheetError(
            f"{path}: the file is empty (no header row)"
            if whole
            else f"{path}: no header row in the first {_human(_SNIFF_BYTES)}"
        )
    header_row, cells = found
    header, offset = _trim_header(cells)
    headers, columns = _columns(path, header, offset)
    return Sheet(
        path=path,
        kind="csv",
        headers=headers,
        columns=columns,
        encoding=encoding,
        delimiter=delimiter,
        header_row=header_row,
        first_column=offset,
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
    if b"\x00" in head:
        raise SheetError(f"{path}: the file holds binary data (NUL bytes); it is not a CSV file")


def _decode_head(head: bytes, whole: bool) -> tuple[str, str]:
    """Pick the encoding from the first MiB: UTF-8 (BOM or not), else cp1252, else latin-1."""
    if head.startswith(codecs.BOM_UTF8):
        encoding, body = "utf-8-sig", head[len(codecs.BOM_UTF8) :]
    else:
        encoding, body = "utf-8", head
    try:
        # An incremental decoder does not choke on a character cut at the sample's end.
        return encoding, codecs.getincrementaldecoder("utf-8")().decode(body, final=whole)
    except UnicodeDecodeError:
        pass
    encoding = "latin-1" if _CP1252_UNDEFINED.search(head) else "cp1252"
    return encoding, head.decode(encoding)


def _records(text: str, delimiter: str) -> Iterator[list[str]]:
    """Parse a sample; a sample cut inside a quoted cell just ends the records."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        yield from reader
    except csv.Error:
        return


def _detect_delimiter(text: str) -> str:
    """The delimiter that splits the header into most columns, consistently over the next rows."""
    best, best_score = ",", (0, 0, 0)
    for delimiter in _DELIMITERS:
        widths = []
        for record in _records(text, delimiter):
            if any(c.strip() for c in record):
                widths.append(len(record))
                if len(widths) >= _SNIFF_RECORDS:
                    break
        if not widths or widths[0] < 2:
            continue
        same = sum(w == widths[0] for w in widths)
        score = (1, same, widths[0])
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _find_header(text: str, delimiter: str, skip: int) -> tuple[int, list[str]] | None:
    """The first row with a non-empty cell, and its index among the file's rows."""
    for index, record in enumerate(_records(text, delimiter)):
        if index < skip:
            continue
        cells = [clean_cell(c) for c in record]
        if any(cells):
            return index, cells
    return None


def _iter_csv(sheet: Sheet, chunk_rows: int) -> Iterator[tuple[int, list[list[str]]]]:
    """Stream (first row_number, raw columns) chunks from pandas' C parser, every cell a str."""
    import pandas as pd

    start, stop = sheet.first_column, sheet.first_column + len(sheet.columns)
    try:
        reader = pd.read_csv(
            sheet.path,
            sep=sheet.delimiter,
            header=None,
            # names+usecols: rows wider than the header are cut, narrower ones padded with "".
            names=range(stop),
            usecols=range(start, stop),
            dtype=object,
            keep_default_na=False,
            na_filter=False,
            skip_blank_lines=False,
            engine="c",
            encoding=sheet.encoding,
            chunksize=chunk_rows,
        )
        index = 0  # rows read so far, blank ones and those before the header included
        with reader:
            for frame in reader:
                first, index = index, index + len(frame)
                skip = max(0, sheet.header_row + 1 - first)
                if skip < len(frame):
                    columns = [frame[c].tolist()[skip:] for c in frame.columns]
                    yield first + skip - sheet.header_row, columns
    except UnicodeDecodeError as exc:
        where = "" if sheet.encoding in ("cp1252", "latin-1") else " after the first MiB"
        raise SheetError(
            f"{sheet.path}: byte 0x{exc.object[exc.start]:02x} cannot be read as "
            f"{sheet.encoding}{where}; save the file as 'CSV UTF-8'"
        ) from None
    except (pd.errors.ParserError, ValueError) as exc:
        message = str(exc).strip().removeprefix("Error tokenizing data. C error: ")
        raise SheetError(f"{sheet.path}: cannot parse CSV: {message}") from None


# --- XLSX ------------------------------------------------------------------------------------


def _open_xlsx(path: Path, sheet_name: str | None) -> Sheet:
    _check_zip(path)
    workbook = _workbook(path)
    try:
        name = _pick_sheet(path, workbook, sheet_name)
        parsed = _parse_sheet(path, workbook, name)
    finally:
        workbook.close()
    for index, raw in enumerate(parsed.iter_rows()):
        cells = [clean_cell(_xlsx_text(v)) for v in raw]
        if any(cells):
            header, offset = _trim_header(cells)
            headers, columns = _columns(path, header, offset)
            _PARSED.clear()
            _PARSED[_parsed_key(path, name)] = parsed
            return Sheet(
                path=path,
                kind="xlsx",
                headers=headers,
                columns=columns,
                sheet_name=name,
                header_row=index,
                first_column=offset,
            )
    raise SheetError(f"{path}: sheet '{name}' is empty (no header row)")


def _check_zip(path: Path) -> None:
    """Refuse junk and zip bombs before calamine inflates anything."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        raise SheetError(
            f"{path}: not a valid .xlsx file (it may be a renamed .xls, a password-protected "
            f"workbook or a corrupt download)"
        ) from None
    total = sum(m.file_size for m in members)
    if total > MAX_XLSX_UNCOMPRESSED:
        raise SheetError(
            f"{path}: unpacks to {_human(total)}, over the {_human(MAX_XLSX_UNCOMPRESSED)} "
            f"limit for .xlsx files (a zip bomb, or a sheet to split)"
        )
    for m in members:
        ratio = m.file_size // max(m.compress_size, 1)
        if m.file_size > _RATIO_MIN_BYTES and ratio > MAX_XLSX_RATIO:
            raise SheetError(
                f"{path}: part '{m.filename}' unpacks {ratio}x its packed size "
                f"(over {MAX_XLSX_RATIO}x): refusing a likely zip bomb"
            )


def _workbook(path: Path) -> CalamineWorkbook:
    try:
        return CalamineWorkbook.from_path(str(path))
    except (CalamineError, OSError, ValueError) as exc:
        raise SheetError(
            f"{path}: not a valid .xlsx file ({_one_line(exc)}); it may be a renamed file or a "
            f"corrupt download"
        ) from None


def _pick_sheet(path: Path, workbook: CalamineWorkbook, wanted: str | None) -> str:
    """The named sheet (exact, then case-insensitive), else the first visible worksheet."""
    names: list[str] = list(workbook.sheet_names)
    if wanted is not None:
        if wanted in names:
            return wanted
        folded = [n for n in names if n.strip().casefold() == wanted.strip().casefold()]
        if len(folded) == 1:
            return folded[0]
        raise SheetError(f"{path}: no sheet named '{wanted}'; sheets found: {', '.join(names)}")
    for meta in workbook.sheets_metadata:
        if meta.typ == SheetTypeEnum.WorkSheet and meta.visible == SheetVisibleEnum.Visible:
            return meta.name
    raise SheetError(f"{path}: the workbook has no visible worksheet")


def _parse_sheet(path: Path, workbook: CalamineWorkbook, name: str) -> CalamineSheet:
    try:
        return workbook.get_sheet_by_name(name)
    except (CalamineError, ValueError) as exc:
        raise SheetError(f"{path}: cannot read sheet '{name}': {_one_line(exc)}") from None


def _parsed_key(path: Path, name: str) -> tuple[str, str, int, int]:
    stat = path.stat()
    return str(path.resolve()), name, stat.st_size, stat.st_mtime_ns


def _iter_xlsx(sheet: Sheet, chunk_rows: int) -> Iterator[tuple[int, list[list[str]]]]:
    """Stream (first row_number, columns) chunks; calamine holds the sheet, we convert lazily."""
    assert sheet.sheet_name is not None
    parsed = _PARSED.pop(_parsed_key(sheet.path, sheet.sheet_name), None)
    if parsed is None:
        workbook = _workbook(sheet.path)
        try:
            parsed = _parse_sheet(sheet.path, workbook, sheet.sheet_name)
        finally:
            workbook.close()
    start, width = sheet.first_column, len(sheet.columns)
    rows = parsed.iter_rows()
    for _ in range(sheet.header_row + 1):
        next(rows, None)
    number = 1
    while batch := list(itertools.islice(rows, chunk_rows)):
        texts = []
        for row in batch:
            cells = [v if type(v) is str else _xlsx_text(v) for v in row[start : start + width]]
            if len(cells) < width:
                cells += [""] * (width - len(cells))
            texts.append(cells)
        yield number, [list(column) for column in zip(*texts, strict=True)]
        number += len(batch)


def _xlsx_text(value: Any) -> str:
    """A cell as the text a person typed: 917359043943.0 -> '917359043943', dates as ISO."""
    kind = type(value)
    if kind is str:
        return value
    if kind is float:
        if value.is_integer():
            return str(int(value))
        text = f"{value:.15g}"  # Excel keeps 15 significant digits; no binary-float noise
        return format(Decimal(text), "f") if "e" in text else text
    if kind is bool:
        return "TRUE" if value else "FALSE"
    if kind is int:
        return str(value)
    if kind is dt.datetime:
        if value.microsecond:
            value = (value + dt.timedelta(microseconds=500_000)).replace(microsecond=0)
        return value.isoformat(sep=" ")
    if kind is dt.date:
        return value.isoformat()
    if kind is dt.time:
        return value.isoformat(timespec="seconds")
    if kind is dt.timedelta:
        seconds = round(value.total_seconds())
        sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
        return f"{sign}{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    if value is None:
        return ""
    return str(value)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _human(size: int) -> str:
    """1536 -> '1.5 KiB', 1 << 30 -> '1 GiB'."""
    if size < 1024:
        return f"{size} bytes"
    power = min(3, (size.bit_length() - 1) // 10)
    return f"{size / 1024**power:.1f}".removesuffix(".0") + (" KiB", " MiB", " GiB")[power - 1]
