"""`dialer serve`: one page on which marketing uploads a sheet, checks it, launches, watches,
stops and downloads the report.

    $ DIALER_UI_TOKEN=... TABBLY_API_KEY=... dialer serve          # http://127.0.0.1:8080

Nothing is reimplemented: a check is `dialer validate` and a launch is `dialer run --yes
--progress jsonl`, each a child process of this server, so the page follows exactly the CLI's
rules, ledger and report. The Stop button sends the run SIGINT, the same clean stop as Ctrl-C.

Security: every page needs a session from the login form (the token in `DIALER_UI_TOKEN`);
every POST carries the session's CSRF token; uploads are stored under a name this server
chooses; the API key stays in this process's environment and never reaches a page. What keeps
it standing on a LAN (throttled logins, small bodies before login, two checks at once, upload
retention, headers on every response) is in `dialer.web_guard`.

A launch is bound to its check: the campaign file, its do-not-call lists and the sheet are
fingerprinted at the check, and a launch after any of them changed, or after the campaign ran
again, is refused: the page only ever starts calls that someone previewed.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hmac
import json
import math
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

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from jinja2 import Environment, PackageLoader, select_autoescape

from dialer import web_guard
from dialer.campaign import Campaign, load_campaign
from dialer.paths import default_report_path
from dialer.report import undefuse, write_xlsx
from dialer.statuses import EXIT_MEANINGS, DialerError, ExitCode, Status, UsageError
from dialer.web_guard import MIN_TOKEN_CHARS, SMALL_BODY

TOKEN_ENV = "DIALER_UI_TOKEN"
UPLOAD_LIMIT = 50 * 1024 * 1024
UPLOAD_FORM_SLACK = 1024 * 1024  # the multipart framing and the small fields around the sheet
UPLOAD_SECONDS = 600.0  # a stalled upload must not hold a check slot forever
UPLOAD_SUFFIXES = (".csv", ".xlsx")
FIELD_LIMIT = 1024  # csrf and campaign name
MAX_CHECKS = 2
CHECK_MEMORY = 2 * 1024**3  # data memory of each process of a check (RLIMIT_DATA)
PRUNE_EVERY = 3600.0
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
    fingerprint: dict[str, str]  # campaign file, do-not-call lists, sheet -> content hash
    epoch: int  # the campaign's run epoch when the check began (a run since makes it stale)
    run_id: str | None = None  # set once launched: a check launches one run

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
    upload: Path | None = None
    final: dict[str, int] | None = None  # the summary's counts once the run has ended

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
        counts = self.final if self.final is not None else self.state.get("counts", {})
        if self.exit_code is not None:
            text = outcome_text(self.exit_code, counts)
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


# Plain words for what happened to a row, in the order the outcome lists them.
_OUTCOME_WORDS = {
    Status.ALREADY_CALLED: "already called by an earlier run",
    Status.NOT_ATTEMPTED: "not called (the run stopped first)",
    Status.OUTSIDE_WINDOW: "outside the calling window",
    Status.FAILED: "failed",
    Status.UNKNOWN: "unknown (the upstream may have called them)",
    Status.INVALID: "invalid",
    Status.DUPLICATE: "duplicates",
    Status.SUPPRESSED: "on the do-not-call list",
}


def outcome_text(exit_code: int, counts: dict[str, int]) -> str:
    """What a run did, from its own counts: never "every row was triggered" when none was."""
    if exit_code in (ExitCode.OK, ExitCode.ROW_PROBLEMS):
        head = "finished"
    else:
        head = EXIT_MEANINGS.get(  # type: ignore[call-overload]
            exit_code, f"ended with exit code {exit_code}"
        )
    if not counts:
        return head
    called = counts.get(str(Status.TRIGGERED), 0)
    said = [f"{called} called" if called else "nobody called"]
    said += [f"{counts[s]} {words}" for s, words in _OUTCOME_WORDS.items() if counts.get(s)]
    return f"{head}: " + ", ".join(said)


class Server:
    """The page's state: sessions, checks and runs live in memory, reports on disk."""

    def __init__(
        self,
        root: Path,
        token: str,
        environ: dict[str, str] | None = None,
        *,
        https: bool = False,
    ) -> None:
        self.root = root.resolve()
        self.token = token
        self.environ = dict(os.environ if environ is None else environ)
        self.https = https  # behind an HTTPS proxy: the session cookie is Secure
        self.uploads = self.root / "uploads"
        self.sessions: dict[str, Session] = {}
        self.dry_runs: dict[str, DryRun] = {}
        self.runs: dict[str, WebRun] = {}
        self.throttle = web_guard.LoginThrottle()
        self.checking: set[Path] = set()  # the uploads of the checks under way
        self._checks = 0
        self._epochs: dict[str, int] = {}  # campaign -> runs started + runs ended, from here
        self._launching: set[str] = set()
        self._pruner: asyncio.Task[None] | None = None
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

    def _child_env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in self.environ.items() if k != TOKEN_ENV}
        return {**env, "PYTHONUNBUFFERED": "1", **extra}

    @staticmethod
    def _bound_files(campaign: Campaign, upload: Path) -> list[Path]:
        """What decides who is called and what they hear: fingerprinted at the check."""
        return [campaign.path, *campaign.contacts.suppress, upload]

    async def check(self, campaign: Campaign, upload: Path, sheet_name: str) -> DryRun:
        epoch = self._epochs.get(campaign.name, 0)
        files = self._bound_files(campaign, upload)
        before = await asyncio.to_thread(web_guard.fingerprint, files)
        report = default_report_path(campaign)
        proc = await asyncio.create_subprocess_exec(
            *_limited_python(CHECK_MEMORY),
            "validate",
            str(campaign.path),
            "--contacts",
            str(upload),
            "--report",
            str(report),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            # One BLAS thread: a check does no linear algebra, and each thread's buffer
            # would count against CHECK_MEMORY.
            env=self._child_env(OPENBLAS_NUM_THREADS="1"),
            start_new_session=True,
        )
        try:
            _, err = await asyncio.wait_for(proc.communicate(), CHECK_TIMEOUT)
        except (TimeoutError, asyncio.CancelledError):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the check and its workers
            await proc.wait()
            raise UsageError("checking the sheet took too long") from None
        summary_path = report.with_name(report.name + ".summary.json")
        finished = proc.returncode in (ExitCode.OK, ExitCode.ROW_PROBLEMS)
        if not finished or not summary_path.is_file():
            text = err.decode("utf-8", "replace")
            lines = text.strip().splitlines()
            message = lines[-1] if lines else f"the check ended with exit code {proc.returncode}"
            lowered = text.lower()
            ran_out = "memory" in lowered or "failed to map" in lowered
            if not message.startswith("dialer: error: ") and (ran_out or proc.returncode < 0):
                # Over CHECK_MEMORY: MemoryError, a native library giving up, or a signal.
                message = (
                    f"checking this sheet needs more than {CHECK_MEMORY // 1024**2} MB of "
                    "memory: split it, or save it as CSV"
                )
            raise UsageError(
                message.removeprefix("dialer: error: ").replace(str(upload), sheet_name)
            )
        if await asyncio.to_thread(web_guard.fingerprint, files) != before:
            raise UsageError("the campaign file changed while it was being checked: check again")
        try:
            summary = json.loads(summary_path.read_text("utf-8"))
        except (OSError, ValueError):
            raise UsageError("the check did not leave a readable summary: check again") from None
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
            fingerprint=before,
            epoch=epoch,
        )
        self.dry_runs[dry.id] = dry
        return dry

    async def stale(self, dry: DryRun) -> str:
        """Why this check no longer describes what a launch would do ("" if it still does)."""
        if self._epochs.get(dry.campaign, 0) != dry.epoch:
            return (
                f"Campaign {dry.campaign} has run since this check, so who is left to call "
                "has changed: check the sheet again."
            )
        paths = [Path(p) for p in dry.fingerprint]
        now = await asyncio.to_thread(web_guard.fingerprint, paths)
        changed = [p for p in paths if now.get(str(p)) != dry.fingerprint[str(p)]]
        if not changed:
            return ""
        if dry.upload in changed and now.get(str(dry.upload)) == "missing":
            return (
                "The sheet of this check was deleted (uploads are kept 7 days, within a size "
                "cap): upload it again for a new check."
            )
        names = ", ".join("the sheet" if p == dry.upload else p.name for p in changed)
        return (
            f"Changed since this check: {names}. The check no longer shows who would be called "
            "or what they would hear: check the sheet again."
        )

    def active_run(self, campaign: str) -> WebRun | None:
        return next(
            (r for r in self.runs.values() if r.campaign == campaign and not r.finished), None
        )

    async def launch(self, dry: DryRun) -> WebRun:
        """Start the run this check previewed, or raise `CheckStale` saying why it may not."""
        if self.active_run(dry.campaign) or dry.campaign in self._launching:
            raise web.HTTPConflict(text=f"campaign {dry.campaign} is already running")
        if dry.run_id is not None:
            raise CheckStale(
                "This check was launched already. Check the sheet again to see who is left to call."
            )
        self._launching.add(dry.campaign)  # before any await: two quick clicks start one run
        try:
            if reason := await self.stale(dry):
                raise CheckStale(reason)
            return await self._launch(dry)
        finally:
            self._launching.discard(dry.campaign)

    async def _launch(self, dry: DryRun) -> WebRun:
        # The very file the check read (its fingerprint still matches), not whichever file
        # now claims the campaign's name.
        campaign = load_campaign(dry.campaign_path)
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
        run.upload = dry.upload
        dry.run_id = run.id
        self.runs[run.id] = run
        self._new_epoch(dry.campaign)
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
        exit_code = await run.proc.wait()
        summary = run.report.with_name(run.report.name + ".summary.json")
        with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
            counts = json.loads(summary.read_text("utf-8")).get("counts")
            if isinstance(counts, dict):
                run.final = {str(k): int(v) for k, v in counts.items()}
        run.exit_code = exit_code
        self._new_epoch(run.campaign)  # checks made while it ran no longer hold
        run.changed.set()

    def _new_epoch(self, campaign: str) -> None:
        self._epochs[campaign] = self._epochs.get(campaign, 0) + 1

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
        # The slot is taken before the body is read: uploading is part of checking, and it
        # bounds how many 50 MB sheets are written at once too.
        if self._checks >= MAX_CHECKS:
            response = await self.index(
                request,
                f"{MAX_CHECKS} checks are running already: try again in a minute.",
                503,
            )
            response.headers["Retry-After"] = "30"
            return response
        self._checks += 1
        try:
            return await self._upload(request)
        finally:
            self._checks -= 1

    async def _upload(self, request: web.Request) -> web.Response:
        fields: dict[str, str] = {}
        stored: Path | None = None
        in_use: Path | None = None  # kept from pruning until the check is done
        sheet_name = ""
        try:
            try:
                reader = await request.multipart()
                async with asyncio.timeout(UPLOAD_SECONDS):
                    while (part := await reader.next()) is not None:
                        if not isinstance(part, BodyPartReader):
                            continue  # a nested multipart is nothing this form sends
                        if part.name in ("csrf", "campaign"):
                            fields[part.name] = await _read_field(part)
                            if part.name == "csrf":
                                _check_csrf(request, fields["csrf"])
                        elif part.name == "sheet" and stored is None:
                            _check_csrf(request, fields.get("csrf", ""))
                            sheet_name = _sheet_name(part.filename)
                            suffix = Path(sheet_name).suffix.lower()
                            if suffix not in UPLOAD_SUFFIXES:
                                raise BadUpload("Upload a .csv or .xlsx file.")
                            stored = _new_upload(self.uploads, suffix)
                            in_use = stored
                            self.checking.add(in_use)
                            await _store_upload(part, stored)
            except (ValueError, HttpProcessingError):
                # A malformed form: a NUL in a part's header, a broken boundary, bad encoding.
                raise BadUpload("The upload could not be read: try again.") from None
            if stored is None or "campaign" not in fields:
                return await self.index(request, "Choose a campaign and a sheet.", 400)
            campaign = self.campaign(fields["campaign"])
            await self.prune()  # room for this one; never the sheets in use
            dry = await self.check(campaign, stored, sheet_name)
            stored = None  # kept: the check and a launch use it
        except UploadTooLarge:
            return await self.index(
                request, f"The sheet is larger than {UPLOAD_LIMIT // (1024 * 1024)} MB.", 413
            )
        except BadUpload as exc:
            return await self.index(request, str(exc), 400)
        except TimeoutError:
            return await self.index(request, "The upload took too long: try again.", 408)
        except DialerError as exc:
            return await self.index(request, f"{sheet_name}: {exc}", 400)
        finally:
            if in_use is not None:
                self.checking.discard(in_use)
            if stored is not None:  # refused or failed: a sheet of phone numbers is not kept
                stored.unlink(missing_ok=True)
        raise web.HTTPSeeOther(f"/dry-runs/{dry.id}")

    async def prune(self) -> None:
        """Delete old uploads and the checks that relied on them."""
        in_use = set(self.checking)
        in_use |= {r.upload for r in self.runs.values() if r.upload and not r.finished}
        deleted = set(await asyncio.to_thread(web_guard.prune_uploads, self.uploads, in_use))
        if deleted:
            self.dry_runs = {k: d for k, d in self.dry_runs.items() if d.upload not in deleted}

    async def _prune_forever(self) -> None:
        while True:
            with contextlib.suppress(OSError):
                await self.prune()
            await asyncio.sleep(PRUNE_EVERY)

    async def dry_run_page(self, request: web.Request) -> web.Response:
        dry = self.dry_runs.get(request.match_info["id"])
        if dry is None:
            raise web.HTTPNotFound(text="no such check")
        return await self._check_page(
            request, dry, error=request.query.get("error", "")[:300], stale=await self._why_not(dry)
        )

    async def _why_not(self, dry: DryRun) -> str:
        """Why this check can no longer be launched ("" if it can)."""
        if dry.run_id is not None:
            return ""  # the page links to its run instead
        return await self.stale(dry)

    async def _check_page(
        self,
        request: web.Request,
        dry: DryRun,
        *,
        error: str = "",
        stale: str = "",
        status: int = 200,
    ) -> web.Response:
        counts = dry.summary.get("counts", {})
        problems, total = await asyncio.to_thread(_problem_rows, dry.report)
        return self.render(
            request,
            "dry_run.html",
            status,
            d=dry,
            counts=[(s, n) for s, n in counts.items() if n],
            ready=counts.get(str(Status.READY), 0),
            samples=dry.summary.get("samples", []),
            problems=problems,
            problem_count=total,
            window=self._window_text(dry, counts),
            stale=stale,
            run=self.runs.get(dry.run_id or ""),
            error=error,
        )

    @staticmethod
    def _window_text(dry: DryRun, counts: dict[str, int]) -> str:
        try:
            campaign = load_campaign(dry.campaign_path)
        except DialerError:
            return "the campaign file no longer loads"
        if not campaign.window:
            return "none set: calls at any hour"
        days = ", ".join(
            d
            for i, d in enumerate(("mon", "tue", "wed", "thu", "fri", "sat", "sun"))
            if i in campaign.window.days
        )
        now = (
            f"; {counts.get('outside_window', 0)} people are outside it now"
            if counts.get("outside_window")
            else "; everyone ready is inside it now"
        )
        return f"{campaign.window.hours} on {days} in each callee's local time{now}"

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
        try:
            run = await self.launch(dry)
        except CheckStale as exc:
            return await self._check_page(
                request,
                dry,
                error=f"Not launched, nobody was called. {exc}",
                stale=await self._why_not(dry),
                status=409,
            )
        except DialerError as exc:
            return await self._check_page(
                request, dry, error=f"Not launched, nobody was called. {exc}", status=400
            )
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
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
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
        client = self.throttle.client_key(request.remote)
        # Refused before the token is even read: a throttled guesser learns nothing.
        if wait := self.throttle.retry_after(client):
            seconds = max(1, math.ceil(wait))
            response = self.render(
                request,
                "login.html",
                429,
                error=f"Too many wrong tokens: try again in {seconds} seconds.",
            )
            response.headers["Retry-After"] = str(seconds)
            return response
        form = await request.post()
        given = str(form.get("token", ""))
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            self.throttle.failed(client)
            return self.render(request, "login.html", 403, error="Wrong token.")
        now = time.monotonic()
        self.sessions = {k: v for k, v in self.sessions.items() if v.expires > now}
        sid = secrets.token_urlsafe(32)
        self.sessions[sid] = Session(secrets.token_urlsafe(32), time.monotonic() + SESSION_SECONDS)
        response = web.HTTPSeeOther("/")
        response.set_cookie(
            SESSION_COOKIE,
            sid,
            httponly=True,
            samesite="Strict",
            secure=self.https,
            max_age=SESSION_SECONDS,
            path="/",
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
        """Every page but the login form needs a live session; bodies are judged by their
        declared size before a byte of them is read (headers: `web_guard.security_headers`)."""
        session = self.sessions.get(request.cookies.get(SESSION_COOKIE, ""))
        if session is not None and session.expires < time.monotonic():
            session = None
        upload = session is not None and request.method == "POST" and request.path == "/dry-runs"
        limit = UPLOAD_LIMIT + UPLOAD_FORM_SLACK if upload else SMALL_BODY
        if (request.content_length or 0) > limit:
            raise web.HTTPRequestEntityTooLarge(limit, request.content_length or 0)
        if request.path not in _PUBLIC:
            if session is None:
                if request.method == "GET":
                    raise web.HTTPSeeOther("/login")
                raise web.HTTPForbidden(text="log in first")
            request[SESSION_KEY] = session
        return await handler(request)

    def app(self) -> web.Application:
        # Bodies read whole (forms) stop at SMALL_BODY; the upload route streams its sheet to
        # disk under its own limit, so no route buffers more than that in memory.
        app = web.Application(middlewares=[self.guard], client_max_size=SMALL_BODY)
        app.on_response_prepare.append(web_guard.security_headers)
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
        app.on_startup.append(self._start_pruning)
        app.on_shutdown.append(self._stop_runs)
        return app

    async def _start_pruning(self, _app: web.Application) -> None:
        self._pruner = asyncio.get_running_loop().create_task(self._prune_forever())

    async def _stop_runs(self, _app: web.Application) -> None:
        """Server going down: stop each run cleanly and wait for its report and summary."""
        if self._pruner is not None:
            self._pruner.cancel()
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


class CheckStale(Exception):
    """A launch refused because the check no longer shows what the run would do."""


class BadUpload(Exception):
    """An upload refused with a message for the page (400)."""


def _new_upload(folder: Path, suffix: str) -> Path:
    """A server-chosen name: nothing of the client's file name is used."""
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{secrets.token_hex(16)}{suffix}"


def _sheet_name(filename: str | None) -> str:
    """The uploader's file name, for display only; control characters are refused."""
    name = Path(filename or "").name[:120]
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise BadUpload("The file name has control characters: rename the file and upload it.")
    return name


async def _read_field(part: BodyPartReader) -> str:
    """A small form field, read no further than FIELD_LIMIT bytes."""
    data = b""
    while chunk := await part.read_chunk(FIELD_LIMIT):
        data += chunk
        if len(data) > FIELD_LIMIT:
            raise BadUpload("The form is malformed: reload the page and try again.")
    return data.decode("utf-8", "replace")


async def _store_upload(part: Any, path: Path) -> None:
    """Stream an upload to `path`, no larger than UPLOAD_LIMIT."""
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


def _limited_python(data_bytes: int) -> list[str]:
    """`python -m dialer` with its data memory capped (RLIMIT_DATA, inherited by its workers):
    a sheet that needs more fails that one check, not the server. Set in the child itself, not
    by preexec_fn, which is unsafe in a process with threads. RLIMIT_DATA rather than RLIMIT_AS:
    shared libraries and reserved-but-unused address space do not count, real allocations do."""
    code = (
        "import resource, runpy, sys; n = int(sys.argv.pop(1)); "
        "resource.setrlimit(resource.RLIMIT_DATA, (n, n)); "
        "runpy.run_module('dialer', run_name='__main__', alter_sys=True)"
    )
    return [sys.executable, "-c", code, str(data_bytes)]


def serve(
    root: Path,
    host: str,
    port: int,
    environ: dict[str, str] | None = None,
    *,
    https_proxy: bool = False,
) -> int:
    env = dict(os.environ if environ is None else environ)
    token = env.get(TOKEN_ENV, "")
    if len(token) < MIN_TOKEN_CHARS:
        raise UsageError(
            f"set {TOKEN_ENV} to a secret of at least {MIN_TOKEN_CHARS} characters (it is "
            "what the page asks for), e.g. python3 -c 'import secrets; "
            "print(secrets.token_urlsafe(24))'"
        )
    if not (root / "campaigns").is_dir():
        raise UsageError(f"{root}: no campaigns/ folder here (use --root)")
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"dialer serve: warning: listening on {host}, not only this machine", file=sys.stderr)
    server = Server(root, token, env, https=https_proxy)
    print(f"dialer serve: http://{host}:{port}/ (log in with {TOKEN_ENV})", flush=True)
    web.run_app(server.app(), host=host, port=port, print=None, access_log=None)
    return int(ExitCode.OK)
