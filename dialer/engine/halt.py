"""Why a run stops sending, shared by the feed, the row senders and the result sink (SPEC 6.2).

    halt = Halt(watch=(lambda: ledger.failed, lambda: report.error))
    halt.stop(StopReason.INSUFFICIENT_BALANCE)      # the first reason wins
    halt.may_send()                                 # False from now on

A stop (402, campaign refused, a signal) lets requests already in flight finish; rows not yet
sent get `row_reason`. A file that can no longer record what happens (the ledger or the
report: disk full) stops the run at once: `may_send` is checked just before each POST.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from dialer.core.statuses import STOP_ROW_REASONS, DialerError, StopReason, internal_error


class Halt:
    __slots__ = ("_watch", "error", "event", "reason")

    def __init__(self, watch: Sequence[Callable[[], DialerError | None]] = ()) -> None:
        """`watch`: each returns the write failure of a file that must record every call."""
        self.reason: StopReason | None = None
        self.error: DialerError | None = None  # why the run stopped with StopReason.ERROR
        self.event = asyncio.Event()  # set with the first reason: sleepers wake at once
        self._watch = tuple(watch)

    def stop(self, reason: StopReason) -> None:
        """Stop sending: the first reason wins; in-flight requests finish."""
        if self.reason is None:
            self.reason = reason
            self.event.set()

    def fail(self, exc: BaseException) -> None:
        """Stop because something broke; the first error is what the run reports."""
        if self.error is None:
            self.error = exc if isinstance(exc, DialerError) else internal_error(exc)
        self.stop(StopReason.ERROR)

    def may_send(self) -> bool:
        """Checked just before a request leaves, with no await after it: nothing is sent once
        the run stops, or once a watched file can no longer record it."""
        if self.reason is None:
            for broken in self._watch:
                error = broken()
                if error is not None:
                    self.fail(error)
                    break
        return self.reason is None

    @property
    def row_reason(self) -> str:
        """The `reason` of rows a stop kept from being sent."""
        return STOP_ROW_REASONS[self.reason] if self.reason else "not sent"
