"""The check page: what `dialer validate` found in a sheet, in the user's terms (spreadsheet
row numbers, the tab read, warnings, who can be called now, the cost), and the launch it
confirms. The schedule form on it posts to `views.schedules`, which shows this page again
with its error (`check_page`).

    GET  /dry-runs/{id}[?error=...][&again=SCHEDULE]   the check; `again`: confirm a paused
                                                       daily schedule anew
    POST /dry-runs/{id}/launch                         the run: 303 /runs/{run id}
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import quote_plus

from aiohttp import web

from dialer.core.statuses import DialerError, Status
from dialer.sheets.countries import country_name
from dialer.team import audit
from dialer.web import texts
from dialer.web.auth import check_csrf
from dialer.web.services import reports
from dialer.web.services.jobs import AlreadyRunning, CheckStale, DryRun
from dialer.web.services.outcomes import estimate_cost
from dialer.web.services.page_audit import AuditUnavailable, cost_details, launch_details
from dialer.web.services.schedule_book import SCHEDULES
from dialer.web.services.schedule_times import local_zone, zone_name
from dialer.web.sheet_rows import excel_row
from dialer.web.site import Site
from dialer.web.views import columns


def add_routes(app: web.Application, site: Site) -> None:
    pages = CheckPages(site)
    app.router.add_get("/dry-runs/{id}", pages.dry_run_page)
    app.router.add_post("/dry-runs/{id}/launch", pages.launch)


class CheckPages:
    """The routes of a check: its page and its launch."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.jobs = site.jobs

    def _dry_run(self, request: web.Request) -> DryRun:
        dry = self.jobs.dry_runs.get(request.match_info["id"])
        if dry is None:
            raise web.HTTPNotFound(text="no such check")
        return dry

    async def dry_run_page(self, request: web.Request) -> web.Response:
        dry = self._dry_run(request)
        error = request.query.get("error", "")[: self.site.settings.error_text_chars]
        extra: dict[str, Any] = {}
        book = request.app.get(SCHEDULES)
        again = book.again_form(request.query.get("again", "")) if book is not None else None
        if again is not None:  # confirming a paused schedule
            extra = {"schedule_form": again, "notice": texts.SCHEDULE_CONFIRM_AGAIN}
        return await check_page(
            self.site, request, dry, error=error, stale=await self.jobs.why_not(dry), **extra
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
            entry = launch_details(dry)  # what the person confirmed, before the run starts
            run = await self.jobs.launch(
                dry, lambda: self.site.must_record(request, audit.LAUNCH, dry.campaign, **entry)
            )
        except AuditUnavailable as exc:  # no run the trail does not hold
            return await check_page(self.site, request, dry, error=str(exc), status=503)
        except AlreadyRunning:
            return await check_page(
                self.site, request, dry, error=texts.launch_busy(dry.campaign), status=409
            )
        except CheckStale as exc:
            return await check_page(
                self.site,
                request,
                dry,
                error=f"{texts.NOT_LAUNCHED} {exc}",
                stale=str(exc),  # the reason `launch` already found, not a second hashing
                status=409,
            )
        except DialerError as exc:
            return await check_page(
                self.site, request, dry, error=f"{texts.NOT_LAUNCHED} {exc}", status=400
            )
        raise web.HTTPSeeOther(f"/runs/{run.id}")


async def check_page(
    site: Site,
    request: web.Request,
    dry: DryRun,
    *,
    error: str = "",
    stale: str = "",
    status: int = 200,
    **extra: Any,
) -> web.Response:
    """The check page of `dry`; `extra` goes to the template as it is (the schedule form as
    typed, a notice)."""
    settings = site.settings
    counts = dry.summary.get("counts", {})
    problems, total = await asyncio.to_thread(
        reports.problem_rows, dry.report, settings.problem_rows_shown
    )
    campaign = None
    with contextlib.suppress(DialerError):
        campaign = site.campaigns.load(dry.campaign_path)
    ready = counts.get(Status.READY, 0)
    shown = _in_user_terms(site, dry, problems, dry.summary.get("samples", []))
    outside = next(
        (p.get("reason", "") for p in problems if p.get("status") == Status.OUTSIDE_WINDOW),
        "",
    )
    book = request.app.get(SCHEDULES)
    cost = await asyncio.to_thread(estimate_cost, campaign, ready)
    dry.cost = cost_details(cost)  # what the person saw, for the launch's audit entry
    return site.render(
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
        cost=cost,
        stale=stale,
        run=site.jobs.runs.get(dry.run_id or ""),
        error=error,
        # The schedule form's zone until the browser says its own: the server's (cron's).
        server_zone=zone_name(book.server_zone if book is not None else local_zone()),
        **extra,
        **shown,
    )


def _in_user_terms(
    site: Site, dry: DryRun, problems: list[dict[str, str]], samples: list[dict[str, Any]]
) -> dict[str, Any]:
    """What the check page shows besides the counts: spreadsheet row numbers (header = row
    1, as Excel shows them, not data-row numbers), the check's warnings and reasons in the
    page's words, the tab read, and the way back to the column page for this very upload."""
    offset = int(dry.summary.get("header_row", 1) or 1)
    kept = site.uploads.kept_for(dry.upload, dry.campaign)
    shown_problems = [excel_row(p, offset) for p in problems]
    for row in shown_problems:
        row["status_words"] = texts.check_words(str(row.get("status", "")))
        row["reason"] = texts.page_reason(str(row.get("reason", "")))
    shown_samples = [excel_row(s, offset) for s in samples]
    for sample in shown_samples:
        code = str(sample.get("country") or "")
        sample["country_name"] = country_name(code) if code and code != "??" else ""
    return {
        "problems": shown_problems,
        "samples": shown_samples,
        "warnings": [texts.page_warning(str(w)) for w in dry.summary.get("warnings", [])],
        "tab": dry.summary.get("tab"),
        "columns_url": columns.page_url(kept) if kept else "",
    }
