"""Result lines, each a ratio against a baseline or bound: printed, saved as JSON and Markdown."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

OUT = Path(__file__).parent / "out"


@dataclass(frozen=True, slots=True)
class Line:
    target: str  # "1 dispatch"
    measure: str  # what ran
    dialer: str  # the figure measured
    baseline: str  # what it is compared with, measured in the same run (or the bound)
    ratio: float | None
    goal: str  # "≥ 0.85", "≤ 1.00"; empty when the line only informs
    result: str  # "target met", "MISSED by 3.1%", or "—"


def line(
    target: str, measure: str, dialer: str, baseline: str, ratio: float | None, goal: str = "≤ 1.00"
) -> Line:
    """A line with its verdict: goal "≥ x" or "≤ x" on the ratio (default: within a bound);
    an empty goal only informs."""
    if not goal or ratio is None:
        result = "—"
    else:
        bound = float(goal[2:])
        short = (bound - ratio) / bound if goal[0] == "≥" else (ratio - bound) / bound
        result = "target met" if short <= 0 else f"MISSED by {short:.1%}"
    made = Line(target, measure, dialer, baseline, ratio, goal, result)
    ratio_text = "" if ratio is None else f" | ratio {ratio:.2f}"
    goal_text = f" (target {goal})" if goal else ""
    text = f"[{target}] {measure}: {dialer} | {baseline}{ratio_text}{goal_text} | {result}"
    print(text, flush=True)
    return made


def machine() -> dict[str, str]:
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for text in f:
            if text.startswith("model name"):
                model = text.split(":", 1)[1].strip()
                break
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": model,
        "python": platform.python_version(),
        "system": platform.platform(),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),  # other work on the cores skews it
    }


def save(lines: list[Line], info: dict[str, str], notes: list[str], seconds: float) -> None:
    OUT.mkdir(exist_ok=True)
    data = {
        "machine": info,
        "seconds": round(seconds, 1),
        "lines": [asdict(x) for x in lines],
        "notes": notes,
    }
    (OUT / "results.json").write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    table = [
        "| # | measure | dialer | baseline | ratio | target | result |",
        "|---|---|---|---|---|---|---|",
    ]
    for x in lines:
        ratio = "" if x.ratio is None else f"{x.ratio:.2f}"
        table.append(
            f"| {x.target} | {x.measure} | {x.dialer} | {x.baseline} | {ratio} "
            f"| {x.goal} | {x.result} |"
        )
    head = (
        f"Machine: {info['nproc']} cores, {info['cpu']}, Python {info['python']} "
        f"({info['system']}); load average at start {info['load']}, at end "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; whole bench {seconds:.0f} s."
    )
    text = "\n".join([head, "", *table, "", *(f"- {n}" for n in notes)]) + "\n"
    (OUT / "results.md").write_text(text)
    print("\n" + text, end="")
