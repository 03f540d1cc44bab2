"""The start page and uploads: the campaigns, the history of runs and checks, the upload
form; a sheet uploaded alone gets its own page (choose a campaign there), a sheet with a
campaign goes on to its columns or its check."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from dialer.campaign.model import Campaign
from dialer.core.statuses import DialerError
from dialer.team import audit
from dialer.web import texts
from dialer.web.auth import check_csrf
from dialer.web.services import reports
from dialer.web.services.child_processes import probe_upload
from dialer.web.services.column_fields import needs_matching
from dialer.web.services.jobs import ChecksBusy
from dialer.web.services.page_audit import check_details, sheet_details
from dialer.web.services.uploads import BadUpload, Kept, UploadForm, UploadTooLarge
from dialer.web.settings import MB
from dialer.web.site import Site
from dialer.web.views import columns


def add_routes(app: web.Application, site: Site, upload_route: str) -> None:
    pages = StartPages(site)
    app.router.add_get("/", pages.index)
    app.router.add_post(upload_route, pages.upload)
    app.router.add_get("/uploads/{id}", pages.upload_page)
    app.router.add_post("/uploads/{id}", pages.use_upload)


class StartPages:
    """The routes of the start page and of uploads."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.settings = site.settings
        self.jobs = site.jobs

    async def index(self, request: web.Request, error: str = "", status: int = 200) -> web.Response:
        found = self.site.campaigns.all()
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
        past = reports.past_runs(self.site.root / "reports", found, self.settings.past_runs_shown)
        return self.site.render(
            request,
            "index.html",
            status,
            campaigns=campaigns,
            active=self.jobs.running(),
            past=past,
            limit_mb=self.settings.upload_limit // MB,
            last=self.site.last_campaign(request),
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
        uploads = self.site.uploads
        form: UploadForm | None = None
        kept = False
        try:
            form = await uploads.receive(request, lambda given: check_csrf(request, given))
            if form.sheet is None:
                return await self.index(request, texts.CHOOSE_BOTH, 400)
            details = await sheet_details(form.sheet, form.sheet_name)
            await self.site.record(request, audit.UPLOAD, form.campaign, **details)
            await self.site.prune()  # room for this one; never the sheets in use
            if not form.campaign:
                named = uploads.keep(form.sheet, form.sheet_name, "")
                kept = True
                raise web.HTTPSeeOther(f"/uploads/{named.id}")
            campaign = self.site.campaigns.get(form.campaign)
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
        self.site.remember_campaign(request, campaign.name)
        named = self.site.uploads.keep(sheet, sheet_name, campaign.name)
        probe = await probe_upload(self.settings, named, campaign.contacts.sheet)
        if needs_matching(campaign, named, probe):
            raise web.HTTPSeeOther(columns.page_url(named))
        try:
            dry = await self.jobs.check(campaign, sheet, sheet_name)
        except DialerError as exc:  # still chosen: the column page shows it with the error
            return columns.render_page(
                self.site, request, named, campaign, probe, error=str(exc), status=400
            )
        await self.site.record(request, audit.CHECK, dry.campaign, **check_details(dry))
        raise web.HTTPSeeOther(f"/dry-runs/{dry.id}")

    def _upload_of(self, request: web.Request) -> Kept:
        kept = self.site.uploads.kept(request.match_info["id"])
        if kept is None:
            raise web.HTTPNotFound(text=texts.UPLOAD_GONE)
        return kept

    async def upload_page(
        self, request: web.Request, error: str = "", status: int = 200
    ) -> web.Response:
        """A sheet just uploaded: a new campaign from it, or an existing one (preselected:
        the one this session created, saved or used last; else none)."""
        kept = self._upload_of(request)
        found = self.site.campaigns.all()
        usable = [n for n, c in found.items() if isinstance(c, Campaign)]
        last = self.site.last_campaign(request)
        return self.site.render(
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
        campaign = self.site.campaigns.get(str(form.get("campaign", "")))
        if campaign is None:
            return await self.upload_page(request, texts.CHOOSE_CAMPAIGN, 400)
        uploads = self.site.uploads
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
