"""One Tabbly call-log row -> a `LogRow`, and the rules that make it an outcome (SPEC 10).

    row = parse_row({"call_status": "Not Answered", "call_duration": "140",
                     "call_transcript": "Agent: hello ..."}, UTC)
    row.outcome                       # the status lies; the duration and transcript do not
    # <CallOutcome.ANSWERED: 'answered'>
    better(attempt_row, row) is row   # over a call's several rows, the best outcome wins
    # True

Tabbly documents two spellings of a row (`id`/`call_id`, `called_time`/`timestamp`,
`call_transcript`/`transcript`, ...) and either may come back; any field may be missing or
null. Both spellings give equal `LogRow`s. Every text is scrubbed of the key (an upstream
may echo it) before it is cut and kept. A value given but unreadable or out of range (a
duration of "1:²" or 1e300 s, a cost of 1e308, an agent "²") is ignored as if missing, and
its field named in `LogRow.bad_values`: the sync counts such rows, never fails on one.
What a dial keeps of the agent's extraction (`call_json_output`) is `kept_json`'s: a JSON
object (`json_object`) whole, anything else cut like a summary.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from typing import Any

from dialer.core.settings import DEFAULTS, Settings
from dialer.core.statuses import OUTCOME_RANK, CallOutcome
from dialer.sheets.phones import normalise_phone

# What Tabbly writes in `call_transcript` of a call nobody spoke on: not a transcript.
PLACEHOLDER_TRANSCRIPT = "No Call Transcript Available"

# SPEC 10's status table, keyed by the status with case and separators removed.
_STATUS_OUTCOMES: Mapping[str, CallOutcome] = {
    "callanswered": CallOutcome.ANSWERED,
    "answered": CallOutcome.ANSWERED,
    "completed": CallOutcome.ANSWERED,
    "voicemail": CallOutcome.VOICEMAIL,
    "machine": CallOutcome.VOICEMAIL,
    "notanswered": CallOutcome.NO_ANSWER,
    "noanswer": CallOutcome.NO_ANSWER,
    "missed": CallOutcome.NO_ANSWER,
    "unanswered": CallOutcome.NO_ANSWER,
    "busy": CallOutcome.BUSY,
    "failed": CallOutcome.FAILED,
    "error": CallOutcome.FAILED,
    "cancelled": CallOutcome.FAILED,
    "canceled": CallOutcome.FAILED,
}
_PLACEHOLDER_KEY = "".join(c for c in PLACEHOLDER_TRANSCRIPT.casefold() if c.isalnum())
# A bare number this long is taken as one written without its "+" (Tabbly's own rows have it).
_BARE_E164 = re.compile(r"[0-9]{11,15}")
# A whole number as an upstream writes one: ASCII digits only (`str.isdigit` takes "²", which
# int() refuses) and short enough for int() (4,300 digits) and SQLite's 64-bit INTEGER.
INT_DIGITS = 18
_ASCII_INT = re.compile(f"[0-9]{{1,{INT_DIGITS}}}")


def _no_scrub(text: str) -> str:
    return text


@dataclass(frozen=True, slots=True)
class LogRow:
    """One log row, either spelling, normalised (SPEC 10)."""

    log_id: str  # `id` | `call_id` (str() of an int), '' if none
    called_to: str  # as given, stripped; E.164 when it parses as one
    called_at: datetime | None  # aware UTC; a time without offset is in the logs_timezone
    raw_status: str  # `call_status` as given ('' if missing), cut to log_text_chars
    outcome: CallOutcome  # this row's outcome: the status table + the duration/transcript rule
    duration_s: int | None  # `call_duration`, str or int; None if missing or unparseable
    cost: float | None  # `total_call_cost` (str or number)
    summary: str
    transcript: str  # `call_transcript` | `transcript`; '' for the placeholder
    recording_url: str  # `call_recording` | `call_recording_url` | `recording_url`
    participant_identity: str
    room_name: str  # if the row has one (undocumented)
    custom_identifiers: str
    agent_id: int | None  # `use_agent_id` | `agent_id`; rows of other agents are ignored
    call_outcome: str  # `call_outcome`, raw
    call_sentiment: str = ""  # `call_sentiment`, raw
    # `call_json_output` (the agent's extraction) as JSON text, cut to log_json_chars: an
    # object in one shape, its JSON text in the other.
    call_json_output: str = ""
    bad_values: tuple[str, ...] = ()  # fields given but unreadable or out of range: ignored


@lru_cache(maxsize=1024)  # a handful of distinct statuses over 100k rows
def outcome_of_status(raw: str) -> CallOutcome:
    """SPEC 10's status table, case- and separator-insensitive; anything else is `failed`."""
    key = "".join(c for c in raw.casefold() if c.isalnum())
    return _STATUS_OUTCOMES.get(key, CallOutcome.FAILED)


