"""When to send a row again, and after how long: built once per run, shared by every worker.

    policy = RetryPolicy(max_attempts=4)
    policy.delay(attempt=1, retry_after=None)   # seconds before attempt 2, or None: give up

Which answers are retryable at all is decided in `tabbly.classify` from `statuses.RETRYABLE_HTTP`;
this module only paces the retries. The parts are tenacity's (exponential backoff with jitter,
stop after N attempts), composed once: a tenacity `AsyncRetrying` per request cost much of
the throughput (bench/), and one shared `AsyncRetrying` keeps per-call state that concurrent
workers would trample.
"""

from __future__ import annotations

import tenacity

from dialer.core.settings import DEFAULTS, Settings


class RetryPolicy:
    __slots__ = ("_state", "_stop", "_wait", "max_attempts")

    def __init__(
        self,
        max_attempts: int,
        settings: Settings = DEFAULTS,
        *,
        first: float | None = None,
        most: float | None = None,
    ) -> None:
        """`first` and `most` (the first wait, the longest) default to the trigger's
        `backoff_first` and `backoff_max`; the notifications have their own."""
        self.max_attempts = max_attempts
        self._stop = tenacity.stop_after_attempt(max_attempts)
        self._wait = tenacity.wait_exponential_jitter(
            multiplier=settings.backoff_first if first is None else first,
            max=settings.backoff_max if most is None else most,
            jitter=settings.backoff_jitter,
        )
        # tenacity's strategies read only `attempt_number`: one scratch state serves them.
        self._state = tenacity.RetryCallState(None, None, (), {})  # type: ignore[arg-type]

    def delay(self, attempt: int, retry_after: float | None) -> float | None:
        """Seconds to wait after failed `attempt` (1-based), or None when attempts are used up.

        A `Retry-After` from the upstream is honoured: the wait is never shorter than it.
        """
        state = self._state
        state.attempt_number = attempt
        if self._stop(state):
            return None
        return max(self._wait(state), retry_after or 0.0)
