"""The one file of a `state/` folder every campaign shares: `contacts.sqlite`, holding the
contact counts (`ledger.contact_limits`) and the opt-out register (`ledger.optouts`). Its
name and place live here so each of the two can find the other's tables without importing it.
"""

from __future__ import annotations

from pathlib import Path

from dialer.campaign.model import RESERVED_NAME

BOOK_NAME = f"{RESERVED_NAME}.sqlite"  # never a campaign's ledger: that name is refused


def book_path(state: Path) -> Path:
    return state / BOOK_NAME
