"""The page's children are bounded (issue 18, item 11): runs and syncs at once across every
campaign (the rest wait in line and the page says "queued, N ahead"), a sync child's memory
capped like a check's, and a campaign made on the page limited to one call a day per person
unless its form says otherwise. A real server, real children, a small upstream on 127.0.0.1
that answers when the test lets it."""

from __future__ import annotations

import asyncio
import html
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp import web as aioweb
from aiohttp.test_utils import TestClient, TestServer

from dialer import web
from dialer.campaign.model import LOGS_ENDPOINT_ENV
from dialer.campaign.parse import load_campaign
from dialer.fake_tabbly import DEFAULT_API_KEY
from dialer.web.services.child_processes import ran_out_of_memory
from dialer.web.views import results
from tests.test_web import _login, _project, _serve_on, _upload_form
from tests.test_web_editor import NEW, ROWS, _form, _value
from tests.test_web_hardening import _until


class Upstream:
    """Trigger-call and call logs on 127.0.0.1: each request waits for `go` (set: at once),
    and how many are under way at most is kept."""

    def __init__(self) -> None:
        self.go = asyncio.Event()
        self.now = 0
        self.most = 0
        self.calls: list[str] = []  # the campaign of each trigger request, in arrival order
        self.logs = 0
        self.on_call: Callable[[str], None] = lambda campaign: None

    async def _held(self) -> None:
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await self.go.wait()
        finally:
            self.now -= 1

    async def trigger(self, request: aioweb.Request) -> aioweb.Response:
        body = await request.json()
        self.calls.append(str(body.get("custom_first_line", "")).split(":")[0])
        self.on_call(self.calls[-1])
        await self._held()
        return aioweb.json_response({"success": True, "room_name": f"room-{len(self.calls)}"})

    async def call_logs(self, request: aioweb.Request) -> aioweb.Response:
        self.logs += 1
        await self._held()
        return aioweb.json_response({"status": "success", "data": [], "total_records": 0})

    def app(self) -> aioweb.Application:
        app = aioweb.Application()
        app.router.add_post("/x/trigger-call", self.trigger)
        app.router.add_get("/x/call-logs-v2", self.call_logs)
        return app


def _two_campaigns(tmp_path: Path) -> Path:
    """`example` and `second`, the same campaign under two names, each greeting by name."""
    root = _project(tmp_path)
    # Calls held by the upstream wait for the test, not for a timeout of the run's own.
    text = (root / "campaigns" / "example.toml").read_text()
    text = text.replace("timeout_seconds = 10", "timeout_seconds = 300")
    for name in ("example", "second"):
        mine = text.replace('name = "example"', f'name = "{name}"').replace(
            'first_line = "Hello', f'first_line = "{name}: Hello'
        )
        (root / "campaigns" / f"{name}.toml").write_text(mine)
    return root


async def _launch(client: TestClient, csrf: str, campaign: str) -> str:
    """Check ROWS for `campaign` and launch it: the run's id."""
    checked = await client.post(
        "/dry-runs", data=_upload_form(csrf, campaign, "c.csv", ROWS), allow_redirects=False
    )
    assert checked.status == 303, await checked.text()
    dry_id = checked.headers["Location"].rsplit("/", 1)[1]
    form = {"csrf": csrf, "confirm": "yes", "count": "2"}
    started = await client.post(f"/dry-runs/{dry_id}/launch", data=form, allow_redirects=False)
    assert started.status == 303, await started.text()
    return started.headers["Location"].rsplit("/", 1)[1]


def _env(upstream: TestServer) -> dict[str, str]:
    return {
        "TABBLY_API_KEY": DEFAULT_API_KEY,
        "TABBLY_API_URL": str(upstream.make_url("/x/trigger-call")),
        LOGS_ENDPOINT_ENV: str(upstream.make_url("/x/call-logs-v2")),
    }


def test_runs_beyond_the_bound_wait_in_line_and_the_page_says_so(tmp_path):
    upstream = Upstream()

    async def body(client: TestClient, server: web.Server) -> None:
        async with TestServer(upstream.app(), host="127.0.0.1") as tabbly:
            server.jobs.environ.update(_env(tabbly))
            csrf = await _login(client)
            first = await _launch(client, csrf, "example")
            first_ended: list[bool] = []  # as each call of the second run arrived

            def on_call(campaign: str) -> None:
                if campaign == "second":
                    first_ended.append(server.jobs.runs[first].finished)

            upstream.on_call = on_call
            await _until(lambda: upstream.calls, "the first run's first call")
            second = await _launch(client, csrf, "second")
            third = await _launch(client, csrf, "example-too")
            page = html.unescape(await (await client.get(f"/runs/{second}")).text())
            assert "queued, 0 ahead" in page
            assert "queued, 1 ahead" in await (await client.get(f"/runs/{third}")).text()
            # Stop pressed on a run in line: it leaves the line, having called nobody.
            await client.post(f"/runs/{third}/stop", data={"csrf": csrf, "confirm": "yes"})
            await _until(lambda: server.jobs.runs[third].finished, "the third run's end")
            assert server.jobs.runs[third].view()["resume"] == 2
            assert set(upstream.calls) == {"example"}
            upstream.go.set()
            for run in (first, second):
                await _until(lambda run=run: server.jobs.runs[run].finished, "the runs' end")
            assert upstream.calls == ["example"] * 2 + ["second"] * 2
            assert first_ended == [True, True]  # the second run began once the first ended

    root = _two_campaigns(tmp_path)
    third = (root / "campaigns" / "example.toml").read_text()
    (root / "campaigns" / "example-too.toml").write_text(
        third.replace('name = "example"', 'name = "example-too"')
    )
    settings = replace(web.DEFAULTS, runs_at_once=1)
    _serve_on(root, body, {"TABBLY_API_KEY": DEFAULT_API_KEY}, settings=settings)


