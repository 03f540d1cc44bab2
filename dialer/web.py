"""`dialer serve`: one page on which marketing uploads a sheet, checks it, launches, watches,
stops and downloads the report.

    $ DIALER_UI_TOKEN=... TABBLY_API_KEY=... dialer serve          # http://127.0.0.1:8080

Nothing is reimplemented: a check is `dialer validate` and a launch is `dialer run --yes
--progress jsonl`, each a child process of this server, so the page follows exactly the CLI's
rules, ledger and report. The Stop button sends the run SIGINT, the same clean stop as Ctrl-C.

Security: every page needs a session from the login form (the token in `DIALER_UI_TOKEN`);
every POST carries the session's CSRF token; uploads are stored under a name this server
chooses; the API key stays in this process's environment and never reaches a page.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hmac
import json
import os
import re
import secrets
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from jinja2 import Environment, PackageLoader, select_autoescape

from dialer.campaign import Campaign, load_campaign
from dialer.paths import default_report_path
from dialer.report import undefuse, write_xlsx
from dialer.statuses import EXIT_MEANINGS, DialerError, ExitCode, Status, UsageError

TOKEN_ENV = "DIALER_UI_TOKEN"
MIN_TOKEN_CHARS = 16
UPLOAD_LIMIT = 50 * 1024 * 1024
UPLOAD_SUFFIXES = (".csv", ".xlsx")
PROBLEM_ROWS_SHOWN = 200
CHECK_TIMEOUT = 600.0
STOP_WAIT = 60.0  # a stopping run lets requests in flight finish (SPEC 6.2)
SESSION_COOKIE = "dialer_session"
SESSION_KEY = web.RequestKey("session", object)
SESSION_SECONDS = 12 * 3600
# What the login page itself needs; none of it holds anything secret.
_PUBLIC = frozenset({"/login", "/app.css", "/app.js", "/favicon.ico"})
_REPORT_NAME = re.compile(r"^[0-9]{8}T[0-9]{6}(\.[0-9]{3})?Z(-[0-9]+)?$")


@dataclass(slots=True)
class Session:
    csrf: str
    expires: float


@dataclass(slots=True)
class DryRun:
    id: str
    campaign: str
    campaign_path: Path
    call_from: str
    agent_id: int
    sheet_name: str  # the uploader's file name: shown, never used as a path
    upload: Path
    report: Path
    summary: dict[str, Any]

    @property
    def report_file(self) -> str:
        return self.report.name


@dataclass(slots=True)
class WebRun:
    id: str
    campaign: str
    report: Path
    proc: asyncio.subprocess.Process
    started: str
    state: dict[str, Any] = field(default_factory=dict)
    messages: deque[str] = field(default_factory=lambda: deque(maxlen=5))
    exit_code: int | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    stopping: bool = False
    follower: asyncio.Task[None] | None = None

    def interrupt(self) -> None:
        """SIGINT once: the same clean stop as one Ctrl-C (a second would abort calls)."""
        if not self.stopping and not self.finished:
            self.stopping = True
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGINT)

    @property
    def finished(self) -> bool:
        return self.exit_code is not None

    def view(self) -> dict[str, Any]:
        counts = self.state.get("counts", {})
        if self.exit_code is not None:
            text = EXIT_MEANINGS.get(  # type: ignore[call-overload]
                self.exit_code, f"ended with exit code {self.exit_code}"
            )
        elif self.state:
            text = "calling"
        else:
            text = "starting"
        return {
            "id": self.id,
            "campaign": self.campaign,
            "finished": self.finished,
            "exit_code": self.exit_code,
            "state_text": text,
            "counts": [[s, counts[s]] for s in map(str, Status) if counts.get(s)],
            "rate": self.state.get("calls_per_second", 0),
            "done": self.state.get("done", 0),
            "failures": self.state.get("failures", []),
            "messages": list(self.messages),
        }


class Server:
    """The page's state: sessions, checks and runs live in memory, reports on disk."""

    def __init__(self, root: Path, token: str, environ: dict[str, str] | None = None) -> None:
        self.root = root.resolve()
        self.token = token
        self.environ = dict(os.environ if environ is None else environ)
        self.uploads = self.root / "uploads"
        self.sessions: dict[str, Session] = {}
        self.dry_runs: dict[str, DryRun] = {}
        self.runs: dict[str, WebRun] = {}
        self._launching: set[str] = set()
        self.templates = Environment(
            loader=PackageLoader("dialer", "templates"),
            autoescape=select_autoescape(["html"]),
        )

    # ---- campaigns, checks, runs ----

    def campaigns(self) -> dict[str, Campaign | str]:
        """Campaign name -> Campaign, or the one-line error that makes it unusable."""
        found: dict[str, Campaign | str] = {}
        for path in sorted((self.root / "campaigns").glob("*.toml")):
            try:
                campaign = load_campaign(path)
                found[campaign.name] = campaign
            except DialerError as exc:
                found[path.stem] = str(exc).replace(str(path), path.name)
        return found

    def campaign(self, name: str) -> Campaign:
        found = self.campaigns().get(name)
        if not isinstance(found, Campaign):
            raise web.HTTPBadRequest(text="unknown campaign")
        return found

    def _child_env(self) -> dict[str, str]:
        env = {k: v for k, v in self.environ.items() if k != TOKEN_ENV}
        return {**env, "PYTHONUNBUFFERED": "1"}

    async def check(self, campaign: Campaign, upload: Path, sheet_name: str) -> DryRun:
        report = default_report_path(campaign)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "dialer",
            "validate",
            str(campaign.path),
            "--contacts",
            str(upload),
            "--report",
            str(report),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=self._child_env(),
            start_new_session=True,
        )
        try:
            _, err = await asyncio.wait_for(proc.communicate(), CHECK_TIMEOUT)
        except (TimeoutError, asyncio.CancelledError):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the check and its workers
            await proc.wait()
            raise UsageError("checking the sheet took too long") from None
        if proc.returncode not in (ExitCode.OK, ExitCode.ROW_PROBLEMS):
            lines = err.decode("utf-8", "replace").strip().splitlines()
            message = lines[-1] if lines else f"exit code {proc.returncode}"
            raise UsageError(
                message.removeprefix("dialer: error: ").replace(str(upload), sheet_name)
            )
        summary = json.loads(report.with_name(report.name + ".summary.json").read_text("utf-8"))
        dry = DryRun(
            id=secrets.token_urlsafe(12),
            campaign=campaign.name,
            campaign_path=campaign.path,
            call_from=campaign.call_from,
            agent_id=campaign.agent_id,
            sheet_name=sheet_name,
            upload=upload,
            report=report,
            summary=summary,
        )
        self.dry_runs[dry.id] = dry
        return dry

    def active_run(self, campaign: str) -> WebRun | None:
        return next(
            (r for r in self.runs.values() if r.campaign == campaign and not r.finished), None
        )

    async def launch(self, dry: DryRun) -> WebRun:
        if self.active_run(dry.campaign) or dry.campaign in self._launching:
            raise web.HTTPConflict(text=f"campaign {dry.campaign} is already running")
        self._launching.add(dry.campaign)  # before any await: two quick clicks start one run
        try:
            return await self._launch(dry)
        finally:
            self._launching.discard(dry.campaign)

    async def _launch(self, dry: DryRun) -> WebRun:
        campaign = self.campaign(dry.campaign)
        report = default_report_path(campaign)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "dialer",
            "run",
            str(campaign.path),
            "--contacts",
            str(dry.upload),
            "--report",
            str(report),
            "--yes",
            "--progress",
            "jsonl",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=self._child_env(),
            # Its own session: a Ctrl-C meant for the server must not reach the run as well
            # (with the server's own stop that makes two SIGINTs, which abort calls in flight).
            start_new_session=True,
        )
        run = WebRun(secrets.token_urlsafe(12), dry.campaign, report, proc, _now_text())
        self.runs[run.id] = run
        run.follower = asyncio.get_running_loop().create_task(self._follow(run))
        return run

    async def _follow(self, run: WebRun) -> None:
        """Read the run's JSON progress lines until it exits."""
        assert run.proc.stderr is not None
        async for raw in run.proc.stderr:
            line = raw.decode("utf-8", "replace").strip()
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    run.state = json.loads(line)
            elif line:
                run.messages.append(line.removeprefix("dialer: error: "))
            run.changed.set()
        run.exit_code = await run.proc.wait()
        run.changed.set()

    def past_runs(self) -> list[dict[str, Any]]:
        found = []
        for name in self.campaigns():
            folder = self.root / "reports" / name
            for path in folder.glob("*.csv.summary.json"):
                with contextlib.suppress(OSError, ValueError):
                    s = json.loads(path.read_text("utf-8"))
                    report = path.name.removesuffix(".summary.json")
                    found.append(
                        {
                            "campaign": name,
                            "file": report,
                            "stem": report.removesuffix(".csv"),
                            "started": s.get("started_at", "")[:19].replace("T", " "),
                            "mode": "check" if s.get("mode") == "validate" else "run",
                            "rows": s.get("rows", 0),
                            "triggered": s.get("counts", {}).get("triggered", 0),
                            "result": s.get("close_reason", ""),
                        }
                    )
        return sorted(found, key=lambda p: p["started"], reverse=True)[:50]

    # ---- pages ----

    def render(
        self, request: web.Request, name: str, status: int = 200, **context: Any
    ) -> web.Response:
        session = request.get(SESSION_KEY)
        html = self.templates.get_template(name).render(
            csrf=session.csrf if session else "", **context
        )
        return web.Response(text=html, content_type="text/html", status=status)

    async def index(self, request: web.Request, error: str = "", status: int = 200) -> web.Response:
        campaigns = [
            {"name": n, "ok": True, "agent_id": c.agent_id, "call_from": c.call_from}
            if isinstance(c, Campaign)
            else {"name": n, "ok": False, "problem": c}
            for n, c in self.campaigns().items()
        ]
        active = [r for r in self.runs.values() if not r.finished]
        return self.render(
            request,
            "index.html",
            status,
            campaigns=campaigns,
            active=active,
            past=self.past_runs(),
            limit_mb=UPLOAD_LIMIT // (1024 * 1024),
            error=error,
        )

    async def upload(self, request: web.Request) -> web.Response:
        reader = await request.multipart()
        fields: dict[str, str] = {}
        stored: Path | None = None
        sheet_name = ""
        try:
            while (part := await reader.next()) is not None:
                if part.name in ("csrf", "campaign"):  # type: ignore[union-attr]
                    fields[part.name] = (await part.text())[:200]  # type: ignore[union-attr]
                    if part.name == "csrf":  # type: ignore[union-attr]
                        _check_csrf(request, fields["csrf"])
                elif part.name == "sheet" and stored is None:  # type: ignore[union-attr]
                    _check_csrf(request, fields.get("csrf", ""))
                    sheet_name = Path(part.filename or "").name[:120]  # type: ignore[union-attr]
                    suffix = Path(sheet_name).suffix.lower()
                    if suffix not in UPLOAD_SUFFIXES:
                        return await self.index(request, "Upload a .csv or .xlsx file.", 400)
                    stored = await _store_upload(part, self.uploads, suffix)  # type: ignore[arg-type]
            if stored is None or "campaign" not in fields:
                return await self.index(request, "Choose a campaign and a sheet.", 400)
            campaign = self.campaign(fields["campaign"])
            dry = await self.check(campaign, stored, sheet_name)
            stored = None  # kept: the check and a launch use it
        except UploadTooLarge:
            return await self.index(
                request, f"The sheet is larger than {UPLOAD_LIMIT // (1024 * 1024)} MB.", 413
            )
        except DialerError as exc:
            return await self.index(request, f"{sheet_name}: {exc}", 400)
        finally:
            if stored is not None:  # refused or failed: a sheet of phone numbers is not kept
                stored.unlink(missing_ok=True)
        raise web.HTTPSeeOther(f"/dry-runs/{dry.id}")

    async def dry_run_page(self, request: web.Request) -> web.Response:
        dry = self.dry_runs.get(request.match_info["id"])
        if dry is None:
            raise web.HTTPNotFound(text="no such check")
        counts = dry.summary.get("counts", {})
        problems, total = await asyncio.to_thread(_problem_rows, dry.report)
        campaign = self.campaign(dry.campaign)
        window = (
            f"{campaign.window.hours} on "
            + ", ".join(
                d
                for i, d in enumerate(("mon", "tue", "wed", "thu", "fri", "sat", "sun"))
                if i in campaign.window.days
            )
            + " in each callee's local time"
            + (
                f"; {counts.get('outside_window', 0)} people are outside it now"
                if counts.get("outside_window")
                else "; everyone ready is inside it now"
            )
            if campaign.window
            else "none set: calls at any hour"
        )
        return self.render(
            request,
            "dry_run.html",
            d=dry,
            counts=[(s, n) for s, n in counts.items() if n],
            ready=counts.get(str(Status.READY), 0),
            samples=dry.summary.get("samples", []),
            problems=problems,
            problem_count=total,
            window=window,
            error=request.query.get("error", "")[:300],
        )

    async def launch_form(self, request: web.Request) -> web.Response:
        form = await request.post()
        _check_csrf(request, str(form.get("csrf", "")))
        dry = self.dry_runs.get(request.match_info["id"])
        if dry is None:
            raise web.HTTPNotFound(text="no such check")
        ready = dry.summary.get("counts", {}).get(str(Status.READY), 0)
        if form.get("confirm") != "yes" or str(form.get("count")) != str(ready):
            raise web.HTTPSeeOther(
                f"/dry-runs/{dry.id}?error=Tick+the+box+to+confirm+how+many+people+are+called."
            )
        running = self.active_run(dry.campaign)
        if running:
            raise web.HTTPSeeOther(f"/runs/{running.id}")
        run = await self.launch(dry)
        raise web.HTTPSeeOther(f"/runs/{run.id}")

    def _run(self, request: web.Request) -> WebRun:
        run = self.runs.get(request.match_info["id"])
        if run is None:
            raise web.HTTPNotFound(text="no such run")
        return run

    async def run_page(self, request: web.Request) -> web.Response:
        return self.render(request, "run.html", r=self._run(request).view())

    async def events(self, request: web.Request) -> web.StreamResponse:
        run = self._run(request)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
        )
        await response.prepare(request)
        while True:
            run.changed.clear()
            view = run.view()
            await response.write(f"event: progress\ndata: {json.dumps(view)}\n\n".encode())
            if view["finished"]:
                return response
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(run.changed.wait(), 1.0)

    async def stop(self, request: web.Request) -> web.Response:
        form = await request.post()
        _check_csrf(request, str(form.get("csrf", "")))
        run = self._run(request)
        run.interrupt()
        raise web.HTTPSeeOther(f"/runs/{run.id}")

    async def run_report(self, request: web.Request) -> web.StreamResponse:
        run = self._run(request)
        if not run.finished:
            raise web.HTTPConflict(text="the report is ready when the run ends")
        return await _download(run.report, request.match_info["kind"])

    async def past_report(self, request: web.Request) -> web.StreamResponse:
        campaign, name = request.match_info["campaign"], request.match_info["name"]
        stem, _, kind = name.rpartition(".")
        if campaign not in self.campaigns() or not _REPORT_NAME.match(stem):
            raise web.HTTPNotFound(text="no such report")
        path = self.root / "reports" / campaign / f"{stem}.csv"
        if any(r.report == path and not r.finished for r in self.runs.values()):
            raise web.HTTPConflict(text="the report is ready when the run ends")
        return await _download(path, kind)

    # ---- login ----

    async def login_page(self, request: web.Request) -> web.Response:
        return self.render(request, "login.html")

    async def login(self, request: web.Request) -> web.Response:
        form = await request.post()
        given = str(form.get("token", ""))
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            await asyncio.sleep(0.5)  # slows guessing down
            return self.render(request, "login.html", 403, error="Wrong token.")
        now = time.monotonic()
        self.sessions = {k: v for k, v in self.sessions.items() if v.expires > now}
        sid = secrets.token_urlsafe(32)
        self.sessions[sid] = Session(secrets.token_urlsafe(32), time.monotonic() + SESSION_SECONDS)
        response = web.HTTPSeeOther("/")
        response.set_cookie(
            SESSION_COOKIE, sid, httponly=True, samesite="Strict", max_age=SESSION_SECONDS, path="/"
        )
        raise response

    async def logout(self, request: web.Request) -> web.Response:
        form = await request.post()
        _check_csrf(request, str(form.get("csrf", "")))
        self.sessions.pop(request.cookies.get(SESSION_COOKIE, ""), None)
        response = web.HTTPSeeOther("/login")
        response.del_cookie(SESSION_COOKIE, path="/")
        raise response

    @web.middleware
    async def guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Every page but the login form needs a live session; security headers on all."""
        if request.path not in _PUBLIC:
            session = self.sessions.get(request.cookies.get(SESSION_COOKIE, ""))
            if session is None or session.expires < time.monotonic():
                if request.method == "GET":
                    raise web.HTTPSeeOther("/login")
                raise web.HTTPForbidden(text="log in first")
            request[SESSION_KEY] = session
        response = await handler(request)
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.guard], client_max_size=UPLOAD_LIMIT + 1024 * 1024)
        static = Path(__file__).parent / "templates"
        app.router.add_get("/login", self.login_page)
        app.router.add_post("/login", self.login)
        app.router.add_post("/logout", self.logout)
        app.router.add_get("/", self.index)
        app.router.add_post("/dry-runs", self.upload)
        app.router.add_get("/dry-runs/{id}", self.dry_run_page)
        app.router.add_post("/dry-runs/{id}/launch", self.launch_form)
        app.router.add_get("/runs/{id}", self.run_page)
        app.router.add_get("/runs/{id}/events", self.events)
        app.router.add_post("/runs/{id}/stop", self.stop)
        app.router.add_get(r"/runs/{id}/report.{kind:csv|xlsx}", self.run_report)
        app.router.add_get("/reports/{campaign}/{name}", self.past_report)
        for name in ("app.js", "app.css"):
            app.router.add_get(f"/{name}", _static(static / name))
        app.router.add_get("/favicon.ico", _no_content)
        app.on_shutdown.append(self._stop_runs)
        return app

    async def _stop_runs(self, _app: web.Application) -> None:
        """Server going down: stop each run cleanly and wait for its report and summary."""
        running = [r for r in self.runs.values() if not r.finished]
        for run in running:
            run.interrupt()
        followers = [r.follower for r in running if r.follower is not None]
        if followers:
            await asyncio.wait(followers, timeout=STOP_WAIT)


async def _no_content(_request: web.Request) -> web.Response:
    return web.Response(status=204)


def _static(path: Path) -> Any:
    async def handler(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(path)

    return handler


class UploadTooLarge(Exception):
    pass


async def _store_upload(part: Any, folder: Path, suffix: str) -> Path:
    """Stream an upload to a server-chosen name; nothing of the client's name is used."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{secrets.token_hex(16)}{suffix}"
    size = 0
    try:
        with open(path, "xb") as f:
            while chunk := await part.read_chunk(256 * 1024):
                size += len(chunk)
                if size > UPLOAD_LIMIT:
                    raise UploadTooLarge
                f.write(chunk)
    except BaseException:  # too large, or the browser went away mid-upload
        path.unlink(missing_ok=True)
        raise
    return path


