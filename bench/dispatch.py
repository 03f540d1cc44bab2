"""Targets 1, 2 and 5: `dialer run` throughput, latency-bound throughput, start-up."""

from __future__ import annotations

import asyncio
import json
import tempfile
from functools import cache
from pathlib import Path

import aiohttp

from bench.data import csv_sheet, mobile
from bench.measure import API_KEY, Fake, Run, dialer, per_row, project, rate
from bench.results import Line, line

WORKERS = 64
IDEAL_LATENCY = 0.05


def _bodies(n: int) -> list[bytes]:
    """Bodies shaped like dialer's `BodyBuilder`: same keys, order and sizes."""
    fixed = {"organization_id": 244, "use_agent_id": 33, "call_from": "+14156801215"}
    fixed |= {"called_by_account": "API", "api_key": API_KEY}
    bodies = []
    for i in range(n):
        order = f"ORD-{100000 + i}"
        row = {"called_to": "+91" + mobile(i), "custom_first_line": f"Hello Priya, about {order}."}
        row |= {"custom_instruction": f"Order {order} placed on 2024-05-17."}
        bodies.append(json.dumps({**fixed, **row, "custom_identifiers": f"C{i:07d}"}).encode())
    return bodies


async def bare_loop(url: str, bodies: list[bytes]) -> None:
    """The ceiling: one session, 64 workers, nothing but post and read."""
    connector = aiohttp.TCPConnector(limit=WORKERS)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        queue = iter(bodies)

        async def worker() -> None:
            for body in queue:  # one shared iterator: each body is sent once
                async with session.post(url, data=body) as answer:
                    await answer.read()

        await asyncio.gather(*(worker() for _ in range(WORKERS)))


def run_against_fake(
    sheet: Path,
    *extra: str,
    latency: float = 0.0,
    rate: float = 1e4,
    concurrency: int = WORKERS,
    tables: str = "",
) -> tuple[Run, list[float]]:
    """`dialer run --yes` on a fresh fake and project; the run and the fake's arrival times."""
    with Fake(latency) as fake, tempfile.TemporaryDirectory(prefix="dialer-bench-") as tmp:
        campaign = project(
            Path(tmp), sheet, rate=rate, concurrency=concurrency, endpoint=fake.url, tables=tables
        )
        run = dialer("run", campaign, "--yes", *extra, cwd=Path(tmp))
        return run, fake.receive_times()


@cache
def limited_run(rows: int, limit: int) -> tuple[Run, float]:
    """The big-sheet run with `--limit`, and its first arrival time (shared by targets 5, 6)."""
    run, times = run_against_fake(csv_sheet(rows), "--limit", str(limit))
    return run, times[0]


def dispatch(n: int) -> list[Line]:
    with Fake() as fake:
        asyncio.run(bare_loop(fake.url, _bodies(n)))
        base = rate(fake.receive_times())
    got = rate(run_against_fake(csv_sheet(n))[1])
    what, bare = f"dialer run, {n:,} rows, concurrency 64", f"bare aiohttp loop {base:,.0f} req/s"
    return [line("1 dispatch", what, f"{got:,.0f} req/s", bare, got / base, "≥ 0.85")]


def latency(n: int) -> list[Line]:
    got = rate(run_against_fake(csv_sheet(n), latency=IDEAL_LATENCY)[1])
    ideal = WORKERS / IDEAL_LATENCY
    what, bound = f"dialer run, {n:,} rows, 50 ms upstream", f"ideal 64/0.05 = {ideal:,.0f} req/s"
    # The same bare loop as target 1, for scale: how close the fake itself lets anyone get.
    with Fake(IDEAL_LATENCY) as fake:
        asyncio.run(bare_loop(fake.url, _bodies(n)))
        bare = rate(fake.receive_times())
    return [
        line("2 latency", what, f"{got:,.0f} req/s", bound, got / ideal, "≥ 0.90"),
        line(
            "2 latency",
            "same, bare aiohttp loop (for scale)",
            f"{bare:,.0f} req/s",
            bound,
            bare / ideal,
            "",
        ),
    ]


def limits(n: int) -> list[Line]:
    """`[limits]` writes each batch of claims to the shared counts (and marks the calls
    placed after): what that costs the run, against the same run without limits."""
    plain = rate(run_against_fake(csv_sheet(n))[1])
    got = rate(run_against_fake(csv_sheet(n), tables="\n[limits]\nper_day = 5\n")[1])
    what = f"dialer run, {n:,} rows, concurrency 64, [limits] per_day = 5"
    return [
        line(
            "limits",
            what,
            f"{got:,.0f} req/s",
            f"without [limits] {plain:,.0f} req/s",
            got / plain,
            "≥ 0.70",
        )
    ]


def startup(rows: int, limit: int) -> list[Line]:
    run, first = limited_run(rows, limit)
    delay, what = first - run.started, f"dialer run --limit {limit:,}, {rows:,}-row sheet"
    return [
        line("5 start-up", f"{what}: first request", f"{delay:.2f} s", "bound 2 s", delay / 2),
        line(
            "5 start-up",
            f"{what}: peak RSS",
            f"{run.peak_mb:,.0f} MB",
            "bound 600 MB",
            run.peak_mb / 600,
        ),
    ]


def growth_runs(small: int, mid: int, big: int, limit: int) -> list[Line]:
    runs = [(f"dialer run, {n:,} rows", n, run_against_fake(csv_sheet(n))[0]) for n in (small, mid)]
    runs.append((f"dialer run --limit {limit:,}, {big:,} rows", big, limited_run(big, limit)[0]))
    base = runs[0][2].peak_mb
    versus = f"RSS of the {small:,}-row run {base:,.0f} MB"
    return [
        line("6 growth", what, per_row(r, n), versus, r.peak_mb / base, "") for what, n, r in runs
    ]
