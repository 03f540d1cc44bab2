"""Watching a run (SPEC 11): "x of N" counts people called out of those the check said would be
called (never rows read), time left from the rate so far, plain words for why the rest were not
called, and "Resume the N not called" after a stop or an empty wallet."""

from __future__ import annotations

import csv
import io
import re
from collections import deque
from pathlib import Path
from typing import Any

from test_web_hardening import READY, _check, _fake_env, _launch, _login, _run, _until

from dialer.core.statuses import ExitCode
from dialer.fake_tabbly import FakeTabblyThread
from dialer.web.services.job_records import WebRun


def web_run(
    total: int, state: dict[str, Any], exit_code: int | None = None, **fields: Any
) -> WebRun:
    """A run as the page holds it, with no process behind it: what `view()` shows."""
    run = WebRun(
        id="r",
        campaign="example",
        report=Path("r.csv"),
        proc=None,  # type: ignore[arg-type]  # view() never touches the process
        started="",
        upload=Path("u.csv"),
        messages=deque(),
        state=state,
        total=total,
        **fields,
    )
    run.exit_code = exit_code
    return run


def test_x_of_n_counts_people_called_not_rows_read():
    """The issue's case: 7 people called, 293 never tried, 10 invalid rows read on the way."""
    counts = {"triggered": 7, "not_attempted": 293, "invalid": 10}
    view = web_run(300, {"done": 310, "counts": counts}, ExitCode.INSUFFICIENT_BALANCE).view()
    assert view["progress_text"] == "7 of 300 called"
    assert (view["called"], view["total"]) == (7, 300)
    assert view["not_called"] == [[293, "not called yet: your Tabbly wallet is empty"]]
    assert view["resume"] == 293
    assert view["time_left"] == ""
    # The parts of the 300 people add up; the invalid rows read on the way are not among them.
    assert [[k, n] for k, n, _ in view["counts"]] == [["triggered", 7], ["not_attempted", 293]]
    assert view["state_text"].startswith("Your Tabbly wallet is empty: top up your Tabbly wallet")


def test_failed_and_maybe_called_count_as_tried_and_the_stop_is_named():
    counts = {"triggered": 5, "failed": 2, "unknown": 1, "not_attempted": 12}
    view = web_run(20, {"counts": counts}, ExitCode.INTERRUPTED).view()
    assert view["progress_text"] == "8 of 20 called"
    assert view["not_called"] == [[12, "not called yet: the run was stopped"]]
    assert [n for _, n, _ in view["counts"]] == [5, 2, 1, 12]
    assert view["resume"] == 12


def test_no_resume_when_the_campaign_itself_is_refused_or_the_run_finished():
    counts = {"triggered": 1, "not_attempted": 9}
    refused = web_run(10, {"counts": counts}, ExitCode.CAMPAIGN_REFUSED).view()
    assert refused["resume"] == 0
    assert refused["not_called"] == [[9, "not called yet: Tabbly refused the campaign"]]
    finished = web_run(10, {"counts": {"triggered": 9, "outside_window": 1}}, 0).view()
    assert finished["resume"] == 0
    assert finished["not_called"] == [[1, "not called yet: outside the calling hours"]]


def test_time_left_comes_from_the_rate_so_far():
    running = {"counts": {"triggered": 20, "invalid": 50}, "elapsed": 60.0}
    view = web_run(100, running).view()
    # 20 people in 60 s: the 80 left take 240 s.
    assert view["time_left"] == "about 4 minutes left"
    assert view["not_called"] == [[80, "waiting to be called"]]
    assert view["state_text"] == "calling"
    assert web_run(100, {"counts": {}, "elapsed": 1.0}).view()["time_left"] == ""
    assert web_run(100, {"counts": {"triggered": 90}, "elapsed": 90.0}).view()["time_left"] == (
        "less than a minute left"
    )


def test_an_empty_wallet_is_said_plainly_and_resume_checks_the_rest(tmp_path):
    # A few calls' worth of balance: the run stops on a 402.
    with FakeTabblyThread(latency=0.01, balance=0.5, cost=0.1) as fake:

        async def body(client, server) -> None:
            csrf = await _login(client)
            started = await _launch(client, csrf, await _check(client, csrf))
            run_url = started.headers["Location"]
            run = server.jobs.runs[run_url.rsplit("/", 1)[1]]
            await _until(lambda: run.finished, "the run stopped on the empty wallet")
            assert run.exit_code == ExitCode.INSUFFICIENT_BALANCE
            report = await (await client.get(f"{run_url}/report.csv")).text()
            rows = list(csv.DictReader(io.StringIO(report)))
            called = sum(r["status"] == "triggered" for r in rows)
            left = sum(r["status"] == "not_attempted" for r in rows)
            assert 0 < called < READY and left > 0
            page = await (await client.get(run_url)).text()
            assert f'id="progress-text">{called} of {READY} called<' in page
            assert f'<progress id="progress" max="{READY}" value="{called}">' in page
            assert f"{left} not called yet: your Tabbly wallet is empty" in page
            assert re.search(r'<form[^>]*id="resume-form"(?![^>]*hidden)', page)
            assert f'id="resume-count">{left}<' in page
            assert "rows done" not in page
            resumed = await client.post(
                f"{run_url}/resume", data={"csrf": csrf}, allow_redirects=False
            )
            assert resumed.status == 303 and "/dry-runs/" in resumed.headers["Location"]
            check = await (await client.get(resumed.headers["Location"])).text()
            # The new check of the same sheet: exactly those not called are ready.
            assert f'id="ready-count">{left}<' in check
            forged = await client.post(f"{run_url}/resume", data={"csrf": "x"})
            assert forged.status == 403

        _run(tmp_path, body, _fake_env(fake))


def test_a_finished_run_offers_no_resume(tmp_path):
    with FakeTabblyThread(latency=0.01, balance=100) as fake:

        async def body(client, server) -> None:
            csrf = await _login(client)
            started = await _launch(client, csrf, await _check(client, csrf))
            run = server.jobs.runs[started.headers["Location"].rsplit("/", 1)[1]]
            await _until(lambda: run.finished, "the run ended")
            page = await (await client.get(started.headers["Location"])).text()
            assert f'id="progress-text">{READY} of {READY} called<' in page
            assert re.search(r'<form[^>]*id="resume-form"[^>]*hidden', page)

        _run(tmp_path, body, _fake_env(fake))
