"""A lost -wal in a `[redial]` campaign (issue 17, parts 1 and 4), through the real CLI and
`dialer fake-tabbly` in its own process: a redial run killed with -9, its ledger's -wal and
-shm deleted. The ledger still knows everyone as called (the first run was checkpointed), so
only counting calls, not people, notices that the redials are missing; the rebuild must bring
every call back, once, so no one is ever called more than `max_calls` times. What the fake
received is the truth every assertion compares to."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
from collections import Counter
from datetime import UTC, datetime, timedelta

from conftest import KEY_ENV, Project, contact_rows, dialer_subprocess, wait_for

from dialer.campaign.model import LOGS_ENDPOINT_ENV
from dialer.core.clock import stamp
from dialer.core.statuses import ExitCode
from dialer.fake_tabbly import FakeTabblyProcess
from dialer.fake_tabbly.rules import LOGS_V2_PATH, TRIGGER_PATH

MAX_CALLS = 3
REDIAL = (
    f'[redial]\noutcomes = ["no_answer", "busy"]\nafter_minutes = 0.05\nmax_calls = {MAX_CALLS}\n'
)


# Every call unanswered, answered slowly enough to kill a run with requests in flight.
NO_ANSWER_FAKE = ("--outcomes", "no_answer=1", "--latency", "0.3", "--balance", "1000")
NO_ANSWER_FAKE += ("--log-delay", "0")


def _redial_campaign(project: Project, fake: FakeTabblyProcess) -> tuple[dict[str, str], str]:
    """20 people, the issue's `[redial]`, two calls at a time: the environment and the file."""
    project.write_sheet(contact_rows(20))
    project.write_campaign(fake.url, extra=REDIAL, dispatch="rate_per_second = 20\nconcurrency = 2")
    return _env(fake), str(project.campaign)


def _env(fake: FakeTabblyProcess) -> dict[str, str]:
    logs = fake.url.removesuffix(TRIGGER_PATH) + LOGS_V2_PATH
    return {**KEY_ENV, LOGS_ENDPOINT_ENV: logs}


def _accepted(fake: FakeTabblyProcess) -> Counter[str]:
    """Calls the fake accepted, per number."""
    return Counter(r["body"]["called_to"] for r in fake.state()["received"] if r["status"] == 200)


def _rooms(fake: FakeTabblyProcess) -> dict[str, str]:
    """Each accepted call's room, and the number it went to."""
    return {c["room_name"]: c["called_to"] for c in fake.state()["calls"]}


def _age_calls(project: Project) -> None:
    """As if `after_minutes` had passed since every call (no test sleeps on the clock); the
    WAL checkpointed, so what a lost -wal takes away is the next run's alone."""
    conn = sqlite3.connect(project.ledger)
    ago = stamp(datetime.now(UTC) - timedelta(minutes=1))
    with conn:
        conn.execute("UPDATE dials SET placed_at = ? WHERE placed_at > ?", (ago, ago))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def _dials(project: Project) -> list[tuple[str, str]]:
    conn = sqlite3.connect(project.ledger)
    try:
        return conn.execute("SELECT called_to, room_name FROM dials ORDER BY id").fetchall()
    finally:
        conn.close()


def _statuses(project: Project) -> dict[str, str]:
    conn = sqlite3.connect(project.ledger)
    try:
        return dict(conn.execute("SELECT called_to, status FROM calls"))
    finally:
        conn.close()


