"""/audit: the team's audit trail for admins, newest first, filtered and paged, whether its
chain still verifies, and /audit.csv, the filtered entries as the CLI's `dialer audit --out`
writes them. Which role may see it is the role table's (admin only).

    GET /audit?since=2026-12-01&who=alice&campaign=spring&action=launch&page=2
    GET /audit.csv?since=2026-12-01&who=alice                 the same entries, all of them
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from dialer.core.statuses import DialerError
from dialer.team.audit import ACTIONS, CSV_COLUMNS, AuditEntry, AuditTrail, csv_row
from dialer.web import texts
from dialer.web.site import Site

# The columns of /audit.csv, as `dialer audit --out` writes them.
FILTERS = ("since", "who", "campaign", "action")


def add_routes(app: web.Application, site: Site) -> None:
    pages = AuditPages(site)
    app.router.add_get("/audit", pages.page)
    app.router.add_get("/audit.csv", pages.export)


@dataclass(frozen=True, slots=True)
class Filter:
    """What /audit was asked to show; `error` says which filter could not be read."""

    since: datetime | None
    who: str
    campaign: str
    action: str
    error: str = ""

    @classmethod
    def of(cls, query: Any) -> Filter:
        typed = {k: str(query.get(k, "")).strip()[:100] for k in FILTERS}
        since, error = None, ""
        if typed["since"]:
            try:
                since = datetime.combine(date.fromisoformat(typed["since"]), datetime.min.time())
                since = since.replace(tzinfo=UTC)
            except ValueError:
                error = texts.audit_bad_since(typed["since"])
        action = typed["action"] if typed["action"] in ACTIONS else ""
        return cls(since, typed["who"], typed["campaign"], action, error)

    def entries(self, trail: AuditTrail) -> list[AuditEntry]:
        """The matching entries, newest first. Blocking: run in a thread."""
        found = trail.entries(self.since, self.who or None, self.campaign or None)
        return [e for e in reversed(found) if not self.action or e.action == self.action]

    def query(self, **more: Any) -> str:
        given = {
            "since": self.since.date().isoformat() if self.since else "",
            "who": self.who,
            "campaign": self.campaign,
            "action": self.action,
            **more,
        }
        return urlencode({k: v for k, v in given.items() if v})


class AuditPages:
    """The routes of the audit trail's page."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.trail = site.audit

    async def page(self, request: web.Request) -> web.Response:
        wanted = Filter.of(request.query)
        try:
            page = max(1, int(request.query.get("page", "1")))
        except ValueError:
            page = 1
        try:
            found, broken = await asyncio.to_thread(self._read, wanted)
        except DialerError as exc:  # the file cannot be read: said, not a 500
            return self.site.render(request, "audit.html", 503, wanted=wanted, error=str(exc))
        size = self.site.settings.audit_page_entries
        shown = found[(page - 1) * size : page * size]
        return self.site.render(
            request,
            "audit.html",
            200 if not wanted.error else 400,
            entries=[_shown(e) for e in shown],
            total=len(found),
            page=page,
            newer=wanted.query(page=page - 1) if page > 1 else None,
            older=wanted.query(page=page + 1) if page * size < len(found) else None,
            csv_query=wanted.query(),
            wanted=wanted,
            actions=ACTIONS,
            chain=_chain_words(broken),
            intact=broken is None,
            error=wanted.error,
        )

    async def export(self, request: web.Request) -> web.Response:
        wanted = Filter.of(request.query)
        if wanted.error:
            raise web.HTTPBadRequest(text=wanted.error)
        try:
            found = await asyncio.to_thread(wanted.entries, self.trail)
        except DialerError as exc:
            raise web.HTTPServiceUnavailable(text=str(exc)) from None
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(csv_row(e) for e in reversed(found))  # oldest first, as the CLI's
        name = f"audit_{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.csv"
        return web.Response(
            text=text.getvalue(),
            content_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    def _read(self, wanted: Filter) -> tuple[list[AuditEntry], AuditEntry | int | None]:
        return wanted.entries(self.trail), self.trail.verify()


def _shown(entry: AuditEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "time": entry.time,
        "who": entry.who,
        "action": entry.action,
        "campaign": entry.campaign,
        "details": json.dumps(entry.details, ensure_ascii=False, sort_keys=True),
    }


def _chain_words(broken: AuditEntry | int | None) -> str:
    """What `verify` found, in a sentence."""
    if broken is None:
        return texts.AUDIT_CHAIN_INTACT
    if isinstance(broken, int):
        return texts.audit_chain_removed(broken)
    return texts.audit_chain_broken(broken.seq, broken.time, broken.action)
