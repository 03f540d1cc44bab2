"""What each event says (SPEC 13): `{"event", "event_id", "campaign", "time", "text", ...}`,
`text` one plain sentence with numbers masked (a Slack or Teams incoming webhook shows it as
is), the rest structured for a program.

    entry = run_event(campaign, code=1, summary=summary, error=None, now=now)
    entries = outcomes_events(campaign, people, opted_out, now, batch=500)

Each returns outbox entries (`notify.outbox.Entry`), none for an event the campaign's
`[notify]` does not ask for. The API key is in no event: nothing here reads it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from pathlib import Path

from dialer.campaign.model import Campaign, NotifyEvent
from dialer.core.clock import stamp
from dialer.core.masking import mask_phone, mask_text
from dialer.core.statuses import FINISHED_CODES, ExitCode
from dialer.ledger.dials import Person
from dialer.notify.outbox import Entry

# How many masked numbers an `opted_out` sentence shows before "and N more".
_SHOWN_NUMBERS = 3


def new_entry(
    campaign: Campaign, event: NotifyEvent, text: str, now: datetime, **fields: object
) -> Entry | None:
    """One event of `campaign`, ready for the outbox; None when its `[notify]` does not ask."""
    notify = campaign.notify
    if notify is None or not notify.wants(event):
        return None
    event_id = uuid.uuid4().hex
    body = {
        "event": event.value,
        "event_id": event_id,
        "campaign": campaign.name,
        "time": stamp(now),
        "text": text,
        **fields,
    }
    return Entry(
        event_id=event_id,
        campaign=campaign.name,
        event=event.value,
        body=json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        url_env=notify.url_env,
        secret_env=notify.secret_env,
    )


def run_kind(code: int) -> NotifyEvent:
    """Which event a run's exit code is: it did its job (0, 1), the wallet ran dry (3), or
    any other end (bad input or environment, the campaign refused, interrupted, a defect)."""
    if code in FINISHED_CODES:
        return NotifyEvent.RUN_FINISHED
    if code == ExitCode.INSUFFICIENT_BALANCE:
        return NotifyEvent.WALLET_EMPTY
    return NotifyEvent.RUN_FAILED


def run_event(
    campaign: Campaign,
    *,
    code: int,
    summary: Mapping[str, object] | None,
    error: str | None,
    now: datetime,
) -> Entry | None:
    """The end of a run: its exit code, close reason, counts and report's name (no path:
    the receiver is elsewhere), and why it failed when it did."""
    kind = run_kind(code)
    summary = summary or {}
    counts = summary.get("counts") or {}
    assert isinstance(counts, Mapping)
    report = Path(str(summary["report"])).name if summary.get("report") else None
    fields: dict[str, object] = {
        "exit_code": int(code),
        "close_reason": summary.get("close_reason", "error" if error else None),
        "rows": summary.get("rows"),
        "counts": dict(counts),
        "requests_sent": summary.get("requests_sent"),
        "report": report,
        "started_at": summary.get("started_at"),
        "finished_at": summary.get("finished_at"),
    }
    if error:
        fields["error"] = mask_text(error)
    said = ", ".join(f"{n} {status}" for status, n in counts.items() if n) or "nobody called"
    name = f"Campaign {campaign.shown_name}"
    if kind is NotifyEvent.RUN_FINISHED:
        text = f"{name} finished: {said} (exit {code})."
    elif kind is NotifyEvent.WALLET_EMPTY:
        text = f"{name} stopped: the Tabbly wallet is empty (402 insufficient balance); {said}."
    else:
        why = mask_text(error) if error else f"stopped ({fields['close_reason']})"
        text = f"{name} failed (exit {code}): {why}; {said}."
    return new_entry(campaign, kind, text, now, **fields)


def optout_event(campaign: Campaign, numbers: Sequence[str], now: datetime) -> Entry | None:
    """People newly in the opt-out register, heard on a call during a sync."""
    if not numbers:
        return None
    shown = ", ".join(mask_phone(n) for n in numbers[:_SHOWN_NUMBERS])
    more = f" and {len(numbers) - _SHOWN_NUMBERS} more" if len(numbers) > _SHOWN_NUMBERS else ""
    text = (
        f"Campaign {campaign.shown_name}: {len(numbers)} people asked not to be called "
        f"({shown}{more}); no campaign of this folder calls them again."
    )
    return new_entry(
        campaign, NotifyEvent.OPTED_OUT, text, now, count=len(numbers), called_to=list(numbers)
    )


def outcomes_events(
    campaign: Campaign,
    people: Sequence[Person],
    opted_out: Collection[str],
    now: datetime,
    batch: int,
) -> list[Entry]:
    """The people whose outcome a sync changed, in events of at most `batch` people."""
    if not people:
        return []
    stopped = set(opted_out)
    parts = [people[i : i + batch] for i in range(0, len(people), batch)]
    entries = []
    for number, part in enumerate(parts, 1):
        text = f"Campaign {campaign.shown_name}: {len(people)} people's call outcome changed" + (
            f" (part {number} of {len(parts)})." if len(parts) > 1 else "."
        )
        rows = [
            {
                "called_to": p.called_to,
                "custom_identifiers": p.custom_identifiers,
                "outcome": p.outcome.value,
                "disposition": p.disposition,
                "opted_out": p.called_to in stopped,
            }
            for p in part
        ]
        entry = new_entry(
            campaign,
            NotifyEvent.OUTCOMES,
            text,
            now,
            part=number,
            parts=len(parts),
            count=len(rows),
            people=rows,
        )
        if entry is not None:
            entries.append(entry)
    return entries


def schedule_missed_event(
    campaign: Campaign, schedule: str, due: str, why: str, now: datetime
) -> Entry | None:
    """A schedule of the page whose time passed without a launch."""
    text = f"Campaign {campaign.shown_name}: the run scheduled for {due} did not start: {why}."
    return new_entry(
        campaign, NotifyEvent.SCHEDULE_MISSED, text, now, schedule=schedule, due_at=due, reason=why
    )
