"""Notifications against a hostile receiver and a careless operator (SPEC 13): the URL and
its secret shown nowhere, a receiver that hangs or streams forever never holds a command for
long, a huge Retry-After capped, a broken outbox never changes an exit code."""

from __future__ import annotations

import asyncio
import io
import time
from dataclasses import replace

import pytest
from aiohttp import web
from conftest import KEY_ENV, Project, contact_rows
from hostile import Upstream
from test_notify import FAST, HOOK_ENV, NOTIFY, SECRET, SECRET_ENV, _outbox, _write_one

from dialer.campaign.parse import load_campaign
from dialer.core.statuses import CampaignError, ExitCode
from dialer.fake_tabbly import FakeTabblyThread
from dialer.notify.delivery import deliver_now

HOOK = "https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX"


@pytest.mark.parametrize(
    "table",
    [
        f'notify = "{HOOK}"\n',
        'api_key_env = ["sk-live-XXXXsecretXXXX"]\n',
        f'[notify]\nurl_env = "A"\nevents = ["{HOOK}"]\n',
        f'[notify]\nurl_env = "A"\noutcomes = "{HOOK}"\n',
    ],
)
def test_a_url_pasted_in_the_wrong_key_is_never_shown(project: Project, table: str) -> None:
    project.write_campaign(extra=table)
    with pytest.raises(CampaignError) as caught:
        load_campaign(project.campaign)
    assert "XXXXsecretXXXX" not in str(caught.value)
    assert "notify" in str(caught.value) or "api_key_env" in str(caught.value)


def test_a_url_pasted_as_the_folder_table_is_never_shown(project: Project) -> None:
    project.write_campaign()
    (project.root / "campaigns" / "_notify.toml").write_text(f'notify = "{HOOK}"\n')
    with pytest.raises(CampaignError) as caught:
        load_campaign(project.campaign)
    assert "XXXXsecretXXXX" not in str(caught.value) and "_notify.toml" in str(caught.value)


def test_a_receiver_that_hangs_holds_one_pass_for_one_try_not_one_per_event(
    project: Project,
) -> None:
    """`dialer status` (one pass) over 20 events of a hanging receiver: it must not wait
    20 timeouts; what it did not try stays in the outbox for the next command."""

    async def hang(request: web.Request) -> web.StreamResponse:
        while not server.stopping.is_set():
            await asyncio.sleep(0.02)
        return web.Response()

    project.write_campaign(extra=NOTIFY)
    for _ in range(20):
        _write_one(project)
    quick = replace(FAST, notify_timeout_seconds=0.2)
    with Upstream(hang) as server:
        env = {HOOK_ENV: server.url, SECRET_ENV: SECRET}
        deliver_now(project.root / "state", linger=0.0, environ=env, settings=quick)
        heard = len(server.received)
    rows = _outbox(project)
    assert heard < 20, "one pass waited a timeout for every event"
    assert sum(r["tries"] == 0 for r in rows) >= 20 - heard


def test_a_receiver_that_streams_forever_is_delivered_and_let_go(project: Project) -> None:
    async def stream(request: web.Request) -> web.StreamResponse:
        answer = web.StreamResponse(status=200)
        await answer.prepare(request)
        while not server.stopping.is_set():
            await answer.write(b"x" * 65536)
            await asyncio.sleep(0.01)
        return answer

    project.write_campaign(extra=NOTIFY)
    _write_one(project)
    err = io.StringIO()
    with Upstream(stream) as server:
        env = {HOOK_ENV: server.url, SECRET_ENV: SECRET}
        tally = deliver_now(project.root / "state", linger=5, environ=env, settings=FAST, err=err)
    assert tally.delivered == 1 and len(server.received) == 1
    [row] = _outbox(project)
    assert row["state"] == "delivered"