def test_lost_wal_after_killed_redial_run_is_refused_and_rebuilt_with_every_call(
    project: Project, cli
):
    with FakeTabblyProcess(*NO_ANSWER_FAKE) as fake:
        env, campaign = _redial_campaign(project, fake)
        first = cli(["run", campaign, "--yes"], env)
        assert first.code == ExitCode.OK, first.err
        synced = cli(["sync", campaign], env)
        assert synced.code == ExitCode.OK, synced.err
        _age_calls(project)

        _killed_after(["run", campaign, "--yes"], env, fake, 20 + 8)  # 8 redials
        for suffix in ("-wal", "-shm"):
            project.ledger.with_name(project.ledger.name + suffix).unlink(missing_ok=True)
        before = _accepted(fake)
        assert sum(before.values()) >= 28

        for command in (["status", campaign], ["validate", campaign], ["run", campaign, "--yes"]):
            refused = cli(command, env)
            assert refused.code == ExitCode.INPUT_ERROR, (command, refused.code, refused.out)
            assert "dialer ledger rebuild" in refused.err and "Traceback" not in refused.err
        assert _accepted(fake) == before  # today: `run` called all 20 again

        rebuilt = cli(["ledger", "rebuild", campaign])
        assert rebuilt.code == ExitCode.OK, rebuilt.err
        # The redial history is whole: every call a report shows is one dials row, and
        # everyone whose every call is known has as many dials as the fake took calls.
        dials = _dials(project)
        rooms = [room for _, room in dials if room]  # a maybe-call has no room
        assert len(rooms) == len(set(rooms)), "a call in dials twice"
        truth = _rooms(fake)
        assert all(truth[room] == number for number, room in dials if room)
        held = Counter(number for number, _ in dials)
        statuses = _statuses(project)
        maybe = {n for n, s in statuses.items() if s == "unknown"}  # in flight at the kill
        assert maybe, "nobody in flight at the kill: the maybe-calls are not tested"
        for number, calls in before.items():
            if number not in maybe:
                assert held[number] == calls, (number, held[number], calls)
            else:  # its claim is a maybe-call, whether or not its request reached the fake
                assert held[number] in (calls, calls + 1), (number, held[number], calls)

        for _ in range(MAX_CALLS):  # as many more runs as it could take to reach max_calls
            _age_calls(project)
            again = cli(["run", campaign, "--yes"], env)
            assert again.code in (ExitCode.OK, ExitCode.ROW_PROBLEMS), again.err
        after = _accepted(fake)
        dials = _dials(project)
    over = {n: c for n, c in after.items() if c > MAX_CALLS}
    assert not over, f"called over max_calls: {over}"
    assert all(after[n] == before[n] for n in maybe)  # maybe called: never again unasked
    rooms = [room for _, room in dials if room]
    assert len(rooms) == len(set(rooms)), "a call in dials twice"
    held = Counter(number for number, _ in dials)
    assert all(held[n] == c for n, c in after.items() if n not in maybe)  # one row per call


def test_a_rebuild_then_a_rerun_leave_one_dials_row_per_call(project: Project, cli, fake):
    """A killed redial run whose WAL was partly checkpointed: A's claim survived, B's call did
    not. The rebuild restores both calls from the report; the rerun adopts A's claim without
    a second row for the same call (issue 17 part 4: a NULL-run row and an adopted one)."""
    project.write_sheet(contact_rows(2))
    project.write_campaign(fake.url, extra=REDIAL)
    campaign = str(project.campaign)
    a, b = (r[2] for r in contact_rows(2))
    assert cli(["run", campaign, "--yes"], KEY_ENV).code == ExitCode.OK
    conn = sqlite3.connect(project.ledger)
    with conn:
        conn.execute("UPDATE dials SET outcome = 'no_answer'")
    conn.close()
    _age_calls(project)
    assert cli(["run", campaign, "--yes", "--no-sync"], KEY_ENV).code == ExitCode.OK
    assert len(fake.accepted()) == 4
    conn = sqlite3.connect(project.ledger)
    with conn:  # what a partial checkpoint of the killed run 2 left in the main file
        conn.execute("UPDATE runs SET finished_at = NULL WHERE id = 2")
        conn.execute("DELETE FROM dials WHERE run_id = 2")
        conn.execute("UPDATE calls SET run_id = 1")
        conn.execute(
            "INSERT INTO sending (called_to, row, run_id, started_at) VALUES (?, 1, 2, ?)",
            (a, stamp(datetime.now(UTC))),
        )
    conn.close()

    refused = cli(["run", campaign, "--yes", "--no-sync"], KEY_ENV)
    assert refused.code == ExitCode.INPUT_ERROR and "dialer ledger rebuild" in refused.err
    rebuilt = cli(["ledger", "rebuild", campaign])
    assert rebuilt.code == ExitCode.OK, rebuilt.err
    assert "calls restored from the reports: 2" in rebuilt.out
    again = cli(["run", campaign, "--yes", "--no-sync"], KEY_ENV)
    assert again.code == ExitCode.OK, again.err

    dials = _dials(project)
    assert Counter(n for n, _ in dials) == {a: 2, b: 2}
    assert sorted(room for _, room in dials) == sorted(fake.call_outcomes())
    assert len(fake.accepted()) == 4  # nobody called a third time: the last call is pending


