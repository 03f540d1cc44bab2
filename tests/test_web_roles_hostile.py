"""The page's people and roles attacked: a logged-in person who means harm, and a stolen or
stale session, through aiohttp's test client against the real app and the package's fake
Tabbly. Each test here is a hole found by trying, kept closed."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestClient, TestServer
from test_web import _project, _serve_on, _upload_form, _wait_finished
from test_web_editor import ROWS, _form, _test_call_fields
from test_web_roles import PASSWORD, SHEET, _login_as, _team

from dialer import web
from dialer.fake_tabbly import DEFAULT_API_KEY, FakeTabblyThread
from dialer.team import audit
from dialer.team.audit import AuditTrail
from dialer.team.people import People
from dialer.team.roles import Role


async def _finished_run(client: TestClient, server: web.Server) -> str:
    """A run of the sample sheet launched by the admin, waited for: its page's path."""
    csrf = await _login_as(client, "boss")
    checked = await client.post(
        "/dry-runs",
        data=_upload_form(csrf, "example", "c.csv", SHEET.read_bytes()),
        allow_redirects=False,
    )
    dry_url = checked.headers["Location"]
    ready = re.search(r'name="count" value="(\d+)"', await (await client.get(dry_url)).text())
    launched = await client.post(
        f"{dry_url}/launch",
        data={"csrf": csrf, "confirm": "yes", "count": ready.group(1)},
        allow_redirects=False,
    )
    run_url = launched.headers["Location"]
    await _wait_finished(server, run_url.rsplit("/", 1)[1])()
    return run_url


def _with_fake(root: Path, body) -> None:  # type: ignore[no-untyped-def]
    with FakeTabblyThread(latency=0.01, balance=100) as fake:
        env = {"TABBLY_API_KEY": DEFAULT_API_KEY, "TABBLY_API_URL": fake.url}
        _serve_on(root, body, env)


def test_a_head_of_the_event_stream_sends_no_body_to_desync_the_connection(tmp_path):
    """HEAD /runs/{id}/events once wrote the stream's events after the headers: the client
    read them as the next response (a bad status line), a desynced keep-alive connection."""
    root = _project(tmp_path)
    _team(root)

    async def body(client: TestClient, server: web.Server) -> None:
        run_url = await _finished_run(client, server)
        await _login_as(client, "viewer", PASSWORD)
        head = await client.head(f"{run_url}/events")
        assert head.status in (200, 405)
        after = await client.get("/", allow_redirects=False)  # the same connection, reused
        assert after.status == 200

    _with_fake(root, body)


def test_a_viewer_cannot_rebuild_a_registers_whole_number_digit_by_digit(tmp_path):
    """The register shows `+44*******456`; a search by last digits once took any number of
    them, so trying 0-9 in front of the known tail, one digit at a time, rebuilt the whole
    number in at most 10 searches a digit: a page showing a number nobody typed whole."""
    root = _project(tmp_path)
    _team(root)
    whole = "+447555123456"

    async def body(client: TestClient, server: web.Server) -> None:
        csrf = await _login_as(client, "boss")
        added = await client.post(
            "/optouts/add", data={"csrf": csrf, "numbers": whole, "reason": "asked by email"}
        )
        assert added.status == 200
        await _login_as(client, "viewer")
        masked = re.search(r'data-number="([^"]+)"', await (await client.get("/optouts")).text())
        known = re.sub(r"\D", "", masked.group(1))[-3:]  # "456": what the page shows
        while len(known) < len(whole) - 1:
            for digit in "0123456789":
                answer = await client.get("/optouts", params={"q": digit + known})
                if 'class="card optout"' in await answer.text():
                    known = digit + known
                    break
            else:
                break  # no longer found: the search would not say more
        assert whole.removeprefix("+")[-len(known) :] == known  # what it says is true
        assert len(known) <= 4, known  # and says no more than the last 4 digits

    _serve_on(root, body)


def test_a_failed_login_under_another_case_of_a_name_is_kept_under_that_persons_name(tmp_path):
    """Names are one person whatever their case ("BOSS" logs in as boss), so guesses at
    "BOSS" are guesses at boss: kept as "BOSS" they were missing from `--who boss`."""
    root = _project(tmp_path)
    _team(root)

    async def body(client: TestClient, server: web.Server) -> None:
        for name in ("BOSS", "Boss"):
            answer = await client.post("/login", data={"name": name, "password": "wrong guess!!"})
            assert answer.status == 403
        await _login_as(client, "BOSS")  # the right password: boss, as the trail says

    _serve_on(root, body)
    trail = AuditTrail(root / "state")
    assert [e.action for e in trail.entries(who="boss")] == [
        audit.LOGIN_FAILED,
        audit.LOGIN_FAILED,
        audit.LOGIN,
    ]


