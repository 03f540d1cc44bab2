"""The `reports/` folder as the page reads it: past runs and checks, the rows a check will
not call, and downloads (an XLSX is made from the CSV on first request)."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aiohttp import web

from dialer.paths import REPORT_STEM, SUMMARY_SUFFIX, summary_path
from dialer.report import undefuse, write_xlsx
from dialer.statuses import Status

KINDS = ("csv", "xlsx")


def read_summary(report: Path) -> dict[str, Any]:
    """The report's summary; raises OSError or ValueError if it is missing or unreadable."""
    return json.loads(summary_path(report).read_text("utf-8"))


def past_report(folder: Path, campaign: str, name: str) -> tuple[Path, str] | None:
    """(CSV path, kind) of `<stem>.<kind>` under `folder/<campaign>/`, if the name is one this
    program writes; None otherwise (so no other file can be asked for)."""
    stem, _, kind = name.rpartition(".")
    if not REPORT_STEM.match(stem):
        return None
    return folder / campaign / f"{stem}.csv", kind


def past_runs(folder: Path, campaigns: Iterable[str], shown: int) -> list[dict[str, Any]]:
    """The newest `shown` reports with a summary, runs and checks alike, newest first."""
    found = []
    for name in campaigns:
        for path in (folder / name).glob(f"*.csv{SUMMARY_SUFFIX}"):
            with contextlib.suppress(OSError, ValueError):
                report = path.name.removesuffix(SUMMARY_SUFFIX)
                s = read_summary(path.with_name(report))
                found.append(
                    {
                        "campaign": name,
                        "file": report,
                        "stem": report.removesuffix(".csv"),
                        "started": s.get("started_at", "")[:19].replace("T", " "),
                        "mode": "check" if s.get("mode") == "validate" else "run",
                        "rows": s.get("rows", 0),
                        "triggered": s.get("counts", {}).get(Status.TRIGGERED, 0),
                        "result": s.get("close_reason", ""),
                    }
                )
    return sorted(found, key=lambda p: p["started"], reverse=True)[:shown]


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


async def download(csv_path: Path, kind: str) -> web.StreamResponse:
    if kind not in KINDS or not csv_path.is_file():
        raise web.HTTPNotFound(text="no such report")
    path = csv_path
    if kind == "xlsx":
        path = csv_path.with_suffix(".xlsx")
        if not path.exists() or path.stat().st_mtime < csv_path.stat().st_mtime:
            # Off the event loop: a big report takes seconds, and the page must stay live.
            await asyncio.to_thread(write_xlsx, csv_path, path)
    return web.FileResponse(
        path, headers={"Content-Disposition": f'attachment; filename="{path.name}"'}
    )
