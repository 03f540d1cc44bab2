"""The campaign form's fields: a `CampaignForm` <-> what the browser shows and sends back.

    values = values_of(form)                         # text for every input, to render
    form = parse_fields(posted, base=form)           # FieldError(field, message) if not

Only the keys a marketer sets come from the browser; everything else (endpoint, api_key_env,
dispatch concurrency, the [contacts] paths) is taken from `base`, the file on the server.
Texts are kept exactly as typed (a greeting's spaces are the user's), so an error page shows
the same values back. The loader does the real validation; this only turns text into numbers.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from dialer.campaign.model import MAX_ID, WEEKDAYS
from dialer.core.cells import normalise_header
from dialer.core.statuses import REDIALABLE
from dialer.web import texts
from dialer.web.services.campaign_toml import CampaignForm, field_of
from dialer.web.services.column_fields import template_name
from dialer.web.texts import FIELD_LABELS

REDIAL_OUTCOMES = tuple(sorted(REDIALABLE))
_TIME = re.compile(r"^\d{1,2}:\d{2}$")
TEXT_FIELDS = (
    "name",
    "organization_id",
    "agent_id",
    "call_from",
    "first_line",
    "instruction",
    "default_region",
    "window_from",
    "window_to",
    "rate_per_second",
    "redial_after_minutes",
    "redial_max_calls",
    "limits_per_day",
    "limits_per_week",
    "cost_per_call",
)
LIST_FIELDS = ("window_days", "redial_outcomes")
FLAG_FIELDS = ("redial",)
MAX_ID_DIGITS = len(str(MAX_ID))  # 16: no id, count or row of a campaign is longer
# A posted text longer than this is no campaign setting (a template is at most 5,000).
MAX_FORM_FIELD_CHARS = 10_000
# "{{ Total Spent }}": a header with spaces written as it is in the sheet.
_SPACED_NAME = re.compile(r"\{\{\s*([^\s{}|]+(?:[ \t]+[^\s{}|]+)+)\s*\}\}")

Posted = Mapping[str, Sequence[str]]


class FieldError(Exception):
    """A value the page refuses, with the field it belongs to."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def values_of(form: CampaignForm) -> dict[str, Any]:
    """What each input shows for `form` (texts, and lists for the checkbox groups)."""
    start, _, end = (form.window_hours or "").partition("-")
    return {
        "name": form.name,
        "organization_id": str(form.organization_id) if form.organization_id else "",
        "agent_id": str(form.agent_id) if form.agent_id else "",
        "call_from": form.call_from,
        "first_line": form.first_line,
        "instruction": form.instruction,
        "default_region": form.default_region or "",
        "window_from": start,
        "window_to": end,
        "window_days": list(form.window_days),
        "rate_per_second": _number(form.rate_per_second),
        "redial": form.redial,
        "redial_outcomes": list(form.redial_outcomes),
        "redial_after_minutes": _number(form.redial_after_minutes),
        "redial_max_calls": str(form.redial_max_calls),
        "limits_per_day": "" if form.limits_per_day is None else str(form.limits_per_day),
        "limits_per_week": "" if form.limits_per_week is None else str(form.limits_per_week),
        "cost_per_call": "" if form.cost_per_call is None else _number(form.cost_per_call),
    }


def posted_values(posted: Posted) -> dict[str, Any]:
    """The posted inputs as `values_of` shapes them, exactly as typed: shown back on errors."""
    values: dict[str, Any] = {}
    for name in TEXT_FIELDS:
        given = posted.get(name) or [""]
        values[name] = given[0][:MAX_FORM_FIELD_CHARS]
    for name in LIST_FIELDS:
        values[name] = [v for v in posted.get(name, []) if isinstance(v, str)]
    for name in FLAG_FIELDS:
        values[name] = bool(posted.get(name))
    return values


def _label(field: str) -> str:
    return FIELD_LABELS.get(field, field)


def id_number(text: str) -> int | None:
    """`text` as an id or row number when it is one in ASCII digits, short enough to be one;
    else None. `str.isdigit` alone is not enough: "²" is a digit to it and no number to
    `int`, "١٢" is 12 to `int`, and 5,000 digits make `int` raise."""
    text = text.strip()
    if text.isascii() and text.isdigit() and len(text) <= MAX_ID_DIGITS:
        return int(text)
    return None


