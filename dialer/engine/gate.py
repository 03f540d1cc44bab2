"""May this row be sent now? The one answer (SPEC 4.4, 6.3, 6.4), asked by `validate` (the dry
run), by the consent step, by `run` as each row is read and again as its request leaves, and
by `dialer status` (how many people the next run sends again).

    gate = Gate.for_campaign(campaign, options, ledger)
    verdict, facts = gate.read(contact)     # as the row is read; None: it may be sent
    verdict  # Verdict(Status.ALREADY_CALLED, 'triggered by an earlier run')
    gate.read_chunk(chunk)                  # the same for a chunk: one register lookup
    gate.on_send(contact, now)              # again as its request leaves (the window)

The ledger only answers facts (`Facts`: the last record it holds for a number, this
campaign's calls to it, and the calls of every campaign from `state/contacts.sqlite`); the
rules here decide. Each rule is one function in one of two tuples, and the first verdict wins:

* `RECORD_RULES`, `rule(facts, policy, now)`: what the ledger knows; judged once, as the row
  is read: already called, due for a redial (SPEC 10), maybe called, refused, over a limit.
* `CLOCK_RULES`, `rule(contact, now, window, legal)`: judged again just before the request
  leaves, so a long run that crosses the window's end stops calling those numbers: a skipped
  date, the campaign's `[window]`, then the legal floor (SPEC 12), which holds under every
  campaign, `[window]` or not.

Before all of them, the folder's opt-out register (SPEC 12): a number it holds is `opted_out`,
whatever the options say, looked up once per chunk of rows (`read_chunk`). It is judged
again, atomically, at the claim (`dialer.ledger.contact_limits`, `dialer.ledger.optouts`).

A new reason not to call someone is one more function in one of these tuples, and the dry
run, the run and `status` all follow it. (A limit is judged again, atomically, at the claim:
the ledger is handed `limit_rule(limits)` and `dialer.ledger.contact_limits` applies it.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Protocol

from dialer.campaign.model import Legal
from dialer.core.clock import Clock, system_clock
from dialer.core.statuses import CallOutcome, Status
from dialer.engine.legal_hours import legal_reason, skip_date_reason
from dialer.engine.options import RunOptions
from dialer.engine.window import check_window
from dialer.ledger.facts import NO_FACTS, Facts, History, Recent

if TYPE_CHECKING:
    from dialer.campaign.model import Campaign, Limits, Redial, Window
    from dialer.ledger.contact_limits import ContactBook, OverLimit
    from dialer.ledger.optouts import OptOut
    from dialer.sheets.contacts import Contact


class FactSource(Protocol):
    """The ledger, as the gate sees it."""

    def facts(self, called_to: str) -> Facts: ...

    def history(self, called_to: str) -> History | None: ...


class OptOutLookup(Protocol):
    """The folder's opt-out register, as the gate reads it: many numbers a query."""

    def entries(self, numbers: Iterable[str]) -> Mapping[str, OptOut]: ...


@dataclass(frozen=True, slots=True)
class Policy:
    """What the record rules weigh besides the facts: the run's options and the campaign's
    `[redial]` and `[limits]`. `outcomes_known` is False when this run could not read the
    call logs: nobody is redialed on an outcome that may be stale (SPEC 10)."""

    options: RunOptions = field(default_factory=RunOptions)
    redial: Redial | None = None
    limits: Limits | None = None
    outcomes_known: bool = True


@dataclass(frozen=True, slots=True)
class Verdict:
    """Why a row must not be sent now: the status it gets instead, and the reason shown."""

    status: Status
    reason: str


RETRY_UNKNOWN = "--retry-unknown sends it again"
LOGS_UNREAD = "the call logs could not be read this run: not redialed"
_OUTCOME_WORDS = {
    CallOutcome.ANSWERED: "answered",
    CallOutcome.VOICEMAIL: "voicemail",
    CallOutcome.BUSY: "busy",
    CallOutcome.NO_ANSWER: "no answer",
    CallOutcome.FAILED: "failed",
    CallOutcome.PENDING: "outcome not synced yet",
}


