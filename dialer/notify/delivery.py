"""The outbox's entries POSTed to their webhooks, with retries (SPEC 13).

    tally = deliver_now(state, linger=60.0)    # a command's end: sync, bounded
    tally = await deliver(state, linger=0.0)   # one pass over what is due

Each try is one POST of the entry's exact JSON bytes (`Content-Type: application/json`,
`X-Dialer-Event-Id`, and `X-Dialer-Signature: sha256=<hex HMAC-SHA256 of the body>` when the
entry names a secret), within `notify_timeout_seconds`. A 2xx is delivered. A redirect is
never followed (a webhook that moved is given up: following it would post the event to a host
nobody configured), nor is any 4xx but 408 and 429 (the receiver refuses it: sending it again
changes nothing). Other answers and connection errors are tried again after tenacity's
exponential backoff (`core.retry_policy`), a Retry-After honoured up to its longest wait;
the tries are counted in the outbox's row, so a later process continues the count.

The URL is a secret (a Slack or Teams webhook's path is its key): no line or stored error
shows it, only its variable's name. An entry whose variable (or secret's) is missing here is
left for a process that has it, with one warning line; it is never sent unsigned.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import sqlite3
import sys
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import aiohttp

from dialer.campaign.model import endpoint_problem
from dialer.core.retry_policy import RetryPolicy
from dialer.core.settings import DEFAULTS, Settings
from dialer.notify.outbox import Entry, Outbox, existing_outbox
from dialer.tabbly.client import parse_retry_after

SIGNATURE_HEADER = "X-Dialer-Signature"
EVENT_ID_HEADER = "X-Dialer-Event-Id"
# Answers that are tried again: the receiver's timeout and its rate limit (any 5xx too).
_AGAIN = frozenset({408, 429})
_NOT_A_URL = "{} is not a valid http(s) URL"


def signature(secret: str, body: bytes) -> str:
    """The `X-Dialer-Signature` value: what a receiver recomputes to trust the body."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


@dataclass(slots=True)
class Tally:
    """What one delivery did: counts, the first reason given up, variables missing here."""

    delivered: int = 0
    given_up: int = 0
    first_given_up: str = ""
    missing: set[str] = field(default_factory=set)

    def line(self) -> str | None:
        """The one line a command prints; None when nothing was delivered or given up."""
        if not (self.delivered or self.given_up):
            return None
        said = f"notifications: {self.delivered} delivered"
        if self.given_up:
            said += f", {self.given_up} given up (first: {self.first_given_up})"
        return said


@dataclass(frozen=True, slots=True)
class _Answer:
    """One try's end: done, given up, or again (after at least `retry_after`)."""

    state: str  # "delivered", "given_up", "again"
    reason: str = ""
    retry_after: float | None = None


def deliver_now(
    state: Path,
    *,
    linger: float,
    environ: Mapping[str, str] = os.environ,
    settings: Settings = DEFAULTS,
    err: TextIO | None = None,
    warned: set[str] | None = None,
) -> Tally:
    """`deliver` for a command (no event loop running); its warnings and line go to `err`.
    Never raises for the outbox or the network: a notification must not fail a command.
    `warned`: variables said to be missing and failures said already (`dialer serve`'s loop
    says each once, not every few seconds)."""
    tally = Tally()
    warned = set() if warned is None else warned
    try:
        tally = asyncio.run(deliver(state, linger=linger, environ=environ, settings=settings))
    except (OSError, sqlite3.Error) as exc:  # the outbox file broken, the disk gone
        _say_once(
            err, warned, f"warning: notifications not delivered ({type(exc).__name__}: {exc})"
        )
        return tally
    except Exception as exc:  # its text may name the URL: its type only
        _say_once(err, warned, f"warning: notifications not delivered ({type(exc).__name__})")
        return tally
    for name in sorted(tally.missing - warned):
        _say(err, f"warning: notifications: {name} is not set here; left in the outbox")
    warned |= tally.missing
    line = tally.line()
    if line:
        _say(err, line)
    return tally


async def deliver(
    state: Path,
    *,
    linger: float,
    environ: Mapping[str, str] = os.environ,
    settings: Settings = DEFAULTS,
) -> Tally:
    """Send what is due in `state`'s outbox; wait for retries that fall due within `linger`
    seconds, and leave the rest. Without lingering, each entry is tried at most once, however
    soon its retry falls due. No entry is taken once `linger` (at least one try's timeout) has
    passed: a receiver that hangs holds a command for about one try, not one per event
    waiting. Nothing at all when the folder has no outbox."""
    tally = Tally()
    start = time.monotonic()
    deadline = start + linger
    last_claim = start + max(linger, settings.notify_timeout_seconds)
    tried: set[str] = set()  # without lingering: the entries this pass has tried
    with existing_outbox(state) as outbox:
        if outbox is None:
            return tally
        timeout = aiohttp.ClientTimeout(total=settings.notify_timeout_seconds)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while time.monotonic() < last_claim:
                entry = _claim(outbox, environ, tally, settings, tried)
                if entry is not None:
                    if linger <= 0:
                        tried.add(entry.event_id)
                    await _try(session, outbox, entry, environ, settings, tally)
                    continue
                due = outbox.next_due(skip=tally.missing)
                if due is None:
                    return tally
                wait = max(due - time.time(), 0.0)
                if time.monotonic() + wait > deadline:
                    return tally
                await asyncio.sleep(max(wait, 0.01))
            return tally


