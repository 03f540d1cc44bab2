"""A hostile or broken upstream (issue 18, items 1, 2, 3, 6, 9): redirects that would carry the
key away, answers without end, answers that trickle, Retry-After dates nobody expected, and the
key echoed in fragments. Each upstream is a small aiohttp app on 127.0.0.1 (`tests.hostile`);
what it received is what the tests assert on."""

from __future__ import annotations

import asyncio
import gzip
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web

from dialer.core.settings import DEFAULTS, Settings
from dialer.core.statuses import ExitCode, LogsError
from dialer.tabbly.agents import AgentsError, fetch_agents
from dialer.tabbly.call_logs import LogsQuery, read_logs
from dialer.tabbly.client import KEY_FRAGMENT_CHARS, Kind, Outcome, Scrubber, Secret, TabblyClient
from dialer.tabbly.client import parse_retry_after as retry_after_of
from tests.conftest import KEY_ENV, Project, contact_rows, dialer_subprocess, error_lines
from tests.hostile import Upstream, stream_forever

OK = {"success": True, "room_name": "room-elsewhere", "participant_identity": "p-elsewhere"}
KEY = "sk-live-ZZTOPSECRET1234abcdEFGH"
_GUARD = 10.0  # seconds a client-level test waits before calling the request endless


async def _ok(request: web.Request) -> web.StreamResponse:
    return web.json_response(OK)


def _post(url: str, settings: Settings = DEFAULTS, timeout: float = 5.0) -> Outcome:
    """One trigger request with the run's client; an endless one fails the test."""

    async def go() -> Outcome:
        async with TabblyClient(url, Secret(KEY), 1, timeout, settings) as client:
            return await asyncio.wait_for(client.post(b"{}"), _GUARD)

    return asyncio.run(go())


def _files_text(project: Project) -> dict[str, str]:
    files = [p for p in project.root.rglob("*") if p.is_file() and "data" not in p.parts]
    return {str(p): p.read_bytes().decode("utf-8", "replace") for p in files}


# ---- 1. no redirect is ever followed ----------------------------------------------------------


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_a_redirect_from_trigger_call_is_a_refusal_and_nothing_reaches_its_location(
    project: Project, cli, code: int
):
    with Upstream(_ok) as sink:

        async def redirect(request: web.Request) -> web.StreamResponse:
            return web.Response(status=code, headers={"Location": sink.url})

        with Upstream(redirect) as upstream:
            project.write_sheet(contact_rows(2))
            project.write_campaign(upstream.url)
            result = cli(["run", str(project.campaign), "--yes"], env=KEY_ENV)

    assert sink.received == []  # neither the key (307/308 re-post) nor a GET (301/302/303)
    assert len(upstream.received) == 2  # refused at once, never retried
    assert result.code == ExitCode.ROW_PROBLEMS, result.err
    rows = project.report_rows()
    assert {r["status"] for r in rows} == {"failed"}
    assert {r["reason"] for r in rows} == {f"refused: HTTP {code} redirect, not followed"}
    assert {r["call_id"] for r in rows} == {""}


def test_a_redirect_from_call_logs_or_get_agents_fails_naming_the_status():
    with Upstream(_ok) as sink:

        async def redirect(request: web.Request) -> web.StreamResponse:
            return web.Response(status=307, headers={"Location": sink.url})

        with Upstream(redirect) as upstream:
            today = datetime.now(UTC).date()
            query = LogsQuery(upstream.url, 244, 33, Secret(KEY), today, today, UTC)

            async def logs() -> None:
                async for _ in read_logs(query):
                    pass

            with pytest.raises(LogsError, match=r"redirect.*not followed \(HTTP 307\)"):
                asyncio.run(logs())
            with pytest.raises(AgentsError, match=r"redirect, not followed \(HTTP 307\)"):
                asyncio.run(fetch_agents(upstream.url, 244, Secret(KEY)))

    assert sink.received == []
    assert len(upstream.received) == 2


# ---- 2. an answer's bytes are bounded, decompressed ---------------------------------------------

SMALL = replace(DEFAULTS, max_answer_bytes=256 * 1024)


