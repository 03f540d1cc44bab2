"""What a campaign's reports show: who was called (SPEC 6.3), read to notice and rebuild a
lost ledger.

    >>> for report in campaign_reports(reports_folder(campaign)):   # oldest first
    ...     for row in called_rows(report):
    ...         row.called_to, row.status                           # '+9173...', TRIGGERED

A report row shows a person called when it is `triggered` or `unknown` (maybe called), or
`already_called`: a run writes that only for a person its ledger held as triggered, so it
still counts when the report of the call itself is gone. A run killed before its end leaves
its report (or, for XLSX, the `.partial.csv` journal) without a summary; its rows count too.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dialer.clock import stamp
from dialer.paths import JOURNAL_SUFFIX, summary_path
from dialer.report import undefuse
from dialer.statuses import LedgerError, Status

# Report statuses that show a person (maybe) called, and what the ledger records for them.
CALLED = {
    Status.TRIGGERED: Status.TRIGGERED,
    Status.UNKNOWN: Status.UNKNOWN,
    Status.ALREADY_CALLED: Status.TRIGGERED,
}
_COLUMNS = ("row", "custom_identifiers", "called_to", "status", "reason", "http_status")
_MORE = ("attempts", "call_id")


@dataclass(frozen=True, slots=True)
class ReportFile:
    """One report of the campaign's folder, as found on disk."""

    path: Path  # the file read: the report, or a killed XLSX run's `.partial.csv` journal
    name: str  # the report's file name, as the ledger's `runs` table records it
    summary: dict[str, Any] | None  # None: a run killed before its end (or a foreign file)
    time: str  # when it ran (the summary's start, else the file's last change): newest wins

    @property
    def dry_run(self) -> bool:
        return self.summary is not None and self.summary.get("mode") == "validate"

    @property
    def called_in_summary(self) -> int | None:
        """People the summary counts as called; None without a usable summary."""
        counts = (self.summary or {}).get("counts")
        if not isinstance(counts, dict):
            return None
        return sum(int(counts.get(s, 0) or 0) for s in CALLED)


@dataclass(frozen=True, slots=True)
class CalledRow:
    """A report row showing a person called, with what the ledger needs to record it."""

    called_to: str
    status: Status
    report: str
    reason: str = ""
    http_status: int | None = None
    attempts: int = 0
    call_id: str = ""
    custom_identifiers: str = ""
    row: int | None = None


def _file_time(path: Path) -> str:
    return stamp(datetime.fromtimestamp(path.stat().st_mtime, UTC))


def _summary(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(summary_path(path).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def campaign_reports(folder: Path, *, skip: frozenset[str] = frozenset()) -> list[ReportFile]:
    """Every report in `folder` but those named in `skip`, oldest first; an XLSX run's journal
    stands for its report only when the run was killed before writing the XLSX."""
    try:
        names = {p.name for p in folder.iterdir() if p.is_file()}
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise LedgerError(f"{folder}: cannot list the campaign's reports: {exc.strerror}") from None
    found = []
    for name in names:
        if name.endswith(JOURNAL_SUFFIX):
            report = name.removesuffix(JOURNAL_SUFFIX)
            if report in names or not report.lower().endswith(".xlsx"):
                continue
        elif name.lower().endswith((".csv", ".xlsx")):
            report = name
        else:
            continue
        if report in skip:
            continue  # accounted for: not even its summary is read
        path = folder / name
        summary = _summary(folder / report)
        started = summary.get("started_at") if summary else None
        try:
            time = started if isinstance(started, str) else _file_time(path)
        except OSError:
            continue  # gone while we looked (a report being converted to XLSX)
        found.append(ReportFile(path, report, summary, time))
    return sorted(found, key=lambda r: (r.time, r.name))


def called_rows(report: ReportFile) -> Iterator[CalledRow]:
    """The rows of `report` that show a person called; nothing for a file that is not a report
    (no `called_to` and `status` columns). An unreadable report is an error naming it: the
    people it may show called cannot be ignored."""
    try:
        if report.path.name.lower().endswith(".xlsx"):
            yield from _rows(report.name, _xlsx_records(report.path))
        else:
            with open(report.path, encoding="utf-8", errors="replace", newline="") as f:
                yield from _rows(report.name, csv.reader(f))
    except LedgerError:
        raise
    except Exception as exc:  # csv, zip and openpyxl errors alike: one line naming the file
        raise LedgerError(
            f"{report.path}: cannot read this report ({type(exc).__name__}: {exc}); the "
            "ledger is checked against every report in its folder: move the file out of that "
            "folder if it is not a report"
        ) from None


def _xlsx_records(path: Path) -> Iterator[list[str]]:
    from openpyxl import load_workbook

    book = load_workbook(path, read_only=True, data_only=True)
    try:
        for values in book.worksheets[0].iter_rows(values_only=True):
            yield ["" if v is None else str(v) for v in values]
    finally:
        book.close()


def _int(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def _rows(name: str, records: Iterator[Sequence[str]]) -> Iterator[CalledRow]:
    header = next(records, None)
    if not header or "called_to" not in header or "status" not in header:
        return
    at = {column: header.index(column) for column in (*_COLUMNS, *_MORE) if column in header}
    need = max(at[c] for c in ("called_to", "status")) + 1

    def cell(record: Sequence[str], column: str) -> str:
        i = at.get(column)
        return record[i] if i is not None and i < len(record) else ""

    for record in records:
        if len(record) < need:
            continue  # the last line of a killed run's report may be cut short
        status = CALLED.get(record[at["status"]])
        called_to = record[at["called_to"]].strip()
        if status is None or not called_to:
            continue
        yield CalledRow(
            called_to=undefuse(called_to),
            status=status,
            report=name,
            reason=cell(record, "reason"),
            http_status=_int(cell(record, "http_status")),
            attempts=_int(cell(record, "attempts")) or 0,
            call_id=cell(record, "call_id"),
            custom_identifiers=undefuse(cell(record, "custom_identifiers")),
            row=_int(cell(record, "row")),
        )
