"""What a campaign's reports show: who was called (SPEC 6.3), read to notice and rebuild a
lost ledger.

    for report in campaign_reports(reports_folder(campaign)):   # oldest first
    ...     for row in called_rows(report):
    ...         row.called_to, row.status                           # '+9173...', TRIGGERED

A report row shows a person called when it is `triggered` or `unknown` (maybe called), or
`already_called`: a run writes that only for a person its ledger held as triggered, so it
still counts when the report of the call itself is gone. A run killed before its end leaves
its report (or, for XLSX, the `.partial.csv` journal) without a summary; its rows count too.

A run whose report is written outside `reports/<campaign>/` (`--report elsewhere.csv`) names
it in that folder's `OTHER_REPORTS` index before its first call, so every run's report is
found again when the ledger is lost; such a report is known by its absolute path.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dialer.campaign.paths import JOURNAL_SUFFIX, is_results_name, journal_path, summary_path
from dialer.core.clock import stamp
from dialer.core.files import regular_fd
from dialer.core.statuses import LedgerError, Status
from dialer.reports.writer import cannot_write, undefuse
from dialer.sheets.cell_types import UTC_SUFFIX, plain_header, written_text

# Report statuses that show a person (maybe) called, and what the ledger records for them.
CALLED = {
    Status.TRIGGERED: Status.TRIGGERED,
    Status.UNKNOWN: Status.UNKNOWN,
    Status.ALREADY_CALLED: Status.TRIGGERED,
    Status.REDIAL_LATER: Status.TRIGGERED,  # called before, due again later (SPEC 10)
}
# In the campaign's reports folder: one absolute path a line as a JSON string, each a report
# written elsewhere.
OTHER_REPORTS = "other-reports.txt"
_NOT_A_FILE = "the index of reports kept elsewhere must be a file: move it out of the way"
_COLUMNS = ("row", "custom_identifiers", "called_to", "status", "reason", "http_status")
_MORE = ("attempts", "call_id", "started_at", "finished_at")


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
    placed: bool = False  # the row is a call that run placed (`triggered`), not an earlier one
    started_at: str = ""
    finished_at: str = ""

    @property
    def at(self) -> str:
        """When the row's run recorded it (its answer), else when its request started."""
        return self.finished_at or self.started_at


def _file_time(path: Path) -> str:
    return stamp(datetime.fromtimestamp(path.stat().st_mtime, UTC))


