"""Results on the page: who answered (read by a `dialer sync` child), shown as a chart with the
answer rate, cost and calls per hour; what they said (a chart by disposition) and who of them
is on the opt-out register; the Sync button and the run page's automatic sync; the
campaign's results page with its test calls; the newest results sheet to download.

    GET  /campaigns/{campaign}/results              everyone the campaign called
    POST /campaigns/{campaign}/sync                 the Sync button (reply=fragment: app.js)
    GET  /campaigns/{campaign}/results.{csv|xlsx}   the newest results sheet

`request.app[RESULTS].section(campaign, run)` is the results section the run page shows too.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

from aiohttp import web

from dialer.campaign.model import Campaign
from dialer.campaign.paths import RESULTS_SUFFIX, reports_folder, state_folder
from dialer.core.clock import stamp
from dialer.core.currencies import money
from dialer.core.statuses import CallOutcome, DialerError
from dialer.team import audit
from dialer.web import texts
from dialer.web.auth import check_csrf
from dialer.web.services import reports
from dialer.web.services.job_records import WebRun
from dialer.web.services.optout_register import RunOptOut, run_optouts
from dialer.web.services.outcomes import Outcomes, read_outcomes, read_test_calls
from dialer.web.services.syncs import Syncs
from dialer.web.site import Site
from dialer.web.views.chart import chart, said_chart


class ResultPages:
    """The routes of results: the sync button, the results section, the results sheet."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.jobs = site.jobs
        self.settings = site.settings
        self.syncs = Syncs(site.jobs, site.settings)

    def _campaign(self, name: str) -> Campaign:
        campaign = self.site.campaigns.get(name)
        if campaign is None:
            raise web.HTTPNotFound(text="no such campaign")
        return campaign

    async def section(self, campaign: Campaign | None, run: WebRun | None = None) -> dict[str, Any]:
        """What the results section shows: a run's calls (or the whole campaign's)."""
        name = campaign.name if campaign is not None else run.campaign if run else ""
        state = self.syncs.state(name)
        ok, said = self.syncs.said(name)
        finished = run is None or run.finished
        outcomes = None
        if campaign is not None and finished:
            outcomes = await asyncio.to_thread(
                read_outcomes,
                campaign,
                run.report if run is not None else None,
                rate_after=self.settings.calls_per_hour_after,
            )
        called = texts.people(outcomes.people if outcomes else 0)
        title = f"Outcomes of the {called} {'this run' if run is not None else name} called"
        folder = reports_folder(campaign) if campaign is not None else None
        sheet = await asyncio.to_thread(reports.newest_results, folder) if folder else None
        answered = outcomes.counts.get(CallOutcome.ANSWERED, 0) if outcomes else 0
        optouts, optouts_total = [], 0
        if campaign is not None and outcomes is not None and outcomes.numbers:
            with contextlib.suppress(DialerError):  # an unreadable register: no list here
                optouts, optouts_total = await asyncio.to_thread(
                    run_optouts,
                    state_folder(campaign),
                    outcomes.numbers,
                    self.settings.run_optouts_shown,
                )
        return {
            "campaign": name,
            "run_id": run.id if run is not None else "",
            "finished": finished,
            "usable": campaign is not None,
            "outcomes": outcomes if outcomes and outcomes.people else None,
            "title": title,
            "chart": chart(outcomes, title) if outcomes and outcomes.people else "",
            "answer_rate": texts.answer_rate_text(
                outcomes.answer_rate if outcomes else None,
                answered,
                outcomes.known if outcomes else 0,
            ),
            "cost": money(outcomes.cost, campaign.currency if campaign else None)
            if outcomes
            else "",
            "calls_per_hour": (
                f"{outcomes.calls_per_hour:,.0f}"
                if outcomes and outcomes.calls_per_hour is not None
                else ""
            ),
            "calls_per_hour_later": texts.calls_per_hour_later(self.settings.calls_per_hour_after),
            "synced_at": (outcomes.synced_at if outcomes else None) or "",
            "syncing": state.running,
            "message": said,
            "ok": ok,
            "auto_every": int(self.settings.auto_sync_every),
            "has_sheet": sheet is not None,
            "pending_hint": texts.PENDING_HINT,
            "later": texts.RESULTS_AFTER_RUN,
            "no_outcomes": texts.NO_OUTCOMES,
            **self._said(outcomes, run is not None, optouts, optouts_total),
        }

    def _said(
        self,
        outcomes: Outcomes | None,
        of_run: bool,
        optouts: list[RunOptOut],
        optouts_total: int,
    ) -> dict[str, Any]:
        """What they said: the dispositions' chart (none when the ledger keeps none), and the
        people called who are on the opt-out register."""
        dispositions = outcomes.dispositions if outcomes is not None else None
        return {
            "said_kept": dispositions is not None,
            "said_title": texts.SAID_TITLE,
            "said_chart": (
                said_chart(dispositions, texts.SAID_TITLE, self.settings.dispositions_shown)
                if dispositions
                else ""
            ),
            "said_hint": texts.SAID_HINT,
            "no_said": texts.NO_SAID,
            "optouts": optouts,
            "optouts_title": texts.run_optouts_title(optouts_total, of_run),
            "optouts_more": (
                texts.run_optouts_more(len(optouts), optouts_total)
                if optouts_total > len(optouts)
                else ""
            ),
        }

    def _render(self, request: web.Request, template: str, res: dict[str, Any]) -> web.Response:
        return self.site.render(request, template, res=res)

    async def results_page(self, request: web.Request) -> web.Response:
        """Everyone the campaign called: reachable when the run that called them is gone
        from memory (a restart of `dialer serve`), from the history on the start page."""
        campaign = self._campaign(request.match_info["campaign"])
        res = await self.section(campaign)
        since = stamp(self.site.test_calls.clock() - timedelta(days=1))
        lines, placed, total = await asyncio.to_thread(
            read_test_calls, campaign, self.settings.test_calls_shown, since
        )
        res["test_calls"] = lines
        res["test_calls_spent"] = texts.test_calls_spent(placed, total)
        return self._render(request, "results.html", res)

    async def sync(self, request: web.Request) -> web.Response:
        """The Sync button (a form: back to the page), or app.js's automatic sync (`auto`, at
        most every `auto_sync_every`; `reply=fragment`: the section's HTML back)."""
        form = await request.post()
        check_csrf(request, str(form.get("csrf", "")))
        campaign = self._campaign(request.match_info["campaign"])
        run = self.jobs.runs.get(str(form.get("run", "")))
        if run is not None and run.campaign != campaign.name:
            run = None
        auto = form.get("auto") == "1"
        if not auto or (self.syncs.due(campaign.name) and (run is None or run.finished)):
            state = await self.syncs.sync(campaign)
            said = {"ok": state.ok, "updated": state.updated, "said": state.message, "auto": auto}
            await self.site.record(request, audit.SYNC, campaign.name, **said)
        if form.get("reply") == "fragment":
            return self._render(request, "results_part.html", await self.section(campaign, run))
        where = f"/runs/{run.id}" if run is not None else f"/campaigns/{campaign.name}/results"
        raise web.HTTPSeeOther(f"{where}#results")

    async def results_sheet(self, request: web.Request) -> web.StreamResponse:
        """The newest results sheet a sync wrote for the campaign (XLSX made on request)."""
        campaign = self._campaign(request.match_info["campaign"])
        if self.syncs.state(campaign.name).running:
            response = web.HTTPConflict(text=texts.SYNC_UNDER_WAY)
            response.headers["Retry-After"] = "5"
            raise response
        path = await asyncio.to_thread(reports.newest_results, reports_folder(campaign))
        if path is None:
            raise web.HTTPNotFound(text=texts.NO_RESULTS_SHEET)
        when = path.name.removesuffix(f"{RESULTS_SUFFIX}.csv")
        kind = request.match_info["kind"]
        await self.site.record(request, audit.DOWNLOAD, campaign.name, file=path.name, kind=kind)
        return await reports.download(path, kind, f"{campaign.name}_results_{when}")


def add_routes(app: web.Application, site: Site) -> None:
    pages = ResultPages(site)
    app[RESULTS] = pages
    app.router.add_get("/campaigns/{campaign}/results", pages.results_page)
    app.router.add_post("/campaigns/{campaign}/sync", pages.sync)
    app.router.add_get(r"/campaigns/{campaign}/results.{kind:csv|xlsx}", pages.results_sheet)
    app.on_shutdown.append(pages.syncs.stop_all)


RESULTS = web.AppKey("results", ResultPages)
