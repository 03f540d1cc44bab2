"""Which role each route of the page needs, in one table, and the middleware that holds every
request to it (SPEC 13: viewer < caller < editor < admin).

    ROUTES[("POST", "/dry-runs/{id}/launch")]     # Role.CALLER
    needed("HEAD", "/runs/{id}")                  # Role.VIEWER (HEAD is GET's)

A route the table does not name is refused to everyone (fail closed): a new route is closed
until someone decides who may use it. A refused request gets the 403 page naming the role it
needs and the person's own. A viewer's page is also passed through `mask_digits`, the safety
net under the masking each page does itself: no run of 7 or more digits reaches a viewer.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from dialer.core.masking import mask_phone, mask_text
from dialer.team.roles import Role
from dialer.web.auth import session_of

PUBLIC = None  # the role of a route anyone may open: the login form and what it needs
V, C, E, A = Role.VIEWER, Role.CALLER, Role.EDITOR, Role.ADMIN

# (method, route pattern as aiohttp names it) -> the least role that may use it.
ROUTES: dict[tuple[str, str], Role | None] = {
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("GET", "/app.js"): PUBLIC,
    ("GET", "/app.css"): PUBLIC,
    ("GET", "/favicon.ico"): PUBLIC,
    ("POST", "/logout"): V,
    # Campaigns, checks, runs, results, charts, schedules, the register: seen by everyone.
    ("GET", "/"): V,
    ("GET", "/dry-runs/{id}"): V,
    ("GET", "/runs/{id}"): V,
    ("GET", "/runs/{id}/events"): V,
    ("GET", "/campaigns/{campaign}/results"): V,
    ("GET", "/schedules"): V,
    ("GET", "/optouts"): V,
    # Upload, check, preview, test call, launch, stop, resume, schedule, sync, downloads.
    ("POST", "/dry-runs"): C,
    ("GET", "/uploads/{id}"): C,
    ("POST", "/uploads/{id}"): C,
    ("POST", "/dry-runs/{id}/launch"): C,
    ("POST", "/runs/{id}/stop"): C,
    ("POST", "/runs/{id}/resume"): C,
    ("POST", "/campaigns/preview"): C,
    ("POST", "/test-call"): C,
    ("POST", "/dry-runs/{id}/schedule"): C,
    ("POST", "/schedules/{id}/remove"): C,
    ("POST", "/schedules/{id}/check"): C,
    ("POST", "/campaigns/{campaign}/sync"): C,
    ("GET", "/runs/{id}/report.{kind}"): C,
    ("GET", "/reports/{campaign}/{name}"): C,
    ("GET", "/campaigns/{campaign}/results.{kind}"): C,
    # Campaigns made and edited, columns matched, opt-outs added and imported.
    ("GET", "/campaigns/new"): E,
    ("POST", "/campaigns/new"): E,
    ("GET", "/campaigns/{name}/edit"): E,
    ("POST", "/campaigns/{name}/edit"): E,
    ("GET", "/agents"): E,
    ("GET", "/uploads/{id}/columns"): E,
    ("POST", "/uploads/{id}/columns"): E,
    ("POST", "/optouts/add"): E,
    ("POST", "/optouts/import"): E,
    # Opt-outs removed, people managed, the audit trail read and exported.
    ("POST", "/optouts/remove"): A,
    ("GET", "/people"): A,
    ("POST", "/people/add"): A,
    ("POST", "/people/role"): A,
    ("POST", "/people/password"): A,
    ("POST", "/people/remove"): A,
    ("GET", "/audit"): A,
    ("GET", "/audit.csv"): A,
}
NOBODY = Role.ADMIN + 1  # what a route missing from the table needs: more than anyone has


def needed(method: str, pattern: str) -> Role | int | None:
    """The role `method pattern` needs; None for a public route, NOBODY for one not listed."""
    return ROUTES.get(("GET" if method == "HEAD" else method, pattern), NOBODY)


def route_of(request: web.Request) -> tuple[str, str] | None:
    """(method, pattern) of the route this request matched; None when none did (a 404)."""
    route = request.match_info.route
    if route.resource is None:
        return None
    return route.method, route.resource.canonical


def public_paths() -> frozenset[str]:
    """The paths the login middleware lets through without a session."""
    return frozenset(path for (_m, path), role in ROUTES.items() if role is PUBLIC)


_DIGITS = re.compile(r"\d{7,}")


def mask_digits(text: str, keep: str = "") -> str:
    """`text` with every phone-like number and every run of 7+ digits masked; `keep` (the
    session's CSRF token, which may hold such a run by chance) is left as it is."""
    parts = text.split(keep) if keep else [text]
    return keep.join(_DIGITS.sub(lambda m: mask_phone(m.group(0)), mask_text(p)) for p in parts)


def role_of(request: web.Request) -> Role | None:
    """The role of the person this request is from (None on public pages)."""
    session = session_of(request)
    return session.role if session is not None else None


def middleware(refuse: Any) -> Any:
    """Every request with a session is held to the table; `refuse(request, needed, role)`
    answers one refused. A viewer's HTML and JSON answers pass through `mask_digits`."""

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        session = session_of(request)
        matched = route_of(request)
        if matched is None:
            return await handler(request)
        need = needed(*matched)
        if need is PUBLIC:
            return await handler(request)
        if session is None or session.role < need:
            return refuse(request, need, session.role if session else None)
        response = await handler(request)
        if session.role == Role.VIEWER:
            _mask_response(response, session.csrf)
        return response

    return guard


def _mask_response(response: web.StreamResponse, csrf: str) -> None:
    textual = response.content_type in ("text/html", "application/json", "text/plain")
    if textual and isinstance(response, web.Response) and response.text is not None:
        response.text = mask_digits(response.text, csrf)
