"""Sheet rows -> `Contact`s: a checked, personalised call request or the reason it is not one.

    builder = ContactBuilder.for_campaign(campaign, sheet, load_suppression(campaign))
    for chunk in iter_rows(sheet):
        for contact in builder.deduper.apply(builder.build(chunk)):
            print(contact.row, contact.status, contact.reason)

Per-row work (phone, templates) is pure and can run in worker processes (`build_contacts`);
what needs the whole sheet (duplicates, suppression) is done in order by `Deduper`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from jinja2 import TemplateSyntaxError, UndefinedError
from jinja2.exceptions import SecurityError, TemplateError

from dialer.campaign.model import MAX_DEFAULT_CHARS, Campaign
from dialer.core.cells import clean_cell, normalise_header
from dialer.core.files import shown_names
from dialer.core.settings import DEFAULTS, Settings
from dialer.core.statuses import CampaignError, SheetError, Status
from dialer.sheets.columns import resolve
from dialer.sheets.countries import NANP_REGIONS, looks_north_american
from dialer.sheets.phones import normalise_phone
from dialer.sheets.reader import UNREADABLE_CELL, UNREADABLE_REASON, Sheet, iter_rows, open_sheet
from dialer.sheets.row_phone import PhoneColumns
from dialer.templating.sandbox import (
    BoundedEnvironment,
    TemplateBoundError,
    compile_template,
    render,
)

# What a trial render at load puts in every column: a template that breaks a bound even then
# breaks it for every row, so it is a campaign error rather than a million invalid rows.
_TRIAL_VALUE = "Sample"
_UNDEFINED_NAME = re.compile(r"'([^']+)' is undefined")
_HAS_WORD = re.compile(r"[^\W_]").search
_LEFTOVER = re.compile(r"\{\{|\}\}|\{%|%\}").search
# "{first_name}": the placeholder style of other tools; here it would be said literally.
_SINGLE_BRACE = re.compile(r"(?<!\{)\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}(?!\})")


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
    def compile(
        cls, campaign: Campaign, *, trial: bool = True, settings: Settings = DEFAULTS
    ) -> Templates:
        """Both templates compiled, and (with `trial`) rendered once with a placeholder in
        every column against the template bounds of `settings`. Compiling is cheap; a render
        may cost seconds, so the page's server compiles only and leaves the trial to a child."""
        env = _environment(settings)
        compiled = []
        names: set[str] = set()
        from jinja2 import meta

        for key in ("first_line", "instruction"):
            source = getattr(campaign, key)
            where = f"{campaign.path}: key '{key}'"
            single = _SINGLE_BRACE.search(source)
            if single:
                raise CampaignError(
                    f"{where} has {single.group(0)}: placeholders are "
                    f"written {{{{ {single.group(1)} }}}}"
                )
            if len(source) > settings.max_template_chars:
                raise CampaignError(
                    f"{where} is {len(source):,} characters long; a template may have at most "
                    f"{settings.max_template_chars:,}"
                )
            try:
                used = meta.find_undeclared_variables(env.parse(source))
                template = compile_template(env, source)
            except TemplateSyntaxError as exc:
                raise CampaignError(f"{where} is not a valid template: {exc.message}") from None
            except (RecursionError, SyntaxError, MemoryError):
                # Python's own limits: ~100 nested brackets, ~20 nested blocks.
                raise CampaignError(f"{where} is nested too deeply to compile") from None
            problem = _trial_render(template, used - set(env.globals)) if trial else ""
            if problem:
                raise CampaignError(f"{where} breaks a template limit: {problem}")
            names |= used
            compiled.append(template)
        return cls(compiled[0], compiled[1], frozenset(names))


def _trial_render(template: Any, names: set[str]) -> str:
    """Why rendering with a placeholder in every column breaks a bound, or ""."""
    try:
        render(template, dict.fromkeys(names, _TRIAL_VALUE))
    except (TemplateBoundError, RecursionError, MemoryError) as exc:
        return _bound_reason(exc)
    except Exception:  # any other failure depends on the row: it is shown per row
        return ""
    return ""


