"""The one clock: every time the engine reads (the calling window, a row's `started_at`, the
ledger's `updated_at`, a report's name) comes from a `Clock` handed down from the command.

    now = system_clock()          # an aware UTC datetime
    stamp(now)                    # '2026-12-01T15:09:56.123Z': reports, the ledger

Tests pass their own `Clock` (a fixed night, a clock that moves) instead of sleeping.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


def stamp(when: datetime) -> str:
    """ISO 8601 in UTC to the millisecond, `Z`-suffixed: sortable as text."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_stamp(text: str) -> datetime | None:
    """A `stamp()` back to an aware UTC datetime; None for text that is not one."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