def test_an_endless_answer_is_read_to_the_bound_and_the_row_is_unknown():
    def endless(status: int):
        async def answer(request: web.Request) -> web.StreamResponse:
            return await stream_forever(request, upstream, b"x" * 65536, 0.005, status)

        return answer

    with Upstream(endless(200)) as upstream:
        outcome = _post(upstream.url, SMALL)
    assert outcome.kind is Kind.UNKNOWN  # the request left: the call may be placed
    assert "max_answer_bytes" in outcome.reason
    with Upstream(endless(429)) as upstream:
        assert _post(upstream.url, SMALL).kind is Kind.RETRY  # the status says: nothing placed


def test_a_gzip_bomb_is_counted_decompressed():
    bomb = gzip.compress(b"0" * (32 * 1024 * 1024), compresslevel=9)  # 32 MB in ~32 KB

    async def answer(request: web.Request) -> web.StreamResponse:
        return web.Response(body=bomb, headers={"Content-Encoding": "gzip"})

    with Upstream(answer) as upstream:
        outcome = _post(upstream.url, SMALL)
    assert len(bomb) < SMALL.max_answer_bytes
    assert outcome.kind is Kind.UNKNOWN and "max_answer_bytes" in outcome.reason


def test_an_answer_in_an_encoding_not_decoded_keeps_its_status():
    # aiohttp's own decoding failed such an answer before its status could be read.
    def answer(status: int):
        async def serve(request: web.Request) -> web.StreamResponse:
            return web.Response(status=status, body=b"\x00junk", headers={"Content-Encoding": "br"})

        return serve

    with Upstream(answer(429)) as upstream:
        assert _post(upstream.url).kind is Kind.RETRY  # nothing placed: never unknown
    with Upstream(answer(200)) as upstream:
        outcome = _post(upstream.url)
    assert outcome.kind is Kind.UNKNOWN and "unknown encoding" in outcome.reason


def test_a_gzip_bomb_as_a_logs_page_fails_the_sync_at_the_page_bound():
    bomb = gzip.compress(b" " * (16 * 1024 * 1024), compresslevel=9)

    async def answer(request: web.Request) -> web.StreamResponse:
        return web.Response(body=bomb, headers={"Content-Encoding": "gzip"})

    with Upstream(answer) as upstream:
        today = datetime.now(UTC).date()
        query = LogsQuery(upstream.url, 244, 33, Secret(KEY), today, today, UTC)

        async def logs() -> None:
            async for _ in read_logs(query, replace(DEFAULTS, logs_max_page_bytes=1024 * 1024)):
                pass

        with pytest.raises(LogsError, match=r"over 1048576 bytes \(logs_max_page_bytes\)"):
            asyncio.run(logs())


def test_a_run_against_an_endless_answer_ends_with_the_row_unknown(project: Project):
    async def answer(request: web.Request) -> web.StreamResponse:
        return await stream_forever(request, upstream, b"[" * 65536, 0.01)

    with Upstream(answer) as upstream:
        project.write_sheet(contact_rows(1))
        project.write_campaign(upstream.url)
        proc = dialer_subprocess(["run", str(project.campaign), "--yes"], env=KEY_ENV)
        try:
            _, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
            proc.wait()

    assert proc.returncode == ExitCode.ROW_PROBLEMS, err
    [row] = project.report_rows()
    assert row["status"] == "unknown" and "max_answer_bytes" in row["reason"]
    assert len(upstream.received) == 1


# ---- 3. one deadline per request, whatever the bytes do -----------------------------------------


def test_an_answer_trickling_one_byte_at_a_time_ends_at_the_deadline():
    def trickle(status: int):
        async def answer(request: web.Request) -> web.StreamResponse:
            return await stream_forever(request, upstream, b" ", 0.02, status)

        return answer

    with Upstream(trickle(200)) as upstream:
        outcome = _post(upstream.url, timeout=0.3)
    assert outcome.kind is Kind.UNKNOWN and "request deadline" in outcome.reason
    with Upstream(trickle(429)) as upstream:
        late = _post(upstream.url, timeout=0.3)
    assert late.kind is Kind.RETRY and late.http_status == 429  # a 429 is never unknown


