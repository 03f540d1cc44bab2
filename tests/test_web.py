"""`dialer serve` through aiohttp's test client: login, CSRF, uploads and limits, launch rules."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from conftest import with_pythonpath

from dialer import web
from dialer.fake_tabbly import DEFAULT_API_KEY, FakeTabblyThread

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "correct-horse-battery-staple"
# The page's clock in these tests moves with the wall clock but reads around noon in India
# (06:30 UTC) today: test calls ring only by day in the number's zone, whenever tests run.
_NOW = datetime.now(UTC)
_TO_DAYTIME = _NOW.replace(hour=6, minute=30, second=0, microsecond=0) - _NOW


def daytime() -> datetime:
    return datetime.now(UTC) + _TO_DAYTIME


def _project(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "campaigns").mkdir(parents=True)
    text = (ROOT / "campaigns" / "example.toml").read_text(encoding="utf-8")
    text = text.replace("../sample_data/", f"{ROOT / 'sample_data'}/")
    (root / "campaigns" / "example.toml").write_text(text, encoding="utf-8")
    (root / "campaigns" / "broken.toml").write_text('name = "broken"\nbogus = 1\n')
    return root


def _run(
    tmp_path: Path,
    body: Callable[[TestClient, web.Server], Awaitable[None]],
    env: dict[str, str] | None = None,
    **server_options: Any,
) -> None:
    _serve_on(_project(tmp_path), body, env, **server_options)


def _serve_on(
    root: Path,
    body: Callable[[TestClient, web.Server], Awaitable[None]],
    env: dict[str, str] | None = None,
    token: str = TOKEN,
    **server_options: Any,
) -> None:
    """The real page's app over the project at `root`, on 127.0.0.1, driven by `body`."""
    server_options.setdefault("clock", daytime)
    server = web.Server(root, token, with_pythonpath(env), **server_options)

    async def go() -> None:
        async with TestClient(TestServer(server.app(), host="127.0.0.1")) as client:
            await body(client, server)

    asyncio.run(go())


async def _login(client: TestClient) -> str:
    answer = await client.post("/login", data={"token": TOKEN}, allow_redirects=False)
    assert answer.status == 303
    page = await (await client.get("/")).text()
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


async def _checked(client: TestClient, sheet: bytes) -> tuple[str, str]:
    """Log in and check `sheet` for the example campaign: (csrf token, dry-run id)."""
    csrf = await _login(client)
    checked = await client.post(
        "/dry-runs", data=_upload_form(csrf, "example", "c.csv", sheet), allow_redirects=False
    )
    assert checked.status == 303, await checked.text()
    return csrf, checked.headers["Location"].rsplit("/", 1)[1]


def _upload_form(csrf: str | None, campaign: str, name: str, data: bytes) -> aiohttp.FormData:
    form = aiohttp.FormData()
    if csrf is not None:
        form.add_field("csrf", csrf)
    form.add_field("campaign", campaign)
    form.add_field("sheet", data, filename=name, content_type="application/octet-stream")
    return form


def test_every_page_needs_a_login(tmp_path):
    async def body(client: TestClient, server: web.Server) -> None:
        for path in ("/", "/runs/x", "/dry-runs/x", "/reports/example/x.csv"):
            answer = await client.get(path, allow_redirects=False)
            assert answer.status == 303 and answer.headers["Location"] == "/login", path
        answer = await client.post("/dry-runs", data={"campaign": "example"})
        assert answer.status == 403
        wrong = await client.post("/login", data={"token": "nope"}, allow_redirects=False)
        assert wrong.status == 403 and "Wrong token" in await wrong.text()
        assert "dialer_session" not in {c.key for c in client.session.cookie_jar}

    _run(tmp_path, body)


def test_session_cookie_is_httponly_and_strict(tmp_path):
    async def body(client: TestClient, server: web.Server) -> None:
        answer = await client.post("/login", data={"token": TOKEN}, allow_redirects=False)
        cookie = answer.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        page = await client.get("/")
        assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]

    _run(tmp_path, body)


