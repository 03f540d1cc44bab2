"""A logged-in user who means harm, and aiohttp's own edges (issue 18, items 12 to 15),
through the page's real routes: a real `Server`, real children, real files, the package's
fake Tabbly or a small aiohttp server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import html
import os
import sys
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from dialer import web
from dialer.campaign.parse import load_campaign
from dialer.campaign.paths import summary_path
from dialer.fake_tabbly import FakeTabblyThread
from dialer.web.headers import SECURITY_HEADERS
from dialer.web.services.job_records import WebRun
from dialer.web.services.schedule_book import Schedules
from tests.test_web_hardening import (
    BOUND,
    TOKEN,
    _check,
    _csrf,
    _fake_env,
    _launch,
    _login,
    _project,
    _run,
    _until,
)
from tests.test_web_schedules import _finished, _schedule, _serve, _soon, _stored, _wall
from tests.test_web_schedules import _form as _sform


class _FormFields(HTMLParser):
    """What a browser submits from the campaign form: its inputs (checked boxes only), text
    areas and the chosen option of each menu."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, list[str]] = {}
        self._in_form = False
        self._text: str | None = None  # the text area being read
        self._select: str | None = None

    def _add(self, name: str | None, value: str) -> None:
        if name:
            self.fields.setdefault(name, []).append(value)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form" and a.get("id") == "campaign-form":
            self._in_form = True
        if not self._in_form:
            return
        if tag == "input" and (a.get("type") not in ("checkbox",) or "checked" in a):
            self._add(a.get("name"), a.get("value") or "")
        elif tag == "textarea":
            self._text = a.get("name") or ""
            self.fields[self._text] = [""]
        elif tag == "select":
            self._select = a.get("name")
        elif tag == "option" and self._select and "selected" in a:
            self._add(self._select, a.get("value") or "")

    def handle_data(self, data: str) -> None:
        if self._text:
            self.fields[self._text][-1] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False
        elif tag == "textarea":
            if self._text:  # a browser drops the one newline right after <textarea>
                self.fields[self._text][-1] = self.fields[self._text][-1].removeprefix("\n")
            self._text = None
        elif tag == "select":
            self._select = None


def _editor_fields(page: str) -> dict[str, list[str]]:
    parser = _FormFields()
    parser.feed(page)
    return {k: v for k, v in parser.fields.items() if k != "csrf"}


_csrf_of = _csrf
ROWS = (
    b"customer_id,first_name,phone,order_id,order_date\n"
    b"C1,Asha,+917359043943,O1,May 1\nC2,Ravi,+917359043944,O2,May 2\n"
)


async def _checked_here(client: TestClient) -> tuple[str, str]:
    """Log in and check ROWS for the example campaign: (csrf token, check id)."""
    csrf = await _login(client)
    return csrf, await _check(client, csrf, ROWS)


def _pairs(csrf: str, fields: dict[str, Any]) -> list[tuple[str, str]]:
    pairs = [("csrf", csrf)]
    for key, value in fields.items():
        pairs += [(key, v) for v in (value if isinstance(value, list) else [value])]
    return pairs


async def _raw_answer(port: int, request: bytes) -> tuple[int, dict[str, str]]:
    """Send raw bytes; the status and headers of the answer (names lower-cased)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        status = int((await asyncio.wait_for(reader.readline(), BOUND)).split()[1])
        headers: dict[str, str] = {}
        while (line := await asyncio.wait_for(reader.readline(), BOUND)).strip():
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        return status, headers
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


# ---- 15 (d): aiohttp's own 400s ----


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",  # no request line
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",  # a header without a colon
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 20_000 + b"\r\n\r\n",  # too long
        b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",  # a NUL in the target
    ],
    ids=["request-line", "header", "long-header", "nul"],
)
def test_aiohttps_own_400s_carry_the_security_headers(tmp_path, request_bytes):
    async def body(client: TestClient, server: web.Server) -> None:
        status, headers = await _raw_answer(client.port, request_bytes)
        assert 400 <= status < 500, status
        for name, value in SECURITY_HEADERS.items():
            assert headers.get(name.lower()) == value, (name, status, headers)

    _run(tmp_path, body)


# ---- 15 (a): the event stream after logout ----


@contextlib.asynccontextmanager
async def _endless_run(server: web.Server, folder: Path) -> AsyncIterator[WebRun]:
    """A run that never ends by itself, known to the page as "r1"."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sys; sys.stdin.read()", stdin=asyncio.subprocess.PIPE
    )
    run = WebRun(
        id="r1",
        campaign="example",
        report=folder / "r.csv",
        proc=proc,
        started="2026-01-01 00:00:00",
        upload=folder / "u.csv",
        messages=deque(),
        total=5,
    )
    server.jobs.runs[run.id] = run
    try:
        yield run
    finally:
        proc.kill()
        await proc.wait()


