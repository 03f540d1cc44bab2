"""Nightly runs over a ledger: nothing lost, nobody called twice, resumable after any stop."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
from collections import Counter
from pathlib import Path

from conftest import (
    KEY_ENV,
    Project,
    contact_rows,
    dialer_subprocess,
    error_lines,
    indian_mobile,
)
from conftest import wait_for as _wait_for

from dialer.core.statuses import ExitCode, LedgerError
from dialer.fake_tabbly import FakeTabbly, FakeTabblyThread
from dialer.ledger.store import Ledger


def test_second_run_skips_people_already_called(project: Project, cli, fake):
    project.write_sheet(contact_rows(5))
    project.write_campaign(fake.url)
    assert cli(["run", str(project.campaign), "--yes"], env=KEY_ENV).code == ExitCode.OK

    project.write_sheet(contact_rows(8))  # the nightly sheet grew by three people
    result = cli(["run", str(project.campaign), "--yes"], env=KEY_ENV)

    assert result.code == ExitCode.OK, result.err
    sent = Counter(r.body["called_to"] for r in fake.received)
    assert set(sent.values()) == {1} and len(sent) == 8
    counts = Counter(r["status"] for r in project.report_rows())
    assert counts == {"already_called": 5, "triggered": 3}


def test_recall_calls_again_on_purpose(project: Project, cli, fake):
    project.write_sheet(contact_rows(2))
    project.write_campaign(fake.url)
    cli(["run", str(project.campaign), "--yes"], env=KEY_ENV)

    result = cli(["run", str(project.campaign), "--yes", "--recall"], env=KEY_ENV)

    assert result.code == ExitCode.OK
    assert len(fake.accepted()) == 4


def test_402_run_then_topped_up_run_sends_only_the_rest(project: Project, cli):
    with FakeTabblyThread(balance=0.55, cost=0.1) as fake:  # 4 calls fit
        project.write_sheet(contact_rows(12))
        project.write_campaign(fake.url, dispatch="concurrency = 2")
        first = cli(["run", str(project.campaign), "--yes"], env=KEY_ENV)
        assert first.code == ExitCode.INSUFFICIENT_BALANCE
        fake.top_up(5.0)
        second = cli(["run", str(project.campaign), "--yes"], env=KEY_ENV)
        accepted = [b["called_to"] for b in fake.accepted()]

    assert second.code == ExitCode.OK, second.err
    assert sorted(accepted) == sorted(indian_mobile(i) for i in range(12))
    counts = Counter(r["status"] for r in project.report_rows())
    assert counts == {"already_called": 4, "triggered": 8}


def test_read_timeout_unknown_is_not_resent_unless_asked(project: Project, cli, fake):
    fake.script("hang")
    project.write_sheet(contact_rows(1))
    project.write_campaign(fake.url, dispatch="timeout_seconds = 0.5")
    assert cli(["run", str(project.campaign), "--yes"], env=KEY_ENV).code == ExitCode.ROW_PROBLEMS

    again = cli(["run", str(project.campaign), "--yes"], env=KEY_ENV)
    assert again.code == ExitCode.ROW_PROBLEMS
    assert len(fake.received) == 1
    assert project.report_rows()[0]["status"] == "unknown"

    forced = cli(["run", str(project.campaign), "--yes", "--retry-unknown"], env=KEY_ENV)
    assert forced.code == ExitCode.OK
    assert len(fake.received) == 2


def test_kill_9_mid_run_never_calls_anyone_twice(project: Project, cli):
    with FakeTabblyThread(latency=0.3) as fake:
        project.write_sheet(contact_rows(30))
        project.write_campaign(fake.url, dispatch="rate_per_second = 20\nconcurrency = 4")
        proc = dialer_subprocess(
            ["run", str(project.campaign), "--yes"],
            env=KEY_ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for(lambda: len(fake.received) >= 6, 20, "the first requests")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        _wait_for(lambda: all(r.status is not None for r in fake.received), 5, "in-flight answers")
        killed_sent = {r.body["called_to"] for r in fake.received}

        dry = cli(["validate", str(project.campaign)])
        dry_rows = {r["called_to"]: r["status"] for r in project.report_rows()}
        result = cli(["run", str(project.campaign), "--yes"], env=KEY_ENV)
        sent = Counter(r.body["called_to"] for r in fake.received)

    # The dry run shows what the run then did: the dead run's claims are `unknown` in both.
    assert dry.code == ExitCode.ROW_PROBLEMS
    run_rows = {r["called_to"]: r["status"] for r in project.report_rows()}
    assert (
        {n for n, s in dry_rows.items() if s == "unknown"}
        == {n for n, s in run_rows.items() if s == "unknown"}
        != set()
    )

    assert result.code == ExitCode.ROW_PROBLEMS  # the in-flight ones are `unknown`
    assert set(sent.values()) == {1}, "someone was called twice"
    assert len(sent) == 30  # and everyone was called once, by one run or the other
    rows = project.report_rows()
    assert len(rows) == 30
    by_status = Counter(r["status"] for r in rows)
    # Every row ends in exactly one final status; what the dead run sent is never re-sent.
    assert by_status["triggered"] + by_status["already_called"] + by_status["unknown"] == 30
    for row in rows:
        if row["called_to"] in killed_sent:
            assert row["status"] in ("already_called", "unknown")
    assert "warning" in result.out and "stopped before recording the answer" in result.out


def test_two_runs_of_one_campaign_at_once_are_refused(project: Project, cli, fake):
    project.write_sheet(contact_rows(2))
    project.write_campaign(fake.url)
    holder = Ledger.open(project.ledger, "test")
    try:
        result = cli(["run", str(project.campaign), "--yes"], env=KEY_ENV)
    finally:
        holder.close()

    assert result.code == ExitCode.INPUT_ERROR
    assert "another run" in result.err
    assert fake.received == []


def test_truncated_ledger_is_refused_not_repaired(project: Project, cli, fake):
    project.write_sheet(contact_rows(3))
    project.write_campaign(fake.url)
    assert cli(["run", str(project.campaign), "--yes"], env=KEY_ENV).code == ExitCode.OK
    data = project.ledger.read_bytes()
    project.ledger.write_bytes(data[: len(data) // 2 + 100])
    for suffix in ("-wal", "-shm"):
        project.ledger.with_name(project.ledger.name + suffix).unlink(missing_ok=True)
    before = len(fake.received)

    result = cli(["run", str(project.campaign), "--yes"], env=KEY_ENV)

    assert result.code == ExitCode.INPUT_ERROR
    assert "ledger" in result.err and "corrupt" in result.err
    assert len(fake.received) == before


def test_junk_ledger_is_refused(project: Project, cli, fake):
    project.write_sheet(contact_rows(1))
    project.write_campaign(fake.url)
    project.ledger.parent.mkdir(parents=True)
    project.ledger.write_bytes(b"this is not a database" * 100)

    result = cli(["run", str(project.campaign), "--yes"], env=KEY_ENV)

    assert result.code == ExitCode.INPUT_ERROR and "corrupt" in result.err
    assert fake.received == []


def test_status_reports_counts_last_run_and_waiting(project: Project, cli):
    with FakeTabblyThread(balance=0.45, cost=0.1) as fake:  # 3 calls fit
        project.write_sheet(contact_rows(6))
        project.write_campaign(fake.url, dispatch="concurrency = 1")
        cli(["run", str(project.campaign), "--yes"], env=KEY_ENV)

    result = cli(["status", str(project.campaign)])

    assert result.code == ExitCode.OK
    assert "triggered       3" in result.out
    assert "exit 3 (insufficient_balance)" in result.out
    assert "waiting: 1" in result.out  # the row that got the 402


def test_ledger_records_every_sent_row(project: Project, cli, fake):
    project.write_sheet(contact_rows(4))
    project.write_campaign(fake.url)
    cli(["run", str(project.campaign), "--yes"], env=KEY_ENV)

    with sqlite3.connect(project.ledger) as conn:
        rows = dict(conn.execute("SELECT called_to, status FROM calls"))
    assert rows == {indian_mobile(i): "triggered" for i in range(4)}


def test_corrupt_ledger_error_type(tmp_path):
    path = tmp_path / "x.sqlite"
    path.write_bytes(b"\0" * 10 + b"junk" * 500)
    try:
        Ledger.open(path, "x")
    except LedgerError as exc:
        assert "never repaired" in str(exc)
    else:
        raise AssertionError("a junk ledger was opened")


def test_a_stopped_recall_run_does_not_make_the_next_run_forget_who_was_called(
    project: Project, cli
):
    with FakeTabblyThread() as paid, FakeTabblyThread(balance=0.1) as empty:
        project.write_sheet(contact_rows(3))
        project.write_campaign(paid.url)
        assert cli(["run", str(project.campaign), "--yes"], env=KEY_ENV).code == ExitCode.OK
        project.write_campaign(empty.url)  # the recall run hits an empty wallet at once
        recall = cli(["run", str(project.campaign), "--yes", "--recall"], env=KEY_ENV)
        assert recall.code == ExitCode.INSUFFICIENT_BALANCE
        project.write_campaign(paid.url)

        again = cli(["run", str(project.campaign), "--yes"], env=KEY_ENV)

        assert again.code == ExitCode.OK
        assert len(paid.received) == 3  # nobody called a second time
        assert Counter(r["status"] for r in project.report_rows()) == {"already_called": 3}


def test_ledger_write_failure_stops_the_run_cleanly(project: Project, cli, fake, monkeypatch):
    from dialer.core.statuses import LedgerError

    calls = {"n": 0}
    real_claim = Ledger.claim

    async def failing_claim(self, entry):
        calls["n"] += 1
        if calls["n"] > 3:
            raise LedgerError("disk full (simulated)")
        await real_claim(self, entry)

    monkeypatch.setattr(Ledger, "claim", failing_claim)
    project.write_sheet(contact_rows(20))
    project.write_campaign(fake.url, dispatch="concurrency = 1")

    result = cli(["run", str(project.campaign), "--yes"], env=KEY_ENV)

    assert result.code == ExitCode.INPUT_ERROR
    assert "disk full" in result.err and len(error_lines(result.err)) == 1
    rows = project.report_rows()
    assert len(rows) == 20
    counts = Counter(r["status"] for r in rows)
    assert counts["triggered"] == len(fake.accepted()) == 3
    assert counts["not_attempted"] == 17


def test_sheet_broken_after_the_first_chunk_stops_cleanly(project: Project, cli):
    with FakeTabblyThread(balance=1e9, cost=0.0001) as fake:
        _sheet_broken_after_the_first_chunk(project, cli, fake)


def _sheet_broken_after_the_first_chunk(project: Project, cli, fake: FakeTabbly) -> None:
    path = project.write_sheet(contact_rows(6000))
    with open(path, "a", encoding="utf-8") as f:
        f.write('C9999,"Unclosed,+917359099999,O\n')
    project.write_campaign(fake.url, dispatch="rate_per_second = 10000\nconcurrency = 32")

    result = cli(["run", str(project.campaign), "--yes"], env=KEY_ENV)

    assert result.code == ExitCode.INPUT_ERROR
    # One error line; progress log lines may come before it on a slow machine (every 5 s).
    assert "Traceback" not in result.err and len(error_lines(result.err)) == 1, result.err
    summary = json.loads(Path(str(project.reports()[-1]) + ".summary.json").read_text())
    assert summary["close_reason"] == "error"
    rows = project.report_rows()
    sent = Counter(r.body["called_to"] for r in fake.received)
    assert set(sent.values()) == {1}
    assert Counter(r["status"] for r in rows)["triggered"] == len(fake.accepted())
    status = cli(["status", str(project.campaign)])
    assert "never finished" not in status.out and "(error)" in status.out
