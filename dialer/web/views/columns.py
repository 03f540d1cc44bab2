"""Column matching on the page (SPEC 11): after an upload, every column the campaign needs
(phone, id, time zone, each template variable) listed at once, each with a menu of the
sheet's own headers pre-chosen by close match, a default value for template variables, and a
tab menu for workbooks; saved in the campaign as `[contacts] columns` / `defaults` (and
`sheet`), then checked.

    GET  /uploads/{id}/columns[?tab=Notes]   the page; the upload's name is shown, never re-picked
    POST /uploads/{id}/columns               save the choice, check: 303 /dry-runs/{check id}

An upload whose columns all resolve goes straight to its check (`needs_matching`); one that
does not, or whose check fails, comes here with the file still chosen. Besides what the
campaign names, the page offers the sheet's other phone columns and its country column
(SPEC 4.3a), pre-chosen by their words (`column_map.phone_headers`, `country_header`), and
saves them as `phone_column = [...]` and `country_column`. Which column a name
reads is `dialer.sheets.columns`'s rule, the one `dialer validate` and `dialer run` apply, so
what the page matched is what the CLI reads. The sheet is read by a memory-capped child
(`sheet_probe`), like a check: a hostile workbook fails that child, not the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import keyword
import os
import re
import unicodedata
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aiohttp import web

from dialer.campaign.binding import file_sha256
from dialer.campaign.model import MAX_DEFAULT_CHARS, MAX_PHONE_COLUMNS, Campaign
from dialer.campaign.toml_text import ChangedMeanwhile, form_from_campaign, save_campaign
from dialer.core.statuses import DialerError, SheetError, UsageError
from dialer.sheets.columns import Needs, country_header, guess, needs, phone_headers, resolve
from dialer.sheets.reader import Sheet, normalise_header
from dialer.templating.sandbox import template_variables
from dialer.web import texts
from dialer.web.auth import check_csrf, session_of
from dialer.web.children.sheet_probe import Probe
from dialer.web.services.campaigns import remember_campaign
from dialer.web.services.jobs import ChecksBusy, communicate_within, limited_python
from dialer.web.services.uploads import Kept

if TYPE_CHECKING:
    from dialer.web.app import Server

# What the sheet probe may see of the server's environment: never the API key or the token.
_PROBE_ENV = ("PATH", "PYTHONPATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV")
_BRACES = re.compile(r"\{\{|\}\}|\{%|%\}")
_DUPLICATE_OF = re.compile(r"\bduplicate of row (\d+)")
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


def add_routes(app: web.Application, server: Server) -> None:
    matching = ColumnPages(server)
    app.router.add_get("/uploads/{id}/columns", matching.page)
    app.router.add_post("/uploads/{id}/columns", matching.save)


def page_url(kept: Kept, tab: str | None = None) -> str:
    url = f"/uploads/{kept.id}/columns"
    return f"{url}?tab={quote(tab)}" if tab else url


# ---- reading the upload ----


async def probe_upload(server: Server, kept: Kept, tab: str | None) -> Probe:
    """The upload's tabs, headers and example cells, read by a memory-capped child; a
    UsageError says (in one line, with the uploader's file name) why it cannot be read."""
    settings = server.settings
    if tab and not _plain_tab(tab, settings.tab_name_chars):
        raise UsageError(texts.BAD_TAB.format(n=settings.tab_name_chars))
    args = [str(kept.path), *([tab] if tab else [])]
    env = {k: v for k, v in os.environ.items() if k in _PROBE_ENV}
    proc = await asyncio.create_subprocess_exec(
        *limited_python(settings.check_memory, "dialer.web.children.sheet_probe"),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**env, "PYTHONUNBUFFERED": "1", "OPENBLAS_NUM_THREADS": "1"},
        start_new_session=True,
    )
    try:
        out, err = await communicate_within(proc, settings.check_timeout)
    except TimeoutError:
        raise UsageError(texts.CHECK_TOO_SLOW) from None
    if proc.returncode != 0:
        message = server.jobs.child_failure(err.decode("utf-8", "replace"), proc.returncode)
        raise UsageError(message.replace(str(kept.path), kept.name))
    try:
        return Probe.from_json(out.decode("utf-8"))
    except (ValueError, KeyError, TypeError):
        raise UsageError(texts.UNREADABLE_UPLOAD) from None


def _plain_tab(tab: str, limit: int) -> bool:
    """A tab name the child's arguments can carry (no NUL, no lone surrogate) and a workbook
    could hold: no control characters, not absurdly long."""
    return len(tab) <= limit and not any(unicodedata.category(c) in ("Cc", "Cs") for c in tab)


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


# ---- the page's fields ----


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


