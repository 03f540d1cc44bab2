"""`make bench` / `python -m bench [PART ...] [--quick]`: print, then save bench/out/results.*"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

from bench import cpu, data, dispatch, pacing, sync, validate
from bench.results import Line, machine, save

PARTS = (
    "dispatch",
    "latency",
    "pacing",
    "one-core",
    "validation",
    "startup",
    "growth",
    "cpu",
    "sync",
    "limits",
)


@dataclass(frozen=True, slots=True)
class Sizes:
    dispatch: int = 20_000
    latency: int = 5_000
    pacing_seconds: float = 5.0
    small: int = 10_000
    mid: int = 100_000
    big: int = 1_000_000
    limit: int = 20_000
    xlsx: int = 100_000
    cpu: tuple[int, ...] = (5_000, 20_000)
    one_core: int = 200_000
    sync: int = 100_000


QUICK = Sizes(
    dispatch=3_000,
    latency=1_000,
    pacing_seconds=2.0,
    small=1_000,
    mid=10_000,
    big=50_000,
    limit=2_000,
    xlsx=5_000,
    cpu=(1_000, 4_000),
    one_core=20_000,
    sync=5_000,
)


def notes(s: Sizes, quick: bool) -> list[str]:
    smoke = "--quick: smaller sizes, a smoke test; the targets are meant for the full sizes."
    return [
        *([smoke] if quick else []),
        "Rates are counted at the fake server, first to last arrival (start-up excluded); "
        "start-up is from just before the process starts to the first arrival, on the "
        "system-wide monotonic clock.",
        "Peak RSS sums VmRSS over the dialer process and its children (the preparing workers), "
        "sampled every 50 ms: pages shared after fork count once per process, an upper bound.",
        f"The {s.big:,}-row run is limited to {s.limit:,} calls: the fake keeps every request "
        "in memory, and a full run would take ~4 min at the HTTP ceiling. The other rows are "
        "still read, prepared and reported `not_attempted`.",
        "Above 100 calls/s the pacer stops spacing sends (the burst allowance): it caps sends "
        "per 1.01 s at the sender, so a queued burst can reach the upstream slightly compressed; "
        "the first-to-last average of a bursty run leaves out its last window's second.",
        "Growth: `run` lines compare peak RSS with the smallest run (flat memory); `validate` "
        "lines compare wall time with the naive pipeline on the same sheet.",
        "Client CPU: user+sys of the child process and the children it waited for "
        "(getrusage RUSAGE_CHILDREN around it), over the requests the fake received from it; "
        "start-up and imports count on both sides. The bare loop posts the very bodies the "
        "dialer sent, to the same fake (latency 0), 64 at a time; rate cap 10,000/s.",
        f"One core: `dialer validate` and the naive pipeline on the same {s.one_core:,}-row CSV, "
        "both pinned to one core (sched_setaffinity), run in turn 3 times, each its best; CPU is "
        "user+sys of the process and its children, which other work on the machine barely "
        "moves, wall is what a user waits on an otherwise idle core.",
        f"Sync: {s.sync:,} calls already in the fake's call logs (some with several rows, plus "
        "strangers' rows), pages of 1,000; `dialer sync` wall time and peak RSS of its process "
        "against a bare loop that pages through the same logs and parses each page.",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("parts", nargs="*", metavar="PART", help=f"any of: {' '.join(PARTS)}")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    args = parser.parse_args()
    if unknown := set(args.parts) - set(PARTS):
        parser.error(f"unknown part(s) {', '.join(sorted(unknown))}; choose from {PARTS}")
    parts, s = args.parts or PARTS, QUICK if args.quick else Sizes()
    info = machine()
    print(f"machine: {info['nproc']} cores · {info['cpu']} · Python {info['python']}", flush=True)
    print(f"load average: {info['load']} (1, 5, 15 min)", flush=True)
    t0 = time.monotonic()
    if not args.parts:  # a part named alone makes only the sheets it needs, before it measures
        for n in (s.dispatch, s.latency, s.small, s.mid, s.big, s.one_core, *s.cpu):
            data.csv_sheet(n)
        data.xlsx_sheet(s.xlsx)
        print(f"sheets ready in bench/data/ ({time.monotonic() - t0:.0f} s)", flush=True)
    lines: list[Line] = []
    if "dispatch" in parts:
        lines += dispatch.dispatch(s.dispatch)
    if "latency" in parts:
        lines += dispatch.latency(s.latency)
    if "pacing" in parts:
        lines += pacing.pacing((1, 5, 20, 100, 500), s.pacing_seconds)
    if "one-core" in parts:
        lines += validate.one_core(s.one_core)
    if "validation" in parts:
        lines += validate.validation(s.big, s.xlsx)
    if "startup" in parts:
        lines += dispatch.startup(s.big, s.limit)
    if "growth" in parts:
        lines += dispatch.growth_runs(s.small, s.mid, s.big, s.limit)
        lines += validate.growth_validates((s.small, s.mid, s.big))
    if "cpu" in parts:
        lines += cpu.cpu(s.cpu)
    if "sync" in parts:
        lines += sync.sync(s.sync)
    if "limits" in parts:
        lines += dispatch.limits(s.latency)
    save(lines, info, notes(s, args.quick), time.monotonic() - t0)


if __name__ == "__main__":
    main()
