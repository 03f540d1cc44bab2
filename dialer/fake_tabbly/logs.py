"""The fake's call-logs API (SPEC 10): what became of each accepted call, as Tabbly logs it.

    logs = CallLogs(account, shape="v2", outcomes={"answered": 0.5, "no_answer": 0.5}, seed=0)
    logs.record(body, success)          # the trigger handler, per accepted call: outcome drawn
    logs.script("429", "error")         # the next log requests misbehave, in that order
    logs.outcomes()                     # {room_name: outcome}: the truth, for tests
    logs.hold()                         # rows of calls accepted from now on are held back
    logs.hold(False)                    # ... until this: a test's log delay, no clock needed
    logs.said()                         # {called_to: kind}: who said what (said.py), the truth

Both documented paths are served (`call-logs-v2`, `get-call-logs`); the `shape` picks the
envelope and the field names for both:

    v2    {"status": "success", "data": [...], "total_records": N}; rows with `id`,
          `called_time` ("YYYY-MM-DD HH:MM:SS", UTC, no offset), `call_transcript`,
          `call_recording`, `call_duration` and `total_call_cost` as strings, `use_agent_id`
    docs  {"success": true, "calls": [...], "total": N}; rows with `call_id`, `timestamp`
          (ISO 8601, Z), `transcript`, `recording_url`, `call_duration` an integer,
          `agent_id`, `call_outcome`

The quirks real users report are rehearsed: some calls have a first attempt row ("Not
Answered", 0 s) before the real one; some answered calls say "Not Answered" with a long
duration and a transcript; unanswered calls carry "No Call Transcript Available"; and rows of
other agents and other numbers are mixed in. Rows carry no `room_name` (undocumented).
A call's rows appear `log_delay` seconds after it. Rows are built per page, never all at once.
What the person said on an answered call (an opt-out in one of four forms, or the decoy) is
`said.py`'s: named per number (`said`) or drawn for a share of answered calls (`said_share`).

Log faults ("429", "429:S" with Retry-After S, "500", "error": a 200 carrying the error
envelope, "echo": a 400 whose message holds the api_key and the full URL, "drop": the
connection closed unanswered).
"""

from __future__ import annotations

import bisect
import json
import random
import secrets
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from aiohttp import web

from dialer.fake_tabbly.rules import (
    DEFAULT_OUTCOMES,
    LOGS_SHAPES,
    Account,
    check_outcomes,
)
from dialer.fake_tabbly.said import OPT_OUT_KINDS, SAID_KINDS, words
from dialer.tabbly.log_rows import PLACEHOLDER_TRANSCRIPT

LOG_FAULT_NAMES = ("429", "429:S", "500", "error", "echo", "drop")
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
# A scripted "429" asks for so short a wait that tests retry at once.
_SCRIPTED_RETRY_AFTER = "0.01"

# The status strings each outcome is logged with (one drawn per call): SPEC 10's spellings.
_STATUSES: Mapping[str, tuple[str, ...]] = {
    "answered": ("Call Answered", "completed", "answered"),
    "voicemail": ("Voicemail", "machine"),
    "busy": ("Busy", "busy"),
    "no_answer": ("Not Answered", "no-answer", "Missed", "unanswered"),
    "failed": ("Failed", "error", "cancelled"),
}
# What a status says, for a stranger's row's `call_outcome` (its call has no drawn outcome).
_STATUS_OUTCOME = {s: o for o, statuses in _STATUSES.items() for s in statuses}
# Shares of calls given a quirk (drawn per call from the seeded generator).
_ATTEMPT_FIRST = 0.25  # an attempt row ("Not Answered", 0 s) before the real one
_LYING_STATUS = 0.2  # an answered call logged "Not Answered", with duration and transcript
_STRANGER = 0.1  # a row of another agent or another number beside the call


@dataclass(slots=True)
class FakeCall:
    """One call as the fake logs it; `outcome` '' marks someone else's call (noise)."""

    called_to: str
    custom_identifiers: str
    room_name: str
    agent_id: int
    at: float  # epoch seconds when it was accepted
    outcome: str
    status: str  # the real row's call_status
    duration: int
    attempt: str  # a first attempt row's call_status; '' when none
    call_from: str = ""  # the caller's number the request named: tells campaigns apart in soaks
    said: str = ""  # what the person said (said.SAID_KINDS); '' for nothing to note