def _bound_reason(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "recursion or nesting too deep"
    if isinstance(exc, MemoryError):
        return "out of memory"
    return str(exc)


def _environment(settings: Settings) -> BoundedEnvironment:
    # Immutable sandbox: a sheet or campaign cannot reach Python objects or files (SPEC 7);
    # bounded: nor make a run hang or run out of memory (see dialer.templating.sandbox).
    return BoundedEnvironment(settings)


@dataclass(frozen=True, slots=True)
class RowPlan:
    """Everything `build_contacts` needs; small and picklable for worker processes."""

    columns: tuple[str, ...]
    phones: PhoneColumns
    id_index: int | None
    zone_index: int | None
    first_line_source: str
    instruction_source: str
    template_columns: tuple[tuple[str, int], ...] = ()  # (name, index) the templates may read
    defaults: tuple[tuple[str, str], ...] = ()  # [contacts] defaults: for a missing or empty cell
    labels: tuple[tuple[str, str], ...] = ()  # variable -> its header as written, for reasons
    missing: tuple[str, ...] = ()  # template variables the sheet lacks and no default covers
    settings: Settings = DEFAULTS  # the template bounds, in worker processes too

    @property
    def phone_index(self) -> int:
        """The first phone column: where a typed number goes for a test call."""
        return self.phones.indexes[0]


def _plan(campaign: Campaign, sheet: Sheet, names: frozenset[str], settings: Settings) -> RowPlan:
    found = resolve(campaign, sheet, names)
    return RowPlan(
        template_columns=found.template_columns,
        columns=sheet.columns,
        phones=PhoneColumns.of(
            sheet, found.phones, found.country, campaign.contacts.default_region
        ),
        id_index=found.id,
        zone_index=found.zone,
        first_line_source=campaign.first_line,
        instruction_source=campaign.instruction,
        defaults=found.defaults,
        labels=found.labels,
        missing=found.missing,
        settings=settings,
    )


class PlainTemplate:
    """A template of text and bare `{{ name }}` only, rendered without Jinja2's runtime.

    Same result as Jinja2 (a missing or empty name is the same error) at a tenth of the cost,
    which matters on a million rows; anything else (filters, tests, blocks) goes to Jinja2.
    """

    __slots__ = ("_format",)

    def __init__(self, parts: list[tuple[bool, str]]) -> None:
        # (is_name, text) -> "Hello {first_name}": str.format_map does the loop in C. Names are
        # identifiers, so never a format index, attribute or spec; the text's braces are doubled.
        self._format = "".join(
            f"{{{text}}}" if is_name else text.replace("{", "{{").replace("}", "}}")
            for is_name, text in parts
        )

    @classmethod
    def maybe(cls, env: BoundedEnvironment, source: str) -> PlainTemplate | None:
        """The plain template of `source`, or None when it holds more than text and names."""
        from jinja2 import nodes

        parts: list[tuple[bool, str]] = []
        for node in env.parse(source).body:
            if not isinstance(node, nodes.Output):
                return None
            for child in node.nodes:
                if isinstance(child, nodes.TemplateData):
                    parts.append((False, child.data))
                elif isinstance(child, nodes.Name) and child.ctx == "load":
                    parts.append((True, child.name))
                else:
                    return None
        return cls(parts)

    def render(self, context: dict[str, str]) -> tuple[str, str]:
        """(text, "") or ("", reason), as `JinjaTemplate.render`."""
        try:
            text = self._format.format_map(context)
        except KeyError as missing:  # the first missing name, in the template's order
            return "", f"template needs column '{missing.args[0]}', which is empty or missing"
        return " ".join(text.split()), ""


class JinjaTemplate:
    """A compiled template (`compile_template`) rendered by Jinja2 within the bounds: any
    template `PlainTemplate` cannot take."""

    __slots__ = ("_template",)

    def __init__(self, template: Any) -> None:
        self._template = template

    def render(self, context: dict[str, str]) -> tuple[str, str]:
        """(text with its whitespace runs made one space, "") or ("", why the row is invalid)."""
        return _render(self._template, context)


def _renderer(env: BoundedEnvironment, source: str) -> PlainTemplate | JinjaTemplate:
    return PlainTemplate.maybe(env, source) or JinjaTemplate(compile_template(env, source))


# Compiled once per campaign, not per chunk; bounded because a long-lived process may meet
# ever-new templates, ~50 KB each once compiled by Jinja2.
@functools.lru_cache(maxsize=8)
def _renderers(first_line: str, instruction: str, settings: Settings) -> tuple[Any, Any]:
    env = _environment(settings)
    return _renderer(env, first_line), _renderer(env, instruction)


def _templates_for(plan: RowPlan) -> tuple[Any, Any]:
    return _renderers(plan.first_line_source, plan.instruction_source, plan.settings)


def _render(template: Any, context: dict[str, str]) -> tuple[str, str]:
    """Return (text, "") or ("", reason)."""
    try:
        return " ".join(render(template, context).split()), ""
    except (TemplateBoundError, RecursionError, MemoryError) as exc:
        return "", f"template too costly: {_bound_reason(exc)}"
    except UndefinedError as exc:
        match = _UNDEFINED_NAME.search(exc.message or "")
        if match:
            return "", f"template needs column '{match.group(1)}', which is empty or missing"
        return "", f"template error: {exc.message}"
    except SecurityError:
        return "", "template error: unsafe expression"
    except TemplateError as exc:
        return "", f"template error: {exc.message}"
    except Exception as exc:  # whatever a template raises is the template's fault
        return "", f"template error: {exc}"


def build_contacts(plan: RowPlan, chunk: Sequence[tuple[int, list[str]]]) -> list[Contact]:
    """Phone and templates for each row: pure, so it can run in a worker process.

    Written for speed (it runs a million times): one Contact per row, no copies.
    """
    first_t, instr_t = _templates_for(plan)
    template_columns = plan.template_columns
    id_index, zone_index = plan.id_index, plan.zone_index
    phones = plan.phones
    defaults = plan.defaults
    most_first_line = plan.settings.max_first_line_chars
    most_instruction = plan.settings.max_instruction_chars
    out: list[Contact] = []
    append = out.append
    for row, cells in chunk:
        phone, phone_at, choice = phones.read(cells)
        phone_raw = clean_cell(cells[phone_at])
        cells = _cleaned_phones(phones, cells)
        ident = cells[id_index].strip() if id_index is not None else str(row)
        zone = (cells[zone_index].strip() or None) if zone_index is not None else None
        e164 = phone.e164
        first_line = instruction = ""
        if e164 is None:
            status, reason = Status.INVALID, phone.reason
            if cells[phone_at] == UNREADABLE_CELL:
                reason = UNREADABLE_REASON
        elif id_index is not None and not ident:
            status, reason = Status.INVALID, "empty id"
        else:
            # Cells without a letter or digit are left out, so `{{ col }}` on an empty cell is
            # an error, not "Hello ," or "Hello -,".
            context = {name: cells[i] for name, i in template_columns if _HAS_WORD(cells[i])}
            for name, value in defaults:
                context.setdefault(name, value)
            cut = [name for name, value in context.items() if len(value) > MAX_DEFAULT_CHARS]
            for name in cut:
                context[name] = context[name][:MAX_DEFAULT_CHARS]
            first_line, reason = first_t.render(context)
            if not reason and not first_line:
                reason = "first line renders empty"
            if not reason and len(first_line) > most_first_line:
                reason = _too_long("first line", first_line, most_first_line)
            if not reason:
                instruction, reason = instr_t.render(context)
            if not reason and len(instruction) > most_instruction:
                reason = _too_long("instruction", instruction, most_instruction)
            if not reason and (_LEFTOVER(first_line) or _LEFTOVER(instruction)):
                # A cell holding "{{ x }}" renders as that text: never say it to a person.
                reason = "message would contain template braces '{{' or '}}' (from a cell)"
            if reason:
                status, first_line, instruction = Status.INVALID, "", ""
                if plan.labels:
                    reason = _in_their_words(reason, plan.labels)
            else:
                status = Status.READY
                notes = []
                if choice:
                    notes.append(choice)
                if phone.note:
                    notes.append(phone.note)
                if cut:
                    notes.append(f"cut to {MAX_DEFAULT_CHARS} characters: {', '.join(cut)}")
                reason = "; ".join(notes)
        append(
            Contact(
                row,
                ident,
                phone_raw,
                e164 or "",
                status,
                reason,
                first_line,
                instruction,
                tuple(cells),
                zone,
            )
        )
    return out


def _cleaned_phones(phones: PhoneColumns, cells: list[str]) -> list[str]:
    """The phone cells came uncleaned (to see what cleaning removed): the report shows them
    cleaned, like every other cell. The same list when nothing changed."""
    copied = False
    for i in phones.indexes:
        raw = cells[i]
        cleaned = clean_cell(raw)
        if cleaned != raw:
            if not copied:
                cells, copied = list(cells), True
            cells[i] = cleaned
    return cells


def _in_their_words(reason: str, labels: tuple[tuple[str, str], ...]) -> str:
    """ "needs column 'first_name'" -> "needs column 'Customer Name' (first_name)": the user
    finds the header they wrote, not the campaign's name for it."""
    for name, header in labels:
        said = f"column '{name}',"
        if said in reason:
            return reason.replace(said, f"column '{header}' ({name}),")
    return reason


def _too_long(what: str, text: str, limit: int) -> str:
    return f"{what} renders {len(text):,} characters; at most {limit:,}"


_STATUS = {str(s): s for s in Status}


def build_contacts_packed(plan: RowPlan, chunk: Sequence[tuple[int, list[str]]]) -> list[tuple]:
    """`build_contacts` for a worker process: only what the parent does not already have.

    The parent keeps the raw chunk (row numbers, cells), so the cells are not sent back:
    pickling is a large part of a worker's cost at ~25 us a row.
    """
    return [
        (
            c.custom_identifiers,
            c.phone_raw,
            c.called_to,
            str(c.status),
            c.reason,
            c.first_line,
            c.instruction,
            c.zone,
        )
        for c in build_contacts(plan, chunk)
    ]


def unpack_rows(
    plan: RowPlan, chunk: Sequence[tuple[int, list[str]]], packed: list[tuple]
) -> list[Contact]:
    status = _STATUS
    phones = plan.phones
    out = []
    for (row, cells), (ident, phone_raw, e164, s, why, first, instr, zone) in zip(
        chunk, packed, strict=True
    ):
        cells = _cleaned_phones(phones, cells)
        out.append(
            Contact(row, ident, phone_raw, e164, status[s], why, first, instr, tuple(cells), zone)
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
        mapped = dict(campaign.contacts.columns).get(campaign.contacts.phone_column, "phone")
        candidates = ("phone", campaign.contacts.phone_column, normalise_header(mapped))
        for name in (*candidates, "number", "phone_number"):
            if name in sheet.columns:
                index = sheet.columns.index(name)
                break
        else:
            raise SheetError(
                f"{path}: do-not-call list has no phone column; columns found: "
                f"{shown_names(sheet.columns)}"
            )
        region = campaign.contacts.default_region
        for chunk in iter_rows(sheet):
            for _, cells in chunk:
                numbers.update(_suppressed_numbers(cells[index], region))
    return frozenset(numbers)


def _suppressed_numbers(raw: str, region: str | None) -> Iterator[str]:
    """A do-not-call entry's number; a North-American-shaped one read outside the +1 plan is
    taken both ways: suppressing a stranger costs one call, missing the person costs trust."""
    phone = normalise_phone(raw, region)
    if phone.e164:
        yield phone.e164
    north_american = region not in NANP_REGIONS and looks_north_american(raw)
    if north_american and (e164 := normalise_phone(raw, "US").e164) is not None:
        yield e164


@dataclass(slots=True)
class ContactBuilder:
    """A campaign bound to a sheet's columns: `build(chunk)` makes each row a `Contact`,
    `deduper.apply` then marks repeats and suppressed numbers, in sheet order."""

    plan: RowPlan
    deduper: Deduper
    templates: Templates

    @classmethod
    def for_campaign(
        cls,
        campaign: Campaign,
        sheet: Sheet,
        suppressed: frozenset[str],
        settings: Settings = DEFAULTS,
    ) -> ContactBuilder:
        """The campaign's templates compiled and trial-rendered under the bounds of
        `settings`, its columns found in `sheet`."""
        templates = Templates.compile(campaign, settings=settings)
        plan = _plan(campaign, sheet, templates.variables, settings)
        return cls(plan, Deduper(suppressed), templates)

    def missing_columns(self) -> list[str]:
        """Template variables neither in the sheet nor given a default (every row is invalid)."""
        return list(self.plan.missing)

    def build(self, chunk: Sequence[tuple[int, list[str]]]) -> list[Contact]:
        """Per-row work only; duplicates and suppression are `deduper.apply`, in order."""
        return build_contacts(self.plan, chunk)