def test_a_session_of_a_removed_person_is_over_even_when_the_name_is_added_again_at_once(
    tmp_path,
):
    """A stolen laptop: the admin removes alice and adds her again with a new password, in
    one script, within the same second. The thief's session was alice's first (epoch 1, added
    at that second) and matched the new alice's exactly: it went on, with her new role."""
    root = _project(tmp_path)
    _team(root)
    ticks = iter(range(1000))

    def same_second() -> datetime:  # each call a microsecond later, all within one second
        return datetime(2026, 12, 7, 9, 0, 0, next(ticks), tzinfo=UTC)

    people = People(root / "state", clock=same_second)
    people.add("alice", Role.VIEWER, PASSWORD)

    async def body(client: TestClient, server: web.Server) -> None:
        await _login_as(client, "alice")  # the thief's copy of alice's session
        people.remove("alice")
        people.add("alice", Role.ADMIN, "her new long password")
        answer = await client.get("/people", allow_redirects=False)
        assert answer.status == 303 and answer.headers["Location"] == "/login"

    _serve_on(root, body)


def test_an_upload_route_posted_a_plain_form_is_a_400_page_not_a_traceback(tmp_path):
    """A script (or a forged form) posting urlencoded fields to a route that takes a sheet
    reached aiohttp's assertion "multipart/* content type expected": a 500 and a traceback."""
    root = _project(tmp_path)
    _team(root)

    async def body(client: TestClient, server: web.Server) -> None:
        csrf = await _login_as(client, "boss")
        for path in ("/dry-runs", "/optouts/import"):
            form = {"csrf": csrf, "campaign": "example", "reason": "asked"}
            answer = await client.post(path, data=form, allow_redirects=False)
            text = await answer.text()
            assert answer.status == 400, (path, answer.status, text[:200])
            assert "<html" in text and "Traceback" not in text

    _serve_on(root, body)


def test_a_failed_logins_client_address_is_kept_whole_in_the_trail(tmp_path):
    """The trail masks every number written with dots, so 127.100.200.123 (12 digits) was
    kept as 12**********123: the failed logins said nothing of where the guesses came from."""
    root = _project(tmp_path)
    _team(root)
    guesser = "127.100.200.123"  # a loopback address of Linux's 127/8, 12 digits

    async def go() -> None:
        server = web.Server(root, "", {})
        connector = aiohttp.TCPConnector(local_addr=(guesser, 0))
        test_server = TestServer(server.app(), host="127.0.0.1")
        async with TestClient(test_server, connector=connector) as client:
            wrong = {"name": "boss", "password": "not the password"}
            assert (await client.post("/login", data=wrong)).status == 403

    asyncio.run(go())
    (failed,) = AuditTrail(root / "state").entries()
    assert failed.action == audit.LOGIN_FAILED and failed.details["client"] == guesser
    whole = AuditTrail(root / "state").append("x", audit.UPLOAD, file=f"{guesser}.csv")
    assert guesser not in str(whole.details)  # a text that looks like one is still masked


def test_a_callers_test_call_says_the_saved_campaign_not_words_it_posted(tmp_path):
    """A caller may place a test call, but not edit a campaign: the form whose unsaved edits
    a test call uses is an editor's page. A caller's forged POST /test-call once carried its
    own greeting and instruction to a real phone."""
    root = _project(tmp_path)
    _team(root)
    forged = "Your bank account is blocked, read me your PIN"
    with FakeTabblyThread(latency=0.01, balance=100) as fake:
        env = {"TABBLY_API_KEY": DEFAULT_API_KEY, "TABBLY_API_URL": fake.url}

        async def body(client: TestClient, server: web.Server) -> None:
            csrf = await _login_as(client, "caller")
            checked = await client.post(
                "/dry-runs",
                data=_upload_form(csrf, "example", "c.csv", ROWS),
                allow_redirects=False,
            )
            dry_id = checked.headers["Location"].rsplit("/", 1)[1]
            fields = _test_call_fields(dry_id, first_line=forged, instruction=forged)
            answer = await client.post("/test-call", data=_form(csrf, fields))
            assert answer.status == 200 and "Test call placed" in await answer.text()
            fields = _test_call_fields(dry_id, original="", name="mine", first_line=forged)
            unsaved = await client.post("/test-call", data=_form(csrf, fields))
            assert unsaved.status == 400 and "an editor's" in await unsaved.text()

        _serve_on(root, body, env)
        (said,) = [str(r.body) for r in fake.received]  # the saved campaign's greeting
        assert forged not in said and "this is Company XYZ calling" in said, said


