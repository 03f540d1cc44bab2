"""Progress on stderr: a tqdm bar on a terminal, one log line every few seconds for cron.

Only counts are shown, never a phone number, so nothing here needs masking.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import TextIO

from dialer.statuses import Status

LOG_EVERY_SECONDS = 5.0


class Progress:
    __slots__ = ("_bar", "_last_log", "_out", "_started", "_total", "counts", "sent")

    def __init__(self, out: TextIO | None = None, total: int | None = None) -> None:
        self._out = out or sys.stderr
        self._started = time.monotonic()
        self._last_log = self._started
        self._total = total
        self.counts: Counter[str] = Counter()
        self.sent = 0
        self._bar = None
        if self._out.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, file=self._out, unit="row", dynamic_ncols=True)

    def row_done(self, status: Status) -> None:
        self.counts[str(status)] += 1
        if self._bar is not None:
            self._bar.update(1)
            if sum(self.counts.values()) % 50 == 0:
                self._bar.set_postfix_str(self._postfix(), refresh=False)
            return
        now = time.monotonic()
        if now - self._last_log >= LOG_EVERY_SECONDS:
            self._last_log = now
            print(f"dialer: {self._line(now)}", file=self._out, flush=True)

    def _postfix(self) -> str:
        c = self.counts
        rate = c[str(Status.TRIGGERED)] / max(time.monotonic() - self._started, 1e-9)
        return (
            f"triggered={c[str(Status.TRIGGERED)]} failed={c[str(Status.FAILED)]} "
            f"unknown={c[str(Status.UNKNOWN)]} {rate:.1f} calls/s"
        )

    def _line(self, now: float) -> str:
        done = sum(self.counts.values())
        total = f"/{self._total}" if self._total else ""
        return f"{done}{total} rows done, {self._postfix()}, {now - self._started:.0f}s"

    def close(self) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(self._postfix())
            self._bar.close()
