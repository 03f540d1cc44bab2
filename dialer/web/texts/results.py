"""What the results section says: the outcomes' labels, the Sync button's answers, the
answer rate and the cost estimate beside a check's count."""

from __future__ import annotations

from dialer.core.currencies import money
from dialer.web.settings import MB, Settings
from dialer.web.texts.checks import people, plural

# Each outcome's label on the chart, in the chart's order (SPEC 10's outcomes).
OUTCOME_LABELS = {
    "answered": "answered",
    "voicemail": "voicemail",
    "no_answer": "no answer",
    "busy": "busy",
    "failed": "failed",
    "pending": "pending",
}


SAID_TITLE = "What they said"
SAID_HINT = (
    "The outcome Tabbly's agent gave each person's last call, as read from its call logs; "
    "calls it gave none are not counted."
)
NO_SAID = "No call of these has an outcome from Tabbly's agent yet."


def disposition_label(value: str) -> str:
    """A disposition as the chart labels it: "do_not_call" -> "do not call"."""
    return value.replace("_", " ")


def run_optouts_title(total: int, run: bool) -> str:
    who = "this run" if run else "this campaign"
    return f"Asked not to be called: {people(total)} {who} called"


def run_optouts_more(shown: int, total: int) -> str:
    return f"The first {shown:,} of {total:,}; the opt-out register lists them all."


def synced(updated: int) -> str:
    """What the Sync button did, said where the button is."""
    if not updated:
        return "Synced: nothing new yet (Tabbly writes a call's log when the call ends)."
    return f"Synced: {plural(updated, 'call')} updated from Tabbly's call logs."


SYNC_NEVER_RUN = "Nobody has been called in this campaign yet: there are no outcomes to read."
SYNC_TOO_SLOW = "Reading the call logs took too long and was stopped: try again later."
SYNC_UNDER_WAY = "Outcomes are being read from Tabbly's call logs: try again in a moment."
NO_RESULTS_SHEET = "No results sheet yet: press Sync to read the outcomes and write it."
RESULTS_AFTER_RUN = "Outcomes are read from Tabbly's call logs once the run ends."
NO_OUTCOMES = "No outcomes yet: nobody has been called, or the calls were never read. Press Sync."
PENDING_HINT = "pending: Tabbly has no log of the call yet (it writes one when the call ends)"


def launch_busy(campaign: str) -> str:
    """A launch that found the campaign running, starting, or still reading its outcomes."""
    return (
        f"Not launched: campaign {campaign} is running, starting, or still reading its "
        "outcomes from Tabbly. Nobody was called; try Launch again when it has finished."
    )


def sync_refused_running(campaign: str) -> str:
    return f"Campaign {campaign} is calling now: its outcomes are read when the run ends."


def sync_refused_locked(campaign: str) -> str:
    return (
        f"Campaign {campaign} is running elsewhere (perhaps from a terminal): its outcomes "
        "can be read when that run ends."
    )


def sync_queued(ahead: int) -> str:
    return f"Reading outcomes is queued, {ahead} ahead: other campaigns' are being read now."


def sync_needs_memory(settings: Settings) -> str:
    return (
        f"Reading the call logs needed more than {settings.sync_memory // MB} MB of memory "
        "and was stopped: try again later, or sync this campaign from a terminal."
    )


def sync_failed(reason: str) -> str:
    return f"The outcomes could not be read: {reason}"


def answer_rate_text(rate: float | None, answered: int, known: int) -> tuple[str, str]:
    """The answer rate, and what it is of."""
    if rate is None:
        return "-", "no call has a known outcome yet"
    return f"{rate:.0%}", f"{answered:,} of {people(known)} with a known outcome"


def cost_estimate_text(
    ready: int, per_call: float | None, source: str, calls: int, currency: str | None = None
) -> str:
    """The estimate beside a check's count: where its price per call comes from, or why none."""
    if per_call is None:
        return (
            "unknown: no call of this campaign has a cost in Tabbly's logs yet, and the "
            "campaign sets no cost per call"
        )
    if source == "synced":
        where = f"the average of this campaign's {plural(calls, 'call')} read from Tabbly's logs"
    else:
        where = "the cost per call set in the campaign"
    unit = f" {currency}" if currency else ""
    total = money(ready * per_call, currency)
    return f"about {total} ({people(ready)} × {per_call:.4g}{unit} per call, {where})"


def calls_per_hour_later(seconds: float) -> str:
    return f"shown once the calls have gone on for {seconds / 60:g} minutes"