def _fields(
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


def _page_fields(campaign: Campaign, probe: Probe) -> list[ColumnField]:
    """The fields of a fresh page: the campaign's names and, when the sheet has them, its
    other phone columns and its country column; each pre-chosen."""
    wanted = needs(campaign)
    fields = _fields(campaign, wanted)
    _preselect(campaign, fields, probe)
    others, country = _unread(campaign, probe, {f.chosen for f in fields if f.chosen})
    if not others and country is None:
        return fields
    extended = _fields(campaign, wanted, len(others), country is not None)
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


def _posted_fields(campaign: Campaign, form: Any) -> list[ColumnField]:
    """The fields the page showed, rebuilt from the posted form's keys."""
    keys = [str(k) for k in form]
    extra_phones = sum(1 for k in keys if k.startswith(f"column:{_EXTRA_PHONE}"))
    extra_country = f"column:{_EXTRA_COUNTRY}" in keys
    return _fields(campaign, needs(campaign), extra_phones, extra_country)


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


def _examples(probe: Probe) -> dict[str, str]:
    return {
        h: ("e.g. " + ", ".join(e)) if e else "(empty in the first rows)"
        for h, e in zip(probe.headers, probe.examples, strict=False)
    }


# ---- the handlers ----


class ColumnPages:
    def __init__(self, server: Server) -> None:
        self.server = server

    def _kept(self, request: web.Request) -> tuple[Kept, Campaign]:
        kept = self.server.uploads.kept(request.match_info["id"])
        if kept is None:
            raise web.HTTPNotFound(text=texts.UPLOAD_GONE)
        campaign = self.server.campaigns.get(kept.campaign)
        if campaign is None:
            raise web.HTTPNotFound(text=f"campaign {kept.campaign} no longer loads")
        return kept, campaign

    async def page(self, request: web.Request) -> web.Response:
        kept, campaign = self._kept(request)
        tab = request.query.get("tab") or campaign.contacts.sheet
        try:
            async with self.server.jobs.check_slot():
                probe = await probe_upload(self.server, kept, tab)
        except ChecksBusy:
            return _busy(self.server)
        except DialerError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        return render_page(self.server, request, kept, campaign, probe)

    async def save(self, request: web.Request) -> web.Response:
        form = await request.post()
        check_csrf(request, str(form.get("csrf", "")))
        kept, campaign = self._kept(request)
        tab = str(form.get("tab", "")) or None
        uploads = self.server.uploads
        uploads.in_use.add(kept.path)  # not pruned while it is matched and checked
        try:
            async with self.server.jobs.check_slot():
                return await self._save(request, kept, campaign, tab, form)
        except ChecksBusy:
            return _busy(self.server)
        finally:
            uploads.in_use.discard(kept.path)

    async def _save(
        self, request: web.Request, kept: Kept, campaign: Campaign, tab: str | None, form: Any
    ) -> web.Response:
        try:
            probe = await probe_upload(self.server, kept, tab)
        except DialerError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        fields = _posted_fields(campaign, form)
        for f in fields:
            f.chosen = str(form.get(f"column:{f.key}", "")).strip()
            f.default = " ".join(str(form.get(f"default:{f.key}", "")).split())
        tab_error = _judge(fields, probe, tab)
        if tab_error or any(f.error for f in fields):
            return render_page(
                self.server,
                request,
                kept,
                campaign,
                probe,
                fields=fields,
                error=texts.FIX_BELOW,
                tab_error=tab_error,
                status=400,
            )
        try:
            saved = await asyncio.to_thread(_save_choice, campaign, fields, probe)
            remember_campaign(self.server, request, campaign.name)
            if saved is not None:
                campaign = self.server.campaigns.load(saved)  # as the CLI now reads it
            dry = await self.server.jobs.check(campaign, kept.path, kept.name)
        except DialerError as exc:
            message = str(exc)
            for f in fields:
                if any(f"'contacts.{t}.{f.name}'" in message for t in ("columns", "defaults")):
                    f.error = message
            return render_page(
                self.server,
                request,
                kept,
                campaign,
                probe,
                fields=fields,
                error=message,
                status=400,
            )
        raise web.HTTPSeeOther(f"/dry-runs/{dry.id}")


def _judge(fields: list[ColumnField], probe: Probe, tab: str | None) -> str:
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


def _save_choice(campaign: Campaign, fields: list[ColumnField], probe: Probe) -> Path | None:
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


def render_page(
    server: Server,
    request: web.Request,
    kept: Kept,
    campaign: Campaign,
    probe: Probe,
    *,
    fields: list[ColumnField] | None = None,
    error: str = "",
    tab_error: str = "",
    status: int = 200,
) -> web.Response:
    """The column page; `fields` carries what the user entered after a refusal."""
    if fields is None:
        fields = _page_fields(campaign, probe)
    if probe.asked_tab_missing and not tab_error:
        tab_error = texts.tab_missing(campaign.contacts.sheet or "")
    session = session_of(request)
    html = server.templates.get_template("columns.html").render(
        csrf=session.csrf if session else "",
        kept=kept,
        campaign=campaign,
        probe=probe,
        fields=fields,
        examples=_examples(probe),
        not_in_sheet=texts.NOT_IN_SHEET,
        tab_error=tab_error,
        error=error,
    )
    return web.Response(text=html, content_type="text/html", status=status)


def _busy(server: Server) -> web.Response:
    response = web.Response(text=texts.checks_busy(server.settings), status=503)
    response.headers["Retry-After"] = str(server.settings.busy_retry_after)
    return response


# ---- the check page, in the user's terms ----


def check_page_extras(
    server: Server, dry: Any, problems: list[dict[str, str]], samples: list[dict[str, Any]]
) -> dict[str, Any]:
    """What the check page shows besides the counts: spreadsheet row numbers (header = row
    1, as Excel shows them, not data-row numbers), the check's warnings, the tab read, and
    the way back to the column page for this very upload."""
    offset = int(dry.summary.get("header_row", 1) or 1)
    kept = server.uploads.kept_for(dry.upload, dry.campaign)
    return {
        "problems": [_excel_row(p, offset) for p in problems],
        "samples": [_excel_row(s, offset) for s in samples],
        "warnings": [str(w) for w in dry.summary.get("warnings", [])],
        "tab": dry.summary.get("tab"),
        "columns_url": page_url(kept) if kept else "",
    }


def _excel_row(row: dict[str, Any], offset: int) -> dict[str, Any]:
    shown = dict(row)
    with contextlib.suppress(KeyError, TypeError, ValueError):
        shown["row"] = int(row["row"]) + offset
    if isinstance(shown.get("reason"), str):
        shown["reason"] = _DUPLICATE_OF.sub(
            lambda m: f"duplicate of row {int(m.group(1)) + offset}", shown["reason"]
        )
    return shown
