"""`dialer fake-tabbly` (also `python -m dialer.fake_tabbly`): its options, and serving until
SIGINT/SIGTERM after printing the URL, the accepted values and how the call logs behave (what
became of the calls, and who said "do not call me": `--said`, `--said-share`)."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import signal
import sys
from typing import TYPE_CHECKING

from dialer.core.statuses import ExitCode
from dialer.fake_tabbly.rules import (
    DEFAULT_AGENT_ID,
    DEFAULT_API_KEY,
    DEFAULT_CALL_FROM,
    DEFAULT_ORGANIZATION_ID,
    LOGS_DOCS_PATH,
    format_outcomes,
    parse_outcomes,
)
from dialer.fake_tabbly.said import SAID_KINDS, describe_said, parse_said, said_numbers

if TYPE_CHECKING:  # the server (aiohttp.web) loads only to serve, not to build `dialer --help`
    from dialer.fake_tabbly.server import FakeTabbly

# The first line printed; FakeTabblyProcess reads the URL from it.
LISTENING = "fake-tabbly listening on "


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `dialer fake-tabbly` options."""
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="loopback address to listen on (default 127.0.0.1)")
    add(
        "--port",
        type=int,
        default=8787,
        help="port to listen on; 0 picks a free one (default 8787)",
    )
    add("--balance", type=float, default=5.0, help="starting wallet balance (default 5.0)")
    add("--cost", type=_non_negative, default=0.1, help="charge per triggered call (default 0.1)")
    add("--latency", type=_non_negative, default=0.05, help="seconds before every answer (0.05)")
    add("--fail-rate", type=_rate, default=0.0, help="share of requests answered 500 (default 0)")
    add("--rate-429", type=_rate, default=0.0, help="share of requests answered 429 (default 0)")
    add(
        "--retry-after",
        type=_retry_after_arg,
        default=1.0,
        help="Retry-After seconds on random 429s; 'none' sends no header (default 1)",
    )
    add("--hang-rate", type=_rate, default=0.0, help="share of requests never answered (0)")
    add("--drop-rate", type=_rate, default=0.0, help="share of connections dropped unanswered (0)")
    add(
        "--organization-id",
        type=int,
        default=DEFAULT_ORGANIZATION_ID,
        help=f"the one organization_id accepted (default {DEFAULT_ORGANIZATION_ID})",
    )
    add(
        "--agent-id",
        type=int,
        default=DEFAULT_AGENT_ID,
        help=f"the one use_agent_id accepted (default {DEFAULT_AGENT_ID})",
    )
    add(
        "--call-from",
        action="append",
        metavar="E164",
        help=f"a registered call_from number; repeat for several (default {DEFAULT_CALL_FROM})",
    )
    add(
        "--api-key",
        default=DEFAULT_API_KEY,
        help=f"the accepted api_key (default {DEFAULT_API_KEY})",
    )
    add(
        "--seed",
        type=int,
        default=0,
        help="seed for the random fault rates and the calls' outcomes (default 0)",
    )
    _add_log_options(parser)


def _add_log_options(parser: argparse.ArgumentParser) -> None:
    """What the call logs and the agent list say: shapes, outcomes, what people said."""
    add = parser.add_argument
    add(
        "--logs-shape",
        choices=("v2", "docs"),
        default="v2",
        help="the call logs' envelope and field names: Tabbly's call-logs-v2 or its docs' "
        "get-call-logs (both paths answer; default v2)",
    )
    add(
        "--agents-shape",
        choices=("docs", "gitbook"),
        default="docs",
        help="the get-agents answer: Tabbly's API reference (success/agents/total) or its "
        "older gitbook page (status/data/count); default docs",
    )
    add(
        "--outcomes",
        type=_outcomes_arg,
        default=None,
        metavar="NAME=SHARE,...",
        help="shares of accepted calls ending so (answered, voicemail, busy, no_answer, failed); "
        "default answered=0.5,no_answer=0.3,busy=0.1,voicemail=0.1",
    )
    add(
        "--log-delay",
        type=_non_negative,
        default=0.0,
        metavar="SECONDS",
        help="seconds after a call before its log rows appear (default 0)",
    )
    add(
        "--said",
        action="append",
        type=_said_arg,
        default=[],
        metavar="E164=KIND",
        help="what the person at this number says on a call to it (always answered); repeat "
        f"for several numbers. KIND, one of {', '.join(SAID_KINDS)}: phrase = 'User: Please "
        "stop calling me', hindi = the same in Devanagari Hindi, json = call_json_output "
        '{"opt_out": "yes"}, outcome = call_outcome "do_not_call", decoy = only the agent '
        "says 'stop calling' (not an opt-out)",
    )
    add(
        "--said-share",
        type=_rate,
        default=0.0,
        metavar="SHARE",
        help="share of the other answered calls whose person opts out, in one of the four "
        "opt-out kinds drawn at random (seeded; never the decoy); default 0",
    )
    add(
        "--seed-calls",
        type=_count,
        default=0,
        metavar="N",
        help="start with N calls already in the logs, numbers +91750000000..(bench; default 0)",
    )


