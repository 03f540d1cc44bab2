"""The `reports/` folder as the page reads it: past runs and checks, the rows a check will
not call, a sync's newest results, and downloads (an XLSX is made from the CSV on request,
typed as the CLI types it, and made again whenever the data behind it changed). Reports are
named `<UTC time>.csv` by the CLI and `<campaign>_<sheet>_<UTC time>.csv` by the page; both are
served, no other file."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aiohttp import web

from dialer.campaign.paths import (
    PAGE_REPORT_STEM,
    REPORT_STEM,
    RESULTS_SUFFIX,
    SUMMARY_SUFFIX,
    summary_path,
)
from dialer.core.statuses import Status
from dialer.outcomes.results_file import RESULT_COLUMNS, outcome_kinds
from dialer.reports.writer import REPORT_COLUMNS, REPORT_KINDS, undefuse, write_xlsx
from dialer.sheets.cell_types import Kind, column_kind, kinds_of
from dialer.web import texts
from dialer.web.services.uploads import Aged, prune_oldest
from dialer.web.settings import Settings

KINDS = ("csv", "xlsx")


def read_summary(report: Path) -> dict[str, Any]:
    """The report's summary; raises OSError or ValueError if it is missing or unreadable."""
    return json.loads(summary_path(report).read_text("utf-8"))


def past_report(folder: Path, campaign: str, name: str) -> tuple[Path, str] | None:
    """(CSV path, kind) of `<stem>.<kind>` under `folder/<campaign>/`, if the name is one this
    program writes; None otherwise (so no other file can be asked for)."""
    stem, _, kind = name.rpartition(".")
    if not (REPORT_STEM.match(stem) or PAGE_REPORT_STEM.match(stem)):
        return None
    return folder / campaign / f"{stem}.csv", kind


def past_runs(folder: Path, campaigns: Iterable[str], shown: int) -> list[dict[str, Any]]:
    """The reports with a summary, newest first: at most `shown` runs and `shown` checks (many
    checks never hide a run). `started` is the UTC ISO time (the page shows it in the
    browser's zone); `sheet` the uploaded sheet's name as the page put it in the report's name
    ("" for a report named by the CLI)."""
    found = []
    for name in campaigns:
        for path in (folder / name).glob(f"*.csv{SUMMARY_SUFFIX}"):
            with contextlib.suppress(OSError, ValueError, AttributeError):
                report = path.name.removesuffix(SUMMARY_SUFFIX)
                s = read_summary(path.with_name(report))
                stem = report.removesuffix(".csv")
                named = PAGE_REPORT_STEM.match(stem)
                started = str(s.get("started_at", ""))[:19]
                found.append(
                    {
                        "campaign": name,
                        "file": report,
                        "stem": stem,
                        "sheet": named["sheet"] if named else "",
                        "started": f"{started}Z" if started else "",
                        "mode": "check" if s.get("mode") == "validate" else "run",
                        "rows": s.get("rows", 0),
                        "triggered": s.get("counts", {}).get(Status.TRIGGERED, 0),
                        "result": texts.run_result(s.get("close_reason")),
                    }
                )
    found.sort(key=lambda p: p["started"], reverse=True)
    runs = [p for p in found if p["mode"] == "run"][:shown]
    checks = [p for p in found if p["mode"] == "check"][:shown]
    return runs + checks


def prune_check_reports(folder: Path, settings: Settings) -> list[Path]:
    """Delete the page's check reports (each ~1.6x its sheet) by the upload rules: older than
    uploads are kept, or the oldest beyond the same caps; each with its summary and XLSX.
    Run reports (who was called) and the CLI's own are never touched. Blocking."""
    found = []
    for summary in folder.glob(f"*/*.csv{SUMMARY_SUFFIX}"):
        csv_path = summary.with_name(summary.name.removesuffix(SUMMARY_SUFFIX))
        if not PAGE_REPORT_STEM.match(csv_path.stem):
            continue
        with contextlib.suppress(OSError, ValueError, AttributeError):
            if json.loads(summary.read_text("utf-8")).get("mode") != "validate":
                continue
            group = (csv_path, summary, csv_path.with_suffix(".xlsx"))
            stats = [p.stat() for p in group if p.exists()]
            found.append(Aged(summary.stat().st_mtime, sum(st.st_size for st in stats), group))
    deleted = prune_oldest(found, set(), settings)
    for path in deleted:
        _MADE.pop(path, None)
    return deleted


