"""The end-of-run story: counts per status, wall time, call rate, why it stopped, exit code.

The same dict is printed for people and written as `<report>.summary.json` for scripts.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from dialer.campaign.model import Campaign
from dialer.core.masking import mask_phone, mask_text
from dialer.core.statuses import ExitCode, Status, StopReason, close_reason
from dialer.reports.writer import status_counts
from dialer.sheets.contacts import Contact
from dialer.sheets.countries import country_name, country_of

SAMPLE_MESSAGES = 3
# What to do next, after a run that stopped early (printed under the summary).
_NEXT_STEP = {
    StopReason.INSUFFICIENT_BALANCE: "top up the Tabbly wallet, then run again: "
    "only the not_attempted rows are sent",
    StopReason.CAMPAIGN_REFUSED: "Tabbly refuses this campaign: check organization_id, "
    "agent_id, call_from and the API key, then run again",
    StopReason.INTERRUPTED: "run again to send the not_attempted rows",
    StopReason.ERROR: "fix the problem named below, then run again",
}


@dataclass(slots=True)
class Samples:
    """The first few rendered messages, shown before anything is spent."""

    items: list[Contact] = field(default_factory=list)

    def offer(self, contact: Contact) -> None:
        if len(self.items) < SAMPLE_MESSAGES and contact.first_line:
            self.items.append(contact)

    def as_json(self) -> list[dict[str, object]]:
        """For the summary file: what the first people would hear (numbers masked)."""
        return [
            {
                "row": c.row,
                "called_to": mask_phone(c.called_to),
                "country": country_of(c.called_to),
                "first_line": mask_text(c.first_line),
                "instruction": mask_text(c.instruction),
            }
            for c in self.items
        ]


def build_summary(
    *,
    campaign: Campaign,
    mode: str,
    sheet_path: Path,
    report_path: Path,
    counts: Counter[str],
    started_at: str,
    finished_at: str,
    wall_seconds: float,
    requests_sent: int,
    stop: StopReason | None,
    exit_code: ExitCode,
    warnings: list[str],
) -> dict[str, Any]:
    triggered = counts.get(Status.TRIGGERED, 0)
    return {
        "campaign": campaign.name,
        "mode": mode,
        "sheet": str(sheet_path),
        "report": str(report_path),
        "rows": sum(counts.values()),
        "counts": status_counts(counts),
        "started_at": started_at,
        "finished_at": finished_at,
        "wall_seconds": round(wall_seconds, 3),
        "requests_sent": requests_sent,
        "calls_per_second": round(triggered / wall_seconds, 3) if wall_seconds > 0 else 0.0,
        "close_reason": close_reason(stop),
        "exit_code": int(exit_code),
        "warnings": warnings,
    }


def print_summary(summary: dict[str, Any], samples: Samples, out: TextIO) -> None:
    print(f"campaign {summary['campaign']} ({summary['mode']}): {summary['sheet']}", file=out)
    print(f"  rows: {summary['rows']}", file=out)
    for status, n in summary["counts"].items():
        if n:
            print(f"  {status:<15} {n}", file=out)
    if summary["mode"] == "run":
        print(
            f"  wall time {summary['wall_seconds']:.1f}s, "
            f"{summary['calls_per_second']:.2f} calls/s, stopped: {summary['close_reason']}",
            file=out,
        )
    for note in summary.get("notes", []):
        print(f"  {note}", file=out)
    if summary["close_reason"] in _NEXT_STEP:
        print(f"  next: {_NEXT_STEP[summary['close_reason']]}", file=out)
    for warning in summary["warnings"]:
        print(f"  warning: {warning}", file=out)
    for contact in samples.items:
        country = country_name(country_of(contact.called_to))
        print(f"  row {contact.row} {mask_phone(contact.called_to)} ({country}):", file=out)
        print(f"    first line:  {mask_text(contact.first_line)}", file=out)
        if contact.instruction:
            print(f"    instruction: {mask_text(contact.instruction)}", file=out)
    print(f"report: {summary['report']}", file=out)