def test_a_huge_retry_after_is_capped_and_the_command_goes(project: Project) -> None:
    async def busy(request: web.Request) -> web.StreamResponse:
        return web.Response(status=429, headers={"Retry-After": "999999999"})

    project.write_campaign(extra=NOTIFY)
    _write_one(project)
    settings = replace(FAST, notify_backoff_max=160.0)
    with Upstream(busy) as server:
        env = {HOOK_ENV: server.url, SECRET_ENV: SECRET}
        deliver_now(project.root / "state", linger=0.5, environ=env, settings=settings)
    [row] = _outbox(project)
    assert row["state"] == "pending" and row["tries"] == 1
    assert float(str(row["next_at"])) <= time.time() + 161


def test_credentials_in_the_url_reach_no_line_and_no_row(project: Project) -> None:
    """A URL holding user:password@ to a port nobody listens on, and to a receiver that
    redirects with a Location naming it: neither the password nor the path is shown."""

    async def moved(request: web.Request) -> web.StreamResponse:
        return web.Response(status=308, headers={"Location": request.url.human_repr()})

    project.write_campaign(extra=NOTIFY)
    with Upstream(moved) as server:
        port = server.url.split(":")[2].split("/")[0]
        for url in (
            f"http://ops:pa55word@127.0.0.1:{port}/hook/XXXXsecretXXXX",
            "http://ops:pa55word@127.0.0.1:1/hook/XXXXsecretXXXX",
            "http://ops:pa55word@[::1:/hook/XXXXsecretXXXX",
        ):
            _write_one(project)
            err = io.StringIO()
            env = {HOOK_ENV: url, SECRET_ENV: SECRET}
            deliver_now(project.root / "state", linger=0.2, environ=env, settings=FAST, err=err)
            said = err.getvalue() + repr(_outbox(project))
            assert "pa55word" not in said and "XXXXsecretXXXX" not in said, said
            assert SECRET not in said
            assert "127.0.0.1" not in said and f":{port}" not in said  # nor its host


@pytest.mark.parametrize("damage", ["garbage", "directory"])
def test_a_broken_outbox_never_changes_a_run_exit_code(project: Project, cli, damage: str):
    outbox = project.root / "state" / "outbox.sqlite"
    outbox.parent.mkdir(parents=True, exist_ok=True)
    if damage == "directory":
        outbox.mkdir()
    elif damage == "garbage":
        outbox.write_bytes(b"not a database at all, just words\n" * 100)
    with FakeTabblyThread(balance=1000) as fake:
        project.write_sheet(contact_rows(2))
        project.write_campaign(fake.url, extra=NOTIFY)
        env = {**KEY_ENV, HOOK_ENV: "http://127.0.0.1:1/x", SECRET_ENV: SECRET}
        result = cli(["run", str(project.campaign), "--yes"], env)
        status = cli(["status", str(project.campaign)], env)
    assert result.code == ExitCode.OK and len(fake.received) == 2, result.err
    assert status.code == ExitCode.OK, status.err
    assert "Traceback" not in result.err + status.err
    assert next(x for x in result.err.splitlines() if "notif" in x).startswith("warning: ")


@pytest.mark.parametrize("status", [401, 400, 402, 500])
def test_a_tabbly_that_echoes_the_key_puts_it_in_no_event(project: Project, cli, status: int):
    """Tabbly's refusal quoting the key it was sent: the run's event (its `error` and `text`)
    and the outbox hold none of it."""
    key = KEY_ENV["TABBLY_API_KEY"]

    async def echo(request: web.Request) -> web.StreamResponse:
        sent = (await request.json()).get("api_key", "")
        said = {"message": f"invalid api_key {sent}", "error": sent, "detail": sent[:20]}
        return web.json_response(said, status=status)

    with Upstream(echo) as tabbly:
        project.write_sheet(contact_rows(2))
        project.write_campaign(tabbly.url, extra=f'[notify]\nurl_env = "{HOOK_ENV}"\n')
        result = cli(["run", str(project.campaign), "--yes"], {**KEY_ENV, HOOK_ENV: "x"})
    rows = repr(_outbox(project))
    assert '"event"' in rows, result.err
    assert key not in rows and key[:20] not in rows, rows
    assert key not in result.err + result.out