def _summary(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(summary_path(path).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def report_key(stored: str | Path, folder: Path) -> str:
    """How a report is named in `ReportFile.name`, the ledger's `rebuilt_from` and the loss
    check: its file name in the campaign's folder, its absolute path anywhere else."""
    path = Path(stored)
    if not path.is_absolute() or path.parent.resolve() == folder.resolve():
        return path.name  # a relative path from before runs stored absolute ones: its name
    return str(path.parent.resolve() / path.name)


def note_report(folder: Path, report: Path) -> None:
    """Before a run's first call: a report outside the campaign's folder is named in its
    index, so the loss check and a rebuild find it (a report in the folder is listed)."""
    key = report_key(report.absolute(), folder)
    if key == report.name:
        return
    index = folder / OTHER_REPORTS
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = regular_fd(index, os.O_WRONLY | os.O_APPEND | os.O_CREAT, LedgerError, _NOT_A_FILE)
        with open(fd, "a", encoding="ascii") as f:
            f.write(json.dumps(key) + "\n")
    except OSError as exc:
        raise cannot_write(index, exc, "the index of reports kept outside this folder") from None


def _other_reports(folder: Path) -> list[Path]:
    index = folder / OTHER_REPORTS
    try:
        with open(regular_fd(index, os.O_RDONLY, LedgerError, _NOT_A_FILE), "rb") as f:
            text = f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise LedgerError(f"{index}: cannot read: {exc.strerror}") from None
    paths = {Path(name) for name in map(_indexed, text.split("\n")) if name.startswith("/")}
    return sorted(p for p in paths if p.parent.resolve() != folder.resolve())


def _indexed(line: str) -> str:
    """A line of the index as the path it names: a JSON string (any name survives: a line
    break, U+2028 or U+0085 in it is escaped), or a bare path as dialer once wrote them."""
    if not line.startswith('"'):
        return line
    try:
        name = json.loads(line)
    except ValueError:
        return ""  # a line cut short (a full disk): its run's first call never left
    return name if isinstance(name, str) else ""


def _found(path: Path, name: str, report: Path) -> ReportFile | None:
    summary = _summary(report)
    started = summary.get("started_at") if summary else None
    try:
        time = started if isinstance(started, str) else _file_time(path)
    except OSError:
        return None  # gone while we looked (a report being converted to XLSX)
    return ReportFile(path, name, summary, time)


def campaign_reports(folder: Path, *, skip: frozenset[str] = frozenset()) -> list[ReportFile]:
    """Every report in `folder`, and every one its index names elsewhere, but those named in
    `skip`, oldest first; an XLSX run's journal stands for its report only when the run was
    killed before writing the XLSX."""
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
        elif name.lower().endswith((".csv", ".xlsx")) and not is_results_name(name):
            report = name
        else:
            continue
        if report in skip:
            continue  # accounted for: not even its summary is read
        found.append(_found(folder / name, report, folder / report))
    for report in _other_reports(folder):
        key = str(report)
        if key in skip:
            continue
        journal = journal_path(report)
        if report.exists():
            found.append(_found(report, key, report))
        elif report.name.lower().endswith(".xlsx") and journal.exists():
            found.append(_found(journal, key, report))
    return sorted(filter(None, found), key=lambda r: (r.time, r.name))


def report_of_run(stored: str, folder: Path) -> ReportFile | None:
    """The report a run named (its path as the ledger holds it), as found on disk now."""
    if not stored:
        return None
    key = report_key(stored, folder)
    path = folder / key if key == Path(stored).name else Path(key)
    journal = journal_path(path)
    if path.exists():
        return _found(path, key, path)
    if path.name.lower().endswith(".xlsx") and journal.exists():
        return _found(journal, key, path)
    return None


def called_rows(report: ReportFile) -> Iterator[CalledRow]:
    """The rows of `report` that show a person called; nothing for a file that is not a report
    (no `called_to` and `status` columns). An unreadable report is an error naming it: the
    people it may show called cannot be ignored."""
    try:
        yield from _rows(report.name, records(report.path))
    except LedgerError:
        raise
    except Exception as exc:  # csv, zip and openpyxl errors alike: one line naming the file
        raise LedgerError(
            f"{report.path}: cannot read this report ({type(exc).__name__}: {exc}); the "
            "ledger is checked against every report in its folder: move the file out of that "
            "folder if it is not a report"
        ) from None


def records(path: Path) -> Iterator[list[str]]:
    """A report's (or journal's) lines as text cells, the header first; CSV cells as written
    (defused: `undefuse` gives the text back). Errors are the reader's (csv, zip, openpyxl)."""
    if path.name.lower().endswith(".xlsx"):
        yield from _xlsx_records(path)
        return
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        yield from csv.reader(f)


def _xlsx_records(path: Path) -> Iterator[list[str]]:
    from openpyxl import load_workbook

    book = load_workbook(path, read_only=True, data_only=True)
    try:
        rows = book.worksheets[0].iter_rows(values_only=True)
        first = next(rows, None)
        if first is None:
            return
        header = [written_text(v) for v in first]
        utc = [h.endswith(UTC_SUFFIX) for h in header]
        yield [plain_header(h) for h in header]
        for values in rows:
            yield [written_text(v, i < len(utc) and utc[i]) for i, v in enumerate(values)]
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
        shown = record[at["status"]]
        status = CALLED.get(shown)
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
            call_id=undefuse(cell(record, "call_id")),
            custom_identifiers=undefuse(cell(record, "custom_identifiers")),
            row=_int(cell(record, "row")),
            placed=shown == Status.TRIGGERED,
            started_at=cell(record, "started_at"),
            finished_at=cell(record, "finished_at"),
        )
