"""`dialer serve` exposed to a LAN (SPEC 11, last point; issue 9): a launch bound to its check,
throttled logins, small bodies before login, bounded checks and uploads, headers on every
response, and a finished run described from its own counts.

Driven through the real aiohttp app (aiohttp's test client, raw sockets where the client would
refuse to send the abuse) or a real `dialer serve` process, against the package's fake Tabbly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from dialer import web
from dialer.fake_tabbly import DEFAULT_API_KEY, FakeTabblyThread
from dialer.web.auth import LoginThrottle
from tests.test_web import _serve_on

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "correct-horse-battery-staple"
READY = 49  # callable rows of sample_data/contacts.csv
SERVE = (sys.executable, "-m", "dialer", "serve")
BOUND = 30.0  # seconds any wait on a condition may take before the test fails


def _project(tmp_path: Path) -> Path:
    """The example campaign in a folder of its own, with its own copy of the sample data."""
    root = tmp_path / "site"
    (root / "campaigns").mkdir(parents=True)
    shutil.copytree(ROOT / "sample_data", root / "sample_data")
    text = (ROOT / "campaigns" / "example.toml").read_text("utf-8")
    (root / "campaigns" / "example.toml").write_text(text, "utf-8")
    return root


def _run(
    tmp_path: Path,
    body: Callable[[TestClient, web.Server], Awaitable[None]],
    env: dict[str, str] | None = None,
    **server_options: Any,
) -> None:
    _serve_on(_project(tmp_path), body, env, TOKEN, **server_options)


def _sheet() -> bytes:
    return (ROOT / "sample_data" / "contacts.csv").read_bytes()


def _csrf(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


async def _login(client: TestClient) -> str:
    answer = await client.post("/login", data={"token": TOKEN}, allow_redirects=False)
    assert answer.status == 303, answer.status
    return _csrf(await (await client.get("/")).text())


def _form(csrf: str, data: bytes, name: str = "c.csv") -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("csrf", csrf)
    form.add_field("campaign", "example")
    form.add_field("sheet", data, filename=name, content_type="application/octet-stream")
    return form


async def _check(client: TestClient, csrf: str, data: bytes | None = None) -> str:
    """Upload and check a sheet for the example campaign; the check's id."""
    answer = await client.post(
        "/dry-runs", data=_form(csrf, data or _sheet()), allow_redirects=False
    )
    assert answer.status == 303, await answer.text()
    return answer.headers["Location"].rsplit("/", 1)[1]


async def _launch(client: TestClient, csrf: str, dry_id: str) -> aiohttp.ClientResponse:
    return await client.post(
        f"/dry-runs/{dry_id}/launch",
        data={"csrf": csrf, "confirm": "yes", "count": str(READY)},
        allow_redirects=False,
    )


async def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + BOUND
    while not condition():
        assert time.monotonic() < deadline, f"not within {BOUND:.0f} s: {what}"
        await asyncio.sleep(0.05)


def _fake_env(fake: FakeTabblyThread) -> dict[str, str]:
    return {"TABBLY_API_KEY": DEFAULT_API_KEY, "TABBLY_API_URL": fake.url, "PATH": os.defpath}


# ---- 1. a launch is bound to its check ----


@pytest.mark.parametrize("what", ["campaign", "sheet", "do-not-call list"])
def test_a_launch_is_refused_when_what_was_checked_changed(tmp_path, what):
    with FakeTabblyThread(latency=0.01, balance=100) as fake:

        async def body(client: TestClient, server: web.Server) -> None:
            csrf = await _login(client)
            dry_id = await _check(client, csrf)
            page = await (await client.get(f"/dry-runs/{dry_id}")).text()
            assert 'id="launch-form"' in page
            if what == "campaign":
                path = server.root / "campaigns" / "example.toml"
                text = path.read_text("utf-8")
                path.write_text(
                    re.sub(
                        r"(?m)^first_line = .*$",
                        'first_line = "CHANGED AFTER CHECK: your card number, {{ first_name }}."',
                        text,
                    ),
                    "utf-8",
                )
                named = "example.toml"
            elif what == "sheet":
                with open(server.jobs.dry_runs[dry_id].upload, "ab") as f:
                    f.write(b"09999,Extra,Row,+917359099999,ORD-9,2024-03-02,x@example.com,\n")
                named = "the sheet"
            else:
                (server.root / "sample_data" / "dnc.csv").write_text("phone\n")
                named = "dnc.csv"

            refused = await _launch(client, csrf, dry_id)
            text = await refused.text()
            assert refused.status == 409, text
            assert "Not launched, nobody was called." in text
            assert f"Changed since this check: {named}." in text
            assert "check the sheet again" in text
            assert server.jobs.runs == {}
            # The check's own page says so too, and offers no launch.
            page = await (await client.get(f"/dry-runs/{dry_id}")).text()
            assert 'id="stale"' in page and 'id="launch-form"' not in page

        _run(tmp_path, body, _fake_env(fake))
        assert fake.received == []


