"""Ledger loss, the review's holes (SPEC 6.3): a partly checkpointed WAL, calls in flight at a
kill, a report outside `reports/<campaign>/`, a refused dry run's junk report, a corrupt
ledger's two-line error. Each drives the real CLI against the fake Tabbly and asserts on what
the fake received: a lost ledger must never turn into a second call."""

from __future__ import annotations

import shutil
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest
from conftest import KEY_ENV, Project, contact_rows, dialer_subprocess
from conftest import sent_once_each as _sent_once_each
from conftest import wait_for as _wait_for

from dialer.core.statuses import ExitCode
from dialer.fake_tabbly import FakeTabbly, FakeTabblyThread


def _run(project: Project, cli, *extra: str):
    return cli(["run", str(project.campaign), "--yes", *extra], env=KEY_ENV)


def _refused_as_lost(result) -> None:
    assert result.code == ExitCode.INPUT_ERROR, (result.code, result.out, result.err)
    assert result.err.count("\n") == 1 and "Traceback" not in result.err
    assert "dialer ledger rebuild" in result.err and "test.toml" in result.err


def _lose_wal(project: Project) -> None:
    """An operator copies or tidies only `test.sqlite`: its -wal and -shm are gone."""
    for suffix in ("-wal", "-shm"):
        project.ledger.with_name(project.ledger.name + suffix).unlink(missing_ok=True)


def _journal(project: Project) -> Path:
    return project.ledger.with_name("test.claims")