def newest_results(folder: Path) -> Path | None:
    """The newest results CSV a sync wrote in `folder` (a campaign's reports), if any."""
    found = []
    for path in folder.glob(f"*{RESULTS_SUFFIX}.csv"):
        with contextlib.suppress(OSError):
            found.append((path.stat().st_mtime_ns, path.name, path))
    return max(found)[2] if found else None


def problem_rows(report: Path, shown: int) -> tuple[list[dict[str, str]], int]:
    """The first `shown` rows that will not be called, and how many there are. Blocking."""
    rows, total = [], 0
    with open(report, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            if row["status"] != Status.READY:
                total += 1
                if len(rows) < shown:
                    rows.append({k: undefuse(v or "") for k, v in row.items() if k})
    return rows, total


async def download(csv_path: Path, kind: str, filename: str = "") -> web.StreamResponse:
    """The CSV, or an XLSX made from it; `filename`: the download's name without its suffix
    (default: the file's own)."""
    if kind not in KINDS or not csv_path.is_file():
        raise web.HTTPNotFound(text="no such report")
    path = csv_path
    if kind == "xlsx":
        # Off the event loop: a big report takes seconds, and the page must stay live.
        path = await asyncio.to_thread(xlsx_of, csv_path)
    name = f"{filename}.{kind}" if filename else path.name
    return web.FileResponse(path, headers={"Content-Disposition": f'attachment; filename="{name}"'})


# The data each XLSX beside a CSV was made from (`_freshness`): a download serves it again only
# while that data is unchanged. Kept in memory: after a restart each XLSX is made once more.
_MADE: dict[Path, tuple[int, ...]] = {}


def xlsx_of(csv_path: Path) -> Path:
    """The XLSX beside `csv_path`, made now unless the one there was made from this very data
    (the CSV and its summary as they are now: a run's summary, written after its report,
    brings the sheet's column types). Blocking."""
    path = csv_path.with_suffix(".xlsx")
    key = _freshness(csv_path)
    if _MADE.get(csv_path) != key or not path.is_file():
        # The key is taken before reading: a CSV that changes meanwhile is made again next time.
        write_xlsx(csv_path, path, kinds=csv_kinds(csv_path), title=csv_path.parent.name)
        _MADE[csv_path] = key
    return path


def _freshness(csv_path: Path) -> tuple[int, ...]:
    """What changes when the data changes: the CSV's file (a rewrite is a new inode), size and
    time to the nanosecond, and its summary's time (0 while there is none)."""
    stat = csv_path.stat()
    try:
        summary = summary_path(csv_path).stat().st_mtime_ns
    except OSError:
        summary = 0
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns, summary)


def csv_kinds(csv_path: Path) -> list[Kind]:
    """Each column's type for the XLSX of a report or results CSV, by its header: dialer's own
    columns by name, the sheet's as the run summaries keep them (SPEC 4.3b); any other CSV is
    text. Blocking."""
    with open(csv_path, encoding="utf-8", newline="") as f:
        header = [undefuse(h) for h in next(csv.reader(f), [])]
    if tuple(header[: len(REPORT_COLUMNS)]) == REPORT_COLUMNS:
        rest = header[len(REPORT_COLUMNS) :]
        typed = None
        with contextlib.suppress(OSError, ValueError, AttributeError):
            typed = read_summary(csv_path).get("column_types")
        return [*REPORT_KINDS, *kinds_of(rest, typed)]
    if tuple(header[: len(RESULT_COLUMNS)]) == RESULT_COLUMNS:
        # A results sheet's columns come from the campaign's runs: typed as the runs' summaries
        # type them, text if two disagree (a summary names only its typed columns).
        found: dict[str, list[Kind]] = {}
        rest = header[len(RESULT_COLUMNS) :]
        for summary in csv_path.parent.glob(f"*.csv{SUMMARY_SUFFIX}"):
            with contextlib.suppress(OSError, ValueError, AttributeError):
                typed = json.loads(summary.read_text("utf-8")).get("column_types")
                for name, kind in zip(rest, kinds_of(rest, typed), strict=True):
                    if typed and name in typed:
                        found.setdefault(name, []).append(kind)
        return [*outcome_kinds(RESULT_COLUMNS), *(column_kind(found.get(n, ())) for n in rest)]
    return [Kind.TEXT] * len(header)