def test_a_launched_check_launches_once_and_older_checks_go_stale(tmp_path):
    with FakeTabblyThread(latency=0.01, balance=100) as fake:

        async def body(client: TestClient, server: web.Server) -> None:
            csrf = await _login(client)
            first = await _check(client, csrf)
            second = await _check(client, csrf)  # made before the first one ran
            started = await _launch(client, csrf, first)
            assert started.status == 303
            run_url = started.headers["Location"]
            run = server.jobs.runs[run_url.rsplit("/", 1)[1]]
            await _until(lambda: run.finished, "the run finished")
            page = await (await client.get(run_url)).text()
            assert f"Finished. Of the {READY} people in this run: {READY} called." in page

            again = await _launch(client, csrf, first)
            text = await again.text()
            assert again.status == 409, text
            assert "This check was launched already" in text
            page = await (await client.get(f"/dry-runs/{first}")).text()
            assert 'id="launched"' in page and run_url in page
            assert 'id="launch-form"' not in page

            stale = await _launch(client, csrf, second)
            text = await stale.text()
            assert stale.status == 409, text
            assert "Campaign example has run since this check" in text
            assert len(server.jobs.runs) == 1

            # A new check shows who is left (nobody) and so offers no launch.
            third = await _check(client, csrf)
            page = await (await client.get(f"/dry-runs/{third}")).text()
            assert 'id="launch-form"' not in page and "Nobody in this sheet" in page

        _run(tmp_path, body, _fake_env(fake))
        called = [r.body["called_to"] for r in fake.received]
        assert len(called) == READY == len(set(called))


# ---- 6. a finished run is described from its own counts ----


def test_a_run_that_called_nobody_says_who_was_already_called(tmp_path):
    with FakeTabblyThread(latency=0.01, balance=100) as fake:
        env = _fake_env(fake)

        async def body(client: TestClient, server: web.Server) -> None:
            csrf = await _login(client)
            dry_id = await _check(client, csrf)
            # Someone runs the same campaign and sheet from a terminal meanwhile.
            dry = server.jobs.dry_runs[dry_id]
            cli = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "dialer",
                "run",
                str(dry.campaign_path),
                "--contacts",
                str(dry.upload),
                "--yes",
                "--progress",
                "log",
                env={**os.environ, **env},
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            assert await asyncio.wait_for(cli.wait(), BOUND) == 1  # 1: the sheet has invalid rows
            assert len(fake.received) == READY

            started = await _launch(client, csrf, dry_id)
            assert started.status == 303, await started.text()
            run_url = started.headers["Location"]
            run = server.jobs.runs[run_url.rsplit("/", 1)[1]]
            await _until(lambda: run.finished, "the run finished")
            page = await (await client.get(run_url)).text()
            state = re.search(r'id="run-state">([^<]*)<', page).group(1)
            assert state == (
                f"Finished. Of the {READY} people in this run: nobody called, "
                f"{READY} called by an earlier run."
            )
            assert "every row that could be sent was triggered" not in page
            events = await (await client.get(f"{run_url}/events")).text()
            assert "nobody called" in events

        _run(tmp_path, body, env)
        assert len(fake.received) == READY  # the page's run sent nothing


# ---- 2. logins ----


def test_failed_logins_are_throttled_per_client(tmp_path):
    async def body(client: TestClient, server: web.Server) -> None:
        answers = await asyncio.gather(
            *(
                client.post("/login", data={"token": f"guess-{i}"}, allow_redirects=False)
                for i in range(200)
            )
        )
        statuses = sorted(a.status for a in answers)
        assert statuses.count(403) == 5, statuses
        assert statuses.count(429) == 195
        throttled = next(a for a in answers if a.status == 429)
        assert int(throttled.headers["Retry-After"]) >= 1
        assert "Too many wrong tokens" in await throttled.text()
        # While throttled, even the right token is not compared: guessing learns nothing.
        right = await client.post("/login", data={"token": TOKEN}, allow_redirects=False)
        assert right.status == 429
        assert "dialer_session" not in {c.key for c in client.session.cookie_jar}

    _run(tmp_path, body)


