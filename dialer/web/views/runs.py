"""A run on the page: its page, its live view (an event stream), Stop, and the downloads of
its report and of past reports."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from aiohttp import web

from dialer.team import audit
from dialer.team.roles import Role
from dialer.web import access, texts
from dialer.web.auth import check_csrf
from dialer.web.services import reports
from dialer.web.services.jobs import WebRun
from dialer.web.site import Site
from dialer.web.views import results

log = logging.getLogger(__name__)
STREAM_CLOSED = "event stream closed by the browser"


def add_routes(app: web.Application, site: Site) -> None:
    pages = RunPages(site)
    app.router.add_get("/runs/{id}", pages.run_page)
    # No HEAD: a stream's body would follow its headers and desync a kept-alive connection.
    app.router.add_get("/runs/{id}/events", pages.events, allow_head=False)
    app.router.add_post("/runs/{id}/stop", pages.stop)
    app.router.add_get(r"/runs/{id}/report.{kind:csv|xlsx}", pages.run_report)
    app.router.add_get("/reports/{campaign}/{name}", pages.past_report)


class RunPages:
    """The routes of runs and reports."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.settings = site.settings
        self.jobs = site.jobs

    def _run(self, request: web.Request) -> WebRun:
        run = self.jobs.runs.get(request.match_info["id"])
        if run is None:
            raise web.HTTPNotFound(text="no such run")
        return run

    async def run_page(self, request: web.Request) -> web.Response:
        run = self._run(request)
        campaign = self.site.campaigns.get(run.campaign)
        res = await request.app[results.RESULTS].section(campaign, run)
        return self.site.render(
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
                if self.site.auth.session(request, active=False) is None:  # open is not active
                    return response
                run.changed.clear()
                view = run.view()
                data = json.dumps(view)
                if access.role_of(request) == Role.VIEWER:  # a viewer's numbers masked
                    data = access.mask_digits(data)
                await response.write(f"event: progress\ndata: {data}\n\n".encode())
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
        await self.site.record(request, audit.STOP, run.campaign, run=run.id, sheet=run.sheet_name)
        raise web.HTTPSeeOther(f"/runs/{run.id}")

    async def run_report(self, request: web.Request) -> web.StreamResponse:
        run = self._run(request)
        if not run.finished:
            raise web.HTTPConflict(text="the report is ready when the run ends")
        kind = request.match_info["kind"]
        await self.site.record(
            request, audit.DOWNLOAD, run.campaign, file=run.report.name, kind=kind
        )
        return await reports.download(run.report, kind)

    async def past_report(self, request: web.Request) -> web.StreamResponse:
        campaign, name = request.match_info["campaign"], request.match_info["name"]
        found = reports.past_report(self.site.root / "reports", campaign, name)
        if campaign not in self.site.campaigns.all() or found is None:
            raise web.HTTPNotFound(text="no such report")
        path, kind = found
        if any(r.report == path for r in self.jobs.running()):
            raise web.HTTPConflict(text="the report is ready when the run ends")
        await self.site.record(request, audit.DOWNLOAD, campaign, file=path.name, kind=kind)
        return await reports.download(path, kind)