def _check_csrf(request: web.Request, given: str) -> None:
    session: Session | None = request.get(SESSION_KEY)  # type: ignore[assignment]
    if session is None or not hmac.compare_digest(given.encode(), session.csrf.encode()):
        raise web.HTTPForbidden(text="bad or missing CSRF token: reload the page")


def _problem_rows(report: Path) -> tuple[list[dict[str, str]], int]:
    rows, total = [], 0
    with open(report, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            if row["status"] != Status.READY:
                total += 1
                if len(rows) < PROBLEM_ROWS_SHOWN:
                    rows.append({k: undefuse(v or "") for k, v in row.items() if k})
    return rows, total


async def _download(csv_path: Path, kind: str) -> web.StreamResponse:
    if kind not in ("csv", "xlsx") or not csv_path.is_file():
        raise web.HTTPNotFound(text="no such report")
    path = csv_path
    if kind == "xlsx":
        path = csv_path.with_suffix(".xlsx")
        if not path.exists() or path.stat().st_mtime < csv_path.stat().st_mtime:
            # Off the event loop: a big report takes seconds, and the page must stay live.
            await asyncio.to_thread(write_xlsx, csv_path, path)
    return web.FileResponse(
        path, headers={"Content-Disposition": f'attachment; filename="{path.name}"'}
    )


def _now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


def serve(root: Path, host: str, port: int, environ: dict[str, str] | None = None) -> int:
    env = dict(os.environ if environ is None else environ)
    token = env.get(TOKEN_ENV, "")
    if len(token) < MIN_TOKEN_CHARS:
        raise UsageError(
            f"set {TOKEN_ENV} to a secret of at least {MIN_TOKEN_CHARS} characters: "
            "it is what the page asks for"
        )
    if not (root / "campaigns").is_dir():
        raise UsageError(f"{root}: no campaigns/ folder here (use --root)")
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"dialer serve: warning: listening on {host}, not only this machine", file=sys.stderr)
    server = Server(root, token, env)
    print(f"dialer serve: http://{host}:{port}/ (log in with {TOKEN_ENV})", flush=True)
    web.run_app(server.app(), host=host, port=port, print=None, access_log=None)
    return int(ExitCode.OK)
