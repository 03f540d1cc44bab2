"""The upstream: the request body, the one `ClientSession`, and every answer -> an `Outcome`.

Each answer is one `Kind` (the taxonomy, and what each kind makes of a row, live in
`statuses`: `Kind`, `KIND_RULES`).

The line between RETRY and UNKNOWN is "did the request leave?": aiohttp raises
`ClientConnectorError`/`ConnectionTimeoutError` before a byte is sent, and
`SocketTimeoutError`/`ServerDisconnectedError`/`ClientOSError` after.
"""

from __future__ import annotations

import html.entities
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

from dialer.campaign import Campaign
from dialer.contacts import Contact
from dialer.settings import DEFAULTS
from dialer.statuses import (
    BALANCE_HTTP,
    CAMPAIGN_REFUSED_HTTP,
    RETRYABLE_HTTP,
    Kind,
)

_REASON_CHARS = 200


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: Kind
    reason: str
    http_status: int | None = None
    call_id: str = ""
    retry_after: float | None = None
    participant_identity: str = ""  # with `call_id` (room_name), how call logs name the call


class Secret:
    """Holds the API key; its repr and str never show it (SPEC 7)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


# JSON's two-character escapes, for the characters that have one.
_JSON_SHORT = {
    '"': '"',
    "\\": "\\",
    "/": "/",
    "\b": "b",
    "\f": "f",
    "\n": "n",
    "\r": "r",
    "\t": "t",
}


def _char_forms(char: str) -> str:
    """A regex for one character of the key in every form an upstream answer may carry it:
    itself, a JSON `\\uXXXX` (or short) escape, percent-encoded UTF-8, an HTML character
    reference; escapes may be doubled (`\\\\u0041`, `%2541`, `&amp;#65;`)."""
    forms = [re.escape(char)]
    units = char.encode("utf-16-be")
    json_units = "".join(
        rf"\\+u(?i:{units[i]:02x}{units[i + 1]:02x})" for i in range(0, len(units), 2)
    )
    forms.append(json_units)
    if char in _JSON_SHORT:
        forms.append(r"\\+" + re.escape(_JSON_SHORT[char]))
    forms.append("".join(f"%(?:25)*(?i:{b:02x})" for b in char.encode("utf-8")))
    if char == " ":
        forms.append(r"\+")
    point = ord(char)
    forms.append(rf"&(?:amp;)*#(?:0*{point}|(?i:x0*{point:x}));?")
    name = html.entities.codepoint2name.get(point)
    if name:
        forms.append(rf"&(?:amp;)*{name};")
    return "(?:" + "|".join(forms) + ")"


class Scrubber:
    """Removes the API key from text an upstream sent back, in every encoding it may be in
    (SPEC 7): run on the text after decoding, before it is cut, stored or shown.

    Every form but the key itself starts with an escape character (`\\`, `%`, `&`, or `+`
    for a space), so text holding none of them can only carry the key literally: that
    common case is a substring search, with the same result as the pattern.
    """

    __slots__ = ("_escapes", "_key", "_pattern")

    def __init__(self, key: Secret) -> None:
        value = key.reveal()
        self._key = key
        self._pattern = re.compile("".join(map(_char_forms, value))) if value else None
        self._escapes = ("\\", "%", "&", "+") if " " in value else ("\\", "%", "&")

    def __repr__(self) -> str:
        return "Scrubber(...)"

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        for escape in self._escapes:
            if escape in text:
                return self._pattern.sub("***", text)
        return text.replace(self._key.reveal(), "***")


# What `json.dumps(text, ensure_ascii=False)` returns for a str (the C encoder when built).
_json_string: Callable[[str], str] = json.encoder.encode_basestring  # type: ignore[attr-defined]


def _no_scrub(text: str) -> str:
    return text


class BodyBuilder:
    """Serialises one trigger-call body per contact; the campaign's fields are fixed.

    The fixed part is encoded once per campaign and each row's four strings are spliced in
    with the encoder `json.dumps(value, ensure_ascii=False)` itself uses for a string, so
    the bytes equal `json.dumps` of the whole body at a fifth of the cost. It holds the key:
    its repr shows nothing.
    """

    __slots__ = ("_head",)

    def __init__(self, campaign: Campaign, api_key: Secret) -> None:
        fixed = {
            "organization_id": campaign.organization_id,
            "use_agent_id": campaign.agent_id,
            "call_from": campaign.call_from,
            "called_by_account": campaign.called_by_account,
            "api_key": api_key.reveal(),
        }
        # '{"organization_id": 244, ..., "api_key": "..."' : the object left open.
        self._head = json.dumps(fixed, ensure_ascii=False)[:-1]

    def __repr__(self) -> str:
        return "BodyBuilder(...)"

    def build(self, contact: Contact) -> bytes:
        string = _json_string
        return (
            f'{self._head}, "called_to": {string(contact.called_to)}, '
            f'"custom_first_line": {string(contact.first_line)}, '
            f'"custom_instruction": {string(contact.instruction)}, '
            f'"custom_identifiers": {string(contact.custom_identifiers)}}}'
        ).encode()


def parse_retry_after(value: str | None, cap: float = DEFAULTS.max_retry_after) -> float | None:
    """Seconds the upstream asks us to wait, capped: a nightly run must not sleep for hours."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        from datetime import UTC, datetime

        seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0.0), cap)


