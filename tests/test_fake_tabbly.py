"""fake_tabbly: real HTTP on 127.0.0.1, in a thread, in-process and as a subprocess."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from dialer.fake_tabbly import (
    DEFAULT_AGENT_ID,
    DEFAULT_API_KEY,
    DEFAULT_CALL_FROM,
    DEFAULT_ORGANIZATION_ID,
    TRIGGER_PATH,
    FakeTabbly,
    FakeTabblyThread,
    add_arguments,
    run_from_args,
)

ROOT = Path(__file__).resolve().parent.parent
STATE = "/_fake/state"
BOUND = 10.0  # seconds any wait in this file may take before the test fails


def body(called_to: str = "+917359043943", **changes: Any) -> dict[str, Any]:
    """A valid trigger-call body, as the documentation's example."""
    valid = {
        "organization_id": DEFAULT_ORGANIZATION_ID,
        "use_agent_id": DEFAULT_AGENT_ID,
        "called_to": called_to,
        "call_from": DEFAULT_CALL_FROM,
        "custom_first_line": "Hello Vijay, I am calling from Company XYZ",
        "custom_instruction": "Vijay's Order ID is 343454X.",
        "called_by_account": "API",
        "api_key": DEFAULT_API_KEY,
        "custom_identifiers": "user_12345",
    }
    return {**valid, **changes}


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: dict[str, str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


async def _post(
    session: aiohttp.ClientSession,
    url: str,
    payload: Any,
    *,
    data: bytes | None = None,
    content_type: str = "application/json",
) -> Answer:
    raw = data if data is not None else json.dumps(payload).encode()
    async with session.post(url, data=raw, headers={"Content-Type": content_type}) as resp:
        return Answer(resp.status, dict(resp.headers), await resp.text())


def post(url: str, payload: Any = None, *, timeout: float = BOUND, **kwargs: Any) -> Answer:
    """One POST from a fresh client; raises what aiohttp raises (disconnects, timeouts)."""
    payload = body() if payload is None else payload

    async def go() -> Answer:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            return await _post(session, url, payload, **kwargs)

    return asyncio.run(go())


def post_many(url: str, payloads: list[dict[str, Any]]) -> list[Answer]:
    """All payloads at once over separate connections."""

    async def go() -> list[Answer]:
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=BOUND)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            return list(await asyncio.gather(*(_post(session, url, p) for p in payloads)))

    return asyncio.run(go())


async def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + BOUND
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


# --- validation ------------------------------------------------------------------------------


def test_valid_body_is_answered_200_with_the_documented_body_and_charged(fake: FakeTabbly) -> None:
    answer = post(fake.url, body("+917359043943"))

    assert answer.status == 200
    got = answer.json()
    assert set(got) == {
        "success",
        "sip_trunk_id",
        "sip_call_to",
        "room_name",
        "participant_identity",
        "participant_name",
    }
    assert got["success"] is True
    assert got["sip_call_to"] == "+917359043943"
    assert all(isinstance(got[k], str) and got[k] for k in got if k != "success")
    assert fake.balance == pytest.approx(4.9)
    assert fake.accepted() == [body("+917359043943")]
    [received] = fake.received
    assert (received.status, received.fault, received.body) == (200, None, body("+917359043943"))
    assert json.loads(received.raw) == body("+917359043943")


def test_room_names_are_unique_per_call(fake: FakeTabbly) -> None:
    rooms = {post(fake.url, body(f"+9173590439{i:02d}")).json()["room_name"] for i in range(5)}
    assert len(rooms) == 5


@pytest.mark.parametrize("key", list(body()))
def test_each_missing_key_is_400_naming_it(fake: FakeTabbly, key: str) -> None:
    incomplete = body()
    del incomplete[key]

    answer = post(fake.url, incomplete)

    assert answer.status == 400
    assert answer.json()["success"] is False
    assert key in answer.json()["error"]
    assert fake.balance == 5.0
    assert fake.accepted() == []


