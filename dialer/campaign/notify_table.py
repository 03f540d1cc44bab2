"""`[notify]`: a campaign's own table, else the one of `campaigns/_notify.toml` for every
campaign of the folder (SPEC 13). A campaign's own table replaces the folder's whole: nothing
is merged, so what a campaign file says is all there is to read.

    notify = campaign_notify(path, data.get("notify"))   # None: nothing is sent

Each error is one line naming the file and the key, like the campaign's other tables.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from dialer.campaign.model import (
    ENV_NAME,
    NOTIFY_EVENTS,
    NOTIFY_FILE,
    Notify,
    NotifyEvent,
)
from dialer.campaign.toml_file import toml_bytes, toml_tables
from dialer.core.statuses import CampaignError

_KEYS = ("url_env", "secret_env", "events", "outcomes")
_A_URL = "a URL"


def campaign_notify(path: Path, table: Any) -> Notify | None:
    """The campaign's `[notify]` (`table`, as its file holds it), else its folder's."""
    if table is not None:
        return parse_notify(path, table)
    return folder_notify(path.parent)


def folder_notify(folder: Path) -> Notify | None:
    """`<folder>/_notify.toml`'s `[notify]`; None when there is no such file."""
    path = folder / NOTIFY_FILE
    if not os.path.lexists(path):
        return None
    raw = toml_bytes(path, NOTIFY_FILE, f"a {NOTIFY_FILE} file")
    data = toml_tables(path, raw, NOTIFY_FILE)
    for key in data:
        if key != "notify":
            raise CampaignError(f"{path}: unknown key '{key}' (allowed: notify)")
    if "notify" not in data:
        raise CampaignError(f"{path}: missing table 'notify'")
    return replace(parse_notify(path, data["notify"]), shared=True)


def parse_notify(path: Path, table: Any) -> Notify:
    """One `[notify]` table, every key known and of its kind."""
    if not isinstance(table, dict):
        raise CampaignError(f"{path}: key 'notify' must be a table, got {shown_value(table)}")
    for key in table:
        if key not in _KEYS:
            raise CampaignError(f"{path}: unknown key 'notify.{key}' (allowed: {', '.join(_KEYS)})")
    if "url_env" not in table:
        raise CampaignError(f"{path}: missing required key 'notify.url_env'")
    url_env = _env_name(path, "url_env", table["url_env"])
    secret = table.get("secret_env")
    secret_env = None if secret is None else _env_name(path, "secret_env", secret)
    events = _events(path, table.get("events", list(NOTIFY_EVENTS)))
    outcomes = table.get("outcomes", False)
    if not isinstance(outcomes, bool):
        raise CampaignError(
            f"{path}: key 'notify.outcomes' must be true or false, got {shown_value(outcomes)}"
        )
    if not events and not outcomes:
        raise CampaignError(
            f"{path}: key 'notify.events' is empty and 'notify.outcomes' is false: nothing "
            "would ever be sent"
        )
    return Notify(url_env=url_env, secret_env=secret_env, events=events, outcomes=outcomes)


def _env_name(path: Path, key: str, value: Any) -> str:
    """The name of an environment variable: the URL or secret itself is never in a file."""
    if not isinstance(value, str) or not ENV_NAME.fullmatch(value):
        shown = shown_value(value)
        hint = " (the URL itself goes in the environment)" if shown == _A_URL else ""
        raise CampaignError(
            f"{path}: key 'notify.{key}' must be an environment variable name like "
            f"DIALER_NOTIFY_URL, got {shown}{hint}"
        )
    return value


def shown_value(value: Any) -> str:
    """A wrong value as an error quotes it: a pasted URL is a secret (a webhook's path is
    its key), so it is never shown, in whatever key or list it was pasted."""
    if isinstance(value, str):
        return _A_URL if "/" in value or ":" in value else repr(value)
    if isinstance(value, bool | int | float):
        return repr(value)
    return f"a {type(value).__name__}"


def _events(path: Path, value: Any) -> frozenset[NotifyEvent]:
    allowed = ", ".join(NOTIFY_EVENTS)
    if not isinstance(value, list):
        raise CampaignError(f"{path}: key 'notify.events' must be a list of: {allowed}")
    events: set[NotifyEvent] = set()
    for item in value:
        if item == NotifyEvent.OUTCOMES:
            raise CampaignError(
                f"{path}: key 'notify.events' has 'outcomes'; say `outcomes = true` instead"
            )
        if not isinstance(item, str) or item not in NOTIFY_EVENTS:
            raise CampaignError(
                f"{path}: key 'notify.events' has {shown_value(item)}; use {allowed}"
            )
        events.add(NotifyEvent(item))
    return frozenset(events)
