"""A local stand-in for Tabbly's trigger-call and call-logs APIs (SPEC 2, 8, 10): demo, tests,
benchmarks.

    with FakeTabblyThread(balance=1.0) as fake:
        post(fake.url, body)                  # any HTTP client, real sockets on 127.0.0.1
        fake.script("429:2", "drop")          # the next two requests misbehave, in that order
        assert fake.accepted()[0]["called_to"] == "+917359043943"
        get(fake.logs_url + "?api_key=...")  # what became of the calls (seeded outcomes)
        fake.call_outcomes()                  # {room_name: outcome}: the truth
        fake.logs.said()                      # {called_to: kind}: who asked not to be called

It validates each request as the real API documents (exact keys and JSON types -> 400, wrong key
-> 401, unknown organization / agent / unregistered `call_from` -> 404, wallet below 0.2 -> 402),
charges `cost` per triggered call and answers 200 with the documented success body; latency,
error statuses, 429s, hangs, dropped connections and echoes are injected on request.

The parts, as a request meets them (every name below is importable from `dialer.fake_tabbly`):

    rules.py     the API's rules: paths, accepted values, request validation, wallet, bodies
    agents.py    Agents: the get-agents API (the page's agent menu), in both shapes
    logs.py      CallLogs: the accepted calls' outcomes and the call-logs API over them
    said.py      what the called person said: opt-outs (phrase, hindi, json, outcome), decoy
    faults.py    what can go wrong: fault names, a script, a per-body predicate, seeded rates
    server.py    FakeTabbly: the aiohttp application over the two, and what it received
    command.py   `dialer fake-tabbly` / `python -m dialer.fake_tabbly`: options, serving
    runners.py   FakeTabblyThread and FakeTabblyProcess, for tests, the demo and bench
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Each name's module, loaded on first use: `dialer --help` and every other command build the
# fake's options without importing its aiohttp server.
_HOMES = {
    "AGENTS_PATH": "agents",
    "AGENTS_SHAPES": "agents",
    "LISTENING": "command",
    "add_arguments": "command",
    "run_from_args": "command",
    "FAULT_NAMES": "faults",
    "parse_fault": "faults",
    "DEFAULT_AGENT_ID": "rules",
    "DEFAULT_API_KEY": "rules",
    "DEFAULT_CALL_FROM": "rules",
    "DEFAULT_ORGANIZATION_ID": "rules",
    "DEFAULT_OUTCOMES": "rules",
    "LOGS_DOCS_PATH": "rules",
    "LOGS_SHAPES": "rules",
    "LOGS_V2_PATH": "rules",
    "OUTCOME_NAMES": "rules",
    "parse_outcomes": "rules",
    "LOG_FAULT_NAMES": "logs",
    "CallLogs": "logs",
    "MIN_BALANCE": "rules",
    "TRIGGER_PATH": "rules",
    "SAID_KINDS": "said",
    "parse_said": "said",
    "FakeTabblyProcess": "runners",
    "FakeTabblyThread": "runners",
    "SCRIPT_PATH": "server",
    "STATE_PATH": "server",
    "TOPUP_PATH": "server",
    "FakeTabbly": "server",
    "Received": "server",
}

if TYPE_CHECKING:
    from dialer.fake_tabbly.agents import AGENTS_PATH, AGENTS_SHAPES
    from dialer.fake_tabbly.command import LISTENING, add_arguments, run_from_args
    from dialer.fake_tabbly.faults import FAULT_NAMES, parse_fault
    from dialer.fake_tabbly.logs import LOG_FAULT_NAMES, CallLogs
    from dialer.fake_tabbly.rules import (
        DEFAULT_AGENT_ID,
        DEFAULT_API_KEY,
        DEFAULT_CALL_FROM,
        DEFAULT_ORGANIZATION_ID,
        DEFAULT_OUTCOMES,
        LOGS_DOCS_PATH,
        LOGS_SHAPES,
        LOGS_V2_PATH,
        MIN_BALANCE,
        OUTCOME_NAMES,
        TRIGGER_PATH,
        parse_outcomes,
    )
    from dialer.fake_tabbly.runners import FakeTabblyProcess, FakeTabblyThread
    from dialer.fake_tabbly.said import SAID_KINDS, parse_said
    from dialer.fake_tabbly.server import (
        SCRIPT_PATH,
        STATE_PATH,
        TOPUP_PATH,
        FakeTabbly,
        Received,
    )


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


__all__ = [
    "AGENTS_PATH",
    "AGENTS_SHAPES",
    "DEFAULT_AGENT_ID",
    "DEFAULT_API_KEY",
    "DEFAULT_CALL_FROM",
    "DEFAULT_ORGANIZATION_ID",
    "DEFAULT_OUTCOMES",
    "FAULT_NAMES",
    "LISTENING",
    "LOGS_DOCS_PATH",
    "LOGS_SHAPES",
    "LOGS_V2_PATH",
    "LOG_FAULT_NAMES",
    "MIN_BALANCE",
    "OUTCOME_NAMES",
    "SAID_KINDS",
    "SCRIPT_PATH",
    "STATE_PATH",
    "TOPUP_PATH",
    "TRIGGER_PATH",
    "CallLogs",
    "FakeTabbly",
    "FakeTabblyProcess",
    "FakeTabblyThread",
    "Received",
    "add_arguments",
    "parse_fault",
    "parse_outcomes",
    "parse_said",
    "run_from_args",
]