def test_an_extra_key_is_400_naming_it(fake: FakeTabbly) -> None:
    answer = post(fake.url, body(callback_url="http://example.invalid"))

    assert answer.status == 400
    assert "callback_url" in answer.json()["error"]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("organization_id", "244"),
        ("organization_id", True),
        ("organization_id", 244.0),
        ("use_agent_id", "33"),
        ("use_agent_id", False),
        ("called_to", "917359043943"),
        ("called_to", "+0917359043943"),
        ("called_to", "+91 73590 43943"),
        ("called_to", "+917359043943\n"),
        ("called_to", 917359043943),
        ("call_from", "14156801215"),
        ("custom_first_line", ""),
        ("custom_first_line", None),
        ("custom_instruction", None),
        ("called_by_account", 1),
        ("api_key", 123),
        ("custom_identifiers", None),
    ],
)
def test_each_mistyped_key_is_400_naming_it(fake: FakeTabbly, key: str, value: Any) -> None:
    answer = post(fake.url, body(**{key: value}))

    assert answer.status == 400
    assert key in answer.json()["error"]
    assert fake.accepted() == []


def test_empty_custom_instruction_and_identifiers_are_valid(fake: FakeTabbly) -> None:
    assert post(fake.url, body(custom_instruction="", custom_identifiers="")).status == 200


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b"organization_id=244", "application/json"),
        (b"[1, 2]", "application/json"),
        (b"", "application/json"),
        (json.dumps(body()).encode(), "text/plain"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_400(
    fake: FakeTabbly, data: bytes, content_type: str
) -> None:
    answer = post(fake.url, data=data, content_type=content_type)

    assert answer.status == 400
    assert answer.json()["success"] is False
    assert fake.received[0].raw == data


def test_a_wrong_api_key_is_401(fake: FakeTabbly) -> None:
    answer = post(fake.url, body(api_key="not-the-key"))

    assert answer.status == 401
    assert answer.json()["success"] is False
    assert fake.balance == 5.0


@pytest.mark.parametrize(
    "change",
    [{"organization_id": 245}, {"use_agent_id": 34}, {"call_from": "+14156801216"}],
)
def test_unknown_organization_agent_or_call_from_is_404(
    fake: FakeTabbly, change: dict[str, Any]
) -> None:
    answer = post(fake.url, body(**change))

    assert answer.status == 404
    assert answer.json()["success"] is False
    assert fake.accepted() == []


def test_every_registered_call_from_is_accepted() -> None:
    numbers = ("+14156801215", "+442071838750")
    with FakeTabblyThread(call_from=numbers) as fake:
        assert [post(fake.url, body(call_from=n)).status for n in numbers] == [200, 200]
        assert post(fake.url, body(call_from="+14156801217")).status == 404


def test_other_paths_are_404_and_get_on_the_trigger_is_refused(fake: FakeTabbly) -> None:
    base = fake.url.removesuffix(TRIGGER_PATH)
    missing = post(base + "/dashboard/agents/endpoints/trigger")
    assert missing.status == 404
    assert missing.headers["Content-Type"].startswith("text/plain")

    async def get() -> int:
        async with aiohttp.ClientSession() as session, session.get(fake.url) as resp:
            return resp.status

    assert asyncio.run(get()) == 405
    assert fake.received == []


# --- wallet ----------------------------------------------------------------------------------


def test_402_comes_exactly_when_the_wallet_is_below_0_2_and_a_top_up_restores_it() -> None:
    # 0.5 -> 0.4 -> 0.3 -> 0.2 -> 0.1: four calls, because 0.2 itself still starts a call
    # (in floats, 0.5 - 3 * 0.1 would be 0.19999999999999998 and the fourth call refused).
    with FakeTabblyThread(balance=0.5, cost=0.1) as fake:
        statuses = [post(fake.url, body(f"+9173590439{i:02d}")).status for i in range(6)]
        assert statuses == [200, 200, 200, 200, 402, 402]
        refused = post(fake.url)
        assert "Insufficient wallet balance" in refused.json()["error"]
        assert fake.balance == pytest.approx(0.1)

        fake.top_up(0.1)

        assert [post(fake.url).status for _ in range(2)] == [200, 402]
        assert len(fake.accepted()) == 5


def test_concurrent_requests_never_overdraw_the_wallet() -> None:
    # 1.0 allows calls at 1.0, 0.9, ..., 0.2: nine of them, leaving 0.1.
    with FakeTabblyThread(balance=1.0, cost=0.1, latency=0.05) as fake:
        answers = post_many(fake.url, [body(f"+91735904{i:04d}") for i in range(30)])

        assert sorted(a.status for a in answers) == [200] * 9 + [402] * 21
        assert len(fake.accepted()) == 9
        assert fake.balance == pytest.approx(0.1)


# --- faults ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["400", "401", "402", "403", "404", "500", "502", "503", "504"])
def test_a_scripted_status_fault_answers_that_status_and_charges_nothing(
    fake: FakeTabbly, fault: str
) -> None:
    fake.script(fault)

    answer = post(fake.url)

    assert answer.status == int(fault)
    assert answer.json()["success"] is False
    assert fake.balance == 5.0
    assert (fake.received[0].status, fake.received[0].fault) == (int(fault), fault)


def test_scripted_faults_apply_in_order_then_normal_answers_resume(fake: FakeTabbly) -> None:
    fake.script("503", "429:7", "429")

    answers = [post(fake.url) for _ in range(4)]

    assert [a.status for a in answers] == [503, 429, 429, 200]
    assert answers[1].headers["Retry-After"] == "7"
    assert "Retry-After" not in answers[2].headers
    assert [r.fault for r in fake.received] == ["503", "429:7", "429", None]
    assert len(fake.accepted()) == 1


def test_html500_answers_an_html_page_and_empty500_an_empty_body(fake: FakeTabbly) -> None:
    fake.script("html500", "empty500")

    html, empty = post(fake.url), post(fake.url)

    assert (html.status, empty.status) == (500, 500)
    assert html.headers["Content-Type"].startswith("text/html")
    assert "<html>" in html.text
    assert empty.text == ""


def test_drop_reads_the_request_then_disconnects_without_an_answer(fake: FakeTabbly) -> None:
    fake.script("drop")

    with pytest.raises(aiohttp.ServerDisconnectedError):
        post(fake.url)

    [received] = fake.received
    assert (received.status, received.fault, received.body) == (None, "drop", body())
    assert fake.balance == 5.0


def test_reset_aborts_the_connection_before_reading_the_body(fake: FakeTabbly) -> None:
    fake.script("reset")

    with pytest.raises(aiohttp.ClientConnectionError):
        post(fake.url)

    [received] = fake.received
    assert (received.status, received.fault, received.raw) == (None, "reset", b"")
    assert post(fake.url).status == 200


def test_hang_times_the_client_out_while_other_requests_are_answered(fake: FakeTabbly) -> None:
    fake.script("hang")

    async def go() -> tuple[BaseException | Answer, Answer]:
        impatient = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.5))
        async with impatient, aiohttp.ClientSession() as session:
            hung = asyncio.create_task(_post(impatient, fake.url, body()))
            await _until(lambda: bool(fake.received), "the hung request to arrive")
            normal = await _post(session, fake.url, body("+917359043944"))
            try:
                return await hung, normal
            except TimeoutError as exc:
                return exc, normal

    hung, normal = asyncio.run(go())

    assert isinstance(hung, TimeoutError)
    assert normal.status == 200
    assert [(r.fault, r.status) for r in fake.received] == [("hang", None), (None, 200)]


