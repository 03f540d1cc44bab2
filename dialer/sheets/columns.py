"""Which sheet column each name of a campaign reads: `[contacts] columns` and `defaults`
applied to a sheet's header (SPEC 3, 4.2), and a close-match guess for the page.

    found = resolve(campaign, sheet)        # SheetError if the phone or id is not there
    found.phone, found.template_columns     # indexes into the sheet's columns
    guess(needs(campaign).names, ["Customer Name", "Mobile No.", "Order #"])
    # {'phone': 'Mobile No.', 'first_name': 'Customer Name', 'order_id': 'Order #'}

A name the campaign maps (`columns = { phone = "Mobile No." }`) reads the column whose header
normalises like the mapped one; any other name reads the column named like it. A mapped header
the sheet lacks is an error naming it: the mapping says it is there. A template variable found
nowhere takes its default, else each row is `invalid` with the column's name. The CLI and the
page resolve through here alike, so a sheet the page matched is read the same by `dialer run`.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from dialer.campaign.model import Campaign
from dialer.core.cells import normalise_header
from dialer.core.files import shown, shown_names
from dialer.core.statuses import SheetError
from dialer.sheets.reader import Sheet

# Below this similarity a header is not offered as a guess: the user chooses.
GUESS_THRESHOLD = 0.7
# Words for the same thing in the headers people write (after `_canonical`).
_SAME = (
    {
        "phone",
        "phone_number",
        "mobile",
        "mobile_number",
        "mobile_phone",
        "cell",
        "cellphone",
        "cell_phone",
        "cell_number",
        "telephone",
        "telephone_number",
        "tel",
        "contact_number",
        "whatsapp",
        "whatsapp_number",
        "msisdn",
        "number",
    },
    {
        "first_name",
        "firstname",
        "first",
        "given_name",
        "name",
        "customer_name",
        "contact_name",
        "full_name",
        "fname",
        "client_name",
    },
    {"last_name", "lastname", "surname", "family_name", "lname"},
    {
        "customer_id",
        "client_id",
        "account_id",
        "member_id",
        "contact_id",
        "id",
        "ref",
        "reference",
        "customer_ref",
        "client_ref",
        "customer_code",
        "client_code",
    },
    {"tz", "timezone", "time_zone", "zone"},
)
# "No.", "#", "Nr", "Id" after a word all say "the number of": one token for matching.
_NUMBER_WORDS = frozenset({"no", "nr", "num", "number", "id"})


@dataclass(frozen=True, slots=True)
class Needs:
    """The names a campaign reads from a sheet, in the order the page lists them."""

    phones: tuple[str, ...]  # tried in order; the first valid number is the row's
    id: str | None
    zone: str | None
    variables: tuple[str, ...]  # template variables, sorted
    required: frozenset[str]  # those a greeting cannot do without (no `| default(...)`)
    country: str | None = None

    @property
    def phone(self) -> str:
        return self.phones[0]

    @property
    def names(self) -> tuple[str, ...]:
        roles = [n for n in (*self.phones, self.country, self.id, self.zone) if n]
        return (*roles, *(v for v in self.variables if v not in roles))


def needs(campaign: Campaign) -> Needs:
    """What `campaign` reads from a sheet; a variable is required when rendering without it
    fails (the same sandbox and rules as a check)."""
    from jinja2 import UndefinedError

    from dialer.templating.sandbox import (
        BoundedEnvironment,
        compile_template,
        render,
        template_variables,
    )

    variables = template_variables(campaign.first_line, campaign.instruction) or frozenset()
    env = BoundedEnvironment()
    templates = [compile_template(env, s) for s in (campaign.first_line, campaign.instruction)]
    required = set()
    for name in variables:
        context = {v: "Sample" for v in variables if v != name}
        for template in templates:
            try:
                render(template, context)
            except UndefinedError:
                required.add(name)
                break
            except Exception:  # failing for another reason says nothing about `name`
                continue
    return Needs(
        phones=campaign.contacts.phone_columns,
        id=campaign.contacts.id_column,
        zone=campaign.window.timezone_column if campaign.window else None,
        variables=tuple(sorted(variables)),
        required=frozenset(required),
        country=campaign.contacts.country_column,
    )


@dataclass(frozen=True, slots=True)
class Resolved:
    """Where each name of the campaign is in one sheet."""

    phones: tuple[int, ...]  # the phone columns, in the campaign's order
    id: int | None
    zone: int | None
    template_columns: tuple[tuple[str, int], ...]  # (variable, index), many names per column ok
    defaults: tuple[tuple[str, str], ...]
    labels: tuple[tuple[str, str], ...]  # variable -> the header as written, where they differ
    missing: tuple[str, ...]  # template variables with neither a column nor a default
    country: int | None = None

    @property
    def phone(self) -> int:
        return self.phones[0]


def resolve(campaign: Campaign, sheet: Sheet, variables: Iterable[str]) -> Resolved:
    """Indexes of the phone, id and zone columns (a SheetError names what is missing, in the
    user's own header names) and of each template variable found."""
    mapped = dict(campaign.contacts.columns)
    phones = phone_indexes(campaign, sheet)
    country_name = campaign.contacts.country_column
    country = column_index(campaign, sheet, country_name, "country") if country_name else None
    id_name = campaign.contacts.id_column
    id_index = _index(sheet, mapped, id_name, "id") if id_name else None
    zone_name = campaign.window.timezone_column if campaign.window else None
    zone = _index(sheet, mapped, zone_name, "timezone") if zone_name else None
    defaults = dict(campaign.contacts.defaults)
    found, labels, missing = [], [], []
    for name in sorted(variables):
        index = _find(sheet, mapped, name)
        if index is None:
            if name not in defaults:
                missing.append(name)
            continue
        found.append((name, index))
        if sheet.headers[index] != name:  # "First Name": say it as the user wrote it
            labels.append((name, sheet.headers[index]))
    return Resolved(
        phones=phones,
        country=country,
        id=id_index,
        zone=zone,
        template_columns=tuple(found),
        defaults=tuple((n, v) for n, v in defaults.items() if n in set(variables)),
        labels=tuple(labels),
        missing=tuple(missing),
    )


def phone_indexes(campaign: Campaign, sheet: Sheet) -> tuple[int, ...]:
    """The phone columns of `sheet` for `campaign`, in order (the results sheet of `dialer
    sync` too); each must be there: a campaign naming a column means the sheet has it."""
    mapped = dict(campaign.contacts.columns)
    indexes = tuple(_index(sheet, mapped, n, "phone") for n in campaign.contacts.phone_columns)
    if len(set(indexes)) != len(indexes):
        raise SheetError(
            f"{sheet.path}: two of the phone columns "
            f"({', '.join(map(shown, campaign.contacts.phone_columns))}) are the same column"
        )
    return indexes


def column_index(campaign: Campaign, sheet: Sheet, name: str, role: str) -> int:
    """The column `name` reads in `sheet` (through `[contacts] columns`); a SheetError names
    the `role` ("country") and the sheet's columns when it is not there."""
    return _index(sheet, dict(campaign.contacts.columns), name, role)


def _find(sheet: Sheet, mapped: dict[str, str], name: str) -> int | None:
    """The column `name` reads; a mapped header that is not in the sheet is an error."""
    if name in mapped:
        wanted = normalise_header(mapped[name])
        if wanted not in sheet.columns:
            raise SheetError(
                f"{sheet.path}: no column '{shown(mapped[name])}' for {name} "
                f"([contacts] columns); columns found: {shown_names(sheet.named_headers)}"
            )
        return sheet.columns.index(wanted)
    wanted = normalise_header(name)
    return sheet.columns.index(wanted) if wanted in sheet.columns else None


def _index(sheet: Sheet, mapped: dict[str, str], name: str, role: str) -> int:
    index = _find(sheet, mapped, name)
    if index is not None:
        return index
    hint = ""
    if best := guess([name], sheet.named_headers).get(name):
        pair = f"{json.dumps(name)} = {json.dumps(best, ensure_ascii=False)}"
        hint = f"; if '{shown(best)}' holds it, add to [contacts]: columns = {{ {pair} }}"
    raise SheetError(
        f"{sheet.path}: no {role} column '{shown(name)}'; columns found: "
        f"{shown_names(sheet.named_headers)}{hint}"
    )


def _canonical(text: str) -> str:
    """'Order #' -> 'order_number', 'Mobile No.' -> 'mobile_number', 'customer_id' ->
    'customer_number': the words people use for "the number of" made one."""
    words = normalise_header(text.replace("#", " number ")).split("_")
    return "_".join("number" if w in _NUMBER_WORDS and i else w for i, w in enumerate(words))


_GROUPS = [frozenset(_canonical(w) for w in group) for group in _SAME]


def similarity(name: str, header: str) -> float:
    """How alike a campaign's name and a sheet's header are, 0..1."""
    a, b = normalise_header(name), normalise_header(header)
    if a == b:
        return 1.0
    a, b = _canonical(name), _canonical(header)
    if a == b:
        return 0.98
    if any(a in group and b in group for group in _GROUPS):
        return 0.95
    return difflib.SequenceMatcher(None, a, b).ratio()


def guess(names: Sequence[str], headers: Sequence[str]) -> dict[str, str]:
    """Name -> the header most like it, each header given once, best pairs first; names with
    nothing close enough are left out (the user chooses)."""
    pairs = sorted(
        (
            (similarity(name, header), -i, -j, name, header)
            for i, name in enumerate(names)
            for j, header in enumerate(headers)
            if header
        ),
        reverse=True,
    )
    chosen: dict[str, str] = {}
    used: set[str] = set()
    for score, _, _, name, header in pairs:
        if score < GUESS_THRESHOLD:
            break
        if name not in chosen and header not in used:
            chosen[name] = header
            used.add(header)
    return chosen


# Words that make a header a phone column or a country column, whatever surrounds them
# ("Default Address Phone", "Mobile Phone Number", "Country/Region").
_PHONE_WORDS = frozenset({"phone", "mobile", "cell", "cellphone", "telephone", "tel", "whatsapp"})
_COUNTRY_WORDS = frozenset({"country", "nation"})


def _words(header: str) -> frozenset[str]:
    return frozenset(normalise_header(header).split("_"))


def phone_headers(headers: Sequence[str], taken: Iterable[str] = ()) -> list[str]:
    """Headers that hold phone numbers, in the sheet's order, less `taken`: the other phone
    columns a shop or CRM export has besides the one chosen first."""
    skip = set(taken)
    return [h for h in headers if h and h not in skip and _words(h) & _PHONE_WORDS]


def country_header(headers: Sequence[str], taken: Iterable[str] = ()) -> str | None:
    """The header that says each row's country ("Default Address Country Code",
    "Country/Region"), or None; the first such in the sheet's order."""
    skip = set(taken)
    found = [h for h in headers if h and h not in skip and _words(h) & _COUNTRY_WORDS]
    return found[0] if found else None