def better(a: LogRow, b: LogRow) -> LogRow:
    """The row that speaks for a call of the two: the better outcome (answered > voicemail >
    busy > no_answer > failed); on a tie the longer call, then the later row, then `a`."""
    rank_a, rank_b = OUTCOME_RANK[a.outcome], OUTCOME_RANK[b.outcome]
    if rank_a != rank_b:
        return a if rank_a < rank_b else b
    if (a.duration_s or 0) != (b.duration_s or 0):
        return a if (a.duration_s or 0) > (b.duration_s or 0) else b
    if a.called_at is not None and b.called_at is not None and b.called_at > a.called_at:
        return b
    return a


def json_object(text: str, settings: Settings = DEFAULTS) -> dict[str, Any] | None:
    """`call_json_output` as the object a dial keeps (SPEC 12): a JSON object of at most
    `log_json_keys` keys in at most `log_json_chars` characters; None for anything else (an
    array, a bare string, a 51st key, a text cut short)."""
    if not text.startswith("{") or len(text) > settings.log_json_chars:
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) and len(value) <= settings.log_json_keys else None


def kept_json(text: str, settings: Settings = DEFAULTS) -> str:
    """What a dial keeps of `call_json_output`: a `json_object` whole, anything else as its
    text cut to `log_text_chars` (as a summary is)."""
    if json_object(text, settings) is not None:
        return text
    return text[: settings.log_text_chars]


def is_real_transcript(text: str) -> bool:
    """Whether a transcript holds words spoken, not empty nor Tabbly's placeholder."""
    if not text.strip():
        return False
    if len(text) > 2 * len(PLACEHOLDER_TRANSCRIPT) or "transcript" not in text.casefold():
        return True
    return "".join(c for c in text.casefold() if c.isalnum()) != _PLACEHOLDER_KEY


def parse_row(
    obj: object,
    zone: tzinfo,
    settings: Settings = DEFAULTS,
    *,
    scrub: Callable[[str], str] = _no_scrub,
) -> LogRow | None:
    """A `LogRow` from one decoded JSON row (None if it is not an object). `zone` is the
    campaign's `logs_timezone`: where a `called_time` without an offset was written."""
    if not isinstance(obj, dict):
        return None
    chars = settings.log_text_chars

    def text(*keys: str, limit: int = chars) -> str:
        return scrub(_first_text(obj, keys))[:limit]

    raw_status = sys.intern(text("call_status"))  # a few distinct strings over 100k rows
    given = (
        _first(obj, ("call_duration",)),
        _first(obj, ("total_call_cost",)),
        _first(obj, ("use_agent_id", "agent_id")),
        _first(obj, ("called_time", "timestamp")),
    )
    read = (
        duration := _duration(given[0], settings),
        cost := _cost(given[1], settings),
        agent_id := _agent(given[2]),
        called_at := _when(given[3], zone),
    )
    bad = _bad_values(given, read) if None in read else ()
    transcript = text("call_transcript", "transcript", limit=settings.log_transcript_chars)
    real_transcript = is_real_transcript(transcript)
    outcome = outcome_of_status(raw_status)
    # Statuses lie ("Not Answered" on a 140 s call with a transcript); a conversation does not.
    if duration and real_transcript:
        outcome = CallOutcome.ANSWERED
    return LogRow(
        log_id=text("id", "call_id"),
        called_to=_called_to(text("called_to")),
        called_at=called_at,
        raw_status=raw_status,
        outcome=outcome,
        duration_s=duration,
        cost=cost,
        summary=text("call_summary"),
        transcript=transcript if real_transcript else "",
        recording_url=text("call_recording", "call_recording_url", "recording_url"),
        participant_identity=text("participant_identity"),
        room_name=text("room_name"),
        custom_identifiers=text("custom_identifiers"),
        agent_id=agent_id,
        call_outcome=sys.intern(text("call_outcome")),
        call_sentiment=sys.intern(text("call_sentiment")),
        call_json_output=scrub(_json_text(obj.get("call_json_output")))[: settings.log_json_chars],
        bad_values=bad,
    )


