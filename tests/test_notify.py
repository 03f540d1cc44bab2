"""Notifications (SPEC 13) delivered to a real webhook receiver on 127.0.0.1: one event_id
across retries, a valid signature, the run's exit code untouched; a receiver that was down
gets the event from the next command; a redirect is never followed; a 4xx is given up."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from aiohttp import web
from conftest import KEY_ENV, Project, contact_rows, dialer_subprocess, wait_for
from hostile import Upstream

from dialer.campaign.parse import load_campaign
from dialer.commands.run import IOContext, Run, run
from dialer.core.settings import DEFAULTS
from dialer.core.statuses import ExitCode
from dialer.fake_tabbly import FakeTabblyThread
from dialer.notify.delivery import deliver_now
from dialer.notify.outbox import Outbox

HOOK_ENV, SECRET_ENV = "TEST_HOOK_URL", "TEST_HOOK_SECRET"
SECRET = "s3cret-for-the-test"
NOTIFY = f'[notify]\nurl_env = "{HOOK_ENV}"\nsecret_env = "{SECRET_ENV}"\n'
# Retries in hundredths of a second: the count, not the clock, is what is tested.
FAST = replace(
    DEFAULTS,
    notify_backoff_first=0.01,
    notify_backoff_max=0.05,
    backoff_jitter=0.0,
    notify_linger_seconds=10.0,
)


@dataclass
class Heard:
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, object]:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook that answers each POST with the next of `statuses` (then 200)."""

    statuses: list[int] = field(default_factory=list)
    heard: list[Heard] = field(default_factory=list)
    location: str = ""

    async def answer(self, request: web.Request) -> web.StreamResponse:
        self.heard.append(Heard(dict(request.headers), await request.read()))
        status = self.statuses.pop(0) if self.statuses else 200
        headers = {"Location": self.location} if self.location else None
        return web.Response(status=status, headers=headers)


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, Upstream]]:
    hook = Receiver()
    with Upstream(hook.answer) as server:
        yield hook, server