class CallLogs:
    """The calls the fake accepted and the log API over them. `record` runs on the server's
    loop; `script`, `outcomes`, `calls` and `seed_calls` are safe from a test's thread."""

    def __init__(
        self,
        account: Account,
        *,
        shape: str = "v2",
        outcomes: Mapping[str, float] | None = None,
        log_delay: float = 0.0,
        seed: int | None = 0,
        said: Mapping[str, str] | None = None,
        said_share: float = 0.0,
    ) -> None:
        if shape not in LOGS_SHAPES:
            raise ValueError(f"logs_shape must be one of {', '.join(LOGS_SHAPES)}, got {shape!r}")
        if not log_delay >= 0:
            raise ValueError("log_delay must not be negative")
        if not 0.0 <= said_share <= 1.0:
            raise ValueError("said_share must be between 0 and 1")
        for kind in (said or {}).values():
            if kind not in SAID_KINDS:
                raise ValueError(f"unknown said kind {kind!r}; expected one of {SAID_KINDS}")
        self.account = account
        self.shape = shape
        self.weights = check_outcomes(DEFAULT_OUTCOMES if outcomes is None else outcomes)
        self.log_delay = log_delay
        self.requests = 0  # log requests received, faults included
        self.queries: deque[dict[str, str]] = deque(maxlen=64)  # the latest requests' queries
        self.seeded = 0  # calls added by seed_calls
        self._names = list(self.weights)
        self._cumulative = list(_accumulate(self.weights.values()))
        self._rng = random.Random(seed)
        self.said_numbers = dict(said or {})
        self.said_share = said_share
        # Its own generator: what people say never shifts the outcomes drawn for the calls.
        self._said_rng = random.Random(None if seed is None else f"said:{seed}")
        self._lock = threading.Lock()
        self._script: deque[str] = deque()
        self._calls: list[FakeCall] = []
        # One entry per log row, oldest first: (call index, 0 attempt row | 1 real row).
        self._rows: list[tuple[int, int]] = []
        self._row_at: list[float] = []  # the row's call time, never decreasing
        self._last_at = 0.0
        self._cache: tuple[tuple[Any, ...], Sequence[int]] | None = None
        self._shown_rows: int | None = None  # set by hold: rows served at most

    def record(
        self, called_to: str, custom_identifiers: str, room_name: str, call_from: str = ""
    ) -> None:
        """A call the trigger endpoint accepted: its outcome and its rows are drawn now."""
        with self._lock:
            call = self._add(called_to, custom_identifiers, room_name, self.account.agent_id)
            call.call_from = call_from

    def seed_calls(
        self, n: int, *, numbers: Sequence[str] | None = None, prefix: str = "seed"
    ) -> list[dict[str, str]]:
        """Add `n` calls as if accepted now (a benchmark's 100k log rows without 100k trigger
        requests); numbers default to +9175000xxxxx. Returns them as `calls()` lists them."""
        tag = secrets.token_hex(3)
        added = []
        with self._lock:
            for i in range(n):
                number = numbers[i] if numbers is not None else f"+91750{i:07d}"
                call = self._add(number, f"{prefix}-{i}", f"room-{prefix}{i}-{tag}", None)
                added.append(_describe(call))
            self.seeded += n
        return added

    def script(self, *names: str) -> None:
        """Give the next log requests these faults, in order (see LOG_FAULT_NAMES)."""
        for name in names:
            if not _is_log_fault(name):
                raise ValueError(
                    f"unknown log fault {name!r}; expected one of {', '.join(LOG_FAULT_NAMES)}"
                )
        with self._lock:
            self._script.extend(names)

    def hold(self, on: bool = True) -> None:
        """Hold back the rows of every call accepted from now on (as a log delay ending just
        now would), on top of `log_delay`, until `hold(False)`: a test says which calls' rows
        are out without waiting for the clock."""
        with self._lock:
            self._shown_rows = len(self._rows) if on else None

    @property
    def pending(self) -> int:
        """Scripted log faults not yet used."""
        return len(self._script)

    def outcomes(self) -> dict[str, str]:
        """{room_name: outcome} of every accepted call: what a sync should conclude."""
        return {c.room_name: c.outcome for c in list(self._calls) if c.outcome}

    def calls(self) -> list[dict[str, str]]:
        """The accepted calls, oldest first: called_to, custom_identifiers, room_name,
        call_from, outcome, attempt (a first attempt row's status, or ''), called_at, said."""
        return [_describe(c) for c in list(self._calls) if c.outcome]

    def said(self) -> dict[str, str]:
        """{called_to: kind} of every person whose answered call said something (said.py):
        the opt-outs a sync should find, and the decoys it should not take for one."""
        return {c.called_to: c.said for c in list(self._calls) if c.said}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        self.queries.append(dict(request.query))
        fault = self._next_fault()
        if fault is not None:
            answer = self._fault(request, fault)
            if answer is not None:
                return answer
            return web.Response()  # never written: the connection is gone
        query = request.query
        if query.get("api_key") != self.account.api_key:
            return self._error(401, "Invalid API key")
        try:
            organization = _int(query, "organization_id", None)
            agent = _int(query, "use_agent_id", None, "agent_id")
            first = _date(query, "date_from", "start_date")
            last = _date(query, "date_to", "end_date")
            limit = _int(query, "limit", DEFAULT_LIMIT)
            offset = _int(query, "offset", 0)
        except ValueError as exc:
            return self._error(400, str(exc))
        if organization is None:
            return self._error(400, "organization_id is required")
        if organization != self.account.organization_id:
            return self._error(404, "Organization not found")
        assert limit is not None and offset is not None
        if not 1 <= limit <= MAX_LIMIT:
            return self._error(400, f"limit must be between 1 and {MAX_LIMIT}")
        if offset < 0:
            return self._error(400, "offset must not be negative")
        return self._page(agent, first, last, limit, offset)

    def _page(
        self, agent: int | None, first: date | None, last: date | None, limit: int, offset: int
    ) -> web.Response:
        visible = bisect.bisect_right(self._row_at, time.time() - self.log_delay)
        if self._shown_rows is not None:
            visible = min(visible, self._shown_rows)
        rows = self._filtered(agent, first, last, visible)
        total = len(rows)
        start, stop = max(total - offset - limit, 0), max(total - offset, 0)
        shape = self.shape
        page = [self._row(rows[i], shape) for i in range(stop - 1, start - 1, -1)]  # newest first
        if shape == "v2":
            envelope: dict[str, Any] = {
                "status": "success",
                "data": page,
                "total_records": total,
                "limit": limit,
                "offset": offset,
            }
        else:
            envelope = {"success": True, "calls": page, "total": total, "limit": limit}
        return web.Response(body=json.dumps(envelope).encode(), content_type="application/json")

    def _filtered(
        self, agent: int | None, first: date | None, last: date | None, visible: int
    ) -> Sequence[int]:
        """Indexes of the visible rows passing the filters, oldest first; a paging client asks
        the same question many times, so the last answer is kept."""
        if agent is None and first is None and last is None:
            return range(visible)
        key = (agent, first, last, visible)
        cached = self._cache
        if cached is not None and cached[0] == key:
            return cached[1]
        low = first.toordinal() if first else -1
        high = last.toordinal() if last else 1 << 30
        calls, rows = self._calls, self._rows
        chosen = []
        for i in range(visible):
            call = calls[rows[i][0]]
            if agent is not None and call.agent_id != agent:
                continue
            day = int(call.at // 86400) + _EPOCH_ORDINAL
            if low <= day <= high:
                chosen.append(i)
        self._cache = (key, chosen)
        return chosen

    def _row(self, index: int, shape: str) -> dict[str, Any]:
        call_index, part = self._rows[index]
        call = self._calls[call_index]
        row_id = index + 1
        if part == 0:
            status, duration, outcome = call.attempt, 0, "no_answer"
        else:
            status, duration = call.status, call.duration
            outcome = call.outcome or _STATUS_OUTCOME[status]
        spoke = part == 1 and outcome == "answered"
        said = words(call.said, call.custom_identifiers, shape) if spoke else {}
        transcript = said.pop("transcript", PLACEHOLDER_TRANSCRIPT)
        summary = said.pop("summary", "")
        recording = f"https://recordings.fake-tabbly.invalid/{row_id}.mp3" if duration else ""
        cost = round(duration * 0.002, 4)
        when = datetime.fromtimestamp(int(call.at), UTC)
        if shape == "v2":
            return {
                "id": row_id,
                "called_to": call.called_to,
                "called_time": when.strftime("%Y-%m-%d %H:%M:%S"),
                "call_status": status,
                "call_duration": str(duration),
                "call_summary": summary,
                "call_transcript": transcript,
                "call_recording": recording,
                "total_call_cost": f"{cost:.4f}",
                "use_agent_id": call.agent_id,
                "participant_identity": f"sip_{call.called_to}",
                "custom_identifiers": call.custom_identifiers,
                "call_sentiment": None,
                "call_json_output": None,
                **said,
            }
        return {
            "call_id": row_id,
            "called_to": call.called_to,
            "timestamp": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "call_status": status,
            "call_duration": duration,
            "call_summary": summary,
            "transcript": transcript,
            "recording_url": recording,
            "total_call_cost": cost,
            "agent_id": call.agent_id,
            "participant_identity": f"sip_{call.called_to}",
            "custom_identifiers": call.custom_identifiers,
            "call_outcome": outcome,
            **said,
        }

    def _error(self, status: int, message: str) -> web.Response:
        if self.shape == "v2":
            body = {"status": "error", "message": message}
        else:
            body = {"success": False, "error": message}
        return web.Response(
            status=status, body=json.dumps(body).encode(), content_type="application/json"
        )

    def _next_fault(self) -> str | None:
        if not self._script:
            return None
        with self._lock:
            return self._script.popleft() if self._script else None

    def _fault(self, request: web.Request, name: str) -> web.Response | None:
        kind, _, arg = name.partition(":")
        if kind == "429":
            answer = self._error(429, "Too many requests")
            answer.headers["Retry-After"] = arg or _SCRIPTED_RETRY_AFTER
            return answer
        if kind == "500":
            return self._error(500, "Internal server error")
        if kind == "error":
            return self._error(200, "Something went wrong while fetching call logs")
        if kind == "echo":
            key = request.query.get("api_key", "")
            escaped = "".join(f"\\u{ord(c):04x}" for c in key)
            return self._error(400, f"Bad request {request.url} (api_key={key}, {escaped})")
        if request.transport is not None:  # "drop"
            request.transport.close()
        return None

    def _add(
        self, called_to: str, custom_identifiers: str, room_name: str, agent: int | None
    ) -> FakeCall:
        """Draw a call's outcome and quirks, and append its rows (and maybe a stranger's).
        Holds the lock; the draws come from the seeded generator in acceptance order."""
        rng = self._rng
        agent_id = self.account.agent_id if agent is None else agent
        at = self._last_at = max(time.time(), self._last_at)
        outcome = self._names[bisect.bisect(self._cumulative, rng.random() * self._cumulative[-1])]
        status = rng.choice(_STATUSES[outcome])
        duration = 0
        attempt = ""
        if outcome == "answered":
            duration = rng.randint(20, 300)
            if rng.random() < _LYING_STATUS:
                status, duration = "Not Answered", 140
        elif outcome == "voicemail":
            duration = rng.randint(10, 40)  # a message left: long, but no conversation
        if rng.random() < _ATTEMPT_FIRST:
            attempt = rng.choice(("Not Answered", "no-answer"))
        said = self._said(called_to, outcome)
        if said and outcome != "answered":  # one who says something answered the call
            outcome, status, duration = "answered", "Call Answered", self._said_rng.randint(30, 180)
        call = FakeCall(
            called_to,
            custom_identifiers,
            room_name,
            agent_id,
            at,
            outcome,
            status,
            duration,
            attempt,
            said=said,
        )
        self._append(call)
        if rng.random() < _STRANGER:
            if rng.random() < 0.5:  # the same agent calling a number dialer never called
                stranger = FakeCall(
                    f"+1555{rng.randrange(10**7):07d}", "someone-else", "", agent_id, at,
                    "", "Call Answered", rng.randint(20, 100), "",
                )  # fmt: skip
            else:  # another agent of the organization calling the same person
                stranger = FakeCall(
                    called_to, custom_identifiers, "", agent_id + 1, at,
                    "", "Busy", 0, "",
                )  # fmt: skip
            self._append(stranger)
        return call

    def _said(self, called_to: str, outcome: str) -> str:
        """What this call's person says: as `said` names the number, else for a share of the
        answered calls an opt-out kind drawn; '' for nothing."""
        named = self.said_numbers.get(called_to)
        if named is not None:
            return named
        if self.said_share and outcome == "answered":
            rng = self._said_rng
            if rng.random() < self.said_share:
                return rng.choice(OPT_OUT_KINDS)
        return ""

    def _append(self, call: FakeCall) -> None:
        index = len(self._calls)
        self._calls.append(call)
        for part in (0, 1) if call.attempt else (1,):
            self._rows.append((index, part))
            self._row_at.append(call.at)


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def _describe(call: FakeCall) -> dict[str, str]:
    return {
        "called_to": call.called_to,
        "custom_identifiers": call.custom_identifiers,
        "room_name": call.room_name,
        "call_from": call.call_from,
        "outcome": call.outcome,
        "attempt": call.attempt,
        "called_at": datetime.fromtimestamp(call.at, UTC).isoformat().replace("+00:00", "Z"),
        "said": call.said,
    }


def _accumulate(values: Any) -> Any:
    total = 0.0
    for value in values:
        total += value
        yield total


def _is_log_fault(name: str) -> bool:
    kind, sep, arg = name.partition(":")
    if kind == "429" and sep:
        try:
            return float(arg) >= 0
        except ValueError:
            return False
    return not sep and kind in ("429", "500", "error", "echo", "drop")


def _int(query: Mapping[str, str], name: str, default: int | None, *also: str) -> int | None:
    for key in (name, *also):
        text = query.get(key)
        if text is not None and text != "":
            try:
                return int(text)
            except ValueError:
                raise ValueError(f"{key} must be an integer") from None
    return default


def _date(query: Mapping[str, str], *names: str) -> date | None:
    for name in names:
        text = query.get(name)
        if text:
            try:
                return date.fromisoformat(text)
            except ValueError:
                raise ValueError(f"{name} must be a date YYYY-MM-DD") from None
    return None
