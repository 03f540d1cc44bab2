"""Row results -> the report (CSV or XLSX) and `<report>.summary.json`.

    with ReportWriter(Path("reports/x.csv"), sheet.headers) as report:
        report.write(RowResult.of(contact))
    write_summary(report.path, summary)          # `<report>.summary.json`, never overwritten

Rows are appended as they finish and flushed to the OS at once, so a killed run loses none;
`close()` then puts the file in sheet order. Each row's offset is kept in two integer arrays,
not the rows themselves, so memory stays flat on a million-row sheet. A row's cells are
`report_row`'s: what a sheet or an upstream wrote is defused so a spreadsheet never runs it as
a formula. An XLSX report is made from the CSV text at `close()` (`write_xlsx`).
"""

from __future__ import annotations

import csv
import datetime as dt
import errno
import io
import json
import mmap
import os
import stat
from array import array
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from dialer.campaign.paths import SUMMARY_SUFFIX, journal_path, summary_path
from dialer.core.atomic import TEMP_EXTRA, replacing
from dialer.core.statuses import DialerError, Status
from dialer.sheets.cell_types import Kind, excel_header, excel_value, number_format, tab_name
from dialer.sheets.contacts import Contact

REPORT_COLUMNS = (
    "row",
    "custom_identifiers",
    "phone_raw",
    "called_to",
    "status",
    "reason",
    "http_status",
    "attempts",
    "call_id",
    "started_at",
    "finished_at",
)
# Columns holding text from the sheet or the upstream (e.g. a hostile `room_name` as call_id):
# each is defused, so none can carry a formula into Excel (SPEC 7).
_UNTRUSTED = tuple(
    REPORT_COLUMNS.index(n) for n in ("custom_identifiers", "phone_raw", "reason", "call_id")
)
# Columns holding numbers (an int, or "" for no HTTP status), the rest being text.
_NUMERIC = tuple(REPORT_COLUMNS.index(n) for n in ("row", "http_status", "attempts"))
# Each column's type in an XLSX report: numbers, UTC times (`stamp()`), the rest text.
REPORT_KINDS = tuple(
    Kind.NUMBER
    if i in _NUMERIC
    else Kind.UTC
    if name in ("started_at", "finished_at")
    else Kind.TEXT
    for i, name in enumerate(REPORT_COLUMNS)
)
# Private temp files beside a report (its summary and XLSX journal are named in `paths`).
# Longest addition to a report's (or its journal's) name: the summary, or a private temp file.
_LONGEST_EXTRA = max(len(SUMMARY_SUFFIX), TEMP_EXTRA)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_MINUS_ONES = array("q", [-1]) * 1024
# Rows copied per write when a report is put in sheet order: one call per row costs more.
_REWRITE_BATCH = 1024
_ZEROS = array("l", [0]) * 1024


def defuse(value: str) -> str:
    """Make spreadsheet text that Excel would run as a formula show as text instead."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def undefuse(value: str) -> str:
    """The original text of a CSV report cell, for places that are never a formula (XLSX text
    cells, a web page)."""
    return value[1:] if value.startswith("'") and value[1:2].startswith(_FORMULA_START) else value


@dataclass(frozen=True, slots=True)
class RowResult:
    contact: Contact
    status: Status
    reason: str
    http_status: int | None = None
    attempts: int = 0
    call_id: str = ""
    started_at: str = ""
    finished_at: str = ""

    @classmethod
    def of(
        cls, contact: Contact, status: Status | None = None, reason: str | None = None
    ) -> RowResult:
        return cls(
            contact,
            status or contact.status,
            contact.reason if reason is None else reason,
        )

    def fields(self) -> list[Any]:
        c = self.contact
        return [
            c.row,
            c.custom_identifiers,
            c.phone_raw,
            c.called_to,
            str(self.status),
            self.reason,
            "" if self.http_status is None else self.http_status,
            self.attempts,
            self.call_id,
            self.started_at,
            self.finished_at,
        ]


def report_row(result: RowResult) -> list[Any]:
    """A report's cells for one row: the result's fields, the texts a sheet or an upstream
    gave defused (`defuse`), then the sheet's own cells, one starting like a formula
    quoted with `'` so a spreadsheet shows it as text."""
    fields = result.fields()
    for i in _UNTRUSTED:
        fields[i] = defuse(fields[i])
    starts = _FORMULA_START
    fields += ["'" + cell if cell.startswith(starts) else cell for cell in result.contact.cells]
    return fields


class _Utf8:
    """A `csv.writer` target whose `writerow` returns the row as UTF-8 bytes: the writer
    returns what its target's `write` returns, so no buffer is filled, read and reset."""

    __slots__ = ()

    @staticmethod
    def write(text: str) -> bytes:
        return text.encode()


