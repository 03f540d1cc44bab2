"""`dialer sync` run by the page as a child process: one at a time per campaign (a second ask
joins the first), `syncs_at_once` in all (the rest wait in line, and the page says so), each
with its data memory capped like a check's.

    syncs = Syncs(site.jobs, site.settings)
    state = await syncs.sync(campaign)          # state.ok, state.message: said on the page

A sync is never started while the campaign runs or a launch of it is starting, and no launch
starts while it syncs (the ledger lock would refuse either; the page says so in a sentence
instead). The API key stays in the server's environment, which the child inherits.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from aiohttp import web

from dialer.campaign.model import Campaign
from dialer.core.statuses import ERROR_PREFIX
from dialer.outcomes.sync import UPDATED_LINE
from dialer.web import texts
from dialer.web.services.child_processes import (
    communicate_within,
    limited_python,
    ran_out_of_memory,
)
from dialer.web.services.jobs import Jobs
from dialer.web.services.waiting_line import Line
from dialer.web.settings import Settings


@dataclass(slots=True)
class SyncState:
    """A campaign's syncs from this page: the one under way, and what the last one said."""

    task: asyncio.Task[None] | None = None
    ended: float | None = None  # the loop's time when the last sync ended
    ok: bool = True
    message: str = ""
    updated: int | None = None  # calls the last sync updated (None: it did not finish)

    @property
    def running(self) -> bool:
        return self.task is not None


class Syncs:
    """`dialer sync` children, one at a time per campaign (a second request joins the first)
    and `syncs_at_once` in all (the rest wait in line, and the page says so), each with its
    data memory capped like a check's."""

    def __init__(self, jobs: Jobs, settings: Settings) -> None:
        self.jobs = jobs
        self.settings = settings
        self.states: dict[str, SyncState] = {}
        self.line = Line(settings.syncs_at_once)

    def said(self, campaign: str) -> tuple[bool, str]:
        """What the section says of the campaign's sync: waiting in line, or how it went."""
        state = self.state(campaign)
        ahead = self.line.ahead(state)
        if state.running and ahead is not None:
            return True, texts.sync_queued(ahead)
        return state.ok, state.message

    def state(self, campaign: str) -> SyncState:
        return self.states.setdefault(campaign, SyncState())

    def due(self, campaign: str) -> bool:
        """An automatic sync may start: none under way, the last one `auto_sync_every` ago."""
        state = self.state(campaign)
        if state.running or state.ended is None:
            return not state.running
        now = asyncio.get_running_loop().time()
        return now - state.ended >= self.settings.auto_sync_every

    async def sync(self, campaign: Campaign) -> SyncState:
        """Sync `campaign` (or wait for the sync under way); its state says how it went."""
        state = self.state(campaign.name)
        if state.task is None:
            if self.jobs.busy(campaign.name):
                state.ok, state.message = False, texts.sync_refused_running(campaign.name)
                return state
            # Held before any await, let go when the task ends however it ends (even cancelled
            # before it began): a launch meanwhile is refused, not left to fail on the lock.
            hold = contextlib.ExitStack()
            hold.enter_context(self.jobs.holding(campaign.name))
            ticket = self.line.join(state)  # in line from now: the page says so at once
            queued = ticket is not None
            state.task = asyncio.get_running_loop().create_task(self._sync(campaign, state, ticket))
            state.task.add_done_callback(lambda _task: hold.close())
        else:
            queued = self.line.ahead(state) is not None
        if not queued:  # one in line is not waited for: the page says how many are ahead
            # Shielded: a visitor who leaves does not stop the sync others wait for.
            await asyncio.shield(state.task)
        return state

    async def _sync(
        self, campaign: Campaign, state: SyncState, ticket: asyncio.Future[None] | None
    ) -> None:
        try:
            await self.line.turn(ticket)
            try:
                state.updated = None
                state.ok, state.message = await self._child(campaign, state)
            finally:
                self.line.leave()
        except OSError as exc:
            state.ok, state.message = False, texts.sync_failed(exc.strerror or str(exc))
        finally:
            state.task = None
            state.ended = asyncio.get_running_loop().time()

    async def _child(self, campaign: Campaign, state: SyncState) -> tuple[bool, str]:
        proc = await asyncio.create_subprocess_exec(
            *limited_python(self.settings.sync_memory),
            "sync",
            str(campaign.path),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.jobs.child_env(),  # the server's environment, the API key included
            start_new_session=True,
        )
        try:
            out, err = await communicate_within(proc, self.settings.sync_timeout)
        except TimeoutError:
            return False, texts.SYNC_TOO_SLOW
        if proc.returncode == 0:
            said = out.decode("utf-8", "replace")
            if "never run" in said:
                return True, texts.SYNC_NEVER_RUN
            updated = UPDATED_LINE.search(said)
            state.updated = int(updated[1]) if updated else 0
            return True, texts.synced(state.updated)
        lines = err.decode("utf-8", "replace").strip().splitlines()
        reason = lines[-1].removeprefix(ERROR_PREFIX) if lines else f"exit code {proc.returncode}"
        if "another run of campaign" in reason:  # the ledger lock: a run from elsewhere
            return False, texts.sync_refused_locked(campaign.name)
        if ran_out_of_memory(err.decode("utf-8", "replace"), proc.returncode):
            return False, texts.sync_needs_memory(self.settings)  # over sync_memory
        key = self.jobs.environ.get(campaign.api_key_env, "")
        if len(key) >= 8:  # the CLI never prints it; a second guard costs nothing
            reason = reason.replace(key, "[API key]")
        return False, texts.sync_failed(reason)

    async def stop_all(self, _app: web.Application | None = None) -> None:
        """Server going down: stop the syncs (a sync stores all or nothing)."""
        tasks = [s.task for s in self.states.values() if s.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=self.settings.stop_wait)
