"""A local stand-in for Tabbly's trigger-call API (SPEC 2 and 8): demo, tests, benchmarks.

    with FakeTabblyThread(balance=1.0) as fake:
        post(fake.url, body)                  # any HTTP client, real sockets on 127.0.0.1
        fake.script("429:2", "drop")          # the next two requests misbehave, in that order
        assert fake.accepted()[0]["called_to"] == "+917359043943"

It validates each request as the real API documents (exact keys and JSON types -> 400, wrong key
-> 401, unknown organization / agent / unregistered `call_from` -> 404, wallet below 0.2 -> 402),
charges `cost` per triggered call and answers 200 with the documented success body. Faults come
from a script, a per-body predicate or seeded random rates; their names:

    "500" "502" "503" "504" "400" "401" "403" "404" "402"   that status, a JSON error body
    "html500" / "empty500"    500 with an HTML page / an empty body
    "429" / "429:N"           429 without / with `Retry-After: N`
    "hang"                    read the body, never answer (until the server stops)
    "drop"                    read the body, close the connection without answering
    "reset"                   abort the connection (RST) without reading the body
    "slow:S"                  answer normally, S seconds late
    "echo:N"                  status N echoing the request's api_key, escaped (JSON \\u, %XX,
                              &#NN;), in the error; for 2xx, a success whose room_name holds it

Per request: record receipt -> latency -> fault (script, else predicate, else random) ->
validation -> wallet. Run as a process with `python -m dialer.fake_tabbly --port 0`; the
`/_fake/state`, `/_fake/script` and `/_fake/topup` endpoints then stand in for the methods.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import math
import random
import re
import secrets
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from types import TracebackType
from typing import Any

from aiohttp import web

from dialer.statuses import ExitCode

TRIGGER_PATH = "/dashboard/agents/endpoints/trigger-call"
DEFAULT_ORGANIZATION_ID = 244
DEFAULT_AGENT_ID = 33
DEFAULT_CALL_FROM = "+14156801215"
DEFAULT_API_KEY = "fake-key-0000"
MIN_BALANCE = 0.2

STATE_PATH = "/_fake/state"
SCRIPT_PATH = "/_fake/script"
TOPUP_PATH = "/_fake/topup"

# The wallet is kept in integer micro-units so 1.0 - 8 * 0.1 is not 0.19999999999999996.
_MICRO = 1_000_000
_MIN_BALANCE_MICRO = round(MIN_BALANCE * _MICRO)
_SHUTDOWN_TIMEOUT = 0.5
_THREAD_BOUND = 10.0

_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
# The request body, in the documented order: key -> (JSON type, what the error message says).
_FIELDS: dict[str, tuple[type, str]] = {
    "organization_id": (int, "an integer"),
    "use_agent_id": (int, "an integer"),
    "called_to": (str, "an E.164 string"),
    "call_from": (str, "an E.164 string"),
    "custom_first_line": (str, "a non-empty string"),
    "custom_instruction": (str, "a string"),
    "called_by_account": (str, "a string"),
    "api_key": (str, "a string"),
    "custom_identifiers": (str, "a string"),
}
_KEYS = tuple(_FIELDS)
_KEYSET = frozenset(_FIELDS)

_STATUS_ERRORS = {
    400: "Missing required fields",
    401: "Invalid API key",
    402: f"Insufficient wallet balance: a minimum of {MIN_BALANCE} is needed to start a call",
    403: "Forbidden",
    404: "Organization/Agent not found or invalid call_from number",
    429: "Too many requests",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service unavailable",
    504: "Gateway timeout",
}
_HTML500 = (
    b"<!DOCTYPE html>\n<html><head><title>500 Internal Server Error</title></head>\n"
    b"<body><h1>Internal Server Error</h1><p>Something went wrong.</p></body></html>\n"
)
_PLAIN_STATUS = ("400", "401", "402", "403", "404", "500", "502", "503", "504")
FAULT_NAMES = (
    *_PLAIN_STATUS,
    "html500",
    "empty500",
    "429",
    "429:N",
    "hang",
    "drop",
    "reset",
    "slow:S",
    "echo:N",
)


@dataclass(frozen=True, slots=True)
class Received:
    """One request that reached the trigger handler, as the tests see it."""

    at: float  # time.monotonic() on arrival, before latency and faults
    body: dict[str, Any] | None  # the parsed JSON object; None if not a JSON object
    raw: bytes
    status: int | None  # what was answered; None for hang/drop/reset
    fault: str | None  # the injected fault, if any


@dataclass(frozen=True, slots=True)
class _Fault:
    name: str
    kind: str  # "status", "html500", "empty500", "429", "hang", "drop", "reset", "slow", "echo"
    status: int | None = None
    arg: str | float | None = None  # Retry-After header value for 429, seconds for slow


@lru_cache(maxsize=256)
def parse_fault(name: str) -> _Fault:
    """Check a fault name (see the module docstring); ValueError names the valid ones."""
    if name in _PLAIN_STATUS:
        return _Fault(name, "status", int(name))
    if name in ("html500", "empty500"):
        return _Fault(name, name, 500)
    if name in ("hang", "drop", "reset"):
        return _Fault(name, name)
    if name == "429":
        return _Fault(name, "429", 429)
    kind, _, arg = name.partition(":")
    if kind == "echo" and arg.isdigit() and 200 <= int(arg) <= 599:
        return _Fault(name, "echo", int(arg))
    if kind in ("429", "slow") and arg:
        try:
            seconds = float(arg)
        except ValueError:
            seconds = -1.0
        if seconds >= 0 and seconds != float("inf"):
            if kind == "429":
                return _Fault(name, "429", 429, _retry_after_text(seconds))
            return _Fault(name, "slow", None, seconds)
    raise ValueError(f"unknown fault {name!r}; expected one of {', '.join(FAULT_NAMES)}")


def _error_body(message: str) -> bytes:
    return json.dumps({"success": False, "error": message}).encode()


def _echo_body(status: int, key: str) -> bytes:
    """A hostile upstream's answer carrying `key` escaped three ways (written by hand: json.dumps
    would not escape ASCII)."""
    escaped = "".join(f"\\u{ord(c):04x}" for c in key)
    percent = "".join(f"%{b:02X}" for b in key.encode())
    entities = "".join(f"&#{ord(c)};" for c in key)
    if 200 <= status < 300:
        return f'{{"success": true, "room_name": "room-{escaped}"}}'.encode()
    return f'{{"success": false, "error": "bad key {escaped} {percent} {entities}"}}'.encode()


def _json_response(status: int, body: bytes) -> web.Response:
    return web.Response(status=status, body=body, content_type="application/json")


def _retry_after_text(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


def _validate_shape(body: dict[str, Any]) -> str | None:
    """The 400 message for a body with wrong keys or JSON types, else None."""
    if body.keys() != _KEYSET:
        missing = [k for k in _KEYS if k not in body]
        if missing:
            return f"Missing required fields: {', '.join(missing)}"
        extra = sorted(k for k in body if k not in _KEYSET)
        return f"Unknown fields: {', '.join(extra)}"
    for key, (kind, what) in _FIELDS.items():
        value = body[key]
        # `type is` rather than isinstance: JSON true/false must not pass as an integer.
        if type(value) is not kind:
            return f"Field '{key}' must be {what}"
    if not _E164.fullmatch(body["called_to"]):
        return "Field 'called_to' must be an E.164 string"
    if not _E164.fullmatch(body["call_from"]):
        return "Field 'call_from' must be an E.164 string"
    if not body["custom_first_line"]:
        return "Field 'custom_first_line' must be a non-empty string"
    return None


def _abort_with_rst(request: web.BaseRequest) -> None:
    """Close the connection with a TCP reset, so the client sees ECONNRESET, not a clean EOF."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def _close(request: web.BaseRequest) -> None:
    if request.transport is not None:
        request.transport.close()


