"""The command line's own entries in the audit trail (`team.audit`), as `cli_actor()`.

    record(state, OPTOUT_ADDED, number=e164, reason=why)

A command's work never waits on its record: a trail that cannot be written (a full disk, a
lock held too long, a damaged file) is one warning line on stderr, and the command goes on
with the exit code it would have had. A command the page started for someone (`BY_PAGE_ENV`
set) writes nothing: the page has written that entry, naming the person.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from dialer.core.statuses import DialerError


def record(state: Path, action: str, campaign: str = "", **details: object) -> None:
    """One entry by this command's user and host; a failure is a warning, never an error."""
    from dialer.team.audit import BY_PAGE_ENV, AuditTrail, cli_actor

    if os.environ.get(BY_PAGE_ENV):
        return
    try:
        AuditTrail(state).append(cli_actor(), action, campaign, **details)
    except Exception as exc:  # a defect of ours too: the trail never stops the work
        why = exc if isinstance(exc, (DialerError, OSError)) else f"{type(exc).__name__}: {exc}"
        print(f"dialer: warning: not written to the audit trail: {why}", file=sys.stderr)
