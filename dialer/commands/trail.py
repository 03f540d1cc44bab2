"""The command line's own entries in the audit trail (`team.audit`), as `cli_actor()`.

    record(state, OPTOUT_ADDED, number=e164, reason=why)

A command's work never waits on its record: a trail that cannot be written (a full disk, a
lock held too long, a damaged file) is one warning line on stderr, and the command goes on
with the exit code it would have had.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

from dialer.core.statuses import DialerError


def record(state: Path, action: str, campaign: str = "", **details: object) -> None:
    """One entry by this command's user and host; a failure is a warning, never an error."""
    try:
        from dialer.team.audit import AuditTrail, cli_actor

        AuditTrail(state).append(cli_actor(), action, campaign, **details)
    except (DialerError, OSError, sqlite3.Error) as exc:
        print(f"dialer: warning: not written to the audit trail: {exc}", file=sys.stderr)
