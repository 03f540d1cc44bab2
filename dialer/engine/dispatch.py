"""The worker pool: feed rows lazily through the gate, hand each ready row to a worker, stop
on a 402, a refused campaign, a signal or a file that cannot be written (SPEC 6.1, 6.2).

    dispatcher = Dispatcher(campaign, client, bodies, ledger, report, options)
    result = await dispatcher.run(stream.chunks())

The parts, in the order a row meets them: `gate` (may it be sent?), `sender` (its attempts),
`sink` (report and progress), `halt` (why the run stops). A stop lets requests already in
flight finish; every row not yet sent is recorded `not_attempted` with the stop's reason, and
the sheet is still read to the end so the report accounts for every row.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Iterator
from dataclasses import dataclass, replace

from dialer.campaign.model import Campaign
from dialer.core.clock import Clock, system_clock
from dialer.core.retry_policy import RetryPolicy
from dialer.core.settings import DEFAULTS, Settings
from dialer.core.statuses import DialerError, Status, StopReason
from dialer.engine.gate import Gate
from dialer.engine.halt import Halt
from dialer.engine.options import RunOptions
from dialer.engine.pacing import Pacer
from dialer.engine.progress import Progress
from dialer.engine.sender import RowSender
from dialer.engine.sink import ResultSink
from dialer.ledger.store import Ledger
from dialer.reports.writer import ReportWriter, RowResult
from dialer.sheets.contacts import Contact
from dialer.tabbly.client import BodyBuilder, TabblyClient


@dataclass(frozen=True, slots=True)
class RunResult:
    stop: StopReason | None
    requests_sent: int
    error: DialerError | None = None  # why the run stopped with StopReason.ERROR


class Dispatcher:
    def __init__(
        self,
        campaign: Campaign,
        client: TabblyClient,
        bodies: BodyBuilder,
        ledger: Ledger,
        report: ReportWriter,
        options: RunOptions,
        *,
        pacer: Pacer | None = None,
        policy: RetryPolicy | None = None,
        progress: Progress | None = None,
        gate: Gate | None = None,
        clock: Clock = system_clock,
        settings: Settings = DEFAULTS,
    ) -> None:
        dispatch = campaign.dispatch
        self.settings = settings
        self.options = options
        self.concurrency = dispatch.concurrency
        self.ledger = ledger
        self.halt = Halt(watch=(lambda: ledger.failed, lambda: report.error))
        self.gate = gate or Gate.for_campaign(campaign, options, ledger, clock=clock)
        self.sink = ResultSink(report, progress, self.halt)
        self.sender = RowSender(
            self.halt,
            self.gate,
            pacer or Pacer(dispatch.rate_per_second, settings=settings),
            policy or RetryPolicy(dispatch.max_attempts, settings=settings),
            client,
            bodies,
            ledger,
            clock,
        )
        self._queue: asyncio.Queue[Contact | None] = asyncio.Queue(
            maxsize=dispatch.concurrency * settings.queue_per_worker
        )

    def interrupt(self) -> None:
        """A stop signal (SPEC 6.2): the first stops sending and gives requests in flight
        `stop_grace_seconds` to finish; the second (or the grace's end) aborts them."""
        if self.halt.reason is StopReason.INTERRUPTED:
            self.sender.abort_inflight()  # cancelled requests are recorded `unknown`
            return
        self.halt.stop(StopReason.INTERRUPTED)
        loop = asyncio.get_running_loop()
        loop.call_later(self.settings.stop_grace_seconds, self.sender.abort_inflight)

    async def run(self, chunks: Iterator[list[Contact]]) -> RunResult:
        with _fewer_collections(self.settings):
            return await self._run(chunks)

    async def _run(self, chunks: Iterator[list[Contact]]) -> RunResult:
        workers = [
            asyncio.create_task(self._worker(), name=f"worker-{i}") for i in range(self.concurrency)
        ]
        try:
            await self._feed(chunks)
        except DialerError as exc:  # e.g. the sheet is unreadable past its first chunks
            self.halt.fail(exc)
        finally:
            for _ in workers:
                await self._queue.put(None)
            await asyncio.gather(*workers)
            self.sink.flush()
            try:
                await self.ledger.drain()
            except DialerError as exc:
                self.halt.fail(exc)
        return RunResult(self.halt.reason, self.sender.requests_sent, self.halt.error)

    async def _feed(self, chunks: Iterator[list[Contact]]) -> None:
        limit = self.options.limit
        queued = 0
        halt, gate, put = self.halt, self.gate, self.sink.put
        while True:
            # Reading and preparing a chunk is CPU work: keep it off the event loop.
            chunk = await asyncio.to_thread(next, chunks, None)
            if chunk is None:
                return
            for contact, (verdict, facts) in zip(chunk, gate.read_chunk(chunk), strict=True):
                if verdict is not None:
                    put(RowResult.of(contact, verdict.status, verdict.reason))
                elif halt.reason is not None:
                    put(RowResult.of(contact, Status.NOT_ATTEMPTED, halt.row_reason))
                elif limit is not None and queued >= limit:
                    reason = f"--limit {limit} reached for this run"
                    put(RowResult.of(contact, Status.NOT_ATTEMPTED, reason))
                else:
                    queued += 1
                    note = gate.note(facts)  # "call 2 of 3, last: no answer"
                    if note:
                        reason = "; ".join(filter(None, (note, contact.reason)))
                        contact = replace(contact, reason=reason)
                    await self._queue.put(contact)

    async def _worker(self) -> None:
        while True:
            contact = await self._queue.get()
            if contact is None:
                return
            result = await self.sender.send(contact)
            try:
                self.sink.put(result)
            except Exception as exc:  # a defect: stop, keep draining
                self.halt.fail(exc)


@contextlib.contextmanager
def _fewer_collections(settings: Settings) -> Iterator[None]:
    """Python's cycle collector, tuned while the rows are sent: what exists before (modules,
    the campaign, the plan) lives to the end, so it is set aside (`gc.freeze`) and no
    collection walks it again; and the youngest generation is collected after
    `gc_young_objects` allocations, not 700: a request's short-lived objects are mostly freed
    by reference counting before a collection would walk them. ~5% of a run's CPU. Both are
    undone after, for a process that goes on (tests, a long-lived caller)."""
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(settings.gc_young_objects, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
