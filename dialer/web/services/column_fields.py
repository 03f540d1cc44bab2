"""The column page's model: every name a campaign reads from a sheet (phone columns, country,
id, time zone, each template variable) as a `ColumnField`, pre-chosen from the sheet's own
headers, judged as the user chose, and saved into the campaign file. Which column a name
reads is `dialer.sheets.columns`'s rule, the one `dialer validate` and `dialer run` apply.

    if needs_matching(campaign, kept, probe):       # a column must be chosen first
        fields = page_fields(campaign, probe)       # each pre-chosen
    tab_error = judge(fields, probe, tab)           # each field's error, in place
    save_choice(campaign, fields, probe)            # blocking: the file replaced atomically

Also the column naming rules the campaign form shares: `template_name` (what {{ }} says a
header as) and `sheet_guesses` (a new campaign's phone and country columns).
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dialer.campaign.binding import file_sha256
from dialer.campaign.model import MAX_DEFAULT_CHARS, MAX_PHONE_COLUMNS, Campaign
from dialer.core.cells import normalise_header
from dialer.core.statuses import SheetError, UsageError
from dialer.sheets.columns import Needs, country_header, guess, needs, phone_headers, resolve
from dialer.sheets.reader import Sheet
from dialer.templating.sandbox import template_variables
from dialer.web import texts
from dialer.web.children.sheet_probe import Probe
from dialer.web.services.campaign_toml import ChangedMeanwhile, form_from_campaign, save_campaign
from dialer.web.services.uploads import Kept

_BRACES = re.compile(r"\{\{|\}\}|\{%|%\}")
_SLUG = re.compile(r"[^a-z0-9_]+")
# Jinja's own words: a header normalised to one of them cannot be written {{ name }}.
_TEMPLATE_WORDS = frozenset({"and", "or", "not", "in", "is", "if", "else", "true", "false", "none"})
# The form keys of the columns the campaign does not name yet (other phones, the country).
_EXTRA_PHONE = "+other_phone-"
_EXTRA_COUNTRY = "+country"


def template_name(header: str) -> str:
    """What a greeting writes between {{ and }} to say a column ("Total Spent" ->
    "total_spent": a name reads the column whose header normalises like it, SPEC 4.2);
    "" when no template name can say it (it starts with a digit, it is one of Jinja's
    words)."""
    name = normalise_header(header)
    if not name.isidentifier() or keyword.iskeyword(name) or name.lower() in _TEMPLATE_WORDS:
        return ""
    return name


def sheet_guesses(headers: tuple[str, ...] | list[str]) -> tuple[tuple[str, ...], str | None]:
    """A sheet's phone columns (the closest to "phone" first, then the others in the sheet's
    order) and its country column, as a new campaign made from it reads them."""
    first = guess(["phone"], headers).get("phone")
    others = phone_headers(headers, [first] if first else [])
    phones = ([first] if first else []) + others
    return tuple(phones[:MAX_PHONE_COLUMNS]), country_header(headers, phones)


def _as_sheet(kept: Kept, probe: Probe) -> Sheet:
    """The probed header as a `Sheet`, so the engine's own rule judges it."""
    columns = tuple(normalise_header(h) for h in probe.headers)
    return Sheet(path=Path(kept.name), kind="probe", headers=probe.headers, columns=columns)


def needs_matching(campaign: Campaign, kept: Kept, probe: Probe) -> bool:
    """True when a check of this upload would fail or mark every row invalid for a column:
    the phone or id not found, a needed template variable with neither column nor default,
    or the campaign's tab not in the workbook. Then the user matches columns first."""
    if probe.asked_tab_missing:
        return True
    wanted = needs(campaign)
    try:
        found = resolve(campaign, _as_sheet(kept, probe), wanted.variables)
    except SheetError:
        return True
    if set(found.missing) & wanted.required:
        return True
    # A second phone column or a country column the campaign does not read yet: offered
    # before anyone is called (the rows only in it, the country that says whose number).
    taken = {probe.headers[i] for i in found.phones}
    others, country = _unread(campaign, probe, taken)
    return bool(others) or country is not None


def _unread(campaign: Campaign, probe: Probe, taken: set[str]) -> tuple[list[str], str | None]:
    """The sheet's phone columns besides `taken` (as many as the campaign may add) and its
    country column when the campaign reads none."""
    room = MAX_PHONE_COLUMNS - len(campaign.contacts.phone_columns)
    others = phone_headers(probe.headers, taken)[: max(room, 0)]
    if campaign.contacts.country_column:
        return others, None
    return others, country_header(probe.headers, taken | set(others))


