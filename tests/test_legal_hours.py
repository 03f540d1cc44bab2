"""Legal calling hours and skipped dates, with the clock injected: each country of the floor
at both edges of its hours, numbers with several zones, dates in the callee's own calendar,
and a campaign's attempt to loosen the floor refused."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from dialer.core.legal_floor import (
    FLOOR,
    skip_dates,
    skip_dates_problem,
    tightened,
    tightening_problem,
)
from dialer.engine.legal_hours import (
    LEGAL_REASON,
    country_of_number,
    legal_reason,
    skip_date_reason,
)

pytestmark = pytest.mark.legal_floor  # the floor itself, judged with injected clocks

WEDNESDAY = date(2026, 12, 9)
SATURDAY = date(2026, 12, 12)
MINUTE = timedelta(minutes=1)


def local(zone: str, day: date, hour: int, minute: int = 0) -> datetime:
    """A moment as the callee's wall clock shows it (what an injected clock returns)."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZoneInfo(zone))


# (number, its only zone, its country, a day, the hours that day)
EDGES = [
    ("+12125550100", "America/New_York", "US", WEDNESDAY, (8, 0), (21, 0)),
    ("+17875550100", "America/Puerto_Rico", "PR", WEDNESDAY, (8, 0), (21, 0)),
    ("+16715550100", "Pacific/Guam", "GU", SATURDAY, (8, 0), (21, 0)),
    ("+13407730000", "America/St_Thomas", "VI", WEDNESDAY, (8, 0), (21, 0)),
    ("+16846331234", "Pacific/Pago_Pago", "AS", WEDNESDAY, (8, 0), (21, 0)),
    ("+16702345678", "Pacific/Saipan", "MP", WEDNESDAY, (8, 0), (21, 0)),
    ("+14165550100", "America/Toronto", "CA", WEDNESDAY, (9, 0), (21, 30)),
    ("+14165550100", "America/Toronto", "CA", SATURDAY, (10, 0), (18, 0)),
    ("+917359043943", "Asia/Kolkata", "IN", WEDNESDAY, (9, 0), (21, 0)),
]


@pytest.mark.parametrize(("number", "zone", "country", "day", "start", "end"), EDGES)
def test_each_country_of_the_floor_at_both_edges(
    number: str,
    zone: str,
    country: str,
    day: date,
    start: tuple[int, int],
    end: tuple[int, int],
) -> None:
    assert country_of_number(number) == country and country in FLOOR
    opens, closes = local(zone, day, *start), local(zone, day, *end)
    assert legal_reason(number, None, opens) is None
    assert legal_reason(number, None, closes - MINUTE) is None
    assert legal_reason(number, None, closes - timedelta(seconds=1)) is None  # 20:59:59
    before = legal_reason(number, None, opens - MINUTE)
    after = legal_reason(number, None, closes)
    assert before is not None and after is not None
    hours = f"{start[0]:02d}:{start[1]:02d}–{end[0]:02d}:{end[1]:02d}"
    for reason in (before, after):
        assert reason.startswith(f"{LEGAL_REASON} in {country}: {hours} local"), reason


def test_the_reason_is_the_one_people_read() -> None:
    at_night = local("America/New_York", WEDNESDAY, 23, 50)
    assert legal_reason("+12125550100", None, at_night) == (
        "outside legal calling hours in US: 08:00–21:00 local (23:50 Wed in America/New_York)"
    )
    saturday = legal_reason("+14165550100", None, local("America/Toronto", SATURDAY, 9, 30))
    assert saturday is not None and "10:00–18:00 local on Sat" in saturday


def test_a_country_without_a_floor_is_not_held_and_a_naive_clock_is_a_defect() -> None:
    night = local("Europe/London", WEDNESDAY, 3, 0)
    assert legal_reason("+442079460123", None, night) is None
    with pytest.raises(ValueError, match="aware"):
        legal_reason("+12125550100", None, datetime(2026, 12, 9, 12, 0))


def test_a_number_with_several_zones_must_be_inside_in_every_one() -> None:
    idaho = "+12085551234"  # America/Boise and America/Los_Angeles
    early = legal_reason(idaho, None, local("America/Boise", WEDNESDAY, 8, 30))
    assert early is not None and "America/Los_Angeles" in early  # 07:30 there
    assert legal_reason(idaho, None, local("America/Boise", WEDNESDAY, 9, 0)) is None
    assert legal_reason(idaho, None, local("America/Los_Angeles", WEDNESDAY, 19, 59)) is None
    late = legal_reason(idaho, None, local("America/Los_Angeles", WEDNESDAY, 20, 0))
    assert late is not None and "America/Boise" in late  # 21:00 there


