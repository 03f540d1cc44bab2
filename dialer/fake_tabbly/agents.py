"""The fake's get-agents API: the organisation's agents, in either documented shape.

    GET /dashboard/agents/endpoints/get-agents?organization_id=244&api_key=...&limit=&offset=

    docs     {"success": true, "agents": [{"agent_id", "agent_name", "status", ...}], "total": N}
    gitbook  {"status": "success", "data": [{"id", "agent_name", "phone_number", ...}], "count": N}

It lists the one agent the trigger endpoint accepts and a paused one it does not (a menu
shows both, as Tabbly would). Wrong key -> 401 `{"error": "Invalid API key"}`, unknown
organization -> 404, a missing or bad number -> 400.
"""

from __future__ import annotations

import json

from aiohttp import web

from dialer.fake_tabbly.rules import Account

AGENTS_PATH = "/dashboard/agents/endpoints/get-agents"
AGENTS_SHAPES = ("docs", "gitbook")
_CREATED = "2025-04-09 10:00:00"


class Agents:
    """The get-agents handler over an `Account`; `shape` may be changed while serving."""

    def __init__(self, account: Account, shape: str = "docs") -> None:
        if shape not in AGENTS_SHAPES:
            raise ValueError(f"agents_shape must be one of {', '.join(AGENTS_SHAPES)}")
        self.account = account
        self.shape = shape
        self.requests = 0

    def listed(self) -> list[tuple[int, str, str]]:
        """(id, name, status) of each agent the organisation has."""
        ident = self.account.agent_id
        return [(ident, "Order follow-up", "active"), (ident + 1, "Support line", "paused")]

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        query = request.query
        if query.get("api_key") != self.account.api_key:
            return _json(401, {"error": "Invalid API key"})
        try:
            organization = int(query["organization_id"])
            limit = int(query.get("limit", "100"))
            offset = int(query.get("offset", "0"))
        except (KeyError, ValueError):
            return _json(400, {"error": "organization_id, limit and offset must be integers"})
        if organization != self.account.organization_id:
            return _json(404, {"error": "Organization not found"})
        agents = self.listed()
        page = agents[max(offset, 0) : max(offset, 0) + max(limit, 0)]
        if self.shape == "docs":
            rows = [
                {
                    "agent_id": ident,
                    "agent_name": name,
                    "agent_description": f"{name} (fake)",
                    "status": status,
                    "voice_id": 5,
                    "language": "en",
                    "created_at": "2025-01-01T10:00:00Z",
                    "updated_at": "2025-01-15T14:30:00Z",
                }
                for ident, name, status in page
            ]
            return _json(200, {"success": True, "agents": rows, "total": len(agents)})
        rows = [
            {
                "id": ident,
                "agent_name": name,
                "custom_first_line": "Hello, how can I assist you?",
                "prompt_text": None,
                "phone_number": self.account.call_from[0],
                "created_time": _CREATED,
            }
            for ident, name, _status in page
        ]
        return _json(200, {"status": "success", "data": rows, "count": len(rows)})


def _json(status: int, payload: object) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(payload).encode(), content_type="application/json"
    )
