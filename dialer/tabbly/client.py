"""The upstream: the request body, the one `ClientSession`, and every answer -> an `Outcome`.

Each answer is one `Kind` (the taxonomy, and what each kind makes of a row, live in
`statuses`: `Kind`, `KIND_RULES`).

The line between RETRY and UNKNOWN is "did the request leave?": aiohttp raises
`ClientConnectorError`/`ConnectionTimeoutError` before a byte is sent, and
`SocketTimeoutError`/`ServerDisconnectedError`/`ClientOSError` after.

An upstream may be hostile or broken: no redirect is followed (a 307 would re-post the key to
another host), an answer is read to a bound (decompressed) and within one deadline, and every
text taken from it is scrubbed of the key, whole or in fragments (`Scrubber`, `key_pattern`).
The key itself is a `Secret` (`api_key_from`, checked by `key_problem`): never in a repr.
"""

from __future__ import annotations

import asyncio
import html.entities
import json
import math
import re
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

from dialer.campaign.model import Campaign, shown_url
from dialer.core.settings import DEFAULTS, Settings
from dialer.core.statuses import (
    BALANCE_HTTP,
    CAMPAIGN_REFUSED_HTTP,
    RETRYABLE_HTTP,
    Kind,
    UsageError,
)
from dialer.sheets.contacts import Contact

_REASON_CHARS = 200
_CHUNK = 64 * 1024
# The shortest run of the key's consecutive characters scrubbed from upstream text: an echo
# cut short ("invalid api_key sk-live-ZZTOPSECRET1234..") gives most of the key away too.
KEY_FRAGMENT_CHARS = 8
_BLOCK = KEY_FRAGMENT_CHARS // 2


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


def key_problem(key: str, settings: Settings = DEFAULTS) -> str | None:
    """What is wrong with an API key taken from the environment, or None: an absurdly long
    one (no Tabbly key is near the bound) would make every scrub of upstream text costly."""
    if len(key) > settings.max_api_key_chars:
        return (
            f"holds {len(key)} characters: an API key is at most "
            f"{settings.max_api_key_chars} (max_api_key_chars)"
        )
    return None


def api_key_from(campaign: Campaign, environ: Mapping[str, str]) -> Secret:
    """The campaign's key from the environment (never from a file): one line, exit 2, when
    it is missing or absurd."""
    value = environ.get(campaign.api_key_env, "").strip()
    if not value:
        raise UsageError(
            f"environment variable {campaign.api_key_env} is not set: "
            "it must hold the Tabbly API key"
        )
    problem = key_problem(value)
    if problem:
        raise UsageError(f"environment variable {campaign.api_key_env} {problem}")
    return Secret(value)


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


def key_pattern(key: str) -> re.Pattern[str]:
    """The key in every form an upstream answer may carry it (`_char_forms`, character by
    character): what `Scrubber` replaces wherever an escape character shows it may be there."""
    return re.compile("".join(map(_char_forms, key)))


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


class _Fragments:
    """Finds the runs of KEY_FRAGMENT_CHARS or more of the key's consecutive characters in a
    text, at C speed for any text whatever its length.

    Such a run holds whole one of the key's blocks of 4 characters at offsets 0, 4, 8, ...,
    starting at most 3 characters into the run. Each block is looked for with `str.find`
    (len(key) / 4 searches), and a hit is grown along the key: left at most 3 characters,
    right as far as text and key agree. A hit inside a run already grown is skipped.
    """

    __slots__ = ("_blocks", "_key")

    def __init__(self, key: str) -> None:
        self._key = key
        self._blocks = (
            [(k, key[k : k + _BLOCK]) for k in range(0, len(key) - _BLOCK + 1, _BLOCK)]
            if len(key) >= KEY_FRAGMENT_CHARS
            else []
        )

    def __repr__(self) -> str:
        return "_Fragments(...)"

    def scrub(self, text: str) -> str:
        """`text` with each stretch covered by runs of the key (touching runs are one) as
        `***`."""
        merged: list[list[int]] = []
        for start, end in sorted(self._spans(text)):
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        if not merged:
            return text
        parts: list[str] = []
        done = 0
        for start, end in merged:
            parts += (text[done:start], "***")
            done = end
        parts.append(text[done:])
        return "".join(parts)

    def _spans(self, text: str) -> list[tuple[int, int]]:
        key, size = self._key, len(text)
        spans: list[tuple[int, int]] = []
        grown: dict[int, int] = {}  # text position - key position -> end of the run grown
        for k, block in self._blocks:
            at = text.find(block)
            while at != -1:
                shift = at - k
                if grown.get(shift, -1) < at + _BLOCK:
                    start, end = at, at + _BLOCK
                    while start > at - _BLOCK + 1 and start > max(shift, 0):
                        if text[start - 1] != key[start - 1 - shift]:
                            break
                        start -= 1
                    while end < size and end - shift < len(key) and text[end] == key[end - shift]:
                        end += 1
                    if end - start >= KEY_FRAGMENT_CHARS:
                        spans.append((start, end))
                        grown[shift] = end
                at = text.find(block, at + 1)
        return spans


