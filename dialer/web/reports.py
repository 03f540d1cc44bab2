"""The `reports/` folder as the page reads it: past runs and checks, the rows a check will
not call, a sync's newest results, and downloads (an XLSX is made from the CSV on first
request). Reports are named `<UTC time>.csv` by the CLI and `<campaign>_<sheet>_<UTC time>.csv`
by the page; both are served, no other file."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aiohttp import web

from dialer.paths import PAGE_REPORT_STEM, REPORT_STEM, RESULTS_SUFFIX, SUMMARY_SUFFIX, summary_path
from dialer.report import undefuse, write_xlsx
from dialer.statuses import Status
from dialer.web import texts

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
        path = csv_path.with_suffix(".xlsx")
        if not path.exists() or path.stat().st_mtime < csv_path.stat().st_mtime:
            # Off the event loop: a big report takes seconds, and the page must stay live.
            await asyncio.to_thread(write_xlsx, csv_path, path)
    name = f"{filename}.{kind}" if filename else path.name
    return web.FileResponse(path, headers={"Content-Disposition": f'attachment; filename="{name}"'})
