"""Tabbly's get-agents API: the organisation's voice agents, for the page's agent menu.

    url = agents_url(os.environ, campaign_endpoint)
    agents = await fetch_agents(url, organization_id=244, api_key=Secret(key))
    [Agent(id=33, name="Order follow-up", status="active")]

Tabbly documents two versions that disagree, so either envelope is read:
`{"success": true, "agents": [{"agent_id", "agent_name", "status", ...}], "total": N}`
(docs.tabbly.io, `GET .../endpoints/get-agents?organization_id=&api_key=`) and
`{"status": "success", "data": [{"id", "agent_name", "phone_number", ...}], "count": N}`
(the older gitbook page). The request is the documented GET; pages are asked with
`limit`/`offset` until a short page, the total, or `Settings.agents_max_pages`.

The menu is a convenience: any failure is one `AgentsError` line (no key, no query string)
and the page falls back to a number field. The key travels in the query string, and aiohttp's
exceptions carry the URL: no message here is ever built from one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from dialer.campaign.model import ENDPOINT_ENV, beside_trigger, endpoint_problem
from dialer.core.settings import DEFAULTS, Settings
from dialer.core.statuses import DialerError
from dialer.tabbly.client import (
    JSON_GET_HEADERS,
    Scrubber,
    Secret,
    Unread,
    key_problem,
    read_bounded,
    upstream_json,
)

AGENTS_ENV = "TABBLY_AGENTS_URL"
DEFAULT_AGENTS_ENDPOINT = "https://www.tabbly.io/dashboard/agents/endpoints/get-agents"
_AGENTS_NAME = "get-agents"
PAGE_SIZE = 100
MAX_AGENT_NAME_CHARS = 100  # the documented maximum of agent_name
_DETAIL_CHARS = 160
_ID_TEXT = re.compile(r"[0-9]{1,16}")  # an id in JSON is at most 2**53 - 1: 16 digits


class AgentsError(DialerError):
    """The agents could not be read; the page offers a number field instead."""


@dataclass(frozen=True, slots=True)
class Agent:
    id: int
    name: str
    status: str = ""  # active, draft, paused (docs shape); "" when not said

    @property
    def label(self) -> str:
        status = f", {self.status}" if self.status and self.status != "active" else ""
        return f"{self.name} (agent {self.id}{status})"


def agents_url(environ: Mapping[str, str], endpoint: str | None = None) -> str:
    """`TABBLY_AGENTS_URL`, else beside the trigger-call endpoint in use (TABBLY_API_URL, then
    the campaign's `endpoint`): Tabbly serves both from one folder, and so does the fake."""
    if environ.get(AGENTS_ENV):
        return environ[AGENTS_ENV]
    return beside_trigger(environ.get(ENDPOINT_ENV) or endpoint, _AGENTS_NAME) or (
        DEFAULT_AGENTS_ENDPOINT
    )


async def fetch_agents(
    url: str,
    organization_id: int,
    api_key: Secret,
    *,
    timeout: float = 5.0,
    settings: Settings = DEFAULTS,
) -> list[Agent]:
    """The organisation's agents, in the order Tabbly lists them, read within the
    `agents_*` bounds of `settings`; raises `AgentsError`."""
    if key_problem(api_key.reveal()):
        raise AgentsError("agents: the API key is too long to be one")
    scrub = Scrubber(api_key)
    where = _where(url)
    problem = endpoint_problem(url)
    if problem:
        raise AgentsError(f"agents: the URL {problem.split(':')[0]}")
    agents: list[Agent] = []
    seen: set[int] = set()
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    headers = JSON_GET_HEADERS
    # read_bounded decodes, within the page's bound.
    async with aiohttp.ClientSession(
        timeout=client_timeout, headers=headers, auto_decompress=False
    ) as session:
        for page in range(settings.agents_max_pages):
            params = {
                "organization_id": str(organization_id),
                "api_key": api_key.reveal(),
                "limit": str(PAGE_SIZE),
                "offset": str(page * PAGE_SIZE),
            }
            items, total = await _page(
                session, url, params, where, scrub, settings.agents_max_page_bytes
            )
            for item in items:
                agent = _agent(item, scrub)
                if agent is not None and agent.id not in seen:
                    seen.add(agent.id)
                    agents.append(agent)
            asked = (page + 1) * PAGE_SIZE
            if len(items) < PAGE_SIZE or (total is not None and asked >= total):
                break
    return agents


def _where(url: str) -> str:
    """What messages name: host and path, never the query string nor user:password@."""
    try:
        parts = urlsplit(url)
        return f"{parts.hostname or ''}{parts.path}"
    except ValueError:
        return "the agents URL"


async def _page(
    session: aiohttp.ClientSession,
    url: str,
    params: dict[str, str],
    where: str,
    scrub: Scrubber,
    max_bytes: int,
) -> tuple[list[Any], int | None]:
    failure: str | None = None
    status, body = 0, b""
    try:
        # Never a redirect: it would carry the key in the query string to its Location.
        async with session.get(url, params=params, allow_redirects=False) as response:
            status = response.status
            body = await read_bounded(response, max_bytes)
    except Unread as exc:
        failure = "the answer is too large" if exc.too_large else f"the answer is {exc}"
    except TimeoutError:
        failure = "no answer in time"
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        failure = f"cannot connect ({type(exc).__name__})"
    if failure is not None:  # raised outside the handler: no chained exception with the URL
        raise AgentsError(f"agents: {failure} from {where}")
    payload = upstream_json(body)
    if 300 <= status < 400:
        raise AgentsError(f"agents: a redirect, not followed (HTTP {status}) from {where}")
    if not 200 <= status < 300 or not isinstance(payload, dict):
        detail = _detail(payload, scrub) or ("not JSON" if 200 <= status < 300 else "refused")
        raise AgentsError(f"agents: {detail} (HTTP {status}) from {where}")
    if payload.get("success") is False or payload.get("status") == "error":
        raise AgentsError(f"agents: {_detail(payload, scrub) or 'error'} from {where}")
    for key in ("agents", "data"):
        items = payload.get(key)
        if isinstance(items, list):
            return items, _total(payload)
    raise AgentsError(f"agents: the answer from {where} lists no agents")


def _detail(payload: Any, scrub: Scrubber) -> str:
    if isinstance(payload, dict):
        for key in ("error", "message", "detail"):
            value = payload.get(key)
            if isinstance(value, str) and value.strip():
                return " ".join(scrub(value).split())[:_DETAIL_CHARS]
    return ""


def _total(payload: dict[str, Any]) -> int | None:
    for key in ("total", "count"):
        value = payload.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


def _agent(item: Any, scrub: Scrubber) -> Agent | None:
    """One agent of either shape; an entry without a usable id is skipped."""
    if not isinstance(item, dict):
        return None
    ident = item.get("agent_id", item.get("id"))
    if isinstance(ident, str) and _ID_TEXT.fullmatch(ident.strip()):
        ident = int(ident)  # ASCII digits only: "²" is a digit to str.isdigit, not to int
    if not isinstance(ident, int) or isinstance(ident, bool) or not 0 < ident <= 2**53 - 1:
        return None
    name = item.get("agent_name")
    name = " ".join(scrub(name).split())[:MAX_AGENT_NAME_CHARS] if isinstance(name, str) else ""
    status = item.get("status")
    status = status.strip().lower()[:20] if isinstance(status, str) else ""
    return Agent(ident, name or f"Agent {ident}", status)
