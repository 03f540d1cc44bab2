"""Matching log rows to the calls dialer placed (SPEC 10), and folding a call's rows."""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime, timedelta
from typing import Any

from dialer.core.settings import DEFAULTS
from dialer.core.statuses import CallOutcome
from dialer.ledger.dials import Dial
from dialer.outcomes.matching import Matcher
from dialer.tabbly.log_rows import PLACEHOLDER_TRANSCRIPT, LogRow, parse_row

AGENT = 33
T0 = datetime(2026, 3, 1, 9, 0, 0, tzinfo=UTC)
NUMBER = "+917359043943"
OTHER = "+917359043944"


def dial(dial_id: int, **fields: Any) -> Dial:
    values: dict[str, Any] = {
        "called_to": NUMBER,
        "custom_identifiers": f"C{dial_id}",
        "placed_at": T0,
        "room_name": f"room-{dial_id}",
        "participant_identity": f"sip_{fields.get('called_to', NUMBER)}",
    }
    values.update(fields)
    return Dial(dial_id=dial_id, **values)


def row(at: datetime = T0, **fields: Any) -> LogRow:
    obj: dict[str, Any] = {
        "called_to": NUMBER,
        "called_time": at.strftime("%Y-%m-%d %H:%M:%S"),
        "call_status": "Call Answered",
        "call_duration": "30",
        "call_transcript": "Agent: hello",
        "use_agent_id": AGENT,
    }
    obj.update(fields)
    parsed = parse_row({k: v for k, v in obj.items() if v is not None}, UTC)
    assert parsed is not None
    return parsed


def test_room_name_matches_first() -> None:
    matcher = Matcher([dial(1), dial(2, custom_identifiers="C1")], AGENT)
    assert matcher.feed(row(room_name="room-2", custom_identifiers="C1")) == 2


def test_participant_identity_naming_one_dial_matches() -> None:
    matcher = Matcher([dial(1), dial(2, called_to=OTHER)], AGENT)
    found = row(called_to=None, participant_identity=f"sip_{OTHER}", called_time=None)
    assert matcher.feed(found) == 2


def test_participant_identity_shared_by_many_falls_through() -> None:
    # Tabbly answers sip_<number> for every call to a number: it cannot tell two calls apart.
    first = dial(1, custom_identifiers="C1", placed_at=T0)
    second = dial(2, custom_identifiers="C2", placed_at=T0 + timedelta(hours=1))
    matcher = Matcher([first, second], AGENT)
    shared = f"sip_{NUMBER}"
    assert matcher.feed(row(participant_identity=shared, custom_identifiers="C1")) == 1
    late = T0 + timedelta(hours=1, seconds=5)
    assert matcher.feed(row(late, participant_identity=shared, custom_identifiers="C2")) == 2
    # An identity and identifiers that fit, at a time the dial cannot have been logged (an
    # hour before it was placed): another call's row, never this dial's.
    assert matcher.feed(row(T0, participant_identity=shared, custom_identifiers="C2")) is None
    # Without identifiers: the number and the time.
    assert matcher.feed(row(late, participant_identity=shared, custom_identifiers="")) == 2


def test_identifiers_and_number_pick_the_dial_placed_nearest_before() -> None:
    dials = [
        dial(1, custom_identifiers="C", placed_at=T0, room_name=""),
        dial(2, custom_identifiers="C", placed_at=T0 + timedelta(hours=2), room_name=""),
        dial(3, custom_identifiers="C", placed_at=T0 + timedelta(days=3), room_name=""),
    ]
    matcher = Matcher(dials, AGENT)
    assert matcher.feed(row(T0 + timedelta(minutes=1), custom_identifiers="C")) == 1
    assert matcher.feed(row(T0 + timedelta(hours=2, minutes=1), custom_identifiers="C")) == 2
    # Tabbly's time, cut to the second, a moment before dialer stamped the dial.
    assert (
        matcher.feed(row(T0 + timedelta(hours=2) - timedelta(seconds=1), custom_identifiers="C"))
        == 2
    )
    # Outside every dial's window (6 hours after, the clock skew before): someone else's call,
    # for example another campaign's to the same person with the same agent.
    assert matcher.feed(row(T0 + timedelta(days=5), custom_identifiers="C")) is None
    assert matcher.feed(row(T0 - timedelta(days=1), custom_identifiers="C")) is None
    # No time at all: the latest.
    assert matcher.feed(row(custom_identifiers="C", called_time=None)) == 3


