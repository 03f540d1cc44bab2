"""Progress on stderr: a tqdm bar on a terminal, a log line every few seconds for cron, or
JSON lines for a program watching the run (`--progress jsonl`, used by `dialer serve`).

Numbers are masked in anything shown here (SPEC 7).
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter, deque
from typing import TYPE_CHECKING, TextIO

from dialer.core.console import unfiltered
from dialer.core.masking import mask_phone, mask_text
from dialer.core.settings import DEFAULTS, Settings
from dialer.core.statuses import SEND_PROBLEMS, Status

if TYPE_CHECKING:
    from dialer.reports.writer import RowResult

MODES = ("auto", "bar", "log", "jsonl")  # and "off", once the reader has gone away


class Progress:
    __slots__ = ("_bar", "_every", "_failures", "_last", "_mode", "_out", "_started", "counts")

    def __init__(
        self,
        out: TextIO | None = None,
        mode: str = "auto",
        total: int | None = None,
        settings: Settings = DEFAULTS,
    ) -> None:
        """`total`: the sheet's rows when known (after the consent step), for what remains."""
        self._out = out or sys.stderr
        if mode == "auto":
            mode = "bar" if self._out.isatty() else "log"
        self._mode = mode
        self._every = (
            settings.jsonl_every_seconds if mode == "jsonl" else settings.log_every_seconds
        )
        self._started = time.monotonic()
        self._last = self._started
        self.counts: Counter[str] = Counter()
        self._failures: deque[dict[str, object]] = deque(maxlen=5)
        self._bar = None
        if mode == "bar":
            from tqdm import tqdm

            # Only our counts are drawn: the bar's carriage returns go to the terminal as they are.
            self._bar = tqdm(
                total=total, file=unfiltered(self._out), unit="row", dynamic_ncols=True
            )

    def row_done(self, result: RowResult) -> None:
        status = result.status
        self.counts[status] += 1
        if status in SEND_PROBLEMS:
            self._failures.append(
                {
                    "row": result.contact.row,
                    "called_to": mask_phone(result.contact.called_to),
                    "status": status,
                    "reason": mask_text(result.reason),
                }
            )
        if self._bar is not None:
            self._bar.update(1)
            if sum(self.counts.values()) % 50 == 0:
                self._bar.set_postfix_str(self._postfix(), refresh=False)
            return
        now = time.monotonic()
        if now - self._last >= self._every:
            self._last = now
            self._emit(now, final=False)

    def _rate(self, now: float) -> float:
        return self.counts[Status.TRIGGERED] / max(now - self._started, 1e-9)

    def _postfix(self) -> str:
        c = self.counts
        return (
            f"triggered={c[Status.TRIGGERED]} failed={c[Status.FAILED]} "
            f"unknown={c[Status.UNKNOWN]} {self._rate(time.monotonic()):.1f} calls/s"
        )

    def _emit(self, now: float, final: bool) -> None:
        try:
            self._write(now, final)
        except OSError:
            # Whoever watched (a terminal, `dialer serve`) is gone; the run must go on.
            self._mode = "off"

    def _write(self, now: float, final: bool) -> None:
        if self._mode == "off":
            return
        if self._mode == "jsonl":
            state = {
                "done": sum(self.counts.values()),
                "counts": dict(self.counts),
                "calls_per_second": round(self._rate(now), 2),
                "elapsed": round(now - self._started, 1),
                "failures": list(self._failures),
                "final": final,
            }
            print(json.dumps(state), file=self._out, flush=True)
        else:
            done = sum(self.counts.values())
            print(
                f"dialer: {done} rows done, {self._postfix()}, {now - self._started:.0f}s",
                file=self._out,
                flush=True,
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(self._postfix())
            self._bar.close()
        elif self._mode == "jsonl":
            self._emit(time.monotonic(), final=True)