def _claim(
    outbox: Outbox,
    environ: Mapping[str, str],
    tally: Tally,
    settings: Settings,
    tried: Collection[str] = (),
) -> Entry | None:
    """The next due entry this process can send (its variables set), leased; None: none.
    One this process cannot send is released at once, untried, for a process that can."""
    while True:
        entry = outbox.claim(
            time.time(), settings.notify_lease_seconds, skip=tally.missing, tried=tried
        )
        if entry is None:
            return None
        missing = {n for n in (entry.url_env, entry.secret_env) if n and not environ.get(n)}
        if not missing:
            return entry
        tally.missing |= missing
        outbox.release(entry)


async def _try(
    session: aiohttp.ClientSession,
    outbox: Outbox,
    entry: Entry,
    environ: Mapping[str, str],
    settings: Settings,
    tally: Tally,
) -> None:
    """One POST of `entry`, and what it leaves in the outbox."""
    tries = entry.tries + 1
    try:
        answer = await _post(session, entry, environ, settings.notify_backoff_max)
    except Exception as exc:  # a defect of ours: a try counted, never an entry stuck
        answer = _Answer("again", f"{entry.url_env}: {type(exc).__name__}")
    now = time.time()
    if answer.state == "again":
        policy = RetryPolicy(
            settings.notify_max_tries,
            settings,
            first=settings.notify_backoff_first,
            most=settings.notify_backoff_max,
        )
        wait = policy.delay(tries, answer.retry_after)
        if wait is not None:
            outbox.retry(entry, tries, now + wait, answer.reason)
            return
        answer = _Answer("given_up", f"{answer.reason} ({tries} tries)")
    if answer.state == "delivered":
        outbox.delivered(entry, tries, now)
        tally.delivered += 1
        return
    outbox.given_up(entry, tries, answer.reason, now)
    tally.given_up += 1
    if not tally.first_given_up:
        tally.first_given_up = f"{entry.event} of {entry.campaign}: {answer.reason}"


async def _post(
    session: aiohttp.ClientSession, entry: Entry, environ: Mapping[str, str], most_wait: float
) -> _Answer:
    url = environ[entry.url_env]
    if endpoint_problem(url) is not None:  # its text would show the URL: the name only
        return _Answer("given_up", _NOT_A_URL.format(entry.url_env))
    body = entry.body.encode("utf-8")
    headers = {"Content-Type": "application/json", EVENT_ID_HEADER: entry.event_id}
    if entry.secret_env:
        try:
            headers[SIGNATURE_HEADER] = signature(environ[entry.secret_env], body)
        except UnicodeEncodeError:  # an env file's bytes that are not UTF-8: never signable
            return _Answer("given_up", f"{entry.secret_env} is not UTF-8 text")
    try:
        async with session.post(url, data=body, headers=headers, allow_redirects=False) as answer:
            status = answer.status
            retry_after = answer.headers.get("Retry-After")
    except ValueError:  # IDNA's empty or 64+ label, yarl's bad host (aiohttp.InvalidURL)
        return _Answer("given_up", _NOT_A_URL.format(entry.url_env))
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        return _Answer("again", f"{entry.url_env}: {_failure(exc)}")
    said = f"{entry.url_env} answered {status}"
    if 200 <= status < 300:
        return _Answer("delivered")
    if 300 <= status < 400:
        return _Answer("given_up", f"{said}, a redirect (never followed)")
    if status >= 500 or status in _AGAIN:
        return _Answer("again", said, parse_retry_after(retry_after, cap=most_wait))
    return _Answer("given_up", said)


def _failure(exc: BaseException) -> str:
    """A failed try in words without the URL (aiohttp's texts may name it)."""
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    cause = getattr(exc, "os_error", None) or (exc if isinstance(exc, OSError) else None)
    detail = getattr(cause, "strerror", None)
    if isinstance(cause, ConnectionError) and cause.errno:  # not "Connect call failed (host)"
        detail = os.strerror(cause.errno)
    return f"{type(exc).__name__}" + (f" ({detail})" if detail else "")


def _say_once(err: TextIO | None, said: set[str], line: str) -> None:
    if line not in said:
        said.add(line)
        _say(err, line)


def _say(err: TextIO | None, line: str) -> None:
    with contextlib.suppress(OSError):  # a terminal gone with its SSH session
        print(line, file=err or sys.stderr)