def outcome_words(outcome: CallOutcome) -> str:
    return _OUTCOME_WORDS[outcome]


def _ago(then: datetime | None, now: datetime) -> str:
    if then is None:
        return "earlier"
    seconds = max((now - then).total_seconds(), 0)
    if seconds < 60:
        return f"{seconds:.0f} s ago"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} days ago"


_FIRST_CALL = History(1, None, CallOutcome.PENDING)  # a record from before `dials`


def already_called(facts: Facts, policy: Policy, now: datetime) -> Verdict | None:
    """Nobody is called twice by one campaign unless `--recall` says so (SPEC 4.4), or
    `[redial]` (the next rule) says their last call should be tried again."""
    if facts.status is Status.TRIGGERED and not policy.options.recall and policy.redial is None:
        return Verdict(Status.ALREADY_CALLED, "triggered by an earlier run")
    return None


def redial(facts: Facts, policy: Policy, now: datetime) -> Verdict | None:
    """Called before: again only if the last call ended in one of `[redial] outcomes`, fewer
    than `max_calls` calls were made, the last is `after_minutes` old, and its outcome was
    read (never `answered`, never `pending`: an unknown outcome is no reason to call)."""
    rule = policy.redial
    if facts.status is not Status.TRIGGERED or policy.options.recall or rule is None:
        return None
    history = facts.history or _FIRST_CALL
    last, calls = history.last_outcome, history.calls
    made = f"{calls} of {rule.max_calls} calls made"
    if last is CallOutcome.ANSWERED:
        return Verdict(Status.ALREADY_CALLED, f"answered ({made})")
    if calls >= rule.max_calls:
        return Verdict(Status.ALREADY_CALLED, f"{made}, last: {last}")
    if last is CallOutcome.PENDING:
        return Verdict(
            Status.REDIAL_LATER,
            f"called {_ago(history.last_at, now)}, outcome not synced yet ({made})",
        )
    if last not in rule.outcomes:
        return Verdict(Status.ALREADY_CALLED, f"last call: {last}, not a [redial] outcome")
    if not policy.outcomes_known:
        return Verdict(Status.REDIAL_LATER, LOGS_UNREAD)
    due = history.last_at + timedelta(minutes=rule.after_minutes) if history.last_at else None
    if due is not None and now < due:
        when = due.strftime("%Y-%m-%d %H:%M UTC")
        return Verdict(
            Status.REDIAL_LATER,
            f"{outcome_words(last)} {_ago(history.last_at, now)}; "
            f"call {calls + 1} of {rule.max_calls} due {when}",
        )
    return None


def maybe_called(facts: Facts, policy: Policy, now: datetime) -> Verdict | None:
    """A request that left without a usable answer may have placed the call (SPEC 6.1, 6.3)."""
    if facts.status is Status.UNKNOWN and not policy.options.retry_unknown:
        return Verdict(
            Status.UNKNOWN, f"earlier run: {facts.reason or 'no answer'}; {RETRY_UNKNOWN}"
        )
    return None


def failed_for_good(facts: Facts, policy: Policy, now: datetime) -> Verdict | None:
    """A refusal for this row (400, other 4xx) would only be refused again."""
    if facts.status is Status.FAILED and not facts.retryable:
        return Verdict(Status.FAILED, f"earlier run: {facts.reason}")
    return None


def _calls(n: int, maybe: int) -> str:
    """`2 calls`, `1 call, 1 maybe` or `1 maybe`: a maybe (a call another run is placing
    now, or one cut off by a kill) counts toward a limit, as it may have rung."""
    placed = n - maybe
    said = [f"{placed} call" if placed == 1 else f"{placed} calls"] if placed else []
    return ", ".join([*said, f"{maybe} maybe"] if maybe else said)


