"""What the called person said that means "do not call me again", heard in the call logs a
sync reads, and recorded in the folder's opt-out register.

    listening = Listening(campaign)
    listening.hear(row, dial)          # each log row that speaks of a call of the folder
    listening.record(now)              # the people newly opted out, after the pages are read

Every call of the folder counts, this campaign's and the other campaigns' whose rows come
back in this agent's logs (a campaign that never syncs still has its opt-outs heard by one
that does), and a killed run's calls too. The words are judged by
`dialer.outcomes.optout_words`; the register (`dialer.ledger.optouts`) keeps each opt-out once
per call, so reading the same call again adds nothing. The register's file is created only
when someone opted out.
"""

from __future__ import annotations

from datetime import datetime

from dialer.campaign.model import Campaign
from dialer.campaign.paths import state_folder
from dialer.core.clock import stamp
from dialer.ledger.optouts import Ask, Register, Source, acting_user
from dialer.outcomes.matching import OWN_CLAIM, Dial
from dialer.outcomes.optout_words import OUTCOMES, PHRASES, OptOutDetector, optout_detector
from dialer.tabbly.log_rows import LogRow

# Why an opt-out heard on a call is in the register (its row reason names the call).
HEARD_REASON = "asked not to be called"


def campaign_detector(campaign: Campaign) -> OptOutDetector:
    """The detector `[optout]` asks for (the built-in lists where it names none). Detection
    only: what the register holds stops every campaign whatever its `[optout]` says."""
    words = campaign.optout
    return optout_detector(
        enabled=words.enabled,
        outcomes=OUTCOMES if words.outcomes is None else words.outcomes,
        phrases=PHRASES if words.phrases is None else words.phrases,
    )


class Listening:
    """The opt-outs of one sync, gathered as rows are read, recorded at once."""

    def __init__(self, campaign: Campaign, detector: OptOutDetector | None = None) -> None:
        self._campaign = campaign
        self._detector = detector or campaign_detector(campaign)
        self._asks: dict[str, Ask] = {}  # one per person: the first call heard

    def hear(self, row: LogRow, dial: Dial) -> None:
        """Judge one row of a call of the folder (`dial`: this campaign's or another's)."""
        heard = self._detector.detect(
            row.call_outcome, row.call_json_output, row.transcript, row.summary
        )
        if heard is None or not dial.called_to.startswith("+") or dial.called_to in self._asks:
            return
        own = dial.campaign in ("", OWN_CLAIM)
        self._asks[dial.called_to] = Ask(
            called_to=dial.called_to,
            source=Source.CALL,
            who=acting_user(),
            reason=f"{HEARD_REASON} ({heard.source}: {heard.matched})",
            campaign=self._campaign.name if own else dial.campaign,
            call_id=row.log_id or dial.room_name or f"{dial.called_to} {stamp(dial.placed_at)}",
            evidence=heard.evidence,
            at=row.called_at or dial.placed_at,
        )

    def record(self, now: datetime) -> tuple[str, ...]:
        """Into the register, in one transaction; the numbers newly opted out."""
        if not self._asks:
            return ()
        with Register.open(state_folder(self._campaign)) as register:
            added = register.add(self._asks.values(), now)
        return tuple(added.added)
