"""Targets 4 and 6: `dialer validate` against the naive pipeline, the XLSX bound, growth."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path

from bench.data import csv_sheet, xlsx_sheet
from bench.measure import Run, children_cpu, dialer, per_row, project, timed
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


@contextlib.contextmanager
def _one_core() -> Iterator[int]:
    """This thread, and every process and thread it starts meanwhile, on one core only."""
    before = os.sched_getaffinity(0)
    core = min(before)
    os.sched_setaffinity(0, {core})
    try:
        yield core
    finally:
        os.sched_setaffinity(0, before)


def _cpu_seconds(run: Callable[[], Run]) -> tuple[Run, float]:
    """The run, and the user+sys seconds of the process and all the children it waited for."""
    before = children_cpu()
    result = run()
    return result, children_cpu() - before


def one_core(rows: int, rounds: int = 3) -> list[Line]:
    """Issue 10: `dialer validate` against the naive pipeline, both pinned to the same core.

    One core leaves no room for workers, so this is the cost of the work itself. The two run
    in turn, `rounds` times, and each keeps its best: other work on the machine only adds."""
    sheet = csv_sheet(rows)
    naive: list[tuple[Run, float]] = []
    ours: list[tuple[Run, float]] = []
    with _one_core() as core:
        for _ in range(rounds):
            naive.append(_cpu_seconds(lambda: naive_validate.__wrapped__(sheet)))
            ours.append(_cpu_seconds(lambda: dialer_validate.__wrapped__(sheet)))
    base_cpu, cpu = min(c for _, c in naive), min(c for _, c in ours)
    base_wall, wall = min(r.wall for r, _ in naive), min(r.wall for r, _ in ours)

    def figure(seconds: float) -> str:
        return f"{seconds:.1f} s · {seconds / rows * 1e6:.1f} µs/row"

    what = f"dialer validate, {rows:,}-row CSV, one core (#{core})"
    return [
        line(
            "4 validate",
            f"{what}: CPU user+sys",
            figure(cpu),
            f"naive pipeline {figure(base_cpu)}",
            cpu / base_cpu,
            "≤ 0.50",
        ),
        line(
            "4 validate",
            f"{what}: wall",
            figure(wall),
            f"naive pipeline {figure(base_wall)}",
            wall / base_wall,
            "≤ 0.50",
        ),
    ]
