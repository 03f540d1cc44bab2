"""Client CPU per request: `dialer run` against a bare aiohttp loop posting the same bodies.

At two sheet sizes: 5,000 rows, prepared in the dialer's own process, and 20,000 rows
(~1.9 MB, phones written nine ways, Jinja2 templates), large enough that a user's sheet of
that size may be prepared by worker processes.

Both sides run as a child process of the bench and are measured the same way: the user+sys
CPU time of that child and of every descendant it waited for (its preparing workers), read
with `getrusage(RUSAGE_CHILDREN)` around the child's life, divided by the requests the fake
received from it. Interpreter start-up and imports count on both sides. The fake
(`dialer fake-tabbly`, latency 0) is one process for both, and is not reaped meanwhile, so its
own CPU never counts.

    python -m bench.cpu URL BODIES.jsonl   # the bare loop: one body per line, 64 workers
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path

from bench.data import csv_sheet
from bench.dispatch import WORKERS, bare_loop
from bench.measure import Fake, children_cpu, dialer, project, timed
from bench.results import Line, line

# Rounds of one dialer run then one bare loop; the median round is shown. CPU time is steadier
# than wall time, but other work on the cores still inflates both sides of a round alike.
ROUNDS = 3


def _received(fake: Fake) -> list[dict]:
    received = fake.received()
    bad = [r for r in received if r["status"] != 200]
    if bad:
        raise RuntimeError(f"{len(bad)} of {len(received)} requests not 200: {bad[0]}")
    return received


def _dialer_round(fake: Fake, sheet: Path, tmp: Path) -> tuple[float, int, list[dict]]:
    """CPU seconds of one `dialer run`, its requests, and the bodies the fake received."""
    before_n = len(fake.received())
    campaign = project(tmp, sheet, rate=1e4, concurrency=WORKERS, endpoint=fake.url)
    before = children_cpu()
    dialer("run", campaign, "--yes", cwd=tmp)
    cpu = children_cpu() - before
    received = _received(fake)[before_n:]
    return cpu, len(received), [r["body"] for r in received]


def _bare_round(fake: Fake, bodies: Path, tmp: Path) -> tuple[float, int]:
    before_n = len(fake.received())
    before = children_cpu()
    timed([sys.executable, "-m", "bench.cpu", fake.url, str(bodies)], tmp, ok=(0,))
    cpu = children_cpu() - before
    return cpu, len(_received(fake)) - before_n


def cpu(sizes: tuple[int, ...], rounds: int = ROUNDS) -> list[Line]:
    """One line per sheet size, each against the bare loop in the same rounds."""
    return [_cpu_line(n, rounds) for n in sizes]


def _cpu_line(n: int, rounds: int) -> Line:
    sheet = csv_sheet(n)
    pairs: list[tuple[float, float]] = []  # (dialer, bare) CPU seconds per request
    with Fake() as fake, tempfile.TemporaryDirectory(prefix="dialer-bench-") as tmp:
        root = Path(tmp)
        for i in range(rounds):
            seconds, sent, sent_bodies = _dialer_round(fake, sheet, root / f"run{i}")
            # The very bodies the dialer sent, serialised as it serialises them.
            bodies = root / f"bodies{i}.jsonl"
            bodies.write_text(
                "".join(json.dumps(b, ensure_ascii=False) + "\n" for b in sent_bodies),
                encoding="utf-8",
            )
            (root / f"bare{i}").mkdir()
            bare, posted = _bare_round(fake, bodies, root / f"bare{i}")
            if posted != sent:
                raise RuntimeError(f"the bare loop posted {posted} bodies of {sent}")
            pairs.append((seconds / sent, bare / posted))
    got, base = sorted(pairs, key=lambda p: p[0] / p[1])[len(pairs) // 2]
    spread = ", ".join(f"{d / b:.2f}" for d, b in pairs)
    what = f"dialer run, {n:,} rows, {sent:,} requests: CPU per request (median of {spread})"
    return line(
        "7 client CPU",
        what,
        f"{got * 1e6:,.0f} µs/req",
        f"bare aiohttp loop {base * 1e6:,.0f} µs/req",
        got / base,
        "≤ 1.50",
    )


def _main(url: str, path: str) -> None:
    with open(path, "rb") as f:
        bodies = [line.rstrip(b"\n") for line in f]
    asyncio.run(bare_loop(url, bodies))


if __name__ == "__main__":
    _main(sys.argv[1], sys.argv[2])