@dataclass(slots=True)
class ColumnField:
    """One name the campaign reads, as the page shows and takes it."""

    name: str  # the campaign's name (a phone column, a template variable, ...); "" if none yet
    slug: str  # for element ids: column-<slug>, default-<slug>
    kind: str  # "phone", "other_phone", "country", "id", "zone" or "variable"
    label: str
    hint: str
    required: bool
    chosen: str = ""  # a header as written, or "" for none
    default: str = ""
    error: str = ""
    key: str = ""  # the form's name for it: the campaign's name, or an extra's key

    @property
    def has_default(self) -> bool:
        return self.kind == "variable"

    @property
    def role(self) -> bool:
        """A column the campaign reads for itself, never a template variable."""
        return self.kind != "variable"


def _roles(wanted: Needs) -> dict[str, str]:
    """Each name the campaign reads for a role, and that role: every phone column (not only
    the first), the country column, the id and the time zone."""
    roles = {wanted.phone: "phone"}
    for other in wanted.phones[1:]:
        roles.setdefault(other, "other_phone")
    for name, role in ((wanted.country, "country"), (wanted.id, "id"), (wanted.zone, "zone")):
        if name:
            roles.setdefault(name, role)
    return roles


def column_fields(
    campaign: Campaign, wanted: Needs, extra_phones: int = 0, extra_country: bool = False
) -> list[ColumnField]:
    """The campaign's names, then `extra_phones` other phone columns and a country column it
    does not name yet (offered from the sheet)."""
    first = template_variables(campaign.first_line) or frozenset()
    instruction = template_variables(campaign.instruction) or frozenset()
    roles = _roles(wanted)
    fields: list[ColumnField] = []
    slugs: set[str] = set()

    def slug_of(text: str) -> str:
        slug = _SLUG.sub("-", text.lower()).strip("-") or "column"
        while slug in slugs:
            slug += "-2"
        slugs.add(slug)
        return slug

    for name in wanted.names:
        kind = roles.get(name, "variable")
        slug = slug_of(name)
        if kind == "variable":
            places = [
                p
                for p, names in (("greeting", first), ("instruction", instruction))
                if name in names
            ]
            needed = name in wanted.required
            hint = texts.used_in(places) + (
                "" if needed else " Optional: the template has its own default."
            )
            fields.append(ColumnField(name, slug, kind, name, hint, needed, key=name))
        else:
            fields.append(
                ColumnField(
                    name,
                    slug,
                    kind,
                    f"{texts.COLUMN_LABELS[kind]} ({name})",
                    texts.COLUMN_HINTS[kind],
                    # A campaign naming a time zone column refuses a sheet without it; the
                    # other phone columns and the country may be left out.
                    kind not in ("other_phone", "country"),
                    key=name,
                )
            )
    at = len(wanted.phones)
    for i in range(min(extra_phones, MAX_PHONE_COLUMNS - at)):
        label = texts.COLUMN_LABELS["other_phone"]
        fields.insert(
            at + i,
            ColumnField(
                "",
                slug_of(f"other-phone-{i + 1}"),
                "other_phone",
                label,
                texts.COLUMN_HINTS["other_phone"],
                False,
                key=f"{_EXTRA_PHONE}{i + 1}",
            ),
        )
    if extra_country and not wanted.country:
        fields.insert(
            at + extra_phones,
            ColumnField(
                "",
                slug_of("country"),
                "country",
                texts.COLUMN_LABELS["country"],
                texts.COLUMN_HINTS["country"],
                False,
                key=_EXTRA_COUNTRY,
            ),
        )
    return fields


def page_fields(campaign: Campaign, probe: Probe) -> list[ColumnField]:
    """The fields of a fresh page: the campaign's names and, when the sheet has them, its
    other phone columns and its country column; each pre-chosen."""
    wanted = needs(campaign)
    fields = column_fields(campaign, wanted)
    _preselect(campaign, fields, probe)
    others, country = _unread(campaign, probe, {f.chosen for f in fields if f.chosen})
    if not others and country is None:
        return fields
    extended = column_fields(campaign, wanted, len(others), country is not None)
    by_key = {f.key: f for f in fields}
    for f in extended:
        if f.key in by_key:
            f.chosen, f.default = by_key[f.key].chosen, by_key[f.key].default
    extra = [f for f in extended if f.key.startswith(_EXTRA_PHONE)]
    for f, header in zip(extra, others, strict=True):
        f.chosen = header
    for f in extended:
        if f.key == _EXTRA_COUNTRY:
            f.chosen = country or ""
    return extended


