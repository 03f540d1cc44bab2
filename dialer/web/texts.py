"""What the page says, in plain words: a run's outcome, the calling window, why a check can
no longer be launched, and the messages of refused uploads. The HTML is in `templates/`."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping

from dialer.campaign.model import Campaign, Window
from dialer.commands.run import MATCH_COLUMNS
from dialer.core.currencies import money
from dialer.core.statuses import ExitCode, Status, StopReason
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


# ---- the campaign form (dialer/web/editor.py) ----

# Each field's label: the page's <label>s and the errors that name a field say the same.
FIELD_LABELS = {
    "name": "Campaign name",
    "organization_id": "Organisation id",
    "agent_id": "Agent",
    "call_from": "Caller number",
    "first_line": "Greeting",
    "instruction": "Instruction for the agent",
    "default_region": "Country for numbers without +country code",
    "window_from": "Call from",
    "window_to": "Call until",
    "window_hours": "Calling hours",
    "window_days": "Calling days",
    "rate_per_second": "Calls started per second at most",
    "redial_outcomes": "Call again when the last call was",
    "redial_after_minutes": "Minutes to wait before calling again",
    "redial_max_calls": "Calls per person at most",
    "limits_per_day": "Calls to one person per day at most",
    "limits_per_week": "Calls to one person per week at most",
    "cost_per_call": "Cost per call (for the estimate before launch)",
    "columns": "Sheet columns",
    "defaults": "Default values",
    "preview_sheet": "Sheet to preview with",
    "test_number": "Your phone number",
    "test_row": "Row to use",
}
CAMPAIGN_SAVED = "Saved. The previous version is kept as a backup copy beside the campaign."
CAMPAIGN_CREATED = "Campaign {name} created."
NAME_IS_FIXED = (
    "The name cannot change: it names the record of who was called. "
    "To use another name, create a new campaign."
)
NAME_TAKEN = "A campaign called {name} exists already: edit it instead."
FILE_NOT_NAMED = "This campaign is in {file}, not {name}.toml: rename the file to edit it here."
EDIT_IN_FILE = "This campaign's file does not load ({problem}); fix it in the file itself."
NO_PREVIEW_SHEET = "Check a sheet on the start page first: the preview uses its rows."
NO_SHEET_YET = "Upload a sheet on the start page first: the preview and the test call use its rows."
NAME_NEEDS_LETTERS = "give the campaign a name with letters or digits"
TEMPLATE_SPACED = (
    'the column "{header}" is written {{{{ {name} }}}}, with no spaces in the name; '
    'pick it from "Insert a column" to have it written for you.'
)
TEMPLATE_BROKEN = (
    "something between {{ and }} is not a column name, or a {{ is never closed; pick "
    'columns from "Insert a column" to have them written for you.'
)
PREVIEW_SHEET_GONE = "That sheet is no longer on the server: check it again on the start page."
NO_API_KEY = "The server has no API key ({env}): no call can be placed."
TEST_CALL_PLACED = "Test call placed to {number} with row {row}'s greeting: your phone should ring."
TEST_CALL_FAILED = "The test call was not placed: {reason}"
NO_SUCH_ROW = "The sheet has no row {row}."
PREVIEW_TOO_SLOW = "Reading the sheet's rows took too long: preview with a smaller sheet."
TEST_CALL_WHILE_RUNNING = (
    "Campaign {name} is running or starting: place the test call when it has finished."
)
TEST_CALL_LIMITED = "This number may not be called now under the campaign's limits: {reason}."
TEST_CALLS_YOURS = "from you"
TEST_CALLS_EVERYONE = "from everyone on this page together"
TEST_CALLS_CAMPAIGN = "of campaign {name}"


def test_calls_capped(cap: int, whose: str, wait: float, *, day: bool = False) -> str:
    """A test call refused by a cap (HTTP 429): how many, whose, and when another may go."""
    span = "24 hours" if day else "hour"
    minutes = max(1, math.ceil(wait / 60))
    when = f"{minutes} minutes" if minutes < 120 else f"{math.ceil(minutes / 60)} hours"
    return (
        f"At most {plural(cap, 'test call')} {whose} in any {span}: "
        f"the next one can be placed in about {when}."
    )


def test_call_no_country(prefix: str) -> str:
    return (
        f"{prefix} numbers belong to no country (satellite or international networks): a "
        "test call goes only to a mobile or landline number of the campaign's countries."
    )


def test_call_not_personal(what: str) -> str:
    return f"That is {what}: a test call goes only to a mobile or landline number."


def test_call_other_country(country: str, allowed: str) -> str:
    if not allowed:
        return (
            "The campaign has no country for local numbers and the row's own number is not "
            "valid: set the country, or test with another row."
        )
    return f"That is a number of {country}; a test call of this campaign goes only to {allowed}."


def test_call_outside_hours(reason: str) -> str:
    return f"Not a time to ring that number: {reason}."


_TEST_CALL_STATES = {
    "triggered": "placed",
    "unknown": "maybe placed (no usable answer)",
    "sending": "being placed (or cut off)",
}


def test_call_words(status: str, reason: str) -> str:
    """A test call's status on the campaign's page."""
    said = _TEST_CALL_STATES.get(status)
    if said is not None:
        return said
    return f"not placed: {reason}" if reason else "not placed"


def test_calls_spent(placed: int, total: str) -> str:
    """The line above the test calls: how many rang in the last day and about what cost."""
    if not placed:
        return "No test call placed in the last 24 hours."
    cost = f", about {total}" if total else " (cost unknown: no cost per call yet)"
    return f"{plural(placed, 'test call')} placed in the last 24 hours{cost}."


def queued(ahead: int) -> str:
    """A run or sync waiting for its turn (`runs_at_once`, `syncs_at_once`)."""
    return f"queued, {ahead} ahead: it starts when one under way ends"


AGENTS_UNAVAILABLE = "The agents could not be listed ({problem}): type the agent's number."
PREVIEWS_BUSY = "The page is busy with other previews and saves: try again in a few seconds."
AGENTS_THROTTLED = (
    "The agents of that many organisations cannot be listed at once: type the agent's number, "
    "or wait a few seconds."
)


# The outcomes a campaign may call again after, as its form's ticks say them.
REDIAL_WORDS = {
    "busy": "busy",
    "no_answer": "not answered",
    "voicemail": "a voicemail",
    "failed": "failed",
}


def labelled(field: str | None, message: str) -> str:
    """An error with the label of the field it is about, once."""
    label = FIELD_LABELS.get(field or "")
    return f"{label}: {message}" if label and not message.startswith(label) else message


# ---- results, cost and history (dialer/web/results.py) ----

# Each outcome's label on the chart, in the chart's order (SPEC 10's outcomes).
OUTCOME_LABELS = {
    "answered": "answered",
    "voicemail": "voicemail",
    "no_answer": "no answer",
    "busy": "busy",
    "failed": "failed",
    "pending": "pending",
}


def synced(updated: int) -> str:
    """What the Sync button did, said where the button is."""
    if not updated:
        return "Synced: nothing new yet (Tabbly writes a call's log when the call ends)."
    return f"Synced: {plural(updated, 'call')} updated from Tabbly's call logs."


SYNC_NEVER_RUN = "Nobody has been called in this campaign yet: there are no outcomes to read."
SYNC_TOO_SLOW = "Reading the call logs took too long and was stopped: try again later."
SYNC_UNDER_WAY = "Outcomes are being read from Tabbly's call logs: try again in a moment."
NO_RESULTS_SHEET = "No results sheet yet: press Sync to read the outcomes and write it."
RESULTS_AFTER_RUN = "Outcomes are read from Tabbly's call logs once the run ends."
NO_OUTCOMES = "No outcomes yet: nobody has been called, or the calls were never read. Press Sync."
PENDING_HINT = "pending: Tabbly has no log of the call yet (it writes one when the call ends)"


def launch_busy(campaign: str) -> str:
    """A launch that found the campaign running, starting, or still reading its outcomes."""
    return (
        f"Not launched: campaign {campaign} is running, starting, or still reading its "
        "outcomes from Tabbly. Nobody was called; try Launch again when it has finished."
    )


def sync_refused_running(campaign: str) -> str:
    return f"Campaign {campaign} is calling now: its outcomes are read when the run ends."


def sync_refused_locked(campaign: str) -> str:
    return (
        f"Campaign {campaign} is running elsewhere (perhaps from a terminal): its outcomes "
        "can be read when that run ends."
    )


def sync_queued(ahead: int) -> str:
    return f"Reading outcomes is queued, {ahead} ahead: other campaigns' are being read now."


def sync_needs_memory(settings: Settings) -> str:
    return (
        f"Reading the call logs needed more than {settings.sync_memory // MB} MB of memory "
        "and was stopped: try again later, or sync this campaign from a terminal."
    )


def sync_failed(reason: str) -> str:
    return f"The outcomes could not be read: {reason}"


def answer_rate_text(rate: float | None, answered: int, known: int) -> tuple[str, str]:
    """The answer rate, and what it is of."""
    if rate is None:
        return "-", "no call has a known outcome yet"
    return f"{rate:.0%}", f"{answered:,} of {people(known)} with a known outcome"


def cost_estimate_text(
    ready: int, per_call: float | None, source: str, calls: int, currency: str | None = None
) -> str:
    """The estimate beside a check's count: where its price per call comes from, or why none."""
    if per_call is None:
        return (
            "unknown: no call of this campaign has a cost in Tabbly's logs yet, and the "
            "campaign sets no cost per call"
        )
    if source == "synced":
        where = f"the average of this campaign's {plural(calls, 'call')} read from Tabbly's logs"
    else:
        where = "the cost per call set in the campaign"
    unit = f" {currency}" if currency else ""
    total = money(ready * per_call, currency)
    return f"about {total} ({people(ready)} × {per_call:.4g}{unit} per call, {where})"