class ReportExists(DialerError):
    """An existing report is never overwritten (SPEC 7)."""


class ReportWriteError(DialerError):
    """The report (or its summary) cannot be written: disk full, read-only, bad path."""


def cannot_write(path: Path, exc: OSError, what: str = "the report") -> ReportWriteError:
    """The one wording: the file and the true cause, never a traceback."""
    cause = exc.strerror or str(exc)
    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        # mkdir under a file (`/dev/full/x.csv`) says "File exists": name what is in the way.
        blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            cause = f"{blocker} is not a folder"
    return ReportWriteError(f"{path}: cannot write {what}: {cause}")


def check_report_path(path: Path) -> None:
    """Everything a report will write, checked before the first call: every name short enough
    for its folder, the folder a folder, nothing there already (report, journal, summary)."""
    journal = journal_path(path) if _is_xlsx(path) else path
    folder = next((p for p in (path.parent, *path.parent.parents) if _exists(path, p)), Path("."))
    if not folder.is_dir():
        raise cannot_write(path, NotADirectoryError(errno.ENOTDIR, "not a folder"))
    try:
        name_max = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    longest = max(len(os.fsencode(n)) for n in (path.name, journal.name)) + _LONGEST_EXTRA
    if longest > name_max:
        raise cannot_write(
            path,
            OSError(
                errno.ENAMETOOLONG,
                f"file name too long (its companion files need "
                f"{longest} bytes, the folder allows {name_max})",
            ),
        )
    for existing in (path, journal, summary_path(path)):
        if _exists(path, existing):
            raise ReportExists(f"{existing}: already exists; a report is never overwritten")


def _is_xlsx(path: Path) -> bool:
    return path.suffix.lower() == ".xlsx"


def _exists(report: Path, path: Path) -> bool:
    """Present at all, a dangling symlink included; an unusable path names the report."""
    try:
        return path.exists() or path.is_symlink()
    except OSError as exc:
        raise cannot_write(report, exc) from None