def test_serve_says_a_broken_outbox_once_not_every_pass(project: Project) -> None:
    """`dialer serve` looks every 5 seconds with one `warned` set: a damaged outbox is one
    warning, not 17,280 a day."""
    outbox = project.root / "state" / "outbox.sqlite"
    outbox.parent.mkdir(parents=True, exist_ok=True)
    outbox.write_bytes(b"not a database at all, just words\n" * 100)
    err, warned = io.StringIO(), set[str]()
    for _ in range(3):
        deliver_now(project.root / "state", linger=0.0, err=err, warned=warned)
    assert len(err.getvalue().splitlines()) == 1, err.getvalue()


def test_an_unusable_secret_gives_its_event_up_and_delivers_the_others(project: Project) -> None:
    """A secret read from an env file that is not UTF-8 (os.environ keeps its bytes as
    surrogates): its event cannot be signed, so it is given up, not left to abort every
    later pass and hold up every event behind it."""
    heard: list[str] = []

    async def ok(request: web.Request) -> web.StreamResponse:
        heard.append(request.headers["X-Dialer-Event-Id"])
        return web.Response()

    bad = "BAD_SECRET"
    project.write_campaign(extra=f'[notify]\nurl_env = "{HOOK_ENV}"\nsecret_env = "{bad}"\n')
    _write_one(project)
    project.write_campaign(extra=NOTIFY)
    _write_one(project)
    err = io.StringIO()
    with Upstream(ok) as server:
        env = {HOOK_ENV: server.url, SECRET_ENV: SECRET, bad: "caf\udce9-secret"}
        for _ in range(2):  # the next command too
            deliver_now(project.root / "state", linger=1.0, environ=env, settings=FAST, err=err)
    rows = {r["secret_env"]: r for r in _outbox(project)}
    assert rows[SECRET_ENV]["state"] == "delivered" and len(heard) == 1, err.getvalue()
    assert rows[bad]["state"] == "given_up" and bad in str(rows[bad]["last_error"])
    assert "caf" not in err.getvalue() + repr(rows)


@pytest.mark.parametrize(
    "url", ["http://hooks..example/x", f"http://{'a' * 64}.example/x", "http://1.2.3.4.5/x"]
)
def test_a_url_aiohttp_cannot_encode_is_given_up_not_a_stuck_pass(project: Project, url: str):
    """Host names the URL check lets through but IDNA or yarl refuse (an empty label, one
    of 64+ characters): given up naming the variable, and the next event still goes."""
    heard: list[str] = []

    async def ok(request: web.Request) -> web.StreamResponse:
        heard.append(request.headers["X-Dialer-Event-Id"])
        return web.Response()

    project.write_campaign(extra='[notify]\nurl_env = "ODD_URL"\n')
    _write_one(project)
    project.write_campaign(extra=NOTIFY)
    _write_one(project)
    err = io.StringIO()
    with Upstream(ok) as server:
        env = {HOOK_ENV: server.url, SECRET_ENV: SECRET, "ODD_URL": url}
        deliver_now(project.root / "state", linger=1.0, environ=env, settings=FAST, err=err)
    rows = {r["url_env"]: r for r in _outbox(project)}
    assert rows[HOOK_ENV]["state"] == "delivered" and len(heard) == 1, err.getvalue()
    assert rows["ODD_URL"]["state"] == "given_up", rows["ODD_URL"]
    assert rows["ODD_URL"]["last_error"] == "ODD_URL is not a valid http(s) URL"
    assert "example" not in err.getvalue() + repr(rows) and "1.2.3.4.5" not in err.getvalue()
