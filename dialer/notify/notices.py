"""What the commands call (SPEC 13): events written to the folder's outbox, and the outbox
delivered at a command's end.

    wrote = enqueue(state, [run_event(...)], err=sys.stderr)     # before the command ends
    deliver_after(state, wrote=wrote, err=sys.stderr)            # after its summary

Who delivers: `dialer run` and `dialer sync` write their events and deliver at their end,
lingering up to `notify_linger_seconds` for retries; they and `dialer status` deliver what
an earlier command left (one pass, no lingering) after their own work; `dialer serve` looks
every `notify_serve_every_seconds`. `dialer validate` never does: the dry run sends nothing.
Nothing here raises: a notification never changes a command's exit code. A folder with no
outbox costs one `stat` (aiohttp is loaded only when something is due).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TextIO

from dialer.campaign.model import Campaign
from dialer.campaign.paths import state_folder
from dialer.core.settings import DEFAULTS, Settings
from dialer.ledger.dials import Person
from dialer.ledger.optouts import Register
from dialer.notify.events import optout_event, outcomes_events, run_event
from dialer.notify.outbox import Entry, Outbox, existing_outbox, outbox_path


def enqueue(
    state: Path,
    entries: Iterable[Entry | None],
    *,
    err: TextIO | None = None,
    settings: Settings = DEFAULTS,
) -> bool:
    """Write the entries (None: not asked for) in one transaction; True when some were.
    One warning line when the outbox cannot be written, never an exception."""
    wanted = [e for e in entries if e is not None]
    if not wanted:
        return False
    try:
        with Outbox.open(state) as outbox:
            outbox.add(wanted, time.time(), settings.notify_keep_days * 86_400)
    except (OSError, sqlite3.Error) as exc:
        _warn(err, f"warning: notifications not written to {outbox_path(state)}: {exc}")
        return False
    return True


def deliver_after(
    state: Path,
    *,
    wrote: bool,
    environ: Mapping[str, str] = os.environ,
    err: TextIO | None = None,
    settings: Settings = DEFAULTS,
) -> None:
    """A command's end: deliver what is due, lingering for retries when it `wrote` events."""
    if not _anything_due(state, settings.notify_linger_seconds if wrote else 0.0):
        return
    from dialer.notify.delivery import deliver_now  # aiohttp: only when there is work

    linger = settings.notify_linger_seconds if wrote else 0.0
    try:
        deliver_now(state, linger=linger, environ=environ, settings=settings, err=err)
    except KeyboardInterrupt:  # Ctrl-C (or Stop) while delivering: the command's code stands
        _warn(err, "notifications: stopped; what is left stays in the outbox for the next command")


def run_ended(
    campaign: Campaign,
    *,
    code: int,
    summary: Mapping[str, object] | None,
    error: str | None,
    interrupted: bool,
    now: datetime,
    environ: Mapping[str, str] = os.environ,
    err: TextIO | None = None,
    settings: Settings = DEFAULTS,
    opted_out: Sequence[str] = (),
    changed: Sequence[Person] = (),
) -> None:
    """The end of `dialer run`, after its summary: its events written (those of the sync it
    made first too: kept until now, so nothing is written before the first call), then the
    outbox delivered (not when interrupted: whoever stopped it wants it stopped; the next
    command delivers). Never raises."""
    state = state_folder(campaign)
    try:
        entries = sync_entries(campaign, opted_out, changed, now, settings)
        entries.append(run_event(campaign, code=code, summary=summary, error=error, now=now))
        wrote = enqueue(state, entries, err=err, settings=settings)
        if not interrupted:
            deliver_after(state, wrote=wrote, environ=environ, err=err, settings=settings)
    except Exception as exc:  # a defect here must not become the run's
        _warn(err, f"warning: notifications: {type(exc).__name__}")


def sync_events(
    campaign: Campaign,
    *,
    opted_out: Sequence[str],
    changed: Sequence[Person],
    now: datetime,
    err: TextIO | None = None,
    settings: Settings = DEFAULTS,
) -> bool:
    """`dialer sync`'s `opted_out` and `outcomes` events into the outbox; True when written."""
    entries = sync_entries(campaign, opted_out, changed, now, settings)
    return enqueue(state_folder(campaign), entries, err=err, settings=settings)


def sync_entries(
    campaign: Campaign,
    opted_out: Sequence[str],
    changed: Sequence[Person],
    now: datetime,
    settings: Settings = DEFAULTS,
) -> list[Entry | None]:
    """A sync's events: who asked not to be called, and (`outcomes = true`) the people whose
    outcome changed, in batches."""
    if campaign.notify is None:
        return []
    entries = [optout_event(campaign, opted_out, now)]
    if campaign.notify.outcomes and changed:
        stopped = _in_register(state_folder(campaign), [p.called_to for p in changed])
        entries += outcomes_events(campaign, changed, stopped, now, settings.notify_batch_people)
    return entries


def _in_register(state: Path, numbers: list[str]) -> set[str]:
    """Which of `numbers` the folder's opt-out register holds (none when it cannot be read)."""
    with contextlib.suppress(OSError, sqlite3.Error):
        register = Register.reading(state)
        if register is not None:
            with register:
                return set(register.entries(numbers))
    return set()


def _anything_due(state: Path, within: float) -> bool:
    """Is some entry pending and due within `within` seconds? False when there is no outbox
    or it cannot be read (the command that could not write to it said so, once)."""
    if not outbox_path(state).exists():
        return False
    try:
        with existing_outbox(state) as outbox:
            due = outbox.next_due() if outbox is not None else None
    except (OSError, sqlite3.Error):
        return False
    return due is not None and due <= time.time() + within


def _warn(err: TextIO | None, line: str) -> None:
    with contextlib.suppress(OSError):
        print(line, file=err or sys.stderr)