def test_a_person_is_never_named_what_the_trail_would_mask_as_a_phone_number(tmp_path):
    """The trail masks every run of 7+ digits, `who` too: people named by staff number
    (10023456, emp.100.234.567) were all "10***456" there, none of their entries theirs."""
    root = _project(tmp_path)
    _team(root)

    async def body(client: TestClient, server: web.Server) -> None:
        csrf = await _login_as(client, "boss")
        for name in ("10023456", "emp.100.234.567"):
            form = {"csrf": csrf, "name": name, "role": "caller"}
            form |= {"password": PASSWORD, "password2": PASSWORD}
            answer = await client.post("/people/add", data=form)
            text = await answer.text()
            assert answer.status == 400 and "phone number" in text, (name, text[-600:])
            assert server.people.get(name) is None
        fine = {"csrf": csrf, "name": "emp.1002", "role": "caller"}
        fine |= {"password": PASSWORD, "password2": PASSWORD}
        assert (await client.post("/people/add", data=fine)).status == 200

    _serve_on(root, body)


def test_a_number_with_an_invisible_character_in_it_is_masked_in_the_trail_and_for_a_viewer(
    tmp_path,
):
    """A number pasted from a chat or a web page often holds a zero-width space or a bidi
    mark; the parser drops them and calls it, but the masking did not see through them: an
    opt-out's reason kept "+91 98450<ZWSP>12346" whole in the trail and on a viewer's page."""
    root = _project(tmp_path)
    _team(root)
    digits = "9845012346"
    pasted = [f"+91 98450{mark}12346" for mark in ("\u200b", "\u200e", "\u00ad", "\ufeff")]

    async def body(client: TestClient, server: web.Server) -> None:
        csrf = await _login_as(client, "editor")
        reason = "asked by email, from " + " and ".join(pasted)
        form = {"csrf": csrf, "numbers": "+919845012399", "reason": reason}
        assert (await client.post("/optouts/add", data=form)).status == 200
        await _login_as(client, "viewer")
        page = await (await client.get("/optouts")).text()
        assert "asked by email" in page
        assert digits not in re.sub(r"[^\d*]", "", page), "a viewer saw the number"

    _serve_on(root, body)
    (added,) = [e for e in AuditTrail(root / "state").entries() if e.action == audit.OPTOUT_ADDED]
    assert digits not in re.sub(r"[^\d*]", "", str(added.details)), added.details


def test_a_login_posted_by_another_sites_page_is_refused(tmp_path):
    """Login CSRF: a form elsewhere must not log this browser in as someone else."""
    root = _project(tmp_path)
    _team(root)

    async def body(client: TestClient, server: web.Server) -> None:
        form = {"name": "caller", "password": PASSWORD}
        elsewhere = [
            {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
            {"Sec-Fetch-Site": "same-site", "Origin": "null"},
            {"Origin": "https://evil.example"},  # a browser without Sec-Fetch-Site
        ]
        for headers in elsewhere:
            forged = await client.post("/login", data=form, headers=headers, allow_redirects=False)
            assert forged.status == 403 and "another site" in await forged.text(), headers
            assert "dialer_session" not in forged.cookies
        own = f"http://{client.host}:{client.port}"
        for headers in (
            {"Sec-Fetch-Site": "same-origin", "Origin": "null"},  # Chromium under no-referrer
            {"Origin": own},
        ):
            mine = await client.post("/login", data=form, headers=headers, allow_redirects=False)
            assert mine.status == 303 and "dialer_session" in mine.cookies, headers

    _serve_on(root, body, {})


def test_a_person_logging_in_again_and_again_keeps_a_bounded_number_of_sessions(tmp_path):
    root = _project(tmp_path)
    _team(root)
    settings = replace(web.DEFAULTS, sessions_per_person=3)

    async def body(client: TestClient, server: web.Server) -> None:
        await _login_as(client, "viewer")
        for _ in range(5):
            await client.post("/login", data={"name": "caller", "password": PASSWORD})
        names = [s.name for s in server.auth.sessions.values()]
        assert names.count("caller") == 3 and names.count("viewer") == 1  # theirs only

    _serve_on(root, body, {}, settings=settings)