def calls_per_hour_later(seconds: float) -> str:
    return f"shown once the calls have gone on for {seconds / 60:g} minutes"


# ---- watching a run: what the run page says about each person, in plain words ----

# Why people the run did not reach were not called, by the run's exit code.
STOP_WORDS = {
    ExitCode.INSUFFICIENT_BALANCE: "your Tabbly wallet is empty",
    ExitCode.INTERRUPTED: "the run was stopped",
    ExitCode.CAMPAIGN_REFUSED: "Tabbly refused the campaign",
    ExitCode.INPUT_ERROR: "the run stopped on an error",
}

# How the start page's history says how a run ended (its summary's close_reason).
RUN_RESULTS = {
    "": "finished",
    StopReason.INSUFFICIENT_BALANCE: "stopped: Tabbly wallet empty",
    StopReason.CAMPAIGN_REFUSED: "stopped: Tabbly refused the campaign",
    StopReason.INTERRUPTED: "stopped",
    StopReason.ERROR: "stopped on an error",
}


def run_result(close_reason: object) -> str:
    reason = str(close_reason or "")
    return RUN_RESULTS.get(reason, reason)  # type: ignore[call-overload]


# What the run page says first once a run has ended, by its exit code.
RUN_HEADLINES = {
    ExitCode.OK: "Finished",
    ExitCode.ROW_PROBLEMS: "Finished",
    ExitCode.INSUFFICIENT_BALANCE: (
        "Your Tabbly wallet is empty: top up your Tabbly wallet, then Resume"
    ),
    ExitCode.INTERRUPTED: "Stopped: Resume calls the people not called yet",
    ExitCode.CAMPAIGN_REFUSED: (
        "Tabbly refused this campaign (its organisation, agent, caller number or the API key): "
        "nothing more was sent; correct the campaign, then check the sheet again"
    ),
    ExitCode.INPUT_ERROR: "Stopped on an error (below): nothing more was sent",
    ExitCode.INTERNAL: "Stopped on an internal error: nothing more was sent",
}

