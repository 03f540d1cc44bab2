"""The column page (SPEC 11): after an upload, every column the campaign needs (phone, id,
time zone, each template variable, and the sheet's other phone columns and its country
column, SPEC 4.3a) listed at once, each with a menu of the sheet's own headers pre-chosen,
a default value for template variables, and a tab menu for workbooks; saved in the campaign
as `[contacts] columns` / `defaults` (and `sheet`, `phone_column`, `country_column`), then
checked.

    GET  /uploads/{id}/columns[?tab=Notes]   the page; the upload's name is shown, never re-picked
    POST /uploads/{id}/columns               save the choice, check: 303 /dry-runs/{check id}

An upload whose columns all resolve goes straight to its check (`start`); one that does not,
or whose check fails, comes here with the file still chosen (`render_page`). The fields and
their rules are `services.column_fields`; the sheet is read by a memory-capped child
(`probe_upload`), like a check: a hostile workbook fails that child, not the server.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from aiohttp import web

from dialer.campaign.model import Campaign
from dialer.core.statuses import DialerError
from dialer.team import audit
from dialer.web import texts
from dialer.web.auth import check_csrf
from dialer.web.children.sheet_probe import Probe
from dialer.web.services.child_processes import probe_upload
from dialer.web.services.column_fields import (
    ColumnField,
    examples,
    judge,
    page_fields,
    posted_fields,
    save_choice,
)
from dialer.web.services.jobs import ChecksBusy
from dialer.web.services.page_audit import check_details, file_change
from dialer.web.services.uploads import Kept
from dialer.web.site import Site


def add_routes(app: web.Application, site: Site) -> None:
    matching = ColumnPages(site)
    app.router.add_get("/uploads/{id}/columns", matching.page)
    app.router.add_post("/uploads/{id}/columns", matching.save)


def page_url(kept: Kept, tab: str | None = None) -> str:
    url = f"/uploads/{kept.id}/columns"
    return f"{url}?tab={quote(tab)}" if tab else url


class ColumnPages:
    """The routes of the column page."""

    def __init__(self, site: Site) -> None:
        self.site = site

    def _kept(self, request: web.Request) -> tuple[Kept, Campaign]:
        kept = self.site.uploads.kept(request.match_info["id"])
        if kept is None:
            raise web.HTTPNotFound(text=texts.UPLOAD_GONE)
        campaign = self.site.campaigns.get(kept.campaign)
        if campaign is None:
            raise web.HTTPNotFound(text=f"campaign {kept.campaign} no longer loads")
        return kept, campaign

    async def page(self, request: web.Request) -> web.Response:
        kept, campaign = self._kept(request)
        tab = request.query.get("tab") or campaign.contacts.sheet
        try:
            async with self.site.jobs.check_slot():
                probe = await probe_upload(self.site.settings, kept, tab)
        except ChecksBusy:
            return _busy(self.site)
        except DialerError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        return render_page(self.site, request, kept, campaign, probe)

    async def save(self, request: web.Request) -> web.Response:
        form = await request.post()
        check_csrf(request, str(form.get("csrf", "")))
        kept, campaign = self._kept(request)
        tab = str(form.get("tab", "")) or None
        uploads = self.site.uploads
        uploads.in_use.add(kept.path)  # not pruned while it is matched and checked
        try:
            async with self.site.jobs.check_slot():
                return await self._save(request, kept, campaign, tab, form)
        except ChecksBusy:
            return _busy(self.site)
        finally:
            uploads.in_use.discard(kept.path)

    async def _save(
        self, request: web.Request, kept: Kept, campaign: Campaign, tab: str | None, form: Any
    ) -> web.Response:
        try:
            probe = await probe_upload(self.site.settings, kept, tab)
        except DialerError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        fields = posted_fields(campaign, form)
        for f in fields:
            f.chosen = str(form.get(f"column:{f.key}", "")).strip()
            f.default = " ".join(str(form.get(f"default:{f.key}", "")).split())
        tab_error = judge(fields, probe, tab)
        if tab_error or any(f.error for f in fields):
            return render_page(
                self.site,
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
            before = campaign.source_sha256
            saved = await asyncio.to_thread(save_choice, campaign, fields, probe)
            self.site.remember_campaign(request, campaign.name)
            if saved is not None:  # the column choice was written into the campaign file
                campaign = self.site.campaigns.load(saved)  # as the CLI now reads it
                change = file_change(before, campaign.source_sha256, "column page")
                await self.site.record(request, audit.CAMPAIGN_EDITED, campaign.name, **change)
            dry = await self.site.jobs.check(campaign, kept.path, kept.name)
        except DialerError as exc:
            message = str(exc)
            for f in fields:
                if any(f"'contacts.{t}.{f.name}'" in message for t in ("columns", "defaults")):
                    f.error = message
            return render_page(
                self.site,
                request,
                kept,
                campaign,
                probe,
                fields=fields,
                error=message,
                status=400,
            )
        await self.site.record(request, audit.CHECK, dry.campaign, **check_details(dry))
        raise web.HTTPSeeOther(f"/dry-runs/{dry.id}")


def render_page(
    site: Site,
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
        fields = page_fields(campaign, probe)
    if probe.asked_tab_missing and not tab_error:
        tab_error = texts.tab_missing(campaign.contacts.sheet or "")
    return site.render(
        request,
        "columns.html",
        status,
        kept=kept,
        campaign=campaign,
        probe=probe,
        fields=fields,
        examples=examples(probe),
        not_in_sheet=texts.NOT_IN_SHEET,
        tab_error=tab_error,
        error=error,
    )


def _busy(site: Site) -> web.Response:
    response = web.Response(text=texts.checks_busy(site.settings), status=503)
    response.headers["Retry-After"] = str(site.settings.busy_retry_after)
    return response
