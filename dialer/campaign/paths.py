"""Where a campaign's reports and ledger live (beside `campaigns/`, never relative to cwd),
and what the files beside a report are called: the one home of those names.

    reports/<campaign>/20261201T151429.898Z.csv                 the report
    reports/<campaign>/20261201T151429.898Z.csv.summary.json    its summary (SPEC 9)
    reports/<campaign>/20261201T151429.898Z.xlsx.partial.csv    an XLSX report's journal
    reports/<campaign>/20261201T151429.898Z.results.csv         a sync's results (SPEC 10)
    reports/<campaign>/<campaign>_<sheet>_20261201T151429.898Z.csv   a check or run of the page
    state/<campaign>.sqlite                                     the ledger (SPEC 6.3)
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from dialer.campaign.model import NOTIFY_FILE, Campaign

SUMMARY_SUFFIX = ".summary.json"
# XLSX cannot be appended to: rows go to this CSV journal beside it until the run ends.
JOURNAL_SUFFIX = ".partial.csv"
# What a sync's results file is called after its time stamp: `dialer.ledger.evidence` passes it by
# (it shows outcomes, not who was called) and `dialer serve` lists no such file as a report.
RESULTS_SUFFIX = ".results"
_STAMP = r"[0-9]{8}T[0-9]{6}(\.[0-9]{3})?Z(-[0-9]+)?"
# The stem of a default report's name (`default_report_path`); `dialer serve` serves no other
# but the page's own (`PAGE_REPORT_STEM`).
REPORT_STEM = re.compile(rf"^{_STAMP}$")
# The stem of a report the page names (`page_report_path`): campaign, sheet, time. The sheet
# part has no `_`, so the campaign (which may) is everything before the last two.
PAGE_REPORT_STEM = re.compile(rf"^(?P<campaign>[A-Za-z0-9._-]+)_(?P<sheet>[A-Za-z0-9-]+)_{_STAMP}$")
SHEET_NAME_CHARS = 40  # of the uploaded file's name, in a report's name


def campaign_files(folder: Path) -> list[Path]:
    """The campaign files of a `campaigns/` folder, by name: its `*.toml` but `_notify.toml`
    (the folder's `[notify]` table, never a campaign)."""
    return [p for p in sorted(folder.glob("*.toml")) if p.name != NOTIFY_FILE]


def summary_path(report: Path) -> Path:
    return report.with_name(report.name + SUMMARY_SUFFIX)


def journal_path(report: Path) -> Path:
    return report.with_name(report.name + JOURNAL_SUFFIX)


def default_report_path(campaign: Campaign, now: datetime | None = None) -> Path:
    """`reports/<name>/<UTC timestamp>.csv`; names sort in time order (milliseconds included)."""
    return _stamped(campaign, now, ".csv")


def page_report_path(campaign: Campaign, sheet_name: str, now: datetime | None = None) -> Path:
    """`reports/<name>/<name>_<sheet>_<UTC timestamp>.csv`: a check or run started from the page,
    so a download says which campaign and which uploaded sheet it was (SPEC 11)."""
    return _stamped(campaign, now, ".csv", prefix=f"{campaign.name}_{sheet_slug(sheet_name)}_")


def sheet_slug(sheet_name: str) -> str:
    """An uploaded file's name as a safe part of a file name: ASCII letters, digits and `-`
    (a download's name must need no quoting), at most SHEET_NAME_CHARS; "sheet" when none."""
    slug = (
        re.sub(r"[^A-Za-z0-9]+", "-", Path(sheet_name).stem)
        .strip("-")[:SHEET_NAME_CHARS]
        .strip("-")
    )
    return slug or "sheet"


def default_results_path(campaign: Campaign, now: datetime | None = None) -> Path:
    """`reports/<name>/<UTC timestamp>.results.csv`: what `dialer sync` writes (SPEC 10)."""
    return _stamped(campaign, now, RESULTS_SUFFIX + ".csv")


def is_results_name(name: str) -> bool:
    """True for a sync's results file (`x.results.csv`, `x.results.xlsx`), never a report."""
    return Path(name).stem.endswith(RESULTS_SUFFIX)


def _stamped(campaign: Campaign, now: datetime | None, suffix: str, prefix: str = "") -> Path:
    """A new name in the campaign's reports folder: the UTC time, `-2`, `-3`... if taken."""
    when = (now or datetime.now(UTC)).astimezone(UTC)
    stamp = when.strftime("%Y%m%dT%H%M%S.") + f"{when.microsecond // 1000:03d}Z"
    folder = reports_folder(campaign)
    path = folder / f"{prefix}{stamp}{suffix}"
    n = 2
    while any(p.exists() for p in (path, journal_path(path), summary_path(path))):
        path = folder / f"{prefix}{stamp}-{n}{suffix}"
        n += 1
    return path


def reports_folder(campaign: Campaign) -> Path:
    """Where the campaign's default reports go, and what a lost ledger is rebuilt from."""
    return campaign.project_root / "reports" / campaign.name


def state_folder(campaign: Campaign) -> Path:
    """The ledgers, and the contact counts every campaign here shares (SPEC 10)."""
    return campaign.project_root / "state"


def ledger_path(campaign: Campaign) -> Path:
    return state_folder(campaign) / f"{campaign.name}.sqlite"
