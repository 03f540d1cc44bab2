"""Processes under measurement: the dialer CLI, the fake upstream, a throwaway project folder.

>>> with Fake() as fake:
...     run = dialer("run", project(tmp, sheet, endpoint=fake.url), "--yes", cwd=tmp)
...     times = fake.receive_times()  # time.monotonic() in the fake: comparable here
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from dialer.fake_tabbly import FakeTabblyProcess

FIRST_LINE = "Hello {{ first_name }}, about order {{ order_id }}."
INSTRUCTION = "Order {{ order_id }} placed on {{ order_date }}."
API_KEY = "fake-key-0000"
ROOT = Path(__file__).resolve().parents[1]  # the repo: `bench` importable from any cwd


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass  # the process ended between listing and reading
    return 0


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            continue
    return pids


class PeakRss:
    """Samples the summed VmRSS of a process and all its descendants every 50 ms in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak_kb = pid, 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._done.wait(0.05):
            self.peak_kb = max(self.peak_kb, sum(_rss_kb(p) for p in _tree(self.pid)))

    def stop(self) -> float:
        """The peak in MB."""
        self._done.set()
        self._thread.join()
        return self.peak_kb / 1024


@dataclass(frozen=True, slots=True)
class Run:
    started: float  # time.monotonic() just before Popen
    wall: float
    peak_mb: float
    code: int


def timed(args: list[str], cwd: Path, ok: tuple[int, ...] = (0, 1)) -> Run:
    """Run a command to its end, with wall time and peak tree RSS; other exit codes are bugs."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "TABBLY_API_KEY": API_KEY, "PYTHONPATH": path}
    with (cwd / "out.log").open("w") as out:
        started = time.monotonic()
        proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        rss = PeakRss(proc.pid)
        code = proc.wait()
        wall = time.monotonic() - started
        peak = rss.stop()
    if code not in ok:
        raise RuntimeError(f"{' '.join(args)} exited {code}:\n{(cwd / 'out.log').read_text()}")
    return Run(started, wall, peak, code)


def dialer(*args: str | Path, cwd: Path) -> Run:
    return timed([sys.executable, "-m", "dialer", *map(str, args)], cwd)


def project(
    root: Path,
    sheet: Path,
    *,
    rate: float = 1e4,
    concurrency: int = 64,
    endpoint: str = "http://127.0.0.1:9/unused",
    tables: str = "",
) -> Path:
    """A fresh campaign folder around `sheet` (linked, not copied); returns the campaign file."""
    for folder in ("campaigns", "data", "reports", "state"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "data" / sheet.name).symlink_to(sheet)
    campaign = root / "campaigns" / "x.toml"
    campaign.write_text(f"""name = "x"
organization_id = 244
agent_id = 33
call_from = "+14156801215"
first_line = "{FIRST_LINE}"
instruction = "{INSTRUCTION}"
endpoint = "{endpoint}"

[contacts]
source = "../data/{sheet.name}"
phone_column = "phone"
id_column = "customer_id"
default_region = "IN"

[dispatch]
rate_per_second = {float(rate)}
concurrency = {concurrency}
max_attempts = 4
timeout_seconds = 30
{tables}""")
    return campaign


class Fake:
    """`dialer fake-tabbly` in its own process on a free 127.0.0.1 port; a bottomless wallet."""

    def __init__(self, latency: float = 0.0) -> None:
        self.latency = latency
        self.url = ""

    def __enter__(self) -> Fake:
        options = ("--balance", "1e9", "--cost", "0.0001", "--latency", str(self.latency))
        self._process = FakeTabblyProcess(*options).__enter__()
        self.url = self._process.url
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._process.__exit__()

    def received(self) -> list[dict]:
        return self._process.state()["received"]

    def receive_times(self) -> list[float]:
        """Arrival times of the requests answered 200; anything else is a bench bug."""
        received = self.received()
        bad = [r for r in received if r["status"] != 200]
        if bad:
            raise RuntimeError(f"{len(bad)} of {len(received)} requests not 200: {bad[0]}")
        return sorted(r["at"] for r in received)


def children_cpu() -> float:
    """User+sys seconds of every child process this one has waited for, so far: read before
    and after a child's run, the difference is that run's CPU time, whatever else the
    machine did meanwhile."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def per_row(run: Run, rows: int) -> str:
    return f"{run.wall:.1f} s · {run.peak_mb:,.0f} MB · {run.wall / rows * 1e6:.1f} µs/row"


def rate(times: list[float]) -> float:
    """Requests per second between the first and the last arrival (start-up excluded)."""
    return (len(times) - 1) / (times[-1] - times[0])


def max_in_window(times: list[float], width: float = 1.0) -> int:
    """The most arrivals in any window [t_i, t_i + width)."""
    best, j = 0, 0
    for i, start in enumerate(times):
        while j < len(times) and times[j] < start + width:
            j += 1
        best = max(best, j - i)
    return best
