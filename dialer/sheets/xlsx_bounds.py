"""What an XLSX will cost to read, judged before python-calamine reads any of it (SPEC 7).

    ranges = check_xlsx(path)              # sizes of every part, real and declared
    check_range(path, ranges, "Contacts")  # the sheet's cell range against its cells

python-calamine holds the shared strings and a sheet's whole rectangular range in memory (~32
bytes a cell, empty ones included) and aborts on a range it cannot allocate. So, first: the zip's
part count, each part's size (declared, then counted while inflating it ourselves, so a header
that lies cannot hide a bomb) and compression ratio. Second, while the sheet parts inflate, the
cell references of the filled cells are read: a range far larger than its cells (one stray value
at ZZ200000 or XFD1048576) is refused with where it is. The `<dimension>` a file declares is not
trusted either way: only real cells make calamine allocate.

Measured on real sheets: a 100,000-row, 8-column sheet's XML is 47 MB (ratio 9.5), so a
1,000,000-row one is ~470 MB with inline strings, or ~250 MB plus ~100 MB of shared strings as
Excel saves it; its range is 8,000,000 cells (~260 MB in calamine).
"""

from __future__ import annotations

import html
import posixpath
import re
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from dialer.core.files import human_size, open_regular, shown
from dialer.core.settings import DEFAULTS, Settings
from dialer.core.statuses import SheetError

