"""/people, an admin's: the people who may log in, and adding one, changing a role, setting a
new password and removing one (asked first). Every rule is the people store's
(`dialer.team.people.People`), the same as `dialer users`: a refusal is its one sentence.
Each change is written to the audit trail under the admin's name."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web

from dialer.core.statuses import UsageError
from dialer.team import audit
from dialer.team.people import MIN_PASSWORD_CHARS, Person
from dialer.team.roles import ROLE_NAMES, WHAT_EACH_MAY, Role, role_named
from dialer.web import texts
from dialer.web.auth import check_csrf, session_of
from dialer.web.site import Site


def add_routes(app: web.Application, site: Site) -> None:
    pages = PeoplePages(site)
    app.router.add_get("/people", pages.page)
    app.router.add_post("/people/add", pages.add)
    app.router.add_post("/people/role", pages.set_role)
    app.router.add_post("/people/password", pages.set_password)
    app.router.add_post("/people/remove", pages.remove)


class PeoplePages:
    """The routes of the people page."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.people = site.people

    async def page(self, request: web.Request, status: int = 200, **context: Any) -> web.Response:
        everyone = await asyncio.to_thread(self.people.all)
        return self.site.render(
            request,
            "people.html",
            status,
            everyone=everyone,
            roles=ROLE_NAMES,
            what_each_may=[(str(r), WHAT_EACH_MAY[r]) for r in Role],
            min_chars=MIN_PASSWORD_CHARS,
            **context,
        )

    async def _form(self, request: web.Request) -> dict[str, str]:
        form = await request.post()
        check_csrf(request, str(form.get("csrf", "")))
        return {k: str(v) for k, v in form.items() if isinstance(v, str)}

    async def _change(
        self,
        request: web.Request,
        change: Callable[[], Person | None],
        action: str,
        notice: Callable[[], str],
        **details: object,
    ) -> web.Response:
        """Make `change`; a refusal is the page again with its sentence (400), a change is
        written to the audit trail and shown as `notice`."""
        try:
            await asyncio.to_thread(change)
        except UsageError as exc:
            return await self.page(request, 400, error=str(exc))
        session = session_of(request)
        who = session.who if session is not None else "?"
        await asyncio.to_thread(self.site.audit.append, who, action, **details)
        return await self.page(request, notice=notice())

    async def add(self, request: web.Request) -> web.Response:
        form = await self._form(request)
        name, password = form.get("name", "").strip(), form.get("password", "")
        if password != form.get("password2", ""):
            return await self.page(request, 400, error=texts.PASSWORDS_DIFFER, typed=name)
        try:
            role = role_named(form.get("role", ""))
        except UsageError as exc:
            return await self.page(request, 400, error=str(exc), typed=name)
        return await self._change(
            request,
            lambda: self.people.add(name, role, password),
            audit.PERSON_ADDED,
            lambda: texts.person_added(name, role),
            name=name,
            role=str(role),
        )

    async def set_role(self, request: web.Request) -> web.Response:
        form = await self._form(request)
        name = form.get("name", "")
        try:
            role = role_named(form.get("role", ""))
        except UsageError as exc:
            return await self.page(request, 400, error=str(exc))
        return await self._change(
            request,
            lambda: self.people.set_role(name, role),
            audit.PERSON_ROLE,
            lambda: texts.role_changed(name, role),
            name=name,
            role=str(role),
        )

    async def set_password(self, request: web.Request) -> web.Response:
        form = await self._form(request)
        name, password = form.get("name", ""), form.get("password", "")
        if password != form.get("password2", ""):
            return await self.page(request, 400, error=texts.PASSWORDS_DIFFER)
        return await self._change(
            request,
            lambda: self.people.set_password(name, password),
            audit.PERSON_PASSWORD,
            lambda: texts.password_set(name),
            name=name,
        )

    async def remove(self, request: web.Request) -> web.Response:
        """Asked first: the page again with the question; removed only with confirm=yes."""
        form = await self._form(request)
        name = form.get("name", "")
        if form.get("confirm") != "yes":
            return await self.page(request, ask_remove=name, question=texts.remove_ask(name))
        person = await asyncio.to_thread(self.people.get, name)
        return await self._change(
            request,
            lambda: self.people.remove(name),
            audit.PERSON_REMOVED,
            lambda: texts.person_removed(name),
            name=name,
            role=str(person.role) if person else "",
        )