def _signed(heard: Heard) -> bool:
    expected = "sha256=" + hmac.new(SECRET.encode(), heard.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(heard.headers.get("X-Dialer-Signature", ""), expected)


def _run(project: Project, env: dict[str, str], settings=FAST) -> tuple[int, str]:
    err = io.StringIO()
    code = run(
        Run(load_campaign(project.campaign), yes=True, settings=settings),
        IOContext(out=io.StringIO(), err=err, environ=env),
    )
    return code, err.getvalue()


def _outbox(project: Project) -> list[dict[str, object]]:
    with Outbox.open(project.root / "state") as outbox:
        return outbox.rows()


def test_a_receiver_failing_twice_gets_run_finished_once_signed(project: Project, receiver):
    hook, server = receiver
    hook.statuses = [500, 500]
    with FakeTabblyThread(balance=1000) as fake:
        project.write_sheet(contact_rows(3))
        project.write_campaign(fake.url, extra=NOTIFY)
        env = {**KEY_ENV, HOOK_ENV: server.url, SECRET_ENV: SECRET}
        code, err = _run(project, env)
    assert code == ExitCode.OK  # what the run did decides, not the webhook
    assert len(hook.heard) == 3
    ids = {h.headers["X-Dialer-Event-Id"] for h in hook.heard}
    assert len(ids) == 1 and {h.event["event_id"] for h in hook.heard} == ids
    assert all(_signed(h) for h in hook.heard)
    assert all(h.headers["Content-Type"] == "application/json" for h in hook.heard)
    event = hook.heard[-1].event
    assert event["event"] == "run_finished" and event["campaign"] == "test"
    assert event["exit_code"] == 0 and event["counts"]["triggered"] == 3
    assert event["report"].endswith(".csv") and "/" not in event["report"]
    assert "finished: 3 triggered" in event["text"]
    assert KEY_ENV["TABBLY_API_KEY"] not in hook.heard[-1].body.decode()
    assert "notifications: 1 delivered" in err and server.url not in err
    [row] = _outbox(project)
    assert row["state"] == "delivered" and row["tries"] == 3 and server.url not in str(row)


def test_the_real_cli_run_notifies_a_receiver_that_answers(project: Project, receiver, cli):
    hook, server = receiver
    with FakeTabblyThread(balance=1000) as fake:
        project.write_sheet(contact_rows(2))
        project.write_campaign(fake.url, extra=f'[notify]\nurl_env = "{HOOK_ENV}"\n')
        result = cli(["run", str(project.campaign), "--yes"], {**KEY_ENV, HOOK_ENV: server.url})
    assert result.code == ExitCode.OK, result.err
    [heard] = hook.heard
    assert heard.event["event"] == "run_finished" and "X-Dialer-Signature" not in heard.headers
    assert "notifications: 1 delivered" in result.err


def test_an_empty_wallet_is_its_own_event(project: Project, receiver, cli):
    hook, server = receiver
    with FakeTabblyThread(balance=0.25, cost=0.1) as fake:  # 2 calls fit
        project.write_sheet(contact_rows(4))
        project.write_campaign(fake.url, extra=NOTIFY, dispatch="concurrency = 1")
        env = {**KEY_ENV, HOOK_ENV: server.url, SECRET_ENV: SECRET}
        result = cli(["run", str(project.campaign), "--yes"], env)
    assert result.code == ExitCode.INSUFFICIENT_BALANCE
    [heard] = hook.heard
    assert heard.event["event"] == "wallet_empty" and _signed(heard)
    assert heard.event["close_reason"] == "insufficient_balance"


def test_a_run_that_fails_on_input_is_run_failed_and_keeps_its_code(
    project: Project, receiver, cli
):
    hook, server = receiver
    project.write_sheet(contact_rows(2))
    project.write_campaign("http://127.0.0.1:9/x", extra=f'[notify]\nurl_env = "{HOOK_ENV}"\n')
    result = cli(["run", str(project.campaign), "--yes"], {HOOK_ENV: server.url})  # no key
    assert result.code == ExitCode.INPUT_ERROR
    [heard] = hook.heard
    assert heard.event["event"] == "run_failed" and heard.event["exit_code"] == 2
    assert "TABBLY_API_KEY" in heard.event["error"]


def test_a_command_that_does_not_linger_tries_each_event_once(project: Project):
    """Even when its retry is due at once: the next command (or the page) tries again."""
    with FakeTabblyThread(balance=1000) as fake:
        project.write_sheet(contact_rows(2))
        project.write_campaign(fake.url, extra=NOTIFY)
        env = {**KEY_ENV, HOOK_ENV: "http://127.0.0.1:9/hook", SECRET_ENV: SECRET}
        at_once = replace(
            FAST, notify_backoff_first=0.0, notify_backoff_max=0.0, notify_linger_seconds=0.0
        )
        code, _err = _run(project, env, at_once)
    assert code == ExitCode.OK
    [row] = _outbox(project)
    assert row["state"] == "pending" and row["tries"] == 1


def test_a_receiver_down_during_the_run_gets_the_event_from_the_next_command(project: Project, cli):
    with FakeTabblyThread(balance=1000) as fake:
        project.write_sheet(contact_rows(2))
        project.write_campaign(fake.url, extra=NOTIFY)
        down = "http://127.0.0.1:9/hook"  # the discard port: nothing listens
        env = {**KEY_ENV, HOOK_ENV: down, SECRET_ENV: SECRET}
        code, err = _run(project, env, replace(FAST, notify_linger_seconds=0.0))
    assert code == ExitCode.OK
    assert "notifications" not in err  # nothing delivered nor given up: one line only then
    [row] = _outbox(project)
    assert row["state"] == "pending" and row["tries"] == 1 and "127.0.0.1:9" not in str(row)
    hook = Receiver()
    with Upstream(hook.answer) as server:
        env = {HOOK_ENV: server.url, SECRET_ENV: SECRET}
        status = cli(["status", str(project.campaign)], env)
        again = cli(["status", str(project.campaign)], env)
    left = [
        {k: r[k] for k in ("state", "tries", "next_at", "claimed_until", "last_error")}
        for r in _outbox(project)
    ]
    assert status.code == 0 and "notifications: 1 delivered" in status.err, (left, time.time())
    assert "notifications" not in again.err
    [heard] = hook.heard  # once, though two commands came
    assert heard.event["event"] == "run_finished" and _signed(heard)
    assert heard.headers["X-Dialer-Event-Id"] == row["event_id"]


def test_a_redirect_is_never_followed_and_is_given_up(project: Project, receiver):
    hook, server = receiver
    elsewhere = Receiver()
    with Upstream(elsewhere.answer) as other:
        hook.statuses, hook.location = [302], other.url
        project.write_campaign(extra=NOTIFY)
        _write_one(project)
        err = io.StringIO()
        env = {HOOK_ENV: server.url, SECRET_ENV: SECRET}
        tally = deliver_now(project.root / "state", linger=5, environ=env, settings=FAST, err=err)
    assert elsewhere.heard == [] and len(hook.heard) == 1
    assert tally.given_up == 1 and "answered 302, a redirect (never followed)" in err.getvalue()
    assert other.url not in err.getvalue() and server.url not in err.getvalue()


@pytest.mark.parametrize(("status", "tries"), [(404, 1), (400, 1), (429, 6), (503, 6)])
def test_a_refusal_is_given_up_and_a_busy_receiver_tried_six_times(
    project: Project, receiver, status: int, tries: int
):
    hook, server = receiver
    hook.statuses = [status] * 10
    project.write_campaign(extra=NOTIFY)
    _write_one(project)
    env = {HOOK_ENV: server.url, SECRET_ENV: SECRET}
    err = io.StringIO()
    tally = deliver_now(project.root / "state", linger=5, environ=env, settings=FAST, err=err)
    assert tally.given_up == 1 and len(hook.heard) == tries
    [row] = _outbox(project)
    assert row["state"] == "given_up" and row["tries"] == tries
    assert f"{HOOK_ENV} answered {status}" in row["last_error"]
    assert f"given up (first: run_finished of test: {HOOK_ENV} answered {status}" in err.getvalue()


def test_a_missing_variable_is_one_warning_and_the_event_stays(project: Project, receiver):
    hook, server = receiver
    project.write_campaign(extra=NOTIFY)
    _write_one(project)
    err = io.StringIO()
    tally = deliver_now(
        project.root / "state", linger=5, environ={HOOK_ENV: server.url}, settings=FAST, err=err
    )
    assert hook.heard == [] and tally.delivered == tally.given_up == 0  # never unsigned
    assert (
        err.getvalue()
        == f"warning: notifications: {SECRET_ENV} is not set here; left in the outbox\n"
    )
    [row] = _outbox(project)
    assert row["state"] == "pending" and row["tries"] == 0


def test_two_deliverers_at_once_send_each_event_once(project: Project, receiver):
    import threading

    hook, server = receiver
    project.write_campaign(extra=NOTIFY)
    for _ in range(20):
        _write_one(project)
    env = {HOOK_ENV: server.url, SECRET_ENV: SECRET}
    state = project.root / "state"
    workers = [
        threading.Thread(target=deliver_now, args=(state,), kwargs={"linger": 2, "environ": env})
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    ids = [h.headers["X-Dialer-Event-Id"] for h in hook.heard]
    assert len(ids) == 20 and len(set(ids)) == 20
    wait_for(lambda: all(r["state"] == "delivered" for r in _outbox(project)), 5, "delivered")


def _write_one(project: Project) -> None:
    from datetime import UTC, datetime

    from dialer.notify.events import run_event
    from dialer.notify.notices import enqueue

    campaign = load_campaign(project.campaign)
    entry = run_event(campaign, code=0, summary=None, error=None, now=datetime.now(UTC))
    assert enqueue(project.root / "state", [entry])


def test_no_outbox_is_made_by_a_command_with_nothing_to_tell(project: Project, cli) -> None:
    project.write_campaign()
    assert cli(["status", str(project.campaign)]).code == 0
    assert not Path(project.root / "state" / "outbox.sqlite").exists()


def test_an_outbox_that_cannot_be_written_is_one_warning_and_the_same_exit_code(
    project: Project, cli
) -> None:
    (project.root / "state" / "outbox.sqlite").mkdir(parents=True)  # a folder: no database
    with FakeTabblyThread(balance=1000) as fake:
        project.write_sheet(contact_rows(2))
        project.write_campaign(fake.url, extra=NOTIFY)
        result = cli(["run", str(project.campaign), "--yes"], {**KEY_ENV, HOOK_ENV: "x"})
    assert result.code == ExitCode.OK and len(fake.received) == 2
    [line] = [x for x in result.err.splitlines() if "notif" in x]
    assert line.startswith("warning: notifications not written to ")


def test_stopping_a_run_while_it_delivers_keeps_its_exit_code(project: Project) -> None:
    async def hang(request: web.Request) -> web.StreamResponse:
        heard.append(await request.read())
        while not server.stopping.is_set():
            await asyncio.sleep(0.05)
        return web.Response()

    heard: list[bytes] = []
    with FakeTabblyThread(balance=1000) as fake, Upstream(hang) as server:
        project.write_sheet(contact_rows(2))
        project.write_campaign(fake.url, extra=f'[notify]\nurl_env = "{HOOK_ENV}"\n')
        env = {**KEY_ENV, HOOK_ENV: server.url}
        proc = dialer_subprocess(
            ["run", str(project.campaign), "--yes"],
            env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wait_for(lambda: heard, 30, "the run's event")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == ExitCode.OK, err
    assert "left stays in the outbox" in err and "Traceback" not in err
    [row] = _outbox(project)
    assert row["state"] == "pending"  # the next command sends it again (at least once)