def _error_text(payload: Any, text: str) -> str:
    if isinstance(payload, dict):
        for key in ("error", "message", "detail", "msg"):
            if isinstance(payload.get(key), str) and payload[key].strip():
                return payload[key].strip()
    text = " ".join(text.split())
    if text.startswith("<"):
        return "HTML error page"
    return text or "empty body"


# A UTF-16 surrogate, or a JSON escape of one: paired ones decode to one character, a lone one
# stays a surrogate, which no file, ledger or console can hold (UnicodeEncodeError).
_SURROGATE = re.compile("[\ud800-\udfff]")
_ESCAPED = r"\\u[dD][89a-fA-F]"
_MAY_HOLD = re.compile(f"{_ESCAPED}|[\ud800-\udfff]")
_MAY_HOLD_BYTES = re.compile(_ESCAPED.encode())


def upstream_json(body: str | bytes, **loads: Any) -> Any:
    """An upstream's answer decoded as JSON (None if it is not), every lone surrogate in its
    strings (an escape like "\\ud800" in a room_name) made U+FFFD: text from Tabbly is written
    to the ledger, reports and the console, and must never make one of them fail. `loads`:
    json.loads' own hooks (the call logs count the values they decode)."""
    try:
        payload = json.loads(body, **loads) if body else None
    except (ValueError, RecursionError):
        return None
    may_hold = _MAY_HOLD.search(body) if isinstance(body, str) else _MAY_HOLD_BYTES.search(body)
    return _mended(payload) if may_hold else payload


def _mended(payload: Any) -> Any:
    """`payload` with its strings' lone surrogates replaced, walked without recursion (the
    nesting JSON allowed could exceed Python's stack)."""

    def mend(value: Any) -> Any:
        return _SURROGATE.sub("\ufffd", value) if isinstance(value, str) else value

    root = [mend(payload)]
    stack: list[Any] = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            for i, value in enumerate(node):
                node[i] = mend(value)
                if isinstance(value, dict | list):
                    stack.append(value)
        elif isinstance(node, dict):
            for key in list(node):
                value = node.pop(key)
                node[mend(key)] = mend(value)
                if isinstance(value, dict | list):
                    stack.append(value)
    return root[0]


