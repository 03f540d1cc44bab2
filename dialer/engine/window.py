"""Calling windows in the callee's local time (SPEC 6.4).

    >>> w = Window(start_minute=9 * 60, end_minute=20 * 60)  # "09:00-20:00", Monday-Saturday
    >>> check_window(w, "+919876543210", None, datetime(2025, 1, 14, 15, 44, tzinfo=UTC)).reason
    'outside calling hours 09:00-20:00 in Asia/Calcutta (21:14 Tue)'

The check runs per row just before sending, with the clock passed in, so a long run that
crosses the window's end stops calling those numbers and tests never sleep.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as pn_timezone

from dialer.campaign.model import WEEKDAYS, Window

_UNKNOWN_ZONE = "Etc/Unknown"


@functools.lru_cache(maxsize=8192)
def zones_for_number(e164: str) -> tuple[str, ...]:
    """The IANA zones `phonenumbers` knows for a number; () when it knows none."""
    try:
        number = phonenumbers.parse(e164)
    except phonenumbers.NumberParseException:
        return ()
    return tuple(z for z in pn_timezone.time_zones_for_number(number) if z != _UNKNOWN_ZONE)


@functools.lru_cache(maxsize=1024)
def zone_named(name: str) -> ZoneInfo | None:
    """ZoneInfo for a name, or None when it is not a zone; bad names are cached too."""
    try:
        return ZoneInfo(name)
    # "America" is a directory (OSError); "../x", "" and non-TZif files are ValueError.
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


@dataclass(frozen=True, slots=True)
class WindowCheck:
    allowed: bool
    reason: str  # "" when allowed


_ALLOWED = WindowCheck(True, "")


def _inside(window: Window, weekday: int, minute: int) -> bool:
    if window.start_minute < window.end_minute:
        return window.start_minute <= minute < window.end_minute and weekday in window.days
    # Crosses midnight: the evening part belongs to today, the small hours to yesterday's window.
    if minute >= window.start_minute:
        return weekday in window.days
    return minute < window.end_minute and (weekday - 1) % 7 in window.days


def _outside_reason(window: Window, zone: str, local: datetime) -> str:
    minute = local.hour * 60 + local.minute
    stamp = f"({local:%H:%M} {WEEKDAYS[local.weekday()].title()})"
    crosses = window.start_minute > window.end_minute
    in_hours = (
        (minute >= window.start_minute or minute < window.end_minute)
        if crosses
        else window.start_minute <= minute < window.end_minute
    )
    if in_hours:
        days = ", ".join(WEEKDAYS[d] for d in sorted(window.days))
        if crosses and minute < window.end_minute:
            started = WEEKDAYS[(local.weekday() - 1) % 7].title()
            stamp = f"({local:%H:%M} {WEEKDAYS[local.weekday()].title()}, in {started}'s window)"
        return f"not a calling day ({days}) in {zone} {stamp}"
    return f"outside calling hours {window.hours} in {zone} {stamp}"


def _no_zone_reason(window: Window, e164: str) -> str:
    # The country code, not the whole number: reasons reach log lines (SPEC 7 masks numbers).
    try:
        prefix = f"+{phonenumbers.parse(e164).country_code}"
    except phonenumbers.NumberParseException:
        prefix = "unparsable"
    if window.timezone_column:
        return (
            f"no time zone known for this {prefix} number and its "
            f"{window.timezone_column!r} cell is empty"
        )
    return f"no time zone known for this {prefix} number; set window.timezone_column"


def check_window(
    window: Window | None, e164: str, row_zone: str | None, now: datetime
) -> WindowCheck:
    """May `e164` be called at `now` (aware)? Allowed only inside the hours in every zone.

    Zones: the row's `timezone_column` value (IANA name) when not blank, else every zone
    `phonenumbers` gives for the number. An invalid row zone, or a number with no known
    zone, is refused rather than guessed: a careful dialer never risks 3 a.m.

    Hours are start-inclusive, end-exclusive ("09:00-20:00" refuses 20:00 sharp). A window
    crossing midnight belongs to the day it starts on: "21:00-02:00" on Friday allows
    Fri 23:00 and Sat 01:00, but not Fri 01:00 (that is Thursday's window).
    """
    if window is None:
        return _ALLOWED
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("check_window needs an aware datetime; got a naive one")
    row_zone = (row_zone or "").strip()
    if row_zone:
        names: tuple[str, ...] = (row_zone,)
    else:
        names = zones_for_number(e164)
        if not names:
            return WindowCheck(False, _no_zone_reason(window, e164))
    utc_now = now.astimezone(UTC)
    failures: list[str] = []
    for name in names:
        zone = zone_named(name)
        if zone is None:
            return WindowCheck(False, f"unknown time zone {name!r} in the row's time zone column")
        local = utc_now.astimezone(zone)
        if not _inside(window, local.weekday(), local.hour * 60 + local.minute):
            failures.append(_outside_reason(window, name, local))
    if not failures:
        return _ALLOWED
    more = f" and {len(failures) - 1} other zone(s) of this number" if len(failures) > 1 else ""
    return WindowCheck(False, failures[0] + more)
