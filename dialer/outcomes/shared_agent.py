"""The calls the other campaigns of a state folder placed with the same agent (SPEC 10): their
log rows come back in this campaign's logs, and a row belongs to at most one call.

    >>> others = list(other_dials(campaign, placed_from))    # Dials whose .campaign is set
    >>> Matcher(own_dials, campaign.agent_id, others=others)

Each other ledger (`state/*.sqlite` but this campaign's and the shared contact counts) is read
without writing (`ledger.readonly_uri`). Its campaign's agent is read from the campaign file
beside this one whose `name` is the ledger's; a ledger with no such file that loads counts
as the same agent: a row wrongly left to another campaign's call keeps this call
pending (read again by the next sync, never redialled), while a row wrongly taken would
give this call another call's outcome. A ledger that cannot be read has no calls here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from dialer.campaign.model import Campaign, load_campaign
from dialer.core.paths import ledger_path, state_folder
from dialer.core.statuses import DialerError
from dialer.ledger.contact_limits import BOOK_NAME
from dialer.ledger.dials import claims_in_flight, dials_from
from dialer.ledger.sqlite import readonly_uri
from dialer.outcomes.matching import Dial


def other_dials(campaign: Campaign, placed_from: datetime | None) -> Iterator[Dial]:
    """The dials placed at or after `placed_from` by every other campaign of the folder that
    calls with `campaign`'s organization and agent (or may: see the module docstring)."""
    own = ledger_path(campaign).absolute()
    state = state_folder(campaign)
    agents = _agents(campaign.folder)
    for path in sorted(state.glob("*.sqlite")):
        if path.name == BOOK_NAME or path.absolute() == own:
            continue
        agent = (campaign.organization_id, campaign.agent_id)
        yield from _ledger_dials(path, agent, agents, placed_from)


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


def _ledger_dials(
    path: Path,
    agent: tuple[int, int],
    agents: dict[str, tuple[int, int]],
    placed_from: datetime | None,
) -> list[Dial]:
    try:
        conn = sqlite3.connect(readonly_uri(path), uri=True, isolation_level=None)
    except sqlite3.Error:
        return []
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not {"meta", "dials"} <= tables:
            return []  # no ledger, or one from before `dials`: no call to match
        named = conn.execute("SELECT value FROM meta WHERE key = 'campaign'").fetchone()
        name = (named[0] if named else "") or path.stem
        if agents.get(name, agent) != agent:
            return []  # another agent: its rows never come in this agent's logs
        placed = [replace(d, campaign=name) for d in dials_from(conn, placed_from)]
        if "sending" in tables:  # its claims left by a killed run: calls of its own too
            placed += claims_in_flight(conn, placed_from, name)
        return placed
    except sqlite3.Error:
        return []
    finally:
        conn.close()
