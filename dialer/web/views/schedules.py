"""/schedules and the schedule form of a check: make a schedule from a check, remove one,
check a paused one again, and resume a stopped run (a new check of its sheet). The rules of
firing are the book's (`services.schedule_book`)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote_plus
from zoneinfo import ZoneInfo

from aiohttp import web

from dialer.core.statuses import DialerError, Status
from dialer.team import audit
from dialer.web import texts
from dialer.web.auth import check_csrf
from dialer.web.services.jobs import ChecksBusy
from dialer.web.services.page_audit import check_details, schedule_details
from dialer.web.services.schedule_book import SCHEDULES, Schedules, SheetChanged
from dialer.web.services.schedule_entry import ScheduleForm
from dialer.web.services.schedule_times import at_text, zone_name
from dialer.web.site import Site
from dialer.web.views.checks import check_page


def add_routes(app: web.Application, site: Site) -> None:
    """/schedules and the schedule form of a check; the loop starts and stops with the app."""
    book = Schedules(site.root, site.jobs, site.campaigns, site.settings, audit=site.recorder)
    app[SCHEDULES] = book
    handlers = SchedulePages(site, book)
    app.router.add_get("/schedules", handlers.page)
    app.router.add_post("/dry-runs/{id}/schedule", handlers.add)
    app.router.add_post("/schedules/{id}/remove", handlers.remove)
    app.router.add_post("/schedules/{id}/check", handlers.check_again)
    app.router.add_post("/runs/{id}/resume", handlers.resume)
    app.on_startup.append(book.start)
    app.on_shutdown.append(book.stop)


class SchedulePages:
    """The routes of schedules, over the server's book."""

    def __init__(self, site: Site, book: Schedules) -> None:
        self.site = site
        self.book = book

    async def page(self, request: web.Request) -> web.Response:
        await self.book.look_for_changes()  # an edit just saved shows as paused at once
        now = self.book.clock()
        rows = [
            {
                "s": s,
                "next": at_text(n.astimezone(ZoneInfo(s.zone))) if (n := s.next_time(now)) else "",
                "cron": self.book.cron_line(s, now),
                "run": self.site.jobs.runs.get(s.run_id),
                "state_words": texts.SCHEDULE_STATES.get(s.state, s.state),
            }
            for s in self.book.all()
        ]
        return self.site.render(
            request,
            "schedules.html",
            rows=rows,
            server_zone=zone_name(self.book.server_zone),
            cron_hint=texts.cron_hint(zone_name(self.book.server_zone)),
            error=self.book.problem,
        )

    async def add(self, request: web.Request) -> web.Response:
        form = await request.post()
        check_csrf(request, str(form.get("csrf", "")))
        dry = self.site.jobs.dry_runs.get(request.match_info["id"])
        if dry is None:
            raise web.HTTPNotFound(text="no such check")
        typed = ScheduleForm.of(form)
        ready = dry.summary.get("counts", {}).get(Status.READY, 0)
        error = self.book.validate(typed, ready, self.book.clock())
        if not error and (stale := await self.site.jobs.stale(dry)):
            error = f"Not scheduled. {stale}"
        if not error:
            try:
                schedule = await self.book.add(dry, typed)
            except DialerError as exc:
                error = str(exc)
            except OSError as exc:
                error = f"The schedule could not be saved: {exc.strerror or exc}"
        if error:
            return await check_page(
                self.site, request, dry, error=error, status=400, schedule_form=typed
            )
        action = audit.SCHEDULE_CHANGED if typed.replaces else audit.SCHEDULE_CREATED
        await self.site.record(
            request, action, dry.campaign, **schedule_details(schedule, dry, typed.replaces)
        )
        raise web.HTTPSeeOther(f"/schedules#schedule-{schedule.id}")

    async def remove(self, request: web.Request) -> web.Response:
        form = await request.post()
        check_csrf(request, str(form.get("csrf", "")))
        if gone := self.book.get(request.match_info["id"]):
            await self.site.record(request, audit.SCHEDULE_DELETED, gone.campaign, schedule=gone.id)
        await self.book.remove(request.match_info["id"])
        raise web.HTTPSeeOther("/schedules")

    async def check_again(self, request: web.Request) -> web.Response:
        """A paused daily schedule: a new check of what it calls from, then the check page
        with its schedule form filled in to confirm it again (the paused one replaced)."""
        form = await request.post()
        check_csrf(request, str(form.get("csrf", "")))
        schedule = self.book.get(request.match_info["id"])
        if schedule is None or not schedule.paused:
            raise web.HTTPSeeOther("/schedules")
        back = f"/schedules#schedule-{schedule.id}"
        try:
            campaign = self.site.campaigns.load(Path(schedule.campaign_path))
            if schedule.sheet and not Path(schedule.sheet).is_file():
                raise SheetChanged(texts.sheet_deleted(self.site.settings))
            dry = await self.book.check_today(campaign, schedule)
        except ChecksBusy:
            schedule.note = texts.checks_busy(self.site.settings)
            raise web.HTTPSeeOther(back) from None
        except DialerError as exc:  # said beside "paused" until the next try
            schedule.note = f"not checked: {exc}"[: self.site.settings.error_text_chars]
            raise web.HTTPSeeOther(back) from None
        await self.site.record(request, audit.CHECK, dry.campaign, **check_details(dry))
        raise web.HTTPSeeOther(f"/dry-runs/{dry.id}?again={schedule.id}")

    async def resume(self, request: web.Request) -> web.Response:
        """ "Resume the N not called": a new check of the same sheet, then its launch
        confirmation (the ledger knows who was called, so the check shows only the rest)."""
        form = await request.post()
        check_csrf(request, str(form.get("csrf", "")))
        run = self.site.jobs.runs.get(request.match_info["id"])
        if run is None:
            raise web.HTTPNotFound(text="no such run")
        try:
            campaign = self.site.campaigns.load(run.campaign_path or Path())
            if not run.upload.is_file():
                raise SheetChanged(texts.sheet_deleted(self.site.settings))
            async with self.site.jobs.check_slot():
                dry = await self.site.jobs.check(campaign, run.upload, run.sheet_name)
        except ChecksBusy:
            error = texts.checks_busy(self.site.settings)
            raise web.HTTPSeeOther(f"/runs/{run.id}?error={quote_plus(error)}") from None
        except DialerError as exc:
            error = str(exc)[: self.site.settings.error_text_chars]
            raise web.HTTPSeeOther(f"/runs/{run.id}?error={quote_plus(error)}") from None
        await self.site.record(request, audit.RESUME, run.campaign, run=run.id)
        await self.site.record(request, audit.CHECK, dry.campaign, **check_details(dry))
        raise web.HTTPSeeOther(f"/dry-runs/{dry.id}")