class FakeTabbly:
    """The fake upstream: state, fault injection, and the aiohttp application serving it.

    Test-thread methods (`script`, `top_up`, `accepted`, `balance`, `fail_when`) are safe to call
    while the server runs on another thread's loop: the wallet and the script sit behind a lock.
    """

    def __init__(
        self,
        *,
        organization_id: int = DEFAULT_ORGANIZATION_ID,
        agent_id: int = DEFAULT_AGENT_ID,
        call_from: Iterable[str] = (DEFAULT_CALL_FROM,),
        api_key: str = DEFAULT_API_KEY,
        balance: float = 5.0,
        cost: float = 0.1,
        latency: float = 0.0,
        fail_rate: float = 0.0,
        rate_429: float = 0.0,
        retry_after: float | None = 1.0,
        hang_rate: float = 0.0,
        drop_rate: float = 0.0,
        seed: int | None = 0,
    ) -> None:
        numbers = tuple(call_from)
        for number in numbers:
            if not isinstance(number, str) or not _E164.fullmatch(number):
                raise ValueError(f"call_from {number!r} is not an E.164 number")
        if not numbers:
            raise ValueError("call_from needs at least one number")
        rates = {
            "hang_rate": hang_rate,
            "drop_rate": drop_rate,
            "rate_429": rate_429,
            "fail_rate": fail_rate,
        }
        for name, rate in rates.items():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {rate}")
        if sum(rates.values()) > 1.0 + 1e-9:
            raise ValueError("hang_rate + drop_rate + rate_429 + fail_rate must not exceed 1")
        if cost < 0 or latency < 0 or (retry_after is not None and retry_after < 0):
            raise ValueError("cost, latency and retry_after must not be negative")

        self.organization_id = organization_id
        self.agent_id = agent_id
        self.call_from = numbers
        self.api_key = api_key
        self.cost = cost
        self.latency = latency
        self.retry_after = retry_after
        self.received: list[Received] = []
        self.url = ""

        self._call_from_set = frozenset(numbers)
        self._cost_micro = round(cost * _MICRO)
        self._balance_micro = round(balance * _MICRO)
        self._calls = 0
        self._lock = threading.Lock()
        self._script: deque[_Fault] = deque()
        self._predicate: Callable[[dict[str, Any]], str | None] | None = None
        self._rng = random.Random(seed)
        # Cumulative thresholds for one uniform draw per request; order fixes the seeded sequence.
        random_faults = (
            (hang_rate, parse_fault("hang")),
            (drop_rate, parse_fault("drop")),
            (rate_429, _Fault("429", "429", 429, _retry_after_or_none(retry_after))),
            (fail_rate, parse_fault("500")),
        )
        edges: list[tuple[float, _Fault]] = []
        total = 0.0
        for rate, fault in random_faults:
            if rate > 0:
                total += rate
                edges.append((total, fault))
        self._random_edges = tuple(edges)
        self._sip_trunk_id = f"ST_fake_{organization_id}_{agent_id}"
        self._room_prefix = secrets.token_hex(3)
        self._closing: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None

    @property
    def balance(self) -> float:
        """The current wallet."""
        return self._balance_micro / _MICRO

    def top_up(self, amount: float) -> None:
        """Add `amount` to the wallet (negative amounts drain it)."""
        with self._lock:
            self._balance_micro += round(amount * _MICRO)

    def script(self, *faults: str) -> None:
        """Give the next requests these faults, in order; after them, normal behaviour resumes."""
        parsed = [parse_fault(name) for name in faults]
        with self._lock:
            self._script.extend(parsed)

    def fail_when(self, predicate: Callable[[dict[str, Any]], str | None] | None) -> None:
        """Pick a fault per request body (None = no fault); scripted faults take precedence."""
        self._predicate = predicate

    def accepted(self) -> list[dict[str, Any]]:
        """The bodies answered 200, in arrival order: the calls actually placed."""
        return [r.body for r in list(self.received) if r.status == 200 and r.body is not None]

    def app(self) -> web.Application:
        """The aiohttp application: the trigger endpoint plus the `/_fake/*` control endpoints."""
        app = web.Application()
        app.router.add_post(TRIGGER_PATH, self._trigger)
        app.router.add_get(STATE_PATH, self._state)
        app.router.add_post(SCRIPT_PATH, self._script_endpoint)
        app.router.add_post(TOPUP_PATH, self._topup_endpoint)
        app.on_shutdown.append(self._wake_hung)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on host:port (0 = a free port) and return the trigger URL, also kept in `url`."""
        self._closing = asyncio.Event()
        runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port, backlog=1024).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        netloc = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.url = f"http://{netloc}:{bound_port}{TRIGGER_PATH}"
        return self.url

    async def stop(self) -> None:
        """Stop listening; hung requests are dropped rather than waited for."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def _wake_hung(self, _app: web.Application) -> None:
        if self._closing is not None:
            self._closing.set()

    def _next_fault(self) -> _Fault | None:
        if self._script:
            with self._lock:
                if self._script:
                    return self._script.popleft()
        if self._random_edges:
            draw = self._rng.random()
            for edge, fault in self._random_edges:
                if draw < edge:
                    return fault
        return None

    async def _trigger(self, request: web.Request) -> web.StreamResponse:
        at = time.monotonic()
        fault = self._next_fault()
        if fault is not None and fault.kind == "reset":
            self.received.append(Received(at, None, b"", None, fault.name))
            _abort_with_rst(request)
            return web.Response()  # never written: the connection is gone
        raw = await request.read()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        body = parsed if type(parsed) is dict else None
        if body is not None and body.keys() == _KEYSET:
            # Rebuilt on the module's key strings: a third less memory per kept body at 100k calls.
            body = {key: body[key] for key in _KEYS}
        if fault is None and body is not None and self._predicate is not None:
            name = self._predicate(body)
            fault = parse_fault(name) if name is not None else None
        fault_name = fault.name if fault is not None else None
        index = len(self.received)
        self.received.append(Received(at, body, raw, None, fault_name))

        if self.latency:
            await asyncio.sleep(self.latency)
        if fault is None:
            answer = self._answer(request, parsed, body)
        elif fault.kind == "slow":
            assert isinstance(fault.arg, float)
            await asyncio.sleep(fault.arg)
            answer = self._answer(request, parsed, body)
        else:
            injected = await self._inject(request, fault, body)
            if injected is None:
                return web.Response()  # never written: the connection is gone
            answer = injected
        self.received[index] = Received(at, body, raw, answer.status, fault_name)
        return answer

    async def _inject(
        self, request: web.Request, fault: _Fault, body: dict[str, Any] | None
    ) -> web.Response | None:
        """Answer with the fault; None when the connection was closed instead."""
        kind = fault.kind
        if kind == "echo":
            assert fault.status is not None
            key = str((body or {}).get("api_key", ""))
            return _json_response(fault.status, _echo_body(fault.status, key))
        if kind == "status":
            assert fault.status is not None
            return _json_response(fault.status, _error_body(_STATUS_ERRORS[fault.status]))
        if kind == "429":
            answer = _json_response(429, _error_body(_STATUS_ERRORS[429]))
            if fault.arg is not None:
                answer.headers["Retry-After"] = str(fault.arg)
            return answer
        if kind == "html500":
            return web.Response(status=500, body=_HTML500, content_type="text/html")
        if kind == "empty500":
            return web.Response(status=500)
        if kind == "hang":
            if self._closing is None:
                self._closing = asyncio.Event()
            await self._closing.wait()
        _close(request)  # hang (once the server stops), drop
        return None

    def _answer(
        self, request: web.Request, parsed: Any, body: dict[str, Any] | None
    ) -> web.Response:
        """Validate as the real API documents, then charge the wallet."""
        if request.content_type != "application/json":
            return _json_response(400, _error_body("Content-Type must be application/json"))
        if body is None:
            what = "not JSON" if parsed is None else "not a JSON object"
            return _json_response(400, _error_body(f"Request body is {what}"))
        problem = _validate_shape(body)
        if problem is not None:
            return _json_response(400, _error_body(problem))
        if body["api_key"] != self.api_key:
            return _json_response(401, _error_body(_STATUS_ERRORS[401]))
        if body["organization_id"] != self.organization_id:
            return _json_response(404, _error_body("Organization not found"))
        if body["use_agent_id"] != self.agent_id:
            return _json_response(404, _error_body("Agent not found"))
        if body["call_from"] not in self._call_from_set:
            return _json_response(404, _error_body("call_from number is not registered"))
        # Check and charge under one lock with no await between: concurrent calls cannot overdraw.
        with self._lock:
            if self._balance_micro < _MIN_BALANCE_MICRO:
                return _json_response(402, _error_body(_STATUS_ERRORS[402]))
            self._balance_micro -= self._cost_micro
            self._calls += 1
            number = self._calls
        called_to = body["called_to"]
        success = {
            "success": True,
            "sip_trunk_id": self._sip_trunk_id,
            "sip_call_to": called_to,
            "room_name": f"room-{number}-{self._room_prefix}{secrets.token_hex(4)}",
            "participant_identity": f"sip_{called_to}",
            "participant_name": f"Agent {self.agent_id}",
        }
        return _json_response(200, json.dumps(success).encode())

    async def _state(self, _request: web.Request) -> web.Response:
        received = list(self.received)
        state = {
            "balance": self.balance,
            "accepted": sum(1 for r in received if r.status == 200),
            "received": [
                {"at": r.at, "status": r.status, "fault": r.fault, "body": r.body} for r in received
            ],
        }
        return _json_response(200, json.dumps(state).encode())

    async def _script_endpoint(self, request: web.Request) -> web.Response:
        payload = await _read_json_object(request)
        faults = payload.get("faults") if payload is not None else None
        if not isinstance(faults, list) or not all(isinstance(f, str) for f in faults):
            return _json_response(400, _error_body('expected {"faults": [names...]}'))
        try:
            self.script(*faults)
        except ValueError as exc:
            return _json_response(400, _error_body(str(exc)))
        return _json_response(200, json.dumps({"scripted": len(self._script)}).encode())

    async def _topup_endpoint(self, request: web.Request) -> web.Response:
        payload = await _read_json_object(request)
        amount = payload.get("amount") if payload is not None else None
        if type(amount) not in (int, float) or not math.isfinite(amount):
            return _json_response(400, _error_body('expected {"amount": number}'))
        self.top_up(amount)
        return _json_response(200, json.dumps({"balance": self.balance}).encode())


