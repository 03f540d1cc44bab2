"""What the page says of uploads and checks, in plain words: refused uploads, the calling
window and who is outside it now, the check's counts, and why a check can no longer be
launched. Also the counting words every page uses (`plural`, `people`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping

from dialer.campaign.model import MATCH_COLUMNS, Campaign, Window
from dialer.core.statuses import Status
from dialer.engine.gate import RETRY_UNKNOWN
from dialer.web.settings import DAY, MB, Settings


def plural(n: int, one: str, many: str = "") -> str:
    """ "1 person", "2 people", "1 duplicate", "3 duplicates": the count and its noun."""
    return f"{n:,} {one if n == 1 else many or one + 's'}"


def people(n: int) -> str:
    return plural(n, "person", "people")


NOT_LAUNCHED = "Not launched, nobody was called."
CONFIRM_COUNT = "Tick the box to confirm how many people are called."
CHOOSE_BOTH = "Choose a campaign and a sheet."
CHOOSE_CAMPAIGN = "Choose a campaign for this sheet, or make a new one from it."
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


def window_text(campaign: Campaign | None, counts: Mapping[str, int]) -> str:
    """The campaign's calling hours and who is outside them now (None: it no longer loads)."""
    if campaign is None:
        return "the campaign file no longer loads"
    if not campaign.window:
        return "none set: calls at any hour"
    outside = counts.get(Status.OUTSIDE_WINDOW)
    now = (
        f"; {people(outside)} cannot be called at this hour"
        if outside
        else "; everyone ready can be called now"
    )
    return f"{hours_and_days(campaign.window)} in each person's local time{now}"


DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def days_text(days: Iterable[int]) -> str:
    """ "every day", "Monday–Saturday", "Monday, Wednesday and Friday"."""
    chosen = sorted(set(days))
    if len(chosen) == 7:
        return "every day"
    if len(chosen) > 2 and chosen == list(range(chosen[0], chosen[-1] + 1)):
        return f"{DAY_NAMES[chosen[0]]}–{DAY_NAMES[chosen[-1]]}"
    names = [DAY_NAMES[d] for d in chosen]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def hours_and_days(window: Window) -> str:
    """ "09:00–20:00, Monday–Saturday"."""
    return f"{window.hours.replace('-', '–')}, {days_text(window.days)}"


# A window refusal's reason, as dialer/window.py writes it: "... in Asia/Kolkata (21:14 Sun)".
_LOCAL_NOW = re.compile(r"in (?P<zone>\S+) \((?P<time>\d\d:\d\d) (?P<day>[A-Z][a-z]{2})")


def nobody_now(campaign: Campaign | None, reason: str, outside: int) -> str:
    """Why nobody of a check can be called now, naming the rule, and what to do about it.
    `reason`: the first refused row's reason, which names the local time it was judged at;
    `outside`: how many rows are outside the calling hours (0: the rows below say why)."""
    if not outside:
        return "Nobody in this sheet can be called: the rows below say why."
    fix = (
        "Check the sheet again then, schedule the run for then (below), or change the "
        "calling days and hours in the campaign."
    )
    if campaign is None or campaign.window is None:
        return "Nobody in this sheet can be called now."
    window = campaign.window
    rule = f"this campaign calls {hours_and_days(window)}, in each person's local time"
    found = _LOCAL_NOW.search(reason)
    if found is None:
        return f"Nobody in this sheet can be called now: {rule}. {fix}"
    day = [d[:3] for d in DAY_NAMES].index(found["day"])
    where = f"in {found['zone'].replace('_', ' ')}"
    if day not in window.days:
        said = f"Today is {DAY_NAMES[day]} {where}, and {rule}."
    else:
        said = f"It is {found['time']} {where}, and {rule}."
    return f"Nobody in this sheet can be called now. {said} {fix}"


# The check's count of each status, as a heading: "Ready to call 5".
CHECK_WORDS = {
    Status.READY: "Ready to call",
    Status.INVALID: "Cannot be called: number or details missing or wrong",
    Status.DUPLICATE: "Same number as an earlier row",
    Status.SUPPRESSED: "On the do-not-call list",
    Status.OPTED_OUT: "Asked not to be called (on the opt-out register)",
    Status.ALREADY_CALLED: "Called by an earlier run",
    Status.OUTSIDE_WINDOW: "Outside the calling hours now",
    Status.LIMITED: "Held back: called as often as the limits allow",
    Status.REDIAL_LATER: "To be called again later",
    Status.UNKNOWN: "Maybe called by an earlier run (Tabbly did not answer in time)",
    Status.FAILED: "Failed in an earlier run",
}


def page_warning(warning: str) -> str:
    """A check's warning as the page says it: the page's own way to fix it, not the file's."""
    return warning.replace(
        MATCH_COLUMNS,
        "choose their columns, or give default values, with “Change the columns” above",
    )


def page_reason(reason: str) -> str:
    """A row's reason as the page says it: no command-line options."""
    return reason.replace(RETRY_UNKNOWN, "not called again, so nobody hears it twice")


def check_words(status: str) -> str:
    return CHECK_WORDS.get(status, status)  # type: ignore[call-overload]


def countries_text(countries: Mapping[str, int], name: Callable[[str], str]) -> str:
    """ "United States 5 · India 4": the ready people by their number's country."""
    return " · ".join(f"{name(code)} {n:,}" for code, n in countries.items() if n)


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
