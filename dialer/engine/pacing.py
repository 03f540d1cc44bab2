"""The rate limiter: never more than `rate` requests in any 1-second window (SPEC 3, 6.1).

    pace = Pacer(rate_per_second=5)
    await pace.wait()        # returns when one more request may leave

Two rules, both on absolute times so a late timer never costs throughput:

* a sliding log of the last `capacity` send times: request n+capacity waits until request n
  is more than `window` seconds old. This is the hard cap, exact at any rate.
* a schedule spacing sends `1/rate` apart, so calls are spread over the second instead of
  leaving in one burst. A late wake-up does not push the schedule back, so the average stays
  at the rate; above `settings.smooth_up_to` per second the spacing is dropped (timers cannot space
  sends 2 ms apart) and the sliding log alone applies: bursts up to `capacity` are allowed
  within a window. That is the documented burst allowance.

`aiolimiter.AsyncLimiter(rate, 1)` lets about twice the rate through in its first second, which
a strict upstream answers with 429; hence this small class.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable

from dialer.core.settings import DEFAULTS, Settings

WINDOW_MARGIN = DEFAULTS.window_margin  # the default, for callers that reason about it


class Pacer:
    __slots__ = (
        "_capacity",
        "_clock",
        "_interval",
        "_lock",
        "_log",
        "_margin",
        "_next",
        "_sleep",
        "_window",
    )

    def __init__(
        self,
        rate_per_second: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        settings: Settings = DEFAULTS,
    ) -> None:
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be above 0")
        self._margin = margin = settings.window_margin
        if rate_per_second >= 1:
            # At most floor(rate) fit in any 1 s window: 2.5/s really means 2 per second.
            self._capacity = math.floor(rate_per_second)
            self._window = 1.0 + margin
        else:
            self._capacity = 1
            self._window = 1.0 / rate_per_second + margin
        smooth = rate_per_second <= settings.smooth_up_to
        self._interval = (self._window / self._capacity) if smooth else 0.0
        self._log: deque[float] = deque(maxlen=self._capacity)
        self._next = -math.inf
        self._clock = clock
        self._sleep = sleep
        self._lock = asyncio.Lock()

    @property
    def capacity(self) -> int:
        return self._capacity

    async def wait(self, stopped: asyncio.Event | None = None) -> float | None:
        """Block until one more request may leave and count it as sent; return the time it
        was granted (see `late`).

        None, at once, when `stopped` is set before then: a stopping run must not sit
        in the queue for its turn.
        """
        async with self._lock:  # FIFO: callers leave in the order they asked
            while True:
                if stopped is not None and stopped.is_set():
                    return None
                now = self._clock()
                delay = self._next - now
                if len(self._log) == self._capacity:
                    delay = max(delay, self._log[0] + self._window - now)
                if delay <= 0:
                    break
                if stopped is None:
                    await self._sleep(delay)
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stopped.wait(), delay)
            self._log.append(now)
            # Keep the schedule on absolute times (a late wake-up is caught up on the next
            # send), but after idling start afresh from now rather than bursting.
            base = self._next if now - self._next < self._interval else now
            self._next = base + self._interval
            return now

    def give_back(self, granted: float) -> None:
        """A grant from `wait` that was not used (it came `late`): its slot is freed, so asking
        again costs no send slot. Safe because no request left on it."""
        # Found by bisection: the log is in time order, and `deque.remove` would compare up to
        # `capacity` older sends first (30 µs a request at 10,000/s).
        log = self._log
        i = bisect.bisect_left(log, granted)
        if i < len(log) and log[i] == granted:
            del log[i]
            # Its place in the schedule too (later grants keep theirs: the log holds the cap).
            self._next = max(self._next - self._interval, granted)

    def late(self, granted: float) -> bool:
        """True when a request granted at `granted` has not left within half the margin:
        it must ask again, or two seconds' budgets could reach the upstream in one."""
        return self._clock() - granted > self._margin / 2
