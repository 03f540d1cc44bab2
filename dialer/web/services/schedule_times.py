"""Wall times and time zones of schedules: the server's own zone (cron's), a typed date and
time or time of day, and a moment in a zone said back in words."""

from __future__ import annotations

import contextlib
import os
from datetime import UTC, date, datetime, time, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def local_zone() -> tzinfo:
    """The server's own time zone (cron's): $TZ, else /etc/localtime, else the fixed offset."""
    for name in (os.environ.get("TZ", "").lstrip(":"), _etc_localtime()):
        if name:
            with contextlib.suppress(ZoneInfoNotFoundError, ValueError):
                return ZoneInfo(name)
    return datetime.now().astimezone().tzinfo or UTC


def zone_name(zone: tzinfo) -> str:
    return getattr(zone, "key", None) or "UTC"


def _etc_localtime() -> str:
    with contextlib.suppress(OSError):
        target = os.path.realpath("/etc/localtime")
        if "zoneinfo/" in target:
            return target.split("zoneinfo/", 1)[1]
    return ""


def wall_time(text: str) -> datetime | None:
    """ "2026-05-01T09:30" (a datetime-local field) or "2026-05-01 09:30": naive, or None."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return when.replace(second=0, microsecond=0) if when.tzinfo is None else None


def time_of_day(text: str) -> tuple[int, int] | None:
    try:
        parsed = time.fromisoformat(text.strip())
    except ValueError:
        return None
    return (parsed.hour, parsed.minute) if len(text.strip()) == 5 else None


def moment(day: date, hour: int, minute: int, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=zone)


def at_text(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M %Z")
