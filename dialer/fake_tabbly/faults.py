"""What the fake can do wrong, and when: fault names, a script, a per-body predicate, seeded rates.

    faults = Faults(fail_rate=0.1, seed=7)
    faults.script("429:2", "drop")         # the next two requests misbehave, in that order
    fault = faults.next()                  # scripted first, else a seeded random draw, else None
    fault = fault or faults.for_body(body) # else the predicate given to `fail_when`

The names:

    "500" "502" "503" "504" "400" "401" "403" "404" "402"   that status, a JSON error body
    "html500" / "empty500"    500 with an HTML page / an empty body
    "429" / "429:N"           429 without / with `Retry-After: N`
    "hang"                    read the body, never answer (until the server stops)
    "drop"                    read the body, close the connection without answering
    "reset"                   abort the connection (RST) without reading the body
    "slow:S"                  answer normally, S seconds late
    "echo:N"                  status N echoing the request's api_key, escaped (JSON \\u, %XX,
                              &#NN;), in the error; for 2xx, a success whose room_name holds it
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from aiohttp import web

from dialer.fake_tabbly.rules import STATUS_ERRORS, error_body, json_response

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
class Fault:
    name: str
    kind: str  # "status", "html500", "empty500", "429", "hang", "drop", "reset", "slow", "echo"
    status: int | None = None
    arg: str | float | None = None  # Retry-After header value for 429, seconds for slow


@lru_cache(maxsize=256)
def parse_fault(name: str) -> Fault:
    """Check a fault name (see the module docstring); ValueError names the valid ones."""
    if name in _PLAIN_STATUS:
        return Fault(name, "status", int(name))
    if name in ("html500", "empty500"):
        return Fault(name, name, 500)
    if name in ("hang", "drop", "reset"):
        return Fault(name, name)
    if name == "429":
        return Fault(name, "429", 429)
    kind, _, arg = name.partition(":")
    if kind == "echo" and arg.isdigit() and 200 <= int(arg) <= 599:
        return Fault(name, "echo", int(arg))
    if kind in ("429", "slow") and arg:
        try:
            seconds = float(arg)
        except ValueError:
            seconds = -1.0
        if seconds >= 0 and seconds != float("inf"):
            if kind == "429":
                return Fault(name, "429", 429, _retry_after_text(seconds))
            return Fault(name, "slow", None, seconds)
    raise ValueError(f"unknown fault {name!r}; expected one of {', '.join(FAULT_NAMES)}")


def _retry_after_text(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


class Faults:
    """Which fault, if any, the next request gets. `script`, `fail_when` and `pending` are safe
    to call from another thread while the server runs: the script sits behind a lock."""

    def __init__(
        self,
        *,
        fail_rate: float = 0.0,
        rate_429: float = 0.0,
        retry_after: float | None = 1.0,
        hang_rate: float = 0.0,
        drop_rate: float = 0.0,
        seed: int | None = 0,
    ) -> None:
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
        self._lock = threading.Lock()
        self._script: deque[Fault] = deque()
        self._predicate: Callable[[dict[str, Any]], str | None] | None = None
        self._rng = random.Random(seed)
        retry_text = None if retry_after is None else _retry_after_text(retry_after)
        # Cumulative thresholds for one uniform draw per request; order fixes the seeded sequence.
        random_faults = (
            (hang_rate, parse_fault("hang")),
            (drop_rate, parse_fault("drop")),
            (rate_429, Fault("429", "429", 429, retry_text)),
            (fail_rate, parse_fault("500")),
        )
        edges: list[tuple[float, Fault]] = []
        total = 0.0
        for rate, fault in random_faults:
            if rate > 0:
                total += rate
                edges.append((total, fault))
        self._random_edges = tuple(edges)

    def script(self, *names: str) -> None:
        """Give the next requests these faults, in order; after them, normal behaviour resumes."""
        parsed = [parse_fault(name) for name in names]
        with self._lock:
            self._script.extend(parsed)

    @property
    def pending(self) -> int:
        """Scripted faults not yet used."""
        return len(self._script)

    def fail_when(self, predicate: Callable[[dict[str, Any]], str | None] | None) -> None:
        """Pick a fault per request body (None = no fault); used only when `next` gave none."""
        self._predicate = predicate

    def next(self) -> Fault | None:
        """The next scripted fault, else one drawn at the seeded rates, else None. Asked before
        the body is read, so that "reset" can leave it unread."""
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

    def for_body(self, body: dict[str, Any]) -> Fault | None:
        """The fault `fail_when`'s predicate picks for this body, if any."""
        if self._predicate is None:
            return None
        name = self._predicate(body)
        return parse_fault(name) if name is not None else None


def fault_response(
    request: web.BaseRequest, fault: Fault, body: dict[str, Any] | None
) -> web.Response | None:
    """The answer a fault gives; None when it closes the connection instead ("hang" once the
    server stops, "drop", "reset"). "slow" is not answered here: it is a normal answer, late."""
    kind = fault.kind
    if kind == "echo":
        assert fault.status is not None
        key = str((body or {}).get("api_key", ""))
        return json_response(fault.status, _echo_body(fault.status, key))
    if kind == "status":
        assert fault.status is not None
        return json_response(fault.status, error_body(STATUS_ERRORS[fault.status]))
    if kind == "429":
        answer = json_response(429, error_body(STATUS_ERRORS[429]))
        if fault.arg is not None:
            answer.headers["Retry-After"] = str(fault.arg)
        return answer
    if kind == "html500":
        return web.Response(status=500, body=_HTML500, content_type="text/html")
    if kind == "empty500":
        return web.Response(status=500)
    if kind == "reset":
        _abort_with_rst(request)
    elif request.transport is not None:
        request.transport.close()
    return None


def _echo_body(status: int, key: str) -> bytes:
    """A hostile upstream's answer carrying `key` escaped three ways (written by hand: json.dumps
    would not escape ASCII)."""
    escaped = "".join(f"\\u{ord(c):04x}" for c in key)
    percent = "".join(f"%{b:02X}" for b in key.encode())
    entities = "".join(f"&#{ord(c)};" for c in key)
    if 200 <= status < 300:
        return f'{{"success": true, "room_name": "room-{escaped}"}}'.encode()
    return f'{{"success": false, "error": "bad key {escaped} {percent} {entities}"}}'.encode()


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
