"""The child processes of the page: checks (`dialer validate`) and runs (`dialer run --yes
--progress jsonl`), started, followed and stopped here, so the page follows exactly the CLI's
rules, ledger and report.

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
import os
import secrets
import signal
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dialer.campaign.binding import MISSING, contacts_sha256, file_sha256
from dialer.campaign.model import Campaign
from dialer.core.interrupts import STOP_SIGNALS
from dialer.core.paths import ledger_path, page_report_path
from dialer.core.statuses import (
    ERROR_PREFIX,
    FINISHED_CODES,
    SEND_PROBLEMS,
    ExitCode,
    Status,
    UsageError,
)
from dialer.ledger.store import lock_held
from dialer.web import texts
from dialer.web.auth import TOKEN_ENV
from dialer.web.services import reports
from dialer.web.settings import Settings


class ChecksBusy(Exception):
    """`max_checks` checks are under way already."""


class AlreadyRunning(Exception):
    """The campaign has a run under way (or starting) already."""


class CheckStale(Exception):
    """A launch refused because the check no longer shows what the run would do."""


class Line:
    """At most `size` children at once (runs, or syncs), first come first served; the rest
    wait in line and the page says how many are ahead of each.

        ticket = line.join(who)       # None: a place now; else wait for its turn:
        await line.turn(ticket)       # (`ahead(who)`: how many wait before it)
        ...
        line.leave()                  # the place goes to the first in line

    Joining takes no await, so the page says "queued" from the very request that queued.
    A ticket cancelled (`ticket.cancel()`) leaves the line without ever taking a place.
    """

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self.busy = 0
        self._waiting: list[tuple[object, asyncio.Future[None]]] = []  # in arrival order

    @property
    def free(self) -> bool:
        """One more would start at once."""
        return self.busy < self.size and not self._waiting

    def ahead(self, who: object) -> int | None:
        """How many wait before `who`; None when it is not waiting."""
        return next((i for i, (key, _) in enumerate(self._waiting) if key is who), None)

    def join(self, who: object) -> asyncio.Future[None] | None:
        """A place now (None), or a ticket done when `who`'s turn comes."""
        if self.free:
            self.busy += 1
            return None
        ticket: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((who, ticket))
        return ticket

    async def turn(self, ticket: asyncio.Future[None] | None) -> None:
        """Wait for the ticket's turn (handed over by `leave`); cancelled, out of line."""
        if ticket is None:
            return
        try:
            await ticket
        except asyncio.CancelledError:
            self._waiting = [w for w in self._waiting if w[1] is not ticket]
            if ticket.done() and not ticket.cancelled():
                self.leave()  # handed a place just as it was given up: pass it on
            raise

    def leave(self) -> None:
        while self._waiting:
            _, ticket = self._waiting.pop(0)
            if not ticket.done():
                ticket.set_result(None)  # the place passes on: `busy` unchanged
                return
        self.busy -= 1


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
    # The `dialer run` options that make the run itself refuse files other than those checked.
    expect: tuple[str, ...] = ()

    @property
    def report_file(self) -> str:
        return self.report.name