def classify(
    status: int, text: str, retry_after: str | None, scrub: Callable[[str], str] = _no_scrub
) -> Outcome:
    """Map an HTTP answer to an Outcome: the one place the status codes are read.

    `scrub` runs on every text taken from the answer once it is decoded (JSON escapes
    undone), before it is cut: a key escaped or straddling the cut must not survive.
    """
    payload = upstream_json(text)
    if 200 <= status < 300:
        if isinstance(payload, dict) and payload.get("success") is True:
            call_id, identity = payload.get("room_name"), payload.get("participant_identity")
            return Outcome(
                Kind.TRIGGERED,
                "",
                status,
                scrub(call_id)[:_REASON_CHARS] if isinstance(call_id, str) else "",
                participant_identity=(
                    scrub(identity)[:_REASON_CHARS] if isinstance(identity, str) else ""
                ),
            )
        if isinstance(payload, dict) and payload.get("success") is False:
            detail = scrub(_error_text(payload, text))
            return Outcome(Kind.FAILED, f"refused: {detail}"[:_REASON_CHARS], status)
        # A 2xx we cannot read may still be a placed call: never re-send it.
        return Outcome(Kind.UNKNOWN, f"{status} with an unreadable body", status)
    detail = scrub(_error_text(payload, text))[:_REASON_CHARS]
    if status == BALANCE_HTTP:
        return Outcome(Kind.STOP_BALANCE, f"insufficient balance: {detail}", status)
    if status in CAMPAIGN_REFUSED_HTTP:
        return Outcome(Kind.STOP_CAMPAIGN, f"{status} campaign refused: {detail}", status)
    if status in RETRYABLE_HTTP:
        return Outcome(
            Kind.RETRY, f"{status}: {detail}", status, retry_after=parse_retry_after(retry_after)
        )
    if 400 <= status < 500:
        return Outcome(Kind.FAILED, f"{status}: {detail}", status)
    # 504, 501, ...: the gateway may have passed the request on; the call may exist.
    return Outcome(Kind.UNKNOWN, f"{status}: {detail}", status)


class TabblyClient:
    """One ClientSession for the whole run; `post` never raises for network trouble."""

    def __init__(self, endpoint: str, api_key: Secret, concurrency: int, timeout: float) -> None:
        self.endpoint = endpoint
        self._scrub = Scrubber(api_key)
        self._concurrency = concurrency
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"TabblyClient({self.endpoint!r})"

    async def __aenter__(self) -> TabblyClient:
        connector = aiohttp.TCPConnector(
            limit=self._concurrency, limit_per_host=self._concurrency, keepalive_timeout=10
        )
        # No total timeout: it could not tell "never sent" from "sent, no answer".
        timeout = aiohttp.ClientTimeout(
            total=None, connect=self._timeout, sock_connect=self._timeout, sock_read=self._timeout
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            headers={"Content-Type": "application/json", "User-Agent": "dialer/0.1"},
            auto_decompress=True,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def post(self, body: bytes) -> Outcome:
        assert self._session is not None, "use `async with TabblyClient(...)`"
        try:
            async with self._session.post(self.endpoint, data=body) as response:
                status = response.status
                retry_after = response.headers.get("Retry-After")
                try:
                    raw = await response.read()
                except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TimeoutError):
                    if 200 <= status < 300:
                        return Outcome(Kind.UNKNOWN, f"{status}, answer cut off", status)
                    raw = b""
            # Scrubbed as received, and classify scrubs each text it takes from the answer
            # once decoded, before it is cut: every text of the outcome has been through it.
            scrub = self._scrub
            outcome = classify(status, scrub(raw.decode("utf-8", "replace")), retry_after, scrub)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            return Outcome(Kind.RETRY, f"connection failed: {type(exc).__name__}")
        except (aiohttp.InvalidUrlClientError, aiohttp.NonHttpUrlClientError) as exc:
            return Outcome(Kind.FAILED, f"invalid endpoint URL: {type(exc).__name__}")
        except aiohttp.SocketTimeoutError:
            return Outcome(Kind.UNKNOWN, f"no answer within {self._timeout:g}s (read timeout)")
        except aiohttp.ServerDisconnectedError:
            return Outcome(Kind.UNKNOWN, "connection dropped before the answer")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return Outcome(Kind.UNKNOWN, f"network error after sending: {type(exc).__name__}")
        return outcome
