"""One row's attempts, from the moment a worker takes it to its final `RowResult`: the window,
the pace, the claim, the POST, what the answer means, the backoff (SPEC 6.1-6.4).

    sender = RowSender(halt, gate, pacer, policy, client, bodies, ledger, clock)
    result = await sender.send(contact)        # never raises: a defect stops the run

Order of things for one ready row, each step a reason the call may not happen::

    stopped? -> window -> pace -> stopped? -> window again -> claim (`sending`, committed;
             or refused: over a contact limit) -> may send? -> POST
             -> answer's kind (statuses.KIND_RULES)
             -> RETRY: back off, pace again ... ; else the row's record

The claim is made once, just before the first request leaves: a run killed while rows wait
for the pacer leaves none of them `unknown`. A row whose request left keeps the upstream's
answer (or `unknown`), never `not_attempted`.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from dialer.core.clock import Clock, stamp
from dialer.core.retry_policy import RetryPolicy
from dialer.core.statuses import (
    FIRST_ANSWERS_ALL_400,
    KIND_RULES,
    DialerError,
    Kind,
    Status,
    StopReason,
)
from dialer.engine.gate import Gate
from dialer.engine.halt import Halt
from dialer.engine.pacing import Pacer
from dialer.ledger.claims import Claim
from dialer.ledger.entries import Entry
from dialer.ledger.facts import Refusal
from dialer.ledger.store import Ledger
from dialer.reports.writer import RowResult
from dialer.sheets.contacts import Contact
from dialer.tabbly.client import BodyBuilder, Outcome, TabblyClient

ABORTED = "aborted while waiting for the answer (interrupted)"


@dataclass(slots=True)
class Tries:
    """One row's attempts so far: what its ledger record and report line are made of."""

    contact: Contact
    started: str
    attempts: int = 0
    outcome: Outcome | None = None  # the last answer
    claimed: bool = False
    refused: Refusal | None = None  # the register or a contact limit refused the claim
    sent: bool = False  # a request left and may have placed the call (no answer says otherwise)