def test_a_row_zone_adds_a_place_and_never_replaces_the_numbers_own() -> None:
    new_york = "+12125550100"
    morning = local("America/New_York", WEDNESDAY, 9, 0)  # 06:00 in Los Angeles
    assert legal_reason(new_york, None, morning) is None
    held = legal_reason(new_york, "America/Los_Angeles", morning)
    assert held is not None and "America/Los_Angeles" in held
    late = local("America/New_York", WEDNESDAY, 22, 0)  # 19:00 in Los Angeles
    assert legal_reason(new_york, "America/Los_Angeles", late) is not None
    assert legal_reason(new_york, "Not/AZone", morning) is None  # no zone: the number's own


def test_skip_dates_are_the_callees_calendar_across_the_date_line() -> None:
    christmas = frozenset({date(2026, 12, 25)})
    moment = datetime(2026, 12, 24, 14, 30, tzinfo=UTC)  # 00:30 on the 25th in Guam
    guam, samoa = "+16715550100", "+16846331234"  # UTC+10 and UTC-11
    reason = skip_date_reason(guam, None, moment, christmas)
    assert reason is not None and "2026-12-25 in Pacific/Guam" in reason
    assert skip_date_reason(samoa, None, moment, christmas) is None  # 03:30 on the 24th
    samoa_christmas = datetime(2026, 12, 25, 11, 0, tzinfo=UTC)  # 00:00 on the 25th there
    assert skip_date_reason(samoa, None, samoa_christmas, christmas) is not None
    assert skip_date_reason(samoa, None, samoa_christmas - MINUTE, christmas) is None
    india = "+917359043943"  # UTC+5:30: the 25th starts at 18:30 UTC on the 24th
    assert skip_date_reason(india, None, datetime(2026, 12, 24, 18, 30, tzinfo=UTC), christmas)
    assert not skip_date_reason(india, None, datetime(2026, 12, 24, 18, 29, tzinfo=UTC), christmas)
    noon = local("Asia/Kolkata", date(2026, 12, 25), 12, 0)  # inside the legal hours
    # Inside the legal hours, only the skipped date holds the row (the gate asks it first).
    assert legal_reason(india, None, noon, FLOOR) is None
    assert skip_date_reason(india, None, noon, christmas) is not None
    assert skip_date_reason(india, None, noon, frozenset()) is None


def test_a_tightening_applies_and_a_loosening_is_refused_naming_the_key() -> None:
    for value in ("07:59-21:00", "08:00-21:01", "00:00-23:59"):
        problem = tightening_problem("US", value)
        assert problem is not None and "'window.legal.US'" in problem, value
        assert "only be tightened" in problem and "\n" not in problem
    assert tightening_problem("US", "08:00-21:00") is None  # the floor itself
    assert tightening_problem("US", "09:00-20:00") is None
    assert tightening_problem("CA", "09:00-21:31") is not None  # past the weekday floor
    assert tightening_problem("CA", "10:00-20:00") is None

    legal = tightened({"US": "09:00-20:00", "CA": "10:00-20:00"})
    new_york, toronto = "+12125550100", "+14165550100"
    held = legal_reason(new_york, None, local("America/New_York", WEDNESDAY, 8, 30), legal)
    assert held is not None and "09:00–20:00 local" in held
    assert legal_reason(new_york, None, local("America/New_York", WEDNESDAY, 19, 59), legal) is None
    assert legal_reason(new_york, None, local("America/New_York", WEDNESDAY, 20, 0), legal)
    # Weekdays cut to 10:00-20:00; Saturday keeps its tighter floor, 10:00-18:00.
    assert legal_reason(toronto, None, local("America/Toronto", WEDNESDAY, 9, 30), legal)
    assert legal_reason(toronto, None, local("America/Toronto", SATURDAY, 18, 0), legal)
    assert legal_reason(toronto, None, local("America/Toronto", SATURDAY, 17, 59), legal) is None
    assert FLOOR["US"].shown() == "08:00–21:00"  # the floor itself never changes


def test_bad_values_are_one_line_naming_the_key() -> None:
    cases = {
        ("US", "21:00-02:00"): "'window.legal.US' must be hours within one day",
        ("US", 9): "'window.legal.US' must be hours within one day",
        ("XX", "09:00-20:00"): "'window.legal.XX'",
    }
    for (country, value), said in cases.items():
        problem = tightening_problem(country, value)
        assert problem is not None and said in problem
    # A country without a built-in floor may be restricted (never loosened: nothing to loosen).
    assert tightening_problem("GB", "09:00-20:00") is None
    london = local("Europe/London", WEDNESDAY, 20, 30)
    assert legal_reason("+442079460123", None, london, tightened({"GB": "09:00-20:00"}))

    assert skip_dates_problem(["2026-12-25", date(2027, 1, 1)]) is None
    assert skip_dates(["2026-12-25", date(2027, 1, 1)]) == {date(2026, 12, 25), date(2027, 1, 1)}
    for bad in ("2026-12-25", ["25/12/2026"], [datetime(2026, 12, 25, 9, 0)]):
        problem = skip_dates_problem(bad)
        assert problem is not None and "'window.skip_dates'" in problem
