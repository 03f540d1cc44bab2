"""The page's aiohttp handlers: each parses its request, asks the server's parts, and renders
a template. Rules live in the parts (`auth`, `jobs`, `uploads`, `reports`), words in `texts`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus

from aiohttp import web

from dialer.campaign.model import Campaign
from dialer.core.statuses import DialerError, Status
from dialer.sheets.countries import country_name
from dialer.web import texts
from dialer.web.auth import check_csrf, session_of
from dialer.web.services import reports
from dialer.web.services.campaigns import last_campaign, remember_campaign
from dialer.web.services.jobs import AlreadyRunning, ChecksBusy, CheckStale, DryRun, WebRun
from dialer.web.services.uploads import BadUpload, Kept, UploadForm, UploadTooLarge
from dialer.web.settings import MB
from dialer.web.views import columns, results

if TYPE_CHECKING:
    from dialer.web.app import Server

log = logging.getLogger(__name__)
STREAM_CLOSED = "event stream closed by the browser"


class Pages:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.settings = server.settings
        self.jobs = server.jobs

    def render(
        self, request: web.Request, name: str, status: int = 200, **context: Any
    ) -> web.Response:
        session = session_of(request)
        html = self.server.templates.get_template(name).render(
            csrf=session.csrf if session else "", **context
        )
        return web.Response(text=html, content_type="text/html", status=status)

    # ---- login ----

    async def login_page(self, request: web.Request) -> web.Response:
        return self.render(request, "login.html")

    async def login(self, request: web.Request) -> web.Response:
        auth = self.server.auth
        # Refused before the token is even read: a throttled guesser learns nothing.
        if seconds := auth.login_wait(request.remote):
            response = self.render(request, "login.html", 429, error=texts.too_many_logins(seconds))
            response.headers["Retry-After"] = str(seconds)
            return response
        form = await request.post()
        sid = auth.log_in(request.remote, str(form.get("token", "")))
        if sid is None:
            return self.render(request, "login.html", 403, error=texts.WRONG_TOKEN)
        response = web.HTTPSeeOther("/")
        auth.set_cookie(response, sid)
        raise response

    async def logout(self, request: web.Request) -> web.Response:
        form = await request.post()
        check_csrf(request, str(form.get("csrf", "")))
        response = web.HTTPSeeOther("/login")
        self.server.auth.log_out(request, response)
        raise response

    # ---- the start page and uploads ----

    async def index(self, request: web.Request, error: str = "", status: int = 200) -> web.Response:
        found = self.server.campaigns.all()
        campaigns = [
            {
                "name": n,
                "title": c.title,
                "ok": True,
                "agent_id": c.agent_id,
                "call_from": c.call_from,
            }
            if isinstance(c, Campaign)
            else {"name": n, "ok": False, "problem": c}
            for n, c in found.items()
        ]
        past = reports.past_runs(self.server.root / "reports", found, self.settings.past_runs_shown)
        return self.render(
            request,
            "index.html",
            status,
            campaigns=campaigns,
            active=self.jobs.running(),
            past=past,
            limit_mb=self.settings.upload_limit // MB,
            last=last_campaign(self.server, request),
            error=error,
        )

    async def upload(self, request: web.Request) -> web.Response:
        try:
            async with self.jobs.check_slot():
                return await self._upload(request)
        except ChecksBusy:
            response = await self.index(request, texts.checks_busy(self.settings), 503)
            response.headers["Retry-After"] = str(self.settings.busy_retry_after)
            return response

    async def _upload(self, request: web.Request) -> web.Response:
        """A sheet alone goes to its own page (choose the campaign there); a sheet with a
        campaign (the form of earlier versions, scripts) goes on to its columns or check."""
        uploads = self.server.uploads
        form: UploadForm | None = None
        kept = False
        try:
            form = await uploads.receive(request, lambda given: check_csrf(request, given))
            if form.sheet is None:
                return await self.index(request, texts.CHOOSE_BOTH, 400)
            await self.server.prune()  # room for this one; never the sheets in use
            if not form.campaign:
                named = uploads.keep(form.sheet, form.sheet_name, "")
                kept = True
                raise web.HTTPSeeOther(f"/uploads/{named.id}")
            campaign = self.server.campaigns.get(form.campaign)
            if campaign is None:
                raise web.HTTPBadRequest(text="unknown campaign")
            kept = True  # the column page or the check shows it: never picked again
            return await self._columns_or_check(request, form.sheet, form.sheet_name, campaign)
        except UploadTooLarge:
            return await self.index(request, texts.too_large(self.settings), 413)
        except BadUpload as exc:
            return await self.index(request, str(exc), 400)
        except TimeoutError:
            return await self.index(request, texts.UPLOAD_TOO_SLOW, 408)
        except DialerError as exc:  # the message names the file once, as the user named it
            kept = False
            return await self.index(request, str(exc), 400)
        finally:
            if form is not None and form.sheet is not None:
                uploads.release(form.sheet, keep=kept)

    async def _columns_or_check(
        self, request: web.Request, sheet: Path, sheet_name: str, campaign: Campaign
    ) -> web.Response:
        """The sheet for `campaign`: its column page when a column must be chosen, else its
        check. The campaign is remembered as this session's last used."""
        self._remember(request, campaign.name)
        named = self.server.uploads.keep(sheet, sheet_name, campaign.name)
        probe = await columns.probe_upload(self.server, named, campaign.contacts.sheet)
        if columns.needs_matching(campaign, named, probe):
            raise web.HTTPSeeOther(columns.page_url(named))
        try:
            dry = await self.jobs.check(campaign, sheet, sheet_name)
        except DialerError as exc:  # still chosen: the column page shows it with the error
            return columns.render_page(
                self.server, request, named, campaign, probe, error=str(exc), status=400
            )
        raise web.HTTPSeeOther(f"/dry-runs/{dry.id}")

    def _remember(self, request: web.Request, name: str) -> None:
        remember_campaign(self.server, request, name)

    def _upload_of(self, request: web.Request) -> Kept:
        kept = self.server.uploads.kept(request.match_info["id"])
        if kept is None:
            raise web.HTTPNotFound(text=texts.UPLOAD_GONE)
        return kept

    async def upload_page(
        self, request: web.Request, error: str = "", status: int = 200
    ) -> web.Response:
        """A sheet just uploaded: a new campaign from it, or an existing one (preselected:
        the one this session created, saved or used last; else none)."""
        kept = self._upload_of(request)
        found = self.server.campaigns.all()
        usable = [n for n, c in found.items() if isinstance(c, Campaign)]
        last = last_campaign(self.server, request)
        return self.render(
            request,
            "upload.html",
            status,
            kept=kept,
            campaigns=[(n, found[n]) for n in usable],
            chosen=last if last in usable else "",
            error=error,
        )

    async def use_upload(self, request: web.Request) -> web.Response:
        """The sheet with an existing campaign: its columns, or its check."""
        form = await request.post()
        check_csrf(request, str(form.get("csrf", "")))
        kept = self._upload_of(request)
        campaign = self.server.campaigns.get(str(form.get("campaign", "")))
        if campaign is None:
            return await self.upload_page(request, texts.CHOOSE_CAMPAIGN, 400)
        uploads = self.server.uploads
        uploads.in_use.add(kept.path)  # not pruned while it is matched and checked
        try:
            async with self.jobs.check_slot():
                return await self._columns_or_check(request, kept.path, kept.name, campaign)
        except ChecksBusy:
            response = await self.upload_page(request, texts.checks_busy(self.settings), 503)
            response.headers["Retry-After"] = str(self.settings.busy_retry_after)
            return response
        except DialerError as exc:
            return await self.upload_page(request, str(exc), 400)
        finally:
            uploads.in_use.discard(kept.path)

    # ---- checks ----

    def _dry_run(self, request: web.Request) -> DryRun:
        dry = self.jobs.dry_runs.get(request.match_info["id"])
        if dry is None:
            raise web.HTTPNotFound(text="no such check")
        return dry

    async def dry_run_page(self, request: web.Request) -> web.Response:
        from dialer.web.views.schedules import again_form  # schedules builds on these handlers

        dry = self._dry_run(request)
        error = request.query.get("error", "")[: self.settings.error_text_chars]
        extra: dict[str, Any] = {}
        if (again := again_form(request)) is not None:  # confirming a paused schedule
            extra = {"schedule_form": again, "notice": texts.SCHEDULE_CONFIRM_AGAIN}
        return await self._check_page(
            request, dry, error=error, stale=await self.jobs.why_not(dry), **extra
        )

    async def _check_page(
        self,
        request: web.Request,
        dry: DryRun,
        *,
        error: str = "",
        stale: str = "",
        status: int = 200,
        **extra: Any,
    ) -> web.Response:
        counts = dry.summary.get("counts", {})
        problems, total = await asyncio.to_thread(
            reports.problem_rows, dry.report, self.settings.problem_rows_shown
        )
        campaign = None
        with contextlib.suppress(DialerError):
            campaign = self.server.campaigns.load(dry.campaign_path)
        ready = counts.get(Status.READY, 0)
        # Excel row numbers, warnings, the tab, the way back to the column page.
        shown = columns.check_page_extras(
            self.server, dry, problems, dry.summary.get("samples", [])
        )
        shown["warnings"] = [texts.page_warning(w) for w in shown["warnings"]]
        for row in shown["problems"]:
            row["status_words"] = texts.check_words(str(row.get("status", "")))
            row["reason"] = texts.page_reason(str(row.get("reason", "")))
        for sample in shown["samples"]:
            code = str(sample.get("country") or "")
            sample["country_name"] = country_name(code) if code and code != "??" else ""
        outside = next(
            (p.get("reason", "") for p in problems if p.get("status") == Status.OUTSIDE_WINDOW),
            "",
        )
        return self.render(
            request,
            "dry_run.html",
            status,
            d=dry,
            counts=[(s, texts.check_words(s), n) for s, n in counts.items() if n],
            ready=ready,
            ready_text=texts.people(ready),
            problem_count=total,
            window=texts.window_text(campaign, counts),
            nobody_now=(
                texts.nobody_now(campaign, outside, counts.get(Status.OUTSIDE_WINDOW, 0))
                if not ready
                else ""
            ),
            countries=texts.countries_text(dry.summary.get("countries", {}), country_name),
            cost=await asyncio.to_thread(results.estimate_cost, campaign, ready),
            stale=stale,
            run=self.jobs.runs.get(dry.run_id or ""),
            error=error,
            **extra,
            **shown,
        )

    async def launch(self, request: web.Request) -> web.Response:
        form = await request.post()
        check_csrf(request, str(form.get("csrf", "")))
        dry = self._dry_run(request)
        ready = dry.summary.get("counts", {}).get(Status.READY, 0)
        if form.get("confirm") != "yes" or str(form.get("count")) != str(ready):
            raise web.HTTPSeeOther(f"/dry-runs/{dry.id}?error={quote_plus(texts.CONFIRM_COUNT)}")
        if running := self.jobs.active_run(dry.campaign):
            raise web.HTTPSeeOther(f"/runs/{running.id}")
        try:
            run = await self.jobs.launch(dry)
        except AlreadyRunning:
            return await self._check_page(
                request, dry, error=texts.launch_busy(dry.campaign), status=409
            )
        except CheckStale as exc:
            return await self._check_page(
                request,
                dry,
                error=f"{texts.NOT_LAUNCHED} {exc}",
                stale=str(exc),  # the reason `launch` already found, not a second hashing
                status=409,
            )
        except DialerError as exc:
            return await self._check_page(
                request, dry, error=f"{texts.NOT_LAUNCHED} {exc}", status=400
            )
        raise web.HTTPSeeOther(f"/runs/{run.id}")

    # ---- runs and reports ----

    def _run(self, request: web.Request) -> WebRun:
        run = self.jobs.runs.get(request.match_info["id"])
        if run is None:
            raise web.HTTPNotFound(text="no such run")
        return run

    async def run_page(self, request: web.Request) -> web.Response:
        run = self._run(request)
        campaign = self.server.campaigns.get(run.campaign)
        res = await request.app[results.RESULTS].section(campaign, run)
        return self.render(
            request,
            "run.html",
            r=run.view(),
            res=res,
            ask_stop=request.query.get("stop") == "ask",
            stop_question=texts.STOP_ASK,
            error=request.query.get("error", "")[: self.settings.error_text_chars],
        )

    async def events(self, request: web.Request) -> web.StreamResponse:
        """The run page's live view; a browser closing the page ends it quietly (aiohttp's
        ClientConnectionResetError is a ConnectionResetError): nothing to log. The session is
        looked at before every event (at least every `events_every`): once it is gone (logged
        out, expired) the stream ends, as any other page would be refused."""
        run = self._run(request)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            while True:
                if self.server.auth.session(request) is None:
                    return response
                run.changed.clear()
                view = run.view()
                await response.write(f"event: progress\ndata: {json.dumps(view)}\n\n".encode())
                if view["finished"]:
                    return response
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(run.changed.wait(), self.settings.events_every)
        except ConnectionResetError:
            log.debug(STREAM_CLOSED)
            return response

    async def stop(self, request: web.Request) -> web.Response:
        form = await request.post()
        check_csrf(request, str(form.get("csrf", "")))
        run = self._run(request)
        if form.get("confirm") != "yes":  # Stop asks first: the run page shows the question
            raise web.HTTPSeeOther(f"/runs/{run.id}?stop=ask")
        run.interrupt()
        raise web.HTTPSeeOther(f"/runs/{run.id}")

    async def run_report(self, request: web.Request) -> web.StreamResponse:
        run = self._run(request)
        if not run.finished:
            raise web.HTTPConflict(text="the report is ready when the run ends")
        return await reports.download(run.report, request.match_info["kind"])

    async def past_report(self, request: web.Request) -> web.StreamResponse:
        campaign, name = request.match_info["campaign"], request.match_info["name"]
        found = reports.past_report(self.server.root / "reports", campaign, name)
        if campaign not in self.server.campaigns.all() or found is None:
            raise web.HTTPNotFound(text="no such report")
        path, kind = found
        if any(r.report == path for r in self.jobs.running()):
            raise web.HTTPConflict(text="the report is ready when the run ends")
        return await reports.download(path, kind)
