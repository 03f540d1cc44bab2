"""Sheet rows -> `Contact`s: a checked, personalised call request or the reason it is not one.

    >>> prep = Preparer.for_campaign(campaign, sheet, suppressed=load_suppression(campaign))
    >>> for chunk in iter_rows(sheet):
    ...     for contact in prep.prepare(chunk):
    ...         print(contact.row, contact.status, contact.reason)

Per-row work (phone, templates) is pure and can run in worker processes (`prepare_rows`);
what needs the whole sheet (duplicates, suppression) is done in order by `Deduper`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from dialer.campaign import Campaign
from dialer.phones import normalise_phone
from dialer.sheet import Sheet, clean_cell, iter_rows, open_sheet
from dialer.statuses import CampaignError, SheetError, Status

# Longest value a sheet cell may put into the agent's prompt (SPEC 7); longer ones are cut.
MAX_FIELD_CHARS = 200
_UNDEFINED_NAME = re.compile(r"'([^']+)' is undefined")


@dataclass(frozen=True, slots=True)
class Contact:
    """One data row of the sheet and what dialer makes of it."""

    row: int
    custom_identifiers: str
    phone_raw: str
    called_to: str  # E.164, or "" when the phone is invalid
    status: Status  # READY, or why the row will not be called
    reason: str
    first_line: str
    instruction: str
    cells: tuple[str, ...]
    zone: str | None = None  # the row's timezone_column value, if any

    def but(self, status: Status, reason: str) -> Contact:
        return replace(self, status=status, reason=reason)


@dataclass(frozen=True, slots=True)
class Templates:
    """The campaign's two templates, compiled once, and the columns they use."""

    first_line: Any
    instruction: Any
    variables: frozenset[str]

    @classmethod
    def compile(cls, campaign: Campaign) -> Templates:
        env = _environment()
        compiled = []
        names: set[str] = set()
        from jinja2 import meta

        for key in ("first_line", "instruction"):
            source = getattr(campaign, key)
            try:
                names |= meta.find_undeclared_variables(env.parse(source))
                compiled.append(env.from_string(source))
            except TemplateSyntaxError as exc:
                raise CampaignError(
                    f"{campaign.path}: key '{key}' is not a valid template: {exc.message}"
                ) from None
        return cls(compiled[0], compiled[1], frozenset(names))


def _environment() -> ImmutableSandboxedEnvironment:
    # Immutable sandbox: a sheet or campaign cannot reach Python objects or files (SPEC 7).
    return ImmutableSandboxedEnvironment(
        undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False
    )


@dataclass(frozen=True, slots=True)
class RowPlan:
    """Everything per-row preparation needs; small and picklable for worker processes."""

    columns: tuple[str, ...]
    phone_index: int
    id_index: int | None
    zone_index: int | None
    default_region: str | None
    first_line_source: str
    instruction_source: str


def _plan(campaign: Campaign, sheet: Sheet) -> RowPlan:
    phone_index = sheet.column_index(campaign.contacts.phone_column, "phone")
    id_index = (
        sheet.column_index(campaign.contacts.id_column, "id")
        if campaign.contacts.id_column
        else None
    )
    zone_column = campaign.window.timezone_column if campaign.window else None
    zone_index = sheet.column_index(zone_column, "timezone") if zone_column else None
    return RowPlan(
        columns=sheet.columns,
        phone_index=phone_index,
        id_index=id_index,
        zone_index=zone_index,
        default_region=campaign.contacts.default_region,
        first_line_source=campaign.first_line,
        instruction_source=campaign.instruction,
    )


_compiled_cache: dict[tuple[str, str], tuple[Any, Any]] = {}


def _templates_for(plan: RowPlan) -> tuple[Any, Any]:
    key = (plan.first_line_source, plan.instruction_source)
    found = _compiled_cache.get(key)
    if found is None:
        env = _environment()
        found = (env.from_string(key[0]), env.from_string(key[1]))
        _compiled_cache[key] = found
    return found


def _render(template: Any, context: dict[str, str]) -> tuple[str, str]:
    """Return (text, "") or ("", reason)."""
    try:
        return " ".join(template.render(context).split()), ""
    except UndefinedError as exc:
        match = _UNDEFINED_NAME.search(exc.message or "")
        if match:
            return "", f"template needs column '{match.group(1)}', which is empty or missing"
        return "", f"template error: {exc.message}"
    except SecurityError:
        return "", "template error: unsafe expression"
    except TemplateError as exc:
        return "", f"template error: {exc.message}"
    except (TypeError, ValueError, ArithmeticError) as exc:
        return "", f"template error: {exc}"