# A row's status in the marketer's words; the code itself is kept in a tooltip and the report.
STATUS_WORDS = {
    Status.TRIGGERED: "called",
    Status.FAILED: "call failed",
    Status.UNKNOWN: "maybe called (Tabbly did not answer in time)",
    Status.NOT_ATTEMPTED: "not called yet",
    Status.OUTSIDE_WINDOW: "not called yet: outside the calling hours",
    Status.LIMITED: "not called yet: called as often as the limits allow",
    Status.REDIAL_LATER: "to be called again later",
    Status.ALREADY_CALLED: "called by an earlier run",
    Status.INVALID: "cannot be called: number or details missing or wrong",
    Status.DUPLICATE: "same number as an earlier row",
    Status.SUPPRESSED: "on the do-not-call list",
    Status.READY: "ready to call",
}
WAITING = "waiting to be called"

STOP_ASK = (
    "Stop calling? Calls already placed go on; everyone not called yet stays not called "
    "until you resume."
)


def status_words(status: str, exit_code: int | None) -> str:
    """A row status in plain words; "not called yet: your Tabbly wallet is empty" names the
    stop's cause."""
    if status == Status.NOT_ATTEMPTED and exit_code in STOP_WORDS:
        return f"not called yet: {STOP_WORDS[exit_code]}"  # type: ignore[index]
    return STATUS_WORDS.get(status, status)  # type: ignore[call-overload]


