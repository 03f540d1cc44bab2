"""Reading Tabbly's call logs (SPEC 10): pages of `LogRow`s, retried, bounded, and the key kept
out of every message.

    query = LogsQuery(url, organization_id=244, agent_id=33, api_key=key,
                      date_from=date(2026, 3, 1), date_to=date(2026, 3, 3), zone=UTC)
    async for page in read_logs(query, settings):
        for row in page:
            matcher.feed(row)

Tabbly documents two versions that disagree, so each request sends both query spellings
(`date_from`/`date_to` and `start_date`/`end_date`, `use_agent_id` and `agent_id`) and either
envelope is read (`{"status": "success", "data": [...], "total_records": N}` or
`{"success": true, "calls": [...], "total": N}`). Pages are asked with `limit`/`offset` until an
empty page, the total, or (no total given) a short page.

A read is safe to repeat: connection failures, timeouts, 429 and 5xx are asked again with the
project's backoff (`RetryPolicy`), never sooner than a Retry-After says (capped). An error
envelope or another 4xx is a `LogsError` at once. A whole read is bounded by
`sync_deadline_seconds`, a page by `logs_max_page_bytes`, the pages by `logs_max_pages`. A page's
JSON values are counted before they are decoded (`logs_max_page_values`: 60 MB of `{}` would be
20 million objects) and its rows after (`logs_max_page_rows`); past either the read fails.

The key travels in the query string, and aiohttp's exceptions carry the URL: no message here is
ever built from one. Messages name the host and path only, and pass the `Scrubber`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import date, tzinfo
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from dialer.campaign.model import shown_url
from dialer.core.retry_policy import RetryPolicy
from dialer.core.settings import DEFAULTS, Settings
from dialer.core.statuses import RETRYABLE_LOGS_HTTP, LogsError
from dialer.tabbly.client import (
    JSON_GET_HEADERS,
    Scrubber,
    Secret,
    Unread,
    parse_retry_after,
    read_bounded,
    upstream_json,
)
from dialer.tabbly.log_rows import INT_DIGITS, LogRow, ascii_int, parse_row

_DETAIL_CHARS = 200
# A URL's query string in an upstream's text: dropped from messages, whatever it holds.
_URL_QUERY = re.compile(r"(https?://[^\s?#]*)[?#]\S*", re.IGNORECASE)


@dataclass(frozen=True, repr=False)
class LogsQuery:
    """What to read: whose logs, over which days (inclusive, in the campaign's logs_timezone),
    and the zone a `called_time` without an offset is in. Its repr shows neither the key nor
    the URL's query string (TABBLY_LOGS_URL may hold a key too)."""

    url: str
    organization_id: int
    agent_id: int
    api_key: Secret
    date_from: date
    date_to: date
    zone: tzinfo

    def __repr__(self) -> str:
        where = shown_url(self.url)
        return (
            f"LogsQuery({where!r}, organization_id={self.organization_id}, "
            f"agent_id={self.agent_id}, {self.date_from}..{self.date_to}, zone={self.zone})"
        )


async def read_logs(query: LogsQuery, settings: Settings = DEFAULTS) -> AsyncIterator[list[LogRow]]:
    """Yield the logs one page of parsed rows at a time, newest first as Tabbly sends them.

    Raises `LogsError` (one line, no key) when they cannot be read within the bounds."""
    reader = _Reader(query, settings)
    limit = settings.logs_page_size
    offset = 0
    pages = 0
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=settings.logs_timeout_seconds)
    headers = JSON_GET_HEADERS
    # read_bounded decodes, within the page's bound.
    async with aiohttp.ClientSession(
        timeout=timeout, headers=headers, auto_decompress=False
    ) as session:
        while True:
            if pages >= settings.logs_max_pages:
                raise reader.error(
                    f"more than {settings.logs_max_pages} pages of {limit} rows "
                    "(logs_max_pages); read a shorter period with --since"
                )
            items, total = await reader.page(session, offset, limit)
            pages += 1
            yield reader.parse(items)
            offset += len(items)
            if not items:
                break
            if total is not None:
                if offset >= total:
                    break
            elif len(items) < limit:
                break


@dataclass(frozen=True, slots=True)
class _Retry:
    """An answer worth asking again: why, and how long the upstream asked us to wait."""

    reason: str
    retry_after: float | None = None