def _start(project: Project, report: Path) -> subprocess.Popen[str]:
    return dialer_subprocess(
        ["run", str(project.campaign), "--yes", "--report", str(report)],
        env=KEY_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _kill(proc: subprocess.Popen[str], fake: FakeTabbly) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    _wait_for(lambda: all(r.status is not None for r in fake.received), 10, "in-flight answers")


def _triggered_in(report: Path) -> int:
    return report.read_text("utf-8").count(",triggered,") if report.exists() else 0


@pytest.mark.parametrize("journal", ["kept", "lost-too"])
def test_partly_checkpointed_wal_then_lost_is_refused_not_called_again(
    project: Project, cli, journal: str
):
    """SQLite checkpoints a long run's WAL on its own (~1000 pages): the main file then holds
    the run's `runs` row and its first calls; the rest is lost with the -wal. The main file
    at that moment is taken here with SQLite's backup API (a consistent snapshot, what a
    partial checkpoint leaves), while the run goes on; the run is then killed."""
    with FakeTabblyThread(latency=0.05, balance=1000) as fake:
        project.write_sheet(contact_rows(60))
        project.write_campaign(fake.url, dispatch="rate_per_second = 20\nconcurrency = 4")
        report = project.root / "reports" / "test" / "night.csv"
        proc = _start(project, report)
        snapshot = project.root / "snapshot.sqlite"
        try:
            _wait_for(lambda: _triggered_in(report) >= 5, 60, "five calls in the report")
            src = sqlite3.connect(project.ledger)
            dst = sqlite3.connect(snapshot)
            src.backup(dst)
            src.close()
            dst.close()
            known = len(fake.received)
            _wait_for(lambda: len(fake.received) >= known + 8, 60, "more calls after it")
        finally:
            _kill(proc, fake)
        in_flight_at_kill = {r.body["called_to"] for r in fake.received}
        shutil.copy(snapshot, project.ledger)
        _lose_wal(project)
        if journal == "lost-too":
            _journal(project).unlink(missing_ok=True)
        with sqlite3.connect(project.ledger) as conn:  # the killed run is known, unfinished
            assert conn.execute("SELECT COUNT(*) FROM runs WHERE finished_at IS NULL").fetchone()
        conn.close()
        before = len(fake.received)

        result = _run(project, cli)

        assert len(fake.received) == before  # today: the calls after the snapshot, again
        _refused_as_lost(result)
        rebuilt = cli(["ledger", "rebuild", str(project.campaign)])
        assert rebuilt.code == ExitCode.OK, rebuilt.err
        if journal == "lost-too":  # the reports alone: the in-flight calls are in no file
            assert "misses calls of 1 run(s) it knows, which never finished" in result.err
            assert "warning: 1 report(s) have no summary" in rebuilt.out
            return
        fake.latency = 0.0
        last = project.root / "reports" / "test" / "after.csv"
        again = _run(project, cli, "--report", str(last))
        assert again.code in (ExitCode.OK, ExitCode.ROW_PROBLEMS), again.err
        sent = _sent_once_each(fake)
        # Everyone once, but a journal claim whose request had not left at the kill: it is
        # `unknown` (maybe called), never sent again unasked.
        unknown = {r["called_to"] for r in project.report_rows(last) if r["status"] == "unknown"}
        assert len(set(sent) | unknown) == 60 and not unknown & (set(sent) - set(in_flight_at_kill))


@pytest.mark.parametrize("journal", ["kept", "lost-too"])
def test_calls_in_flight_at_a_kill_then_lost_wal_are_refused_and_rebuilt_unknown(
    project: Project, cli, journal: str
):
    with FakeTabblyThread(latency=1.5, balance=1000) as fake:
        project.write_sheet(contact_rows(20))
        project.write_campaign(fake.url, dispatch="rate_per_second = 50\nconcurrency = 8")
        report = project.root / "reports" / "test" / "night.csv"
        proc = _start(project, report)
        try:  # requests out, no answer yet: in no report
            _wait_for(lambda: len(fake.received) >= 4, 60, "requests in flight")
        finally:
            _kill(proc, fake)
        in_flight = {r.body["called_to"] for r in fake.received}
        assert _triggered_in(report) == 0
        _lose_wal(project)
        if journal == "lost-too":
            _journal(project).unlink(missing_ok=True)
        before = len(fake.received)

        result = _run(project, cli)

        assert len(fake.received) == before  # today: exit 0, the in-flight people called again
        _refused_as_lost(result)
        if journal == "kept":
            assert "claims journal" in result.err
            assert "more whose calls may have been placed" in result.err
        else:  # a main file in WAL mode with no tables: a run used it, its -wal is gone
            assert "a run's report is in" in result.err
        for command in ("validate", "status"):
            other = cli([command, str(project.campaign)])
            assert other.code == ExitCode.INPUT_ERROR and other.err == result.err

        rebuilt = cli(["ledger", "rebuild", str(project.campaign)])

        assert rebuilt.code == ExitCode.OK, rebuilt.err
        if journal == "lost-too":  # nothing left shows who was in flight: the rebuild says so
            assert "warning: 1 report(s) have no summary" in rebuilt.out
            return
        assert "recorded from the claims journal as unknown (maybe called; in no report)" in (
            rebuilt.out
        )
        fake.latency = 0.0
        last = project.root / "reports" / "test" / "after.csv"
        again = _run(project, cli, "--report", str(last))
    sent = _sent_once_each(fake)
    statuses = {r["called_to"]: r["status"] for r in project.report_rows(last)}
    assert again.code == ExitCode.ROW_PROBLEMS, again.err
    assert all(statuses[n] == "unknown" for n in in_flight)  # maybe called: not again
    unknown = {n for n, s in statuses.items() if s == "unknown"}
    assert set(sent) == set(statuses) - (unknown - in_flight)  # everyone else, once


def test_report_outside_the_campaign_folder_is_found_when_the_ledger_is_lost(
    project: Project, cli, fake
):
    project.write_sheet(contact_rows(30))
    project.write_campaign(fake.url)
    elsewhere = project.root / "reports" / "r.xlsx"
    assert _run(project, cli, "--report", str(elsewhere)).code == ExitCode.OK
    project.ledger.write_bytes(b"")  # `: > state/test.sqlite`

    result = _run(project, cli)

    assert len(fake.received) == 30  # today: exit 0, all 30 called again
    _refused_as_lost(result)
    assert "show 30 people called" in result.err
    assert str(elsewhere) in (project.root / "reports/test/other-reports.txt").read_text()
    rebuilt = cli(["ledger", "rebuild", str(project.campaign)])
    assert rebuilt.code == ExitCode.OK and "called: 30 (triggered 30)" in rebuilt.out
    assert _run(project, cli).code == ExitCode.OK
    assert len(_sent_once_each(fake)) == 30


def test_refused_validate_leaves_no_report_for_a_rebuild_to_count(project: Project, cli, fake):
    project.write_sheet(contact_rows(3))
    project.write_campaign(fake.url)
    assert _run(project, cli).code == ExitCode.OK
    project.ledger.write_bytes(b"")
    folder = project.root / "reports" / "test"
    before = sorted(folder.iterdir())

    refused = cli(["validate", str(project.campaign)])

    assert refused.code == ExitCode.INPUT_ERROR and "show 3 people called" in refused.err
    assert sorted(folder.iterdir()) == before  # today: an empty report is left there
    rebuilt = cli(["ledger", "rebuild", str(project.campaign)])
    assert rebuilt.code == ExitCode.OK and "killed mid-way" not in rebuilt.out


def _corrupt_a_page(path: Path) -> str:
    """Break the first leaf page after page 1 (its content-area start), the way a bad
    disk or copy does; returns SQLite's own multi-line integrity report."""
    data = bytearray(path.read_bytes())
    page = 4096
    for start in range(page, len(data), page):
        if data[start] == 0x0D:  # a table leaf page
            data[start + 5 : start + 7] = b"\x00\x01"
            break
    path.write_bytes(bytes(data))
    with sqlite3.connect(path) as conn:
        report = conn.execute("PRAGMA quick_check").fetchone()[0]
    conn.close()
    return report


def test_corrupt_ledger_error_is_one_line(project: Project, cli, fake):
    project.write_sheet(contact_rows(45))
    project.write_campaign(fake.url)
    assert _run(project, cli).code == ExitCode.OK
    assert "\n" in _corrupt_a_page(project.ledger)  # what made the error span lines

    for result in (_run(project, cli), cli(["validate", str(project.campaign)])):
        assert result.code == ExitCode.INPUT_ERROR and "corrupt" in result.err
        assert result.err.count("\n") == 1 and len(result.err) < 600, result.err
        assert "dialer ledger rebuild" in result.err
    assert len(fake.received) == 45