# How the check's left-out rows are counted in a sentence: (one, many).
LEFT_OUT_NOUNS = {
    Status.INVALID: (
        "row that cannot be called (number or details)",
        "rows that cannot be called (number or details)",
    ),
    Status.DUPLICATE: ("duplicate", "duplicates"),
    Status.SUPPRESSED: ("on the do-not-call list", "on the do-not-call list"),
    Status.ALREADY_CALLED: ("called by an earlier run", "called by an earlier run"),
    Status.OUTSIDE_WINDOW: ("outside the calling hours", "outside the calling hours"),
    Status.LIMITED: ("held back by the limits", "held back by the limits"),
    Status.REDIAL_LATER: ("to be called again later", "to be called again later"),
    Status.UNKNOWN: ("maybe called by an earlier run", "maybe called by an earlier run"),
    Status.FAILED: ("failed in an earlier run", "failed in an earlier run"),
}


def left_out(checked: Mapping[str, int]) -> str:
    """The sheet's rows its check left out of the run, in one sentence ("" if none)."""
    said = [
        f"{n:,} {one if n == 1 else many}"
        for status, (one, many) in LEFT_OUT_NOUNS.items()
        if (n := checked.get(status, 0))
    ]
    return f"Not in this run (the check left them out): {', '.join(said)}." if said else ""


def run_state(exit_code: int | None, parts: list[tuple[str, int, str]], total: int) -> str:
    """The run page's headline once the run ended: what became of its people, in a sentence
    whose numbers add up to `total` ("Finished: 20 called, 37 not called yet")."""
    if exit_code is None:
        return "calling"
    head = RUN_HEADLINES.get(exit_code, f"Ended (exit code {exit_code})")  # type: ignore[call-overload]
    if not total:
        return f"{head}: nobody in this run"
    # The headline already says why the run stopped: "37 not called yet" is enough here.
    said = [
        f"{n:,} {STATUS_WORDS[Status.NOT_ATTEMPTED] if key == Status.NOT_ATTEMPTED else words}"
        for key, n, words in parts
        if n
    ]
    called = sum(n for key, n, _ in parts if key == Status.TRIGGERED)
    if not called:
        said.insert(0, "nobody called")
    return f"{head}. Of the {people(total)} in this run: {', '.join(said)}."


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


# ---- schedules ----

SCHEDULE_WHEN = "When: choose a time once, or every day."
SCHEDULE_NEEDS_CONFIRM = "Tick the box to confirm who is called when the schedule fires."
SCHEDULE_BAD_ZONE = "Time zone: {zone!r} is not a time zone name (like Asia/Kolkata or UTC)."
SCHEDULE_BAD_AT = "Date and time: {value!r} is not a date and time (like 2026-05-01 09:30)."
SCHEDULE_PAST = "Date and time: {value} in {zone} has passed already; choose a later time."
SCHEDULE_TOO_FAR = (
    "Date and time: {value} in {zone} is more than a year ahead; choose a sooner time."
)
# A schedule's state (dialer/web/schedules.py) as the schedules page says it.
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
# Column matching (dialer/web/columns.py).
COLUMN_LABELS = {
    "phone": "Phone number",
    "other_phone": "Other phone number",
    "country": "Country",
    "id": "Customer id",
    "zone": "Time zone",
}
COLUMN_HINTS = {
    "phone": "The number to call.",
    "id": "A value unique to each person; the report and Tabbly carry it. "
    "No such column? Choose the phone column.",
    "zone": "The person's time zone, like Asia/Kolkata, for the calling window.",
    "other_phone": "Called when the first phone column has no valid number. Optional.",
    "country": "The person's country (US, United States or +1): says whose number a "
    "number without +country code is. Optional.",
}
SAME_COLUMN_TWICE = "This column is chosen for another phone number already."
NOT_IN_SHEET = "(not in this sheet)"
CHOOSE_COLUMN = "Choose the column that holds it."
NOT_A_COLUMN = "That is not a column of this sheet: choose again."
NEEDS_COLUMN_OR_DEFAULT = (
    "Choose a column, or type a default value: without either, every row is invalid."
)
DEFAULT_TOO_LONG = "A default may be at most {n} characters."
DEFAULT_HAS_BRACES = "A default is said as written: no {{ or }}."
NOT_A_TAB = "That tab is not in this workbook: choose again."
BAD_TAB = "Tab: a tab's name has no control characters and at most {n} characters: choose again."
CHANGED_SINCE_OPENED = (
    "The campaign file changed since you opened it (saved elsewhere or edited by hand), so "
    "nothing was saved: open the campaign again to see it as it is now, then make your "
    "changes there."
)
CAMPAIGN_EDITED_MEANWHILE = (
    "The campaign was changed (saved elsewhere) while you chose the columns, so nothing was "
    "saved: open this page again to check the choices against it, then save."
)
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
