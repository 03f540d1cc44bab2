"""A run's writes to its ledger, grouped: claims before their requests leave, outcomes after.

    batches = Batches(path, conn, clock)      # the Ledger holds one; `Ledger.claim` asks it
    await batches.claim(Claim(run_id, "+917359043943", 7))   # durable before the POST
    batches.record(Entry("+917359043943", Status.TRIGGERED)) # committed with the next batch

Every claim made in the same event-loop turn shares one transaction (synchronous=FULL: a
claim survives a power cut), so the ledger costs little at thousands of calls a second while
no request ever leaves before its claim is on disk. Each committed batch of claims is also
appended to the claims journal (`dialer.ledger.claims`) before its requests leave, so a lost
-wal cannot hide a call in flight. "Not sent" records (`not_attempted`, `outside_window`)
never overwrite a `triggered` or `unknown` person, so a `--recall` run that stops early
cannot make the next night forget who was called.

With the folder's shared contact counts (`use_book`), each batch of claims is reserved there
first, in one transaction with every other campaign's; the rule the caller hands in
(`OverLimit`: policy lives in the engine) refuses those over a limit, and a refused claim
gets its reason instead of being recorded. The book's transaction also refuses a number the
folder's opt-out register holds (`opted_out`). A folder without the shared file when the run
started is watched instead (`use_optouts`): each batch of claims is looked up in the register,
once its file appears, before the claims are committed.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from dialer.core.clock import Clock, stamp
from dialer.core.statuses import LedgerError, Status
from dialer.ledger.claims import Claim, ClaimsJournal
from dialer.ledger.entries import Entry, dial_params
from dialer.ledger.schema import (
    DELETE_CLAIM,
    INSERT_CLAIM,
    INSERT_DIAL,
    MARK_RUN,
    UPSERT,
    UPSERT_UNLESS_CALLED,
)
from dialer.ledger.sqlite import transaction, write_error

if TYPE_CHECKING:
    from dialer.ledger.contact_limits import ContactBook, OverLimit
    from dialer.ledger.facts import Refusal
    from dialer.ledger.optouts import Watch

# Records of a row a run did not send: never replacing a call (`UPSERT_UNLESS_CALLED`).
NOT_SENT = frozenset(
    {
        Status.NOT_ATTEMPTED,
        Status.OUTSIDE_WINDOW,
        Status.LIMITED,
        Status.REDIAL_LATER,
        Status.OPTED_OUT,
    }
)
# Records of a request that left: each is a call in `dials` (an `unknown` one a maybe).
DIALLED = frozenset({Status.TRIGGERED, Status.UNKNOWN})


class Batches:
    """The pending writes of one run's ledger and their grouped commits. A failed write is
    kept: every later use raises it, so no request leaves after it."""

    def __init__(self, path: Path, conn: sqlite3.Connection, clock: Clock) -> None:
        self.path = path
        self.clock = clock
        self.run_id: int | None = None  # set when the run starts
        self.journal: ClaimsJournal | None = None  # a run's claims journal, when writable
        self._conn = conn
        self._pending: list[Entry | Claim] = []
        self._flush_waiter: asyncio.Future[None] | None = None
        self.error: LedgerError | None = None
        # The folder's shared contact counts (`dialer.ledger.contact_limits`), when there are
        # any: each batch of claims is reserved there first; refused claims get their reason.
        self._book: ContactBook | None = None
        self._over_limit: OverLimit | None = None  # the caller's rule (the engine's)
        self._book_names = ("", "")  # campaign, run key
        self._refused: dict[str, Refusal] = {}
        self._optouts: Watch | None = None  # the register, when there is no book
        # Calls the upstream accepted whose line in the book still says maybe: marked in
        # the same batch's claims transaction, or on their own after a batch without claims.
        self._placed: list[str] = []

    def use_book(
        self, book: ContactBook, campaign: str, run: str, over_limit: OverLimit | None
    ) -> None:
        """Record the claims in the folder's contact counts, refusing those `over_limit`
        judges over a limit (None: refusing none)."""
        self._book, self._over_limit = book, over_limit
        self._book_names = (campaign, run)

    def use_optouts(self, watch: Watch) -> None:
        """Without a book: refuse the claims of numbers the register holds, read per batch."""
        self._optouts = watch

    async def claim(self, claim: Claim) -> Refusal | None:
        """Record `sending` and wait until it is committed: only then may the request leave.
        A refusal instead when the person opted out or a contact limit refuses the call
        (nothing is then recorded)."""
        self.check()
        self._pending.append(claim)
        await self._schedule_flush()
        return self._refused.pop(claim.called_to, None)

    def release(self, called_to: str) -> None:
        """A claimed call certainly not placed: it no longer counts against a limit."""
        if self._book is not None:
            self._book.release([called_to], *self._book_names)

    def record(self, entry: Entry) -> None:
        """Record an outcome; committed with the next batch (no need to wait)."""
        self.check()
        self._pending.append(entry)
        self._schedule_flush()

    async def drain(self) -> None:
        """Wait until everything recorded so far is committed."""
        while self._pending:
            await self._schedule_flush()
        self.check()

    def commit_pending(self) -> None:
        """Commit what is pending now, without the event loop (a run's end, a close)."""
        batch, self._pending = self._pending, []
        self.commit(batch)

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def _schedule_flush(self) -> asyncio.Future[None]:
        if self._flush_waiter is None:
            loop = asyncio.get_running_loop()
            self._flush_waiter = loop.create_future()
            # After every callback already queued: claims made this turn share a commit.
            loop.call_soon(self._flush)
        return self._flush_waiter

    def _flush(self) -> None:
        # On the loop's own thread: a commit is short, and a hand-off to a writer thread
        # cost far more than it saved (each batch waited for the GIL; see bench/).
        waiter, self._flush_waiter = self._flush_waiter, None
        self.commit_pending()
        if waiter is not None and not waiter.done():
            if self.error is not None:
                waiter.set_exception(self.error)
                # Marked retrieved: `record()` never awaits it (asyncio would print "Future
                # exception was never retrieved"); claims awaiting it still get the error.
                waiter.exception()
            else:
                waiter.set_result(None)

    def commit(self, batch: list[Entry | Claim]) -> None:
        """One transaction for the batch; a failure is kept and raised on every later use."""
        if not batch or self.error is not None:
            return
        now = stamp(self.clock())
        claimed, book_error = self._reserve([c for c in batch if isinstance(c, Claim)], batch)
        outcomes = [e for e in batch if isinstance(e, Entry)]
        try:
            self._write(claimed, outcomes, self.run_id, now)
        except sqlite3.Error as exc:
            self.error = write_error(self.path, exc)
            return
        if book_error is not None:
            self.error = book_error
            return
        if claimed and self.journal is not None:
            # After the commit and before any of these requests leaves (their claims await
            # this flush): see `dialer.ledger.claims` for why this order.
            try:
                self.journal.append(claimed, now)
            except OSError as exc:
                self.error = LedgerError(
                    f"{self.journal.path}: cannot write the claims journal: {exc.strerror}"
                )
                return
        if self._placed and self._book is not None:  # no claims carried them
            self._book.placed(self._placed, *self._book_names)
            self._placed = []

    def _reserve(
        self, claimed: list[Claim], batch: list[Entry | Claim]
    ) -> tuple[list[Claim], LedgerError | None]:
        """The claims the book (or, without one, the opt-out register) lets leave, and the
        failure to read or write it."""
        if self._book is None:
            return self._unless_opted_out(claimed)
        # Accepted by the upstream: placed, committed or not.
        self._placed += [
            e.called_to for e in batch if isinstance(e, Entry) and e.status is Status.TRIGGERED
        ]
        if not claimed:
            return claimed, None
        try:
            refused = self._book.reserve(
                [c.called_to for c in claimed],
                self._book_names[0],
                self._book_names[1],
                self.clock(),
                self._over_limit,
                placed=self._placed,
            )
            self._placed = []
        except LedgerError as exc:
            # No claim of this batch may leave, but the outcomes of calls already placed
            # are still recorded: the run stops with this error after the commit.
            return [], exc
        return self._without(claimed, refused), None

    def _unless_opted_out(self, claimed: list[Claim]) -> tuple[list[Claim], LedgerError | None]:
        if self._optouts is None or not claimed:
            return claimed, None
        try:
            refused = self._optouts.refusals([c.called_to for c in claimed])
        except LedgerError as exc:
            return [], exc
        return self._without(claimed, refused), None

    def _without(self, claimed: list[Claim], refused: dict[str, Refusal]) -> list[Claim]:
        """The claims that may leave: the refused ones are kept, with why, for their rows."""
        if not refused:
            return claimed
        self._refused.update(refused)
        return [c for c in claimed if c.called_to not in refused]

    def _write(
        self, claimed: list[Claim], outcomes: list[Entry], run_id: int | None, now: str
    ) -> None:
        """The claims and outcomes in one transaction. Grouped by statement for executemany;
        safe because a batch holds at most one entry per person (a claim is committed before
        its request leaves, the outcome comes after)."""
        conn = self._conn
        with transaction(conn):
            conn.executemany(INSERT_CLAIM, [(c.called_to, c.row, run_id, now) for c in claimed])
            conn.executemany(
                UPSERT, [e.params(run_id, now) for e in outcomes if e.status not in NOT_SENT]
            )
            unsent = [e for e in outcomes if e.status in NOT_SENT]
            conn.executemany(UPSERT_UNLESS_CALLED, [e.params(run_id, now) for e in unsent])
            conn.executemany(MARK_RUN, [(run_id, e.called_to) for e in unsent])
            conn.executemany(DELETE_CLAIM, [(e.called_to,) for e in outcomes])
            conn.executemany(
                INSERT_DIAL, [dial_params(e, run_id, now) for e in outcomes if e.status in DIALLED]
            )
