"""The four roles of the page, each allowed what the one below it may do and more.

    role_named("caller")               # Role.CALLER, or UsageError naming the four
    Role.EDITOR >= Role.CALLER         # True: a role is allowed what the ones below are

Only the order lives here; which route needs which role is the page's (`web/`), and
`WHAT_EACH_MAY` is the one sentence per role that the help, the page and the docs show.
"""

from __future__ import annotations

from enum import IntEnum

from dialer.core.statuses import UsageError


class Role(IntEnum):
    VIEWER = 1
    CALLER = 2
    EDITOR = 3
    ADMIN = 4

    def __str__(self) -> str:
        return self.name.lower()


ROLE_NAMES = tuple(str(role) for role in Role)

WHAT_EACH_MAY = {
    Role.VIEWER: "sees campaigns, checks, runs, results and charts, with phone numbers masked; "
    "downloads no file that holds whole numbers",
    Role.CALLER: "a viewer, and uploads sheets, checks, previews, places a test call, launches, "
    "stops, resumes, schedules, syncs and downloads",
    Role.EDITOR: "a caller, and creates and edits campaigns, matches columns, adds and imports "
    "opt-outs",
    Role.ADMIN: "an editor, and removes opt-outs, manages people, reads and exports the audit "
    "trail",
}


def role_named(text: str) -> Role:
    """The role called `text` (any case); a UsageError naming the four otherwise."""
    try:
        return Role[text.strip().upper()]
    except KeyError:
        raise UsageError(f"unknown role {text!r}: use one of {', '.join(ROLE_NAMES)}") from None
