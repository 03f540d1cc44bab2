"""The trigger-call API's documented rules (SPEC 2 and 8): what a request must be, who is accepted,
what a call costs, and the bodies the real API answers with.

    account = Account(organization_id=244, agent_id=33, call_from=("+14156801215",),
                      api_key="k", balance=1.0, cost=0.1)
    refused = account.refusal("application/json", parsed, body)  # (400|401|404, message) or None
    number = account.wallet.charge()                             # None: below 0.2, answer 402
    account.success_body(body["called_to"], number)              # the documented 200 body

The call-logs API's paths, shapes and outcome shares are here too; logs.py serves them.

Checked in this order: Content-Type and JSON -> exact keys and JSON types (400) -> key (401) ->
organization, agent, registered `call_from` (404) -> wallet (402).
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from collections.abc import Iterable, Mapping
from typing import Any

TRIGGER_PATH = "/dashboard/agents/endpoints/trigger-call"
DEFAULT_ORGANIZATION_ID = 244
DEFAULT_AGENT_ID = 33
DEFAULT_CALL_FROM = "+14156801215"
DEFAULT_API_KEY = "fake-key-0000"
MIN_BALANCE = 0.2

# The call logs (logs.py): both documented paths, the two shapes, what calls end as.
LOGS_V2_PATH = "/dashboard/agents/endpoints/call-logs-v2"
LOGS_DOCS_PATH = "/dashboard/agents/endpoints/get-call-logs"
LOGS_SHAPES = ("v2", "docs")
OUTCOME_NAMES = ("answered", "voicemail", "busy", "no_answer", "failed")
DEFAULT_OUTCOMES: Mapping[str, float] = {
    "answered": 0.5,
    "no_answer": 0.3,
    "busy": 0.1,
    "voicemail": 0.1,
}

# The wallet is kept in integer micro-units so 1.0 - 8 * 0.1 is not 0.19999999999999996.
_MICRO = 1_000_000
_MIN_BALANCE_MICRO = round(MIN_BALANCE * _MICRO)

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

STATUS_ERRORS = {
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


def is_e164(number: object) -> bool:
    return isinstance(number, str) and _E164.fullmatch(number) is not None


def error_body(message: str) -> bytes:
    """The real API's error shape."""
    return json.dumps({"success": False, "error": message}).encode()


def parse_body(raw: bytes) -> tuple[Any, dict[str, Any] | None]:
    """The decoded JSON (None if not JSON) and the body if it is a JSON object, else None."""
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None
    body = parsed if type(parsed) is dict else None
    if body is not None and body.keys() == _KEYSET:
        # Rebuilt on the module's key strings: a third less memory per kept body at 100k calls.
        body = {key: body[key] for key in _KEYS}
    return parsed, body


def shape_problem(body: dict[str, Any]) -> str | None:
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


def parse_outcomes(text: str) -> dict[str, float]:
    """`answered=0.5,no_answer=0.3,...` -> weights; ValueError names what is wrong."""
    weights: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in OUTCOME_NAMES:
            raise ValueError(f"expected name=share with names {', '.join(OUTCOME_NAMES)}")
        try:
            weights[name] = float(value)
        except ValueError:
            raise ValueError(f"outcome share {part!r} is not a number") from None
    return check_outcomes(weights)


def check_outcomes(weights: Mapping[str, float]) -> dict[str, float]:
    """The shares, checked: known names, each 0..1, not all 0 (they are weights: the rest
    need not be named)."""
    for name, weight in weights.items():
        if name not in OUTCOME_NAMES:
            raise ValueError(f"unknown outcome {name!r}; expected {', '.join(OUTCOME_NAMES)}")
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"outcome share {name}={weight} must be between 0 and 1")
    if sum(weights.values()) <= 0:
        raise ValueError("outcome shares must not all be 0")
    return dict(weights)


def format_outcomes(weights: Mapping[str, float]) -> str:
    return ",".join(f"{name}={share:g}" for name, share in weights.items())


class Wallet:
    """The balance calls are charged to; safe to top up from another thread while serving."""

    def __init__(self, balance: float, cost: float) -> None:
        self._balance_micro = round(balance * _MICRO)
        self._cost_micro = round(cost * _MICRO)
        self._calls = 0
        self._lock = threading.Lock()

    @property
    def balance(self) -> float:
        return self._balance_micro / _MICRO

    def top_up(self, amount: float) -> None:
        """Add `amount` (negative amounts drain it)."""
        with self._lock:
            self._balance_micro += round(amount * _MICRO)

    def charge(self) -> int | None:
        """Charge one call and return its number (1, 2, ...); None when the balance is below 0.2."""
        # Check and charge under one lock with no await between: concurrent calls cannot overdraw.
        with self._lock:
            if self._balance_micro < _MIN_BALANCE_MICRO:
                return None
            self._balance_micro -= self._cost_micro
            self._calls += 1
            return self._calls


class Account:
    """What one fake accepts: one organization, one agent, registered numbers, one key, a wallet."""

    def __init__(
        self,
        *,
        organization_id: int,
        agent_id: int,
        call_from: Iterable[str],
        api_key: str,
        balance: float,
        cost: float,
    ) -> None:
        numbers = tuple(call_from)
        for number in numbers:
            if not is_e164(number):
                raise ValueError(f"call_from {number!r} is not an E.164 number")
        if not numbers:
            raise ValueError("call_from needs at least one number")
        self.organization_id = organization_id
        self.agent_id = agent_id
        self.call_from = numbers
        self.api_key = api_key
        self.wallet = Wallet(balance, cost)
        self._call_from_set = frozenset(numbers)
        self._sip_trunk_id = f"ST_fake_{organization_id}_{agent_id}"
        self._room_prefix = secrets.token_hex(3)

    def refusal(
        self, content_type: str, parsed: Any, body: dict[str, Any] | None
    ) -> tuple[int, str] | None:
        """The 400/401/404 status and message the real API would answer, else None (go on to
        the wallet)."""
        if content_type != "application/json":
            return 400, "Content-Type must be application/json"
        if body is None:
            what = "not JSON" if parsed is None else "not a JSON object"
            return 400, f"Request body is {what}"
        problem = shape_problem(body)
        if problem is not None:
            return 400, problem
        if body["api_key"] != self.api_key:
            return 401, STATUS_ERRORS[401]
        if body["organization_id"] != self.organization_id:
            return 404, "Organization not found"
        if body["use_agent_id"] != self.agent_id:
            return 404, "Agent not found"
        if body["call_from"] not in self._call_from_set:
            return 404, "call_from number is not registered"
        return None

    def success_body(self, called_to: str, number: int) -> bytes:
        """The documented success body for call `number`, with a room name unique to it."""
        return json.dumps(self.success(called_to, number)).encode()

    def success(self, called_to: str, number: int) -> dict[str, Any]:
        """The success body's fields (the call logs keep its room name)."""
        return {
            "success": True,
            "sip_trunk_id": self._sip_trunk_id,
            "sip_call_to": called_to,
            "room_name": f"room-{number}-{self._room_prefix}{secrets.token_hex(4)}",
            "participant_identity": f"sip_{called_to}",
            "participant_name": f"Agent {self.agent_id}",
        }