def _retry_after_or_none(seconds: float | None) -> str | None:
    return None if seconds is None else _retry_after_text(seconds)


async def _read_json_object(request: web.Request) -> dict[str, Any] | None:
    try:
        payload = json.loads(await request.read())
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


class FakeTabblyThread:
    """Run a FakeTabbly on its own event loop in a daemon thread, for synchronous tests.

    with FakeTabblyThread(balance=0.3) as fake:
        urllib.request.urlopen(request_to(fake.url))
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, **fake_kwargs: Any) -> None:
        self.fake = FakeTabbly(**fake_kwargs)
        self._host = host
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> FakeTabbly:
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.fake.start(self._host, self._port))
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=serve, name="fake-tabbly", daemon=True)
        self._thread.start()
        if not ready.wait(_THREAD_BOUND):
            raise RuntimeError(f"fake-tabbly did not start within {_THREAD_BOUND} s")
        if failure:
            raise failure[0]
        return self.fake

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or loop.is_closed():
            return
        stopping = asyncio.run_coroutine_threadsafe(self.fake.stop(), loop)
        with contextlib.suppress(Exception):
            stopping.result(_THREAD_BOUND)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(_THREAD_BOUND)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0 or value != value:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def _retry_after_arg(text: str) -> float | None:
    return None if text.lower() == "none" else _non_negative(text)


LISTENING = "fake-tabbly listening on "


class FakeTabblyProcess:
    """`dialer fake-tabbly` as its own process on a free port, for the demo, tests and bench:
    its receive times carry no jitter from the process under test.

        with FakeTabblyProcess("--latency", "0.05") as fake:
            run_against(fake.url); fake.state()["received"]
    """

    def __init__(self, *options: str) -> None:
        self.options = options
        self.url = ""
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> FakeTabblyProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dialer", "fake-tabbly", "--port", "0", *self.options],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline().strip()
        if not first.startswith(LISTENING):
            self.__exit__()
            raise RuntimeError(f"fake-tabbly did not start: {first!r}")
        self.url = first.removeprefix(LISTENING)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=_THREAD_BOUND)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=_THREAD_BOUND)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def state(self, timeout: float = 120.0) -> dict[str, Any]:
        base = self.url.split(TRIGGER_PATH)[0]
        with urllib.request.urlopen(f"{base}{STATE_PATH}", timeout=timeout) as answer:
            return json.load(answer)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `dialer fake-tabbly` options."""
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="loopback address to listen on (default 127.0.0.1)")
    add(
        "--port",
        type=int,
        default=8787,
        help="port to listen on; 0 picks a free one (default 8787)",
    )
    add("--balance", type=float, default=5.0, help="starting wallet balance (default 5.0)")
    add("--cost", type=_non_negative, default=0.1, help="charge per triggered call (default 0.1)")
    add("--latency", type=_non_negative, default=0.05, help="seconds before every answer (0.05)")
    add("--fail-rate", type=_rate, default=0.0, help="share of requests answered 500 (default 0)")
    add("--rate-429", type=_rate, default=0.0, help="share of requests answered 429 (default 0)")
    add(
        "--retry-after",
        type=_retry_after_arg,
        default=1.0,
        help="Retry-After seconds on random 429s; 'none' sends no header (default 1)",
    )
    add("--hang-rate", type=_rate, default=0.0, help="share of requests never answered (0)")
    add("--drop-rate", type=_rate, default=0.0, help="share of connections dropped unanswered (0)")
    add(
        "--organization-id",
        type=int,
        default=DEFAULT_ORGANIZATION_ID,
        help=f"the one organization_id accepted (default {DEFAULT_ORGANIZATION_ID})",
    )
    add(
        "--agent-id",
        type=int,
        default=DEFAULT_AGENT_ID,
        help=f"the one use_agent_id accepted (default {DEFAULT_AGENT_ID})",
    )
    add(
        "--call-from",
        action="append",
        metavar="E164",
        help=f"a registered call_from number; repeat for several (default {DEFAULT_CALL_FROM})",
    )
    add(
        "--api-key",
        default=DEFAULT_API_KEY,
        help=f"the accepted api_key (default {DEFAULT_API_KEY})",
    )
    add("--seed", type=int, default=0, help="seed for the random fault rates (default 0)")