def test_posts_without_the_csrf_token_are_refused(tmp_path):
    sheet = (ROOT / "sample_data" / "contacts.csv").read_bytes()

    async def body(client: TestClient, server: web.Server) -> None:
        csrf = await _login(client)
        no_token = await client.post(
            "/dry-runs", data=_upload_form(None, "example", "c.csv", sheet)
        )
        assert no_token.status == 403
        bad_token = await client.post(
            "/dry-runs", data=_upload_form("forged", "example", "c.csv", sheet)
        )
        assert bad_token.status == 403
        assert not (server.root / "uploads").exists() or not any(server.uploads.folder.iterdir())
        ok = await client.post(
            "/dry-runs", data=_upload_form(csrf, "example", "c.csv", sheet), allow_redirects=False
        )
        assert ok.status == 303
        dry_id = ok.headers["Location"].rsplit("/", 1)[1]
        launch = await client.post(
            f"/dry-runs/{dry_id}/launch",
            data={"confirm": "yes", "count": "49"},
            allow_redirects=False,
        )
        assert launch.status == 403
        assert server.jobs.runs == {}
        logout = await client.post("/logout", data={}, allow_redirects=False)
        assert logout.status == 403

    _run(tmp_path, body)


def test_upload_is_stored_under_a_server_chosen_name(tmp_path):
    sheet = (ROOT / "sample_data" / "contacts.csv").read_bytes()

    async def body(client: TestClient, server: web.Server) -> None:
        csrf = await _login(client)
        evil = "../../../etc/evil.csv"
        answer = await client.post("/dry-runs", data=_upload_form(csrf, "example", evil, sheet))
        assert answer.status == 200 and "ready" in await answer.text()
        (stored,) = server.uploads.folder.iterdir()
        assert re.fullmatch(r"[0-9a-f]{32}\.csv", stored.name)
        assert not (tmp_path / "etc").exists()

    _run(tmp_path, body)


@pytest.mark.parametrize(
    ("name", "data", "status", "message"),
    [
        ("c.json", b"{}", 400, "Upload a .csv or .xlsx file."),
        ("c.xlsx", b"\x00junk" * 100, 400, "not a valid .xlsx file"),
        ("c.csv", b"", 400, "empty"),
        # A sheet whose columns do not match goes to the column page (test_web_columns).
        ("c.csv", b"\xff\xfep\x00h\x00", 400, "the file is UTF-16 text"),
    ],
)
def test_bad_uploads_get_a_clear_message(tmp_path, name, data, status, message):
    async def body(client: TestClient, server: web.Server) -> None:
        csrf = await _login(client)
        answer = await client.post("/dry-runs", data=_upload_form(csrf, "example", name, data))
        assert answer.status == status
        text = await answer.text()
        assert message in text and "Traceback" not in text
        assert str(server.uploads.folder) not in text  # the server's own file name stays private
        # A refused sheet of phone numbers is not kept on the server.
        assert not server.uploads.folder.exists() or not any(server.uploads.folder.iterdir())

    _run(tmp_path, body)


def test_upload_size_limit(tmp_path):

    async def body(client: TestClient, server: web.Server) -> None:
        csrf = await _login(client)
        answer = await client.post(
            "/dry-runs", data=_upload_form(csrf, "example", "big.csv", b"phone\n" + b"1" * 5000)
        )
        assert answer.status == 413 and "larger than" in await answer.text()
        assert not any(server.uploads.folder.iterdir())

    _run(tmp_path, body, settings=replace(web.DEFAULTS, upload_limit=1000))


def test_unknown_or_broken_campaign_cannot_be_used(tmp_path):
    sheet = (ROOT / "sample_data" / "contacts.csv").read_bytes()

    async def body(client: TestClient, server: web.Server) -> None:
        csrf = await _login(client)
        page = await (await client.get("/")).text()
        assert "unknown key &#39;bogus&#39;" in page  # shown, and disabled
        for name in ("broken", "../campaigns/example", "nope"):
            answer = await client.post("/dry-runs", data=_upload_form(csrf, name, "c.csv", sheet))
            assert answer.status == 400, name

    _run(tmp_path, body)


def _wait_finished(server: web.Server, run_id: str) -> Callable[[], Awaitable[None]]:
    async def wait() -> None:
        for _ in range(600):
            if server.jobs.runs[run_id].finished:
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the run did not finish within 30 s")

    return wait


