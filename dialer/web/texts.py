"""What the page says, in plain words: a run's outcome, the calling window, why a check can
no longer be launched, and the messages of refused uploads. The HTML is in `templates/`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from dialer.campaign import WEEKDAYS, Campaign
from dialer.statuses import EXIT_MEANINGS, FINISHED_CODES, Status
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


# Column matching (dialer/web/columns.py).
COLUMN_LABELS = {
    "phone": "Phone number",
    "id": "Customer id",
    "zone": "Time zone",
}
COLUMN_HINTS = {
    "phone": "The number to call.",
    "id": "A value unique to each person; the report and Tabbly carry it. "
    "No such column? Choose the phone column.",
    "zone": "The person's time zone, like Asia/Kolkata, for the calling window.",
}
NOT_IN_SHEET = "(not in this sheet)"
CHOOSE_COLUMN = "Choose the column that holds it."
NOT_A_COLUMN = "That is not a column of this sheet: choose again."
NEEDS_COLUMN_OR_DEFAULT = (
    "Choose a column, or type a default value: without either, every row is invalid."
)
DEFAULT_TOO_LONG = "A default may be at most {n} characters."
DEFAULT_HAS_BRACES = "A default is said as written: no {{ or }}."
NOT_A_TAB = "That tab is not in this workbook: choose again."
FIX_BELOW = "Some columns need your choice: see the fields marked below."
UPLOAD_GONE = (
    "This upload is no longer kept (uploads are deleted after a while, or the server "
    "restarted): upload the sheet again."
)


def used_in(places: Iterable[str]) -> str:
    return f"Used in the {' and the '.join(places)}."


def tab_missing(tab: str) -> str:
    return f"The campaign reads the tab '{tab}', which this workbook does not have: choose one."


def renamed_file(file_name: str, name: str) -> str:
    return (
        f"The campaign file {file_name} holds the campaign '{name}': the page saves a campaign "
        f"as {name}.toml, so rename the file to save the columns from here."
    )
