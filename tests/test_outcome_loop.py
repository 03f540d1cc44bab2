"""The whole loop of SPEC 10 through the real CLI: `dialer run` places calls on the fake
Tabbly, the fake logs what became of each (seeded), the next run reads those logs first and
calls again exactly the people whose last call went unanswered, never anyone whose outcome is
unknown. What the fake drew (`fake.logs.calls()`) is the truth every assertion compares to."""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import (
    KEY_ENV,
    CliResult,
    Project,
    contact_rows,
    dialer_subprocess,
    error_lines,
    indian_mobile,
    wait_for,
    wait_for_requests,
)

from dialer.campaign.model import LOGS_ENDPOINT_ENV
from dialer.core.statuses import CallOutcome, ExitCode
from dialer.engine.gate import LOGS_UNREAD
from dialer.fake_tabbly import DEFAULT_API_KEY, FakeTabbly, FakeTabblyThread

# No `failed`: an attempt row ("Not Answered") outranks it, so what the ledger finds for such
# a call is not what the fake drew. Every other outcome, redialed or not, is drawn.
OUTCOMES = {"answered": 0.3, "voicemail": 0.15, "no_answer": 0.35, "busy": 0.2}
REDIALED = {"no_answer", "busy"}
WORDS = {"no_answer": "no answer", "busy": "busy"}
SEED = 11
MAX_CALLS = 3


def _redial(after: float = 0) -> str:
    return (
        '[redial]\noutcomes = ["no_answer", "busy"]\n'
        f"after_minutes = {after}\nmax_calls = {MAX_CALLS}\n"
    )


def _fake(shape: str = "v2", **options: object) -> FakeTabblyThread:
    options = {"outcomes": OUTCOMES, "seed": SEED, **options}
    return FakeTabblyThread(balance=1000, logs_shape=shape, **options)


@pytest.fixture
def fake() -> Iterator[FakeTabbly]:
    with _fake() as server:
        yield server


def _env(fake: FakeTabbly) -> dict[str, str]:
    return {**KEY_ENV, LOGS_ENDPOINT_ENV: fake.logs_url}


def _setup(project: Project, fake: FakeTabbly, n: int, after: float = 0, dispatch: str = ""):
    project.write_sheet(contact_rows(n))
    # One worker: calls are accepted in sheet order, so a seed draws the same outcome per number.
    project.write_campaign(fake.url, extra=_redial(after), dispatch=dispatch or "concurrency = 1")


def _report(project: Project, name: str) -> Path:
    return project.root / "reports" / "test" / f"{name}.csv"


def _run(project: Project, cli, fake: FakeTabbly, name: str, *extra: str) -> CliResult:
    """`dialer run --yes` with its report at a known path; the run must end as runs do."""
    args = ["run", str(project.campaign), "--yes", "--report", str(_report(project, name))]
    result = cli([*args, *extra], _env(fake))
    assert result.code in (ExitCode.OK, ExitCode.ROW_PROBLEMS), (result.code, result.err)
    return result


def _rows(project: Project, name: str) -> dict[str, tuple[str, str]]:
    return {
        r["called_to"]: (r["status"], r["reason"])
        for r in project.report_rows(_report(project, name))
    }


def _last_outcomes(fake: FakeTabbly) -> dict[str, str]:
    """Each number's last call's outcome, as the fake drew it (calls are oldest first)."""
    return {c["called_to"]: c["outcome"] for c in fake.logs.calls()}


def _due(fake: FakeTabbly) -> set[str]:
    return {n for n, outcome in _last_outcomes(fake).items() if outcome in REDIALED}


def _sent_since(fake: FakeTabbly, start: int) -> Counter[str]:
    return Counter(b["called_to"] for b in fake.accepted()[start:])


def _numbers(n: int, start: int = 0) -> set[str]:
    return {indian_mobile(i) for i in range(start, start + n)}


