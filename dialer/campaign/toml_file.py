"""A TOML file of the campaigns folder (a campaign, `_notify.toml`) read as every such file is:
from a regular file only, bounded, UTF-8 (a BOM allowed), each error one line naming the file.

    data = toml_tables(path, toml_bytes(path, "campaign file", "a campaign .toml file"),
                       "campaign file")
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from dialer.campaign.model import MAX_CAMPAIGN_BYTES
from dialer.core.files import open_regular
from dialer.core.statuses import CampaignError


def toml_bytes(path: Path, what: str, wanted: str) -> bytes:
    """The file's bytes: `/dev/zero` or a FIFO given by mistake is one clear line, not a hang
    or an out-of-memory kill. `what` names the file in messages; `wanted` is what to give."""
    try:
        with open_regular(path, CampaignError, wanted) as f:
            raw = f.read(MAX_CAMPAIGN_BYTES + 1)
    except OSError as exc:
        raise CampaignError(f"{path}: cannot read {what}: {exc.strerror}") from None
    if len(raw) > MAX_CAMPAIGN_BYTES:
        raise CampaignError(
            f"{path}: {what} is over {MAX_CAMPAIGN_BYTES // 1024} KiB; is this really a {what}?"
        )
    return raw


def toml_tables(path: Path, raw: bytes, what: str) -> dict[str, Any]:
    """The file's tables as TOML reads them (no key judged here)."""
    try:
        return tomllib.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise CampaignError(f"{path}: {what} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise CampaignError(f"{path}: not valid TOML: {exc}") from None
