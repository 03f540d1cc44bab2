"""The engine's parts that decide and stop: the gate (one answer for the dry run and the run),
the row sender's interrupt paths, the pacer's stop. Real ledger, real fake Tabbly, real files."""

from __future__ import annotations

import asyncio
import gc
import io
import os
import signal
import threading
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from conftest import HEADER, KEY_ENV, Project, indian_mobile, wait_for

from dialer.campaign.parse import load_campaign
from dialer.commands.run import IOContext, Run, run
from dialer.commands.validate import validate
from dialer.core.settings import DEFAULTS
from dialer.core.statuses import ExitCode, Status
from dialer.engine.options import RunOptions
from dialer.engine.pacing import Pacer
from dialer.fake_tabbly import FakeTabbly
from dialer.ledger.claims import Claim
from dialer.ledger.store import Entry, Ledger

# 14:29 UTC: 19:59 in India (inside "09:00-20:00"), 06:29 in Los Angeles (outside).
INSIDE_INDIA = datetime(2026, 11, 25, 14, 29, tzinfo=UTC)


# ---- the gate: the dry run and the run give every row the same status ----


def _ledger_with_every_kind(project: Project) -> None:
    """A ledger as earlier runs leave it: one person per kind of record, and two claims a
    killed run left (one of them over a person an earlier run had triggered)."""

    async def write() -> None:
        ledger = Ledger.open(project.ledger, "test")
        run = ledger.start_run("earlier.csv", "earlier.csv")
        records = [
            (Status.TRIGGERED, "", False),
            (Status.UNKNOWN, "no answer within 2s (read timeout)", False),
            (Status.FAILED, "400: unknown number", False),
            (Status.FAILED, "503: busy (after 3 attempts)", True),
            (Status.NOT_ATTEMPTED, "insufficient balance", False),
            (Status.OUTSIDE_WINDOW, "outside calling hours", False),
            (Status.TRIGGERED, "", False),  # then claimed again by a killed --recall run
        ]
        for i, (status, reason, retryable) in enumerate(records):
            ledger.record(Entry(indian_mobile(i), status, reason, retryable, row=i + 1))
        await ledger.drain()
        for i in (6, 7):
            await ledger.claim(Claim(run, indian_mobile(i), i + 1))
        ledger.finish_run(int(ExitCode.INTERRUPTED), "interrupted", {})
        ledger.close()

    asyncio.run(write())


def _sheet_and_campaign(project: Project, fake: FakeTabbly) -> None:
    rows = [[f"C{i}", f"Name{i}", indian_mobile(i), f"O{i}", ""] for i in range(10)]
    rows[9][4] = "America/Los_Angeles"  # a new person, at night where they are
    rows.append(["C10", "Name10", "12345", "O10", ""])  # invalid
    rows.append(["C11", "Name11", indian_mobile(8), "O11", ""])  # duplicate of row 9
    project.write_sheet(rows, header=[*HEADER, "tz"])
    project.write_campaign(fake.url)
    window = '\n[window]\nhours = "09:00-20:00"\ntimezone_column = "tz"\n'
    project.campaign.write_text(project.campaign.read_text() + window)


@pytest.mark.parametrize(
    "options",
    [
        RunOptions(),
        RunOptions(recall=True),
        RunOptions(retry_unknown=True),
        RunOptions(recall=True, retry_unknown=True),
    ],
    ids=["plain", "recall", "retry-unknown", "both"],
)
def test_dry_run_and_run_give_every_row_the_same_status(
    project: Project, fake: FakeTabbly, options: RunOptions
):
    _ledger_with_every_kind(project)
    _sheet_and_campaign(project, fake)
    campaign = load_campaign(project.campaign)
    clock = lambda: INSIDE_INDIA  # noqa: E731

    dry_report, run_report = project.root / "dry.csv", project.root / "run.csv"
    dry_code = validate(
        campaign, report_path=dry_report, options=options, clock=clock, out=io.StringIO()
    )
    dry = {r["row"]: (r["status"], r["reason"]) for r in project.report_rows(dry_report)}
    code = run(
        Run(campaign, report_path=run_report, options=options, yes=True),
        IOContext(environ=KEY_ENV, clock=clock, out=io.StringIO(), err=io.StringIO()),
    )
    ran = {r["row"]: (r["status"], r["reason"]) for r in project.report_rows(run_report)}

    assert dry_code in (ExitCode.OK, ExitCode.ROW_PROBLEMS) and code == dry_code
    assert len(ran) == len(dry) == 12
    for row, (status, reason) in dry.items():
        if status == Status.READY:
            assert ran[row][0] == Status.TRIGGERED, (row, ran[row])
        else:
            assert ran[row] == (status, reason), row
    sent = {b["called_to"] for b in fake.accepted()}
    assert sent == {indian_mobile(int(row) - 1) for row, (s, _) in dry.items() if s == Status.READY}
    # Every kind of verdict is exercised: the sheet's own, the ledger's and the clock's.
    kinds = {status for status, _ in dry.values()}
    assert {Status.INVALID, Status.DUPLICATE, Status.OUTSIDE_WINDOW, Status.READY} <= kinds
    if options == RunOptions():
        assert {Status.ALREADY_CALLED, Status.UNKNOWN, Status.FAILED} <= kinds


