"""Targets 4 and 6: `dialer validate` against the naive pipeline, the XLSX bound, growth."""

from __future__ import annotations

import sys
import tempfile
from functools import cache
from pathlib import Path

from bench.data import csv_sheet, xlsx_sheet
from bench.measure import Run, dialer, per_row, project, timed
from bench.results import Line, line


@cache
def dialer_validate(sheet: Path) -> Run:
    with tempfile.TemporaryDirectory(prefix="dialer-bench-") as tmp:
        return dialer("validate", project(Path(tmp), sheet), cwd=Path(tmp))


@cache
def naive_validate(sheet: Path) -> Run:
    with tempfile.TemporaryDirectory(prefix="dialer-bench-") as tmp:
        args = [sys.executable, "-m", "bench.naive", str(sheet), "out.csv"]
        return timed(args, Path(tmp), ok=(0,))


def validation(big: int, xlsx_rows: int) -> list[Line]:
    sheet = csv_sheet(big)
    base, run = naive_validate(sheet), dialer_validate(sheet)
    # A fixed bound has no same-run baseline to absorb the machine's noise: best of three.
    runs = [dialer_validate.__wrapped__(xlsx_sheet(xlsx_rows)) for _ in range(3)]
    xlsx = min(runs, key=lambda r: r.wall)
    what, naive = f"dialer validate, {big:,}-row CSV", f"naive pipeline {base.wall:.1f} s"
    ram, naive_ram = f"{run.peak_mb:,.0f} MB", f"bound 1 GB (naive {base.peak_mb:,.0f} MB)"
    return [
        line("4 validate", what, f"{run.wall:.1f} s", naive, run.wall / base.wall, "≤ 0.50"),
        line("4 validate", f"{what}: peak RSS", ram, naive_ram, run.peak_mb / 1024),
        line(
            "4 validate",
            f"dialer validate, {xlsx_rows:,}-row XLSX (best of 3)",
            f"{xlsx.wall:.2f} s",
            "bound 3 s",
            xlsx.wall / 3,
        ),
    ]


def growth_validates(sizes: tuple[int, ...]) -> list[Line]:
    lines = []
    for n in sizes:
        run, base = dialer_validate(csv_sheet(n)), naive_validate(csv_sheet(n))
        naive = f"naive {base.wall:.1f} s · {base.peak_mb:,.0f} MB"
        what = f"dialer validate, {n:,} rows"
        lines.append(line("6 growth", what, per_row(run, n), naive, run.wall / base.wall, ""))
    return lines