# The fields parse_row reads as numbers or times, in its order, by the name a bad one is
# reported under.
_CHECKED = ("call_duration", "total_call_cost", "use_agent_id", "called_time")


def _bad_values(given: tuple[Any, ...], read: tuple[Any, ...]) -> tuple[str, ...]:
    """The fields whose value was given (not missing, null nor blank) but could not be read."""
    return tuple(
        name
        for name, value, found in zip(_CHECKED, given, read, strict=True)
        if found is None and value is not None and (not isinstance(value, str) or value.strip())
    )


def ascii_int(value: str) -> int | None:
    """A whole number from text of ASCII digits (surrounding blanks allowed), at most 18 of
    them; None for anything else: "²" or a 5,000-digit number must not reach int()."""
    value = value.strip()
    return int(value) if _ASCII_INT.fullmatch(value) else None


def _first(obj: dict[str, Any], keys: tuple[str, ...]) -> Any:
    """The first of the keys' values that is present and not null."""
    for key in keys:
        value = obj.get(key)
        if value is not None:
            return value
    return None


def _first_text(obj: dict[str, Any], keys: tuple[str, ...]) -> str:
    value = _first(obj, keys)
    if value is None or isinstance(value, bool):
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | float):
        try:
            return str(value)
        except ValueError:  # an int past Python's digit limit for str()
            return ""
    # A transcript as a list of turns, say: kept as its JSON rather than lost.
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return ""


def _json_text(value: Any) -> str:
    """`call_json_output` as JSON text: a string as given (the v2 shape sends JSON text), an
    object or list as its JSON; nothing for null or a value that cannot be written."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return ""


def _called_to(text: str) -> str:
    if not text:
        return ""
    phone = normalise_phone(text, None)
    if phone.e164 is None and _BARE_E164.fullmatch(text):
        phone = normalise_phone("+" + text, None)
    return phone.e164 or text


def _duration(value: Any, settings: Settings) -> int | None:
    """Seconds from 140, "140", "140.6" or "2:20" (mm:ss, h:mm:ss); None when unreadable or
    outside 0 to `log_max_call_seconds` (no call lasts days: 1e300 s is a broken row)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str) and ":" in value:
        parts = value.split(":")
        if len(parts) > 3:
            return None
        number = 0.0
        for part in map(ascii_int, parts):
            if part is None:
                return None
            number = number * 60 + part
    else:
        number = _number(value)
    if number is None or not 0 <= number <= settings.log_max_call_seconds:
        return None
    return round(number)


def _cost(value: Any, settings: Settings) -> float | None:
    """A call's cost; None when unreadable or outside 0 to `log_max_call_cost` (1e308 would
    make every total "inf")."""
    number = _number(value)
    if number is None or not 0 <= number <= settings.log_max_call_cost:
        return None
    return number


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        value = value.strip().lstrip("$").replace(",", "")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _agent(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return ascii_int(value)
    return None


def _when(value: Any, zone: tzinfo) -> datetime | None:
    """An aware UTC time from ISO 8601 text (with or without an offset; a space or a `T`) or
    epoch seconds/milliseconds; a time without an offset is in `zone`."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        if not math.isfinite(value):
            return None
        try:
            seconds = value / 1000 if abs(value) >= 1e11 else value
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone)
    try:
        return when.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
