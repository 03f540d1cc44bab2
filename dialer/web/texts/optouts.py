"""What the opt-out register page says: its refusals, what an add, an import and a removal
did, and how an entry's source and history read."""

from __future__ import annotations

from collections.abc import Sequence

from dialer.web.texts.checks import plural

OPTOUT_NEEDS_REASON = "Say why these numbers are opted out (it is kept in the history)."
OPTOUT_REMOVE_NEEDS_REASON = (
    "Not removed: say who allowed calls again, and how (it is kept in the history)."
)
OPTOUT_REMOVE_CONFIRM = "Tick the box to confirm: campaigns may call this number again."
OPTOUT_NO_NUMBERS = "Type at least one phone number."
OPTOUT_NOT_WHOLE = "Search by the whole number (with +country code) to remove it."
OPTOUT_IMPORT_TOO_SLOW = "Reading the sheet took too long: nothing was imported."
OPTOUT_REMOVE_ASK = (
    "Remove this number from the opt-out register? Every campaign may call it again. Do this "
    "only when the person has asked, in writing, to be called again."
)

# An entry's source, in words.
SOURCE_WORDS = {
    "call": "said so on a call",
    "command": "added from a terminal",
    "import": "imported from a sheet (terminal)",
    "page": "added on this page",
}
# A history line's action.
ACTION_WORDS = {"added": "opted out", "removed": "removed (may be called again)"}


def source_words(source: str) -> str:
    return SOURCE_WORDS.get(source, source)


def action_words(action: str) -> str:
    return ACTION_WORDS.get(action, action)


def optout_bad_region(text: str) -> str:
    return f"{text.strip()[:10]!r} is not a country code (e.g. IN, US, GB)."


def optout_search_short(digits: int) -> str:
    return f"Type the whole number with +country code, or at least its last {digits} digits."


def optout_search_long(digits: int) -> str:
    return (
        f"Type the whole number with +country code (or choose its country), or only its last"
        f" {digits} digits: more of them would show a number you did not type whole."
    )


def optout_bad_numbers(bad: Sequence[str], region: str | None) -> str:
    hint = "" if region else " (a number without +country code needs the country)"
    return f"Nothing added: not a phone number{hint}: {'; '.join(bad)}."


def optout_added(added: int, already: int) -> str:
    said = f"{plural(added, 'number')} opted out"
    if already:
        said += f", {plural(already, 'number')} already on the register (left as they were)"
    return f"{said}. No campaign of this folder calls them again."


def optout_imported(name: str, added: int, already: int) -> str:
    return f"Imported {name}: {optout_added(added, already)}"


def optout_bad_rows(name: str, count: int) -> str:
    return (
        f"Nothing imported: {plural(count, 'row')} of {name} have no usable phone number "
        "(below). Correct or delete them, then import the sheet again."
    )


def optout_removed(number: str, since: str) -> str:
    return (
        f"{number} was removed from the opt-out register (opted out {since[:10]}). Campaigns "
        "may call it again; its history keeps both."
    )


def optout_not_on_register(number: str) -> str:
    return f"{number} is not on the opt-out register: nothing removed."