def test_a_logs_page_trickling_one_byte_at_a_time_fails_the_sync_at_its_deadline():
    async def answer(request: web.Request) -> web.StreamResponse:
        return await stream_forever(request, upstream, b" ", 0.02)

    quick = replace(
        DEFAULTS, logs_timeout_seconds=0.3, sync_deadline_seconds=1.0, backoff_first=0.01
    )
    with Upstream(answer) as upstream:
        today = datetime.now(UTC).date()
        query = LogsQuery(upstream.url, 244, 33, Secret(KEY), today, today, UTC)

        async def logs() -> None:
            async for _ in read_logs(query, quick):
                pass

        with pytest.raises(LogsError, match=r"no answer within 0\.3 s|not read within 1 s"):
            asyncio.run(asyncio.wait_for(logs(), _GUARD))


def test_a_run_against_trickling_answers_ends_with_its_rows_unknown(project: Project):
    async def answer(request: web.Request) -> web.StreamResponse:
        return await stream_forever(request, upstream, b"{", 0.02)

    with Upstream(answer) as upstream:
        project.write_sheet(contact_rows(3))
        project.write_campaign(upstream.url, dispatch="timeout_seconds = 0.3")
        proc = dialer_subprocess(["run", str(project.campaign), "--yes"], env=KEY_ENV)
        try:
            _, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
            proc.wait()

    assert proc.returncode == ExitCode.ROW_PROBLEMS, err
    rows = project.report_rows()
    assert [r["status"] for r in rows] == ["unknown"] * 3
    assert len(upstream.received) == 3  # never retried: the calls may be placed


# ---- 6. Retry-After, whatever it holds ----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("Wed, 21 Oct 2015 07:28:00 -0000", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 +0000", 0.0),
        ("Fri, 31 Dec 9999 23:59:59 GMT", 300.0),
        ("Fri, 31 Dec 9999 23:59:59 -0000", 300.0),
        ("Mon, 01 Jan 0001 00:00:00 +2359", 0.0),
        ("Thu, 01 Jan 1970 00:00:00 +9999", None),
        ("Thu, 32 Foo 2015 99:99:99 GMT", None),
        ("Wed, 21 Oct 99999999999 07:28:00 GMT", None),
        ("garbage", None),
        ("nan", None),
        ("-nan", None),
        ("inf", 300.0),
        ("-inf", 0.0),
        ("1e999", 300.0),
        ("-1e999", 0.0),
        ("9" * 5000, 300.0),
        ("-30", 0.0),
        ("\x00", None),
        ("²", None),
    ],
)
def test_retry_after_anything_is_seconds_or_none(value: str, seconds: float | None):
    assert retry_after_of(value) == seconds


def test_retry_after_a_date_without_a_zone_is_utc():
    soon = (datetime.now(UTC) + timedelta(seconds=100)).strftime("%a, %d %b %Y %H:%M:%S -0000")
    wait = retry_after_of(soon)
    assert wait is not None and 50 < wait <= 100


def test_a_429_with_a_minus_0000_date_is_retried_then_failed_never_unknown(project: Project, cli):
    async def answer(request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {"error": "slow down"},
            status=429,
            headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 -0000"},
        )

    with Upstream(answer) as upstream:
        project.write_sheet(contact_rows(1))
        project.write_campaign(upstream.url, dispatch="max_attempts = 2")
        result = cli(["run", str(project.campaign), "--yes"], env=KEY_ENV)

    assert result.code == ExitCode.ROW_PROBLEMS, result.err
    [row] = project.report_rows()
    assert row["status"] == "failed" and row["reason"].startswith("429: slow down")
    assert len(upstream.received) == 2
    with sqlite3.connect(project.ledger) as conn:  # a later run sends it: nothing was placed
        [(status, retryable)] = conn.execute("SELECT status, retryable FROM calls").fetchall()
    assert (status, retryable) == ("failed", 1)


# ---- 9. the key in fragments, in URLs, and its length -------------------------------------------


def _fragments(key: str) -> set[str]:
    return {key[i : i + KEY_FRAGMENT_CHARS] for i in range(len(key) - KEY_FRAGMENT_CHARS + 1)}


def test_the_scrubber_removes_every_run_of_eight_characters_of_the_key():
    scrub = Scrubber(Secret(KEY))
    assert scrub(f"invalid api_key {KEY[:20]}..") == "invalid api_key ***.."
    assert scrub(f"a{KEY[5:13]}b {KEY[-9:]}") == "a***b ***"
    assert scrub(f"{KEY[:7]} {KEY[7:14]} {KEY[14:21]}") == f"{KEY[:7]} {KEY[7:14]} {KEY[14:21]}"
    assert scrub(f"{KEY}{KEY[3:30]}") == "******"  # the key, then a run of it
    # Long text: every fragment found, at any offset, and nothing else touched.
    noise = "abcdefgh " * 50_000
    text = noise + KEY[4:12] + noise + KEY[11:29] + noise
    assert scrub(text) == noise + "***" + noise + "***" + noise


