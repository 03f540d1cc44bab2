"""A local stand-in for Tabbly's trigger-call API (SPEC 2 and 8): demo, tests, benchmarks.

    with FakeTabblyThread(balance=1.0) as fake:
        post(fake.url, body)                  # any HTTP client, real sockets on 127.0.0.1
        fake.script("429:2", "drop")          # the next two requests misbehave, in that order
        assert fake.accepted()[0]["called_to"] == "+917359043943"

It validates each request as the real API documents (exact keys and JSON types -> 400, wrong key
-> 401, unknown organization / agent / unregistered `call_from` -> 404, wallet below 0.2 -> 402),
charges `cost` per triggered call and answers 200 with the documented success body; latency,
error statuses, 429s, hangs, dropped connections and echoes are injected on request.

The parts, as a request meets them (every name below is importable from `dialer.fake_tabbly`):

    rules.py     the API's rules: paths, accepted values, request validation, wallet, bodies
    faults.py    what can go wrong: fault names, a script, a per-body predicate, seeded rates
    server.py    FakeTabbly: the aiohttp application over the two, and what it received
    command.py   `dialer fake-tabbly` / `python -m dialer.fake_tabbly`: options, serving
    runners.py   FakeTabblyThread and FakeTabblyProcess, for tests, the demo and bench
"""

from dialer.fake_tabbly.command import LISTENING, add_arguments, run_from_args
from dialer.fake_tabbly.faults import FAULT_NAMES, parse_fault
from dialer.fake_tabbly.rules import (
    DEFAULT_AGENT_ID,
    DEFAULT_API_KEY,
    DEFAULT_CALL_FROM,
    DEFAULT_ORGANIZATION_ID,
    MIN_BALANCE,
    TRIGGER_PATH,
)
from dialer.fake_tabbly.runners import FakeTabblyProcess, FakeTabblyThread
from dialer.fake_tabbly.server import (
    SCRIPT_PATH,
    STATE_PATH,
    TOPUP_PATH,
    FakeTabbly,
    Received,
)

__all__ = [
    "DEFAULT_AGENT_ID",
    "DEFAULT_API_KEY",
    "DEFAULT_CALL_FROM",
    "DEFAULT_ORGANIZATION_ID",
    "FAULT_NAMES",
    "LISTENING",
    "MIN_BALANCE",
    "SCRIPT_PATH",
    "STATE_PATH",
    "TOPUP_PATH",
    "TRIGGER_PATH",
    "FakeTabbly",
    "FakeTabblyProcess",
    "FakeTabblyThread",
    "Received",
    "add_arguments",
    "parse_fault",
    "run_from_args",
]