def test_a_run_syncs_first_and_calls_again_exactly_the_unanswered(project: Project, cli, fake):
    _setup(project, fake, 12)
    _run(project, cli, fake, "first")
    truth = _last_outcomes(fake)
    assert set(truth) == _numbers(12)
    assert {"answered", "voicemail"} <= set(truth.values())  # the seed draws every kind
    due = _due(fake)
    assert due

    second = _run(project, cli, fake, "second")

    # Before calling anyone, the run says what the logs told: the fake's draws, counted.
    drawn = Counter(truth.values())
    said = ", ".join(f"{drawn[o]} {o}" for o in CallOutcome if drawn[o])
    assert f"call outcomes synced: {said}; answer rate " in second.out
    assert _sent_since(fake, 12) == Counter(due)  # each unanswered person once, nobody else
    rows = _rows(project, "second")
    for number, outcome in truth.items():
        if number in due:
            assert rows[number] == ("triggered", f"call 2 of 3, last: {WORDS[outcome]}")
        else:  # answered or voicemail: never called again
            assert rows[number][0] == "already_called", rows[number]


def _wait_due(project: Project, cli, n: int) -> None:
    """Until `dialer status` counts `n` people due for a redial (outcomes as last synced)."""
    due = re.compile(rf"\b{n} redial due\b")
    wait_for(lambda: due.search(cli(["status", str(project.campaign)]).out), 60, f"{n} due")


def test_each_calls_outcome_is_read_then_call_3_of_3_and_never_a_fourth(
    project: Project, cli, fake
):
    # 2.4 s between the calls to one person: their log rows name no room, share the
    # participant_identity, and carry a time cut to the second, so calls less than about 2 s
    # apart cannot be told apart (the later one then stays pending: never redialed).
    _setup(project, fake, 12, after=0.04)
    _run(project, cli, fake, "call1")
    for call in (2, 3):
        due = _due(fake)
        assert due, f"the seed leaves nobody for call {call}"
        assert cli(["sync", str(project.campaign)], _env(fake)).code == ExitCode.OK
        _wait_due(project, cli, len(due))
        sent = len(fake.accepted())

        _run(project, cli, fake, f"call{call}")

        assert _sent_since(fake, sent) == Counter(due)
        rows = _rows(project, f"call{call}")
        for number in due:
            assert rows[number][0] == "triggered"
            assert rows[number][1].startswith(f"call {call} of 3, last: "), rows[number]

    assert cli(["sync", str(project.campaign)], _env(fake)).code == ExitCode.OK
    # Every call's own rows found it: the ledger holds what the fake drew, call by call.
    assert _stored_outcomes(project) == fake.call_outcomes()
    sent = len(fake.accepted())
    _run(project, cli, fake, "call4")
    assert len(fake.accepted()) == sent
    calls = Counter(b["called_to"] for b in fake.accepted())
    assert max(calls.values()) == MAX_CALLS
    last, rows = _last_outcomes(fake), _rows(project, "call4")
    for number in (n for n, c in calls.items() if c == MAX_CALLS):
        if last[number] == "answered":
            assert rows[number] == ("already_called", "answered (3 of 3 calls made)")
        else:
            assert rows[number] == ("already_called", f"3 of 3 calls made, last: {last[number]}")


def _stored_outcomes(project: Project) -> dict[str, str | None]:
    conn = sqlite3.connect(project.ledger)
    try:
        return dict(conn.execute("SELECT room_name, outcome FROM dials"))
    finally:
        conn.close()


def _no_key_anywhere(project: Project, *results: CliResult) -> None:
    for result in results:
        assert DEFAULT_API_KEY not in result.out + result.err
    for path in project.root.rglob("*"):  # reports, summaries, the ledger and its WAL
        if path.is_file():
            assert DEFAULT_API_KEY.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("fault", ["error", "echo"])