def test_identifiers_must_match_with_the_number() -> None:
    matcher = Matcher([dial(1, custom_identifiers="C1", room_name="")], AGENT)
    far = T0 + timedelta(days=1)
    assert matcher.feed(row(far, called_to=OTHER, custom_identifiers="C1")) is None


def test_number_and_time_within_the_clock_skew_before_to_six_hours_after() -> None:
    matcher = Matcher([dial(1, custom_identifiers="", room_name="")], AGENT)
    skew = timedelta(seconds=DEFAULTS.logs_clock_skew_seconds)
    assert matcher.feed(row(T0 - skew)) == 1
    assert matcher.feed(row(T0 + timedelta(hours=6))) == 1
    assert matcher.feed(row(T0 - skew - timedelta(seconds=1))) is None
    assert matcher.feed(row(T0 + timedelta(hours=6, seconds=1))) is None
    assert matcher.feed(row(T0 + timedelta(hours=1), called_to=OTHER)) is None
    assert matcher.feed(row(called_time=None)) is None


def test_number_and_time_pick_the_nearest_dial() -> None:
    dials = [
        dial(1, custom_identifiers="", room_name="", placed_at=T0),
        dial(2, custom_identifiers="", room_name="", placed_at=T0 + timedelta(hours=1)),
    ]
    matcher = Matcher(dials, AGENT)
    assert matcher.feed(row(T0 + timedelta(minutes=20))) == 1
    assert matcher.feed(row(T0 + timedelta(minutes=59))) == 2  # 1 min before dial 2


def test_a_row_naming_another_room_is_not_this_dial() -> None:
    matcher = Matcher([dial(1, custom_identifiers="C1")], AGENT)
    assert matcher.feed(row(room_name="room-of-someone-else", custom_identifiers="C1")) is None
    assert matcher.feed(row(room_name="room-of-someone-else")) is None


def test_other_agents_rows_are_ignored() -> None:
    matcher = Matcher([dial(1)], AGENT)
    assert matcher.feed(row(room_name="room-1", use_agent_id=AGENT + 1)) is None
    assert matcher.feed(row(room_name="room-1", use_agent_id=None, agent_id=AGENT)) == 1
    assert matcher.feed(row(room_name="room-1", use_agent_id=None)) == 1  # no agent: kept
    assert matcher.results()[1].rows == 2


def test_rows_of_other_numbers_match_nothing_and_no_row_is_pending() -> None:
    matcher = Matcher([dial(1), dial(2, called_to=OTHER, custom_identifiers="C2")], AGENT)
    stranger = "+15550001234"
    assert matcher.feed(row(called_to=stranger, participant_identity=f"sip_{stranger}")) is None
    assert matcher.feed(row(room_name="room-1")) == 1
    results = matcher.results()
    assert set(results) == {1}  # dial 2 has no row: absent, i.e. still pending


def test_a_calls_rows_resolve_by_precedence_and_keep_every_status() -> None:
    matcher = Matcher([dial(1)], AGENT)
    attempt = {"call_duration": "0", "call_transcript": PLACEHOLDER_TRANSCRIPT}
    matcher.feed(row(room_name="room-1", id=1, call_status="Not Answered", **attempt))
    matcher.feed(row(room_name="room-1", id=2, call_status="busy", **attempt))
    matcher.feed(row(room_name="room-1", id=3, call_status="Not Answered", call_duration="140"))
    matcher.feed(row(room_name="room-1", id=2, call_status="busy", **attempt))  # a page repeated
    resolved = matcher.results()[1]
    assert resolved.best.outcome is CallOutcome.ANSWERED
    assert resolved.best.log_id == "3"
    assert resolved.raw_statuses == ["Not Answered", "busy"]
    assert resolved.rows == 3


