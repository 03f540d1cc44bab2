"""Where a campaign's reports and ledger live: beside `campaigns/`, never relative to cwd."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from dialer.campaign import Campaign


def default_report_path(campaign: Campaign, now: datetime | None = None) -> Path:
    """`reports/<name>/<UTC timestamp>.csv`; names sort in time order (milliseconds included)."""
    when = now or datetime.now(UTC)
    stamp = when.strftime("%Y%m%dT%H%M%S.") + f"{when.microsecond // 1000:03d}Z"
    folder = reports_folder(campaign)
    path = folder / f"{stamp}.csv"
    n = 2
    while any(
        path.with_name(path.name + extra).exists()
        for extra in ("", ".partial.csv", ".summary.json")
    ):
        path = folder / f"{stamp}-{n}.csv"
        n += 1
    return path


def reports_folder(campaign: Campaign) -> Path:
    """Where the campaign's default reports go, and what a lost ledger is rebuilt from."""
    return campaign.project_root / "reports" / campaign.name


def ledger_path(campaign: Campaign) -> Path:
    return campaign.project_root / "state" / f"{campaign.name}.sqlite"


def utc_now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