def test_logs_that_cannot_be_read_redial_nobody_but_new_rows_are_called(
    project: Project, cli, fake, fault: str
):
    _setup(project, fake, 6)
    _run(project, cli, fake, "first")
    synced = cli(["sync", str(project.campaign)], _env(fake))
    assert synced.code == ExitCode.OK, synced.err
    due = _due(fake)
    assert due
    # One more call whose log is not there yet: its pending outcome makes the next run read
    # the logs (a run with every outcome known has nothing to read).
    fake.logs.log_delay = 3600
    late = project.write_sheet(contact_rows(1, start=6), name="late.csv")
    _run(project, cli, fake, "late", "--contacts", str(late), "--no-sync")
    project.write_sheet(contact_rows(8))  # the sheet grows: rows 6 (called) and 7 (new)
    sent = len(fake.accepted())
    fake.script_logs(fault)  # "echo": a 400 whose message holds the key and the URL

    result = _run(project, cli, fake, "unread")

    assert result.code == ExitCode.OK, result.err
    assert fake.logs.pending == 0  # the logs were asked, and refused
    [warning] = error_lines(result.err)
    assert warning.startswith("warning: call logs: ") and "nobody is redialed" in warning
    assert "call outcomes synced" not in result.out
    _no_key_anywhere(project, result)
    assert "api_key" not in result.err
    assert _sent_since(fake, sent) == Counter([indian_mobile(7)])  # the new row only
    rows = _rows(project, "unread")
    for number in due:
        assert rows[number] == ("redial_later", LOGS_UNREAD)
    status, reason = rows[indian_mobile(6)]
    assert status == "redial_later" and "outcome not synced yet" in reason
    assert rows[indian_mobile(7)][0] == "triggered"
    for number in _numbers(6) - due:
        assert rows[number][0] == "already_called"


def test_a_call_without_a_log_row_is_never_redialed_until_its_row_appears(project: Project, cli):
    with _fake(log_delay=3600) as fake:
        _setup(project, fake, 8)
        _run(project, cli, fake, "first")

        waiting = _run(project, cli, fake, "waiting")

        assert "call outcomes synced: " in waiting.out
        assert fake.logs.requests >= 1  # the logs were read: no row for any call yet
        assert len(fake.accepted()) == 8
        for status, reason in _rows(project, "waiting").values():
            assert status == "redial_later" and "outcome not synced yet" in reason
        fake.logs.log_delay = 0  # the rows appear
        due = _due(fake)

        later = _run(project, cli, fake, "later")

        assert "call outcomes synced: " in later.out
        assert due and _sent_since(fake, 8) == Counter(due)
        rows = _rows(project, "later")
        assert {n for n, (s, _) in rows.items() if s == "triggered"} == due


def test_redial_later_rows_go_out_on_the_run_after_the_delay(project: Project, cli, fake):
    # 3 s: the early run, straight after the first, falls inside it even on a loaded machine.
    _setup(project, fake, 8, after=0.05)
    _run(project, cli, fake, "first")

    early = _run(project, cli, fake, "early")

    due = _due(fake)
    assert due and "call outcomes synced: " in early.out
    assert len(fake.accepted()) == 8  # nobody called again before the delay
    rows = _rows(project, "early")
    for number in due:
        status, reason = rows[number]
        assert status == "redial_later" and "; call 2 of 3 due " in reason, rows[number]

    _wait_due(project, cli, len(due))  # what `dialer status` says, not the clock
    later = _run(project, cli, fake, "later")

    assert "call outcomes synced: " in later.out
    assert _sent_since(fake, 8) == Counter(due)
    rows = _rows(project, "later")
    assert {n for n, (s, _) in rows.items() if s == "triggered"} == due