def test_memory_is_per_dial_not_per_row() -> None:
    matcher = Matcher([dial(1)], AGENT)
    for i in range(5000):
        matcher.feed(row(room_name="room-1", id=i, call_status=f"status {i}"))
    resolved = matcher.results()[1]
    assert resolved.rows == 5000
    assert len(resolved.raw_statuses) <= 8


def test_the_index_of_dials_is_small_per_dial() -> None:
    """100,000 dials are indexed in a sync's memory bound: a dial alone under its room, key
    and number is indexed without a list of its own (three lists were ~410 bytes a dial)."""
    dials = [
        dial(i, called_to=f"+9173590{i:05d}", placed_at=T0 + timedelta(seconds=i))
        for i in range(10_000)
    ]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        matcher = Matcher(dials, AGENT)
        per_dial = (tracemalloc.get_traced_memory()[0] - before) / len(dials)
    finally:
        tracemalloc.stop()
    assert per_dial < 250, f"{per_dial:.0f} bytes a dial"
    # Still matched by each rule.
    assert matcher.match(row(room_name="room-7", called_to="+917359000007")) == dials[7]
    assert matcher.match(row(T0 + timedelta(seconds=9), called_to="+917359000009")) == dials[9]


def test_transcripts_can_be_left_out_of_the_kept_rows() -> None:
    # A sync without --transcripts stores none: 100k long transcripts need not sit in memory.
    matcher = Matcher([dial(1)], AGENT, transcripts=False)
    matcher.feed(row(room_name="room-1", call_status="Not Answered", call_duration="140"))
    best = matcher.results()[1].best
    assert best.outcome is CallOutcome.ANSWERED and best.transcript == ""
    kept = Matcher([dial(1)], AGENT)
    kept.feed(row(room_name="room-1"))
    assert kept.results()[1].best.transcript == "Agent: hello"


def _rival(dial_id: int, **fields: Any) -> Dial:
    return dial(dial_id, campaign="e", **fields)


def test_a_row_nearer_another_campaigns_call_is_not_this_campaigns() -> None:
    # Campaign e called the person at T0, this campaign 2 s later, same agent, same ids:
    # Tabbly's rows differ only in time, cut to the second.
    own = dial(1, custom_identifiers="C", placed_at=T0 + timedelta(seconds=2.3), room_name="")
    theirs = _rival(1, custom_identifiers="C", placed_at=T0 + timedelta(seconds=0.3), room_name="")
    matcher = Matcher([own], AGENT, others=[theirs])
    shared = f"sip_{NUMBER}"
    assert matcher.feed(row(T0, participant_identity=shared, custom_identifiers="C")) is None
    assert matcher.results() == {} and matcher.others_rows == 1  # still pending: read again
    later = T0 + timedelta(seconds=2)
    assert matcher.feed(row(later, participant_identity=shared, custom_identifiers="C")) == 1
    assert matcher.feed(row(later, participant_identity=shared, custom_identifiers="")) == 1
    assert matcher.results()[1].rows == 2


def test_a_room_names_its_call_in_any_campaign_of_the_folder() -> None:
    matcher = Matcher([dial(1, room_name="room-d")], AGENT, others=[_rival(1, room_name="room-e")])
    assert matcher.feed(row(room_name="room-e")) is None
    assert matcher.feed(row(room_name="room-d")) == 1


def test_a_row_well_before_the_trigger_is_never_the_calls() -> None:
    # The only call of the folder to this person was placed 67 s after the row: the row is
    # some earlier call's (a campaign whose ledger is not here), not this one's.
    late = dial(1, custom_identifiers="C", placed_at=T0 + timedelta(seconds=67), room_name="")
    matcher = Matcher([late], AGENT)
    assert matcher.feed(row(T0, custom_identifiers="C")) is None
    assert matcher.feed(row(T0, custom_identifiers="")) is None
    assert matcher.feed(row(T0 + timedelta(seconds=66), custom_identifiers="C")) == 1
