"""The server: one object holding the page's parts, its routes, and `dialer serve` itself."""

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
from jinja2 import Environment, PackageLoader, select_autoescape

from dialer.campaign.model import load_campaign
from dialer.core.clock import Clock, system_clock
from dialer.core.statuses import ExitCode, UsageError
from dialer.web.auth import TOKEN_ENV, Auth, require_token
from dialer.web.headers import guard_parser_errors, security_headers
from dialer.web.services import reports
from dialer.web.services.campaigns import CampaignShelf, LastUsed, Loader
from dialer.web.services.jobs import Jobs
from dialer.web.services.test_calls import TestCalls
from dialer.web.services.uploads import Uploads
from dialer.web.settings import DEFAULTS, Settings
from dialer.web.views import columns, editor, results, schedules
from dialer.web.views.pages import Pages

TEMPLATES = Path(__file__).resolve().parent / "templates"
UPLOAD_ROUTE = "/dry-runs"
# What the login page itself needs; none of it holds anything secret.
PUBLIC = frozenset({"/login", "/app.css", "/app.js", "/favicon.ico"})


class Server:
    """The page's state: sessions, checks and runs live in memory, reports and uploads on disk.

    `load` reads a campaign file (tests count its calls); `settings` holds every limit;
    `clock` is what test calls are judged by (their hours, their caps).
    """

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
        self.auth = Auth(token, settings, https=https)
        self.campaigns = CampaignShelf(self.root / "campaigns", load)
        self.last_used = LastUsed()  # per session: the campaign preselected for a new sheet
        self.uploads = Uploads(self.root / "uploads", settings)
        self.jobs = Jobs(os.environ if environ is None else environ, settings, self.campaigns.load)
        self.test_calls = TestCalls(settings, clock)  # "call me first": its caps and rules
        self.templates = Environment(
            loader=PackageLoader("dialer.web", "templates"),
            autoescape=select_autoescape(["html"]),
        )
        self._pruner: asyncio.Task[None] | None = None

    async def prune(self) -> None:
        """Delete old uploads and check reports by the same rules, and the checks that
        relied on them."""
        deleted = await self.uploads.prune(also_keep=self.jobs.running_uploads())
        folder = self.root / "reports"
        deleted |= set(await asyncio.to_thread(reports.prune_check_reports, folder, self.settings))
        self.jobs.forget_checks_of(deleted)

    def app(self) -> web.Application:
        pages = Pages(self)
        # Bodies read whole (forms) stop at small_body; the upload route streams its sheet to
        # disk under its own limit, so no route buffers more than that in memory.
        app = web.Application(
            middlewares=[self.auth.middleware(PUBLIC, UPLOAD_ROUTE)],
            client_max_size=self.settings.small_body,
        )
        app.on_response_prepare.append(security_headers)
        guard_parser_errors(app)
        add_get, add_post = app.router.add_get, app.router.add_post
        add_get("/login", pages.login_page)
        add_post("/login", pages.login)
        add_post("/logout", pages.logout)
        add_get("/", pages.index)
        add_post(UPLOAD_ROUTE, pages.upload)
        add_get("/uploads/{id}", pages.upload_page)
        add_post("/uploads/{id}", pages.use_upload)
        add_get("/dry-runs/{id}", pages.dry_run_page)
        add_post("/dry-runs/{id}/launch", pages.launch)
        add_get("/runs/{id}", pages.run_page)
        add_get("/runs/{id}/events", pages.events)
        add_post("/runs/{id}/stop", pages.stop)
        add_get(r"/runs/{id}/report.{kind:csv|xlsx}", pages.run_report)
        add_get("/reports/{campaign}/{name}", pages.past_report)
        for name in ("app.js", "app.css"):
            add_get(f"/{name}", _static(TEMPLATES / name))
        add_get("/favicon.ico", _no_content)
        editor.add_routes(app, self)
        results.add_routes(app, self)
        schedules.add_routes(app, self)
        columns.add_routes(app, self)
        app.on_startup.append(self._start_pruning)
        app.on_shutdown.append(self._shut_down)
        return app

    async def _start_pruning(self, _app: web.Application) -> None:
        self._pruner = asyncio.get_running_loop().create_task(self._prune_forever())

    async def _prune_forever(self) -> None:
        while True:
            with contextlib.suppress(OSError):
                await self.prune()
            await asyncio.sleep(self.settings.prune_every)

    async def _shut_down(self, _app: web.Application) -> None:
        """Server going down: stop each run cleanly and wait for its report and summary."""
        if self._pruner is not None:
            self._pruner.cancel()
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
    """`dialer serve`: refuse a short token or a folder without campaigns/, then listen.
    `clock`: what test calls are judged by (browser tests run the page at noon)."""
    env = dict(os.environ if environ is None else environ)
    token = require_token(env, DEFAULTS)
    if not (root / "campaigns").is_dir():
        raise UsageError(f"{root}: no campaigns/ folder here (use --root)")
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"dialer serve: warning: listening on {host}, not only this machine", file=sys.stderr)
    server = Server(root, token, env, https=https_proxy, clock=clock)
    where: dict[str, Any] = {"host": host, "port": port}
    if port == 0:  # the system picks the port: bind first, so the line names the real one
        sock = _bind(host)
        port = sock.getsockname()[1]
        where = {"sock": sock}
    print(f"dialer serve: http://{host}:{port}/ (log in with {TOKEN_ENV})", flush=True)
    web.run_app(server.app(), **where, print=None, access_log=None)
    return int(ExitCode.OK)


def _bind(host: str) -> socket.socket:
    """A listening socket on a free port of `host`'s first address."""
    try:
        family = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, 0), family=family, backlog=128)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}: {exc.strerror or exc}") from None