_BLOCK = 1 << 20
_MAX_TAG = 64 << 10
_WORKBOOK = "xl/workbook.xml"
_WORKBOOK_RELS = "xl/_rels/workbook.xml.rels"
_FIXED_READS = ("[Content_Types].xml", "_rels/.rels", _WORKBOOK, _WORKBOOK_RELS, "xl/styles.xml")
# A filled cell in the form every writer uses; anything else is read the careful way.
_PLAIN_CELL = re.compile(rb'<c r="([A-Z]{1,3})([0-9]{1,7})"')
_ODD_CELL = re.compile(rb"<c[^ a-z]")
_ANY_TAG = re.compile(rb"<(/?)(?:[\w.-]+:)?(row|c)(?=[\s/>])([^>]*)>")
_REF_ATTR = re.compile(rb"""(?:^|\s)r\s*=\s*["']([A-Za-z]*)([0-9]*)["']""")
_SHEET_TAG = re.compile(r"<(?:[\w.-]+:)?sheet\s([^>]*)>")
_REL_TAG = re.compile(r"<(?:[\w.-]+:)?Relationship\s([^>]*)>")
_ATTR = re.compile(r"""([\w.:-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")


@dataclass(slots=True)
class CellRange:
    """Where a sheet part's filled cells are: 1-based rows and columns, and how many."""

    cells: int = 0
    top: int = 0
    bottom: int = 0
    left: int = 0
    right: int = 0

    @property
    def area(self) -> int:
        if not self.cells:
            return 0
        return (self.bottom - self.top + 1) * (self.right - self.left + 1)

    def add(self, rows: list[int], cols: list[int], count: int | None = None) -> None:
        """Widen the range to these cells' rows and columns; `count` cells (default: each)."""
        if not rows:
            return
        top, bottom, left, right = min(rows), max(rows), min(cols), max(cols)
        if self.cells:
            top, bottom = min(top, self.top), max(bottom, self.bottom)
            left, right = min(left, self.left), max(right, self.right)
        self.cells += len(rows) if count is None else count
        self.top, self.bottom, self.left, self.right = top, bottom, left, right


@dataclass(slots=True)
class XlsxRanges:
    """Each worksheet part's cell range, and the workbook's sheet name -> part."""

    ranges: dict[str, CellRange] = field(default_factory=dict)
    parts: dict[str, str] = field(default_factory=dict)


def check_xlsx(path: Path, settings: Settings = DEFAULTS) -> XlsxRanges:
    """Refuse junk, bombs and oversize parts (the `max_xlsx_*` of `settings`); return the
    worksheets' cell ranges."""
    with open_regular(path) as f:
        size = f.seek(0, 2)
        if size > settings.max_xlsx_bytes:
            raise SheetError(
                f"{path}: {human_size(size)} is over the {human_size(settings.max_xlsx_bytes)} "
                f"limit for .xlsx files; split it into smaller files"
            )
        archive = _archive(path, f, settings)
        with archive:
            members = archive.infolist()
            _check_declared(path, members, settings)
            reads = _parts_read(path, f, archive, settings)
            found = XlsxRanges(parts=reads.sheet_parts)
            total = 0
            for member in members:
                kind = reads.kinds.get(member.filename)
                if kind is None:
                    total += member.file_size
                    continue
                scan = _RangeScan() if kind == "sheet" else None
                total += _inflate(path, f, member, kind, settings, scan)
                if scan is not None:
                    if scan.odd or _refused(scan.found, settings):
                        scan = _RangeScan(careful=True)
                        _inflate(path, f, member, kind, settings, scan)
                    found.ranges[member.filename] = scan.found
            if total > settings.max_xlsx_uncompressed:
                _too_big(path, total, settings)
    return found


def check_range(path: Path, found: XlsxRanges, sheet: str, settings: Settings = DEFAULTS) -> None:
    """Refuse a sheet whose cell range calamine could not hold, or that is mostly empty."""
    part = found.parts.get(sheet)
    if part in found.ranges:
        cells = found.ranges[part]  # type: ignore[index]
    else:  # the name could not be tied to a part: judge by the widest sheet
        cells = max(found.ranges.values(), key=lambda r: r.area, default=CellRange())
    if _refused(cells, settings):
        area = cells.area
        first, last = _ref(cells.top, cells.left), _ref(cells.bottom, cells.right)
        raise SheetError(
            f"{path}: sheet '{shown(sheet)}' spans {first}:{last} ({area:,} cells) but only "
            f"{cells.cells:,} hold a value: a stray value far from the table? Delete the rows "
            f"and columns beyond the table (Ctrl+End shows the last cell), or copy the table to "
            f"a new sheet"
        )


def _refused(cells: CellRange, settings: Settings) -> bool:
    area = cells.area
    return area > settings.max_xlsx_cells or (
        area > settings.xlsx_sparse_from and area > settings.xlsx_sparse_ratio * cells.cells
    )


def _part_limit(kind: str, settings: Settings) -> int:
    """The most a part of this kind ("sheet", "strings", "other") may unpack to."""
    if kind == "sheet":
        return settings.max_xlsx_sheet_part
    if kind == "strings":
        return settings.max_xlsx_strings_part
    return settings.max_xlsx_other_part


def _archive(path: Path, f: BinaryIO, settings: Settings) -> zipfile.ZipFile:
    """The zip, once its directory is known to be small (zipfile reads all of it at once)."""
    junk = SheetError(
        f"{path}: not a valid .xlsx file (it may be a renamed .xls, a password-protected "
        f"workbook or a corrupt download)"
    )
    try:
        end = zipfile._EndRecData(f)  # type: ignore[attr-defined]
    except (OSError, ValueError, struct.error):
        raise junk from None
    if not end:
        raise junk
    entries, directory = end[zipfile._ECD_ENTRIES_TOTAL], end[zipfile._ECD_SIZE]  # type: ignore[attr-defined]
    most = settings.max_xlsx_parts
    if entries > most or directory > most * 1024:
        raise SheetError(f"{path}: the zip holds {entries:,} parts (over {most:,}): not a workbook")
    try:
        return zipfile.ZipFile(f)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise junk from None


def _check_declared(path: Path, members: list[zipfile.ZipInfo], settings: Settings) -> None:
    total = sum(m.file_size for m in members)
    if total > settings.max_xlsx_uncompressed:
        _too_big(path, total, settings)
    for m in members:
        _check_ratio(path, m.filename, m.file_size, m.compress_size, settings)


def _check_ratio(path: Path, name: str, size: int, packed: int, settings: Settings) -> None:
    ratio = size // max(packed, 1)
    if size > settings.xlsx_ratio_from_bytes and ratio > settings.max_xlsx_ratio:
        raise SheetError(
            f"{path}: part '{name}' unpacks {ratio}x its packed size "
            f"(over {settings.max_xlsx_ratio}x): refusing a likely zip bomb"
        )


def _too_big(path: Path, total: int, settings: Settings) -> None:
    raise SheetError(
        f"{path}: unpacks to {human_size(total)}, over the "
        f"{human_size(settings.max_xlsx_uncompressed)} limit for .xlsx files (a zip bomb, or a "
        f"sheet to split)"
    )


@dataclass(slots=True)
class _Reads:
    kinds: dict[str, str]  # part name -> "sheet" | "strings" | "other", for parts calamine reads
    sheet_parts: dict[str, str]  # sheet name -> part name


def _parts_read(path: Path, f: BinaryIO, archive: zipfile.ZipFile, settings: Settings) -> _Reads:
    """The parts calamine reads, from the workbook's relationships (themselves checked first)."""
    names = set(archive.namelist())
    kinds = {n: "other" for n in _FIXED_READS if n in names}
    kinds.update({n: "sheet" for n in names if n.startswith("xl/worksheets/")})
    kinds.update({n: "strings" for n in names if n.lower().endswith("sharedstrings.xml")})
    texts = {}
    for name in (_WORKBOOK, _WORKBOOK_RELS):
        if name in names:
            texts[name] = _read_small(path, f, archive.getinfo(name), settings)
    targets: dict[str, str] = {}
    for attrs in _REL_TAG.findall(texts.get(_WORKBOOK_RELS, "")):
        values = _attributes(attrs)
        target, kind = values.get("Target", ""), values.get("Type", "")
        part = target[1:] if target.startswith("/") else posixpath.normpath(f"xl/{target}")
        targets[values.get("Id", "")] = part
        if part in names:
            kinds[part] = (
                "sheet" if kind.endswith("/worksheet")
                else "strings" if kind.endswith("/sharedStrings")
                else kinds.get(part, "other")
            )  # fmt: skip
    sheet_parts = {}
    for attrs in _SHEET_TAG.findall(texts.get(_WORKBOOK, "")):
        values = _attributes(attrs)
        rel = next((v for k, v in values.items() if k.endswith(":id") or k == "id"), "")
        if "name" in values and rel in targets:
            sheet_parts[values["name"]] = targets[rel]
    return _Reads(kinds, sheet_parts)


def _attributes(text: str) -> dict[str, str]:
    return {m[1]: html.unescape(m[2] or m[3]) for m in _ATTR.finditer(text)}


def _read_small(path: Path, f: BinaryIO, member: zipfile.ZipInfo, settings: Settings) -> str:
    chunks: list[bytes] = []
    _inflate(path, f, member, "other", settings, None, chunks.append)
    return b"".join(chunks).decode("utf-8", "replace")


def _inflate(
    path: Path,
    f: BinaryIO,
    member: zipfile.ZipInfo,
    kind: str,
    settings: Settings,
    scan: _RangeScan | None,
    keep: Callable[[bytes], None] | None = None,
) -> int:
    """Inflate one part (of `kind`, see `_part_limit`) from its raw bytes, as any reader
    would; its real size."""
    name = member.filename
    limit = _part_limit(kind, settings)

    def over(size: int) -> SheetError:
        return SheetError(
            f"{path}: part '{name}' unpacks to over {human_size(size)}, over the "
            f"{human_size(limit)} limit for it (a zip bomb, or a sheet to split)"
        )

    if member.file_size > limit:
        raise over(member.file_size)
    if member.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise SheetError(f"{path}: part '{name}' uses a compression .xlsx files never use")
    try:
        f.seek(member.header_offset)
        header = f.read(30)
        if len(header) != 30 or header[:4] != b"PK\x03\x04":
            raise ValueError("bad local header")
        name_len, extra_len = struct.unpack("<HH", header[26:30])
        f.seek(member.header_offset + 30 + name_len + extra_len)
        inflater = zlib.decompressobj(-15) if member.compress_type == zipfile.ZIP_DEFLATED else None
        left, size = member.compress_size, 0
        while left > 0:
            data = f.read(min(left, _BLOCK))
            if not data:
                break
            left -= len(data)
            while data:
                if inflater is None:
                    out, data = data, b""
                else:
                    out = inflater.decompress(data, _BLOCK)
                    data = inflater.unconsumed_tail
                size += len(out)
                if size > limit:
                    raise over(limit)
                if scan is not None:
                    scan.feed(path, name, out)
                if keep is not None:
                    keep(out)
                if inflater is not None and inflater.eof:
                    data, left = b"", 0
    except (OSError, ValueError, zlib.error, struct.error):
        raise SheetError(f"{path}: part '{name}' is corrupt: not a valid .xlsx file") from None
    _check_ratio(path, name, size, member.compress_size, settings)
    return size


class _RangeScan:
    """The filled cells of a worksheet's XML, fed in blocks (a tag cut at a block's end waits).

    The quick way reads `<c r="B7"` references with one regex, counting an empty `<c .../>`
    as filled (which can only overstate the range); `careful` reads every row and cell tag,
    skips empty cells and follows cells without a reference, as calamine does. The quick way
    asks for the careful one (`odd`) when cells are written any other way.
    """

    __slots__ = ("_carry", "_col", "_row", "careful", "found", "odd")

    def __init__(self, careful: bool = False) -> None:
        self._carry = b""
        self.careful = careful
        self.found = CellRange()
        self.odd = False
        self._row = self._col = 0

    def feed(self, path: Path, name: str, data: bytes) -> None:
        data = self._carry + data
        cut = data.rfind(b"<")
        if cut != -1 and data.find(b">", cut) == -1:
            if len(data) - cut > _MAX_TAG:
                raise SheetError(f"{path}: part '{name}' holds a tag over 64 KiB: not a workbook")
            data, self._carry = data[:cut], data[cut:]
        else:
            self._carry = b""
        if self.careful:
            self._feed_careful(data)
            return
        found = _PLAIN_CELL.findall(data)
        if found:
            cols, rows = zip(*found, strict=True)
            row_numbers = [int(r) for r in set(rows)]
            col_numbers = [_column(c) for c in set(cols)]
            self.found.add(row_numbers, col_numbers, len(found))
        if not self.odd and (
            len(found) != data.count(b"<c ") or b":c" in data or _ODD_CELL.search(data)
        ):
            self.odd = True

    def _feed_careful(self, data: bytes) -> None:
        rows: list[int] = []
        cols: list[int] = []
        for closing, tag, attrs in _ANY_TAG.findall(data):
            if closing:
                continue
            ref = _REF_ATTR.search(attrs)
            if tag == b"row":
                self._row = int(ref[2]) if ref and ref[2] else self._row + 1
                self._col = 0
                continue
            row = self._row
            if ref and ref[1]:
                self._col = _column(ref[1])
                row = int(ref[2]) if ref[2] else row
            else:
                self._col += 1
            if not attrs.rstrip().endswith(b"/"):
                rows.append(row)
                cols.append(self._col)
        self.found.add(rows, cols)


def _column(letters: bytes) -> int:
    n = 0
    for c in letters.upper():
        n = n * 26 + c - 64
    return n


def _ref(row: int, col: int) -> str:
    letters = ""
    while col > 0:
        col, rest = divmod(col - 1, 26)
        letters = chr(65 + rest) + letters
    return f"{letters}{row}"