def test_launch_runs_the_campaign_once_and_refuses_a_second_launch(tmp_path):
    sheet = (ROOT / "sample_data" / "contacts.csv").read_bytes()
    with FakeTabblyThread(latency=0.3, balance=100) as fake:
        env = {
            "TABBLY_API_KEY": DEFAULT_API_KEY,
            "TABBLY_API_URL": fake.url,
            "PATH": "/usr/bin:/bin",
        }

        async def body(client: TestClient, server: web.Server) -> None:
            csrf, dry_id = await _checked(client, sheet)
            page = await (await client.get(f"/dry-runs/{dry_id}")).text()
            assert 'id="ready-count">49<' in page
            unconfirmed = await client.post(
                f"/dry-runs/{dry_id}/launch",
                data={"csrf": csrf, "count": "49"},
                allow_redirects=False,
            )
            assert unconfirmed.status == 303 and "/dry-runs/" in unconfirmed.headers["Location"]
            form = {"csrf": csrf, "confirm": "yes", "count": "49"}
            # Two quick clicks: one run starts, the other is sent to it (or told it runs).
            first, second = await asyncio.gather(
                client.post(f"/dry-runs/{dry_id}/launch", data=form, allow_redirects=False),
                client.post(f"/dry-runs/{dry_id}/launch", data=form, allow_redirects=False),
            )
            run_url = first.headers.get("Location") or second.headers["Location"]
            assert {first.status, second.status} <= {303, 409}
            for answer in (first, second):
                assert answer.status == 409 or answer.headers["Location"] == run_url
            assert len(server.jobs.runs) == 1
            run_id = run_url.rsplit("/", 1)[1]
            await _wait_finished(server, run_id)()
            page = await (await client.get(run_url)).text()  # a reload still shows the run
            assert "Finished" in page
            report = await client.get(f"{run_url}/report.csv")
            assert report.status == 200
            text = await report.text()
            assert text.count(",triggered,") == 49
            xlsx = await client.get(f"{run_url}/report.xlsx")
            assert xlsx.status == 200 and (await xlsx.read())[:2] == b"PK"
            for path in ("/", f"/dry-runs/{dry_id}", run_url):
                assert DEFAULT_API_KEY not in await (await client.get(path)).text()

        _run(tmp_path, body, env)
        sent = [r.body["called_to"] for r in fake.received]
        assert len(sent) == 49 == len(set(sent))


def test_stop_button_stops_the_run_like_ctrl_c(tmp_path):
    sheet = (ROOT / "sample_data" / "contacts.csv").read_bytes()
    with FakeTabblyThread(latency=0.5, balance=100) as fake:
        env = {"TABBLY_API_KEY": DEFAULT_API_KEY, "TABBLY_API_URL": fake.url}
        text = (ROOT / "campaigns" / "example.toml").read_text()

        async def body(client: TestClient, server: web.Server) -> None:
            slow = text.replace("../sample_data/", f"{ROOT / 'sample_data'}/").replace(
                "rate_per_second = 20.0", "rate_per_second = 2.0"
            )
            (server.root / "campaigns" / "example.toml").write_text(slow)
            csrf, dry_id = await _checked(client, sheet)
            started = await client.post(
                f"/dry-runs/{dry_id}/launch",
                data={"csrf": csrf, "confirm": "yes", "count": "49"},
                allow_redirects=False,
            )
            run_url = started.headers["Location"]
            run_id = run_url.rsplit("/", 1)[1]
            for _ in range(400):
                if fake.received:
                    break
                await asyncio.sleep(0.05)
            # Stop asks first: the first press only brings the question.
            asked = await client.post(f"{run_url}/stop", data={"csrf": csrf}, allow_redirects=False)
            assert asked.status == 303 and asked.headers["Location"] == f"{run_url}?stop=ask"
            assert not server.jobs.runs[run_id].stopping
            question = await (await client.get(asked.headers["Location"])).text()
            assert 'id="stop-confirm"' in question and "Stop calling?" in question
            stopped = await client.post(
                f"{run_url}/stop", data={"csrf": csrf, "confirm": "yes"}, allow_redirects=False
            )
            assert stopped.status == 303
            await _wait_finished(server, run_id)()
            assert server.jobs.runs[run_id].exit_code == 130
            report = await (await client.get(f"{run_url}/report.csv")).text()
            assert report.count(",not_attempted,") > 30

        _run(tmp_path, body, env)
        assert len(fake.received) < 20


def test_serve_refuses_a_missing_or_short_token(tmp_path, cli):
    root = _project(tmp_path)
    result = cli(["serve", "--root", str(root), "--port", "0"], env={web.TOKEN_ENV: "short"})
    assert result.code == 2 and web.TOKEN_ENV in result.err
