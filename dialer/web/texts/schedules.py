"""What the schedules page and the schedule form say: the form's refusals, each schedule's
state, the cron hint."""

from __future__ import annotations

SCHEDULE_WHEN = "When: choose a time once, or every day."
SCHEDULE_NEEDS_CONFIRM = "Tick the box to confirm who is called when the schedule fires."
SCHEDULE_BAD_ZONE = "Time zone: {zone!r} is not a time zone name (like Asia/Kolkata or UTC)."
SCHEDULE_BAD_AT = "Date and time: {value!r} is not a date and time (like 2026-05-01 09:30)."
SCHEDULE_PAST = "Date and time: {value} in {zone} has passed already; choose a later time."
SCHEDULE_TOO_FAR = (
    "Date and time: {value} in {zone} is more than a year ahead; choose a sooner time."
)
# A schedule's state (services/schedule_entry.py) as the schedules page says it.
SCHEDULE_PAUSED = "paused: the campaign changed since it was confirmed — check again"
SCHEDULE_STATES = {
    "waiting": "waiting for its time",
    "started": "started",
    "refused": "not started (the note says why)",
    "missed": "missed (the note says why)",
    "paused": SCHEDULE_PAUSED,
}
SCHEDULE_CONFIRM_AGAIN = (
    "Confirm the daily schedule again: this is a new check of what it calls, with the "
    "campaign as it is now. Scheduling it replaces the paused one."
)


def cron_hint(zone: str) -> str:
    return (
        f"A server that does not keep this page running can start the same run with cron: "
        f"the line below is in the server's time zone ({zone}) and needs the Tabbly API key "
        "in cron's environment. Cron has no year: a one-time line checks the year itself, "
        "else it would run every year on that date; remove it once it has run."
    )


CRON_OUT_OF_RANGE = "# no cron line: this time cannot be written in the server's time zone"
SCHEDULE_NOBODY = (
    "When: this check found nobody to call, so there is nothing to start once; "
    "choose every day (the sheet is checked afresh each day) or check another sheet."
)
SCHEDULE_BAD_TIME = "Time of day: {value!r} is not a time of day (like 09:30)."
SCHEDULE_SHEET_CHANGED = (
    "The sheet of this check is no longer the one checked: upload it again to schedule it."
)
