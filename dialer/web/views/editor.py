"""Campaigns on the page: create and edit a campaign, preview its greeting as it is typed, and
place a test call to one's own phone (SPEC 11).

    GET  /campaigns/new[?sheet=ID]   the empty form (organisation and caller number of an
                                     existing campaign pre-filled; with an upload's id, that
                                     sheet chosen: its columns guessed, its headers offered)
    POST /campaigns/new              create campaigns/<name>.toml (an existing name is refused)
    GET  /campaigns/{name}/edit      the form of a campaign
    POST /campaigns/{name}/edit      save it (the previous file kept as <name>.toml.bak)
    POST /campaigns/preview          JSON: the first rows of a checked sheet rendered (app.js)
    POST /test-call                  one call with a row's personalisation to the typed number
                                     (JSON with reply=json: app.js shows it by the button)
    GET  /agents?organization_id=N   JSON: the organisation's agents, for the menu (app.js)

Saving and creating post to the page's own URL, so no campaign name (not even "new" or
"preview") can collide with a route. The form is the whole page: the test-call button submits
it to /test-call (`formaction`; app.js posts the same form with fetch), so the call uses
exactly what is on screen, checked as if saved. A new campaign's name may be any title
("Spring sale 2026"): its file name is derived from it (`file_name_for`). The sheet to
preview with is any kept upload or checked sheet, each file listed once. What a marketer
does not set (endpoint, key variable, [contacts] paths, dispatch concurrency) comes from the
file on the server, never from the browser.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from dialer.campaign.model import DEFAULT_API_KEY_ENV, WEEKDAYS, Campaign, file_name_for
from dialer.core.statuses import DialerError, Kind, UsageError
from dialer.sheets.phones import normalise_phone
from dialer.team import audit
from dialer.team.roles import Role
from dialer.web import access, texts
from dialer.web.auth import check_csrf, session_of
from dialer.web.services.agents import AgentMenus, AgentsThrottled, menu_options
from dialer.web.services.campaign_fields import (
    REDIAL_OUTCOMES,
    FieldError,
    first_value,
    id_number,
    parse_fields,
    parse_templates,
    plain_error,
    posted_values,
    values_of,
)
from dialer.web.services.campaign_toml import (
    CampaignForm,
    ChangedMeanwhile,
    check_form,
    form_from_campaign,
    render_toml,
    save_campaign,
    without_unused_columns,
)
from dialer.web.services.child_processes import (
    ChildQueue,
    ChildrenBusy,
    contact_of,
    in_child,
)
from dialer.web.services.column_fields import sheet_guesses, template_name
from dialer.web.services.page_audit import AuditUnavailable, saved_file, test_call
from dialer.web.services.test_calls import TestCallsCapped
from dialer.web.site import Site
from dialer.web.views import columns
from dialer.web.views.sheet_choices import SheetChoice, SheetChoices

# A new campaign's form before anything is typed; the preview renders with these too.
_PLACEHOLDER_CALLER = "+14156801215"
_BLANK = CampaignForm(name="", organization_id=0, agent_id=0, call_from="", first_line="")
_PREVIEW_NAME = "preview"  # a new campaign's preview is parsed as campaigns/preview.toml


def add_routes(app: web.Application, site: Site) -> None:
    editor = Editor(site)
    add_get, add_post = app.router.add_get, app.router.add_post
    add_get("/campaigns/new", editor.new_page)
    add_post("/campaigns/new", editor.create)
    add_post("/campaigns/preview", editor.preview)
    add_get("/campaigns/{name}/edit", editor.edit_page)
    add_post("/campaigns/{name}/edit", editor.save)
    add_post("/test-call", editor.test_call)
    add_get("/agents", editor.agents_json)


def _posted(form: Mapping[str, Any]) -> dict[str, list[str]]:
    """aiohttp's posted form as name -> texts (file parts, which no field is, left out)."""
    getall = form.getall  # type: ignore[attr-defined]
    return {k: [v for v in getall(k) if isinstance(v, str)] for k in set(form.keys())}