@dataclass(slots=True)
class WebRun:
    id: str
    campaign: str
    report: Path
    proc: asyncio.subprocess.Process | None  # None while it waits in line (`runs_at_once`)
    started: str
    upload: Path
    messages: deque[str]
    state: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    stopping: bool = False
    follower: asyncio.Task[None] | None = None
    final: dict[str, int] | None = None  # the summary's counts once the run has ended
    total: int = 0  # N of "x of N": the people its check said would be called
    sheet_name: str = ""  # the uploader's file name, for "Resume the N not called"
    campaign_path: Path | None = None
    checked: dict[str, int] = field(default_factory=dict)  # its check's counts
    line: Line | None = None  # the runs' line
    ticket: asyncio.Future[None] | None = None  # its place in line, while it waits

    def interrupt(self) -> None:
        """SIGINT once: the same clean stop as one Ctrl-C (a second would abort calls). A run
        still waiting in line leaves it: nobody was called (exit 130, "Resume" offered)."""
        if self.stopping or self.finished:
            return
        self.stopping = True
        if self.proc is None:  # in line (or just leaving it: started, then stopped)
            if self.ticket is not None:
                self.ticket.cancel()
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGINT)

    @property
    def ahead(self) -> int | None:
        """Runs waiting in line before this one (None: it is not waiting)."""
        if self.proc is not None or self.finished or self.line is None:
            return None
        return self.line.ahead(self)

    @property
    def finished(self) -> bool:
        return self.exit_code is not None

    def people(self) -> list[tuple[str, int, str]]:
        """What became of the N people of the run's check, as (key, count, words) parts that
        add up to N: called, failed, maybe called, and the rest not called, each with why.
        Rows the check already left out (invalid, duplicates, already called...) are not
        among the N; anyone not accounted for is waiting (or, once ended, not called)."""
        counts = self.final if self.final is not None else self.state.get("counts", {})
        left = self.total
        found: dict[str, int] = {}
        for status in (Status.TRIGGERED, Status.FAILED, Status.UNKNOWN, *NOT_CALLED_ORDER):
            # A status the check gave a row (unknown, failed, already called by an earlier
            # run...) kept that row out of the N: only rows that became it now count.
            seen = counts.get(status, 0) - self.checked.get(status, 0)
            found[status] = min(max(seen, 0), left)
            left -= found[status]
        if self.finished:  # never reached: not called, for the reason the run stopped
            found[Status.NOT_ATTEMPTED] += left
        parts = [(str(s), n, texts.status_words(s, self.exit_code)) for s, n in found.items()]
        if not self.finished:
            parts.append(("waiting", left, texts.WAITING))
        return [p for p in parts if p[1]]

    def view(self) -> dict[str, Any]:
        """What the run page and its event stream show: "x of N" counts people tried (called,
        failed or maybe called) out of those the check said would be called, never rows read;
        the parts of N add up to N."""
        counts = self.final if self.final is not None else self.state.get("counts", {})
        parts = self.people()
        tried = sum(n for key, n, _ in parts if key in TRIED)
        if self.exit_code is not None:
            text = texts.run_state(self.exit_code, parts, self.total)
        elif (ahead := self.ahead) is not None:
            text = texts.queued(ahead)
        elif self.stopping:
            text = "stopping: calls in flight are finishing"
        elif self.state:
            text = "calling"
        else:
            text = "starting"
        elapsed = float(self.state.get("elapsed", 0) or 0)
        left = None
        if not self.finished and self.total and tried and elapsed > 0:
            left = (self.total - tried) * elapsed / tried  # at the rate so far
        stopped = self.exit_code in RESUMABLE_EXITS
        not_called = [[n, words] for key, n, words in parts if key not in TRIED]
        resume = sum(n for key, n, _ in parts if key == Status.NOT_ATTEMPTED)
        return {
            "id": self.id,
            "campaign": self.campaign,
            "finished": self.finished,
            "exit_code": self.exit_code,
            "state_text": text,
            "total": self.total,
            "total_text": texts.people(self.total),
            "left_out": texts.left_out(self.checked),
            "called": tried,
            "progress_text": texts.progress_text(tried, self.total),
            "time_left": texts.time_left(left),
            "not_called": not_called,
            "resume": resume if stopped else 0,
            "counts": [[key, n, words] for key, n, words in parts],
            "rate": self.state.get("calls_per_second", 0),
            "done": self.state.get("done", 0),
            "failures": [_failure_words(f) for f in self.state.get("failures", [])],
            "messages": list(self.messages),
            "codes": {str(s): counts[s] for s in map(str, Status) if counts.get(s)},
        }


def _failure_words(failure: Any) -> Any:
    """A failed row of the live view with its status in words (the code stays in the report)."""
    if isinstance(failure, dict) and isinstance(failure.get("status"), str):
        return {**failure, "status": texts.status_words(failure["status"], None)}
    return failure


