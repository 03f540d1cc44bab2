"""`dialer run` against the real fake Tabbly: what the server received is the evidence."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

from conftest import (
    KEY_ENV,
    Project,
    contact_rows,
    dialer_subprocess,
    indian_mobile,
    wait_for_requests,
)

from dialer.core.statuses import ExitCode
from dialer.fake_tabbly import DEFAULT_API_KEY, FakeTabbly, FakeTabblyThread


def _sent_numbers(fake: FakeTabbly) -> list[str]:
    return [r.body["called_to"] for r in fake.received if r.body]


def _statuses(project: Project) -> Counter[str]:
    return Counter(r["status"] for r in project.report_rows())


def test_every_ready_row_is_sent_once_with_documented_types(project: Project, cli, fake):
    project.write_sheet(contact_rows(20))
    project.write_campaign(fake.url)

    result = cli(["run", str(project.campaign), "--yes"], env=KEY_ENV)

    assert result.code == ExitCode.OK, result.err
    sent = _sent_numbers(fake)
    assert sorted(sent) == sorted(indian_mobile(i) for i in range(20))
    for body in fake.accepted():
        assert type(body["organization_id"]) is int and type(body["use_agent_id"]) is int
        for key in (
            "called_to",
            "call_from",
            "custom_first_line",
            "custom_instruction",
            "called_by_account",
            "api_key",
            "custom_identifiers",
        ):
            assert type(body[key]) is str, key
    by_id = {b["custom_identifiers"]: b for b in fake.accepted()}
    assert by_id["C3"]["custom_first_line"] == "Hello Name3, about order O3."
    assert by_id["C3"]["custom_instruction"] == "Order O3 for Name3."
    rows = project.report_rows()
    assert [r["row"] for r in rows] == [str(i) for i in range(1, 21)]  # sheet order
    assert {r["status"] for r in rows} == {"triggered"}
    assert all(r["call_id"].startswith("room-") and r["attempts"] == "1" for r in rows)


def test_402_mid_run_stops_sending_and_marks_rest_not_attempted(project: Project, cli):
    # 0.75 with cost 0.1 and a 0.2 minimum: exactly 6 calls fit, the 7th answer is 402.
    with FakeTabblyThread(balance=0.75, cost=0.1) as fake:
        project.write_sheet(contact_rows(30))
        project.write_campaign(fake.url, dispatch="")
        result = cli(["run", str(project.campaign), "--yes"], env=KEY_ENV)
        received = list(fake.received)

    assert result.code == ExitCode.INSUFFICIENT_BALANCE
    assert len(fake.accepted()) == 6
    first_402 = next(i for i, r in enumerate(received) if r.status == 402)
    # Nothing leaves after the 402 beyond the requests already in flight (concurrency 8).
    assert len(received) - first_402 <= 8
    counts = _statuses(project)
    assert counts["triggered"] == 6
    assert counts["not_attempted"] == 24
    reasons = {r["reason"] for r in project.report_rows() if r["status"] == "not_attempted"}
    assert reasons == {"insufficient balance"}
    summary = json.loads(Path(str(project.reports()[-1]) + ".summary.json").read_text())
    assert summary["close_reason"] == "insufficient_balance"
    assert summary["exit_code"] == 3
    assert "next: top up the Tabbly wallet" in result.out


def test_500_then_success_is_retried_and_triggered(project: Project, cli, fake):
    fake.script("500", "html500")
    project.write_sheet(contact_rows(1))
    project.write_campaign(fake.url)

    result = cli(["run", str(project.campaign), "--yes"], env=KEY_ENV)

    assert result.code == ExitCode.OK, result.err
    assert [r.status for r in fake.received] == [500, 500, 200]
    (row,) = project.report_rows()
    assert row["status"] == "triggered" and row["attempts"] == "3"


def test_429_retry_after_is_honoured(project: Project, cli, fake):
    fake.script("429:1")
    project.write_sheet(contact_rows(1))
    project.write_campaign(fake.url)

    result = cli(["run", str(project.campaign), "--yes"], env=KEY_ENV)

    assert result.code == ExitCode.OK, result.err
    first, second = fake.received
    assert first.status == 429 and second.status == 200
    assert second.at - first.at >= 0.95


def test_retryable_failures_give_up_after_max_attempts(project: Project, cli, fake):
    fake.script("503", "503", "503")
    project.write_sheet(contact_rows(1))
    project.write_campaign(fake.url)

    result = cli(["run", str(project.campaign), "--yes"], env=KEY_ENV)

    assert result.code == ExitCode.ROW_PROBLEMS
    assert len(fake.received) == 3  # max_attempts = 3
    (row,) = project.report_rows()
    assert row["status"] == "failed" and row["attempts"] == "3" and row["http_status"] == "503"


def test_read_timeout_is_unknown_and_sent_exactly_once(project: Project, cli, fake):
    fake.script("hang")
    project.write_sheet(contact_rows(3))
    project.write_campaign(fake.url, dispatch="")

    result = cli(["run", str(project.campaign), "--yes"], env=KEY_ENV)

    assert result.code == ExitCode.ROW_PROBLEMS
    counts = Counter(_sent_numbers(fake))
    assert set(counts.values()) == {1}
    assert _statuses(project) == {"triggered": 2, "unknown": 1}
    unknown = next(r for r in project.report_rows() if r["status"] == "unknown")
    assert "timeout" in unknown["reason"]


def test_504_is_unknown_and_never_retried(project: Project, cli, fake):
    fake.script("504")
    project.write_sheet(contact_rows(1))
    project.write_campaign(fake.url)

    result = cli(["run", str(project.campaign), "--yes"], env=KEY_ENV)

    assert result.code == ExitCode.ROW_PROBLEMS
    assert len(fake.received) == 1
    assert project.report_rows()[0]["status"] == "unknown"


def test_dropped_connection_is_unknown_and_sent_once(project: Project, cli, fake):
    fake.script("drop")
    project.write_sheet(contact_rows(1))
    project.write_campaign(fake.url)

    result = cli(["run", str(project.campaign), "--yes"], env=KEY_ENV)

    assert result.code == ExitCode.ROW_PROBLEMS
    assert len(fake.received) == 1
    row = project.report_rows()[0]
    assert row["status"] == "unknown" and row["attempts"] == "1"


def test_connection_refused_is_retried_then_failed_retryable(project: Project, cli):
    project.write_sheet(contact_rows(1))
    project.write_campaign("http://127.0.0.1:9/dashboard/agents/endpoints/trigger-call")

    result = cli(["run", str(project.campaign), "--yes"], env=KEY_ENV)

    assert result.code == ExitCode.ROW_PROBLEMS
    row = project.report_rows()[0]
    assert row["status"] == "failed" and row["attempts"] == "3"
    assert "connection failed" in row["reason"]


def test_404_refuses_the_campaign_exit_4(project: Project, cli):
    with FakeTabblyThread(agent_id=99) as fake:  # our agent 33 is unknown there
        project.write_sheet(contact_rows(10))
        project.write_campaign(fake.url, dispatch="")
        result = cli(["run", str(project.campaign), "--yes"], env=KEY_ENV)
        received = len(fake.received)

    assert result.code == ExitCode.CAMPAIGN_REFUSED
    assert received <= 8  # only what was already in flight
    counts = _statuses(project)
    assert counts["not_attempted"] >= 2
    assert counts["triggered"] == 0


def test_first_five_answers_all_400_refuses_the_campaign(project: Project, cli, fake):
    fake.script(*["400"] * 5)
    project.write_sheet(contact_rows(30))
    project.write_campaign(fake.url, dispatch="concurrency = 1")

    result = cli(["run", str(project.campaign), "--yes"], env=KEY_ENV)

    assert result.code == ExitCode.CAMPAIGN_REFUSED
    assert len(fake.received) == 5
    assert _statuses(project) == {"failed": 5, "not_attempted": 25}


def test_rate_limit_holds_over_every_one_second_window(project: Project, cli, fake_process):
    project.write_sheet(contact_rows(16))
    project.write_campaign(fake_process.url, dispatch="rate_per_second = 5")

    result = cli(["run", str(project.campaign), "--yes"], env=KEY_ENV)

    assert result.code == ExitCode.OK, result.err
    times = sorted(r["at"] for r in fake_process.state()["received"])
    assert len(times) == 16
    for i, start in enumerate(times):
        in_window = sum(1 for t in times[i:] if t - start < 1.0)
        assert in_window <= 5, f"{in_window} requests within 1 s from request {i}"
    # That the rate is used, not wasted, is the pacer's unit tests' job (tests/test_pacing.py,
    # on an injected clock): a wall-clock bound here only measured how loaded CI was.


def test_limit_caps_the_calls_of_one_run(project: Project, cli, fake):
    project.write_sheet(contact_rows(10))
    project.write_campaign(fake.url)

    result = cli(["run", str(project.campaign), "--yes", "--limit", "4"], env=KEY_ENV)

    assert result.code == ExitCode.OK
    assert len(fake.received) == 4
    assert _statuses(project) == {"triggered": 4, "not_attempted": 6}


def test_yes_is_required_without_a_terminal(project: Project, cli, fake):
    project.write_sheet(contact_rows(2))
    project.write_campaign(fake.url)

    result = cli(["run", str(project.campaign)], env=KEY_ENV)

    assert result.code == ExitCode.INPUT_ERROR
    assert "--yes" in result.err and "Traceback" not in result.err
    assert fake.received == []


def test_missing_api_key_is_a_usage_error(project: Project, cli, fake, monkeypatch):
    monkeypatch.delenv("TABBLY_API_KEY", raising=False)
    project.write_sheet(contact_rows(2))
    project.write_campaign(fake.url)

    result = cli(["run", str(project.campaign), "--yes"])

    assert result.code == ExitCode.INPUT_ERROR
    assert "TABBLY_API_KEY" in result.err
    assert fake.received == []


def test_api_key_never_reaches_report_summary_or_output(project: Project, cli, fake):
    fake.script("500", "401")
    project.write_sheet(contact_rows(5))
    project.write_campaign(fake.url, dispatch="concurrency = 1")

    result = cli(["run", str(project.campaign), "--yes"], env=KEY_ENV)

    assert result.code == ExitCode.CAMPAIGN_REFUSED
    texts = [result.out, result.err]
    for path in (project.root / "reports").rglob("*"):
        if path.is_file():
            texts.append(path.read_text(encoding="utf-8"))
    texts.append(project.ledger.read_bytes().decode("latin-1"))
    assert all(DEFAULT_API_KEY not in text for text in texts)


def test_sigterm_mid_run_exits_130_with_a_complete_report(project: Project, tmp_path: Path):
    with FakeTabblyThread(latency=0.05) as fake:
        project.write_sheet(contact_rows(40))
        project.write_campaign(fake.url, dispatch="rate_per_second = 10")
        proc = dialer_subprocess(
            ["run", str(project.campaign), "--yes"],
            env=KEY_ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        wait_for_requests(fake, 3, proc)
        proc.send_signal(signal.SIGTERM)
        sent_at_stop = len(fake.received)
        _out, err = proc.communicate(timeout=10)
        received = len(fake.received)

    assert proc.returncode == ExitCode.INTERRUPTED, err
    assert received <= sent_at_stop + 8  # at most what was in flight
    rows = project.report_rows()
    assert len(rows) == 40
    counts = Counter(r["status"] for r in rows)
    assert counts["triggered"] == len(fake.accepted())
    assert counts["not_attempted"] == 40 - counts["triggered"] - counts["unknown"]
    assert "Traceback" not in err


def test_window_is_checked_again_as_the_request_leaves(project: Project, fake, monkeypatch):
    from datetime import UTC, datetime

    from dialer.campaign.parse import load_campaign
    from dialer.commands.run import IOContext, Run, run
    from dialer.engine.pacing import Pacer

    project.write_sheet(contact_rows(2))
    project.write_campaign(fake.url, dispatch="concurrency = 1")
    text = project.campaign.read_text() + '\n[window]\nhours = "09:00-20:00"\n'
    project.campaign.write_text(text)
    # 14:29 UTC is 19:59 in India (inside), 14:31 UTC is 20:01 (outside): the first row passes
    # the check before the pacer, which then holds it past the window's end.
    inside = datetime(2026, 11, 25, 14, 29, tzinfo=UTC)
    outside = datetime(2026, 11, 25, 14, 31, tzinfo=UTC)
    held = []
    real_wait = Pacer.wait

    async def wait_past_the_end(self, stopped=None):
        granted = await real_wait(self, stopped)
        held.append(granted)
        return granted

    monkeypatch.setattr(Pacer, "wait", wait_past_the_end)

    code = run(
        Run(load_campaign(project.campaign), yes=True),
        IOContext(environ=KEY_ENV, clock=lambda: outside if held else inside),
    )

    assert code == ExitCode.OK
    assert len(held) == 1  # the first row reached the pacer: it was inside when first checked
    assert fake.received == []
    assert Counter(r["status"] for r in project.report_rows()) == {"outside_window": 2}


def test_bad_endpoint_url_is_refused_before_sending(project: Project, cli):
    project.write_sheet(contact_rows(2))
    project.write_campaign("not a url")

    result = cli(["run", str(project.campaign), "--yes"], env=KEY_ENV)

    assert result.code == ExitCode.INPUT_ERROR and "endpoint" in result.err
    assert not project.ledger.exists()


def test_api_key_echoed_by_the_upstream_is_scrubbed_before_truncation():
    import asyncio

    from aiohttp import web
    from aiohttp.test_utils import TestServer

    from dialer.tabbly.client import Secret, TabblyClient

    key = "sk-live-ABCDEFGHIJKLMNOP"

    async def echo(request: web.Request) -> web.Response:
        # The key straddles the 200-character cut of the reason.
        return web.json_response({"error": "x" * 190 + f" api_key={key}"}, status=400)

    async def go() -> str:
        app = web.Application()
        app.router.add_post("/t", echo)
        async with TestServer(app, host="127.0.0.1") as server:
            client = TabblyClient(str(server.make_url("/t")), Secret(key), 4, 5)
            async with client:
                outcome = await client.post(b"{}")
        return outcome.reason

    reason = asyncio.run(go())
    assert "ABCDEF" not in reason and "sk-live" not in reason


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_run_asks_first_and_sends_nothing_on_no(project: Project, fake):
    from dialer.campaign.parse import load_campaign
    from dialer.commands.run import IOContext, Run, run

    project.write_sheet(contact_rows(3))
    project.write_campaign(fake.url)
    asked: list[str] = []
    out = io.StringIO()

    code = run(
        Run(load_campaign(project.campaign)),
        IOContext(
            environ=KEY_ENV,
            stdin=_Terminal(),
            out=out,
            ask=lambda prompt: asked.append(prompt) or "n",
        ),
    )

    assert code == ExitCode.OK and asked == ["Start calling? [y/N] "]
    assert "About to call 3 people from +14156801215 with agent 33" in out.getvalue()
    assert fake.received == [] and not project.ledger.exists()


def test_terminal_run_calls_after_yes(project: Project, fake):
    from dialer.campaign.parse import load_campaign
    from dialer.commands.run import IOContext, Run, run

    project.write_sheet(contact_rows(3))
    project.write_campaign(fake.url)

    code = run(
        Run(load_campaign(project.campaign)),
        IOContext(
            environ=KEY_ENV,
            stdin=_Terminal(),
            out=io.StringIO(),
            err=io.StringIO(),
            ask=lambda prompt: "y",
        ),
    )

    assert code == ExitCode.OK
    assert len(fake.accepted()) == 3


def test_rate_limit_holds_when_ledger_commits_are_slow(
    project: Project, cli, fake_process, monkeypatch
):
    from dialer.ledger.batch import Batches

    real_commit = Batches.commit
    calls = {"n": 0}

    def slow_commit(self, batch):
        calls["n"] += 1
        if calls["n"] % 3 == 0:
            time.sleep(0.04)  # a slow disk's fsync, on one commit in three
        real_commit(self, batch)

    monkeypatch.setattr(Batches, "commit", slow_commit)
    project.write_sheet(contact_rows(16))
    project.write_campaign(fake_process.url, dispatch="rate_per_second = 5")

    result = cli(["run", str(project.campaign), "--yes"], env=KEY_ENV)

    assert result.code == ExitCode.OK, result.err
    times = sorted(r["at"] for r in fake_process.state()["received"])
    assert len(times) == 16
    worst = max(sum(1 for t in times[i:] if t - s < 1.0) for i, s in enumerate(times))
    assert worst <= 5


def test_progress_survives_its_reader_going_away():
    from dataclasses import replace

    from dialer.core.settings import DEFAULTS
    from dialer.core.statuses import Status
    from dialer.engine.progress import Progress
    from dialer.reports.writer import RowResult
    from dialer.sheets.contacts import Contact

    class GoneReader(io.StringIO):
        attempts = 0

        def write(self, text: str) -> int:
            GoneReader.attempts += 1
            raise BrokenPipeError("the page's server went away")

    every_row = replace(DEFAULTS, jsonl_every_seconds=0.0)
    progress = Progress(GoneReader(), mode="jsonl", settings=every_row)
    contact = Contact(1, "C1", "x", "+917359043943", Status.READY, "", "Hi", "", ())
    for _ in range(3):
        progress.row_done(RowResult(contact, Status.TRIGGERED, ""))
    progress.close()  # no exception: the run carries on without its watcher

    assert GoneReader.attempts == 1  # after the reader went away, nothing more is tried
    assert progress.counts[Status.TRIGGERED] == 3