class _Reader:
    """One read's state: the request parameters, the scrubber, the retry policy, the deadline."""

    def __init__(self, query: LogsQuery, settings: Settings) -> None:
        self._query = query
        self._settings = settings
        self._scrub = Scrubber(query.api_key)
        self._policy = RetryPolicy(settings.logs_max_attempts, settings)
        parts = urlsplit(query.url)
        # What messages name: never the query string (the key), nor user:password@.
        host = parts.hostname or ""
        self.where = f"{host}:{parts.port}{parts.path}" if parts.port else f"{host}{parts.path}"
        self._deadline = asyncio.get_running_loop().time() + settings.sync_deadline_seconds

    def error(self, text: str) -> LogsError:
        """A one-line LogsError, scrubbed of the key in any form, no URL's query string."""
        text = _URL_QUERY.sub(r"\1?...", self._scrub(text))
        return LogsError(" ".join(f"call logs: {text}".split()))

    def parse(self, items: list[Any]) -> list[LogRow]:
        zone, settings, scrub = self._query.zone, self._settings, self._scrub
        rows = (parse_row(item, zone, settings, scrub=scrub) for item in items)
        return [row for row in rows if row is not None]

    def _params(self, offset: int, limit: int) -> dict[str, str]:
        q = self._query
        first, last = q.date_from.isoformat(), q.date_to.isoformat()
        return {
            "organization_id": str(q.organization_id),
            "api_key": q.api_key.reveal(),
            "use_agent_id": str(q.agent_id),
            "agent_id": str(q.agent_id),
            "date_from": first,
            "date_to": last,
            "start_date": first,
            "end_date": last,
            "limit": str(limit),
            "offset": str(offset),
        }

    async def page(
        self, session: aiohttp.ClientSession, offset: int, limit: int
    ) -> tuple[list[Any], int | None]:
        """One page's row objects and the total, if the envelope gives one; retried."""
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            attempt += 1
            answer = await self._attempt(session, offset, limit)
            if not isinstance(answer, _Retry):
                return answer
            delay = self._policy.delay(attempt, answer.retry_after)
            if delay is None:
                raise self.error(f"{answer.reason} from {self.where}, {attempt} attempts")
            if loop.time() + delay > self._deadline:
                raise self._deadline_error(f"; last: {answer.reason}")
            await asyncio.sleep(delay)

    def _deadline_error(self, last: str = "") -> LogsError:
        seconds = self._settings.sync_deadline_seconds
        return self.error(
            f"not read within {seconds:g} s (sync_deadline_seconds) from {self.where}{last}"
        )

    async def _attempt(
        self, session: aiohttp.ClientSession, offset: int, limit: int
    ) -> tuple[list[Any], int | None] | _Retry:
        loop = asyncio.get_running_loop()
        remaining = self._deadline - loop.time()
        if remaining <= 0:
            raise self._deadline_error()
        settings = self._settings
        timeout = aiohttp.ClientTimeout(total=min(settings.logs_timeout_seconds, remaining))
        # Exceptions are reduced to their type name here and raised from outside the handler:
        # their text, and a chained __context__, would carry the URL with the key.
        failure: str | None = None
        fatal: str | None = None
        unread: Unread | None = None
        status, retry_after, body = 0, None, b""
        try:
            # Never a redirect: it would carry the key in the query string to its Location.
            async with session.get(
                self._query.url,
                params=self._params(offset, limit),
                timeout=timeout,
                allow_redirects=False,
            ) as response:
                status = response.status
                retry_after = response.headers.get("Retry-After")
                body = await read_bounded(response, settings.logs_max_page_bytes)
        except Unread as exc:
            unread = exc
        except TimeoutError:
            failure = f"no answer within {timeout.total:g} s"
        except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError):
            fatal = "the logs URL is not a valid http(s) URL (logs_endpoint / TABBLY_LOGS_URL)"
        except (aiohttp.ClientError, OSError) as exc:
            failure = f"connection failed ({type(exc).__name__})"
        if fatal is not None:
            raise self.error(fatal)
        if failure is not None:
            if loop.time() >= self._deadline:
                raise self._deadline_error(f"; last: {failure}")
            return _Retry(failure)
        if 300 <= status < 400:
            raise self.error(f"a redirect from {self.where}, not followed (HTTP {status})")
        if status in RETRYABLE_LOGS_HTTP:
            cap = settings.max_retry_after
            return _Retry(f"HTTP {status}", parse_retry_after(retry_after, cap))
        if unread is not None:
            bound = " (logs_max_page_bytes)" if unread.too_large else ""
            raise self.error(f"a page from {self.where} is {unread}{bound}")
        payload = self._decode(body)
        if not 200 <= status < 300:
            raise self.error(f"{self._detail(payload, body) or 'refused'} (HTTP {status})")
        return self._envelope(payload, body, status)

    def _decode(self, body: bytes) -> Any:
        """The page's JSON (None: not JSON), refused past `logs_max_page_values` values."""
        limit = self._settings.logs_max_page_values
        try:
            return _json(body, limit)
        except _TooDense:
            raise self.error(
                f"a page from {self.where} holds more than {limit} JSON values "
                "(logs_max_page_values); read a shorter period with --since"
            ) from None

    def _bounded(self, rows: list[Any]) -> list[Any]:
        limit = self._settings.logs_max_page_rows
        if len(rows) > limit:
            raise self.error(
                f"a page from {self.where} holds {len(rows)} rows, more than {limit} "
                f"(logs_max_page_rows; {self._settings.logs_page_size} were asked)"
            )
        return rows

    def _envelope(self, payload: Any, body: bytes, status: int) -> tuple[list[Any], int | None]:
        if isinstance(payload, list):
            return self._bounded(payload), None
        if not isinstance(payload, dict):
            raise self.error(f"the answer from {self.where} is not JSON (HTTP {status})")
        if payload.get("status") == "error" or payload.get("success") is False:
            raise self.error(f"{self._detail(payload, body) or 'error'} (HTTP {status})")
        for key in ("data", "calls"):
            rows = payload.get(key)
            if isinstance(rows, dict):  # a nested envelope: {"data": {"calls": [...]}}
                payload, rows = rows, rows.get("calls", rows.get("data"))
            if isinstance(rows, list):
                return self._bounded(rows), _total(payload)
        raise self.error(f"the answer from {self.where} holds no rows (HTTP {status})")

    def _detail(self, payload: Any, body: bytes) -> str:
        """The upstream's error text, scrubbed once decoded and then cut."""
        text = ""
        if isinstance(payload, dict):
            for key in ("message", "error", "detail", "msg"):
                value = payload.get(key)
                if isinstance(value, dict):
                    value = value.get("message")
                if isinstance(value, str) and value.strip():
                    text = value
                    break
        elif payload is None:
            raw = body.decode("utf-8", "replace").strip()
            text = "HTML error page" if raw.startswith("<") else raw
        return " ".join(self._scrub(text).split())[:_DETAIL_CHARS]


