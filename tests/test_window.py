"""Calling windows (SPEC 6.4). Every clock is a fixed aware datetime; expected local times are
worked out by hand in the comments (IST = UTC+5:30; in January EST = UTC-5, PST = UTC-8)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dialer.campaign.model import Window
from dialer.campaign.parse import load_campaign
from dialer.engine.window import check_window, zones_for_number

INDIA = "+919876543210"
NEW_YORK = "+12125551234"
SAN_FRANCISCO = "+14155551234"
AUSTRALIA_MOBILE = "+61412345678"
FREEPHONE = "+80012345678"  # international freephone: no country, no zone

DAY = Window(start_minute=9 * 60, end_minute=20 * 60, hours="09:00-20:00")  # Mon-Sat
FRIDAY_NIGHT = Window(21 * 60, 2 * 60, frozenset({4}), hours="21:00-02:00")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# 2025-01-14 is a Tuesday, 2025-01-17 a Friday, 2025-01-19 a Sunday.


def test_no_window_allows_any_time_and_any_number() -> None:
    assert check_window(None, FREEPHONE, None, utc(2025, 1, 19, 3, 0)).allowed


def test_india_inside_hours_is_allowed() -> None:
    result = check_window(DAY, INDIA, None, utc(2025, 1, 14, 4, 0))  # 09:30 IST Tue
    assert result.allowed
    assert result.reason == ""


def test_india_after_hours_is_refused_with_local_time_in_reason() -> None:
    result = check_window(DAY, INDIA, None, utc(2025, 1, 14, 15, 44))  # 21:14 IST Tue
    assert not result.allowed
    assert result.reason == "outside calling hours 09:00-20:00 in Asia/Calcutta (21:14 Tue)"


def test_start_is_inclusive_and_end_is_exclusive() -> None:
    assert not check_window(DAY, INDIA, None, utc(2025, 1, 14, 3, 29)).allowed  # 08:59 IST
    assert check_window(DAY, INDIA, None, utc(2025, 1, 14, 3, 30)).allowed  # 09:00 IST
    assert check_window(DAY, INDIA, None, utc(2025, 1, 14, 14, 29)).allowed  # 19:59 IST
    assert not check_window(DAY, INDIA, None, utc(2025, 1, 14, 14, 30)).allowed  # 20:00 IST


def test_east_and_west_coast_differ_at_the_same_instant() -> None:
    morning = utc(2025, 1, 15, 15, 0)  # New York 10:00, San Francisco 07:00
    assert check_window(DAY, NEW_YORK, None, morning).allowed
    early = check_window(DAY, SAN_FRANCISCO, None, morning)
    assert not early.allowed
    assert "America/Los_Angeles (07:00 Wed)" in early.reason

    evening = utc(2025, 1, 16, 2, 30)  # Thu 02:30 UTC = New York Wed 21:30, SF Wed 18:30
    late = check_window(DAY, NEW_YORK, None, evening)
    assert not late.allowed
    assert "America/New_York (21:30 Wed)" in late.reason
    assert check_window(DAY, SAN_FRANCISCO, None, evening).allowed


def test_daylight_saving_time_moves_the_window() -> None:
    # 13:00 UTC is 08:00 EST in January but 09:00 EDT in July.
    assert not check_window(DAY, NEW_YORK, None, utc(2025, 1, 15, 13, 0)).allowed
    assert check_window(DAY, NEW_YORK, None, utc(2025, 7, 16, 13, 0)).allowed


def test_australian_mobile_has_several_zones() -> None:
    zones = zones_for_number(AUSTRALIA_MOBILE)
    assert len(zones) > 1
    assert {"Indian/Cocos", "Australia/Perth", "Australia/Sydney"} <= set(zones)


# Australian mobile zones in January: Cocos +6:30, Christmas +7, Perth +8, Eucla +8:45,
# Brisbane +10, Adelaide +10:30 (summer), Sydney +11 (summer), Lord Howe +11 (summer).


def test_multi_zone_number_allowed_when_every_zone_is_inside() -> None:
    # 03:00 UTC: Cocos 09:30 ... Sydney/Lord Howe 14:00, all inside.
    assert check_window(DAY, AUSTRALIA_MOBILE, None, utc(2025, 1, 15, 3, 0)).allowed


def test_multi_zone_number_refused_when_its_westmost_zone_is_too_early() -> None:
    # 02:00 UTC: Cocos 08:30 (too early), Christmas 09:00, Sydney 13:00.
    result = check_window(DAY, AUSTRALIA_MOBILE, None, utc(2025, 1, 15, 2, 0))
    assert not result.allowed
    assert result.reason == "outside calling hours 09:00-20:00 in Indian/Cocos (08:30 Wed)"


def test_multi_zone_number_refused_when_its_eastmost_zones_are_too_late() -> None:
    # 09:00 UTC: Sydney and Lord Howe 20:00 (closed), Adelaide 19:30, Cocos 15:30.
    result = check_window(DAY, AUSTRALIA_MOBILE, None, utc(2025, 1, 15, 9, 0))
    assert not result.allowed
    assert "(20:00 Wed)" in result.reason
    assert result.reason.endswith("and 1 other zone(s) of this number")


def test_sunday_is_refused_by_default_days_and_saturday_allowed() -> None:
    sunday = check_window(DAY, INDIA, None, utc(2025, 1, 19, 6, 0))  # 11:30 IST Sun
    assert not sunday.allowed
    assert sunday.reason == (
        "not a calling day (mon, tue, wed, thu, fri, sat) in Asia/Calcutta (11:30 Sun)"
    )
    assert check_window(DAY, INDIA, None, utc(2025, 1, 18, 6, 0)).allowed  # 11:30 IST Sat


@pytest.mark.parametrize(
    ("now", "allowed"),
    [
        (utc(2025, 1, 17, 20, 59), False),  # Fri before the start
        (utc(2025, 1, 17, 21, 0), True),  # Fri start, inclusive
        (utc(2025, 1, 17, 23, 0), True),  # Fri evening
        (utc(2025, 1, 18, 1, 0), True),  # Sat small hours: Friday's window
        (utc(2025, 1, 18, 1, 59), True),
        (utc(2025, 1, 18, 2, 0), False),  # end, exclusive
        (utc(2025, 1, 17, 1, 0), False),  # Fri small hours belong to Thursday's window
        (utc(2025, 1, 18, 21, 30), False),  # Sat evening: Saturday is not a calling day
    ],
)
def test_window_crossing_midnight_belongs_to_the_day_it_starts(
    now: datetime, allowed: bool
) -> None:
    assert check_window(FRIDAY_NIGHT, INDIA, "UTC", now).allowed is allowed


def test_small_hours_outside_reason_names_the_window_they_belong_to() -> None:
    result = check_window(FRIDAY_NIGHT, INDIA, "UTC", utc(2025, 1, 17, 1, 0))
    assert result.reason == "not a calling day (fri) in UTC (01:00 Fri, in Thu's window)"


def test_sunday_night_window_wraps_into_monday() -> None:
    sunday_night = Window(21 * 60, 2 * 60, frozenset({6}), hours="21:00-02:00")
    assert check_window(sunday_night, INDIA, "UTC", utc(2025, 1, 20, 1, 0)).allowed  # Mon 01:00
    assert not check_window(sunday_night, INDIA, "UTC", utc(2025, 1, 19, 1, 0)).allowed  # Sun


def test_window_ending_at_24_00_includes_the_last_minute_of_the_day() -> None:
    evening = Window(18 * 60, 24 * 60, hours="18:00-24:00")  # Mon-Sat
    assert check_window(evening, INDIA, "UTC", utc(2025, 1, 18, 23, 59)).allowed  # Sat 23:59
    assert not check_window(evening, INDIA, "UTC", utc(2025, 1, 19, 0, 0)).allowed  # Sun 00:00
    assert not check_window(evening, INDIA, "UTC", utc(2025, 1, 20, 0, 0)).allowed  # Mon 00:00
    assert check_window(evening, INDIA, "UTC", utc(2025, 1, 20, 18, 0)).allowed  # Mon 18:00


def test_row_zone_overrides_the_numbers_zones() -> None:
    now = utc(2025, 1, 15, 15, 0)  # India 20:30 (closed), New York 10:00 (open)
    assert not check_window(DAY, INDIA, None, now).allowed
    assert check_window(DAY, INDIA, "America/New_York", now).allowed
    assert check_window(DAY, INDIA, "  America/New_York\t", now).allowed


def test_row_zone_replaces_all_zones_of_a_multi_zone_number() -> None:
    now = utc(2025, 1, 15, 2, 0)  # Cocos 08:30 would refuse; Perth is 10:00
    assert not check_window(DAY, AUSTRALIA_MOBILE, None, now).allowed
    assert check_window(DAY, AUSTRALIA_MOBILE, "Australia/Perth", now).allowed


def test_blank_row_zone_falls_back_to_the_numbers_zones() -> None:
    now = utc(2025, 1, 15, 15, 0)  # India 20:30
    assert not check_window(DAY, INDIA, "   ", now).allowed
    assert not check_window(DAY, INDIA, "", now).allowed


@pytest.mark.parametrize("bad", ["Mars/Olympus", "America", "../etc/passwd"])
def test_invalid_row_zone_is_refused_and_named(bad: str) -> None:
    now = utc(2025, 1, 15, 6, 0)  # India 11:30: the number's own zone would allow it
    result = check_window(DAY, INDIA, bad, now)
    assert not result.allowed
    assert repr(bad) in result.reason


def test_number_without_known_zone_is_refused() -> None:
    assert zones_for_number(FREEPHONE) == ()
    result = check_window(DAY, FREEPHONE, None, utc(2025, 1, 15, 12, 0))
    assert not result.allowed
    assert result.reason == "no time zone known for this +800 number; set window.timezone_column"


def test_number_without_known_zone_reason_names_the_empty_timezone_column() -> None:
    window = Window(9 * 60, 20 * 60, timezone_column="tz", hours="09:00-20:00")
    result = check_window(window, FREEPHONE, "", utc(2025, 1, 15, 12, 0))
    assert not result.allowed
    assert "'tz' cell is empty" in result.reason


def test_number_without_known_zone_is_allowed_with_a_row_zone() -> None:
    assert check_window(DAY, FREEPHONE, "Europe/Berlin", utc(2025, 1, 15, 12, 0)).allowed


def test_zones_for_number_drops_unknown_and_survives_garbage() -> None:
    assert zones_for_number(INDIA) == ("Asia/Calcutta",)
    assert zones_for_number("not a number") == ()


def test_now_in_another_offset_gives_the_same_answer() -> None:
    ist = datetime(2025, 1, 14, 21, 14, tzinfo=ZoneInfo("Asia/Kolkata"))  # = 15:44 UTC
    assert check_window(DAY, INDIA, None, ist) == check_window(
        DAY, INDIA, None, utc(2025, 1, 14, 15, 44)
    )


def test_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="aware"):
        check_window(DAY, INDIA, None, datetime(2025, 1, 14, 12, 0))


def test_window_parsed_from_campaign_file_checks_midnight_crossing(tmp_path: Path) -> None:
    campaign = tmp_path / "night.toml"
    campaign.write_text(
        'name = "night"\norganization_id = 1\nagent_id = 2\ncall_from = "+14155550100"\n'
        'first_line = "Hi"\n[contacts]\nsource = "c.csv"\n'
        "[dispatch]\nrate_per_second = 2.0\nconcurrency = 8\nmax_attempts = 4\n"
        "timeout_seconds = 30.0\n"
        '[window]\nhours = "21:00-02:00"\ndays = ["fri"]\ntimezone_column = "tz"\n',
        encoding="utf-8",
    )
    window = load_campaign(campaign).window
    assert check_window(window, INDIA, "UTC", utc(2025, 1, 18, 1, 0)).allowed  # Sat 01:00
    assert not check_window(window, INDIA, "UTC", utc(2025, 1, 17, 1, 0)).allowed  # Fri 01:00
