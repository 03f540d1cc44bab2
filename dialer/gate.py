"""May this row be sent now? The one answer (SPEC 4.4, 6.3, 6.4), asked by `validate` (the dry
run), by the consent step, by `run` as each row is read and again as its request leaves, and
by `dialer status` (how many people the next run sends again).

    >>> gate = Gate(campaign.window, options, ledger)
    >>> gate.verdict(contact, now)              # None: send it now
    Verdict(status=<Status.ALREADY_CALLED: 'already_called'>, reason='triggered by an earlier run')

The ledger only answers facts (`Facts`: the last record it holds for a number); the rules here
decide. Each rule is one function in one of two tuples, and the first verdict wins:

* `RECORD_RULES`, `rule(facts, options)`: what the ledger knows; judged once, as the row is read.
* `CLOCK_RULES`, `rule(contact, now, window)`: judged again just before the request leaves, so
  a long run that crosses the window's end stops calling those numbers.

A new reason not to call someone (redial after N days, a limit across campaigns) is one more
function in one of these tuples, and the dry run, the run and `status` all follow it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from dialer.run_options import RunOptions
from dialer.statuses import Status
from dialer.window import check_window

if TYPE_CHECKING:
    from dialer.campaign import Window
    from dialer.contacts import Contact


@dataclass(frozen=True, slots=True)
class Facts:
    """What the ledger knows of one number: its last record (`status` None: none yet)."""

    status: Status | None = None
    reason: str = ""
    retryable: bool = False  # a failure whose cause placed no call (a later run may send)


NO_FACTS = Facts()


class FactSource(Protocol):
    """The ledger, as the gate sees it."""

    def facts(self, called_to: str) -> Facts: ...


@dataclass(frozen=True, slots=True)
class Verdict:
    """Why a row must not be sent now: the status it gets instead, and the reason shown."""

    status: Status
    reason: str


RETRY_UNKNOWN = "--retry-unknown sends it again"


def already_called(facts: Facts, options: RunOptions) -> Verdict | None:
    """Nobody is called twice by one campaign unless `--recall` says so (SPEC 4.4)."""
    if facts.status is Status.TRIGGERED and not options.recall:
        return Verdict(Status.ALREADY_CALLED, "triggered by an earlier run")
    return None


def maybe_called(facts: Facts, options: RunOptions) -> Verdict | None:
    """A request that left without a usable answer may have placed the call (SPEC 6.1, 6.3)."""
    if facts.status is Status.UNKNOWN and not options.retry_unknown:
        return Verdict(
            Status.UNKNOWN, f"earlier run: {facts.reason or 'no answer'}; {RETRY_UNKNOWN}"
        )
    return None


def failed_for_good(facts: Facts, options: RunOptions) -> Verdict | None:
    """A refusal for this row (400, other 4xx) would only be refused again."""
    if facts.status is Status.FAILED and not facts.retryable:
        return Verdict(Status.FAILED, f"earlier run: {facts.reason}")
    return None


def outside_window(contact: Contact, now: datetime, window: Window | None) -> Verdict | None:
    """Only inside the campaign's calling hours in the callee's zones (SPEC 6.4)."""
    check = check_window(window, contact.called_to, contact.zone, now)
    return None if check.allowed else Verdict(Status.OUTSIDE_WINDOW, check.reason)


RecordRule = Callable[[Facts, RunOptions], "Verdict | None"]
ClockRule = Callable[["Contact", datetime, "Window | None"], "Verdict | None"]
RECORD_RULES: tuple[RecordRule, ...] = (already_called, maybe_called, failed_for_good)
CLOCK_RULES: tuple[ClockRule, ...] = (outside_window,)


class Gate:
    """The rules bound to one run's options, window and ledger (None: no ledger yet)."""

    __slots__ = ("_ledger", "_unrecorded", "_window", "options")

    def __init__(
        self,
        window: Window | None,
        options: RunOptions | None = None,
        ledger: FactSource | None = None,
    ) -> None:
        self._window = window
        self.options = options or RunOptions()
        self._ledger = ledger
        # The record rules' answer for a number the ledger has no record of.
        self._unrecorded = self.judge(NO_FACTS)

    def facts(self, called_to: str) -> Facts:
        return self._ledger.facts(called_to) if self._ledger is not None else NO_FACTS

    def on_read(self, contact: Contact) -> Verdict | None:
        """The sheet's own verdict on a row that is not ready, else the record rules."""
        if contact.status is not Status.READY:
            return Verdict(contact.status, contact.reason)
        facts = self.facts(contact.called_to)
        # Most numbers of a sheet have no record: their answer is worked out once.
        return self._unrecorded if facts is NO_FACTS else self.judge(facts)

    def judge(self, facts: Facts) -> Verdict | None:
        """The record rules alone, on facts the ledger gave (`status` counts its groups)."""
        for rule in RECORD_RULES:
            verdict = rule(facts, self.options)
            if verdict is not None:
                return verdict
        return None

    def on_send(self, contact: Contact, now: datetime) -> Verdict | None:
        """The clock rules, judged again as the request is about to leave."""
        for rule in CLOCK_RULES:
            verdict = rule(contact, now, self._window)
            if verdict is not None:
                return verdict
        return None

    def verdict(self, contact: Contact, now: datetime) -> Verdict | None:
        """Every rule: the status a row would get if it were sent at `now` (the dry run)."""
        return self.on_read(contact) or self.on_send(contact, now)
