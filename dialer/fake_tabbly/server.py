"""FakeTabbly: the aiohttp application serving the trigger-call endpoint and the call logs
(`logs.CallLogs`), and what it received.

Per request: record receipt -> latency -> fault (`Faults`: script, else seeded random, else the
`fail_when` predicate) -> the API's rules (`Account`: validation, then the wallet). The
`/_fake/state`, `/_fake/script` and `/_fake/topup` endpoints stand in for the methods when the
fake runs as its own process.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from dialer.fake_tabbly.agents import AGENTS_PATH, Agents
from dialer.fake_tabbly.faults import Faults, fault_response, json_response
from dialer.fake_tabbly.logs import CallLogs
from dialer.fake_tabbly.rules import (
    DEFAULT_AGENT_ID,
    DEFAULT_API_KEY,
    DEFAULT_CALL_FROM,
    DEFAULT_ORGANIZATION_ID,
    LOGS_DOCS_PATH,
    LOGS_V2_PATH,
    STATUS_ERRORS,
    TRIGGER_PATH,
    Account,
    error_body,
    parse_body,
)

STATE_PATH = "/_fake/state"
SCRIPT_PATH = "/_fake/script"
TOPUP_PATH = "/_fake/topup"

_SHUTDOWN_TIMEOUT = 0.5


@dataclass(frozen=True, slots=True)
class Received:
    """One request that reached the trigger handler, as the tests see it."""

    at: float  # time.monotonic() on arrival, before latency and faults
    body: dict[str, Any] | None  # the parsed JSON object; None if not a JSON object
    raw: bytes
    status: int | None  # what was answered; None for hang/drop/reset
    fault: str | None  # the injected fault, if any


class FakeTabbly:
    """The fake upstream: an `Account`, `Faults`, and the aiohttp application serving them.

    Test-thread methods (`script`, `top_up`, `accepted`, `balance`, `fail_when`) are safe to call
    while the server runs on another thread's loop: the wallet and the script sit behind locks.
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
        logs_shape: str = "v2",
        outcomes: Mapping[str, float] | None = None,
        log_delay: float = 0.0,
        agents_shape: str = "docs",
        said: Mapping[str, str] | None = None,
        said_share: float = 0.0,
    ) -> None:
        self.account = Account(
            organization_id=organization_id,
            agent_id=agent_id,
            call_from=call_from,
            api_key=api_key,
            balance=balance,
            cost=cost,
        )
        self.faults = Faults(
            fail_rate=fail_rate,
            rate_429=rate_429,
            retry_after=retry_after,
            hang_rate=hang_rate,
            drop_rate=drop_rate,
            seed=seed,
        )
        # Its own seeded generator: the trigger's fault draws stay what they were.
        self.logs = CallLogs(
            self.account,
            shape=logs_shape,
            outcomes=outcomes,
            log_delay=log_delay,
            seed=seed,
            said=said,
            said_share=said_share,
        )
        self.agents = Agents(self.account, agents_shape)
        if cost < 0 or latency < 0 or (retry_after is not None and retry_after < 0):
            raise ValueError("cost, latency and retry_after must not be negative")

        self.cost = cost  # what it charges, as given (the wallet keeps it in micro-units)
        self.latency = latency
        self.received: list[Received] = []
        self.url = ""

        self._wallet = self.account.wallet
        self._closing: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None

    @property
    def balance(self) -> float:
        """The current wallet."""
        return self._wallet.balance

    def top_up(self, amount: float) -> None:
        """Add `amount` to the wallet (negative amounts drain it)."""
        self._wallet.top_up(amount)

    def script(self, *faults: str) -> None:
        """Give the next requests these faults, in order; after them, normal behaviour resumes."""
        self.faults.script(*faults)

    def fail_when(self, predicate: Callable[[dict[str, Any]], str | None] | None) -> None:
        """Pick a fault per request body (None = no fault); scripted faults take precedence."""
        self.faults.fail_when(predicate)

    def accepted(self) -> list[dict[str, Any]]:
        """The bodies answered 200, in arrival order: the calls actually placed."""
        return [r.body for r in list(self.received) if r.status == 200 and r.body is not None]

    @property
    def logs_shape(self) -> str:
        """The call logs' envelope and field names: "v2" or "docs" (settable while serving)."""
        return self.logs.shape

    @logs_shape.setter
    def logs_shape(self, shape: str) -> None:
        self.logs.shape = shape

    @property
    def logs_url(self) -> str:
        """The call-logs-v2 URL (the other documented path, get-call-logs, answers the same)."""
        return self.url.removesuffix(TRIGGER_PATH) + LOGS_V2_PATH

    @property
    def agents_url(self) -> str:
        """The get-agents URL (shape: `agents.shape`, "docs" or "gitbook", settable)."""
        return self.url.removesuffix(TRIGGER_PATH) + AGENTS_PATH

    def script_logs(self, *faults: str) -> None:
        """Give the next call-log requests these faults, in order (`logs.LOG_FAULT_NAMES`)."""
        self.logs.script(*faults)

    def call_outcomes(self) -> dict[str, str]:
        """{room_name: outcome} of every accepted call: the truth a sync should find."""
        return self.logs.outcomes()

    def seed_calls(self, n: int, **options: Any) -> list[dict[str, str]]:
        """Add `n` calls with their log rows as if accepted now (bench); see CallLogs."""
        return self.logs.seed_calls(n, **options)

    def app(self) -> web.Application:
        """The aiohttp application: the trigger endpoint, the two call-logs paths and the
        `/_fake/*` control endpoints."""
        app = web.Application()
        app.router.add_post(TRIGGER_PATH, self._trigger)
        app.router.add_get(LOGS_V2_PATH, self.logs.handle)
        app.router.add_get(LOGS_DOCS_PATH, self.logs.handle)
        app.router.add_get(AGENTS_PATH, self.agents.handle)
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

    async def _trigger(self, request: web.Request) -> web.StreamResponse:
        at = time.monotonic()
        fault = self.faults.next()
        if fault is not None and fault.kind == "reset":
            self.received.append(Received(at, None, b"", None, fault.name))
            fault_response(request, fault, None)
            return web.Response()  # never written: the connection is gone
        raw = await request.read()
        parsed, body = parse_body(raw)
        if fault is None and body is not None:
            fault = self.faults.for_body(body)
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
            if fault.kind == "hang":
                if self._closing is None:
                    self._closing = asyncio.Event()
                await self._closing.wait()
            injected = fault_response(request, fault, body)
            if injected is None:
                return web.Response()  # never written: the connection is gone
            answer = injected
        self.received[index] = Received(at, body, raw, answer.status, fault_name)
        return answer

    def _answer(
        self, request: web.Request, parsed: Any, body: dict[str, Any] | None
    ) -> web.Response:
        """Validate as the real API documents, then charge the wallet."""
        refused = self.account.refusal(request.content_type, parsed, body)
        if refused is not None:
            status, message = refused
            return json_response(status, error_body(message))
        assert body is not None
        number = self._wallet.charge()
        if number is None:
            return json_response(402, error_body(STATUS_ERRORS[402]))
        success = self.account.success(body["called_to"], number)
        self.logs.record(
            body["called_to"], body["custom_identifiers"], success["room_name"], body["call_from"]
        )
        return json_response(200, json.dumps(success).encode())

    async def _state(self, _request: web.Request) -> web.Response:
        received = list(self.received)
        state = {
            "balance": self.balance,
            "accepted": sum(1 for r in received if r.status == 200),
            "received": [
                {"at": r.at, "status": r.status, "fault": r.fault, "body": r.body} for r in received
            ],
            "calls": self.logs.calls(),
            "said": self.logs.said(),
        }
        return json_response(200, json.dumps(state).encode())

    async def _script_endpoint(self, request: web.Request) -> web.Response:
        """`{"faults": [...]}` scripts trigger requests; `{"log_faults": [...]}` log requests."""
        payload = await _read_json_object(request) or {}
        key = "log_faults" if "log_faults" in payload else "faults"
        faults = payload.get(key)
        if not isinstance(faults, list) or not all(isinstance(f, str) for f in faults):
            return json_response(
                400, error_body('expected {"faults": [names...]} or {"log_faults": [names...]}')
            )
        try:
            (self.script_logs if key == "log_faults" else self.script)(*faults)
        except ValueError as exc:
            return json_response(400, error_body(str(exc)))
        pending = self.logs.pending if key == "log_faults" else self.faults.pending
        return json_response(200, json.dumps({"scripted": pending}).encode())

    async def _topup_endpoint(self, request: web.Request) -> web.Response:
        payload = await _read_json_object(request)
        amount = payload.get("amount") if payload is not None else None
        if type(amount) not in (int, float) or not math.isfinite(amount):
            return json_response(400, error_body('expected {"amount": number}'))
        self.top_up(amount)
        return json_response(200, json.dumps({"balance": self.balance}).encode())


async def _read_json_object(request: web.Request) -> dict[str, Any] | None:
    try:
        payload = json.loads(await request.read())
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None
