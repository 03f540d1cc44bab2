"""Checks (`dialer validate`) and runs (`dialer run --yes --progress jsonl`) of one server, as
child processes: the check slots, the checks kept for launch, the runs started, followed and
stopped, and who holds a campaign's ledger now; so the page follows exactly the CLI's rules,
ledger and report. How a child is started and waited for is `child_processes`; what is kept of
each check and run, `job_records`.

    async with jobs.check_slot():                  # ChecksBusy past `max_checks`
        dry = await jobs.check(campaign, sheet, "contacts.csv")
    run = await jobs.launch(dry)                   # CheckStale if the check no longer holds
    run.interrupt()                                # the Stop button: one SIGINT, like Ctrl-C

A launch is bound to its check: the campaign file, its do-not-call lists and the sheet are
fingerprinted at the check, and a launch after any of them changed, or after the campaign ran
again, is refused: the page only ever starts calls that someone previewed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import signal
import sys
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dialer.campaign.binding import MISSING, contacts_sha256, file_sha256
from dialer.campaign.model import Campaign
from dialer.campaign.paths import ledger_path, page_report_path
from dialer.core.statuses import (
    ERROR_PREFIX,
    FINISHED_CODES,
    ExitCode,
    Status,
    UsageError,
)
from dialer.ledger.sqlite import lock_held
from dialer.team.audit import BY_PAGE_ENV
from dialer.team.people import PAGE_ACTOR
from dialer.web import texts
from dialer.web.auth import TOKEN_ENV
from dialer.web.services import reports
from dialer.web.services.child_processes import (
    child_failure,
    communicate_within,
    limited_python,
    stop_signals_held,
)
from dialer.web.services.job_records import DryRun, WebRun
from dialer.web.services.waiting_line import Line
from dialer.web.settings import Settings


class ChecksBusy(Exception):
    """`max_checks` checks are under way already."""


class AlreadyRunning(Exception):
    """The campaign has a run under way (or starting) already."""


class CheckStale(Exception):
    """A launch refused because the check no longer shows what the run would do."""


class Jobs:
    """Checks and runs of one server, in memory; their reports are on disk."""

    def __init__(
        self,
        environ: Mapping[str, str],
        settings: Settings,
        load: Callable[[Path], Campaign],
    ) -> None:
        self.environ = dict(environ)
        self.settings = settings
        self.load = load
        self.dry_runs: dict[str, DryRun] = {}
        self.runs: dict[str, WebRun] = {}
        self._checks = 0
        self._epochs: dict[str, int] = {}  # campaign -> runs started + runs ended, from here
        self._launching: set[str] = set()
        # Campaigns whose ledger a sync or a test call holds, each with the event set when it
        # lets go: a launch waits for it rather than being refused as "already running".
        self._held: dict[str, asyncio.Event] = {}
        self.run_line = Line(settings.runs_at_once)  # runs of every campaign, however started

    @contextlib.asynccontextmanager
    async def check_slot(self) -> AsyncIterator[None]:
        """One of `max_checks` slots, or ChecksBusy. Taken before the upload is read: uploading
        is part of checking, and it bounds how many big sheets are written at once too."""
        if self._checks >= self.settings.max_checks:
            raise ChecksBusy
        self._checks += 1
        try:
            yield
        finally:
            self._checks -= 1

    async def check(self, campaign: Campaign, upload: Path, sheet_name: str) -> DryRun:
        """`dialer validate` the sheet; a UsageError says why there is no check."""
        epoch = self._epochs.get(campaign.name, 0)
        files = _bound_files(campaign, upload)
        before = await asyncio.to_thread(fingerprint, files)
        report = page_report_path(campaign, sheet_name)
        proc = await asyncio.create_subprocess_exec(
            *limited_python(self.settings.check_memory),
            "validate",
            str(campaign.path),
            "--contacts",
            str(upload),
            "--report",
            str(report),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            # One BLAS thread: a check does no linear algebra, and each thread's buffer
            # would count against check_memory.
            env=self.child_env(OPENBLAS_NUM_THREADS="1"),
            start_new_session=True,
        )
        try:
            _, err = await communicate_within(proc, self.settings.check_timeout)
        except TimeoutError:
            raise UsageError(texts.CHECK_TOO_SLOW) from None
        finished = proc.returncode in FINISHED_CODES
        if not finished or not reports.summary_path(report).is_file():
            message = child_failure(err.decode("utf-8", "replace"), proc.returncode, self.settings)
            raise UsageError(message.replace(str(upload), sheet_name))
        if await asyncio.to_thread(fingerprint, files) != before:
            raise UsageError(texts.CHECK_CHANGED)
        try:
            summary = reports.read_summary(report)
        except (OSError, ValueError):
            raise UsageError(texts.NO_SUMMARY) from None
        return self._keep_check(
            campaign,
            sheet_name,
            upload,
            report,
            summary,
            before,
            epoch,
            _expect_options(campaign, upload, before),
        )

    async def stale(self, dry: DryRun) -> str:
        """Why this check no longer describes what a launch would do ("" if it still does)."""
        if self._epochs.get(dry.campaign, 0) != dry.epoch:
            return texts.ran_since(dry.campaign)
        paths = [Path(p) for p in dry.fingerprint]
        now = await asyncio.to_thread(fingerprint, paths)
        changed = [p for p in paths if now.get(str(p)) != dry.fingerprint[str(p)]]
        if not changed:
            return ""
        if dry.upload in changed and now.get(str(dry.upload)) == MISSING:
            return texts.sheet_deleted(self.settings)
        return texts.changed_since("the sheet" if p == dry.upload else p.name for p in changed)

    async def why_not(self, dry: DryRun) -> str:
        """Why this check can no longer be launched ("" if it can, or it was launched)."""
        if dry.run_id is not None:
            return ""  # the page links to its run instead
        return await self.stale(dry)

    def restore_check(
        self,
        campaign: Campaign,
        upload: Path,
        sheet_name: str,
        report: Path,
        ready: int,
        prints: dict[str, str],
        expect: tuple[str, ...],
    ) -> DryRun:
        """A check made earlier (a schedule kept it on disk) made launchable again: bound to
        the fingerprints it took then, so `launch` refuses it if any file changed since, and
        the run to the same `--expect-*-sha256`. Runs of the campaign since then do not make
        it stale: the ledger still calls nobody twice."""
        summary: dict[str, Any] = {"counts": {Status.READY: ready}}
        epoch = self._epochs.get(campaign.name, 0)
        return self._keep_check(
            campaign, sheet_name, upload, report, summary, dict(prints), epoch, expect
        )

    def _keep_check(
        self,
        campaign: Campaign,
        sheet_name: str,
        upload: Path,
        report: Path,
        summary: dict[str, Any],
        prints: dict[str, str],
        epoch: int,
        expect: tuple[str, ...],
    ) -> DryRun:
        """A check the page can launch, kept under a new unguessable id."""
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
            fingerprint=prints,
            epoch=epoch,
            expect=expect,
        )
        self.dry_runs[dry.id] = dry
        return dry

    def forget_checks_of(self, deleted: set[Path]) -> None:
        """Checks whose sheet (or report) was deleted can never launch: drop them."""
        for key in [k for k, d in self.dry_runs.items() if {d.upload, d.report} & deleted]:
            del self.dry_runs[key]

    def busy(self, campaign: str) -> bool:
        """A run of `campaign` is under way or starting from this page."""
        return self.active_run(campaign) is not None or campaign in self._launching

    def active_run(self, campaign: str) -> WebRun | None:
        return next(
            (r for r in self.runs.values() if r.campaign == campaign and not r.finished), None
        )

    def running(self) -> list[WebRun]:
        return [r for r in self.runs.values() if not r.finished]

    def running_uploads(self) -> set[Path]:
        """The sheets runs are calling from: never deleted under them."""
        return {r.upload for r in self.running()}

    async def launch(
        self, dry: DryRun, before_start: Callable[[], Awaitable[None]] | None = None
    ) -> WebRun:
        """Start the run this check previewed; CheckStale says why it may not, AlreadyRunning
        that the campaign is running (or starting: two quick clicks start one run).
        `before_start` (the audit entry) is awaited once nothing else refuses the launch; what
        it raises refuses it too."""
        held = self._held.get(dry.campaign)
        if self.active_run(dry.campaign) or (dry.campaign in self._launching and not held):
            raise AlreadyRunning(dry.campaign)
        if dry.run_id is not None:
            raise CheckStale(texts.LAUNCHED_ALREADY)
        if held is not None:  # a sync or a test call has the ledger: the launch waits its end
            await self._let_go(dry.campaign, held)
        self._launching.add(dry.campaign)  # before any await: two quick clicks start one run
        try:
            if reason := await self.stale(dry):
                raise CheckStale(reason)
            if before_start is not None:
                await before_start()
            return await self._start(dry)
        finally:
            self._launching.discard(dry.campaign)

    async def _start(self, dry: DryRun) -> WebRun:
        # The very file the check read (its fingerprint still matches), not whichever file
        # now claims the campaign's name.
        campaign = self.load(dry.campaign_path)
        report = page_report_path(campaign, dry.sheet_name)
        run = WebRun(
            id=secrets.token_urlsafe(12),
            campaign=dry.campaign,
            report=report,
            proc=None,
            started=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            upload=dry.upload,
            messages=deque(maxlen=self.settings.run_messages_shown),
            total=int(dry.summary.get("counts", {}).get(Status.READY, 0)),
            checked={str(k): int(v) for k, v in dry.summary.get("counts", {}).items()},
            sheet_name=dry.sheet_name,
            campaign_path=dry.campaign_path,
            line=self.run_line,
        )
        run.ticket = self.run_line.join(run)
        if run.ticket is None:  # started here: a failure to start is the launch's own
            try:
                with stop_signals_held:
                    run.proc = await self._spawn_run(campaign, dry, report)
            except BaseException:
                self.run_line.leave()
                raise
            follow = self._follow(run)
        else:  # in line: started when a run ends; the page says how many are ahead
            follow = self._wait_then_follow(run, run.ticket, campaign, dry, report)
        dry.run_id = run.id
        self.runs[run.id] = run
        self._new_epoch(dry.campaign)
        run.follower = asyncio.get_running_loop().create_task(follow)
        return run

    async def _wait_then_follow(
        self,
        run: WebRun,
        ticket: asyncio.Future[None],
        campaign: Campaign,
        dry: DryRun,
        report: Path,
    ) -> None:
        """A run in line: started when its turn comes (its child still checks the files
        against the check, `--expect-*`); stopped meanwhile, it ends having called nobody."""
        try:
            await self.run_line.turn(ticket)
        except asyncio.CancelledError:
            if run.stopping:  # Stop pressed: it leaves the line, having called nobody
                self._ended(run, ExitCode.INTERRUPTED)
                return
            raise
        run.ticket = None
        try:
            with stop_signals_held:
                run.proc = await self._spawn_run(campaign, dry, report)
        except OSError as exc:
            self.run_line.leave()
            run.messages.append(f"the run could not start: {exc.strerror or exc}")
            self._ended(run, ExitCode.INTERNAL)
            return
        if run.stopping:  # Stop pressed as its turn came: the same clean stop as a Ctrl-C
            with contextlib.suppress(ProcessLookupError):
                run.proc.send_signal(signal.SIGINT)
        run.changed.set()
        await self._follow(run)

    async def _spawn_run(
        self, campaign: Campaign, dry: DryRun, report: Path
    ) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "dialer",
            "run",
            str(campaign.path),
            "--contacts",
            str(dry.upload),
            "--report",
            str(report),
            *dry.expect,  # the run checks what it reads against this check: no window left
            "--yes",
            "--progress",
            "jsonl",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=self.child_env(),
            # Its own session: a Ctrl-C meant for the server must not reach the run as well
            # (with the server's own stop that makes two SIGINTs, which abort calls in flight).
            start_new_session=True,
        )

    async def _follow(self, run: WebRun) -> None:
        """Read the run's JSON progress lines until it exits; then its place in the runs'
        line goes to the next run waiting."""
        assert run.proc is not None and run.proc.stderr is not None
        try:
            async for raw in run.proc.stderr:
                line = raw.decode("utf-8", "replace").strip()
                if line.startswith("{"):
                    with contextlib.suppress(ValueError):
                        run.state = json.loads(line)
                elif line:
                    run.messages.append(line.removeprefix(ERROR_PREFIX))
                run.changed.set()
            exit_code = await run.proc.wait()
        finally:
            self.run_line.leave()
        with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
            counts = reports.read_summary(run.report).get("counts")
            if isinstance(counts, dict):
                run.final = {str(k): int(v) for k, v in counts.items()}
        self._ended(run, exit_code)

    def _ended(self, run: WebRun, exit_code: int) -> None:
        run.exit_code = exit_code
        self._new_epoch(run.campaign)  # checks made while it ran no longer hold
        run.changed.set()

    @contextlib.contextmanager
    def holding(self, campaign: str) -> Iterator[None]:
        """Keep launches of `campaign` off while something else takes its ledger (a sync,
        whose lock would refuse the run): a launch meanwhile waits for it to let go (the run
        page syncs on its own after a stop, just when "Resume" is pressed). The caller checks
        `busy` first, with no await between."""
        released = asyncio.Event()
        self._launching.add(campaign)
        self._held[campaign] = released
        try:
            yield
        finally:
            self._launching.discard(campaign)
            del self._held[campaign]
            released.set()

    async def _let_go(self, campaign: str, held: asyncio.Event) -> None:
        """Wait (bounded by the sync's own deadline) for the holder of `campaign`'s ledger;
        still held after that, or taken by another launch meanwhile: AlreadyRunning."""
        try:
            await asyncio.wait_for(held.wait(), self.settings.sync_timeout)
        except TimeoutError:
            raise AlreadyRunning(campaign) from None
        if self.busy(campaign):
            raise AlreadyRunning(campaign)

    def _new_epoch(self, campaign: str) -> None:
        self._epochs[campaign] = self._epochs.get(campaign, 0) + 1

    async def stop_all(self) -> None:
        """Server going down: stop each run cleanly and wait for its report and summary."""
        running = self.running()
        for run in running:
            run.interrupt()
        followers = [r.follower for r in running if r.follower is not None]
        if followers:
            await asyncio.wait(followers, timeout=self.settings.stop_wait)

    def child_env(self, **extra: str) -> dict[str, str]:
        """The server's environment (the API key included) minus the page's own token. Its
        runs and syncs leave their audit entries to the page, which names the person."""
        env = {k: v for k, v in self.environ.items() if k != TOKEN_ENV}
        return {**env, "PYTHONUNBUFFERED": "1", BY_PAGE_ENV: PAGE_ACTOR, **extra}


def _bound_files(campaign: Campaign, upload: Path) -> list[Path]:
    """What decides who is called and what they hear: fingerprinted at the check."""
    return [campaign.path, *campaign.contacts.suppress, upload]


def ledger_held(campaign: Campaign) -> bool:
    """Another process holds the campaign's run lock now. Blocking: run in a thread."""
    return lock_held(ledger_path(campaign))


def fingerprint(paths: Iterable[Path]) -> dict[str, str]:
    """Path -> SHA-256 of its content (MISSING if unreadable). Blocking: run in a thread."""
    return {str(path): file_sha256(path) for path in paths}


def _expect_options(campaign: Campaign, upload: Path, prints: dict[str, str]) -> tuple[str, ...]:
    """`--expect-*-sha256` for the run, from the fingerprints taken at the check. The page's own
    comparison at launch cannot cover the moments until the run reads the files; these can."""
    lists = (prints[str(p)] for p in campaign.contacts.suppress)
    return (
        "--expect-campaign-sha256",
        prints[str(campaign.path)],
        "--expect-contacts-sha256",
        contacts_sha256(prints[str(upload)], lists),
    )