def test_a_kill_in_a_redial_run_leaves_nobody_called_twice_by_it_and_its_rerun(
    project: Project, cli
):
    n = 40
    outcomes = {"answered": 0.1, "no_answer": 0.6, "busy": 0.3}
    with _fake(outcomes=outcomes) as fake:
        _setup(project, fake, n, dispatch="rate_per_second = 50\nconcurrency = 4")
        _run(project, cli, fake, "first")
        assert cli(["sync", str(project.campaign)], _env(fake)).code == ExitCode.OK
        due = _due(fake)
        assert len(due) >= 20
        # The redial run's calls get no log row before the rerun; its answers come slowly.
        fake.logs.log_delay = 3600
        fake.latency = 0.3
        before = len(fake.received)
        report = _report(project, "killed")
        proc = dialer_subprocess(
            ["run", str(project.campaign), "--yes", "--report", str(report)],
            _env(fake),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_requests(fake, before + 6, proc, seconds=60)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        wait_for(lambda: all(r.status is not None for r in fake.received), 10, "in-flight answers")
        killed = {r.body["called_to"] for r in fake.received[before:]}
        assert killed < due  # killed part way through the redials, and only redials
        fake.latency = 0.0
        after_kill = len(fake.accepted())

        rerun = _run(project, cli, fake, "rerun")

        assert "call outcomes synced: " in rerun.out
        third = _sent_since(fake, after_kill)
        assert not set(third) & killed  # the killed run's calls are never placed again
        assert set(third.values()) == {1}
        rows = _rows(project, "rerun")
        unknown = {number for number, (s, _) in rows.items() if s == "unknown"}
        for number in killed:
            status, reason = rows[number]
            assert status == "unknown" or (
                status == "redial_later" and "outcome not synced yet" in reason
            ), rows[number]
        # Everyone due was called again exactly once, or is `unknown` (claimed, maybe called).
        assert set(third) | killed | unknown == due
        assert not set(third) & unknown
        calls = Counter(b["called_to"] for b in fake.accepted())
        assert max(calls.values()) == 2 and {n for n, c in calls.items() if c == 2} <= due


def test_the_dry_run_shows_exactly_whom_the_redial_run_calls(project: Project, cli, fake):
    _setup(project, fake, 10)
    _run(project, cli, fake, "first")
    # The dry run reads no logs: before a sync it cannot know whom the run will call again,
    # and it says so rather than let "redial_later 10" pass for the plan.
    unsynced = cli(["validate", str(project.campaign)])
    assert unsynced.code == ExitCode.OK, unsynced.err
    assert "10 with their last call's outcome not synced yet" in unsynced.out
    assert "`dialer sync`" in unsynced.out
    assert cli(["sync", str(project.campaign)], _env(fake)).code == ExitCode.OK
    due = _due(fake)
    project.write_sheet(contact_rows(12))  # two new rows besides the redials
    dry_report = _report(project, "dry")

    dry = cli(["validate", str(project.campaign), "--report", str(dry_report)])

    assert dry.code == ExitCode.OK, dry.err
    assert f"{len(due)} will be called again (" in dry.out
    assert "not synced yet" not in dry.out
    planned = _rows(project, "dry")
    ready = {n for n, (s, _) in planned.items() if s == "ready"}
    assert ready == due | _numbers(2, start=10)

    _run(project, cli, fake, "redial")

    assert set(_sent_since(fake, 10)) == ready
    done = _rows(project, "redial")
    swap = {"ready": "triggered"}
    assert done == {n: (swap.get(s, s), reason) for n, (s, reason) in planned.items()}


def test_both_logs_shapes_redial_the_same_people(tmp_path: Path, cli):
    redialed = []
    for shape in ("v2", "docs"):
        project = Project(tmp_path / shape)
        with _fake(shape) as fake:
            _setup(project, fake, 12)
            _run(project, cli, fake, "first")
            due = _due(fake)
            _run(project, cli, fake, "second")
            sent = _sent_since(fake, 12)
        assert sent == Counter(due)
        redialed.append((set(sent), _rows(project, "second")))
    assert redialed[0] == redialed[1] and redialed[0][0]