def test_stop_does_not_wait_for_a_hung_request() -> None:
    async def go() -> tuple[float, BaseException | None]:
        fake = FakeTabbly()
        url = await fake.start()
        fake.script("hang")
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=BOUND)) as session:
            hung = asyncio.create_task(_post(session, url, body()))
            await _until(lambda: bool(fake.received), "the hung request to arrive")
            started = time.monotonic()
            await fake.stop()
            took = time.monotonic() - started
            try:
                await hung
            except aiohttp.ClientError as exc:
                return took, exc
            return took, None

    took, error = asyncio.run(go())

    assert took < 2.0
    assert isinstance(error, aiohttp.ServerDisconnectedError)


def test_slow_answers_normally_but_late(fake: FakeTabbly) -> None:
    fake.script("slow:0.3")
    started = time.monotonic()

    answer = post(fake.url)

    assert answer.status == 200
    assert time.monotonic() - started >= 0.3
    assert (fake.received[0].fault, fake.received[0].status) == ("slow:0.3", 200)
    assert len(fake.accepted()) == 1


def test_latency_delays_every_answer_and_receipt_time_is_taken_before_it() -> None:
    with FakeTabblyThread(latency=0.2) as fake:
        started = time.monotonic()
        assert post(fake.url).status == 200
        answered = time.monotonic()
        assert answered - started >= 0.2
        assert fake.received[0].at <= answered - 0.2