def test_status_counts_who_the_next_run_sends_again_as_the_gate_does(
    project: Project, cli, fake: FakeTabbly
):
    _ledger_with_every_kind(project)
    _sheet_and_campaign(project, fake)

    result = cli(["status", str(project.campaign)])

    # Sent again: the retryable failure, not_attempted and outside_window; maybe called: the
    # unknown and the two claims a killed run left.
    assert "waiting: 3 row(s) the next run sends again" in result.out, result.out
    assert "unknown: 3 maybe called" in result.out
    dry = validate(load_campaign(project.campaign), clock=lambda: INSIDE_INDIA)
    assert dry == ExitCode.ROW_PROBLEMS
    again = {r["called_to"] for r in project.report_rows() if r["status"] == Status.READY}
    assert {indian_mobile(i) for i in (3, 4, 5)} <= again


# ---- interrupts (SPEC 6.2): the second Ctrl-C, and the grace after the first ----


def _sigint_pending() -> bool:
    """SIGINT sent to this process and not yet delivered (Linux: ShdPnd in /proc)."""
    with open("/proc/self/status", encoding="ascii") as f:
        line = next(x for x in f if x.startswith("ShdPnd:"))
    return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))


def _interrupted_run(project: Project, fake: FakeTabbly, grace: float, signals: int) -> list:
    """A run whose first two requests never get an answer, sent `signals` SIGINTs once both
    are in flight; the report's rows."""
    fake.script("hang", "hang")
    project.write_sheet([[f"C{i}", f"N{i}", indian_mobile(i), f"O{i}"] for i in range(4)])
    # A read timeout beyond the grace and the signals: only an abort ends those requests
    # with "aborted" (a broken abort fails the test after this long, with "read timeout").
    project.write_campaign(fake.url, dispatch="concurrency = 2\ntimeout_seconds = 30")
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("needs Python's own SIGINT handler (the run takes it over, then gives back)")
    if not os.path.exists("/proc/self/status"):
        pytest.skip("needs /proc to see when a signal has been delivered")

    def interrupt() -> None:
        wait_for(lambda: len(fake.received) >= 2, 20, "both requests in flight")
        for _ in range(signals):
            # Two signals pending at once are one: the first must be delivered before the next.
            wait_for(lambda: not _sigint_pending(), 20, "the SIGINT to be delivered")
            os.kill(os.getpid(), signal.SIGINT)

    sender = threading.Thread(target=interrupt, daemon=True)
    sender.start()
    code = run(
        Run(
            load_campaign(project.campaign),
            yes=True,
            settings=replace(DEFAULTS, stop_grace_seconds=grace),
        ),
        IOContext(environ=KEY_ENV, out=io.StringIO(), err=io.StringIO()),
    )
    sender.join(timeout=5)
    assert code == ExitCode.INTERRUPTED
    return project.report_rows()


def test_second_interrupt_aborts_requests_in_flight_as_unknown(project: Project, fake):
    # A grace longer than any test: only the second SIGINT can end the hanging requests.
    rows = _interrupted_run(project, fake, grace=600, signals=2)

    unknown = [r for r in rows if r["status"] == Status.UNKNOWN]
    assert len(unknown) == 2 and all("aborted" in r["reason"] for r in unknown), rows
    assert [r["status"] for r in rows].count(Status.NOT_ATTEMPTED) == 2
    assert len(fake.received) == 2  # nothing more left after the first signal