def test_the_event_stream_ends_once_its_session_is_logged_out(tmp_path):
    async def body(client: TestClient, server: web.Server) -> None:
        async with _endless_run(server, tmp_path):
            csrf = await _login(client)
            stream = await client.get("/runs/r1/events")
            assert b"event: progress" in await stream.content.readline()
            out = await client.post("/logout", data={"csrf": csrf}, allow_redirects=False)
            assert out.status == 303
            # The stream ends (end of body) instead of sending the run's view every second.
            await asyncio.wait_for(stream.content.read(), BOUND)
            assert stream.content.at_eof()
            again = await client.get("/runs/r1/events", allow_redirects=False)
            assert again.status == 303  # and a new one is refused like any page

    _run(tmp_path, body, settings=replace(web.DEFAULTS, events_every=0.05))


# ---- 15 (c): /agents asked for many organisations ----


def test_agents_of_many_organisations_are_throttled_per_session_and_cached(tmp_path):
    capacity = int(web.DEFAULTS.agents_per_session[0])
    with FakeTabblyThread() as fake:

        async def body(client: TestClient, server: web.Server) -> None:
            await _login(client)
            answers = [
                await client.get("/agents", params={"organization_id": str(244 + i)})
                for i in range(200)
            ]
            refused = [a for a in answers if a.status == 429]
            assert len(refused) == 200 - capacity
            assert all(int(a.headers["Retry-After"]) >= 1 for a in refused)
            assert "type the agent's number" in (await refused[0].json())["problem"]
            assert fake.agents.requests == capacity
            # Answers already had come from the cache, throttled or not.
            again = await client.get("/agents", params={"organization_id": "244"})
            assert again.status == 200 and [a["id"] for a in (await again.json())["agents"]]
            assert fake.agents.requests == capacity

        _run(tmp_path, body, _fake_env(fake))


# ---- 15 (b): the editor never saves over a file changed since it was opened ----


def test_saving_a_form_opened_before_a_hand_edit_is_refused_and_the_edit_kept(tmp_path):
    async def body(client: TestClient, server: web.Server) -> None:
        csrf = await _login(client)
        page = await (await client.get("/campaigns/example/edit")).text()
        fields = _editor_fields(page)
        path = server.root / "campaigns" / "example.toml"
        # Meanwhile an admin adds limits by hand; the form on screen knows nothing of them.
        path.write_text(path.read_text("utf-8") + "\n[limits]\nper_week = 3\n", "utf-8")
        edited = path.read_bytes()
        saved = await client.post(
            "/campaigns/example/edit", data=_pairs(csrf, fields | {"first_line": "Hi"})
        )
        shown = html.unescape(await saved.text())
        assert saved.status == 400 and "changed since you opened it" in shown
        assert path.read_bytes() == edited  # the admin's [limits] are still there
        assert load_campaign(path).limits is not None
        assert not path.with_name("example.toml.bak").exists()
        # Saving the refused page again is still refused: it is the same old form.
        again = await client.post(
            "/campaigns/example/edit",
            data=_pairs(csrf, _editor_fields(await saved.text()) | {"first_line": "Hi"}),
        )
        assert again.status == 400 and path.read_bytes() == edited
        # Opened again, it shows the file as it is now, and saves.
        page = await (await client.get("/campaigns/example/edit")).text()
        saved = await client.post(
            "/campaigns/example/edit",
            data=_pairs(csrf, _editor_fields(page) | {"first_line": "Hi"}),
            allow_redirects=False,
        )
        assert saved.status == 303, await saved.text()
        campaign = load_campaign(path)
        assert campaign.first_line == "Hi" and campaign.limits.per_week == 3

    _run(tmp_path, body)


# ---- 12: a daily schedule never sends what nobody confirmed ----