def _whole(values: Mapping[str, Any], field: str, *, optional: bool = False) -> int | None:
    text = values[field].strip()
    if not text and optional:
        return None
    digits = text.removeprefix("-")
    if digits.isascii() and digits.isdigit() and len(digits) <= MAX_ID_DIGITS:
        return int(text)
    shown = text if len(text) <= 20 else f"{text[:20]}..."
    raise FieldError(field, f"{_label(field)}: enter a whole number, not {shown!r}")


def _decimal(values: Mapping[str, Any], field: str) -> float:
    text = values[field].strip().replace(",", ".")
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise FieldError(field, f"{_label(field)}: enter a number, not {text!r}")
    return value


def _hours(values: Mapping[str, Any]) -> str | None:
    start, end = values["window_from"].strip(), values["window_to"].strip()
    if not start and not end:
        return None
    for field, text in (("window_from", start), ("window_to", end)):
        if not _TIME.match(text):
            raise FieldError(field, f"{_label(field)}: enter a time like 09:00, not {text!r}")
    return f"{start.zfill(5)}-{end.zfill(5)}"


def parse_fields(posted: Posted, base: CampaignForm) -> CampaignForm:
    """`base` with the marketer's keys taken from the posted form; FieldError names the first
    field that is not even a number or a time (the loader judges the rest)."""
    values = posted_values(posted)
    days = tuple(d for d in WEEKDAYS if d in values["window_days"])
    outcomes = tuple(o for o in REDIAL_OUTCOMES if o in values["redial_outcomes"])
    organization_id = _whole(values, "organization_id")
    agent_id = _whole(values, "agent_id")
    assert organization_id is not None and agent_id is not None
    redial = values["redial"]
    return dataclasses.replace(
        base,
        name=values["name"].strip(),
        organization_id=organization_id,
        agent_id=agent_id,
        call_from=values["call_from"].strip(),
        first_line=values["first_line"],
        instruction=values["instruction"],
        default_region=values["default_region"].strip().upper() or None,
        window_hours=_hours(values),
        window_days=days,
        rate_per_second=_decimal(values, "rate_per_second"),
        redial=redial,
        redial_outcomes=outcomes if redial else base.redial_outcomes,
        redial_after_minutes=_decimal(values, "redial_after_minutes")
        if redial
        else base.redial_after_minutes,
        redial_max_calls=(_whole(values, "redial_max_calls") or 0)
        if redial
        else base.redial_max_calls,
        limits_per_day=_whole(values, "limits_per_day", optional=True),
        limits_per_week=_whole(values, "limits_per_week", optional=True),
        cost_per_call=_decimal(values, "cost_per_call")
        if values["cost_per_call"].strip()
        else None,
    )


def parse_templates(posted: Posted, base: CampaignForm) -> CampaignForm:
    """Only what the preview renders: the greeting, the instruction and the country."""
    values = posted_values(posted)
    return dataclasses.replace(
        base,
        first_line=values["first_line"],
        instruction=values["instruction"],
        default_region=values["default_region"].strip().upper() or None,
    )


def first_value(posted: Posted, name: str) -> str:
    """The first text posted as `name` ("" for none)."""
    given = posted.get(name) or [""]
    return given[0]


def plain_error(message: str, posted: Mapping[str, Sequence[str]]) -> tuple[str | None, str]:
    """The field a loader error is about, and the error as the page says it: a template's
    syntax error in one plain sentence (never jinja's "expected token 'end of print
    statement', got 'Spent'"), any other message as it is."""
    field = field_of(message)
    if "is not a valid template" not in message or field is None:
        return field, message
    spaced = _SPACED_NAME.search(first_value(posted, field))
    if spaced:
        written = spaced.group(1)
        name = template_name(written) or normalise_header(written)
        return field, texts.labelled(field, texts.TEMPLATE_SPACED.format(header=written, name=name))
    return field, texts.labelled(field, texts.TEMPLATE_BROKEN)
