"""The top of the page: `Server` assembles the application from the views, and `dialer serve`
listens with it. Nothing below imports this module."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from dialer.core.clock import Clock, system_clock
from dialer.core.statuses import ExitCode, UsageError
from dialer.team.people import People
from dialer.team.roles import Role
from dialer.web import access, texts
from dialer.web.auth import TOKEN_ENV, require_token
from dialer.web.headers import guard_parser_errors, security_headers
from dialer.web.settings import DEFAULTS
from dialer.web.site import Site
from dialer.web.views import (
    audit,
    checks,
    columns,
    editor,
    login,
    optouts,
    people,
    results,
    runs,
    schedules,
    start,
)

TEMPLATES = Path(__file__).resolve().parent / "templates"
UPLOAD_ROUTE = "/dry-runs"
# The routes that take a sheet: only these may have a big body (`upload_limit`).
UPLOAD_ROUTES = frozenset({UPLOAD_ROUTE, optouts.IMPORT_ROUTE})
# What the login page itself needs; none of it holds anything secret.
PUBLIC = access.public_paths()


class Server(Site):
    """The page's parts (`Site`) and its application: the routes of every view, the
    middlewares, and the loops that start and stop with it."""

    _pruner: asyncio.Task[None] | None = None
    _notifier: asyncio.Task[None] | None = None

    def app(self) -> web.Application:
        # Bodies read whole (forms) stop at small_body; the upload route streams its sheet to
        # disk under its own limit, so no route buffers more than that in memory.
        app = web.Application(
            middlewares=[
                self.auth.middleware(PUBLIC, UPLOAD_ROUTES),
                access.middleware(self.refuse),
            ],
            client_max_size=self.settings.small_body,
        )
        app.on_response_prepare.append(security_headers)
        guard_parser_errors(app)
        for name in ("app.js", "app.css"):
            app.router.add_get(f"/{name}", _static(TEMPLATES / name))
        app.router.add_get("/favicon.ico", _no_content)
        login.add_routes(app, self)
        start.add_routes(app, self, UPLOAD_ROUTE)
        checks.add_routes(app, self)
        runs.add_routes(app, self)
        editor.add_routes(app, self)
        results.add_routes(app, self)
        schedules.add_routes(app, self)
        columns.add_routes(app, self)
        optouts.add_routes(app, self)
        audit.add_routes(app, self)
        people.add_routes(app, self)
        app.on_startup.append(self._start_pruning)
        app.on_shutdown.append(self._shut_down)
        return app

    def refuse(self, request: web.Request, need: Role | int, role: Role | None) -> web.Response:
        """The 403 page of a refused request: the role it needs and the person's own."""
        return self.render(
            request, "forbidden.html", 403, error=texts.refused(need, role, request.path)
        )

    async def _start_pruning(self, _app: web.Application) -> None:
        self._pruner = asyncio.get_running_loop().create_task(self._prune_forever())
        self._notifier = asyncio.get_running_loop().create_task(self._deliver_forever())

    async def _prune_forever(self) -> None:
        while True:
            with contextlib.suppress(OSError):
                await self.prune()
            await asyncio.sleep(self.settings.prune_every)

    async def _deliver_forever(self) -> None:
        """What any command of the folder left in its outbox, delivered (`dialer.notify`)."""
        from dialer.core.settings import DEFAULTS as CORE
        from dialer.notify.delivery import deliver_now

        state, warned = self.root / "state", set[str]()
        while True:
            await asyncio.to_thread(
                deliver_now, state, linger=0.0, environ=self.jobs.environ, warned=warned
            )
            await asyncio.sleep(CORE.notify_serve_every_seconds)

    async def _shut_down(self, _app: web.Application) -> None:
        """Server going down: stop each run cleanly and wait for its report and summary."""
        for loop in (self._pruner, self._notifier):
            if loop is not None:
                loop.cancel()
        await self.jobs.stop_all()


async def _no_content(_request: web.Request) -> web.Response:
    return web.Response(status=204)


def _static(path: Path) -> Any:
    async def handler(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(path)

    return handler


def serve(
    root: Path,
    host: str,
    port: int,
    environ: Mapping[str, str] | None = None,
    *,
    https_proxy: bool = False,
    clock: Clock = system_clock,
) -> int:
    """`dialer serve`: refuse a folder without campaigns/, and (while nobody is a person) a
    missing or short token; then listen. `clock`: what test calls are judged by (browser
    tests run the page at noon)."""
    env = dict(os.environ if environ is None else environ)
    if not (root / "campaigns").is_dir():
        raise UsageError(f"{root}: no campaigns/ folder here (use --root)")
    has_people = People(root / "state").count() > 0
    if not has_people and not env.get(TOKEN_ENV):
        raise UsageError(texts.NOBODY_TO_LOG_IN)
    token = "" if has_people else require_token(env, DEFAULTS)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"dialer serve: warning: listening on {host}, not only this machine", file=sys.stderr)
    server = Server(root, token, env, https=https_proxy, clock=clock)
    where: dict[str, Any] = {"host": host, "port": port}
    if port == 0:  # the system picks the port: bind first, so the line names the real one
        sock = _bind(host)
        port = sock.getsockname()[1]
        where = {"sock": sock}
    how = "your name and password" if has_people else TOKEN_ENV
    print(f"dialer serve: http://{host}:{port}/ (log in with {how})", flush=True)
    web.run_app(server.app(), **where, print=None, access_log=None)
    return int(ExitCode.OK)


def _bind(host: str) -> socket.socket:
    """A listening socket on a free port of `host`'s first address."""
    try:
        family = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, 0), family=family, backlog=128)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}: {exc.strerror or exc}") from None
