"""What a route may use: the page's parts, built once per server, and the one way a page is
rendered. Every module under `views/` takes a `Site`; none of them knows how the application
is assembled (that is `app.py`, above them all).

    site = Site(root, token, os.environ)
    site.jobs, site.uploads, site.campaigns      # the services (dialer.web.services)
    await site.record(request, audit.STOP, "spring", run=run.id)   # the audit trail
    return site.render(request, "index.html", campaigns=...)

Sessions, checks and runs live in memory; reports and uploads on disk under `root`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiohttp import web
from jinja2 import Environment, PackageLoader, pass_context, select_autoescape
from jinja2.runtime import Context

from dialer.campaign.parse import load_campaign
from dialer.core.clock import Clock, system_clock
from dialer.core.masking import mask_phone
from dialer.team.audit import AuditTrail
from dialer.team.people import People
from dialer.team.roles import Role
from dialer.web.auth import Auth, session_of
from dialer.web.services import reports
from dialer.web.services.campaigns import CampaignShelf, LastUsed, Loader
from dialer.web.services.jobs import Jobs
from dialer.web.services.page_audit import PageAudit
from dialer.web.services.test_calls import TestCalls
from dialer.web.services.uploads import Uploads
from dialer.web.settings import DEFAULTS, Settings


class Site:
    """The page's parts. `load` reads a campaign file (tests count its calls); `settings`
    holds every limit; `clock` is what test calls are judged by (their hours, their caps)."""

    def __init__(
        self,
        root: Path,
        token: str,
        environ: Mapping[str, str] | None = None,
        *,
        https: bool = False,
        settings: Settings = DEFAULTS,
        load: Loader = load_campaign,
        clock: Clock = system_clock,
    ) -> None:
        self.root = root.resolve()
        self.settings = settings
        self.people = People(self.root / "state")  # the CLI's `dialer users` shares every rule
        self.auth = Auth(token, settings, people=self.people, https=https)
        self.audit = AuditTrail(self.root / "state")  # who did what, for `dialer audit`
        self.campaigns = CampaignShelf(self.root / "campaigns", load)
        self.last_used = LastUsed()  # per session: the campaign preselected for a new sheet
        self.uploads = Uploads(self.root / "uploads", settings)
        self.jobs = Jobs(os.environ if environ is None else environ, settings, self.campaigns.load)
        self.test_calls = TestCalls(settings, clock)  # "call me first": its caps and rules
        self.recorder = PageAudit(self.audit)  # the page's entries in it, never raising
        self.templates = Environment(
            loader=PackageLoader("dialer.web", "templates"),
            autoescape=select_autoescape(["html"]),
        )
        self.templates.filters["number"] = number_shown

    def render(
        self, request: web.Request, name: str, status: int = 200, **context: Any
    ) -> web.Response:
        """The template `name` as this request's page, with its session's CSRF token and the
        person's name and role (what the page offers follows the role)."""
        session = session_of(request)
        html = self.templates.get_template(name).render(
            csrf=session.csrf if session else "",
            role=session.role if session else None,
            me=session.name if session else "",
            Role=Role,
            **context,
        )
        return web.Response(text=html, content_type="text/html", status=status)

    async def prune(self) -> None:
        """Delete old uploads and check reports by the same rules, and the checks that
        relied on them."""
        deleted = await self.uploads.prune(also_keep=self.jobs.running_uploads())
        folder = self.root / "reports"
        deleted |= set(await asyncio.to_thread(reports.prune_check_reports, folder, self.settings))
        self.jobs.forget_checks_of(deleted)

    async def record(
        self, request: web.Request, action: str, campaign: str = "", **details: Any
    ) -> bool:
        """An audit entry of what this request's person did; never raises (False, logged once,
        when the trail cannot be written): the action goes on."""
        return await self.recorder.record(who_acted(request), action, campaign, **details)

    async def must_record(
        self, request: web.Request, action: str, campaign: str = "", **details: Any
    ) -> None:
        """As `record`, but AuditUnavailable when the trail cannot be written: for a launch,
        which must not start calls the trail does not hold."""
        await self.recorder.must_record(who_acted(request), action, campaign, **details)

    def remember_campaign(self, request: web.Request, name: str) -> None:
        """`name` is the campaign this request's session used last."""
        self.last_used.remember(_session_key(request), name)

    def last_campaign(self, request: web.Request) -> str:
        """The campaign this request's session created, saved or used last ("" for none)."""
        return self.last_used.of(_session_key(request))


def who_acted(request: web.Request) -> str:
    """Who a request acts for in the audit trail: its session's person."""
    session = session_of(request)
    return session.who if session is not None else "page"


@pass_context
def number_shown(context: Context, value: object) -> object:
    """A phone number as this page shows it: whole, but masked for a viewer (SPEC 13)."""
    if context.get("role") == Role.VIEWER and isinstance(value, str) and value.strip():
        return mask_phone(value)
    return value


def _session_key(request: web.Request) -> str:
    session = session_of(request)
    return session.csrf if session is not None else ""