def over_limit(recent: Recent, limits: Limits) -> str | None:
    """Why one more call would break a limit (the row's reason), or None."""
    if limits.per_day is not None and recent.day >= limits.per_day:
        return (
            f"{_calls(recent.day, recent.day_maybe)} in the last 24 hours across campaigns, "
            f"limit {limits.per_day}"
        )
    if limits.per_week is not None and recent.week >= limits.per_week:
        return (
            f"{_calls(recent.week, recent.week_maybe)} in the last 7 days across campaigns, "
            f"limit {limits.per_week}"
        )
    return None


def limit_rule(limits: Limits | None) -> OverLimit | None:
    """`over_limit` bound to a campaign's `[limits]`, for the shared contact counts to judge
    each claim by atomically (`ContactBook.reserve`); None: no limits, nothing refused."""
    if limits is None:
        return None
    return partial(over_limit, limits=limits)


def limited(facts: Facts, policy: Policy, now: datetime) -> Verdict | None:
    """Calls to one person across every campaign of the folder, per day and per week."""
    if policy.limits is None or facts.recent is None:
        return None
    why = over_limit(facts.recent, policy.limits)
    return Verdict(Status.LIMITED, why) if why is not None else None


def opted_out(entry: OptOut) -> Verdict:
    """On the folder's register: never sent, by any campaign, whatever the options say."""
    return Verdict(Status.OPTED_OUT, entry.row_reason())


def skipped_date(
    contact: Contact, now: datetime, window: Window | None, legal: Legal
) -> Verdict | None:
    """`[window] skip_dates`, in the callee's own calendar (SPEC 12)."""
    why = skip_date_reason(contact.called_to, contact.zone, now, legal.skip_dates)
    return Verdict(Status.OUTSIDE_WINDOW, why) if why is not None else None


def outside_window(
    contact: Contact, now: datetime, window: Window | None, legal: Legal
) -> Verdict | None:
    """Only inside the campaign's calling hours in the callee's zones (SPEC 6.4)."""
    check = check_window(window, contact.called_to, contact.zone, now)
    return None if check.allowed else Verdict(Status.OUTSIDE_WINDOW, check.reason)


def outside_legal_hours(
    contact: Contact, now: datetime, window: Window | None, legal: Legal
) -> Verdict | None:
    """The legal floor under every campaign, tightened by `[window.legal]` (SPEC 12)."""
    why = legal_reason(contact.called_to, contact.zone, now, legal.hours)
    return Verdict(Status.OUTSIDE_WINDOW, why) if why is not None else None


RecordRule = Callable[[Facts, Policy, datetime], "Verdict | None"]
ClockRule = Callable[["Contact", datetime, "Window | None", Legal], "Verdict | None"]
RECORD_RULES: tuple[RecordRule, ...] = (
    already_called,
    redial,
    maybe_called,
    failed_for_good,
    limited,
)
CLOCK_RULES: tuple[ClockRule, ...] = (skipped_date, outside_window, outside_legal_hours)


def redial_note(facts: Facts, policy: Policy) -> str:
    """What a redialed row's reason says ("call 2 of 3, last: no answer"); '' otherwise."""
    if policy.redial is None or facts.status is not Status.TRIGGERED or policy.options.recall:
        return ""
    history = facts.history or _FIRST_CALL
    return (
        f"call {history.calls + 1} of {policy.redial.max_calls}, "
        f"last: {outcome_words(history.last_outcome)}"
    )


