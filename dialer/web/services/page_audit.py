"""What the page writes into the team's audit trail, and the details each action carries.

    audit = PageAudit(AuditTrail(root / "state"))
    await audit.record(who, UPLOAD, "spring", **await sheet_details(path, "leads.xlsx"))
    await audit.must_record(who, LAUNCH, "spring", **launch_details(dry))  # AuditUnavailable

A trail that cannot be written (a full disk, a locked or broken file) never breaks what a
person is doing: the write is logged on stderr once (until a write succeeds again) and the
action goes on; except a launch (or a schedule's firing), which starts calls to real
people: it is refused
(`must_record`), so no run ever starts that the trail does not hold. Numbers are passed
masked here; the trail masks digit runs again, the one place that guarantees it.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dialer.campaign.binding import file_sha256
from dialer.core.masking import mask_phone, mask_text
from dialer.core.statuses import DialerError, Status
from dialer.team.audit import AuditTrail
from dialer.web import texts
from dialer.web.services.campaign_fields import first_value
from dialer.web.services.job_records import DryRun
from dialer.web.services.outcomes import CostEstimate
from dialer.web.services.schedule_entry import ONCE, Schedule

# At most this many masked numbers are listed in one opt-out entry (the count is always there).
NUMBERS_LISTED = 50


class AuditUnavailable(DialerError):
    """The audit trail cannot be written: a launch is refused rather than left unrecorded."""


class PageAudit:
    """The page's entries in the folder's trail, written off the event loop; `record` never
    raises, `must_record` (a launch, a schedule's firing) raises AuditUnavailable."""

    def __init__(self, trail: AuditTrail) -> None:
        self.trail = trail
        self._failing = False  # said on stderr already; said again after a success

    async def record(self, who: str, action: str, campaign: str = "", **details: Any) -> bool:
        """Append an entry; False (logged once) when the trail cannot be written."""
        try:
            await self.must_record(who, action, campaign, **details)
        except AuditUnavailable:
            return False
        return True

    async def must_record(self, who: str, action: str, campaign: str = "", **details: Any) -> None:
        """Append an entry, or AuditUnavailable (logged once) saying the trail cannot be written."""
        try:
            await asyncio.to_thread(self.trail.append, who, action, campaign, **details)
        except Exception as exc:  # whatever the store raises, the page's action decides
            if not self._failing:
                print(
                    f"dialer serve: the audit trail cannot be written ({type(exc).__name__}: "
                    f"{exc}); launches are refused until it can",
                    file=sys.stderr,
                    flush=True,
                )
            self._failing = True
            raise AuditUnavailable(texts.AUDIT_UNAVAILABLE) from None
        self._failing = False


def file_change(before: str, after: str, where: str) -> dict[str, str]:
    """A campaign file created or edited: its SHA-256 before ("" when new) and after."""
    return {"sha256_before": before, "sha256_after": after, "from": where}


async def saved_file(before: str | None, path: Path) -> dict[str, str]:
    """A campaign file the form just wrote: its SHA-256 before (the file the form was opened
    on; "" for a new one) and after."""
    after = await asyncio.to_thread(file_sha256, path)
    return file_change(before or "", after, "campaign form")


def test_call(posted: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """A test call about to be placed (written before it leaves): the number masked, and the
    row whose personalisation it uses."""
    typed = first_value(posted, "test_number")
    digits = "".join(c for c in typed if c.isdigit() or c == "+")
    row = first_value(posted, "test_row").strip() or "1"
    return {"number": mask_phone(digits), "row": row}


def fingerprints(dry: DryRun) -> dict[str, str]:
    """The SHA-256 of each file the check read, named by what it is, not by the server's path."""
    named: dict[str, str] = {}
    for path, digest in dry.fingerprint.items():
        if path == str(dry.campaign_path):
            named["campaign"] = digest
        elif path == str(dry.upload):
            named["sheet"] = digest
        else:
            named[f"do_not_call {Path(path).name}"] = digest
    return named


def check_details(dry: DryRun) -> dict[str, Any]:
    """A check's entry: the sheet as named, the fingerprints, the count of each status."""
    counts = dry.summary.get("counts", {})
    return {
        "sheet": dry.sheet_name,
        "fingerprints": fingerprints(dry),
        "counts": {str(k): int(v) for k, v in counts.items() if isinstance(v, int)},
    }


def launch_details(dry: DryRun) -> dict[str, Any]:
    """A launch's entry: the check it is bound to (its fingerprints), the people it calls, and
    the cost the check page showed ("" when none was known)."""
    return {
        "sheet": dry.sheet_name,
        "fingerprints": fingerprints(dry),
        "people": int(dry.summary.get("counts", {}).get(Status.READY, 0)),
        "cost": dry.cost,
    }


def cost_details(cost: CostEstimate) -> dict[str, Any]:
    """The cost estimate as the check page showed it (None where it was unknown)."""
    return {
        "per_call": cost.per_call,
        "total": cost.total,
        "currency": cost.currency or "",
        "source": cost.source,
    }


def schedule_details(schedule: Schedule, dry: DryRun | None, replaces: str = "") -> dict[str, Any]:
    """A schedule made, confirmed again (`replaces`: the paused one it replaces), fired or
    missed; with the check it was made from, or that a firing launched (`dry`)."""
    details: dict[str, Any] = {
        "schedule": schedule.id,
        "kind": schedule.kind,
        "at": schedule.at,
        "zone": schedule.zone,
        "sheet": schedule.sheet_name,
    }
    if replaces:
        details["replaces"] = replaces
    if dry is not None:
        details["fingerprints"] = fingerprints(dry)
        details["people"] = int(dry.summary.get("counts", {}).get(Status.READY, 0))
    elif schedule.kind == ONCE:
        details["people"] = schedule.ready
    return details


def _sheet_details(path: Path, name: str) -> dict[str, Any]:
    try:
        size = path.stat().st_size
    except OSError:
        size = -1
    return {"file": name, "size": size, "sha256": file_sha256(path)}


async def sheet_details(path: Path, name: str) -> dict[str, Any]:
    """An uploaded sheet: its name as the uploader named it, its size and its SHA-256."""
    return await asyncio.to_thread(_sheet_details, path, name)


def masked_numbers(numbers: list[str]) -> dict[str, Any]:
    """Opt-out numbers for an entry: how many, and the first few masked."""
    return {"count": len(numbers), "numbers": [mask_phone(n) for n in numbers[:NUMBERS_LISTED]]}


def masked(text: str) -> str:
    """Free text (a typed number, a sentence holding one) with every phone number masked."""
    return mask_text(text)