# Rows a run tried to call: "x" of "x of N". Their request left (or certainly failed).
TRIED = frozenset({Status.TRIGGERED}) | SEND_PROBLEMS
# Rows of the check's N the run did not call, each said in plain words on the run page.
NOT_CALLED = frozenset(
    {
        Status.NOT_ATTEMPTED,
        Status.OUTSIDE_WINDOW,
        Status.LIMITED,
        Status.REDIAL_LATER,
        Status.ALREADY_CALLED,
    }
)
# The order the run page lists why people were not called.
NOT_CALLED_ORDER = (
    Status.NOT_ATTEMPTED,
    Status.OUTSIDE_WINDOW,
    Status.LIMITED,
    Status.REDIAL_LATER,
    Status.ALREADY_CALLED,
)
# Stops after which "Resume the N not called" is offered: nothing about the campaign is wrong.
RESUMABLE_EXITS = frozenset({ExitCode.INSUFFICIENT_BALANCE, ExitCode.INTERRUPTED})


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

    # ---- checks ----

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
            message = self._check_failure(err.decode("utf-8", "replace"), proc.returncode)
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

    def child_failure(self, stderr: str, returncode: int | None) -> str:
        """The one line a failed child of the page (a check, a sheet probe) is shown as."""
        return self._check_failure(stderr, returncode)

    def _check_failure(self, stderr: str, returncode: int | None) -> str:
        lines = stderr.strip().splitlines()
        message = lines[-1] if lines else f"the check ended with exit code {returncode}"
        lowered = stderr.lower()
        ran_out = "memory" in lowered or "failed to map" in lowered
        if not message.startswith(ERROR_PREFIX) and (ran_out or (returncode or 0) < 0):
            # Over check_memory: MemoryError, a native library giving up, or a signal.
            return texts.check_needs_memory(self.settings)
        return message.removeprefix(ERROR_PREFIX)

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

    # ---- runs ----

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

    async def launch(self, dry: DryRun) -> WebRun:
        """Start the run this check previewed; CheckStale says why it may not, AlreadyRunning
        that the campaign is running (or starting: two quick clicks start one run)."""
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
                with _stop_signals_held:
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
            with _stop_signals_held:
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
        """The server's environment (the API key included) minus the page's own token."""
        env = {k: v for k, v in self.environ.items() if k != TOKEN_ENV}
        return {**env, "PYTHONUNBUFFERED": "1", **extra}


class _StopSignalsHeld:
    """Block the stop signals in this thread while runs are spawned: a child inherits the mask
    across exec, so a Stop (SIGINT) or SIGTERM reaching it during its interpreter's start-up
    waits until its handlers are installed (dialer/interrupts.py unblocks them), then ends it
    with exit 130 and one line instead of killing it with no word. Counted, because spawns
    overlap (each awaits): only the last one out unblocks, and only what it blocked. Signals
    to this server meanwhile are delivered then."""

    def __init__(self) -> None:
        self._depth = 0
        self._blocked: set[signal.Signals] = set()

    def __enter__(self) -> None:
        if self._depth == 0:
            before = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
            self._blocked = set(STOP_SIGNALS) - set(before)
        self._depth += 1

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0 and self._blocked:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, self._blocked)


_stop_signals_held = _StopSignalsHeld()  # one per process: the mask is the loop thread's


def _bound_files(campaign: Campaign, upload: Path) -> list[Path]:
    """What decides who is called and what they hear: fingerprinted at the check."""
    return [campaign.path, *campaign.contacts.suppress, upload]


def ledger_held(campaign: Campaign) -> bool:
    """Another process holds the campaign's run lock now. Blocking: run in a thread."""
    return lock_held(ledger_path(campaign))


def fingerprint(paths: Iterable[Path]) -> dict[str, str]:
    """Path -> SHA-256 of its content (MISSING if unreadable). Blocking: run in a thread."""
    return {str(path): file_sha256(path) for path in paths}


async def communicate_within(
    proc: asyncio.subprocess.Process, seconds: float, stdin: bytes | None = None
) -> tuple[bytes, bytes]:
    """A child's output; past `seconds` (TimeoutError), or when the caller is cancelled, the
    child and everything it started (its own session: a check's workers) are killed first."""
    try:
        return await asyncio.wait_for(proc.communicate(stdin), seconds)
    except (TimeoutError, asyncio.CancelledError):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        raise


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


def limited_python(data_bytes: int, module: str = "dialer") -> list[str]:
    """`python -m dialer` (or `module`) with its data memory capped (RLIMIT_DATA, inherited by
    its workers): a sheet that needs more fails that one check, not the server. Set in the
    child itself, not by preexec_fn, which is unsafe in a process with threads. RLIMIT_DATA
    rather than RLIMIT_AS: shared libraries and reserved-but-unused address space do not
    count, real allocations do."""
    code = (
        "import resource, runpy, sys; n = int(sys.argv.pop(1)); "
        "resource.setrlimit(resource.RLIMIT_DATA, (n, n)); "
        f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True)"
    )
    return [sys.executable, "-c", code, str(data_bytes)]
