"""Legal calling hours and skipped dates, judged for one number at the moment its request
leaves, in the callee's local time (every zone of the number, as the calling window is).

    legal_reason("+12125550100", None, datetime(2026, 12, 7, 2, 30, tzinfo=UTC))
    # 'outside legal calling hours in US: 08:00–21:00 local (21:30 Sun in America/New_York)'
    skip_date_reason("+12125550100", None, now, frozenset({date(2026, 12, 25)}))

The table and what a campaign may write are `core.legal_floor`'s; this only judges, with the
clock passed in (tests inject theirs). A number is judged in every zone `phonenumbers` gives
for it and in the row's own zone (`timezone_column`) when it names one: legal hours must
hold wherever the person may be, so a row's zone adds a place, never replaces one. A number
of a country in the table with no zone known is refused: its hours cannot be checked.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC, date, datetime

import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE

from dialer.core.legal_floor import DAY_NAMES, FLOOR, LegalHours
from dialer.engine.window import zone_named, zones_for_number

# Every reason of the floor starts so: the dry run counts the rows it holds back by it.
LEGAL_REASON = "outside legal calling hours"
SKIP_DATE_REASON = "a date the campaign calls nobody"


@functools.lru_cache(maxsize=8192)
def country_of_number(e164: str) -> str | None:
    """The number's region (`US`, `PR`, `CA`, `IN`...), or None when unknown."""
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(e164))
    except phonenumbers.NumberParseException:
        return None


def callee_zones(e164: str, row_zone: str | None) -> tuple[str, ...]:
    """Where the person may be: the number's zones and the row's own (when it is a zone)."""
    zones = list(zones_for_number(e164))
    named = (row_zone or "").strip()
    if named and named not in zones and zone_named(named) is not None:
        zones.append(named)
    return tuple(zones)


def _local_times(e164: str, row_zone: str | None, now: datetime) -> list[tuple[str, datetime]]:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("legal hours need an aware datetime; got a naive one")
    utc = now.astimezone(UTC)
    return [
        (name, utc.astimezone(zone))
        for name in callee_zones(e164, row_zone)
        if (zone := zone_named(name)) is not None
    ]


def country_in(e164: str, legal: Mapping[str, LegalHours]) -> str | None:
    """The number's country when `legal` may hold it, else None, parsing the number only when
    its calling code is shared by several countries of which one is in `legal` (+1): a row is
    judged twice, and most numbers' calling code names their one country, or none of `legal`'s."""
    if not legal:
        return None
    for size in (1, 2, 3):  # calling codes are prefix-free: the first that exists is the one
        code = e164[1 : 1 + size]
        regions = COUNTRY_CODE_TO_REGION_CODE.get(int(code)) if code.isdigit() else None
        if regions:
            if not any(region in legal for region in regions):
                return None
            return regions[0] if len(regions) == 1 else country_of_number(e164)
    return None


def legal_reason(
    e164: str,
    row_zone: str | None,
    now: datetime,
    legal: Mapping[str, LegalHours] = FLOOR,
) -> str | None:
    """Why `e164` may not be called at `now` under its country's legal hours (`legal`: the
    floor, or a campaign's tightened copy), or None. Minutes count: 20:59:59 is inside
    "08:00–21:00", 21:00:00 is not."""
    country = country_in(e164, legal)
    hours = legal.get(country) if country else None
    if hours is None:
        return None
    places = _local_times(e164, row_zone, now)
    if not places:
        return (
            f"{LEGAL_REASON} in {country}: {hours.shown()} local, and no time zone is known "
            "for this number (set window.timezone_column)"
        )
    outside = []
    for name, local in places:
        today = hours.on(local.weekday())
        if today is None or local.hour * 60 + local.minute not in today:
            outside.append((name, local, today))
    if not outside:
        return None
    name, local, today = outside[0]
    said = str(today) if today is not None else "no calls"
    if len(set(hours.days)) > 1:
        said += f" local on {DAY_NAMES[local.weekday()]}"
    else:
        said += " local"
    more = f" and {len(outside) - 1} other zone(s)" if len(outside) > 1 else ""
    return (
        f"{LEGAL_REASON} in {country}: {said} "
        f"({local:%H:%M} {DAY_NAMES[local.weekday()]} in {name}{more})"
    )


def skip_date_reason(
    e164: str, row_zone: str | None, now: datetime, skip_dates: frozenset[date]
) -> str | None:
    """Why `e164` may not be called at `now`: it is one of `skip_dates` in the person's own
    calendar (any of their zones), or None. A number with no known zone is judged in UTC."""
    if not skip_dates:
        return None
    places = _local_times(e164, row_zone, now) or [("UTC", now.astimezone(UTC))]
    for name, local in places:
        if local.date() in skip_dates:
            return f"{SKIP_DATE_REASON}: {local.date().isoformat()} in {name} (window.skip_dates)"
    return None