def test_a_key_echoed_in_fragments_reaches_no_report_ledger_or_console(project: Project, cli):
    answers = iter(
        [
            web.json_response({"error": f"invalid api_key {KEY[:20]}.."}, status=400),
            web.json_response({"success": True, "room_name": f"room-{KEY[3:15]}"}),
            web.json_response({"message": f"no such key ..{KEY[-12:]}"}, status=504),
        ]
    )

    async def answer(request: web.Request) -> web.StreamResponse:
        return next(answers)

    with Upstream(answer) as upstream:
        project.write_sheet(contact_rows(3))
        project.write_campaign(upstream.url, dispatch="concurrency = 1")
        result = cli(["run", str(project.campaign), "--yes"], env={"TABBLY_API_KEY": KEY})

    assert len(upstream.received) == 3 and result.code == ExitCode.ROW_PROBLEMS, result.err
    assert {r["status"] for r in project.report_rows()} == {"failed", "triggered", "unknown"}
    seen = _files_text(project) | {"stdout": result.out, "stderr": result.err}
    for where, text in seen.items():
        for fragment in _fragments(KEY):
            assert fragment not in text, f"{fragment!r} of the key is in {where}"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://user:SECRETPASS@127.0.0.1/x",
        "http://127.0.0.1:99999/x?api_key=SECRETPASS",
        "gopher://h/x#SECRETPASS",
        "http://user:SECRETPASS@[::1/x?api_key=SECRETPASS",
        "http://u:SECRETPASS@ho\u2100st/x",
    ],
)
def test_an_endpoint_error_shows_no_userinfo_or_query(project: Project, cli, url: str):
    project.write_sheet(contact_rows(1))
    project.write_campaign()
    result = cli(["run", str(project.campaign), "--yes"], env={**KEY_ENV, "TABBLY_API_URL": url})
    assert result.code == ExitCode.INPUT_ERROR
    assert "TABBLY_API_URL" in result.err and "SECRETPASS" not in result.err
    project.write_campaign(url.replace("\\", ""))
    result = cli(["run", str(project.campaign), "--yes"], env=KEY_ENV)
    assert result.code == ExitCode.INPUT_ERROR
    assert "endpoint" in result.err and "SECRETPASS" not in result.err


def test_the_client_and_logs_query_reprs_show_no_userinfo_or_query():
    url = "http://u:SECRETPASS@127.0.0.1/t?api_key=SECRETPASS"
    client = TabblyClient(url, Secret(KEY), 1, 1)
    assert "SECRETPASS" not in repr(client) and "127.0.0.1/t?..." in repr(client)
    today = datetime.now(UTC).date()
    query = LogsQuery(url, 244, 33, Secret(KEY), today, today, UTC)
    assert "SECRETPASS" not in repr(query) and "127.0.0.1/t?..." in repr(query)


@pytest.mark.parametrize("command", ["run", "sync"])
def test_an_absurdly_long_key_is_refused_at_start(project: Project, cli, command: str):
    project.write_sheet(contact_rows(2))
    project.write_campaign()
    long_key = "k" * (DEFAULTS.max_api_key_chars + 1)
    args = [command, str(project.campaign)] + (["--yes"] if command == "run" else [])

    result = cli(args, env={"TABBLY_API_KEY": long_key})

    assert result.code == ExitCode.INPUT_ERROR
    [line] = error_lines(result.err)
    assert "TABBLY_API_KEY" in line and str(DEFAULTS.max_api_key_chars) in line
    assert "kkkkkkkk" not in result.err + result.out
    assert not project.ledger.exists()


def test_get_agents_refuses_an_absurdly_long_key_without_a_request():
    with Upstream(_ok) as upstream:
        long_key = Secret("k" * (DEFAULTS.max_api_key_chars + 1))
        with pytest.raises(AgentsError, match="too long"):
            asyncio.run(fetch_agents(upstream.url, 244, long_key))
    assert upstream.received == []
