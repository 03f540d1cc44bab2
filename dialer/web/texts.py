"""What the page says, in plain words: a run's outcome, the calling window, why a check can
no longer be launched, and the messages of refused uploads. The HTML is in `templates/`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from dialer.campaign import WEEKDAYS, Campaign
from dialer.statuses import EXIT_MEANINGS, FINISHED_CODES, ExitCode, Status
from dialer.web.settings import DAY, MB, Settings

# Plain words for what happened to a row, in the order the outcome lists them.
OUTCOME_WORDS = {
    Status.ALREADY_CALLED: "already called by an earlier run",
    Status.NOT_ATTEMPTED: "not called (the run stopped first)",
    Status.OUTSIDE_WINDOW: "outside the calling window",
    Status.REDIAL_LATER: "to be called again later",
    Status.LIMITED: "held back by a limit on calls per person",
    Status.FAILED: "failed",
    Status.UNKNOWN: "unknown (the upstream may have called them)",
    Status.INVALID: "invalid",
    Status.DUPLICATE: "duplicates",
    Status.SUPPRESSED: "on the do-not-call list",
}

NOT_LAUNCHED = "Not launched, nobody was called."
CONFIRM_COUNT = "Tick the box to confirm how many people are called."
CHOOSE_BOTH = "Choose a campaign and a sheet."
WRONG_SUFFIX = "Upload a .csv or .xlsx file."
CONTROL_CHARACTERS = "The file name has control characters: rename the file and upload it."
MALFORMED_FORM = "The form is malformed: reload the page and try again."
UNREADABLE_UPLOAD = "The upload could not be read: try again."
UPLOAD_TOO_SLOW = "The upload took too long: try again."
WRONG_TOKEN = "Wrong token."
CHECK_TOO_SLOW = "checking the sheet took too long"
CHECK_CHANGED = "the campaign file changed while it was being checked: check again"
NO_SUMMARY = "the check did not leave a readable summary: check again"
LAUNCHED_ALREADY = (
    "This check was launched already. Check the sheet again to see who is left to call."
)


def outcome_text(exit_code: int, counts: Mapping[str, int]) -> str:
    """What a run did, from its own counts: never "every row was triggered" when none was."""
    if exit_code in FINISHED_CODES:
        head = "finished"
    else:
        head = EXIT_MEANINGS.get(  # type: ignore[call-overload]
            exit_code, f"ended with exit code {exit_code}"
        )
    if not counts:
        return head
    called = counts.get(Status.TRIGGERED, 0)
    said = [f"{called} called" if called else "nobody called"]
    said += [f"{counts[s]} {words}" for s, words in OUTCOME_WORDS.items() if counts.get(s)]
    return f"{head}: " + ", ".join(said)


def window_text(campaign: Campaign | None, counts: Mapping[str, int]) -> str:
    """The campaign's calling window and who is outside it now (None: it no longer loads)."""
    if campaign is None:
        return "the campaign file no longer loads"
    if not campaign.window:
        return "none set: calls at any hour"
    days = ", ".join(d for i, d in enumerate(WEEKDAYS) if i in campaign.window.days)
    outside = counts.get(Status.OUTSIDE_WINDOW)
    now = (
        f"; {outside} people are outside it now" if outside else "; everyone ready is inside it now"
    )
    return f"{campaign.window.hours} on {days} in each callee's local time{now}"


def ran_since(campaign: str) -> str:
    return (
        f"Campaign {campaign} has run since this check, so who is left to call "
        "has changed: check the sheet again."
    )


def sheet_deleted(settings: Settings) -> str:
    return (
        f"The sheet of this check was deleted (uploads are kept "
        f"{settings.upload_keep_seconds / DAY:g} days, within a size cap): upload it again "
        "for a new check."
    )


def changed_since(names: Iterable[str]) -> str:
    return (
        f"Changed since this check: {', '.join(names)}. The check no longer shows who would be "
        "called or what they would hear: check the sheet again."
    )


def check_needs_memory(settings: Settings) -> str:
    return (
        f"checking this sheet needs more than {settings.check_memory // MB} MB of "
        "memory: split it, or save it as CSV"
    )


def checks_busy(settings: Settings) -> str:
    return f"{settings.max_checks} checks are running already: try again in a minute."


def too_large(settings: Settings) -> str:
    return f"The sheet is larger than {settings.upload_limit // MB} MB."


def too_many_logins(seconds: int) -> str:
    return f"Too many wrong tokens: try again in {seconds} seconds."


# ---- watching a run (SPEC 11): what the run page says about each row, in plain words ----

# Why rows the run did not reach were not called, by the run's exit code.
STOP_WORDS = {
    ExitCode.INSUFFICIENT_BALANCE: "wallet empty",
    ExitCode.INTERRUPTED: "the run was stopped",
    ExitCode.CAMPAIGN_REFUSED: "the upstream refuses the campaign",
    ExitCode.INPUT_ERROR: "the run stopped on an error",
}

STATUS_WORDS = {
    Status.TRIGGERED: "called",
    Status.FAILED: "call failed",
    Status.UNKNOWN: "maybe called (the upstream did not answer)",
    Status.NOT_ATTEMPTED: "not called yet",
    Status.OUTSIDE_WINDOW: "not called yet: outside the calling window",
    Status.LIMITED: "not called yet: a limit on calls per person",
    Status.REDIAL_LATER: "to be called again later",
    Status.ALREADY_CALLED: "already called by an earlier run",
    Status.INVALID: "not callable: invalid",
    Status.DUPLICATE: "not called: duplicate",
    Status.SUPPRESSED: "not called: on the do-not-call list",
    Status.READY: "ready",
}

STOP_ASK = (
    "Stop calling? Calls already placed go on; everyone not called yet stays not called "
    "until you resume."
)


def status_words(status: str, exit_code: int | None) -> str:
    """A row status in plain words; "not called yet: wallet empty" names the stop's cause."""
    if status == Status.NOT_ATTEMPTED and exit_code in STOP_WORDS:
        return f"not called yet: {STOP_WORDS[exit_code]}"  # type: ignore[index]
    return STATUS_WORDS.get(status, status)  # type: ignore[call-overload]


def progress_text(called: int, total: int) -> str:
    if not total:
        return f"{called} called"
    return f"{called} of {total} called"


def time_left(seconds: float | None) -> str:
    """ "about 3 minutes left" from the rate so far; "" while there is no rate yet."""
    if seconds is None:
        return ""
    if seconds < 60:
        return "less than a minute left"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"about {minutes} minute{'s' if minutes != 1 else ''} left"
    return f"about {seconds / 3600:.1f} hours left"


def resume_text(n: int) -> str:
    return f"Resume the {n} not called"


# ---- schedules ----

SCHEDULE_WHEN = "When: choose a time once, or every day."
SCHEDULE_NEEDS_CONFIRM = "Tick the box to confirm who is called when the schedule fires."
SCHEDULE_BAD_ZONE = "Time zone: {zone!r} is not a time zone name (like Asia/Kolkata or UTC)."
SCHEDULE_BAD_AT = "Date and time: {value!r} is not a date and time (like 2026-05-01 09:30)."
SCHEDULE_PAST = "Date and time: {value} in {zone} has passed already; choose a later time."
SCHEDULE_BAD_TIME = "Time of day: {value!r} is not a time of day (like 09:30)."
SCHEDULE_SHEET_CHANGED = (
    "The sheet of this check is no longer the one checked: upload it again to schedule it."
)
