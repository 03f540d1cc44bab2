"""A run bound to the check that previewed it (SPEC 11): the files as checked, or nothing sent.

    dialer run campaigns/x.toml --contacts up.csv --yes \\
        --expect-campaign-sha256 HEX --expect-contacts-sha256 HEX

A program that shows a check and then launches a run (the web page) cannot stop the files
changing in between: its own comparison just before it starts the run leaves a window until the
run reads them. So the run compares what it actually reads: the campaign file's bytes as
`load_campaign` parsed them, and the sheet and its do-not-call lists hashed just before they are
opened. Any difference refuses the run (exit 2) before anything is sent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from dialer.campaign.model import Campaign
from dialer.core.statuses import CampaignError, SheetError

MISSING = "missing"  # the digest of a file that cannot be read
_CHUNK = 1024 * 1024


def file_sha256(path: Path) -> str:
    """SHA-256 of the file's content in hex (as `sha256sum` prints it), or MISSING."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
    except OSError:
        return MISSING
    return digest.hexdigest()


def contacts_sha256(sheet: str, suppress: Iterable[str] = ()) -> str:
    """One digest for who may be called, from the hex digests of the sheet and of the campaign's
    do-not-call lists (in the campaign's order): the sheet's own digest when there are none,
    else SHA-256 of the digests, one a line."""
    lists = list(suppress)
    if not lists:
        return sheet
    return hashlib.sha256("\n".join([sheet, *lists]).encode("ascii")).hexdigest()


def contacts_sha256_of(campaign: Campaign, sheet: Path) -> str:
    return contacts_sha256(file_sha256(sheet), (file_sha256(p) for p in campaign.contacts.suppress))


def enforce(
    campaign: Campaign,
    sheet: Path,
    *,
    expect_campaign: str | None,
    expect_contacts: str | None,
) -> None:
    """Refuse (exit 2) unless the files are those the caller checked; call just before the sheet
    is opened. A None expectation is not checked."""
    if expect_campaign is not None and campaign.source_sha256 != expect_campaign.lower():
        raise CampaignError(
            f"{campaign.path}: changed since it was checked (SHA-256 {campaign.source_sha256[:12]}"
            f"..., expected {expect_campaign[:12]}...): nothing sent; check it again"
        )
    if expect_contacts is not None and contacts_sha256_of(campaign, sheet) != (
        expect_contacts.lower()
    ):
        lists = " or its do-not-call lists" if campaign.contacts.suppress else ""
        raise SheetError(
            f"{sheet}: the sheet{lists} changed since it was checked: nothing sent; check it again"
        )
