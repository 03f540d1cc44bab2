"""One schedule as `state/schedules.toml` keeps it (`Schedule`: when it fires, what it is bound
to, what became of it), and the schedule form as typed (`ScheduleForm`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from dialer.core.clock import stamp
from dialer.web import texts
from dialer.web.services.schedule_times import moment, time_of_day

ONCE, DAILY = "once", "daily"
# A schedule's state: waiting for its (next) time; or, for "once", what became of it; or, for
# "every day", paused because the campaign changed since it was confirmed.
WAITING, FIRED, REFUSED, MISSED, PAUSED = "waiting", "started", "refused", "missed", "paused"
OWN_SOURCE = "source"  # the form's sheet choice: the campaign's own [contacts] source


@dataclass(slots=True)
class Schedule:
    """One entry of `state/schedules.toml`. Paths are absolute: the file is the server's."""

    id: str
    campaign: str
    campaign_path: str
    kind: str  # ONCE | DAILY
    at: str  # ONCE: "YYYY-MM-DDTHH:MM"; DAILY: "HH:MM"; wall time in `zone`
    zone: str  # IANA name
    sheet: str  # the kept copy of the checked sheet; "" = the campaign's own source (DAILY)
    sheet_name: str  # the uploader's file name, as shown
    created: str  # stamp(): due times before it never fire
    ready: int = 0  # ONCE: the people its check said would be called
    report: str = ""  # ONCE: its check's report
    # Bound file -> SHA-256. ONCE: what its run must find (campaign, lists, sheet); DAILY: the
    # campaign file and its kept sheet as confirmed, a change pauses it.
    fingerprint: dict[str, str] = field(default_factory=dict)
    expect: list[str] = field(default_factory=list)  # ONCE: `dialer run --expect-*` options
    last: str = ""  # stamp() of the last due time handled (fired, refused or missed)
    state: str = WAITING
    note: str = ""  # what happened last, in plain words
    run_id: str = ""  # the last run it started (this server's memory only)

    def due(self, now: datetime) -> datetime | None:
        """The latest due time at or before `now` not handled yet, or None."""
        zone = ZoneInfo(self.zone)
        if self.kind == ONCE:
            when = datetime.fromisoformat(self.at).replace(tzinfo=zone)
            return when if self.state == WAITING and when <= now else None
        if self.state == PAUSED:
            return None
        hour, minute = time_of_day(self.at) or (0, 0)
        day = now.astimezone(zone).date()
        when = moment(day, hour, minute, zone)
        if when > now:
            when = moment(day - timedelta(days=1), hour, minute, zone)
        handled = max(filter(None, (self.created, self.last)))
        return when if stamp(when) > handled else None

    def next_time(self, now: datetime) -> datetime | None:
        """When it fires next (None: a "once" that is over)."""
        zone = ZoneInfo(self.zone)
        if self.kind == ONCE:
            return datetime.fromisoformat(self.at).replace(tzinfo=zone) if self.waiting else None
        if self.state == PAUSED:
            return None
        hour, minute = time_of_day(self.at) or (0, 0)
        day = now.astimezone(zone).date()
        when = moment(day, hour, minute, zone)
        return when if when > now else moment(day + timedelta(days=1), hour, minute, zone)

    @property
    def waiting(self) -> bool:
        return self.state == WAITING

    @property
    def paused(self) -> bool:
        return self.state == PAUSED

    def bound_files(self) -> list[Path]:
        """DAILY: what pauses it when it changes: the campaign file, its kept sheet."""
        return [Path(self.campaign_path), *([Path(self.sheet)] if self.sheet else [])]

    def when_text(self) -> str:
        if self.kind == ONCE:
            return f"once, {self.at.replace('T', ' at ')} ({self.zone})"
        return f"every day at {self.at} ({self.zone})"

    def sheet_text(self) -> str:
        if not self.sheet:
            return (
                "the campaign's own sheet (the newest file in its sheet folder), checked each day"
            )
        if self.kind == DAILY:
            return f"{self.sheet_name}, checked again each day"
        return f"{self.sheet_name} as checked: {texts.people(self.ready)}"


@dataclass(frozen=True, slots=True)
class ScheduleForm:
    """The schedule form as typed: kept whole so an error shows the user's own values."""

    when: str = ONCE
    at: str = ""
    time: str = ""
    zone: str = ""
    sheet: str = "check"
    confirm: bool = False
    count: str = ""
    replaces: str = ""  # a paused schedule this one confirms again (it goes once this is made)

    @classmethod
    def of(cls, form: Any) -> ScheduleForm:
        def text(key: str) -> str:
            return str(form.get(key, ""))[:64].strip()

        return cls(
            when=text("when"),
            at=text("at"),
            time=text("time"),
            zone=text("zone"),
            sheet=text("sheet") or "check",
            confirm=form.get("confirm") == "yes",
            count=text("count"),
            replaces=text("replaces"),
        )
