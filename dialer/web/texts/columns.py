"""What the column page says: each role's label and hint, and each refusal of a choice."""

from __future__ import annotations

from collections.abc import Iterable

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