def test_a_newer_unknown_in_a_report_wins_over_an_older_triggered_in_a_rebuild(
    project: Project, cli, fake
):
    """The old ledger (its -wal lost) says A was triggered and is due again; the lost run's
    report says A's redial is `unknown` (maybe placed). The newest evidence wins: A is not
    called again unasked, while B's redial history comes back and B is called a third time."""
    project.write_sheet(contact_rows(2))
    project.write_campaign(fake.url, extra=REDIAL, dispatch="concurrency = 1")
    campaign = str(project.campaign)
    a, b = (r[2] for r in contact_rows(2))
    assert cli(["run", campaign, "--yes"], KEY_ENV).code == ExitCode.OK
    conn = sqlite3.connect(project.ledger)
    with conn:
        conn.execute("UPDATE dials SET outcome = 'no_answer'")
    conn.close()
    _age_calls(project)
    checkpointed = project.ledger.read_bytes()  # the main file, as a lost -wal leaves it
    fake.script("504")  # A's redial: sent, no answer (maybe placed)
    second = cli(["run", campaign, "--yes", "--no-sync"], KEY_ENV)
    assert second.code == ExitCode.ROW_PROBLEMS, second.err
    for suffix in ("-wal", "-shm"):
        project.ledger.with_name(project.ledger.name + suffix).unlink(missing_ok=True)
    project.ledger.write_bytes(checkpointed)

    refused = cli(["validate", campaign])
    assert refused.code == ExitCode.INPUT_ERROR and "dialer ledger rebuild" in refused.err
    rebuilt = cli(["ledger", "rebuild", campaign])
    assert rebuilt.code == ExitCode.OK, rebuilt.err
    assert _statuses(project) == {a: "unknown", b: "triggered"}
    conn = sqlite3.connect(project.ledger)
    with conn:  # B's restored redial: what a sync would read in the logs
        conn.execute("UPDATE dials SET outcome = 'no_answer'")
    conn.close()
    _age_calls(project)
    third = cli(["run", campaign, "--yes", "--no-sync"], KEY_ENV)
    assert third.code in (ExitCode.OK, ExitCode.ROW_PROBLEMS), third.err
    sent = Counter(body["called_to"] for body in fake.accepted())
    assert sent == {a: 1, b: 3}  # A's 504 is not among the accepted: 2 requests, 1 call
    assert len([r for r in fake.received if r.body["called_to"] == a]) == 2


def test_a_redial_refused_402_after_its_claim_is_no_evidence_of_loss(project: Project, cli, fake):
    """A redial claimed, then answered 402 (no call placed, the person still `triggered` from
    the call before): a kill before the journal is emptied leaves its journal line, which the
    ledger accounts for by the run's record of the person, so it is not taken for a lost -wal."""
    project.write_sheet(contact_rows(1))
    project.write_campaign(fake.url, extra=REDIAL)
    campaign = str(project.campaign)
    number = contact_rows(1)[0][2]
    assert cli(["run", campaign, "--yes"], KEY_ENV).code == ExitCode.OK
    conn = sqlite3.connect(project.ledger)
    with conn:
        conn.execute("UPDATE dials SET outcome = 'no_answer'")
    conn.close()
    _age_calls(project)
    fake.script("402")
    stopped = cli(["run", campaign, "--yes", "--no-sync"], KEY_ENV)
    assert stopped.code == ExitCode.INSUFFICIENT_BALANCE, stopped.err
    journal = project.ledger.with_name("test.claims")
    journal.write_text(f"2\t{number}\t1\n", encoding="utf-8")  # as a kill before close leaves it

    checked = cli(["validate", campaign])
    assert checked.code == ExitCode.OK, checked.err