def test_syncs_beyond_the_bound_wait_in_line_and_the_page_says_so(tmp_path):
    upstream = Upstream()

    async def body(client: TestClient, server: web.Server) -> None:
        async with TestServer(upstream.app(), host="127.0.0.1") as tabbly:
            server.jobs.environ.update(_env(tabbly))
            csrf = await _login(client)
            upstream.go.set()  # the calls answer at once
            for campaign in ("example", "second"):
                run = await _launch(client, csrf, campaign)
                await _until(lambda run=run: server.jobs.runs[run].finished, "a run's end")
            upstream.go.clear()  # the call logs answer when the test says so
            upstream.most = 0
            fragment = {"csrf": csrf, "reply": "fragment"}
            first = asyncio.ensure_future(client.post("/campaigns/example/sync", data=fragment))
            await _until(lambda: upstream.logs == 1, "the first sync reading the logs")
            queued = await client.post("/campaigns/second/sync", data=fragment)
            said = html.unescape(await queued.text())
            assert queued.status == 200 and "Reading outcomes is queued, 0 ahead" in said
            assert upstream.logs == 1
            upstream.go.set()
            assert (await first).status == 200
            syncs = client.server.app[results.RESULTS].syncs
            await _until(lambda: not syncs.state("second").running, "the second sync's end")
            assert upstream.logs == 2 and upstream.most == 1

    settings = replace(web.DEFAULTS, syncs_at_once=1)
    _serve_on(_two_campaigns(tmp_path), body, {}, settings=settings)


def test_a_sync_child_has_its_memory_capped_like_a_checks(tmp_path):
    async def body(client: TestClient, server: web.Server) -> None:
        csrf = await _login(client)
        answer = await client.post(
            "/campaigns/example/sync", data={"csrf": csrf, "reply": "fragment"}
        )
        said = html.unescape(await answer.text())
        assert "Reading the call logs needed more than 12 MB of memory" in said, said

    capped = replace(web.DEFAULTS, sync_memory=12 * 1024 * 1024)
    _serve_on(_project(tmp_path), body, {"TABBLY_API_KEY": DEFAULT_API_KEY}, settings=capped)


@pytest.mark.parametrize(
    ("stderr", "returncode", "ran_out"),
    [
        ("dialer: internal error: MemoryError:  (set DIALER_DEBUG=1 for details)", 70, True),
        # CPython's import machinery failing an allocation: seen in CI under the 12 MB cap
        (
            "dialer: internal error: SystemError: <function _find_and_load at 0x7f> returned "
            "NULL without setting an exception (set DIALER_DEBUG=1 for details)",
            70,
            True,
        ),
        ("dialer: internal error: SystemError: error return without exception set", 70, True),
        ("", -9, True),  # killed by a signal
        ("dialer: error: the sheet needs more memory than it has", 2, False),  # our sentence
        ("dialer: internal error: KeyError: 'x' (set DIALER_DEBUG=1 for details)", 70, False),
    ],
)
def test_a_capped_child_that_ran_out_of_memory_is_told_apart_from_other_failures(
    stderr: str, returncode: int, ran_out: bool
) -> None:
    assert ran_out_of_memory(stderr, returncode) is ran_out


def test_a_campaign_made_on_the_page_calls_a_person_once_a_day_unless_its_form_says(tmp_path):
    async def body(client: TestClient, server: web.Server) -> None:
        csrf = await _login(client)
        page = await (await client.get("/campaigns/new")).text()
        assert _value(page, "limits-per-day") == "1"  # shown, and editable
        made = await client.post(
            "/campaigns/new",
            data=_form(csrf, NEW | {"limits_per_day": _value(page, "limits-per-day")}),
            allow_redirects=False,
        )
        assert made.status == 303, await made.text()
        spring = load_campaign(server.root / "campaigns" / "spring.toml")
        assert spring.limits is not None and spring.limits.per_day == 1
        free = NEW | {"name": "autumn", "limits_per_day": ""}
        made = await client.post("/campaigns/new", data=_form(csrf, free), allow_redirects=False)
        assert made.status == 303, await made.text()
        assert load_campaign(server.root / "campaigns" / "autumn.toml").limits is None

    _serve_on(_project(tmp_path), body)
