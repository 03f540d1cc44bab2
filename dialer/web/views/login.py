"""Logging in and out: the login form, a name and password (or, while nobody is a person, the
token) checked under the login throttle, the session cookie set and dropped, and each of these
written to the audit trail."""

from __future__ import annotations

import asyncio
import ipaddress

from aiohttp import web

from dialer.team import audit
from dialer.web import texts
from dialer.web.auth import TOKEN_NAME, check_csrf, from_elsewhere, session_of
from dialer.web.site import Site


def add_routes(app: web.Application, site: Site) -> None:
    pages = LoginPages(site)
    app.router.add_get("/login", pages.login_page)
    app.router.add_post("/login", pages.login)
    app.router.add_post("/logout", pages.logout)


class LoginPages:
    """The routes of logging in and out."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.settings = site.settings
        self.jobs = site.jobs

    async def login_page(
        self, request: web.Request, status: int = 200, error: str = ""
    ) -> web.Response:
        people = await asyncio.to_thread(self.site.auth.has_people)
        hint = texts.TOKEN_REFUSED if people else texts.FIRST_ADMIN
        return self.site.render(
            request, "login.html", status, error=error, hint=hint, people=people
        )

    async def login(self, request: web.Request) -> web.Response:
        auth = self.site.auth
        if from_elsewhere(request):
            return await self.login_page(request, 403, texts.LOGIN_FROM_ELSEWHERE)
        # Refused before the password is even read: a throttled guesser learns nothing.
        if seconds := auth.login_wait(request.remote):
            response = await self.login_page(request, 429, texts.too_many_logins(seconds))
            response.headers["Retry-After"] = str(seconds)
            return response
        auth.charge(request.remote)  # before any await: attempts at once all count
        form = await request.post()
        name, password = str(form.get("name", "")).strip(), str(form.get("password", ""))
        by_token = "token" in form and not name  # the form of earlier versions, and scripts
        if by_token:
            name, password = TOKEN_NAME, str(form.get("token", ""))
        person = await asyncio.to_thread(auth.check, name, password)
        if person is None:
            await asyncio.to_thread(self._failed, request, name)
            return await self.login_page(request, 403, await self._why(name, by_token))
        auth.refund(request.remote)
        trail = self.site.audit
        await asyncio.to_thread(trail.append, person.name, audit.LOGIN, client=_client(request))
        response = web.HTTPSeeOther("/")
        auth.set_cookie(response, auth.log_in(person))
        raise response

    def _failed(self, request: web.Request, name: str) -> None:
        """A failed login in the audit trail: under the name tried only when someone is
        called that (a password typed in the name field must not be kept), and as that person
        is named: "BOSS" is boss, whose guesses `--who boss` must list."""
        person = None if name == TOKEN_NAME else self.site.people.get(name)
        who = TOKEN_NAME if name == TOKEN_NAME else person.name if person else "?"
        self.site.audit.append(who, audit.LOGIN_FAILED, client=_client(request))

    async def _why(self, name: str, by_token: bool) -> str:
        if name == TOKEN_NAME and await asyncio.to_thread(self.site.auth.has_people):
            return texts.TOKEN_REFUSED
        return texts.WRONG_TOKEN if by_token else texts.WRONG_LOGIN

    async def logout(self, request: web.Request) -> web.Response:
        form = await request.post()
        check_csrf(request, str(form.get("csrf", "")))
        session = session_of(request)
        if session is not None:
            await asyncio.to_thread(self.site.audit.append, session.who, audit.LOGOUT)
        response = web.HTTPSeeOther("/login")
        self.site.auth.log_out(request, response)
        raise response


def _client(request: web.Request) -> ipaddress.IPv4Address | ipaddress.IPv6Address | str:
    """Where a login came from, for the trail: an address kept whole (the trail masks a text
    of 9 digits with dots in it, as 192.168.100.200 is), else the text as the trail keeps it."""
    try:
        return ipaddress.ip_address(request.remote or "")
    except ValueError:
        return request.remote or ""