class RowSender:
    """Sends rows one at a time per worker; shared by every worker of a run."""

    def __init__(
        self,
        halt: Halt,
        gate: Gate,
        pacer: Pacer,
        policy: RetryPolicy,
        client: TabblyClient,
        bodies: BodyBuilder,
        ledger: Ledger,
        clock: Clock,
    ) -> None:
        self._halt = halt
        self._gate = gate
        self._pacer = pacer
        self._policy = policy
        self._client = client
        self._bodies = bodies
        self._ledger = ledger
        self._clock = clock
        self.requests_sent = 0
        self._answers: list[int] = []
        self._posting: set[asyncio.Task[object]] = set()  # workers waiting for an answer
        self._aborted: set[asyncio.Task[object]] = set()

    async def send(self, contact: Contact) -> RowResult:
        """One row to its final result; a failure inside stops the run but loses no row."""
        tries = Tries(contact, stamp(self._clock()))
        try:
            return await self._attempts(tries)
        except Exception as exc:
            self._halt.fail(exc)
            # Not written to the ledger: it may be what failed. A sent row stays "maybe".
            if tries.sent:
                return RowResult.of(contact, Status.UNKNOWN, f"sent, then: {self._halt.error}")
            return RowResult.of(contact, Status.NOT_ATTEMPTED, f"not sent: {self._halt.error}")

    async def _attempts(self, tries: Tries) -> RowResult:
        halt, contact = self._halt, tries.contact
        if halt.reason is not None:  # as if never queued: nothing to record (the feed's way)
            return RowResult.of(contact, Status.NOT_ATTEMPTED, halt.row_reason)
        verdict = self._gate.on_send(contact, self._clock())
        body = b"" if verdict is not None else self._bodies.build(contact)
        while verdict is None:
            granted = await self._pacer.wait(halt.event)
            if granted is None or halt.reason is not None:
                return self._unsent(tries)
            # Checked again now, as the request leaves: the pacer may have held it past the end.
            verdict = self._gate.on_send(contact, self._clock())
            if verdict is not None:
                break
            if not tries.claimed and not await self._claim(tries, granted):
                if tries.refused is not None:
                    return self._record(tries, tries.refused.status, tries.refused.reason)
                return self._unsent(tries)
            if not halt.may_send():
                return self._unsent(tries)
            outcome = await self._post(tries, body)
            rule = KIND_RULES[outcome.kind]
            if rule.stop is not None:
                halt.stop(rule.stop)
            if rule.status is Status.NOT_ATTEMPTED:
                return self._unsent(tries)
            if outcome.kind is not Kind.RETRY:
                return self._record(tries, rule.status, outcome.reason, rule.retryable)
            delay = self._policy.delay(tries.attempts, outcome.retry_after)
            if delay is None:
                reason = f"{outcome.reason} (after {tries.attempts} attempts)"
                return self._record(tries, rule.status, reason, rule.retryable)
            # Back off, but wake at once if the run stops meanwhile.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(halt.event.wait(), timeout=delay)
        return self._record(tries, verdict.status, verdict.reason)

    async def _claim(self, tries: Tries, granted: float) -> bool:
        """Record `sending` (committed) before the first request leaves; False: stopped."""
        contact = tries.contact
        refused = await self._ledger.claim(
            Claim(self._ledger.run_id or 0, contact.called_to, contact.row)
        )
        if refused is not None:  # opted out, or over a limit: nothing recorded, not sent
            tries.refused = refused
            self._pacer.give_back(granted)
            return False
        tries.claimed = True
        if self._halt.reason is not None:
            return False
        # A slow commit must not shift this request into the next second's budget: the
        # pacer's cap holds only if the request leaves within the margin. The unused grant
        # goes back, so a slow disk costs no send slot.
        if self._pacer.late(granted):
            self._pacer.give_back(granted)
            if await self._pacer.wait(self._halt.event) is None:
                return False
        return True

    async def _post(self, tries: Tries, body: bytes) -> Outcome:
        tries.attempts += 1
        tries.sent = True
        self.requests_sent += 1
        outcome = await self._answer(body)
        tries.outcome = outcome
        if KIND_RULES[outcome.kind].placed_no_call:
            tries.sent = False
        self._note_answer(outcome)
        return outcome

    async def _answer(self, body: bytes) -> Outcome:
        """The upstream's answer; `unknown` when `abort_inflight` gave up waiting for it."""
        task = asyncio.current_task()
        assert task is not None
        self._posting.add(task)
        try:
            return await self._client.post(body)
        except asyncio.CancelledError:
            if task in self._aborted:  # our own abort, not a cancellation from outside
                self._aborted.discard(task)
                task.uncancel()
                return Outcome(Kind.UNKNOWN, ABORTED)
            raise
        finally:
            self._posting.discard(task)

    def abort_inflight(self) -> None:
        """Second interrupt (or grace over): cancel requests in flight; they become `unknown`."""
        for task in list(self._posting):
            if task not in self._aborted:
                self._aborted.add(task)
                task.cancel()

    def _note_answer(self, outcome: Outcome) -> None:
        """Stop the campaign if each of the first five HTTP answers was 400 (SPEC 6.2)."""
        if outcome.http_status is None or len(self._answers) >= FIRST_ANSWERS_ALL_400:
            return
        self._answers.append(outcome.http_status)
        if len(self._answers) == FIRST_ANSWERS_ALL_400 and all(s == 400 for s in self._answers):
            self._halt.stop(StopReason.CAMPAIGN_REFUSED)

    def _unsent(self, tries: Tries) -> RowResult:
        """The run stopped before this row's call was placed: the next run sends it."""
        return self._record(tries, Status.NOT_ATTEMPTED, self._halt.row_reason)

    def _record(
        self, tries: Tries, status: Status, reason: str, retryable: bool = False
    ) -> RowResult:
        """The row's final record in the ledger, and its report line."""
        contact, outcome = tries.contact, tries.outcome
        if status is Status.TRIGGERED and contact.reason:
            reason = contact.reason  # keep notes such as "phone cleaned"
        entry = Entry(
            called_to=contact.called_to,
            status=status,
            reason=reason,
            retryable=retryable,
            http_status=outcome.http_status if outcome else None,
            attempts=tries.attempts,
            call_id=outcome.call_id if outcome else "",
            custom_identifiers=contact.custom_identifiers,
            row=contact.row,
            participant_identity=outcome.participant_identity if outcome else "",
        )
        try:
            self._ledger.record(entry)
            if tries.claimed and not tries.sent:  # certainly not placed: frees its count
                self._ledger.release(contact.called_to)
        except DialerError as exc:
            # The ledger failed (disk full): stop. The report keeps what really happened;
            # its claim, already on disk, makes the next run treat the row as maybe called.
            self._halt.fail(exc)
            reason = "; ".join(filter(None, (reason, f"not recorded in the ledger: {exc}")))
        return RowResult(
            contact,
            status,
            reason,
            http_status=entry.http_status,
            attempts=entry.attempts,
            call_id=entry.call_id,
            started_at=tries.started,
            finished_at=stamp(self._clock()),
        )
