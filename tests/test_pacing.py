"""The pacer on a fake clock: the 1-second cap is exact and the rate is not wasted."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from dialer.engine.pacing import WINDOW_MARGIN, Pacer


class FakeTime:
    """A clock that only moves when the pacer sleeps, and sleeps that record their length."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        # Timers fire a little late in real life; the schedule must not drift because of it.
        self.now += seconds + 0.0003


def _send_times(rate: float, n: int) -> list[float]:
    t = FakeTime()
    pacer = Pacer(rate, clock=t.clock, sleep=t.sleep)

    async def go() -> list[float]:
        times = []
        for _ in range(n):
            await pacer.wait()
            times.append(t.now)
        return times

    return asyncio.run(go())


def _max_in_any_window(times: list[float], width: float = 1.0) -> int:
    return max(sum(1 for u in times[i:] if u - s < width) for i, s in enumerate(times))


@pytest.mark.parametrize("rate", [1, 2, 5, 20, 100, 500])
def test_never_more_than_rate_in_any_second(rate):
    times = _send_times(rate, rate * 4 + 3)
    assert _max_in_any_window(times) <= rate


@pytest.mark.parametrize("rate", [1, 5, 20, 100])
def test_average_rate_is_at_least_98_percent(rate):
    n = rate * 5
    times = _send_times(rate, n + 1)
    achieved = n / (times[-1] - times[0])
    assert achieved >= 0.98 * rate
    assert achieved <= rate


def test_sends_are_spread_not_bursted_at_moderate_rates():
    times = _send_times(5, 6)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= (1 + WINDOW_MARGIN) / 5 - 0.001


def test_fractional_rate_below_one():
    times = _send_times(0.5, 4)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(g >= 2.0 for g in gaps)


def test_fractional_rate_above_one_caps_at_the_whole_number():
    times = _send_times(2.5, 12)
    assert _max_in_any_window(times) <= 2


def test_stop_event_releases_waiters_at_once():
    async def go() -> tuple[bool, bool]:
        pacer = Pacer(1)
        stopped = asyncio.Event()
        first = await pacer.wait(stopped)
        waiter = asyncio.create_task(pacer.wait(stopped))
        await asyncio.sleep(0)
        stopped.set()
        second = await asyncio.wait_for(waiter, timeout=0.5)
        return first is not None, second

    assert asyncio.run(go()) == (True, None)


def test_a_grant_not_used_within_the_margin_is_late():
    t = FakeTime()
    pacer = Pacer(5, clock=t.clock, sleep=t.sleep)
    granted = asyncio.run(pacer.wait())
    assert not pacer.late(granted)
    t.now += WINDOW_MARGIN
    assert pacer.late(granted)


def _sends_with_slow_claims(give_back: bool) -> list[float]:
    """The dispatcher's pattern: pace, claim (a slow commit on every other row), and when the
    grant came `late`, ask again before sending."""
    t = FakeTime()
    pacer = Pacer(5, clock=t.clock, sleep=t.sleep)

    async def go() -> list[float]:
        times = []
        for i in range(21):
            granted = await pacer.wait()
            if i % 2:
                t.now += 0.05  # the claim's commit waited for a slow disk
            if pacer.late(granted):
                if give_back:
                    pacer.give_back(granted)
                await pacer.wait()
            times.append(t.now)
        return times

    return asyncio.run(go())


def test_a_late_grant_given_back_costs_no_send_slot():
    times = _sends_with_slow_claims(give_back=True)
    assert _max_in_any_window(times) <= 5  # the cap still holds
    # 20 intervals at 5/s take 4.04 s; throwing the late grants away cost 0.2 s per slow claim
    # (6.06 s here). Given back, the whole run is less than one slot over the ideal.
    interval = (1 + WINDOW_MARGIN) / 5
    assert times[-1] - times[0] < 20 * interval + interval


def test_give_back_frees_the_slot_at_once():
    t = FakeTime()
    pacer = Pacer(5, clock=t.clock, sleep=t.sleep)

    async def go() -> float | None:
        granted = await pacer.wait()
        t.now += 0.05
        assert pacer.late(granted)
        pacer.give_back(granted)
        return await pacer.wait()

    regranted = asyncio.run(go())
    assert regranted == t.now and t.sleeps == []  # no wait: the first slot was never used