def test_a_daily_schedule_pauses_when_its_campaign_changes_until_confirmed_again(tmp_path):
    at = _soon()
    daily = {"when": "daily", "time": at.strftime("%H:%M"), "at": "", "sheet": "check"}
    with FakeTabblyThread(latency=0.01, balance=100) as fake:

        async def body(client: TestClient, server: web.Server, book: Schedules) -> None:
            csrf = await _login(client)
            schedule_id = await _schedule(client, csrf, **daily)
            path = server.root / "campaigns" / "example.toml"
            before = path.read_bytes()
            # The greeting edited on the page after scheduling.
            page = await (await client.get("/campaigns/example/edit")).text()
            fields = _editor_fields(page) | {"first_line": "NEW {{ first_name }}"}
            saved = await client.post(
                "/campaigns/example/edit", data=_pairs(csrf, fields), allow_redirects=False
            )
            assert saved.status == 303, await saved.text()
            listing = html.unescape(await (await client.get("/schedules")).text())
            assert "paused: the campaign changed since it was confirmed — check again" in listing
            assert f'id="check-again-{schedule_id}"' in listing
            assert await book.tick(at + timedelta(days=1, minutes=1)) == []
            path.write_bytes(before)  # changed back: still paused until someone confirms
            assert await book.tick(at + timedelta(days=2, minutes=1)) == []
            assert fake.received == [] and server.jobs.runs == {}
            assert _stored(server.root)[schedule_id]["state"] == "paused"
            # Check again, read the new check, confirm: the paused schedule is replaced.
            path.write_text(path.read_text("utf-8").replace("Hello", "Hi there"), "utf-8")
            again = await client.post(
                f"/schedules/{schedule_id}/check", data={"csrf": csrf}, allow_redirects=False
            )
            assert again.status == 303 and again.headers["Location"].endswith(schedule_id)
            dry_id = again.headers["Location"].split("/")[2].split("?")[0]
            check_page = await (await client.get(again.headers["Location"])).text()
            assert f'name="replaces" value="{schedule_id}"' in check_page
            answer = await client.post(
                f"/dry-runs/{dry_id}/schedule",
                data=_sform(csrf, **daily, replaces=schedule_id, count="0"),
                allow_redirects=False,
            )
            assert answer.status == 303, await answer.text()
            (new_id,) = _stored(server.root)
            assert new_id != schedule_id and book.get(schedule_id) is None
            (run_id,) = await book.tick(at + timedelta(days=3, minutes=1))
            await _finished(server, run_id)
            assert {r.body["custom_first_line"].split()[0] for r in fake.received} == {"Hi"}

        _serve(_project(tmp_path), body, _fake_env(fake))


# ---- 14: disk nobody prunes ----


def test_schedules_of_one_sheet_share_one_kept_copy_deleted_with_the_last(tmp_path):
    async def body(client: TestClient, server: web.Server, book: Schedules) -> None:
        csrf = await _login(client)
        ids = [
            await _schedule(client, csrf, at=_wall(_soon() + timedelta(hours=i))) for i in range(3)
        ]
        ids.append(await _schedule(client, csrf, when="daily", time="09:00", at="", sheet="check"))
        kept = server.root / "state" / "schedules"
        assert len(list(kept.iterdir())) == 1  # four schedules, one copy of the sheet
        for schedule_id in ids[:-1]:
            await client.post(f"/schedules/{schedule_id}/remove", data={"csrf": csrf})
            assert len(list(kept.iterdir())) == 1  # still used by the others
        await client.post(f"/schedules/{ids[-1]}/remove", data={"csrf": csrf})
        assert list(kept.iterdir()) == []

    _serve(_project(tmp_path), body, {})


def test_the_pages_check_reports_are_pruned_like_uploads_and_run_reports_kept(tmp_path):
    week = web.DEFAULTS.upload_keep_seconds
    with FakeTabblyThread(latency=0.01, balance=100) as fake:

        async def body(client: TestClient, server: web.Server) -> None:
            csrf = await _login(client)
            launched = await _check(client, csrf)
            started = await _launch(client, csrf, launched)
            run = server.jobs.runs[started.headers["Location"].rsplit("/", 1)[1]]
            await _until(lambda: run.finished, "the run ended")
            old_check = await _check(client, csrf)
            checked = [server.jobs.dry_runs[d].report for d in (launched, old_check)]
            downloaded = await client.get(f"/reports/example/{checked[1].stem}.xlsx")
            assert downloaded.status == 200
            reports = server.root / "reports" / "example"
            files = list(reports.iterdir())
            for path in files:  # all of it over a week old, the run's report too
                os.utime(path, (time.time() - week - 60,) * 2)
            fresh = await _check(client, csrf)  # an upload prunes first
            for report in checked:
                gone = (report, summary_path(report), report.with_suffix(".xlsx"))
                assert not any(p.exists() for p in gone), report
            assert run.report.is_file() and summary_path(run.report).is_file()
            assert server.jobs.dry_runs[fresh].report.is_file()
            page = await client.get(f"/dry-runs/{old_check}")
            assert page.status == 404  # its check is forgotten, never a 500

        _run(tmp_path, body, _fake_env(fake))


# ---- 13: the form's children, bounded; no render in the server's threads ----