class Gate:
    """The rules bound to one run's policy, window and legal hours, ledger (None: no ledger
    yet), the folder's contact book (None: no `[limits]` anywhere yet) and opt-out register
    (None: not consulted, e.g. `dialer status`)."""

    __slots__ = (
        "_book",
        "_clock",
        "_ledger",
        "_legal",
        "_optouts",
        "_unrecorded",
        "_window",
        "policy",
    )

    def __init__(
        self,
        window: Window | None,
        options: RunOptions | Policy | None = None,
        ledger: FactSource | None = None,
        *,
        book: ContactBook | None = None,
        clock: Clock = system_clock,
        legal: Legal | None = None,
        optouts: OptOutLookup | None = None,
    ) -> None:
        self._window = window
        self._legal = legal or Legal()
        self._optouts = optouts
        if isinstance(options, Policy):
            self.policy = options
        else:
            self.policy = Policy(options or RunOptions())
        self._ledger = ledger
        self._book = book if self.policy.limits is not None else None
        self._clock = clock
        # The record rules' answer for a number nobody has a record of.
        self._unrecorded = self.judge(NO_FACTS)

    @classmethod
    def for_campaign(
        cls,
        campaign: Campaign,
        options: RunOptions,
        ledger: FactSource | None,
        *,
        book: ContactBook | None = None,
        clock: Clock = system_clock,
        outcomes_known: bool = True,
        optouts: OptOutLookup | None = None,
    ) -> Gate:
        policy = Policy(options, campaign.redial, campaign.limits, outcomes_known)
        return cls(
            campaign.window,
            policy,
            ledger,
            book=book,
            clock=clock,
            legal=campaign.legal,
            optouts=optouts,
        )

    @property
    def options(self) -> RunOptions:
        return self.policy.options

    def with_options(self, options: RunOptions) -> Gate:
        """The same rules, facts and clock under other options (what `--retry-unknown` adds)."""
        return Gate(
            self._window,
            replace(self.policy, options=options),
            self._ledger,
            book=self._book,
            clock=self._clock,
            legal=self._legal,
            optouts=self._optouts,
        )

    def facts(self, called_to: str) -> Facts:
        facts = self._ledger.facts(called_to) if self._ledger is not None else NO_FACTS
        if (
            self.policy.redial is not None
            and facts.status is Status.TRIGGERED
            and self._ledger is not None
        ):
            facts = replace(facts, history=self._ledger.history(called_to))
        if self._book is not None:
            recent = self._book.recent(called_to, self._clock())
            if recent.week:
                facts = replace(facts, recent=recent)
        return facts

    def read(self, contact: Contact) -> tuple[Verdict | None, Facts]:
        """The verdict on a row as it is read (the sheet's own for a row that is not ready,
        else the record rules) and the facts it was judged on, looked up once: the caller
        asks `note(facts)` for a row let through, and the dry run counts unsynced redials."""
        if contact.status is not Status.READY:
            return Verdict(contact.status, contact.reason), NO_FACTS
        facts = self.facts(contact.called_to)
        # Most numbers of a sheet have no record: their answer is worked out once.
        return (self._unrecorded if facts is NO_FACTS else self.judge(facts)), facts

    def read_chunk(self, chunk: Sequence[Contact]) -> list[tuple[Verdict | None, Facts]]:
        """`read` for each row of a chunk, the register looked up once for all of them: a
        number it holds is `opted_out` before any other rule (no option overrides it)."""
        held: Mapping[str, OptOut] = {}
        if self._optouts is not None:
            ready = [c.called_to for c in chunk if c.status is Status.READY]
            held = self._optouts.entries(ready) if ready else {}
        return [
            (opted_out(held[c.called_to]), NO_FACTS)
            if c.called_to in held and c.status is Status.READY
            else self.read(c)
            for c in chunk
        ]

    def note(self, facts: Facts) -> str:
        """The reason a row the record rules let through carries ("call 2 of 3, ...")."""
        return redial_note(facts, self.policy)

    def judge(self, facts: Facts, now: datetime | None = None) -> Verdict | None:
        """The record rules alone, on facts the ledger gave (`status` counts its groups)."""
        now = now or self._clock()
        for rule in RECORD_RULES:
            verdict = rule(facts, self.policy, now)
            if verdict is not None:
                return verdict
        return None

    def on_send(self, contact: Contact, now: datetime) -> Verdict | None:
        """The clock rules, judged again as the request is about to leave."""
        for rule in CLOCK_RULES:
            verdict = rule(contact, now, self._window, self._legal)
            if verdict is not None:
                return verdict
        return None