def posted_fields(campaign: Campaign, form: Any) -> list[ColumnField]:
    """The fields the page showed, rebuilt from the posted form's keys."""
    keys = [str(k) for k in form]
    extra_phones = sum(1 for k in keys if k.startswith(f"column:{_EXTRA_PHONE}"))
    extra_country = f"column:{_EXTRA_COUNTRY}" in keys
    return column_fields(campaign, needs(campaign), extra_phones, extra_country)


def _preselect(campaign: Campaign, fields: list[ColumnField], probe: Probe) -> None:
    """The campaign's own mapping where this sheet has it, else the closest header."""
    by_norm = {normalise_header(h): h for h in probe.headers}
    mapped = dict(campaign.contacts.columns)
    defaults = dict(campaign.contacts.defaults)
    open_names = []
    for f in fields:
        f.default = defaults.get(f.name, "")
        if f.name in mapped and normalise_header(mapped[f.name]) in by_norm:
            f.chosen = by_norm[normalise_header(mapped[f.name])]
        else:
            open_names.append(f.name)
    taken = {f.chosen for f in fields if f.chosen}
    guessed = guess(open_names, [h for h in probe.headers if h not in taken])
    for f in fields:
        if not f.chosen:
            f.chosen = guessed.get(f.name, "")


def examples(probe: Probe) -> dict[str, str]:
    return {
        h: ("e.g. " + ", ".join(e)) if e else "(empty in the first rows)"
        for h, e in zip(probe.headers, probe.examples, strict=False)
    }


def judge(fields: list[ColumnField], probe: Probe, tab: str | None) -> str:
    """Mark each field's error in place; the tab's error, if any."""
    headers = set(probe.headers)
    phones: set[str] = set()
    for f in fields:
        same_phone = f.kind in ("phone", "other_phone") and f.chosen in phones
        if f.kind in ("phone", "other_phone") and f.chosen:
            phones.add(f.chosen)
        if f.chosen and f.chosen not in headers:
            f.error = texts.NOT_A_COLUMN
        elif same_phone:
            f.error = texts.SAME_COLUMN_TWICE
        elif not f.chosen and f.required and f.role:
            f.error = texts.CHOOSE_COLUMN
        elif f.has_default and len(f.default) > MAX_DEFAULT_CHARS:
            f.error = texts.DEFAULT_TOO_LONG.format(n=MAX_DEFAULT_CHARS)
        elif f.has_default and _BRACES.search(f.default):
            f.error = texts.DEFAULT_HAS_BRACES
        elif f.has_default and not f.chosen and not f.default and f.required:
            f.error = texts.NEEDS_COLUMN_OR_DEFAULT
    if probe.tabs and (tab is None or tab != probe.tab):
        return texts.NOT_A_TAB
    return ""


def save_choice(campaign: Campaign, fields: list[ColumnField], probe: Probe) -> Path | None:
    """The choice written into the campaign file, through the loader and atomically (the old
    file kept as .bak); None when it changes nothing. Blocking: run in a thread.

    `campaign` was read when the request began, before the seconds the sheet probe takes:
    if the file changed since (an edit saved meanwhile), writing from this copy would undo
    that edit, so nothing is written and the user is asked to check again."""
    if file_sha256(campaign.path) != campaign.source_sha256:  # and again as it is replaced
        raise UsageError(texts.CAMPAIGN_EDITED_MEANWHILE)
    # The phone columns in the page's order: the campaign's names still chosen (read through
    # `columns` when the header differs), then the sheet's own headers for the new ones.
    phones = tuple(
        f.name or f.chosen for f in fields if f.kind in ("phone", "other_phone") and f.chosen
    )
    country = next((f.name or f.chosen for f in fields if f.kind == "country" and f.chosen), None)
    columns = {
        f.name: f.chosen
        for f in fields
        if f.name and f.chosen and normalise_header(f.chosen) != normalise_header(f.name)
    }
    defaults = {f.name: f.default for f in fields if f.has_default and f.default}
    form = form_from_campaign(campaign)
    sheet = form.sheet
    if probe.tab is not None and (probe.asked_tab_missing or probe.tab != (sheet or probe.tabs[0])):
        sheet = probe.tab
    before = (form.columns, form.defaults, form.sheet, form.phone_columns, form.country_column)
    if (columns, defaults, sheet, phones, country) == before:
        return None
    folder = campaign.folder
    if campaign.path.name != f"{campaign.name}.toml":
        raise UsageError(texts.renamed_file(campaign.path.name, campaign.name))
    chosen = replace(
        form,
        columns=columns,
        defaults=defaults,
        sheet=sheet,
        phone_columns=phones,
        country_column=country,
    )
    try:
        return save_campaign(folder, chosen, expect_sha256=campaign.source_sha256)
    except ChangedMeanwhile:
        raise UsageError(texts.CAMPAIGN_EDITED_MEANWHILE) from None