class Scrubber:
    """Removes the API key from text an upstream sent back, in every encoding it may be in
    (SPEC 7), and any run of KEY_FRAGMENT_CHARS or more of its characters (an echo cut
    short): run on the text after decoding, before it is cut, stored or shown.

    Every form but the key itself starts with an escape character (`\\`, `%`, `&`, or `+`
    for a space), so text holding none of them can only carry the key literally: that
    common case is a substring search, with the same result as the pattern. The key's
    length is bounded at start (`key_problem`), so building one stays cheap.
    """

    __slots__ = ("_escapes", "_fragments", "_key", "_pattern")

    def __init__(self, key: Secret) -> None:
        value = key.reveal()
        self._key = key
        self._pattern = key_pattern(value) if value else None
        self._escapes = ("\\", "%", "&", "+") if " " in value else ("\\", "%", "&")
        self._fragments = _Fragments(value)

    def __repr__(self) -> str:
        return "Scrubber(...)"

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        for escape in self._escapes:
            if escape in text:
                return self._fragments.scrub(self._pattern.sub("***", text))
        return self._fragments.scrub(text.replace(self._key.reveal(), "***"))


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
    """Seconds the upstream asks us to wait, capped: a nightly run must not sleep for hours.

    None (no wish) for anything that is neither a number nor an HTTP date: whatever the
    header holds, never an exception."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds: float | None = float(value)
    except ValueError:
        seconds = _seconds_until(value)
    if seconds is None or math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), cap)


def _seconds_until(date: str) -> float | None:
    """Seconds from now to an HTTP date; None when it is no date. A date without a zone
    (`-0000`) is UTC, as RFC 5322 says."""
    try:
        when = parsedate_to_datetime(date)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return (when - datetime.now(UTC)).total_seconds()
    except (TypeError, ValueError, OverflowError, IndexError):
        return None


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
    # Either needs a backslash or (in a str) a character past ASCII: both checks are cheaper
    # than the pattern, which an ordinary answer (once per request) then never runs.
    if isinstance(body, str):
        may_hold = ("\\" in body or not body.isascii()) and _MAY_HOLD.search(body)
    else:
        may_hold = b"\\" in body and _MAY_HOLD_BYTES.search(body)
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
    if 300 <= status < 400:
        # Never followed (it would carry the key elsewhere): the row is refused, as on a 4xx.
        return Outcome(Kind.FAILED, f"refused: HTTP {status} redirect, not followed", status)
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


# What every upstream request accepts, and `read_bounded` decodes itself: aiohttp's own decoding
# fails an answer in another encoding (br without Brotli) before its status can be read.
ACCEPT_ENCODING = "gzip, deflate"
# The headers of a GET of a JSON listing (call logs, agents).
JSON_GET_HEADERS = {
    "Accept": "application/json",
    "User-Agent": "dialer/0.1",
    "Accept-Encoding": ACCEPT_ENCODING,
}
_DECODED = frozenset({"gzip", "x-gzip", "deflate"})


class Unread(Exception):
    """An answer's body was not read: over the bound, in an encoding not decoded, corrupt."""

    def __init__(self, reason: str, *, too_large: bool = False) -> None:
        super().__init__(reason)
        self.too_large = too_large