class _TooDense(Exception):
    """A page holding more JSON values than a sync decodes."""


def _json(body: bytes, max_values: int) -> Any:
    """The decoded body, None when it is not JSON; `_TooDense` past `max_values` values.

    Objects, arrays and strings are counted from the bytes before anything is decoded (each
    `{`, `[` and pair of quotes may be one: an upper bound, cheap), numbers as they are decoded.
    A number too long for int() is read as a float (inf, say): a bad value, not a bad page."""
    if not body:
        return None
    values = body.count(b"{") + body.count(b"[") + body.count(b'"') // 2
    if values > max_values:
        raise _TooDense

    def counted(read: Callable[[str], Any]) -> Callable[[str], Any]:
        def number(text: str) -> Any:
            nonlocal values
            values += 1
            if values > max_values:
                raise _TooDense
            return read(text)

        return number

    return upstream_json(body, parse_int=counted(_json_int), parse_float=counted(float))


def _json_int(text: str) -> int | float:
    return int(text) if len(text) <= INT_DIGITS else float(text)


def _total(payload: dict[str, Any]) -> int | None:
    for key in ("total_records", "total"):
        value = payload.get(key)
        if isinstance(value, bool):
            continue
        if isinstance(value, int) and value >= 0:
            return value
        if isinstance(value, str) and (number := ascii_int(value)) is not None:
            return number
    return None
