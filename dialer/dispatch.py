"""The worker pool: feed rows lazily, check the window, claim in the ledger, pace, send, retry,
stop (SPEC 6.1, 6.2, 6.4).

    >>> dispatcher = Dispatcher(campaign, client, ledger, report, options)
    >>> result = await dispatcher.run(stream.chunks())

Order of things for one ready row, each step a reason the call may not happen::

    stopped? -> limit? -> ledger verdict -> window -> claim (`sending`, committed)
             -> pace -> stopped? -> POST -> outcome -> retry after backoff, or record

A stop (402, campaign refused, a signal) lets requests already in flight finish; every row
not yet sent is recorded `not_attempted` with the stop's reason, and the sheet is still read
to the end so the report accounts for every row.

When the ledger or the report cannot be written (disk full), the run stops at once: the check
just before each POST means no request leaves once either has failed (SPEC 6.3), and a row
whose request left keeps the upstream's answer (or `unknown`), never `not_attempted`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from dialer.campaign import Campaign
from dialer.contacts import Contact
from dialer.ledger import SENDING, Entry, Ledger
from dialer.pacing import Pacer
from dialer.paths import utc_now_text
from dialer.progress import Progress
from dialer.report import ReportWriter, RowResult
from dialer.retry_policy import RetryPolicy
from dialer.run_options import RunOptions
from dialer.statuses import (
    FIRST_ANSWERS_ALL_400,
    STOP_ROW_REASONS,
    DialerError,
    Status,
    StopReason,
    internal_error,
)
from dialer.tabbly import BodyBuilder, Kind, Outcome, TabblyClient
from dialer.window import check_window

# After a first SIGINT/SIGTERM, requests in flight get this long before they are aborted.
STOP_GRACE_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class RunResult:
    stop: StopReason | None
    requests_sent: int
    error: DialerError | None = None  # why the run stopped with StopReason.ERROR


def _utc_now() -> datetime:
    return datetime.now(UTC)


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
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.campaign = campaign
        self.client = client
        self.bodies = bodies
        self.ledger = ledger
        self.report = report
        self.options = options
        self.pacer = pacer or Pacer(campaign.dispatch.rate_per_second)
        self.policy = policy or RetryPolicy(campaign.dispatch.max_attempts)
        self.progress = progress
        self.clock = clock
        self.stop_reason: StopReason | None = None
        self._stopped = asyncio.Event()
        self._queue: asyncio.Queue[Contact | None] = asyncio.Queue(
            maxsize=campaign.dispatch.concurrency * 4
        )
        self.requests_sent = 0
        self._answers: list[int] = []
        self._posting: set[asyncio.Task[None]] = set()  # workers waiting for an answer
        self._aborted: set[asyncio.Task[None]] = set()
        self._sent_rows: set[int] = set()  # rows whose request has left, until recorded
        self.error: DialerError | None = None
        self._report_flush_due = False

    # ---- stopping ----

    def stop(self, reason: StopReason) -> None:
        """Stop sending: the first reason wins; in-flight requests finish."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self._stopped.set()

    def fail(self, exc: BaseException) -> None:
        """Stop because something broke; the first error is what the run reports."""
        if self.error is None:
            self.error = exc if isinstance(exc, DialerError) else internal_error(exc)
        self.stop(StopReason.ERROR)

    def abort_inflight(self) -> None:
        """Second interrupt (or grace over): cancel requests in flight; they become `unknown`."""
        for task in list(self._posting):
            if task not in self._aborted:
                self._aborted.add(task)
                task.cancel()

    # ---- writing results ----

    def _finish(self, result: RowResult) -> None:
        # Rows finished in one event-loop turn reach the OS together, at the end of the turn.
        try:
            self.report.write(result, flush=False)
        except DialerError as exc:  # the report's disk is full: stop sending at once
            self.fail(exc)
        if not self._report_flush_due:
            self._report_flush_due = True
            asyncio.get_running_loop().call_soon(self._flush_report)
        if self.progress is not None:
            self.progress.row_done(result)

    def _flush_report(self) -> None:
        self._report_flush_due = False
        try:
            self.report.flush()
        except DialerError as exc:
            self.fail(exc)

    def _may_send(self) -> bool:
        """Checked just before a request leaves, with no await after it: nothing is sent once
        the run stops, or once the ledger or the report can no longer record it."""
        if self.stop_reason is None:
            broken = self.ledger.failed or self.report.error
            if broken is not None:
                self.fail(broken)
        return self.stop_reason is None

    @property
    def _stop_text(self) -> str:
        """The `reason` of rows a stop kept from being sent."""
        return STOP_ROW_REASONS[self.stop_reason] if self.stop_reason else "not sent"

    def _not_attempted(self, contact: Contact, reason: str | None = None) -> RowResult:
        return RowResult.of(contact, Status.NOT_ATTEMPTED, reason or self._stop_text)

    # ---- the feed ----

    async def run(self, chunks: Iterator[list[Contact]]) -> RunResult:
        workers = [
            asyncio.create_task(self._worker(), name=f"worker-{i}")
            for i in range(self.campaign.dispatch.concurrency)
        ]
        try:
            await self._feed(chunks)
        except DialerError as exc:  # e.g. the sheet is unreadable past its first chunks
            self.fail(exc)
        finally:
            for _ in workers:
                await self._queue.put(None)
            await asyncio.gather(*workers)
            self._flush_report()
            try:
                await self.ledger.drain()
            except DialerError as exc:
                self.fail(exc)
        return RunResult(self.stop_reason, self.requests_sent, self.error)

    async def _feed(self, chunks: Iterator[list[Contact]]) -> None:
        limit = self.options.limit
        queued = 0
        while True:
            # Reading and preparing a chunk is CPU work: keep it off the event loop.
            chunk = await asyncio.to_thread(next, chunks, None)
            if chunk is None:
                return
            for contact in chunk:
                if contact.status is not Status.READY:
                    self._finish(RowResult.of(contact))
                    continue
                verdict = self.ledger.verdict(
                    contact.called_to,
                    recall=self.options.recall,
                    retry_unknown=self.options.retry_unknown,
                )
                if verdict is not None:
                    self._finish(RowResult.of(contact, verdict.status, verdict.reason))
                    continue
                if self.stop_reason is not None:
                    self._finish(self._not_attempted(contact))
                    continue
                if limit is not None and queued >= limit:
                    self._finish(
                        self._not_attempted(contact, f"--limit {limit} reached for this run")
                    )
                    continue
                queued += 1
                await self._queue.put(contact)

    # ---- one row ----

    async def _worker(self) -> None:
        while True:
            contact = await self._queue.get()
            if contact is None:
                return
            result = await self._send_row(contact)
            try:
                self._finish(result)
            except Exception as exc:  # a defect: stop, keep draining
                self.fail(exc)

    @staticmethod
    def _entry(
        contact: Contact,
        status: str,
        reason: str = "",
        *,
        retryable: bool = False,
        outcome: Outcome | None = None,
        attempts: int = 0,
    ) -> Entry:
        return Entry(
            called_to=contact.called_to,
            status=status,
            reason=reason,
            retryable=retryable,
            http_status=outcome.http_status if outcome else None,
            attempts=attempts,
            call_id=outcome.call_id if outcome else "",
            custom_identifiers=contact.custom_identifiers,
            row=contact.row,
        )

    async def _send_row(self, contact: Contact) -> RowResult:
        """One row to its final result; a failure inside stops the run but loses no row."""
        try:
            return await self._send_row_steps(contact)
        except Exception as exc:
            self.fail(exc)
            # Not written to the ledger: it may be what failed. A sent row stays "maybe".
            if contact.row in self._sent_rows:
                self._sent_rows.discard(contact.row)
                return RowResult.of(contact, Status.UNKNOWN, f"sent, then: {self.error}")
            return RowResult.of(contact, Status.NOT_ATTEMPTED, f"not sent: {self.error}")

    async def _send_row_steps(self, contact: Contact) -> RowResult:
        if self.stop_reason is not None:
            return self._not_attempted(contact)
        window = self.campaign.window
        check = check_window(window, contact.called_to, contact.zone, self.clock())
        if not check.allowed:
            self.ledger.record(self._entry(contact, str(Status.OUTSIDE_WINDOW), check.reason))
            return RowResult.of(contact, Status.OUTSIDE_WINDOW, check.reason)

        started = utc_now_text()
        body = self.bodies.build(contact)
        attempt = 0
        outcome: Outcome | None = None
        claimed = False
        while True:
            granted = await self.pacer.wait(self._stopped)
            if granted is None or self.stop_reason is not None:
                return self._unclaim(contact, attempt, outcome, started)
            # Checked again now, as the request leaves: the pacer may have held it past the end.
            if window is not None:
                check = check_window(window, contact.called_to, contact.zone, self.clock())
                if not check.allowed:
                    return self._record(
                        contact,
                        Status.OUTSIDE_WINDOW,
                        check.reason,
                        attempt,
                        outcome,
                        started,
                        retryable=True,
                    )
            if not claimed:
                # Claimed only now, just before the request leaves: a run killed while rows
                # wait for the pacer leaves none of them `unknown`.
                await self.ledger.claim(self._entry(contact, SENDING))
                claimed = True
                if self.stop_reason is not None:
                    return self._unclaim(contact, attempt, outcome, started)
                # A slow commit must not shift this request into the next second's budget:
                # the pacer's cap holds only if the request leaves within the margin. The
                # unused grant goes back, so a slow disk costs no send slot.
                if self.pacer.late(granted):
                    self.pacer.give_back(granted)
                    if await self.pacer.wait(self._stopped) is None:
                        return self._unclaim(contact, attempt, outcome, started)
            if not self._may_send():
                return self._unclaim(contact, attempt, outcome, started)
            attempt += 1
            self._sent_rows.add(contact.row)
            outcome = await self._post(body)
            self._note_answer(outcome)
            kind = outcome.kind
            if kind in (Kind.RETRY, Kind.STOP_BALANCE):
                self._sent_rows.discard(contact.row)  # the upstream certainly placed no call
            if kind is Kind.TRIGGERED:
                return self._record(contact, Status.TRIGGERED, "", attempt, outcome, started)
            if kind is Kind.UNKNOWN:
                return self._record(
                    contact, Status.UNKNOWN, outcome.reason, attempt, outcome, started
                )
            if kind is Kind.FAILED:
                return self._record(
                    contact, Status.FAILED, outcome.reason, attempt, outcome, started
                )
            if kind is Kind.STOP_BALANCE:
                self.stop(StopReason.INSUFFICIENT_BALANCE)
                return self._unclaim(contact, attempt, outcome, started)
            if kind is Kind.STOP_CAMPAIGN:
                self.stop(StopReason.CAMPAIGN_REFUSED)
                return self._record(
                    contact,
                    Status.FAILED,
                    outcome.reason,
                    attempt,
                    outcome,
                    started,
                    retryable=True,
                )
            delay = self.policy.delay(attempt, outcome.retry_after)
            if delay is None:
                return self._record(
                    contact,
                    Status.FAILED,
                    f"{outcome.reason} (after {attempt} attempts)",
                    attempt,
                    outcome,
                    started,
                    retryable=True,
                )
            # Back off, but wake at once if the run stops meanwhile.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), timeout=delay)

    async def _post(self, body: bytes) -> Outcome:
        task = asyncio.current_task()
        assert task is not None
        self._posting.add(task)
        self.requests_sent += 1
        try:
            return await self.client.post(body)
        except asyncio.CancelledError:
            if task in self._aborted:  # our own abort, not a cancellation from outside
                self._aborted.discard(task)
                task.uncancel()
                return Outcome(Kind.UNKNOWN, "aborted while waiting for the answer (interrupted)")
            raise
        finally:
            self._posting.discard(task)

    def _note_answer(self, outcome: Outcome) -> None:
        """Stop the campaign if each of the first five HTTP answers was 400 (SPEC 6.2)."""
        if outcome.http_status is None or len(self._answers) >= FIRST_ANSWERS_ALL_400:
            return
        self._answers.append(outcome.http_status)
        if len(self._answers) == FIRST_ANSWERS_ALL_400 and all(s == 400 for s in self._answers):
            self.stop(StopReason.CAMPAIGN_REFUSED)

    def _record(
        self,
        contact: Contact,
        status: Status,
        reason: str,
        attempts: int,
        outcome: Outcome | None,
        started: str,
        *,
        retryable: bool = False,
    ) -> RowResult:
        http_status = outcome.http_status if outcome else None
        call_id = outcome.call_id if outcome else ""
        if status is Status.TRIGGERED and contact.reason:
            reason = contact.reason  # keep notes such as "phone cleaned"
        entry = self._entry(
            contact, str(status), reason, retryable=retryable, outcome=outcome, attempts=attempts
        )
        try:
            self.ledger.record(entry)
        except DialerError as exc:
            # The ledger failed (disk full): stop. The report keeps what really happened;
            # its claim, already on disk, makes the next run treat the row as maybe called.
            self.fail(exc)
            reason = "; ".join(filter(None, (reason, f"not recorded in the ledger: {exc}")))
        self._sent_rows.discard(contact.row)
        return RowResult(
            contact,
            status,
            reason,
            http_status=http_status,
            attempts=attempts,
            call_id=call_id,
            started_at=started,
            finished_at=utc_now_text(),
        )

    def _unclaim(
        self, contact: Contact, attempts: int, outcome: Outcome | None, started: str
    ) -> RowResult:
        """The run stopped before this row's call was placed: the next run sends it."""
        reason = self._stop_text
        return self._record(contact, Status.NOT_ATTEMPTED, reason, attempts, outcome, started)
