"""What a campaign's ledger says, read only (a run may hold its lock): the outcomes of a run
or of everyone called (`read_outcomes`: with what they said, and who was called), the test
calls placed (`read_test_calls`), and the cost estimate a check shows (`estimate_cost`).
Each is blocking: run it in a thread.

    outcomes = read_outcomes(campaign, run.report)      # None: no ledger, or not that run
    estimate_cost(campaign, ready=49).text              # "about $4.90 (49 people × ...)"
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from dialer.campaign.model import Campaign
from dialer.campaign.paths import ledger_path
from dialer.core.currencies import money
from dialer.core.masking import mask_phone, mask_text
from dialer.core.statuses import CallOutcome, DialerError, Kind
from dialer.ledger import dials
from dialer.ledger.store import Ledger
from dialer.web import texts

_FOLD = re.compile(r"[\s_\-]+")  # "Do Not Call", "do-not-call", "do_not_call": one disposition


@dataclass(frozen=True, slots=True)
class Outcomes:
    """What the ledger says of the people a run (or the whole campaign) called."""

    counts: dict[CallOutcome, int]  # each person's last call's outcome
    cost: float
    answer_rate: float | None
    calls_per_hour: float | None
    synced_at: str | None  # when a sync last stored an outcome of these calls
    # What they said: each person's last call's `call_outcome` (folded), most first; None
    # when the ledger keeps no dispositions (a ledger from before them).
    dispositions: dict[str, int] | None = None
    numbers: tuple[str, ...] = ()  # the people called, once each

    @property
    def people(self) -> int:
        return sum(self.counts.values())

    @property
    def known(self) -> int:
        return self.people - self.counts.get(CallOutcome.PENDING, 0)


def _open(campaign: Campaign) -> Ledger | None:
    """The campaign's ledger, read only (no lock: a run may hold it); None if there is none."""
    path = ledger_path(campaign)
    if not path.is_file():
        return None
    with contextlib.suppress(DialerError, sqlite3.Error, OSError):
        return Ledger.open_readonly(path, campaign_file=campaign.path)
    return None


def read_outcomes(
    campaign: Campaign, report: Path | None = None, *, rate_after: float = 0.0
) -> Outcomes | None:
    """The outcomes of the run whose report is `report` (None: of everyone the campaign
    called); None when there is no ledger or it does not know that run. Calls per hour only
    once the runs lasted `rate_after` seconds. Blocking."""
    ledger = _open(campaign)
    if ledger is None:
        return None
    try:
        conn = ledger.connection
        run_id = None
        if report is not None:
            # The ledger keeps each run's report as an absolute path; names are unique.
            runs = dials.run_reports(conn).items()
            run_id = next((r for r, stored in runs if Path(stored).name == report.name), None)
            if run_id is None:
                return None
        counts = dials.last_outcomes(conn, run_id)
        return Outcomes(
            counts=counts,
            cost=dials.total_cost(conn, run_id),
            answer_rate=dials.answer_rate(counts),
            calls_per_hour=dials.calls_per_hour(conn, run_id, min_seconds=rate_after),
            synced_at=dials.last_synced_at(conn, run_id),
            dispositions=disposition_counts(conn, run_id),
            numbers=dials.called_numbers(conn, run_id),
        )
    except sqlite3.Error:  # an old ledger without the dials table: nothing to show yet
        return None
    finally:
        with contextlib.suppress(DialerError, sqlite3.Error, OSError):
            ledger.close()


def disposition_counts(conn: sqlite3.Connection, run_id: int | None) -> dict[str, int] | None:
    """How many people's last call (of the run) ended with each disposition, folded for case,
    spaces and `-`/`_` ("Do Not Call" and "do_not_call" are one bar), most first; None when
    the ledger keeps none (a ledger from before dispositions were kept)."""
    found = dials.dispositions(conn, run_id, top=sys.maxsize)
    if not found and not dials.keeps_dispositions(conn):
        return None
    counts: Counter[str] = Counter()
    for value, n in found:
        folded = _FOLD.sub("_", str(value).strip().casefold()).strip("_")
        if folded:
            counts[folded] += n
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


@dataclass(frozen=True, slots=True)
class TestCallLine:
    """One test call as the campaign's page lists it: the number masked, its cost if known
    (the campaign's cost per call, from synced calls or its file: "≈")."""

    __test__ = False

    at: str  # UTC, to the second
    number: str
    said: str
    cost: str


def read_test_calls(
    campaign: Campaign, count: int, since: str
) -> tuple[list[TestCallLine], int, str]:
    """The newest `count` test calls, how many were placed since `since` (a stamp), and
    about what those cost ("" when no cost per call is known). Blocking."""
    estimate = estimate_cost(campaign, 1)
    each = money(estimate.per_call, campaign.currency) if estimate.per_call is not None else ""
    ledger = _open(campaign)
    if ledger is None:
        return [], 0, ""
    try:
        found = ledger.recent_test_calls(count)
    except sqlite3.Error:  # a ledger from before test calls
        return [], 0, ""
    finally:
        with contextlib.suppress(DialerError, sqlite3.Error, OSError):
            ledger.close()
    lines = [
        TestCallLine(
            at.replace("T", " ")[:19],
            mask_phone(number),
            texts.test_call_words(status, mask_text(reason)),
            f"≈ {each}" if each and status == Kind.TRIGGERED.value else "",
        )
        for at, number, status, reason in found
    ]
    placed = sum(1 for at, _, status, _ in found if at >= since and status == Kind.TRIGGERED.value)
    total = money(placed * estimate.per_call, campaign.currency) if each else ""
    return lines, placed, total


@dataclass(frozen=True, slots=True)
class CostEstimate:
    ready: int
    per_call: float | None  # None: unknown
    source: str  # "synced" (the ledger's average), "campaign" (cost_per_call) or ""
    calls: int = 0  # the calls the average is over
    currency: str | None = None  # the campaign's, said after each amount

    @property
    def total(self) -> float | None:
        return None if self.per_call is None else self.ready * self.per_call

    @property
    def total_text(self) -> str:
        return "" if self.total is None else money(self.total, self.currency)

    @property
    def text(self) -> str:
        return texts.cost_estimate_text(
            self.ready, self.per_call, self.source, self.calls, self.currency
        )


def estimate_cost(campaign: Campaign | None, ready: int) -> CostEstimate:
    """Ready rows × the campaign's average cost per call from synced outcomes, else its
    `cost_per_call`, else unknown. Blocking (reads the ledger)."""
    if campaign is None:
        return CostEstimate(ready, None, "")
    ledger = _open(campaign)
    if ledger is not None:
        try:
            average = dials.average_cost(ledger.connection)
        except sqlite3.Error:
            average = None
        finally:
            with contextlib.suppress(DialerError, sqlite3.Error, OSError):
                ledger.close()
        if average is not None:
            return CostEstimate(ready, average[0], "synced", average[1], campaign.currency)
    if campaign.cost_per_call is not None:
        return CostEstimate(ready, campaign.cost_per_call, "campaign", 0, campaign.currency)
    return CostEstimate(ready, None, "", 0, campaign.currency)
