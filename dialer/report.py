"""Row results -> the report (CSV or XLSX) and `<report>.summary.json`.

    >>> with ReportWriter.create(Path("reports/x.csv"), sheet.headers) as report:
    ...     report.write(RowResult.of(contact))
    >>> report.summary(...)

Rows are appended as they finish and flushed to the OS at once, so a killed run loses none;
`close()` then puts the file in sheet order. Each row's offset is kept in two integer arrays,
not the rows themselves, so memory stays flat on a million-row sheet.
"""

from __future__ import annotations

import csv
import io
import json
import mmap
import os
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dialer.contacts import Contact
from dialer.statuses import DialerError, Status

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
# Columns holding text copied from the sheet; only these can carry a formula into Excel.
_SHEET_TEXT = frozenset({"custom_identifiers", "phone_raw"})
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_MINUS_ONES = array("q", [-1]) * 1024
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


class ReportExists(DialerError):
    """An existing report is never overwritten (SPEC 7)."""


class ReportWriter:
    """Appends finished rows at once; `close()` leaves the report in sheet order."""

    def __init__(self, path: Path, headers: Sequence[str], *, flush_each: bool = True) -> None:
        """`flush_each`: hand every row to the OS at once (a run), or buffer (a dry run)."""
        self.path = path
        self._flush_each = flush_each
        self.xlsx = path.suffix.lower() == ".xlsx"
        # XLSX cannot be appended to: a CSV journal beside it is what a crash leaves.
        self.journal_path = path.with_name(path.name + ".partial.csv") if self.xlsx else path
        if path.exists() or self.journal_path.exists():
            raise ReportExists(f"{path}: report already exists; it is never overwritten")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DialerError(f"{path}: cannot write the report: {exc.strerror}") from None
        try:
            self._file = open(self.journal_path, "xb")  # noqa: SIM115
        except FileExistsError:
            raise ReportExists(f"{path}: report already exists; it is never overwritten") from None
        except OSError as exc:
            raise DialerError(f"{path}: cannot write the report: {exc.strerror}") from None
        self._sheet_headers = list(headers)
        self.counts: Counter[str] = Counter()
        self._buffer = io.StringIO()
        self._csv = csv.writer(self._buffer)
        self._offsets = array("q")
        self._lengths = array("l")
        self._in_order = True
        self._unindexed = False  # rows written by write_in_order have no offsets
        self._last_row = 0
        self._position = 0
        header = [*REPORT_COLUMNS, *(defuse(h) for h in self._sheet_headers)]
        self._emit(header)
        self._data_start = self._position
        self.closed = False

    def __enter__(self) -> ReportWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _emit(self, fields: list[Any]) -> int:
        buf = self._buffer
        buf.seek(0)
        buf.truncate()
        self._csv.writerow(fields)
        data = buf.getvalue().encode("utf-8")
        self._file.write(data)
        self._position += len(data)
        return len(data)

    @staticmethod
    def _fields(result: RowResult) -> list[Any]:
        fields = result.fields()
        fields[1] = defuse(fields[1])
        fields[2] = defuse(fields[2])
        starts = _FORMULA_START
        fields += ["'" + cell if cell.startswith(starts) else cell for cell in result.contact.cells]
        return fields

    def write(self, result: RowResult, *, flush: bool | None = None) -> None:
        """One finished row, in any order; handed to the OS when this returns unless `flush`
        is False (the caller then calls `flush()` soon, e.g. once per event-loop turn)."""
        start = self._position
        length = self._emit(self._fields(result))
        if self._flush_each if flush is None else flush:
            self._file.flush()
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
        self.counts[str(result.status)] += 1

    def flush(self) -> None:
        if not self.closed:
            self._file.flush()

    def write_in_order(self, results: Sequence[RowResult]) -> None:
        """A batch of rows that continue the sheet order (a dry run): one write, no index."""
        if results and results[0].contact.row <= self._last_row:
            raise ValueError("write_in_order needs rows after those already written")
        buf = self._buffer
        buf.seek(0)
        buf.truncate()
        self._csv.writerows([self._fields(r) for r in results])
        data = buf.getvalue().encode("utf-8")
        self._file.write(data)
        self._position += len(data)
        if results:
            self._last_row = results[-1].contact.row
            self._unindexed = True
        counts = self.counts
        for r in results:
            counts[str(r.status)] += 1

    def close(self) -> Path:
        """Flush, put rows in sheet order, convert to XLSX if asked; return the report path."""
        if self.closed:
            return self.path
        self.closed = True
        self._file.close()
        if not self._in_order:
            if self._unindexed:
                raise RuntimeError("cannot reorder rows written by write_in_order")
            self._rewrite_in_order()
        if self.xlsx:
            write_xlsx(self.journal_path, self.path)
            os.unlink(self.journal_path)
        return self.path

    def _rewrite_in_order(self) -> None:
        tmp = self.journal_path.with_name(self.journal_path.name + ".sorting")
        with open(self.journal_path, "rb") as src, open(tmp, "wb") as dst:
            size = os.fstat(src.fileno()).st_size
            with mmap.mmap(src.fileno(), size, access=mmap.ACCESS_READ) as mm:
                dst.write(mm[: self._data_start])
                for offset, length in zip(self._offsets, self._lengths, strict=True):
                    if offset >= 0:
                        dst.write(mm[offset : offset + length])
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, self.journal_path)


def write_xlsx(csv_path: Path, xlsx_path: Path) -> None:
    """CSV journal -> XLSX: every sheet value a text cell, header frozen, autofilter on."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.utils import get_column_letter

    numeric = {REPORT_COLUMNS.index(n) for n in ("row", "http_status", "attempts")}
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("report")
    ws.freeze_panes = "A2"
    rows = 0
    width = 0
    with open(csv_path, encoding="utf-8", newline="") as f:
        for i, record in enumerate(csv.reader(f)):
            width = max(width, len(record))
            cells = []
            for j, value in enumerate(record):
                if i > 0 and j in numeric and value.isdigit():
                    cells.append(int(value))
                    continue
                # The CSV quote guard is not needed in XLSX: a text cell is never a formula.
                cell = WriteOnlyCell(ws, value=undefuse(value))
                cell.data_type = "s"
                cells.append(cell)
            ws.append(cells)
            rows += 1
    if rows and width:
        ws.auto_filter.ref = f"A1:{get_column_letter(width)}{rows}"
    tmp = xlsx_path.with_name(xlsx_path.name + ".tmp")
    wb.save(tmp)
    os.replace(tmp, xlsx_path)


def write_summary(report_path: Path, summary: dict[str, Any]) -> Path:
    path = report_path.with_name(report_path.name + ".summary.json")
    with open(path, "x", encoding="utf-8") as f:
        json.dump(summary, f, indent=2, sort_keys=False)
        f.write("\n")
    return path


def status_counts(counts: Counter[str]) -> dict[str, int]:
    """Every status, zeros included, in SPEC order: scripts can rely on the keys."""
    return {str(s): counts.get(str(s), 0) for s in Status}
