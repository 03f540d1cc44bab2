"""The folder's opt-out register as the page uses it (the register itself is
`ledger/optouts.py`'s): search, add, remove, and the import of a sheet in a child.

    found = search(state, "+15125550100", shown=20)    # [Found(entry, history, whole=True)]
    added, refused = add_numbers(state, text, "IN", reason, who, now)
    remove(state, number, reason, who, now)            # UsageError without a reason
    answer = await import_sheet(settings, state, upload, {"name": ..., "reason": ..., ...})
    lines, total = run_optouts(state, outcomes.numbers, shown=50)   # a run's people opted out

Each blocking function runs in a thread. Numbers on the page are masked, except a number the
user typed whole (a search by it, the removal it leads to): nothing is shown that the user did
not already know.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from dialer.core.masking import mask_phone, mask_text
from dialer.core.statuses import UsageError
from dialer.ledger.optouts import Ask, Change, OptOut, Register, Source
from dialer.sheets.phones import normalise_phone
from dialer.web import texts
from dialer.web.services.child_processes import ask_child
from dialer.web.settings import Settings

# What separates numbers typed into the add form: new lines, commas, semicolons.
_NUMBER_SEPARATORS = re.compile(r"[\n,;]+")
# A search by the last digits needs this many, so one search never lists the whole register.
MIN_SEARCH_DIGITS = 4
# ... and at most this many: a longer tail, tried digit by digit in front of the masked one's
# last 3, would rebuild a whole number nobody typed.
MAX_SEARCH_DIGITS = 4


@dataclass(frozen=True, slots=True)
class Found:
    """An entry as the register page shows it, with its history."""

    entry: OptOut
    history: list[Change]
    whole: bool  # found by the whole number the user typed: shown whole

    @property
    def shown(self) -> str:
        return self.entry.called_to if self.whole else mask_phone(self.entry.called_to)


def region_of(text: str) -> str | None:
    """The country (ISO code) numbers without +country code are read in; None for none."""
    import phonenumbers

    region = text.strip().upper()
    if not region:
        return None
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise UsageError(texts.optout_bad_region(text))
    return region


def whole_number(text: str, region: str | None) -> str | None:
    """`text` in E.164 when it is a whole phone number (with +country code, or national with
    `region`); None otherwise."""
    return normalise_phone(text, region).e164 if text.strip() else None


def search(state: Path, query: str, shown: int, region: str | None = None) -> list[Found]:
    """Entries found by a whole number (`+15125550100`, or national with `region`) or by its
    last digits (MIN_SEARCH_DIGITS to MAX_SEARCH_DIGITS of them); with no query, the newest
    `shown` entries."""
    register = Register.reading(state)
    if register is None:
        return []
    with register:
        number = whole_number(query, region) if query.strip().startswith("+") or region else None
        if number is not None:
            entry = register.entry(number)
            return [Found(entry, register.history(number), True)] if entry else []
        digits = "".join(c for c in query if c.isdigit())
        if query.strip() and len(digits) < MIN_SEARCH_DIGITS:
            raise UsageError(texts.optout_search_short(MIN_SEARCH_DIGITS))
        if len(digits) > MAX_SEARCH_DIGITS:
            raise UsageError(texts.optout_search_long(MAX_SEARCH_DIGITS))
        entries = [e for e in reversed(register.listed()) if e.called_to.endswith(digits)]
        return [Found(e, register.history(e.called_to), False) for e in entries[:shown]]


def history_of(state: Path, number: str) -> list[Change]:
    """A number's history, entry or not (a removed number keeps its history)."""
    register = Register.reading(state)
    if register is None:
        return []
    with register:
        return register.history(number)


def add_numbers(
    state: Path, text: str, region: str | None, reason: str, who: str, now: datetime
) -> tuple[list[str], list[str]]:
    """Opt out the numbers typed (one a line, or comma-separated): all of them, or none when
    one is not a phone number (UsageError listing them, masked). (added, already there)."""
    if not reason.strip():
        raise UsageError(texts.OPTOUT_NEEDS_REASON)
    raws = [r.strip() for r in _NUMBER_SEPARATORS.split(text) if r.strip()]
    if not raws:
        raise UsageError(texts.OPTOUT_NO_NUMBERS)
    numbers, bad = [], []
    for raw in raws:
        phone = normalise_phone(raw, region)
        if phone.e164 is None:
            bad.append(f"{mask_text(raw)}: {mask_text(phone.reason)}")
        else:
            numbers.append(phone.e164)
    if bad:
        raise UsageError(texts.optout_bad_numbers(bad, region))
    with Register.open(state) as register:
        done = register.add([Ask(n, Source.PAGE, who, reason) for n in numbers], now)
    return done.added, done.already


def remove(state: Path, number: str, reason: str, who: str, now: datetime) -> OptOut:
    """Give `number` back to the campaigns; UsageError without a reason, NotOnRegister when
    it is not there. The history keeps the entry and why it went."""
    if not reason.strip():
        raise UsageError(texts.OPTOUT_REMOVE_NEEDS_REASON)
    with Register.open(state) as register:
        return register.remove(number, Source.PAGE, who, reason, now)


def run_optouts(state: Path, numbers: Sequence[str], shown: int) -> tuple[list[RunOptOut], int]:
    """The people called (by a run, or a campaign) whose number the register holds: the first
    `shown` by when they opted out, masked, with the row's reason; and how many in all."""
    register = Register.reading(state)
    if register is None:
        return [], 0
    with register:
        entries = sorted(register.entries(numbers).values(), key=lambda e: (e.since, e.called_to))
    lines = [RunOptOut(mask_phone(e.called_to), e.since, e.row_reason()) for e in entries]
    return lines[:shown], len(lines)


@dataclass(frozen=True, slots=True)
class RunOptOut:
    """A person of the run on the register, as the results list them."""

    number: str  # masked
    since: str
    reason: str  # the row's reason: the source and date ("asked not to be called, call of ...")


async def import_sheet(
    settings: Settings, state: Path, sheet: Path, ask: dict[str, str]
) -> dict[str, Any]:
    """Every number of the uploaded `sheet` opted out by a memory-capped child, all or none:
    {"added": n, "already": n}, or {"bad": [lines], "bad_rows": n} when nothing was
    imported. `ask`: its name as uploaded, reason, who and region. UsageError: the sheet
    cannot be read (one line)."""
    request = {"state": str(state), "sheet": str(sheet), **ask}
    module, shown = "dialer.web.children.optout_sheet", (str(sheet), ask.get("name", ""))
    too_slow = texts.OPTOUT_IMPORT_TOO_SLOW
    return await ask_child(module, request, settings, settings.check_timeout, too_slow, shown)