def test_failed_logins_are_throttled_overall():
    """Many addresses (one guess each) exhaust the overall bucket; the real user then waits."""
    throttle = LoginThrottle(per_client=(5, 1 / 6), overall=(30, 1.0))
    start = time.monotonic()
    for i in range(30):
        client = throttle.client_key(f"10.0.{i // 250}.{i % 250}")
        assert throttle.retry_after(client, start) == 0
        throttle.failed(client, start)
    fresh = throttle.client_key("192.168.1.7")
    assert throttle.retry_after(fresh, start) > 0
    assert throttle.retry_after(fresh, start + 1.0) == 0  # refills at one a second
    # IPv6: one /64 is one client.
    a = throttle.client_key("2001:db8::1")
    assert a == throttle.client_key("2001:db8::ffff:1") != throttle.client_key("2001:db9::1")


@pytest.mark.parametrize("token", ["0123456789abcdef", "x" * 23])
def test_a_token_shorter_than_24_characters_is_refused_whatever_the_host(tmp_path, token):
    root = _project(tmp_path)
    try:
        done = subprocess.run(
            [*SERVE, "--root", str(root), "--host", "0.0.0.0", "--port", "0"],
            env={**os.environ, "DIALER_UI_TOKEN": token},
            capture_output=True,
            text=True,
            timeout=BOUND,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"dialer serve started with a {len(token)}-character token")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "at least 24 characters" in lines[0], done.stderr
    assert token not in done.stderr


# ---- 3. bodies before login are small ----


