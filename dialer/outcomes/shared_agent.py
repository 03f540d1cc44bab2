"""The calls the other campaigns of a state folder placed with the same agent (SPEC 10): their
log rows come back in this campaign's logs, and a row belongs to at most one call.

    others = list(other_dials(campaign, placed_from))    # Dials whose .campaign is set
    Matcher(own_dials, campaign.agent_id, others=others)

Each other ledger (`state/*.sqlite` but this campaign's and the shared contact counts) is
read without writing (`dialer.ledger.dials.other_ledger_dials`). Its campaign's agent is read
from the campaign file beside this one whose `name` is the ledger's; a ledger with no such
file that loads counts as the same agent: a row wrongly left to another campaign's call
keeps this call pending (read again by the next sync, never redialled), while a row wrongly
taken would give this call another call's outcome. A ledger that cannot be read has no calls here.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from dialer.campaign.model import Campaign
from dialer.campaign.parse import load_campaign
from dialer.campaign.paths import ledger_path, state_folder
from dialer.core.statuses import DialerError
from dialer.ledger.dials import Dial, other_ledger_dials
from dialer.ledger.shared_file import SHARED_FILE_NAMES


def other_dials(campaign: Campaign, placed_from: datetime | None) -> Iterator[Dial]:
    """The dials placed at or after `placed_from` by every other campaign of the folder that
    calls with `campaign`'s organization and agent (or may: see the module docstring)."""
    own = ledger_path(campaign).absolute()
    state = state_folder(campaign)
    agents = _agents(campaign.folder)
    agent = (campaign.organization_id, campaign.agent_id)

    def same_agent(name: str) -> bool:
        """Another agent's calls never come in this agent's logs."""
        return agents.get(name, agent) == agent

    for path in sorted(state.glob("*.sqlite")):
        if path.name in SHARED_FILE_NAMES or path.absolute() == own:
            continue
        yield from other_ledger_dials(path, placed_from, same_agent)


def _agents(folder: Path) -> dict[str, tuple[int, int]]:
    """Campaign name -> (organization, agent), of every campaign file in `folder` that loads."""
    found: dict[str, tuple[int, int]] = {}
    for path in sorted(folder.glob("*.toml")):
        try:
            other = load_campaign(path)
        except (DialerError, OSError, ValueError):
            continue
        found[other.name] = (other.organization_id, other.agent_id)
    return found