def _killed_after(
    cli_args: list[str], env: dict[str, str], fake: FakeTabblyProcess, n: int
) -> None:
    """A run killed with -9 once the fake has received `n` requests in all."""
    proc = dialer_subprocess(
        cli_args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:

        def reached() -> bool:
            assert proc.poll() is None, f"the run ended before {n} requests"
            return len(fake.state()["received"]) >= n

        wait_for(reached, 60, f"{n} requests at the fake")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    wait_for(
        lambda: all(r["status"] is not None for r in fake.state()["received"]),
        10,
        "answers to the requests in flight at the kill",
    )


def test_a_plain_kill_of_a_run_that_carries_earlier_unknowns_is_no_evidence_of_loss(
    project: Project, cli
):
    """The soak's false alarm: a killed run's report also lists the people an earlier killed
    run left `unknown` (not sent again); counted as this run's own maybe-calls, the next
    command refused the ledger as lost though no file was lost."""
    with FakeTabblyProcess(*NO_ANSWER_FAKE) as fake:
        env, campaign = _redial_campaign(project, fake)
        _killed_after(["run", campaign, "--yes"], env, fake, 3)
        _killed_after(["run", campaign, "--yes"], env, fake, len(fake.state()["received"]) + 3)
        carried = [
            line
            for report in project.reports()
            for line in report.read_text("utf-8").splitlines()
            if ",unknown,earlier run" in line
        ]
        assert carried, "no earlier unknown in the second run's report: nothing tested"
        status = cli(["status", campaign], env)
        assert status.code == ExitCode.OK, status.err
        finished = cli(["run", campaign, "--yes"], env)
        assert finished.code in (ExitCode.OK, ExitCode.ROW_PROBLEMS), finished.err
        over = {n: c for n, c in _accepted(fake).items() if c > MAX_CALLS}
    assert not over, f"called over max_calls: {over}"


def test_a_redials_claim_lost_with_the_wal_is_not_taken_for_the_last_runs_answer(
    project: Project, cli
):
    """The soak's 4th call: a redial run killed unfinished showed P's call 2 in its report; the
    next run claimed P's call 3 and was killed before the answer, and its -wal was lost. The
    rebuild took the journal's claim for call 3 as answered by call 2's row (a report of a run
    the old ledger never saw end), so P was `triggered` with two calls and called a 4th time."""
    slow = (
        "--outcomes",
        "no_answer=1",
        "--latency",
        "1.0",
        "--balance",
        "1000",
        "--log-delay",
        "0",
    )
    with FakeTabblyProcess(*slow) as fake:
        project.write_sheet(contact_rows(2))
        dispatch = "rate_per_second = 20\nconcurrency = 1"
        project.write_campaign(fake.url, extra=REDIAL, dispatch=dispatch)
        env, campaign = _env(fake), str(project.campaign)
        p = contact_rows(2)[0][2]
        assert cli(["run", campaign, "--yes"], env).code == ExitCode.OK
        assert cli(["sync", campaign], env).code == ExitCode.OK
        _age_calls(project)
        # Call 2 of P answered and in the report, Q's request in flight: killed unfinished.
        _killed_after(["run", campaign, "--yes"], env, fake, 4)
        newest = project.reports()[-1].read_text("utf-8")
        assert f",{p},triggered,call 2 of 3" in newest.replace('"', ""), "P's call 2 unreported"
        assert cli(["sync", campaign], env).code == ExitCode.OK
        _age_calls(project)  # and checkpointed: the main file knows run 2
        # Call 3 of P claimed, its request at the fake, no answer yet: killed, -wal lost.
        _killed_after(["run", campaign, "--yes"], env, fake, 5)
        for suffix in ("-wal", "-shm"):
            project.ledger.with_name(project.ledger.name + suffix).unlink(missing_ok=True)
        assert _accepted(fake)[p] == 3

        rebuilt = cli(["ledger", "rebuild", campaign])
        assert rebuilt.code == ExitCode.OK, rebuilt.err
        assert _statuses(project)[p] == "unknown"  # maybe called: never again unasked
        assert Counter(n for n, _ in _dials(project))[p] == 3  # call 3 a maybe-call
        for _ in range(2):
            _age_calls(project)
            again = cli(["run", campaign, "--yes"], env)
            assert again.code in (ExitCode.OK, ExitCode.ROW_PROBLEMS), again.err
        assert _accepted(fake)[p] == 3