async def _raw_status(port: int, request: bytes) -> int:
    """Send `request` (headers and the start of a body) and read the status line, without
    sending the rest: an answer proves the server judged the body before reading it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), BOUND)
        return int(line.split()[1])
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def _post(
    path: str, length: int, cookie: str = "", kind: str = "application/x-www-form-urlencoded"
) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {kind}\r\n"
        f"Content-Length: {length}\r\n" + (f"Cookie: {cookie}\r\n" if cookie else "") + "\r\n"
    )
    return head.encode() + b"token=" + b"x" * 1000


def test_request_bodies_are_judged_before_they_are_read(tmp_path):
    big = 50 * 1024 * 1024

    async def body(client: TestClient, server: web.Server) -> None:
        port = client.server.port
        # Before login: a 50 MB login form or upload is refused at once.
        assert await _raw_status(port, _post("/login", big)) == 413
        assert (
            await _raw_status(port, _post("/dry-runs", big, kind="multipart/form-data; boundary=b"))
            == 413
        )
        # A body with no declared length stops at the small limit while being read.
        chunked = await client.post(
            "/login",
            data=_chunks(b"token=" + b"x" * (200 * 1024)),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert chunked.status == 413
        # After login too, every route but the upload keeps the small limit.
        await _login(client)
        cookie = "; ".join(f"{c.key}={c.value}" for c in client.session.cookie_jar)
        assert await _raw_status(port, _post("/logout", big, cookie)) == 413
        assert await _raw_status(port, _post("/dry-runs/x/launch", 100 * 1024, cookie)) == 413
        # ... and the upload route accepts a sheet far above it.
        csrf = _csrf(await (await client.get("/")).text())
        header = _sheet().splitlines(keepends=True)[0]
        sheet = header + b"".join(
            b"%05d,Name,Last,+9173%08d,ORD-%d,2024-03-02,c@example.com,Asia/Kolkata\n" % (i, i, i)
            for i in range(3000)
        )
        assert len(sheet) > 2 * web.DEFAULTS.small_body
        await _check(client, csrf, sheet)

    _run(tmp_path, body)


async def _chunks(data: bytes, gate: asyncio.Event | None = None) -> AsyncIterator[bytes]:
    """A body sent chunked (no Content-Length); with `gate`, its last chunk waits for it."""
    half = len(data) // 2
    yield data[:half]
    if gate is not None:
        await gate.wait()
    yield data[half:]


# ---- 4. checks and uploads ----


def _raw_form(csrf: str, filename: bytes, data: bytes) -> tuple[bytes, str]:
    b = "dialerboundary"
    body = (
        f'--{b}\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n{csrf}\r\n'
        f'--{b}\r\nContent-Disposition: form-data; name="campaign"\r\n\r\nexample\r\n'
        f'--{b}\r\nContent-Disposition: form-data; name="sheet"; '
    ).encode()
    body += filename + b"\r\nContent-Type: text/csv\r\n\r\n" + data + f"\r\n--{b}--\r\n".encode()
    return body, f"multipart/form-data; boundary={b}"


def test_at_most_two_checks_run_at_once(tmp_path):
    async def body(client: TestClient, server: web.Server) -> None:
        csrf = await _login(client)
        gate = asyncio.Event()
        form, kind = _raw_form(csrf, b'filename="c.csv"', _sheet())
        held = [
            asyncio.create_task(
                client.post(
                    "/dry-runs",
                    data=_chunks(form, gate),
                    headers={"Content-Type": kind},
                    allow_redirects=False,
                )
            )
            for _ in range(2)
        ]
        uploads = server.uploads.folder
        await _until(
            lambda: uploads.is_dir() and len(list(uploads.iterdir())) == 2,
            "two uploads under way",
        )
        busy = await client.post("/dry-runs", data=_form(csrf, _sheet()), allow_redirects=False)
        text = await busy.text()
        assert busy.status == 503, text
        assert "2 checks are running already: try again in a minute." in text
        assert busy.headers["Retry-After"] == "30"
        gate.set()
        for answer in await asyncio.gather(*held):
            assert answer.status == 303, await answer.text()
        # Slots are given back: a check now goes through.
        await _check(client, csrf)

    _run(tmp_path, body)


def test_a_check_runs_with_bounded_memory(tmp_path):

    async def body(client: TestClient, server: web.Server) -> None:
        csrf = await _login(client)
        answer = await client.post("/dry-runs", data=_form(csrf, _sheet()))
        text = await answer.text()
        assert answer.status == 400, text
        assert "checking this sheet needs more than 12 MB of memory" in text
        assert not any(server.uploads.folder.iterdir())  # the refused sheet is not kept

    # A cap no check fits in, whatever the imports weigh: 12 MB is less than the interpreter
    # and dialer's modules need before the first row.
    _run(tmp_path, body, settings=replace(web.DEFAULTS, check_memory=12 * 1024 * 1024))


def test_uploads_are_deleted_after_seven_days_and_capped_in_total(tmp_path):
    sheet = _sheet()
    day = 24 * 3600

    async def body(client: TestClient, server: web.Server) -> None:
        csrf = await _login(client)
        earlier = await _check(client, csrf)
        earlier_upload = server.jobs.dry_runs[earlier].upload
        now = time.time()
        os.utime(earlier_upload, (now - 3 * day, now - 3 * day))
        old = server.uploads.folder / ("a" * 32 + ".csv")
        old.write_bytes(b"phone\n")
        os.utime(old, (now - 8 * day, now - 8 * day))
        recent = server.uploads.folder / ("b" * 32 + ".xlsx")
        recent.write_bytes(b"x" * 1000)
        os.utime(recent, (now - 1 * day, now - 1 * day))
        foreign = server.uploads.folder / "notes.txt"  # not the server's: never touched
        foreign.write_bytes(b"keep")
        os.utime(foreign, (now - 30 * day, now - 30 * day))

        latest = await _check(client, csrf)
        assert not old.exists()  # more than 7 days old
        assert not earlier_upload.exists()  # the oldest, over the cap
        assert recent.exists() and foreign.exists()
        assert server.jobs.dry_runs[latest].upload.exists()
        # The check whose sheet was deleted is gone; its id no longer launches anything.
        refused = await _launch(client, csrf, earlier)
        assert refused.status == 404
        assert server.jobs.runs == {}

    # Room for the new sheet and one more (the first check is alone, under it): oldest first.
    _run(tmp_path, body, settings=replace(web.DEFAULTS, uploads_max_bytes=2 * len(sheet) + 500))


def test_a_check_whose_sheet_was_deleted_cannot_be_launched(tmp_path):
    async def body(client: TestClient, server: web.Server) -> None:
        csrf = await _login(client)
        dry_id = await _check(client, csrf)
        server.jobs.dry_runs[dry_id].upload.unlink()
        refused = await _launch(client, csrf, dry_id)
        text = await refused.text()
        assert refused.status == 409, text
        assert "The sheet of this check was deleted" in text and server.jobs.runs == {}

    _run(tmp_path, body)


@pytest.mark.parametrize(
    ("filename", "message"),
    [
        (b'filename="a\x00b.csv"', "The upload could not be read"),
        (b"filename*=utf-8''a%00b.csv", "The file name has control characters"),
        (b"filename*=utf-8''a%0Ab.csv", "The file name has control characters"),
    ],
)
def test_an_upload_name_with_a_nul_byte_is_a_clean_400(tmp_path, caplog, filename, message):
    async def body(client: TestClient, server: web.Server) -> None:
        csrf = await _login(client)
        data, kind = _raw_form(csrf, filename, _sheet())
        with caplog.at_level(logging.ERROR):
            answer = await client.post("/dry-runs", data=data, headers={"Content-Type": kind})
        text = await answer.text()
        assert answer.status == 400, text
        assert message in text and "Traceback" not in text
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert not server.uploads.folder.exists() or not any(server.uploads.folder.iterdir())

    _run(tmp_path, body)


# ---- 5. headers on every response; Secure cookie behind HTTPS ----


def _assert_guarded(answer: aiohttp.ClientResponse, what: str) -> None:
    csp = answer.headers.get("Content-Security-Policy", "")
    for directive in ("form-action 'self'", "base-uri 'none'", "frame-ancestors 'none'"):
        assert directive in csp, (what, answer.status, csp)
    assert answer.headers.get("X-Content-Type-Options") == "nosniff", what
    assert answer.headers.get("Cache-Control") == "no-store", what


def test_every_response_carries_csp_nosniff_and_no_store(tmp_path):
    with FakeTabblyThread(latency=0.01, balance=100) as fake:

        async def body(client: TestClient, server: web.Server) -> None:
            get = client.get
            _assert_guarded(await get("/login"), "login page")
            _assert_guarded(await get("/app.js"), "static file")
            _assert_guarded(await get("/", allow_redirects=False), "redirect to login")
            _assert_guarded(await get("/no/such/page"), "404")
            _assert_guarded(await client.post("/dry-runs", data={}), "403 before login")
            _assert_guarded(await client.post("/login", data={"token": "no"}), "wrong token")
            big = await client.post("/login", data=b"x" * (100 * 1024))
            assert big.status == 413
            _assert_guarded(big, "413")
            csrf = await _login(client)
            _assert_guarded(await get("/"), "index")
            _assert_guarded(await get("/runs/nope"), "404 after login")
            _assert_guarded(await client.post("/logout", data={}), "403 bad csrf")
            dry_id = await _check(client, csrf)
            _assert_guarded(await get(f"/dry-runs/{dry_id}"), "check page")
            report = server.jobs.dry_runs[dry_id].report.name
            _assert_guarded(await get(f"/reports/example/{report}"), "check download")
            started = await _launch(client, csrf, dry_id)
            run_url = started.headers["Location"]
            run = server.jobs.runs[run_url.rsplit("/", 1)[1]]
            events = await get(f"{run_url}/events")
            _assert_guarded(events, "event stream")
            await _until(lambda: run.finished, "the run finished")
            for kind in ("csv", "xlsx"):
                download = await get(f"{run_url}/report.{kind}")
                assert download.status == 200
                _assert_guarded(download, f"{kind} report")
            again = await _launch(client, csrf, dry_id)
            assert again.status == 409
            _assert_guarded(again, "409")
            for i in range(6):
                await client.post("/login", data={"token": f"guess-{i}"})
            throttled = await client.post("/login", data={"token": "guess"})
            assert throttled.status == 429
            _assert_guarded(throttled, "429")

        _run(tmp_path, body, _fake_env(fake))


def test_session_cookie_is_secure_only_behind_https(tmp_path):
    async def login_cookie(client: TestClient, server: web.Server) -> None:
        answer = await client.post("/login", data={"token": TOKEN}, allow_redirects=False)
        cookies.append(answer.headers["Set-Cookie"])

    cookies: list[str] = []
    _run(tmp_path / "plain", login_cookie)
    _run(tmp_path / "https", login_cookie, https=True)
    plain, https = cookies
    assert "secure" not in plain.lower()
    assert "Secure" in https and "HttpOnly" in https and "SameSite=Strict" in https


def test_dialer_serve_https_proxy_makes_the_cookie_secure(tmp_path):
    root = _project(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [*SERVE, "--root", str(root), "--port", str(port), "--https-proxy"],
        env={**os.environ, "DIALER_UI_TOKEN": TOKEN},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        async def go() -> None:
            deadline = time.monotonic() + BOUND
            async with aiohttp.ClientSession() as session:
                while True:
                    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                    try:
                        answer = await session.post(
                            f"http://127.0.0.1:{port}/login",
                            data={"token": TOKEN},
                            allow_redirects=False,
                        )
                        break
                    except aiohttp.ClientConnectionError:
                        assert time.monotonic() < deadline, "dialer serve did not listen"
                        await asyncio.sleep(0.05)
                assert answer.status == 303
                assert "Secure" in answer.headers["Set-Cookie"]
                _assert_guarded(answer, "login redirect")

        asyncio.run(go())
    finally:
        proc.terminate()
        proc.wait(timeout=BOUND)