def test_requests_still_in_flight_when_the_grace_ends_are_aborted_as_unknown(
    project: Project, fake
):
    rows = _interrupted_run(project, fake, grace=0.2, signals=1)

    unknown = [r for r in rows if r["status"] == Status.UNKNOWN]
    assert len(unknown) == 2 and all("aborted" in r["reason"] for r in unknown), rows
    assert all(r["attempts"] == "1" for r in unknown)
    assert len(fake.received) == 2


# ---- the pacer's stop (the branch every run takes: it always passes its stop event) ----


def test_pacer_gives_no_grant_once_stopped_even_mid_wait():
    async def go() -> tuple[float | None, float | None, float | None]:
        stopped = asyncio.Event()
        pacer = Pacer(1)  # one request per 1.01 s: the second has to wait
        first = await pacer.wait(stopped)
        asyncio.get_running_loop().call_soon(stopped.set)  # while the second waits its turn
        second = await asyncio.wait_for(pacer.wait(stopped), 30)
        third = await pacer.wait(stopped)  # already stopped: at once
        return first, second, third

    first, second, third = asyncio.run(go())
    assert first is not None and second is None and third is None


def test_pacer_with_a_stop_event_holds_the_cap_like_without():
    async def go() -> list[float]:
        stopped = asyncio.Event()
        pacer = Pacer(4)
        return [await pacer.wait(stopped) for _ in range(9)]  # type: ignore[misc]

    grants = asyncio.run(go())
    window = 1 + DEFAULTS.window_margin
    # The pacer's own clock readings: request n+4 was granted a whole window after request n.
    assert all(
        later - earlier >= window for earlier, later in zip(grants, grants[4:], strict=False)
    )


def test_outside_window_is_recorded_one_way_whenever_the_window_closes(
    project: Project, fake: FakeTabbly, monkeypatch
):
    # Row 1 passes the check as a worker takes it, then the pacer holds it past the window's
    # end: refused as its request would leave. Row 2 is refused as the worker takes it.
    project.write_sheet([[f"C{i}", f"N{i}", indian_mobile(i), f"O{i}"] for i in range(2)])
    project.write_campaign(fake.url, dispatch="concurrency = 1")
    window = '\n[window]\nhours = "09:00-20:00"\n'
    project.campaign.write_text(project.campaign.read_text() + window)
    outside = datetime(2026, 11, 25, 14, 31, tzinfo=UTC)  # 20:01 in India
    held: list[float | None] = []
    real_wait = Pacer.wait

    async def wait_past_the_end(self, stopped=None):
        held.append(await real_wait(self, stopped))
        return held[-1]

    monkeypatch.setattr(Pacer, "wait", wait_past_the_end)

    run(
        Run(load_campaign(project.campaign), yes=True),
        IOContext(environ=KEY_ENV, clock=lambda: outside if held else INSIDE_INDIA),
    )

    rows = project.report_rows()
    assert len(held) == 1 and fake.received == []
    assert [r["status"] for r in rows] == [Status.OUTSIDE_WINDOW] * 2
    assert all(r["started_at"] and r["finished_at"] for r in rows), rows
    ledger = Ledger.open_readonly(project.ledger)
    assert ledger is not None
    with ledger:
        groups = [(f.status, f.retryable, n) for f, n in ledger.fact_groups()]
    assert groups == [(Status.OUTSIDE_WINDOW, False, 2)]


def test_a_run_leaves_the_cycle_collector_as_it_found_it(project: Project, fake: FakeTabbly):
    """The send loop tunes Python's cycle collector for itself (start-up's objects set
    aside, fewer young collections); a process that goes on after the run (the tests, a
    long-lived caller) gets its own settings back."""
    project.write_sheet([[f"C{i}", f"Name{i}", indian_mobile(i), f"O{i}"] for i in range(5)])
    project.write_campaign(fake.url)
    threshold, frozen = gc.get_threshold(), gc.get_freeze_count()

    code = run(
        Run(load_campaign(project.campaign), report_path=project.root / "r.csv", yes=True),
        IOContext(
            environ=KEY_ENV, clock=lambda: INSIDE_INDIA, out=io.StringIO(), err=io.StringIO()
        ),
    )

    assert code == ExitCode.OK
    assert len(fake.received) == 5
    assert (gc.get_threshold(), gc.get_freeze_count()) == (threshold, frozen)