async def read_bounded(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body of a response from a session without `auto_decompress`, decoded (gzip,
    deflate) and at most `limit` bytes once decoded: a gzip bomb and an endless body stop at
    the bound, read in chunks. Raises `Unread`; the connection is then closed, not drained."""
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    if encoding in ("", "identity"):
        decoder = None
        if response.content_length is not None:
            if response.content_length > limit:
                response.close()
                raise Unread(f"over {limit} bytes", too_large=True)
            # Its length said and within the bound: aiohttp reads no further than it, in one
            # call rather than chunk by chunk (the common answer, once per request).
            return await response.read()
    elif encoding in _DECODED:
        decoder = zlib.decompressobj(wbits=47)  # a gzip or zlib header, told apart by zlib
    else:
        response.close()
        raise Unread("in an unknown encoding")  # its name is upstream text: not shown
    body = bytearray()
    try:
        async for chunk in response.content.iter_chunked(_CHUNK):
            while chunk:
                if decoder is None:
                    body += chunk
                    chunk = b""
                else:
                    body += decoder.decompress(chunk, limit + 1 - len(body))
                    chunk = b"" if decoder.eof else decoder.unconsumed_tail
                if len(body) > limit:
                    response.close()
                    raise Unread(f"over {limit} bytes", too_large=True)
            if decoder is not None and decoder.eof:  # what follows the data is not read
                response.close()
                break
    except zlib.error:
        response.close()
        raise Unread(f"not valid {encoding} data") from None
    if decoder is not None and not decoder.eof:
        raise Unread(f"{encoding} data cut short")
    return bytes(body)


@dataclass(slots=True)
class _Heard:
    """What an answer said before its body, kept when the deadline cuts the body short."""

    status: int | None = None
    retry_after: str | None = None


class TabblyClient:
    """One ClientSession for the whole run; `post` never raises for network trouble.

    A request connects within `timeout` (else it never left: retried) and is over, answer
    read, within `timeout * request_deadline_timeouts` whatever its bytes do (else `unknown`).
    """

    def __init__(
        self,
        endpoint: str,
        api_key: Secret,
        concurrency: int,
        timeout: float,
        settings: Settings = DEFAULTS,
    ) -> None:
        self.endpoint = endpoint
        self._scrub = Scrubber(api_key)
        self._concurrency = concurrency
        self._timeout = timeout
        self._deadline = timeout * settings.request_deadline_timeouts
        self._max_bytes = settings.max_answer_bytes
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"TabblyClient({shown_url(self.endpoint)!r})"

    async def __aenter__(self) -> TabblyClient:
        connector = aiohttp.TCPConnector(
            limit=self._concurrency, limit_per_host=self._concurrency, keepalive_timeout=10
        )
        # No total timeout here: aiohttp's could not tell "never sent" from "sent, no answer".
        # `post` holds its own deadline, past the connect timeout.
        timeout = aiohttp.ClientTimeout(
            total=None, connect=self._timeout, sock_connect=self._timeout, sock_read=self._timeout
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            headers={
                "Content-Type": "application/json",
                "User-Agent": "dialer/0.1",
                "Accept-Encoding": ACCEPT_ENCODING,
            },
            auto_decompress=False,  # read_bounded decodes, within the bound
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def post(self, body: bytes) -> Outcome:
        heard = _Heard()
        try:
            async with asyncio.timeout(self._deadline):
                return await self._exchange(body, heard)
        except TimeoutError:
            # Past the connect timeout: the request left. A status heard still decides
            # (a 429 placed nothing); a 2xx or no status at all may be a placed call.
            status = heard.status
            if status is not None and not 200 <= status < 300:
                return classify(status, "", heard.retry_after)
            return Outcome(
                Kind.UNKNOWN,
                f"no complete answer within {self._deadline:g}s (request deadline)",
                status,
            )

    async def _exchange(self, body: bytes, heard: _Heard) -> Outcome:
        assert self._session is not None, "use `async with TabblyClient(...)`"
        try:
            # Never a redirect: a 307/308 would post the body, key included, to its Location.
            async with self._session.post(
                self.endpoint, data=body, allow_redirects=False
            ) as response:
                heard.status = status = response.status
                heard.retry_after = retry_after = response.headers.get("Retry-After")
                try:
                    raw = await read_bounded(response, self._max_bytes)
                except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TimeoutError):
                    if 200 <= status < 300:
                        return Outcome(Kind.UNKNOWN, f"{status}, answer cut off", status)
                    raw = b""
                except Unread as exc:
                    if 200 <= status < 300:
                        bound = " (max_answer_bytes)" if exc.too_large else ""
                        return Outcome(
                            Kind.UNKNOWN, f"{status}, answer not read: {exc}{bound}", status
                        )
                    raw = b""  # the status alone says what became of the row
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
