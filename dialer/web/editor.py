"""Campaigns on the page: create and edit a campaign, preview its greeting as it is typed, and
place a test call to one's own phone (SPEC 11).

    GET  /campaigns/new              the empty form (organisation and caller number of an
                                     existing campaign pre-filled)
    POST /campaigns/new              create campaigns/<name>.toml (an existing name is refused)
    GET  /campaigns/{name}/edit      the form of a campaign
    POST /campaigns/{name}/edit      save it (the previous file kept as <name>.toml.bak)
    POST /campaigns/preview          JSON: the first rows of a checked sheet rendered (app.js)
    POST /test-call                  one call with a row's personalisation to the typed number
    GET  /agents?organization_id=N   JSON: the organisation's agents, for the menu (app.js)

Saving and creating post to the page's own URL, so no campaign name (not even "new" or
"preview") can collide with a route. The form is the whole page: the test-call button submits
it to /test-call (`formaction`), so the call uses exactly what is on screen, checked as if
saved, and the page comes back with every value kept. What a marketer does not set (endpoint,
key variable, [contacts] paths, dispatch concurrency) comes from the file on the server,
never from the browser.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import web

from dialer.agents import Agent, AgentsError, agents_url, fetch_agents
from dialer.campaign import DEFAULT_API_KEY_ENV, Campaign
from dialer.campaign_toml import (
    CampaignForm,
    check_form,
    field_of,
    form_from_campaign,
    render_toml,
    save_campaign,
    without_unused_columns,
)
from dialer.phones import normalise_phone
from dialer.statuses import DialerError, Kind, UsageError
from dialer.tabbly import Secret
from dialer.web import texts
from dialer.web.auth import check_csrf, session_of
from dialer.web.campaign_fields import (
    REDIAL_OUTCOMES,
    FieldError,
    id_number,
    parse_fields,
    parse_templates,
    posted_values,
    values_of,
)
from dialer.web.jobs import DryRun
from dialer.web.preview import contact_of, in_child, place_test_call

if TYPE_CHECKING:
    from dialer.web.app import Server

# A new campaign's form before anything is typed; the preview renders with these too.
_PLACEHOLDER_CALLER = "+14156801215"
_BLANK = CampaignForm(name="", organization_id=0, agent_id=0, call_from="", first_line="")
_PREVIEW_NAME = "preview"  # a new campaign's preview is parsed as campaigns/preview.toml


def add_routes(app: web.Application, server: Server) -> None:
    editor = Editor(server)
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
    def __init__(self, server: Server) -> None:
        self.server = server
        self.settings = server.settings
        self.folder = server.root / "campaigns"
        self._previews = asyncio.Semaphore(server.settings.previews_at_once)
        # (agents URL, key variable, organisation) -> (when, agents or why not); oldest first.
        self._agents: dict[tuple[str, str, int], tuple[float, list[Agent] | str]] = {}

    # ---- pages ----

    async def new_page(self, request: web.Request) -> web.Response:
        return await self._page(request, "", values_of(self._new_form()))

    async def edit_page(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        campaign = self._editable(name)
        notice = ""
        if request.query.get("saved") == "created":
            notice = texts.CAMPAIGN_CREATED.format(name=name)
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
        try:
            form = self._form(posted, original)
            if not original and form.name in self.server.campaigns.all():
                raise FieldError("name", texts.NAME_TAKEN.format(name=form.name))
            await asyncio.to_thread(save_campaign, self.folder, form, create=not original)
        except FieldError as exc:
            return await self._refused(request, original, posted, exc.field, exc.message)
        except DialerError as exc:
            message = str(exc)
            return await self._refused(request, original, posted, field_of(message), message)
        saved = "yes" if original else "created"
        raise web.HTTPSeeOther(f"/campaigns/{form.name}/edit?saved={saved}")

    async def _refused(
        self,
        request: web.Request,
        original: str,
        posted: Mapping[str, Sequence[str]],
        field: str | None,
        message: str,
    ) -> web.Response:
        """The form again, as typed, with the error at the top and beside its field."""
        return await self._page(
            request,
            original,
            posted_values(posted),
            errors={field: message} if field else {},
            error=texts.labelled(field, message),
            sheet=_first(posted, "preview_sheet"),
            test_values=posted,
            status=400,
        )

    # ---- live preview ----

    async def preview(self, request: web.Request) -> web.Response:
        posted = await self._checked_post(request)
        original = _first(posted, "original")
        if original:
            self._editable(original)
        result = await self._preview(original, posted, _first(posted, "preview_sheet"))
        return web.json_response(result)

    async def _preview(
        self, original: str, posted: Mapping[str, Sequence[str]], sheet_id: str
    ) -> dict[str, Any]:
        """{"rows": [...]} or {"error": ..., "field": ...}: never an exception."""
        dry = self._sheet(sheet_id)
        if dry is None:
            return {"rows": [], "field": "preview_sheet", "error": self._no_sheet(sheet_id)}
        base = self._base(original)
        if not original:
            base = self._placeholders(base)
        form = without_unused_columns(parse_templates(posted, base))
        async with self._previews:
            try:
                campaign = await asyncio.to_thread(check_form, self.folder, form)
                answer = await self._in_child(
                    campaign, form, dry, {"count": self.settings.preview_rows}
                )
                rows = answer.get("rows", [])
            except DialerError as exc:
                message = self._shown(str(exc), dry)
                field = field_of(message)
                return {"rows": [], "field": field, "error": texts.labelled(field, message)}
        return {"rows": rows, "field": "", "error": ""}

    # ---- test call ----

    async def test_call(self, request: web.Request) -> web.Response:
        posted = await self._checked_post(request)
        original = _first(posted, "original")
        if original:
            self._editable(original)
        try:
            outcome_text = await self._test_call(original, posted)
        except FieldError as exc:
            return await self._refused(request, original, posted, exc.field, exc.message)
        except DialerError as exc:
            message = self._shown(str(exc), self._sheet(_first(posted, "preview_sheet")))
            return await self._refused(request, original, posted, field_of(message), message)
        return await self._page(
            request,
            original,
            posted_values(posted),
            sheet=_first(posted, "preview_sheet"),
            test_values=posted,
            test_result=outcome_text,
        )

    async def _test_call(self, original: str, posted: Mapping[str, Sequence[str]]) -> str:
        form = self._form(posted, original)
        dry = self._sheet(_first(posted, "preview_sheet"))
        if dry is None:
            raise FieldError("preview_sheet", self._no_sheet(_first(posted, "preview_sheet")))
        number = normalise_phone(_first(posted, "test_number"), form.default_region)
        if number.e164 is None:
            raise FieldError("test_number", texts.labelled("test_number", number.reason))
        row = id_number(_first(posted, "test_row").strip() or "1")
        if row is None:
            raise FieldError("test_row", texts.labelled("test_row", "enter a row number"))
        campaign = await asyncio.to_thread(check_form, self.folder, form)
        ask = {
            "row": row,
            "number": number.e164,
            "max_row": self.settings.test_call_max_row,
        }
        try:
            async with self._previews:
                answer = await self._in_child(campaign, form, dry, ask)
            contact = contact_of(answer["contact"])
        except DialerError as exc:
            reason = self._shown(str(exc), dry)
            field = "test_number" if reason.startswith("invalid phone") else "test_row"
            field = "test_number" if "do-not-call" in reason else field
            raise FieldError(field, texts.labelled(field, reason)) from None
        jobs = self.server.jobs
        # The test call takes the campaign's ledger lock: a launch meanwhile must be refused
        # as "starting", not fail on the lock and use up its check. No await between the two.
        if jobs.busy(campaign.name):
            raise UsageError(texts.TEST_CALL_WHILE_RUNNING.format(name=campaign.name))
        with jobs.holding(campaign.name):
            outcome = await place_test_call(campaign, contact, jobs.environ, dry.sheet_name)
        if outcome.kind is Kind.TRIGGERED:
            return texts.TEST_CALL_PLACED.format(number=number.e164, row=row)
        return texts.TEST_CALL_FAILED.format(reason=outcome.reason)

    async def _in_child(
        self, campaign: Campaign, form: CampaignForm, dry: DryRun, ask: dict[str, Any]
    ) -> dict[str, Any]:
        """The sheet read by a memory-capped child (dialer.web.preview), never in the server."""
        return await in_child(
            self.settings,
            self.server.jobs.child_failure,
            campaign,
            render_toml(form),
            dry.upload,
            ask,
        )

    # ---- agents ----

    async def agents_json(self, request: web.Request) -> web.Response:
        original = request.query.get("campaign", "")
        agents, problem = await self._agent_menu(
            request.query.get("organization_id", ""), self._base(original)
        )
        listed = [{"id": a.id, "label": a.label} for a in agents or []]
        return web.json_response({"agents": listed, "problem": problem})

    async def _agent_menu(self, organization: str, base: CampaignForm) -> tuple[list[Agent], str]:
        """The organisation's agents, or the one line saying why there is no menu."""
        org = id_number(organization)
        if org is None:
            return [], ""
        environ = self.server.jobs.environ
        key = environ.get(base.api_key_env, "")
        if not key:
            return [], texts.NO_API_KEY.format(env=base.api_key_env)
        url = agents_url(environ, base.endpoint)
        # Keyed by the key's variable too: two campaigns may send different keys to one URL,
        # and one key's agents (or its refusal) must not answer for the other.
        entry = (url, base.api_key_env, org)
        cached = self._agents.get(entry)
        now = time.monotonic()
        if cached is None or now - cached[0] >= self.settings.agents_cache_seconds:
            try:
                found: list[Agent] | str = await fetch_agents(
                    url, org, Secret(key), timeout=self.settings.agents_timeout
                )
            except AgentsError as exc:
                found = str(exc)
            self._agents.pop(entry, None)
            while self._agents and len(self._agents) >= self.settings.agents_cache_entries:
                del self._agents[next(iter(self._agents))]  # the oldest
            cached = self._agents[entry] = (now, found)
        found = cached[1]
        if isinstance(found, str):
            return [], texts.AGENTS_UNAVAILABLE.format(problem=found)
        return found, ""

    # ---- the parts ----

    async def _checked_post(self, request: web.Request) -> dict[str, list[str]]:
        posted = _posted(await request.post())
        check_csrf(request, _first(posted, "csrf"))
        return posted

    def _editable(self, name: str) -> Campaign:
        """The campaign called `name`, if the page may edit it; else an HTTP error page."""
        found = self.server.campaigns.all().get(name)
        if found is None:
            raise web.HTTPNotFound(text="no such campaign")
        if isinstance(found, str):
            raise web.HTTPConflict(text=texts.EDIT_IN_FILE.format(problem=found))
        if found.path.name != f"{name}.toml":
            raise web.HTTPConflict(
                text=texts.FILE_NOT_NAMED.format(file=found.path.name, name=name)
            )
        return found

    def _base(self, original: str) -> CampaignForm:
        """What the browser does not send: the edited file's keys, or a new campaign's."""
        campaign = self.server.campaigns.get(original) if original else None
        return form_from_campaign(campaign) if campaign is not None else _BLANK

    def _new_form(self) -> CampaignForm:
        """A new campaign's form: the organisation and caller number of an existing one
        (one organisation is the usual case), nothing else."""
        usable = [c for c in self.server.campaigns.all().values() if isinstance(c, Campaign)]
        if not usable:
            return _BLANK
        first = usable[0]
        return CampaignForm(
            name="",
            organization_id=first.organization_id,
            agent_id=0,
            call_from=first.call_from,
            first_line="",
            default_region=first.contacts.default_region,
        )

    @staticmethod
    def _placeholders(base: CampaignForm) -> CampaignForm:
        """A new campaign's preview needs only its templates: the rest made loadable."""
        return CampaignForm(
            name=_PREVIEW_NAME,
            organization_id=1,
            agent_id=1,
            call_from=_PLACEHOLDER_CALLER,
            first_line=base.first_line,
            source=base.source,
        )

    def _form(self, posted: Mapping[str, Sequence[str]], original: str) -> CampaignForm:
        form = without_unused_columns(parse_fields(posted, self._base(original)))
        if original and form.name != original:
            raise FieldError("name", texts.NAME_IS_FIXED)
        return form

    def _sheets(self) -> list[DryRun]:
        """The checked sheets still on the server, newest first."""
        runs = reversed(list(self.server.jobs.dry_runs.values()))
        return [d for d in runs if d.upload.is_file()]

    def _sheet(self, sheet_id: str) -> DryRun | None:
        dry = self.server.jobs.dry_runs.get(sheet_id)
        return dry if dry is not None and dry.upload.is_file() else None

    def _shown(self, message: str, dry: DryRun | None) -> str:
        """An error as the page shows it: the uploader's file name for the upload, the file
        name for the campaign, paths under the project relative to it; never the server's
        own folders."""
        if dry is not None:
            message = message.replace(str(dry.upload), dry.sheet_name)
        for folder in (self.folder, self.server.root):
            message = message.replace(f"{folder}{os.sep}", "")
        return message

    def _no_sheet(self, sheet_id: str) -> str:
        return texts.PREVIEW_SHEET_GONE if sheet_id else texts.NO_PREVIEW_SHEET

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
        sheets = self._sheets()
        chosen = sheet if self._sheet(sheet) else _default_sheet(sheets, original)
        agents, agents_problem = await self._agent_menu(values["organization_id"], base)
        preview: dict[str, Any] = {"rows": [], "error": "", "field": ""}
        if chosen and values.get("first_line", "").strip():
            as_posted = {k: [v] for k, v in values.items() if isinstance(v, str)}
            preview = await self._preview(original, as_posted, chosen)
        elif not sheets:
            preview["error"] = texts.NO_PREVIEW_SHEET
        tests = test_values or {}
        ready = [r["row"] for r in preview["rows"] if r["status"] == "ready"]
        session = session_of(request)
        html = self.server.templates.get_template("campaign_form.html").render(
            csrf=session.csrf if session else "",
            original=original,
            action=f"/campaigns/{original}/edit" if original else "/campaigns/new",
            v=values,
            errors=errors or {},
            error=error,
            notice=notice,
            labels=texts.FIELD_LABELS,
            weekdays=_WEEKDAY_NAMES,
            redial_outcomes=[(o, _OUTCOME_WORDS.get(o, o)) for o in REDIAL_OUTCOMES],
            agents=_menu(agents, values["agent_id"]),
            agents_problem=agents_problem,
            sheets=[(d.id, f"{d.sheet_name} (checked for {d.campaign})") for d in sheets],
            sheet=chosen,
            preview=preview,
            test_number=_first(tests, "test_number"),
            test_row=_first(tests, "test_row") or (str(ready[0]) if ready else "1"),
            test_result=test_result,
            has_key=bool(self.server.jobs.environ.get(base.api_key_env or DEFAULT_API_KEY_ENV)),
        )
        return web.Response(text=html, content_type="text/html", status=status)


_WEEKDAY_NAMES = [
    ("mon", "Monday"),
    ("tue", "Tuesday"),
    ("wed", "Wednesday"),
    ("thu", "Thursday"),
    ("fri", "Friday"),
    ("sat", "Saturday"),
    ("sun", "Sunday"),
]
_OUTCOME_WORDS = {
    "busy": "busy",
    "no_answer": "not answered",
    "voicemail": "a voicemail",
    "failed": "failed",
}


def _first(posted: Mapping[str, Sequence[str]], name: str) -> str:
    given = posted.get(name) or [""]
    return given[0]


def _default_sheet(sheets: list[DryRun], campaign: str) -> str:
    """The newest check of this campaign, else the newest check."""
    for dry in sheets:
        if dry.campaign == campaign:
            return dry.id
    return sheets[0].id if sheets else ""


def _menu(agents: list[Agent], chosen: str) -> list[tuple[str, str]]:
    """(value, label) for the agent menu; a chosen agent the list lacks stays chosen."""
    menu = [(str(a.id), a.label) for a in agents]
    number = id_number(chosen)
    if agents and number is not None and str(number) not in {value for value, _ in menu}:
        menu.insert(0, (str(number), f"agent {number} (not in the list)"))
    return menu