def test_fail_when_picks_a_fault_per_body_and_script_takes_precedence(fake: FakeTabbly) -> None:
    fake.fail_when(lambda b: "402" if b["called_to"].endswith("7") else None)

    assert post(fake.url, body("+917359043947")).status == 402
    assert post(fake.url, body("+917359043948")).status == 200
    fake.script("503")
    assert post(fake.url, body("+917359043947")).status == 503


def test_unknown_fault_names_are_refused(fake: FakeTabbly) -> None:
    for name in ("418", "429:soon", "slow:", "slow:-1", "hang:3", ""):
        with pytest.raises(ValueError, match="unknown fault"):
            fake.script(name)


def test_random_faults_repeat_exactly_for_the_same_seed() -> None:
    def statuses(seed: int) -> list[int]:
        with FakeTabblyThread(fail_rate=0.3, rate_429=0.2, retry_after=2, seed=seed) as fake:
            answers = [post(fake.url, body(f"+9173590439{i:02d}")) for i in range(24)]
            assert all(a.headers["Retry-After"] == "2" for a in answers if a.status == 429)
            return [a.status for a in answers]

    first = statuses(7)

    assert first == statuses(7)
    assert {200, 429, 500} <= set(first)
    assert first != statuses(8)


def test_rates_that_cannot_add_up_are_refused() -> None:
    with pytest.raises(ValueError, match="must not exceed 1"):
        FakeTabbly(fail_rate=0.6, hang_rate=0.6)
    with pytest.raises(ValueError, match=r"E\.164"):
        FakeTabbly(call_from=["14156801215"])


# --- the command -----------------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_every_option_has_help_text() -> None:
    helps: dict[str, str | None] = {}

    class Recording(argparse.ArgumentParser):
        def add_argument(self, *names: Any, **kwargs: Any) -> Any:
            helps[names[0]] = kwargs.get("help")
            return super().add_argument(*names, **kwargs)

    add_arguments(Recording(add_help=False))
    # 15 + the call logs: shape, outcomes, delay, seeded; agents; what people said, and its share
    assert len(helps) == 22
    assert all(helps.values()), [name for name, text in helps.items() if not text]


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.com"])
def test_a_non_loopback_host_is_refused(host: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_from_args(parse("--host", host, "--port", "0")) == 2

    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "loopback" in err


def test_the_subprocess_prints_its_url_serves_controls_and_exits_0_on_sigterm() -> None:
    command = [sys.executable, "-m", "dialer.fake_tabbly", "--port", "0", "--latency", "0"]
    command += ["--balance", "0.2", "--api-key", "k-1", "--call-from", "+442071838750"]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().rstrip("\n")
        match = re.fullmatch(
            rf"fake-tabbly listening on (http://127\.0\.0\.1:\d+{TRIGGER_PATH})", first
        )
        assert match, first
        url = match.group(1)
        base = url.removesuffix(TRIGGER_PATH)
        valid = body(api_key="k-1", call_from="+442071838750")

        assert post(url, valid).status == 200
        assert post(base + "/_fake/script", {"faults": ["429:3"]}).status == 200
        throttled = post(url, valid)
        assert (throttled.status, throttled.headers["Retry-After"]) == (429, "3")
        assert post(url, valid).status == 402  # 0.2 started one call; 0.1 is too little
        assert post(base + "/_fake/topup", {"amount": 1}).json()["balance"] == pytest.approx(1.1)
        assert post(base + "/_fake/script", {"faults": ["teapot"]}).status == 400

        async def state() -> dict[str, Any]:
            async with aiohttp.ClientSession() as session, session.get(base + STATE) as resp:
                return await resp.json()

        got = asyncio.run(state())
        assert got["accepted"] == 1
        assert got["balance"] == pytest.approx(1.1)
        assert [(r["status"], r["fault"]) for r in got["received"]] == [
            (200, None),
            (429, "429:3"),
            (402, None),
        ]
        assert got["received"][0]["body"] == valid

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(BOUND) == 0
        rest = proc.stdout.read()
        assert "k-1" in rest and "+442071838750" in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(BOUND)
