"""The agent menu of the campaign form: an organisation's agents from Tabbly's get-agents,
cached a while (`agents_cache_seconds`, at most `agents_cache_entries`), and each ask the
cache cannot answer spent from its session's bucket, so a page asking for 200 organisations
never makes 200 upstream calls.

    menus = AgentMenus(settings, environ)
    agents, problem = await menus.menu(session_key, "4821", base)   # AgentsThrottled: wait
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

from dialer.tabbly.agents import Agent, AgentsError, agents_url, fetch_agents
from dialer.tabbly.client import Secret
from dialer.web import texts
from dialer.web.auth import LoginThrottle
from dialer.web.services.campaign_fields import id_number
from dialer.web.services.campaign_toml import CampaignForm
from dialer.web.settings import Settings


class AgentsThrottled(Exception):
    """Get-agents asked too often from this session (or from all): `seconds` to wait."""

    def __init__(self, seconds: int) -> None:
        super().__init__(seconds)
        self.seconds = seconds


class AgentMenus:
    """One server's agent menus: the cache and the asks' throttle."""

    def __init__(self, settings: Settings, environ: Mapping[str, str]) -> None:
        self.settings = settings
        self.environ = environ
        # (agents URL, key variable, organisation) -> (when, agents or why not); oldest first.
        self._cache: dict[tuple[str, str, int], tuple[float, list[Agent] | str]] = {}
        # Each ask of get-agents the cache cannot answer spends one of its session's tokens.
        self._asks = LoginThrottle(
            settings.agents_per_session, settings.agents_overall, settings.login_clients_kept
        )

    async def menu(
        self, asker: str, organization: str, base: CampaignForm
    ) -> tuple[list[Agent], str]:
        """The organisation's agents, or the one line saying why there is no menu;
        AgentsThrottled when `asker` (a session) or everyone asked upstream too often."""
        org = id_number(organization)
        if org is None:
            return [], ""
        key = self.environ.get(base.api_key_env, "")
        if not key:
            return [], texts.NO_API_KEY.format(env=base.api_key_env)
        url = agents_url(self.environ, base.endpoint)
        # Keyed by the key's variable too: two campaigns may send different keys to one URL,
        # and one key's agents (or its refusal) must not answer for the other.
        entry = (url, base.api_key_env, org)
        cached = self._cache.get(entry)
        now = time.monotonic()
        if cached is None or now - cached[0] >= self.settings.agents_cache_seconds:
            self._spend(asker)
            try:
                found: list[Agent] | str = await fetch_agents(
                    url, org, Secret(key), timeout=self.settings.agents_timeout
                )
            except AgentsError as exc:
                found = str(exc)
            self._cache.pop(entry, None)
            while self._cache and len(self._cache) >= self.settings.agents_cache_entries:
                del self._cache[next(iter(self._cache))]  # the oldest
            cached = self._cache[entry] = (now, found)
        found = cached[1]
        if isinstance(found, str):
            return [], texts.AGENTS_UNAVAILABLE.format(problem=found)
        return found, ""

    def _spend(self, asker: str) -> None:
        if wait := self._asks.retry_after(asker):
            raise AgentsThrottled(max(1, math.ceil(wait)))
        self._asks.failed(asker)  # spent: the login throttle's buckets, counting asks


def menu_options(agents: list[Agent], chosen: str) -> list[tuple[str, str]]:
    """(value, label) for the agent menu; a chosen agent the list lacks stays chosen."""
    menu = [(str(a.id), a.label) for a in agents]
    number = id_number(chosen)
    if agents and number is not None and str(number) not in {value for value, _ in menu}:
        menu.insert(0, (str(number), f"agent {number} (not in the list)"))
    return menu
