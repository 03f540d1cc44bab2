"""What the ledger knows of one number, as value types: the gate judges them, the ledger and
the shared contact counts only state them (storage answers facts, never policy)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from dialer.core.statuses import CallOutcome, Status


@dataclass(frozen=True, slots=True)
class Recent:
    """Calls to one person across campaigns: in the last 24 hours, and in the last 7 days;
    of each, the maybes (a claim whose request may never have left: a kill, an `unknown`)."""

    day: int = 0
    week: int = 0
    day_maybe: int = 0
    week_maybe: int = 0


NONE_RECENT = Recent()


@dataclass(frozen=True, slots=True)
class History:
    """This campaign's calls to one person (the ledger's `dials`): how many, the last one."""

    calls: int
    last_at: datetime | None
    last_outcome: CallOutcome  # `pending` until a sync reads its log


@dataclass(frozen=True, slots=True)
class Facts:
    """What is known of one number: its last record (`status` None: none yet), and when asked
    for, this campaign's calls to it and every campaign's recent calls to it."""

    status: Status | None = None
    reason: str = ""
    retryable: bool = False  # a failure whose cause placed no call (a later run may send)
    history: History | None = None
    recent: Recent | None = None

    @property
    def accounted_for(self) -> bool:
        """The record alone says no new call (before any option or table of the campaign:
        the gate's verdict under the default policy, a test holds the two together): called,
        maybe called, or refused for good."""
        if self.status is Status.FAILED:
            return not self.retryable
        return self.status in (Status.TRIGGERED, Status.UNKNOWN)


NO_FACTS = Facts()


@dataclass(frozen=True, slots=True)
class Refusal:
    """A claim the folder's shared state refused as its request was about to leave:
    `opted_out` (the register holds the number) or `limited` (a limit), and the row's reason."""

    status: Status
    reason: str

    def __str__(self) -> str:
        return self.reason
