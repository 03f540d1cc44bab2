"""A hostile or broken call-logs upstream (issue 18): pages of tiny rows, values that crashed
the sync, one room for every call, costs of 1e308. Calls are placed on the real fake; the
logs are served by a small aiohttp server on 127.0.0.1 that answers what each test wrote."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from conftest import KEY_ENV, Project, contact_rows, error_lines, indian_mobile

from dialer.campaign.model import LOGS_ENDPOINT_ENV
from dialer.core.settings import DEFAULTS
from dialer.core.statuses import ExitCode
from dialer.fake_tabbly import DEFAULT_AGENT_ID, DEFAULT_API_KEY, FakeTabbly
from dialer.ledger import dials
from dialer.ledger.dials import Dial
from dialer.outcomes.matching import Matcher
from dialer.outcomes.sync import SyncResult, describe
from dialer.tabbly.log_rows import parse_row

Body = bytes | Callable[[web.Request], bytes]


class LogPages:
    """Call-log pages from 127.0.0.1, its loop in a thread: each request is answered `body`
    (or `body(request)`) as JSON. `requests` counts what reached it."""

    def __init__(self, body: Body) -> None:
        self.body = body
        self.requests = 0
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    async def _answer(self, request: web.Request) -> web.Response:
        self.requests += 1
        body = self.body(request) if callable(self.body) else self.body
        return web.Response(body=body, content_type="application/json")

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/logs", self._answer)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/logs"

    def __enter__(self) -> LogPages:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def log_row(number: str, **fields: Any) -> dict[str, Any]:
    """A v2 row of an answered call to `number`, logged now; `fields` change or add to it."""
    row = {
        "id": number,
        "called_to": number,
        "called_time": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "call_status": "Call Answered",
        "call_duration": "42",
        "call_summary": "Spoke.",
        "call_transcript": "Agent: hello\nUser: hi",
        "total_call_cost": "0.0840",
        "use_agent_id": DEFAULT_AGENT_ID,
    }
    row.update(fields)
    return row


def page(rows: list[dict[str, Any]], **envelope: Any) -> bytes:
    return json.dumps({"status": "success", "data": rows, **envelope}).encode()


@pytest.fixture
def called(project: Project, cli, fake: FakeTabbly) -> Project:
    """Three people called through the fake (no log read yet): three pending dials."""
    project.write_sheet(contact_rows(3))
    project.write_campaign(fake.url, dispatch="concurrency = 1")
    result = cli(["run", str(project.campaign), "--yes"], KEY_ENV)
    assert result.code == ExitCode.OK, result.err
    return project


def _env(pages: LogPages) -> dict[str, str]:
    return {**KEY_ENV, LOGS_ENDPOINT_ENV: pages.url}


def _sync(project: Project, cli, body: Body):
    with LogPages(body) as pages:
        result = cli(["sync", str(project.campaign)], _env(pages))
    assert "Traceback" not in result.err
    return result


# ---- 4: a page of tiny rows ----


def test_a_page_of_60_mb_of_empty_rows_is_refused_within_the_memory_bound(called: Project):
    # 20 million `{}` rows, under the 64 MB page bound: once 3.4 GB and rising. The child's
    # address space is capped so that a regression fails here, not the machine.
    tiny_rows = b'{"status":"success","data":[' + b"{}," * 20_000_000 + b"{}]}"  # 60 MB
    assert len(tiny_rows) < DEFAULTS.logs_max_page_bytes
    # The sync runs in a child of a small parent that caps its address space (1.5 GiB) and
    # then reports its peak RSS (KiB) as the last line of stderr.
    measure = (
        "import resource, subprocess, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (3 * 2**29, 3 * 2**29))\n"
        "done = subprocess.run([sys.executable, '-m', 'dialer', *sys.argv[1:]])\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
        "sys.exit(done.returncode)\n"
    )
    with LogPages(tiny_rows) as pages:
        child = subprocess.run(
            [sys.executable, "-c", measure, "sync", str(called.campaign)],
            env={**_subprocess_env(), **_env(pages)},
            capture_output=True,
            text=True,
            timeout=120,
        )
    *lines, peak_kib = child.stderr.strip().splitlines()
    assert child.returncode == ExitCode.INPUT_ERROR, child.stderr
    [line] = lines
    assert line.startswith("dialer: error: call logs: ") and "logs_max_page_values" in line
    assert int(peak_kib) < 600 * 1024  # generous: the sync's bound is ~300 MB
    assert {d["outcome"] for d in called.dials().values()} == {None}  # nothing stored


def _subprocess_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "DIALER_DEBUG"}


def test_a_page_of_more_rows_than_the_bound_fails_the_sync_in_one_line(called: Project, cli):
    rows = [{"id": i} for i in range(DEFAULTS.logs_max_page_rows + 1)]

    result = _sync(called, cli, page(rows))

    assert result.code == ExitCode.INPUT_ERROR
    [line] = result.err.strip().splitlines()
    assert "logs_max_page_rows" in line and f"{len(rows)} rows" in line
    assert {d["outcome"] for d in called.dials().values()} == {None}


# ---- 5 and 20: values that crashed the sync, costs that made "inf" ----

_HUGE = "9" * 5000

BAD_VALUES = {
    "superscript minutes": ({"call_duration": "1:²"}, "call_duration"),
    "superscript agent": ({"use_agent_id": "²"}, "use_agent_id"),
    "5000-digit duration text": ({"call_duration": f"1:{_HUGE}"}, "call_duration"),
    "5000-digit agent text": ({"use_agent_id": _HUGE}, "use_agent_id"),
    "1e300 seconds": ({"call_duration": 1e300}, "call_duration"),
    "20-digit seconds": ({"call_duration": "9" * 20}, "call_duration"),
    "two days": ({"call_duration": str(2 * 86_400)}, "call_duration"),
    "negative seconds": ({"call_duration": -5}, "call_duration"),
    "cost 1e308": ({"total_call_cost": "1e308"}, "total_call_cost"),
    "negative cost": ({"total_call_cost": "-3"}, "total_call_cost"),
    "time past the year 9999": ({"called_time": 10**30}, "called_time"),
}


@pytest.mark.parametrize("fields, field", BAD_VALUES.values(), ids=BAD_VALUES)
def test_a_bad_value_is_ignored_and_the_row_counted_never_a_crash(
    called: Project, cli, fields: dict[str, Any], field: str
):
    numbers = [indian_mobile(i) for i in range(3)]
    rows = [log_row(numbers[0], **fields), log_row(numbers[1]), log_row(numbers[2])]

    result = _sync(called, cli, page(rows))

    assert result.code == ExitCode.OK, result.err
    assert f"1 row(s) with unreadable or out-of-range values, those values ignored ({field})" in (
        result.out
    )
    stored = called.dials()
    assert {stored[n]["outcome"] for n in numbers[1:]} == {"answered"}
    bad = stored[numbers[0]]
    # A row without its time matches by number no call (it may be any call's): still pending.
    assert bad["outcome"] == (None if field == "called_time" else "answered")
    if field == "call_duration":
        assert bad["duration_s"] is None
    if field == "total_call_cost":
        assert bad["cost"] is None
        assert "total cost: 0.17\n" in result.out  # the two other calls only, never "inf"


def test_numbers_json_cannot_hold_in_python_are_bad_values(called: Project, cli):
    # As JSON numbers, not text: 5,000 digits is past int()'s limit, 1e400 past a float's.
    number = indian_mobile(0)
    row = json.dumps(log_row(number, call_duration="@D", total_call_cost="@C", use_agent_id="@A"))
    row = row.replace('"@D"', _HUGE).replace('"@C"', "1e400").replace('"@A"', _HUGE)
    body = b'{"status": "success", "total_records": ' + _HUGE.encode()
    body += b', "data": [' + row.encode() + b"]}"

    result = _sync(called, cli, body)

    assert result.code == ExitCode.OK, result.err
    assert "1 row(s) with unreadable" in result.out
    assert "(call_duration, total_call_cost, use_agent_id)" in result.out
    assert called.dials()[number]["outcome"] == "answered"


@pytest.mark.parametrize("total", ["²", "١٢", _HUGE, "-1"])
def test_an_unreadable_total_is_no_total(called: Project, cli, total: str):
    result = _sync(called, cli, page([log_row(indian_mobile(0))], total_records=total))

    assert result.code == ExitCode.OK, result.err
    assert called.dials()[indian_mobile(0)]["outcome"] == "answered"


def test_a_lone_surrogate_in_a_text_is_stored_as_a_replacement_character(called: Project, cli):
    number = indian_mobile(0)
    body = page([log_row(number, call_summary="@S")]).replace(b'"@S"', b'"a\\ud800b"')

    result = _sync(called, cli, body)

    assert result.code == ExitCode.OK, result.err
    # Mended as the upstream's JSON is decoded (`tabbly.upstream_json`), for every field.
    assert called.dials()[number]["summary"] == "a\ufffdb"


def test_a_cost_out_of_range_in_an_old_ledger_is_left_out_of_every_sum(called: Project, cli):
    conn = sqlite3.connect(called.ledger)
    with conn:
        conn.execute("UPDATE dials SET cost = 1e308, outcome = 'answered'")
        conn.execute("UPDATE dials SET cost = 0.5 WHERE id = (SELECT MIN(id) FROM dials)")
    try:
        assert dials.total_cost(conn) == 0.5
        assert dials.average_cost(conn) == (0.5 / 3, 3)
        assert sorted(p.cost or 0 for _, ps in dials.people_by_run(conn) for p in ps) == [
            0,
            0,
            0.5,
        ]
    finally:
        conn.close()
    status = _sync(called, cli, page([]))
    assert "total cost: 0.50\n" in status.out and "inf" not in status.out


def test_describe_names_the_bad_rows() -> None:
    result = SyncResult({}, 3, 0, 1, 0.0, None, bad_rows=2, bad_fields=("call_duration",))
    assert describe(result).endswith(
        "; 2 row(s) with unreadable or out-of-range values, those values ignored (call_duration)"
    )


# ---- 5: a [redial] run whose sync fails in any way still calls its new rows ----

_REDIAL = '[redial]\noutcomes = ["no_answer"]\nafter_minutes = 0\nmax_calls = 2\n'


def _redial_campaign(project: Project, cli, fake: FakeTabbly) -> None:
    """Two people called; the sheet then grows by one new row."""
    project.write_sheet(contact_rows(2))
    project.write_campaign(fake.url, extra=_REDIAL, dispatch="concurrency = 1")
    first = cli(["run", str(project.campaign), "--yes", "--no-sync"], KEY_ENV)
    assert first.code == ExitCode.OK, first.err
    project.write_sheet(contact_rows(3))


def test_a_redial_run_reads_logs_with_crashing_values_and_calls_its_new_rows(
    project: Project, cli, fake: FakeTabbly
):
    _redial_campaign(project, cli, fake)
    rows = [
        log_row(indian_mobile(0), call_status="Not Answered", call_duration="1:²"),
        log_row(indian_mobile(1), use_agent_id="²", call_duration="140"),
    ]
    sent = len(fake.accepted())

    with LogPages(page(rows, total_records="²")) as pages:
        result = cli(["run", str(project.campaign), "--yes"], _env(pages))

    assert result.code == ExitCode.OK, result.err
    assert "call outcomes synced: " in result.out and "2 row(s) with unreadable" in result.out
    new = Counter(b["called_to"] for b in fake.accepted()[sent:])
    assert new == Counter([indian_mobile(2), indian_mobile(0)])  # the new row, the unanswered


def test_a_redial_run_whose_sync_fails_in_any_way_redials_nobody_but_calls_new_rows(
    project: Project, cli, fake: FakeTabbly, monkeypatch: pytest.MonkeyPatch
):
    # No upstream value left that crashes the sync: a defect of ours stands in for one. Its
    # text holds the key, as an aiohttp exception's URL would.
    _redial_campaign(project, cli, fake)

    def broken(*args: object, **kwargs: object) -> int:
        raise RuntimeError(f"boom http://127.0.0.1/logs?api_key={DEFAULT_API_KEY}")

    monkeypatch.setattr(dials, "store", broken)
    sent = len(fake.accepted())

    with LogPages(page([log_row(indian_mobile(0), call_status="Not Answered")])) as pages:
        result = cli(["run", str(project.campaign), "--yes"], _env(pages))

    assert result.code == ExitCode.OK, result.err
    [warning] = error_lines(result.err)
    assert warning == (
        "warning: call logs: the sync failed (RuntimeError); nobody is redialed this run "
        "(new rows are still called)"
    )
    assert DEFAULT_API_KEY not in result.out + result.err
    assert [b["called_to"] for b in fake.accepted()[sent:]] == [indian_mobile(2)]


# ---- 8: a room is no proof alone ----

T0 = datetime(2026, 3, 1, 9, 0, 0, tzinfo=UTC)


def _dial(dial_id: int, number: str, placed_at: datetime, room: str = "same-room") -> Dial:
    return Dial(dial_id, number, f"C{dial_id}", placed_at, room, f"sip_{number}")


def _row(number: str, at: datetime, room: str = "same-room", **fields: Any):
    obj = log_row(number, called_time=at.strftime("%Y-%m-%d %H:%M:%S"), room_name=room)
    obj.update(fields)
    parsed = parse_row(obj, UTC)
    assert parsed is not None
    return parsed


def test_one_room_for_every_call_sends_each_row_to_its_own_number() -> None:
    numbers = [indian_mobile(i) for i in range(4)]
    calls = [_dial(i + 1, n, T0 + timedelta(seconds=i)) for i, n in enumerate(numbers)]
    matcher = Matcher(calls, DEFAULT_AGENT_ID)

    found = [matcher.feed(_row(n, T0 + timedelta(seconds=i))) for i, n in enumerate(numbers)]

    assert found == [1, 2, 3, 4]
    assert sorted(matcher.results()) == [1, 2, 3, 4]  # nobody left pending


def test_a_row_a_day_older_than_its_rooms_call_does_not_match() -> None:
    number = indian_mobile(0)
    matcher = Matcher([_dial(1, number, T0, room="room-1")], DEFAULT_AGENT_ID)

    assert matcher.feed(_row(number, T0 - timedelta(days=1), room="room-1")) is None
    assert matcher.feed(_row(indian_mobile(1), T0, room="room-1")) is None  # another number
    assert matcher.feed(_row(number, T0 + timedelta(seconds=5), room="room-1")) == 1


def test_a_room_match_takes_a_number_written_another_way() -> None:
    number = indian_mobile(0)
    matcher = Matcher([_dial(1, number, T0, room="room-1")], DEFAULT_AGENT_ID)

    assert matcher.feed(_row("0" + number.removeprefix("+91"), T0, room="room-1")) == 1
    assert matcher.feed(_row(number, T0, room="room-1", called_to=None)) == 1


def test_a_sync_with_one_room_for_every_row_leaves_nobody_pending(
    called: Project, cli, fake: FakeTabbly
):
    # The ledger's rooms are the fake's; the logs name one of them on every row.
    stored = called.dials()
    room = next(iter(stored.values()))["room_name"]
    conn = sqlite3.connect(called.ledger)
    with conn:
        conn.execute("UPDATE dials SET room_name = ?", (room,))
    conn.close()
    rows = [log_row(number, room_name=room, id=number) for number in stored]

    result = _sync(called, cli, page(rows))

    assert result.code == ExitCode.OK, result.err
    assert {d["outcome"] for d in called.dials().values()} == {"answered"}
    assert {d["log_rows"] for d in called.dials().values()} == {1}