class ReportWriter:
    """Appends finished rows at once; `close()` leaves the report in sheet order."""

    def __init__(
        self,
        path: Path,
        headers: Sequence[str],
        *,
        flush_each: bool = True,
        title: str = "report",
        sheet_kinds: Callable[[], Sequence[Kind]] = tuple,
    ) -> None:
        """`flush_each`: hand every row to the OS at once (a run), or buffer (a dry run).
        An XLSX report's tab is named `title` (the campaign); `sheet_kinds` gives the sheet
        columns' types when it is made (`Sheet.column_kinds`: known once the rows are read)."""
        self.path = path
        self._title = title
        self._sheet_kinds = sheet_kinds
        self._flush_each = flush_each
        self.xlsx = _is_xlsx(path)
        # XLSX cannot be appended to: a CSV journal beside it is what a crash leaves.
        self.journal_path = journal_path(path) if self.xlsx else path
        check_report_path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise cannot_write(path, exc) from None
        try:
            # O_EXCL: never follows a symlink planted at the name, never overwrites.
            self._file = open(self.journal_path, "xb")  # noqa: SIM115
        except FileExistsError:
            raise ReportExists(f"{path}: report already exists; it is never overwritten") from None
        except OSError as exc:
            raise cannot_write(path, exc) from None
        # The first failed write; every later write raises it again and nothing more is written.
        self.error: ReportWriteError | None = None
        self._sheet_headers = list(headers)
        self.counts: Counter[str] = Counter()
        self._buffer = io.StringIO()
        self._csv = csv.writer(self._buffer)
        self._row_bytes = csv.writer(_Utf8())
        self._offsets = array("q")
        self._lengths = array("l")
        self._in_order = True
        self._unindexed = False  # rows written by write_in_order have no offsets
        self._last_row = 0
        self._position = 0
        self.closed = False
        self._made = False  # the report itself exists (an XLSX is made only at close)
        header = [*REPORT_COLUMNS, *(defuse(h) for h in self._sheet_headers)]
        self._emit(header)
        self._data_start = self._position

    def __enter__(self) -> ReportWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _failed(self, exc: OSError) -> ReportWriteError:
        if self.error is None:
            self.error = cannot_write(self.path, exc)
        return self.error

    def _write(self, data: bytes) -> None:
        if self.error is not None:
            raise self.error
        try:
            self._file.write(data)
        except OSError as exc:
            raise self._failed(exc) from None

    def _emit(self, fields: list[Any]) -> int:
        data = self._row_bytes.writerow(fields)
        self._write(data)
        self._position += len(data)
        return len(data)

    def write(self, result: RowResult, *, flush: bool | None = None) -> None:
        """One finished row, in any order; handed to the OS when this returns unless `flush`
        is False (the caller then calls `flush()` soon, e.g. once per event-loop turn)."""
        # Counted even if the disk refuses it: the printed summary still accounts for every row.
        self.counts[str(result.status)] += 1
        start = self._position
        length = self._emit(report_row(result))
        if self._flush_each if flush is None else flush:
            self.flush()
        row = result.contact.row
        if row <= self._last_row:
            self._in_order = False
        else:
            self._last_row = row
        offsets, lengths = self._offsets, self._lengths
        if row >= len(offsets):
            grow = max(row + 1 - len(offsets), len(offsets), 1024)  # amortised doubling
            offsets.extend(_MINUS_ONES * (grow // len(_MINUS_ONES) + 1))
            lengths.extend(_ZEROS * (grow // len(_ZEROS) + 1))
        offsets[row] = start
        lengths[row] = length

    def flush(self) -> None:
        """Hand buffered rows to the OS; a ReportWriteError when the disk refuses them."""
        if self.closed:
            return
        if self.error is not None:
            raise self.error
        try:
            self._file.flush()
        except OSError as exc:
            raise self._failed(exc) from None

    def write_in_order(self, results: Sequence[RowResult]) -> None:
        """A batch of rows that continue the sheet order (a dry run): one write, no index."""
        if results and results[0].contact.row <= self._last_row:
            raise ValueError("write_in_order needs rows after those already written")
        rows = []
        for result in results:
            fields = report_row(result)
            for i in _NUMERIC:
                fields[i] = str(fields[i])
            rows.append(fields)
        data = csv_text(rows, self._buffer, self._csv).encode("utf-8")
        self._write(data)
        self._position += len(data)
        if results:
            self._last_row = results[-1].contact.row
            self._unindexed = True
        self.counts.update([str(r.status) for r in results])

    def close(self) -> Path:
        """Flush, put rows in sheet order, convert to XLSX if asked; return the report path."""
        if self.closed:
            return self.path
        self.closed = True
        try:
            self._file.close()
        except OSError as exc:
            self._failed(exc)
        if self.error is not None:
            # What reached the disk stays as it is (rows in finishing order): the run already
            # stops on this error, and a copy would not fit where the disk is full.
            raise self.error
        try:
            if not self._in_order:
                if self._unindexed:
                    raise RuntimeError("cannot reorder rows written by write_in_order")
                self._rewrite_in_order()
            if self.xlsx:
                kinds = [*REPORT_KINDS, *self._sheet_kinds()]
                write_xlsx(
                    self.journal_path, self.path, replace=False, kinds=kinds, title=self._title
                )
                os.unlink(self.journal_path)
        except OSError as exc:
            raise self._failed(exc) from None
        self._made = True
        return self.path

    @property
    def rows_path(self) -> Path:
        """The file that holds the rows: the report, or the CSV journal of an XLSX report that
        could not be made (a full disk). The summary names this one, never a missing file."""
        return self.path if self._made or not self.xlsx else self.journal_path

    def _rewrite_in_order(self) -> None:
        mode = _mode_of(self.journal_path)
        with open(self.journal_path, "rb") as src, replacing(self.journal_path, mode=mode) as dst:
            size = os.fstat(src.fileno()).st_size
            with mmap.mmap(src.fileno(), size, access=mmap.ACCESS_READ) as mm:
                dst.write(mm[: self._data_start])
                rows: list[bytes] = []
                for offset, length in zip(self._offsets, self._lengths, strict=True):
                    if offset >= 0:
                        rows.append(mm[offset : offset + length])
                        if len(rows) == _REWRITE_BATCH:
                            dst.write(b"".join(rows))
                            rows.clear()
                dst.write(b"".join(rows))


def csv_text(rows: list[list[str]], buffer: io.StringIO, writer: Any) -> str:
    """`writer.writerows(rows)`'s text (the excel dialect, into `buffer`), more cheaply: a row
    whose fields need no quotes (no comma, quote or line break; NUL is left to the writer too)
    is joined with commas; any other row goes to the writer."""
    lines = []
    for fields in rows:
        line = ",".join(fields)
        if (
            not line
            or line.count(",") != len(fields) - 1
            or '"' in line
            or "\r" in line
            or "\n" in line
            or "\0" in line
        ):
            buffer.seek(0)
            buffer.truncate()
            writer.writerow(fields)
            line = buffer.getvalue().removesuffix("\r\n")
        lines.append(line)
    return "\r\n".join(lines) + "\r\n" if lines else ""


def _mode_of(like: Path) -> int:
    """The permissions a report's file takes from `like` (its journal): a private temp
    file's 0600 would hide the report from a reader the journal allowed."""
    return stat.S_IMODE(os.stat(like).st_mode)


def write_xlsx(
    csv_path: Path,
    xlsx_path: Path,
    *,
    replace: bool = True,
    kinds: Sequence[Kind] = REPORT_KINDS,
    title: str = "report",
) -> None:
    """CSV journal -> XLSX with types, header frozen, autofilter on, the tab named `title`.

    Written to a private temp file beside it, then moved in place; `replace=False` refuses
    to replace a file that appeared at `xlsx_path` meanwhile (a report is never overwritten).
    `kinds`: each column's `Kind` (a report's own columns by default; columns past its end are
    text): a cell whose text reads back as its kind is a number or a date-time, any other is a
    text cell (never a formula), an empty one is empty.
    """
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
    from openpyxl.utils import get_column_letter

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(tab_name(title))

    def text_cell(text: str) -> WriteOnlyCell:
        # The control characters XML cannot hold (an upstream's "\x01", an ANSI escape's ESC)
        # are dropped, as the sheet reader drops them: the CSV keeps them, the XLSX survives.
        cell = WriteOnlyCell(ws, value=ILLEGAL_CHARACTERS_RE.sub("", text))
        cell.data_type = "s"  # never read as a formula or a number, whatever it starts with
        return cell

    ws.freeze_panes = "A2"
    rows = 0
    width = 0
    with open(csv_path, encoding="utf-8", newline="") as f:
        records = csv.reader(f)
        header = next(records, [])
        kinds = [*kinds[: len(header)], *[Kind.TEXT] * (len(header) - len(kinds))]
        formats = [number_format(k) for k in kinds]
        if header:
            width = len(header)
            named = zip(header, kinds, strict=True)
            ws.append([text_cell(excel_header(undefuse(h), k)) for h, k in named])
            rows += 1
        for record in records:
            width = max(width, len(record))
            cells: list[Any] = []
            for j, text in enumerate(record):
                # The CSV quote guard is not needed in XLSX: a text cell is never a formula.
                value = excel_value(undefuse(text), kinds[j] if j < len(kinds) else Kind.TEXT)
                if type(value) is str:
                    value = text_cell(value)
                elif isinstance(value, dt.date):
                    value = WriteOnlyCell(ws, value=value)
                    value.number_format = formats[j]
                cells.append(value)
            ws.append(cells)
            rows += 1
    if rows and width:
        ws.auto_filter.ref = f"A1:{get_column_letter(width)}{rows}"
    try:
        with replacing(xlsx_path, mode=_mode_of(csv_path), exclusive=not replace) as f:
            _save(wb, f)
    except FileExistsError:
        raise ReportExists(f"{xlsx_path}: report already exists; it is never overwritten") from None


def _save(wb: Any, f: BinaryIO) -> None:
    """`wb.save(f)` with the zip archive closed while `f` is still open, even when writing
    fails (disk full): openpyxl leaves it open then, and its `__del__`, run after the file has
    been closed, printed a traceback ("seek of closed file") after the one-line error."""
    import datetime
    import zipfile

    from openpyxl.writer.excel import ExcelWriter

    wb.properties.modified = datetime.datetime.now(tz=datetime.UTC).replace(tzinfo=None)
    with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        ExcelWriter(wb, archive).save()


def write_summary(report_path: Path, summary: dict[str, Any]) -> Path:
    """`<report>.summary.json`, created O_EXCL; a ReportWriteError names it if it cannot be."""
    path = summary_path(report_path)
    try:
        f = open(path, "x", encoding="utf-8")  # noqa: SIM115
    except FileExistsError:
        raise ReportExists(f"{path}: already exists; a summary is never overwritten") from None
    except OSError as exc:
        raise cannot_write(path, exc, "the summary") from None
    try:
        with f:
            json.dump(summary, f, indent=2, sort_keys=False)
            f.write("\n")
    except OSError as exc:
        path.unlink(missing_ok=True)  # half a JSON file helps nobody
        raise cannot_write(path, exc, "the summary") from None
    return path


def status_counts(counts: Counter[str]) -> dict[str, int]:
    """Every status, zeros included, in SPEC order: scripts can rely on the keys."""
    return {str(s): counts.get(str(s), 0) for s in Status}
