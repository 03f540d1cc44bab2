"""Logging in and out: the login form, the token checked under the login throttle, the
session cookie set and dropped."""

from __future__ import annotations

from aiohttp import web

from dialer.web import texts
from dialer.web.auth import check_csrf
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

    async def login_page(self, request: web.Request) -> web.Response:
        return self.site.render(request, "login.html")

    async def login(self, request: web.Request) -> web.Response:
        auth = self.site.auth
        # Refused before the token is even read: a throttled guesser learns nothing.
        if seconds := auth.login_wait(request.remote):
            response = self.site.render(
                request, "login.html", 429, error=texts.too_many_logins(seconds)
            )
            response.headers["Retry-After"] = str(seconds)
            return response
        form = await request.post()
        sid = auth.log_in(request.remote, str(form.get("token", "")))
        if sid is None:
            return self.site.render(request, "login.html", 403, error=texts.WRONG_TOKEN)
        response = web.HTTPSeeOther("/")
        auth.set_cookie(response, sid)
        raise response

    async def logout(self, request: web.Request) -> web.Response:
        form = await request.post()
        check_csrf(request, str(form.get("csrf", "")))
        response = web.HTTPSeeOther("/login")
        self.site.auth.log_out(request, response)
        raise response
