"""A log row's outcome (SPEC 10): the status table, the duration/transcript rule, both spellings."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from dialer.core.settings import DEFAULTS
from dialer.core.statuses import CallOutcome
from dialer.tabbly.client import Scrubber, Secret
from dialer.tabbly.log_rows import (
    PLACEHOLDER_TRANSCRIPT,
    LogRow,
    better,
    outcome_of_status,
    parse_row,
)

A = CallOutcome

STATUS_TABLE = [
    ("call answered", A.ANSWERED),
    ("answered", A.ANSWERED),
    ("completed", A.ANSWERED),
    ("voicemail", A.VOICEMAIL),
    ("machine", A.VOICEMAIL),
    ("not answered", A.NO_ANSWER),
    ("no answer", A.NO_ANSWER),
    ("no_answer", A.NO_ANSWER),
    ("missed", A.NO_ANSWER),
    ("unanswered", A.NO_ANSWER),
    ("busy", A.BUSY),
    ("failed", A.FAILED),
    ("error", A.FAILED),
    ("cancelled", A.FAILED),
    ("canceled", A.FAILED),
]


@pytest.mark.parametrize(("raw", "outcome"), STATUS_TABLE)
def test_every_status_of_the_table(raw: str, outcome: CallOutcome) -> None:
    assert outcome_of_status(raw) is outcome


@pytest.mark.parametrize(
    ("raw", "outcome"),
    [
        ("Call Answered", A.ANSWERED),
        ("CALL-ANSWERED", A.ANSWERED),
        ("Not Answered", A.NO_ANSWER),
        ("no-answer", A.NO_ANSWER),
        ("No_Answer", A.NO_ANSWER),
        (" Voice Mail ", A.VOICEMAIL),
        ("Busy.", A.BUSY),
        ("CANCELED", A.FAILED),
    ],
)
def test_statuses_compare_without_case_or_separators(raw: str, outcome: CallOutcome) -> None:
    assert outcome_of_status(raw) is outcome


@pytest.mark.parametrize("raw", ["", "ringing", "in-progress", "weird status"])
def test_an_unknown_status_is_failed_and_kept(raw: str) -> None:
    assert outcome_of_status(raw) is A.FAILED
    row = parse_row({"call_status": raw}, UTC)
    assert row is not None and row.outcome is A.FAILED and row.raw_status == raw.strip()


def test_not_answered_with_140_seconds_and_a_transcript_is_answered() -> None:
    row = parse_row(
        {
            "call_status": "Not Answered",
            "call_duration": "140",
            "call_transcript": "Agent: Hello Asha.\nUser: Yes, speaking.",
        },
        UTC,
    )
    assert row is not None
    assert row.outcome is A.ANSWERED
    assert row.raw_status == "Not Answered"
    assert row.duration_s == 140


@pytest.mark.parametrize(
    "fields",
    [
        {"call_duration": 140, "call_transcript": PLACEHOLDER_TRANSCRIPT},
        {"call_duration": 140, "call_transcript": "  no call transcript available. "},
        {"call_duration": 0, "call_transcript": "Agent: hello"},
        {"call_duration": None, "call_transcript": "Agent: hello"},
        {"call_duration": 140, "call_transcript": ""},
        {"call_duration": 140},
    ],
)
def test_the_rule_needs_both_a_duration_and_a_real_transcript(fields: dict) -> None:
    row = parse_row({"call_status": "Not Answered", **fields}, UTC)
    assert row is not None and row.outcome is A.NO_ANSWER


def test_the_placeholder_transcript_is_no_transcript() -> None:
    row = parse_row({"call_status": "busy", "call_transcript": PLACEHOLDER_TRANSCRIPT}, UTC)
    assert row is not None and row.transcript == ""


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("140", 140), (140, 140), ("140.4", 140), (12.6, 13), ("2:20", 140), ("1:00:05", 3605)],
)
def test_durations_as_text_or_numbers(value: object, seconds: int) -> None:
    row = parse_row({"call_duration": value}, UTC)
    assert row is not None and row.duration_s == seconds


@pytest.mark.parametrize("value", ["", "n/a", "-3", True, None, [1], "1:x"])
def test_an_unreadable_duration_is_none(value: object) -> None:
    row = parse_row({"call_duration": value}, UTC)
    assert row is not None and row.duration_s is None


V2_ROW = {
    "id": 981,
    "called_to": "+917359043943",
    "called_time": "2026-03-01 09:15:02",
    "call_status": "Call Answered",
    "call_duration": "95",
    "call_summary": "Confirmed the order.",
    "call_transcript": "Agent: Hi.\nUser: Hello.",
    "call_recording": "https://rec.example/981.mp3",
    "total_call_cost": "0.125",
    "use_agent_id": 33,
    "participant_identity": "sip_+917359043943",
    "custom_identifiers": "C1",
    "call_sentiment": "positive",
    "call_json_output": {"x": 1},
}
DOCS_ROW = {
    "call_id": "981",
    "called_to": "+917359043943",
    "timestamp": "2026-03-01T09:15:02Z",
    "call_status": "Call Answered",
    "call_duration": 95,
    "call_summary": "Confirmed the order.",
    "transcript": "Agent: Hi.\nUser: Hello.",
    "recording_url": "https://rec.example/981.mp3",
    "total_call_cost": 0.125,
    "agent_id": 33,
    "participant_identity": "sip_+917359043943",
    "custom_identifiers": "C1",
}


def test_both_spellings_give_equal_rows() -> None:
    v2, docs = parse_row(V2_ROW, UTC), parse_row(DOCS_ROW, UTC)
    assert v2 is not None and docs is not None
    # What the agent made of the call, in v2's fields only: kept as given (JSON as its text).
    assert (v2.call_sentiment, v2.call_json_output) == ("positive", '{"x": 1}')
    v2 = replace(v2, call_sentiment="", call_json_output="")
    assert v2 == docs
    assert v2 == LogRow(
        log_id="981",
        called_to="+917359043943",
        called_at=datetime(2026, 3, 1, 9, 15, 2, tzinfo=UTC),
        raw_status="Call Answered",
        outcome=A.ANSWERED,
        duration_s=95,
        cost=0.125,
        summary="Confirmed the order.",
        transcript="Agent: Hi.\nUser: Hello.",
        recording_url="https://rec.example/981.mp3",
        participant_identity="sip_+917359043943",
        room_name="",
        custom_identifiers="C1",
        agent_id=33,
        call_outcome="",
    )


def test_the_third_recording_spelling() -> None:
    row = parse_row({"call_recording_url": "https://rec.example/x.mp3"}, UTC)
    assert row is not None and row.recording_url == "https://rec.example/x.mp3"


def test_a_naive_time_is_in_the_logs_timezone() -> None:
    row = parse_row({"called_time": "2026-03-01 14:45:00"}, ZoneInfo("Asia/Kolkata"))
    assert row is not None and row.called_at == datetime(2026, 3, 1, 9, 15, tzinfo=UTC)
    aware = parse_row({"called_time": "2026-03-01T14:45:00+05:30"}, ZoneInfo("America/New_York"))
    assert aware is not None and aware.called_at == datetime(2026, 3, 1, 9, 15, tzinfo=UTC)
    epoch = parse_row({"timestamp": 1772356500}, UTC)
    assert epoch is not None and epoch.called_at == datetime(2026, 3, 1, 9, 15, tzinfo=UTC)


@pytest.mark.parametrize("value", ["yesterday", "", "2026-13-01 00:00:00", [], True])
def test_an_unreadable_time_is_none(value: object) -> None:
    row = parse_row({"called_time": value}, UTC)
    assert row is not None and row.called_at is None


def test_missing_and_null_fields_give_an_empty_row() -> None:
    empty = parse_row({}, UTC)
    nulls = parse_row(dict.fromkeys(V2_ROW), UTC)
    assert empty == nulls
    assert empty is not None and empty.outcome is A.FAILED and empty.agent_id is None
    assert parse_row(["not", "an", "object"], UTC) is None
    assert parse_row(None, UTC) is None


def test_a_number_without_plus_is_read_as_e164_and_junk_is_kept() -> None:
    assert parse_row({"called_to": " 917359043943 "}, UTC).called_to == "+917359043943"  # type: ignore[union-attr]
    assert parse_row({"called_to": "+91 73590-43943"}, UTC).called_to == "+917359043943"  # type: ignore[union-attr]
    assert parse_row({"called_to": "anonymous"}, UTC).called_to == "anonymous"  # type: ignore[union-attr]


def test_texts_are_scrubbed_of_the_key_then_cut() -> None:
    key = "sk-live-SECRET"
    scrub = Scrubber(Secret(key))
    settings = replace(DEFAULTS, log_text_chars=20, log_transcript_chars=30)
    escaped = "".join(f"\\u{ord(c):04x}" for c in key)
    row = parse_row(
        {
            "call_summary": f"x{key}" + "y" * 50,
            "call_status": f"error {key}",
            "call_transcript": f"Agent: {escaped} " + "z" * 100,
            "call_duration": 5,
            "call_recording": f"https://rec/?api_key={key}",
        },
        UTC,
        settings,
        scrub=scrub,
    )
    assert row is not None
    assert key not in repr(row)
    assert row.summary == "x***" + "y" * 16
    assert row.raw_status == "error ***"
    assert len(row.transcript) == 30 and escaped not in row.transcript
    assert row.recording_url == "https://rec/?api_key="[:20]


def _row(outcome_status: str, duration: int = 0, at: int = 0, transcript: str = "") -> LogRow:
    row = parse_row(
        {
            "call_status": outcome_status,
            "call_duration": duration,
            "call_transcript": transcript,
            "called_time": f"2026-03-01 09:00:{at:02d}",
        },
        UTC,
    )
    assert row is not None
    return row


def test_precedence_over_a_calls_rows() -> None:
    ranked = [_row("answered", 30, transcript="hi"), _row("voicemail"), _row("busy")]
    ranked += [_row("no answer"), _row("failed")]
    for i, high in enumerate(ranked):
        for low in ranked[i + 1 :]:
            assert better(high, low) is high
            assert better(low, high) is high


def test_a_tie_goes_to_the_longer_then_the_later_row() -> None:
    short, long = _row("voicemail", 5), _row("voicemail", 20)
    assert better(short, long) is long and better(long, short) is long
    early, late = _row("busy", at=1), _row("busy", at=9)
    assert better(early, late) is late and better(late, early) is late
    assert better(early, early) is early


def test_an_attempt_row_then_the_real_row() -> None:
    attempt = _row("Not Answered", 0, transcript=PLACEHOLDER_TRANSCRIPT)
    real = _row("Not Answered", 140, transcript="Agent: hello\nUser: hi")
    assert better(attempt, real) is real
    assert better(attempt, real).outcome is A.ANSWERED