def run_from_args(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM after printing the URL and accepted values; 0 when stopped."""
    if not _is_loopback(args.host):
        print(
            f"fake-tabbly: refusing to listen on {args.host!r}: use a loopback address "
            "(127.0.0.1, ::1 or localhost)",
            file=sys.stderr,
        )
        return ExitCode.INPUT_ERROR
    from dialer.fake_tabbly.server import FakeTabbly

    try:
        fake = FakeTabbly(
            organization_id=args.organization_id,
            agent_id=args.agent_id,
            call_from=args.call_from or (DEFAULT_CALL_FROM,),
            api_key=args.api_key,
            balance=args.balance,
            cost=args.cost,
            latency=args.latency,
            fail_rate=args.fail_rate,
            rate_429=args.rate_429,
            retry_after=args.retry_after,
            hang_rate=args.hang_rate,
            drop_rate=args.drop_rate,
            seed=args.seed,
            logs_shape=args.logs_shape,
            outcomes=args.outcomes,
            log_delay=args.log_delay,
            agents_shape=args.agents_shape,
            said=said_numbers(args.said),
            said_share=args.said_share,
        )
        fake.seed_calls(args.seed_calls)
    except ValueError as exc:
        print(f"fake-tabbly: {exc}", file=sys.stderr)
        return ExitCode.INPUT_ERROR
    # "localhost" may resolve to two addresses, which with port 0 would get two different ports.
    host = "127.0.0.1" if args.host == "localhost" else args.host
    try:
        return asyncio.run(_serve(fake, host, args.port))
    except OSError as exc:
        print(
            f"fake-tabbly: cannot listen on {host}:{args.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return ExitCode.INPUT_ERROR


async def _serve(fake: FakeTabbly, host: str, port: int) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    url = await fake.start(host, port)
    lines = [
        f"{LISTENING}{url}",
        f"  organization_id: {fake.account.organization_id}",
        f"  agent_id: {fake.account.agent_id}",
        f"  call_from: {', '.join(fake.account.call_from)}",
        f"  api_key: {fake.account.api_key}",
        f"  balance: {fake.balance:g}",
        f"  cost: {fake.cost:g}",
        f"  call logs: {fake.logs_url} (also {LOGS_DOCS_PATH}), shape {fake.logs_shape}",
        f"  agents: {fake.agents_url}, shape {fake.agents.shape}",
        f"  outcomes: {format_outcomes(fake.logs.weights)}",
        f"  log_delay: {fake.logs.log_delay:g} s",
    ]
    said = describe_said(fake.logs.said_numbers, fake.logs.said_share)
    if said:
        lines.append(f"  said: {said}")
    if fake.logs.seeded:
        lines.append(f"  seeded calls: {fake.logs.seeded}")
    print("\n".join(lines), flush=True)
    try:
        await stop.wait()
    finally:
        await fake.stop()
    return ExitCode.OK


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0 or value != value:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def _outcomes_arg(text: str) -> dict[str, float]:
    try:
        return parse_outcomes(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _said_arg(text: str) -> tuple[str, str]:
    try:
        return parse_said(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def _retry_after_arg(text: str) -> float | None:
    return None if text.lower() == "none" else _non_negative(text)
