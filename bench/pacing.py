"""Target 3: the rate seen at the upstream, in every 1-second window and on average."""

from __future__ import annotations

from bench.data import csv_sheet
from bench.dispatch import run_against_fake
from bench.measure import max_in_window, rate
from bench.results import Line, line
from dialer.core.settings import DEFAULTS

# Above this the pacer stops spacing sends: bursts within a window are the documented allowance.
SMOOTH_UP_TO = DEFAULTS.smooth_up_to


def pacing(rates: tuple[int, ...], seconds: float) -> list[Line]:
    lines = []
    for r in rates:
        sheet, workers = csv_sheet(int(r * seconds) + 1), 8 if r < SMOOTH_UP_TO else 64
        times = run_against_fake(sheet, rate=r, concurrency=workers)[1]
        peak, average, what = max_in_window(times), rate(times), f"{r}/s, {len(times)} calls"
        if r > SMOOTH_UP_TO:
            got = f"most in any 1 s {peak} · average {average:.1f}/s"
            lines.append(
                line("3 pacing", f"{what} (burst allowance)", got, f"rate {r}/s", peak / r, "")
            )
            continue
        lines.append(
            line("3 pacing", f"{what}: most in any 1 s", f"{peak}", f"rate {r}/s", peak / r)
        )
        lines.append(
            line(
                "3 pacing",
                f"{what}: average",
                f"{average:.2f}/s",
                f"rate {r}/s",
                average / r,
                "≥ 0.98",
            )
        )
    return lines