def prepare_rows(plan: RowPlan, chunk: Sequence[tuple[int, list[str]]]) -> list[Contact]:
    """Phone and templates for each row: pure, so it can run in a worker process."""
    first_t, instr_t = _templates_for(plan)
    columns = plan.columns
    out: list[Contact] = []
    phone_index = plan.phone_index
    for row, cells in chunk:
        raw = cells[phone_index]
        phone = normalise_phone(raw, plan.default_region)
        phone_raw = clean_cell(raw)
        if phone_raw != raw:
            cells = list(cells)
            cells[phone_index] = phone_raw
        ident = cells[plan.id_index].strip() if plan.id_index is not None else str(row)
        zone = (cells[plan.zone_index].strip() or None) if plan.zone_index is not None else None
        notes: list[str] = []
        base = Contact(
            row=row,
            custom_identifiers=ident,
            phone_raw=phone_raw,
            called_to=phone.e164 or "",
            status=Status.READY,
            reason="",
            first_line="",
            instruction="",
            cells=tuple(cells),
            zone=zone,
        )
        if phone.e164 is None:
            out.append(base.but(Status.INVALID, phone.reason))
            continue
        if phone.changed:
            notes.append("phone cleaned of invisible characters")
        if plan.id_index is not None and not ident:
            out.append(base.but(Status.INVALID, "empty id"))
            continue
        # Empty cells are left out so `{{ col }}` on an empty cell is an error, not "Hello ".
        context: dict[str, str] = {}
        cut: list[str] = []
        for name, value in zip(columns, cells, strict=True):
            if value:
                if len(value) > MAX_FIELD_CHARS:
                    value = value[:MAX_FIELD_CHARS]
                    cut.append(name)
                context[name] = value
        first_line, problem = _render(first_t, context)
        if not problem and not first_line:
            problem = "first line renders empty"
        instruction = ""
        if not problem:
            instruction, problem = _render(instr_t, context)
        if problem:
            out.append(base.but(Status.INVALID, problem))
            continue
        if cut:
            notes.append(f"cut to {MAX_FIELD_CHARS} characters: {', '.join(cut)}")
        out.append(
            replace(base, first_line=first_line, instruction=instruction, reason="; ".join(notes))
        )
    return out


class Deduper:
    """Marks suppressed numbers and later repeats of a number, in sheet order."""

    __slots__ = ("_first_row", "_suppressed")

    def __init__(self, suppressed: frozenset[str]) -> None:
        self._suppressed = suppressed
        self._first_row: dict[str, int] = {}

    def apply(self, contacts: Iterable[Contact]) -> Iterator[Contact]:
        first_row = self._first_row
        for contact in contacts:
            number = contact.called_to
            if not number:
                yield contact
                continue
            if number in self._suppressed:
                yield contact.but(Status.SUPPRESSED, "on the do-not-call list")
                continue
            first = first_row.setdefault(number, contact.row)
            if first != contact.row:
                yield contact.but(Status.DUPLICATE, f"duplicate of row {first}")
                continue
            yield contact


def load_suppression(campaign: Campaign) -> frozenset[str]:
    """E.164 numbers from every `suppress` file; a missing or unreadable list is an error."""
    numbers: set[str] = set()
    for path in campaign.contacts.suppress:
        if not path.exists():
            raise SheetError(f"{path}: do-not-call list not found")
        sheet = open_sheet(path)
        for name in ("phone", campaign.contacts.phone_column, "number", "phone_number"):
            if name in sheet.columns:
                index = sheet.columns.index(name)
                break
        else:
            raise SheetError(
                f"{path}: do-not-call list has no phone column; columns found: "
                f"{', '.join(sheet.columns)}"
            )
        region = campaign.contacts.default_region
        for chunk in iter_rows(sheet):
            for _, cells in chunk:
                phone = normalise_phone(cells[index], region)
                if phone.e164:
                    numbers.add(phone.e164)
    return frozenset(numbers)


@dataclass(slots=True)
class Preparer:
    """Ties a campaign to a sheet: `prepare(chunk)` yields final-so-far `Contact`s in order."""

    plan: RowPlan
    deduper: Deduper
    templates: Templates

    @classmethod
    def for_campaign(cls, campaign: Campaign, sheet: Sheet, suppressed: frozenset[str]) -> Preparer:
        templates = Templates.compile(campaign)
        return cls(_plan(campaign, sheet), Deduper(suppressed), templates)

    def missing_columns(self) -> list[str]:
        """Template variables that are not columns of the sheet (every row will be invalid)."""
        return sorted(self.templates.variables - set(self.plan.columns))

    def prepare(self, chunk: Sequence[tuple[int, list[str]]]) -> Iterator[Contact]:
        return self.deduper.apply(prepare_rows(self.plan, chunk))
