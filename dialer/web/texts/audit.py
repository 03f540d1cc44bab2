"""The audit trail's page (/audit), and the refusal of a launch the trail cannot hold."""

from __future__ import annotations

AUDIT_UNAVAILABLE = "The audit trail cannot be written, so nothing is started: ask your admin."
AUDIT_CHAIN_INTACT = "The chain verifies: no entry was changed or removed."


def audit_bad_since(typed: str) -> str:
    return f"since: {typed!r} is not a date (YYYY-MM-DD)"


def audit_chain_removed(seq: int) -> str:
    return f"The chain does not verify: entry {seq} and any after it were removed."


def audit_chain_broken(seq: int, time: str, action: str) -> str:
    return (
        f"The chain does not verify: entry {seq} ({time}, {action}) does not match: it was "
        "edited, or the entry before it removed."
    )