def run_from_args(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM after printing the URL and accepted values; 0 when stopped."""
    if not _is_loopback(args.host):
        print(
            f"fake-tabbly: refusing to listen on {args.host!r}: use a loopback address "
            "(127.0.0.1, ::1 or localhost)",
            file=sys.stderr,
        )
        return ExitCode.INPUT_ERROR
    try:
        fake = FakeTabbly(
            organization_id=args.organization_id,
            agent_id=args.agent_id,
            call_from=args.call_from or (DEFAULT_CALL_FROM,),
            api_key=args.api_key,
            balance=args.balance,
            cost=args.cost,
            latency=args.latency,
            fail_rate=args.fail_rate,
            rate_429=args.rate_429,
            retry_after=args.retry_after,
            hang_rate=args.hang_rate,
            drop_rate=args.drop_rate,
            seed=args.seed,
        )
    except ValueError as exc:
        print(f"fake-tabbly: {exc}", file=sys.stderr)
        return ExitCode.INPUT_ERROR
    # "localhost" may resolve to two addresses, which with port 0 would get two different ports.
    host = "127.0.0.1" if args.host == "localhost" else args.host
    try:
        return asyncio.run(_serve(fake, host, args.port))
    except OSError as exc:
        print(
            f"fake-tabbly: cannot listen on {host}:{args.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return ExitCode.INPUT_ERROR


async def _serve(fake: FakeTabbly, host: str, port: int) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    url = await fake.start(host, port)
    lines = [
        f"{LISTENING}{url}",
        f"  organization_id: {fake.organization_id}",
        f"  agent_id: {fake.agent_id}",
        f"  call_from: {', '.join(fake.call_from)}",
        f"  api_key: {fake.api_key}",
        f"  balance: {fake.balance:g}",
        f"  cost: {fake.cost:g}",
    ]
    print("\n".join(lines), flush=True)
    try:
        await stop.wait()
    finally:
        await fake.stop()
    return ExitCode.OK


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="fake-tabbly", description=__doc__.splitlines()[0])
    add_arguments(_parser)
    sys.exit(run_from_args(_parser.parse_args()))
