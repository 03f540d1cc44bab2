"""What the campaign form says: each field's label (the errors name a field by it), its
notices and refusals, the live preview's, the agent menu's and the test calls'."""

from __future__ import annotations

import math

from dialer.web.texts.checks import plural

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
TEST_CALL_OF_SAVED = (
    "A caller's test call is of a saved campaign, as saved: changing what it says is an editor's."
)
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