def test_a_save_renders_its_templates_in_a_child_never_in_the_server(tmp_path, monkeypatch):
    from dialer.sheets.contacts import Templates

    rendered: list[str] = []
    compile_templates = Templates.compile

    def spied(campaign: Any, *, trial: bool = True, **kwargs: Any) -> Templates:
        if trial:  # a trial render: the only render of a campaign's templates at a save
            rendered.append("here")  # this process: the server
        return compile_templates(campaign, trial=trial, **kwargs)

    monkeypatch.setattr(Templates, "compile", spied)

    async def body(client: TestClient, server: web.Server) -> None:
        csrf = await _login(client)
        page = await (await client.get("/campaigns/example/edit")).text()
        fields = _editor_fields(page) | {"first_line": "Hi {{ first_name }}"}
        saved = await client.post(
            "/campaigns/example/edit", data=_pairs(csrf, fields), allow_redirects=False
        )
        assert saved.status == 303, await saved.text()
        page = await (await client.get("/campaigns/example/edit")).text()
        slow = "{% for a in range(1000) %}{% for b in range(1000) %}{% endfor %}{% endfor %}"
        refused = await client.post(
            "/campaigns/example/edit",
            data=_pairs(csrf, _editor_fields(page) | {"first_line": slow}),
        )
        shown = html.unescape(await refused.text())
        assert refused.status == 400 and "more than 10,000 steps" in shown  # said by the child
        assert (
            load_campaign(server.root / "campaigns" / "example.toml").first_line
            == "Hi {{ first_name }}"
        )
        assert rendered == []

    _run(tmp_path, body)


async def _second_session(client: TestClient) -> tuple[aiohttp.ClientSession, str]:
    """Another logged-in browser on the same page: its own cookie jar and CSRF token."""
    other = aiohttp.ClientSession(
        base_url=str(client.make_url("/")), cookie_jar=aiohttp.CookieJar(unsafe=True)
    )
    await other.post("/login", data={"token": TOKEN}, allow_redirects=False)
    return other, _csrf_of(await (await other.get("/")).text())


def _children_of(client: TestClient) -> Any:
    """The campaign form's queue of children (previews, saves, test calls), found through
    the route that uses it: the test holds its one place as a long preview would."""
    route = next(
        r for r in client.app.router.routes() if r.resource.canonical == "/campaigns/preview"
    )
    return route.handler.__self__.children


def test_previews_are_one_per_session_and_a_full_queue_is_answered_503(tmp_path):
    settings = replace(web.DEFAULTS, previews_at_once=1, previews_waiting=1)

    async def body(client: TestClient, server: web.Server) -> None:
        csrf, dry_id = await _checked_here(client)
        fields = {"original": "example", "preview_sheet": dry_id}

        async def preview(session: Any, token: str, first_line: str) -> aiohttp.ClientResponse:
            data = _pairs(token, fields | {"first_line": first_line})
            return await session.post("/campaigns/preview", data=data)

        warm = await preview(client, csrf, "Hi")  # the sheet's header read, and cached
        assert warm.status == 200
        children = _children_of(client)
        await children.__aenter__()  # every child busy (a slow template, a big sheet)
        others = [await _second_session(client) for _ in range(2)]
        held = True
        try:
            first = asyncio.ensure_future(preview(client, csrf, "One {{ first_name }}"))
            await _until(lambda: children.waiting == 1, "the first preview waits its turn")
            # Two more sessions: the queue has no room left, both are told to come back.
            for session, token in others:
                answer = await asyncio.wait_for(preview(session, token, "Two"), BOUND)
                assert answer.status == 503 and int(answer.headers["Retry-After"]) >= 1
            # The same session types on: its older preview is cancelled and says so; the
            # newer one takes its place in the queue.
            newest = asyncio.ensure_future(preview(client, csrf, "Three {{ first_name }}"))
            old = await asyncio.wait_for(first, BOUND)
            assert old.status == 409 and (await old.json())["superseded"]
            await _until(lambda: children.waiting == 1, "the newest preview waits its turn")
            # A save meanwhile: 503, the form shown again with what was typed, nothing saved.
            page = await (await client.get("/campaigns/example/edit")).text()
            typed = _editor_fields(page) | {"first_line": "Typed {{ first_name }}"}
            path = server.root / "campaigns" / "example.toml"
            before = path.read_bytes()
            saved = await client.post("/campaigns/example/edit", data=_pairs(csrf, typed))
            assert saved.status == 503 and int(saved.headers["Retry-After"]) >= 1
            assert "Typed {{ first_name }}" in html.unescape(await saved.text())
            assert path.read_bytes() == before
            await children.__aexit__(None, None, None)
            held = False
            latest = await asyncio.wait_for(newest, BOUND)
            result = await latest.json()
            assert latest.status == 200 and result["rows"][0]["first_line"] == "Three Asha"
        finally:
            if held:
                await children.__aexit__(None, None, None)
            for session, _ in others:
                await session.close()

    _run(tmp_path, body, settings=settings)