class Editor:
    """The routes of the campaign form: its pages, saves, previews, test calls and agents."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.settings = site.settings
        self.folder = site.root / "campaigns"
        # Every child the form starts (previews, saves' template checks, test calls, header
        # probes) takes a place here: bounded running and waiting, the rest answered 503.
        self.children = ChildQueue(site.settings)
        # Each session's preview under way: a newer one from the same session cancels it.
        self._preview_of: dict[str, asyncio.Task[dict[str, Any]]] = {}
        self.sheets = SheetChoices(site, self.children)
        self.agents = AgentMenus(site.settings, site.jobs.environ)

    async def new_page(self, request: web.Request) -> web.Response:
        sheet = request.query.get("sheet", "")
        return await self._page(request, "", values_of(self._new_form()), sheet=sheet)

    async def edit_page(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        campaign = self._editable(name)
        notice = ""
        if request.query.get("saved") == "created":
            notice = texts.CAMPAIGN_CREATED.format(name=campaign.shown_name)
        elif request.query.get("saved"):
            notice = texts.CAMPAIGN_SAVED.format(name=name)
        return await self._page(
            request,
            name,
            values_of(form_from_campaign(campaign)),
            notice=notice,
            sheet=request.query.get("sheet", ""),
        )

    async def create(self, request: web.Request) -> web.Response:
        return await self._save(request, "")

    async def save(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self._editable(name)
        return await self._save(request, name)

    async def _save(self, request: web.Request, original: str) -> web.Response:
        posted = await self._checked_post(request)
        choice = self.sheets.get(first_value(posted, "preview_sheet"))
        try:
            form = self._form(posted, original, await self._guessed(original, choice))
            if not original and form.name in self.site.campaigns.all():
                raise FieldError("name", texts.NAME_TAKEN.format(name=form.name))
            # An edit replaces only the file its form was opened on (its SHA-256 rode along
            # in the form): an admin's hand edit meanwhile is never silently undone.
            opened = first_value(posted, "opened") if original else None
            # The templates compiled and trial-rendered by a capped child, as a preview's are:
            # a template costing seconds per render never holds the server's threads.
            campaign = check_form(self.folder, form, trial=False)
            async with self.children:
                await self._in_child(campaign, form, None, {"check": True})
            path = await asyncio.to_thread(
                save_campaign,
                self.folder,
                form,
                create=not original,
                expect_sha256=opened,
                templates_checked=True,
            )
        except ChildrenBusy as busy:
            response = await self._refused(
                request, original, posted, None, texts.PREVIEWS_BUSY, status=busy.status
            )
            response.headers["Retry-After"] = busy.headers["Retry-After"]
            return response
        except ChangedMeanwhile:
            return await self._refused(request, original, posted, None, texts.CHANGED_SINCE_OPENED)
        except FieldError as exc:
            return await self._refused(request, original, posted, exc.field, exc.message)
        except DialerError as exc:
            field, message = plain_error(self._shown(str(exc), None), posted)
            return await self._refused(request, original, posted, field, message)
        action = audit.CAMPAIGN_EDITED if original else audit.CAMPAIGN_CREATED
        await self.site.record(request, action, form.name, **await saved_file(opened, path))
        self.site.remember_campaign(request, form.name)
        if not original and choice is not None:
            # Made from a sheet: its columns next (pre-chosen), then its check.
            kept = self.site.uploads.keep(choice.path, choice.name, form.name)
            raise web.HTTPSeeOther(columns.page_url(kept))
        saved = "yes" if original else "created"
        where = f"&sheet={choice.id}" if choice is not None else ""
        raise web.HTTPSeeOther(f"/campaigns/{form.name}/edit?saved={saved}{where}")

    async def _refused(
        self,
        request: web.Request,
        original: str,
        posted: Mapping[str, Sequence[str]],
        field: str | None,
        message: str,
        status: int = 400,
    ) -> web.Response:
        """The form again, as typed, with the error at the top and beside its field."""
        return await self._page(
            request,
            original,
            posted_values(posted),
            errors={field: message} if field else {},
            error=texts.labelled(field, message),
            sheet=first_value(posted, "preview_sheet"),
            test_values=posted,
            status=status,
        )

    async def preview(self, request: web.Request) -> web.Response:
        """JSON for app.js. One preview per session at a time: a newer one (the user typed
        on) cancels it, its child killed, and it answers 409 (app.js keeps only the newest).
        All children busy and the queue full: 503 with Retry-After (ChildrenBusy)."""
        posted = await self._checked_post(request)
        original = first_value(posted, "original")
        if original:
            self._editable(original)
        session = session_of(request)
        mine = session.csrf if session is not None else ""
        if (older := self._preview_of.get(mine)) is not None:
            older.cancel()
        task = asyncio.ensure_future(
            self._preview(original, posted, first_value(posted, "preview_sheet"))
        )
        self._preview_of[mine] = task
        try:
            result = await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # this request itself is going away
            return web.json_response({"superseded": True}, status=409)
        finally:
            if self._preview_of.get(mine) is task:
                del self._preview_of[mine]
        return web.json_response(result)

    async def _preview(
        self, original: str, posted: Mapping[str, Sequence[str]], sheet_id: str
    ) -> dict[str, Any]:
        """{"rows": [...], "headers": [...]} or {"error": ..., "field": ...}; raises only
        ChildrenBusy."""
        choice = self.sheets.get(sheet_id)
        if choice is None:
            return {
                "rows": [],
                "headers": [],
                "field": "preview_sheet",
                "error": self._no_sheet(sheet_id),
            }
        headers = await self.sheets.headers(choice)
        base = await self._guessed(original, choice)
        if not original:
            base = self._placeholders(base)
        form = without_unused_columns(parse_templates(posted, base))
        menu = _header_menu(headers)
        async with self.children:
            try:
                campaign = check_form(self.folder, form, trial=False)  # the child renders
                answer = await self._in_child(
                    campaign, form, choice, {"count": self.settings.preview_rows}
                )
                rows = answer.get("rows", [])
            except DialerError as exc:
                field, message = plain_error(self._shown(str(exc), choice), posted)
                return {
                    "rows": [],
                    "headers": menu,
                    "field": field,
                    "error": texts.labelled(field, message),
                }
        return {"rows": rows, "headers": menu, "field": "", "error": ""}

    async def test_call(self, request: web.Request) -> web.Response:
        posted = await self._checked_post(request)
        original = first_value(posted, "original")
        as_json = first_value(posted, "reply") == "json"
        if original:
            self._editable(original)
        session = session_of(request)
        as_saved = (access.role_of(request) or Role.VIEWER) < Role.EDITOR  # editing is not theirs
        if as_saved and not original:
            raise web.HTTPBadRequest(text=texts.TEST_CALL_OF_SAVED)
        named = original or first_value(posted, "name")

        async def entered() -> None:  # before the call leaves: none the trail does not hold
            await self.site.must_record(request, audit.TEST_CALL, named, **test_call(posted))

        try:
            csrf = session.csrf if session else ""
            outcome_text = await self._test_call(original, posted, csrf, as_saved, entered)
        except (FieldError, DialerError) as exc:
            if isinstance(exc, FieldError):
                field, message = exc.field, exc.message
            else:
                choice = self.sheets.get(first_value(posted, "preview_sheet"))
                field, message = plain_error(self._shown(str(exc), choice), posted)
            capped = isinstance(exc, TestCallsCapped)  # 429: a cap, said in a sentence
            status = 429 if capped else 503 if isinstance(exc, AuditUnavailable) else 400
            headers = {"Retry-After": str(exc.retry_after)} if capped else {}
            if as_json:
                shown = texts.labelled(field, message)
                reply = {"ok": False, "field": field, "message": shown}
                return web.json_response(reply, status=status, headers=headers)
            page = await self._refused(request, original, posted, field, message, status)
            page.headers.update(headers)
            return page
        if as_json:  # app.js shows it beside the button: no reload to the page's top
            return web.json_response({"ok": True, "field": "", "message": outcome_text})
        return await self._page(
            request,
            original,
            posted_values(posted),
            sheet=first_value(posted, "preview_sheet"),
            test_values=posted,
            test_result=outcome_text,
        )

    async def _test_call(
        self,
        original: str,
        posted: Mapping[str, Sequence[str]],
        session: str,
        as_saved: bool,
        entered: Callable[[], Awaitable[None]],
    ) -> str:
        choice = self.sheets.get(first_value(posted, "preview_sheet"))
        if choice is None:
            raise FieldError("preview_sheet", self._no_sheet(first_value(posted, "preview_sheet")))
        form = self._form(posted, original, await self._guessed(original, choice))
        form = self._base(original) if as_saved else form  # a caller's: what the file says
        number = normalise_phone(first_value(posted, "test_number"), form.default_region)
        if number.e164 is None:
            raise FieldError("test_number", texts.labelled("test_number", number.reason))
        row = id_number(first_value(posted, "test_row").strip() or "1")
        if row is None:
            raise FieldError("test_row", texts.labelled("test_row", "enter a row number"))
        campaign = check_form(self.folder, form, trial=False)  # the child renders them
        guard = self.site.test_calls
        try:
            guard.judge_number(campaign, number.e164, guard.clock())
        except UsageError as exc:
            raise FieldError("test_number", texts.labelled("test_number", str(exc))) from None
        ask = {
            "row": row,
            "number": number.e164,
            "max_row": self.settings.test_call_max_row,
        }
        try:
            async with self.children:
                answer = await self._in_child(campaign, form, choice, ask)
            contact = contact_of(answer["contact"])
            guard.judge_country(campaign, contact.called_to, answer["contact"]["countries"])
        except DialerError as exc:
            reason = self._shown(str(exc), choice)
            field = "test_number" if reason.startswith(("invalid phone", "That is")) else "test_row"
            field = "test_number" if "do-not-call" in reason else field
            raise FieldError(field, texts.labelled(field, reason)) from None
        jobs = self.site.jobs
        # The test call takes the campaign's ledger lock: a launch meanwhile must be refused
        # as "starting", not fail on the lock and use up its check. No await between the two.
        if jobs.busy(campaign.name):
            raise UsageError(texts.TEST_CALL_WHILE_RUNNING.format(name=campaign.name))
        await entered()  # AuditUnavailable: not placed, not counted
        if jobs.busy(campaign.name):  # a launch began while the entry was written
            raise UsageError(texts.TEST_CALL_WHILE_RUNNING.format(name=campaign.name))
        guard.take(session, guard.clock())  # counted once it is sure to be tried
        with jobs.holding(campaign.name):
            outcome = await guard.place(campaign, contact, jobs.environ, choice.name)
        if outcome.kind is Kind.TRIGGERED:
            return texts.TEST_CALL_PLACED.format(number=number.e164, row=row)
        return texts.TEST_CALL_FAILED.format(reason=outcome.reason)

    async def _in_child(
        self,
        campaign: Campaign,
        form: CampaignForm,
        choice: SheetChoice | None,
        ask: dict[str, Any],
    ) -> dict[str, Any]:
        """The sheet read, and the templates rendered, by a memory-capped child
        (dialer.web.children.preview), never in the server."""
        return await in_child(
            self.settings,
            campaign,
            render_toml(form),
            choice.path if choice is not None else Path(),
            ask,
        )

    async def agents_json(self, request: web.Request) -> web.Response:
        original = request.query.get("campaign", "")
        try:
            agents, problem = await self.agents.menu(
                _asker(request), request.query.get("organization_id", ""), self._base(original)
            )
        except AgentsThrottled as exc:
            answer = web.json_response(
                {"agents": [], "problem": texts.AGENTS_THROTTLED}, status=429
            )
            answer.headers["Retry-After"] = str(exc.seconds)
            return answer
        listed = [{"id": a.id, "label": a.label} for a in agents or []]
        return web.json_response({"agents": listed, "problem": problem})

    async def _checked_post(self, request: web.Request) -> dict[str, list[str]]:
        posted = _posted(await request.post())
        check_csrf(request, first_value(posted, "csrf"))
        return posted

    def _editable(self, name: str) -> Campaign:
        """The campaign called `name`, if the page may edit it; else an HTTP error page."""
        found = self.site.campaigns.all().get(name)
        if found is None:
            raise web.HTTPNotFound(text="no such campaign")
        if isinstance(found, str):
            raise web.HTTPConflict(text=texts.EDIT_IN_FILE.format(problem=found))
        if found.path.name != f"{name}.toml":
            raise web.HTTPConflict(
                text=texts.FILE_NOT_NAMED.format(file=found.path.name, name=name)
            )
        return found

    def _opened(self, original: str) -> str:
        """The SHA-256 of the file being edited, as the page read it ("" for a new one)."""
        campaign = self.site.campaigns.get(original) if original else None
        return campaign.source_sha256 if campaign is not None else ""

    def _base(self, original: str) -> CampaignForm:
        """What the browser does not send: the edited file's keys, or a new campaign's."""
        campaign = self.site.campaigns.get(original) if original else None
        return form_from_campaign(campaign) if campaign is not None else _BLANK

    async def _guessed(self, original: str, choice: SheetChoice | None) -> CampaignForm:
        """`_base`; for a new campaign with a sheet chosen, that sheet's phone columns and
        country column as the column page would pre-choose them."""
        base = self._base(original)
        if original or choice is None:
            return base
        phones, country = sheet_guesses(await self.sheets.headers(choice))
        if not phones:
            return base
        return dataclasses.replace(base, phone_columns=phones, country_column=country)

    def _new_form(self) -> CampaignForm:
        """A new campaign's form: the organisation and caller number of an existing one
        (one organisation is the usual case), every day ticked (the legal hours guard the
        hours), `new_campaign_per_day` calls a day to one person (shown, editable)."""
        per_day = self.settings.new_campaign_per_day
        usable = [c for c in self.site.campaigns.all().values() if isinstance(c, Campaign)]
        if not usable:
            return dataclasses.replace(_BLANK, window_days=WEEKDAYS, limits_per_day=per_day)
        first = usable[0]
        return CampaignForm(
            name="",
            organization_id=first.organization_id,
            agent_id=0,
            call_from=first.call_from,
            first_line="",
            default_region=first.contacts.default_region,
            window_days=WEEKDAYS,
            limits_per_day=per_day,
        )

    @staticmethod
    def _placeholders(base: CampaignForm) -> CampaignForm:
        """A new campaign's preview needs only its templates and columns: the rest made
        loadable."""
        return CampaignForm(
            name=_PREVIEW_NAME,
            organization_id=1,
            agent_id=1,
            call_from=_PLACEHOLDER_CALLER,
            first_line=base.first_line,
            source=base.source,
            phone_columns=base.phone_columns,
            country_column=base.country_column,
        )

    def _form(
        self, posted: Mapping[str, Sequence[str]], original: str, base: CampaignForm
    ) -> CampaignForm:
        form = without_unused_columns(parse_fields(posted, base))
        if original and form.name != original:
            raise FieldError("name", texts.NAME_IS_FIXED)
        if not original:  # any title: the file name is made from it, the title kept
            typed = " ".join(form.name.split())
            name = file_name_for(typed)
            if not name:
                raise FieldError("name", texts.labelled("name", texts.NAME_NEEDS_LETTERS))
            form = dataclasses.replace(form, name=name, title=typed if typed != name else "")
        return form

    def _shown(self, message: str, choice: SheetChoice | None) -> str:
        """An error as the page shows it: the uploader's file name for the upload, the file
        name for the campaign, paths under the project relative to it; never the server's
        own folders."""
        if choice is not None:
            message = message.replace(str(choice.path), choice.name)
        for folder in (self.folder, self.site.root):
            message = message.replace(f"{folder}{os.sep}", "")
        return message

    def _no_sheet(self, sheet_id: str) -> str:
        return texts.PREVIEW_SHEET_GONE if sheet_id else texts.NO_SHEET_YET

    async def _page(
        self,
        request: web.Request,
        original: str,
        values: dict[str, Any],
        *,
        errors: dict[str, str] | None = None,
        error: str = "",
        notice: str = "",
        sheet: str = "",
        test_values: Mapping[str, Sequence[str]] | None = None,
        test_result: str = "",
        status: int = 200,
    ) -> web.Response:
        base = self._base(original)
        sheets = self.sheets.all()
        chosen_sheet = self.sheets.get(sheet)
        if chosen_sheet is not None and all(c.path != chosen_sheet.path for c in sheets):
            sheets.insert(0, chosen_sheet)
        chosen = chosen_sheet.id if chosen_sheet else self.sheets.default(sheets, original)
        if chosen_sheet is not None:  # listed under the id asked for, once
            sheets = [chosen_sheet if c.path == chosen_sheet.path else c for c in sheets]
        try:
            agents, agents_problem = await self.agents.menu(
                _asker(request), values["organization_id"], base
            )
        except AgentsThrottled:
            agents, agents_problem = [], texts.AGENTS_THROTTLED
        preview: dict[str, Any] = {"rows": [], "error": "", "field": "", "headers": []}
        if chosen and values.get("first_line", "").strip():
            as_posted = {k: [v] for k, v in values.items() if isinstance(v, str)}
            try:
                preview = await self._preview(original, as_posted, chosen)
            except ChildrenBusy:  # the form itself still shows, with every value typed
                preview["error"] = texts.PREVIEWS_BUSY
        elif chosen:
            choice = self.sheets.get(chosen)
            if choice is not None:
                preview["headers"] = _header_menu(await self.sheets.headers(choice))
        elif not sheets:
            preview["error"] = texts.NO_SHEET_YET
        tests = test_values or {}
        ready = [r["row"] for r in preview["rows"] if r["status"] == "ready"]
        # The way on from a saved campaign: this sheet's page (this campaign preselected).
        upload_page = ""
        if notice and chosen_sheet is not None:
            kept = self.site.uploads.keep(chosen_sheet.path, chosen_sheet.name, "")
            upload_page = f"/uploads/{kept.id}"
        # The file this form was opened on: kept through every re-render of the same form.
        opened = first_value(tests, "opened") if "opened" in tests else self._opened(original)
        return self.site.render(
            request,
            "campaign_form.html",
            status,
            original=original,
            opened=opened,
            action=f"/campaigns/{original}/edit" if original else "/campaigns/new",
            title=base.title or original,
            upload_page=upload_page,
            v=values,
            errors=errors or {},
            error=error,
            notice=notice,
            labels=texts.FIELD_LABELS,
            weekdays=list(zip(WEEKDAYS, texts.DAY_NAMES, strict=True)),
            redial_outcomes=[(o, texts.REDIAL_WORDS.get(o, o)) for o in REDIAL_OUTCOMES],
            agents=menu_options(agents, values["agent_id"]),
            agents_problem=agents_problem,
            sheets=[(c.id, c.name) for c in sheets],
            sheet=chosen,
            preview=preview,
            test_number=first_value(tests, "test_number"),
            test_row=first_value(tests, "test_row") or (str(ready[0]) if ready else "1"),
            test_result=test_result,
            has_key=bool(self.site.jobs.environ.get(base.api_key_env or DEFAULT_API_KEY_ENV)),
        )


def _asker(request: web.Request) -> str:
    """Who spends an ask of get-agents: the session, else the address."""
    session = session_of(request)
    return session.csrf if session is not None else str(request.remote)


def _header_menu(headers: Sequence[str]) -> list[dict[str, str]]:
    """The "Insert a column" menu: each header and what inserting it writes."""
    menu = []
    for header in headers:
        name = template_name(header)
        if header and name:
            menu.append({"header": header, "insert": f"{{{{ {name} }}}}"})
    return menu
