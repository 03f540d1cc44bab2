"""`make demo`: the whole loop of the sample campaign against a local fake Tabbly on 127.0.0.1.

Starts `dialer fake-tabbly` on a free port (its call logs draw each call's outcome, seeded,
and show it a second after the call), then, in a fresh folder `demo/<UTC time>/` holding a copy
of `campaigns/example.toml` with a short `[redial]`:

    dialer validate   the dry run
    dialer run        every ready row called once
    dialer sync       the outcomes read from the call logs: counts, answer rate, results file
    dialer run        syncs first, then calls again exactly the no-answer and busy people

and checks that last point against what the fake says it drew. One sample person (`SAID`)
tells the agent not to call again (the fake logs `call_outcome` "do_not_call"): the sync
prints the disposition and the opt-out, and the redial run's report line for them says why
they were not called (`opted_out` where the run judges the register; the demo checks it
whenever the report uses that status). Nothing leaves this machine.
With `--page` (`make serve-demo`), the web page against the fake instead: `demo_page.py`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from dialer.commands.arguments import Subparsers, command_parser
from dialer.core.masking import mask_phone
from dialer.core.statuses import FINISHED_CODES, CallOutcome, ExitCode, Status
from dialer.fake_tabbly import DEFAULT_API_KEY
from dialer.ledger.evidence import records
from dialer.reports.writer import REPORT_COLUMNS, undefuse

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "campaigns" / "example.toml"
LOG_DELAY = 1.0  # seconds before the fake shows a call's log row
# The demo's redial: 0.05 minutes (3 s) so it finishes in seconds; a real campaign waits hours.
REDIAL = '\n[redial]\noutcomes = ["no_answer", "busy"]\nafter_minutes = 0.05\nmax_calls = 3\n'
REDIALED = frozenset({CallOutcome.NO_ANSWER, CallOutcome.BUSY})
# The sample person (row 1) who says "do not call me again" on the first call.
SAID = "+917359043943"
FAKE_OPTIONS = (
    "--balance",
    "100",
    "--latency",
    "0.05",
    "--fail-rate",
    "0.05",
    "--outcomes",
    "answered=0.5,no_answer=0.3,busy=0.1,voicemail=0.1",
    "--log-delay",
    str(LOG_DELAY),
    "--said",
    f"{SAID}=outcome",
)


def add_parser(subparsers: Subparsers) -> None:
    parser = command_parser(
        subparsers,
        "demo",
        "Try dialer against a local fake Tabbly: the sample campaign, or the web page.",
        "dialer demo --page",
        description="Without --page: the sample campaign's whole loop (check, run, sync, "
        "redial) against a local fake Tabbly. With --page: the fake and the web page on free "
        "ports of 127.0.0.1, with a new token printed once; Ctrl-C stops both. Nothing reaches "
        "tabbly.io.",
        epilog=None,
    )
    parser.add_argument(
        "--page", action="store_true", help="serve the web page against the fake (make serve-demo)"
    )
    parser.add_argument(
        "--folder",
        type=Path,
        metavar="DIR",
        help="with --page: the project folder (campaigns/, reports/); default demo/<UTC time>",
    )
    parser.set_defaults(handle=handle)


def handle(args: argparse.Namespace) -> int:
    if args.page:
        from dialer.commands.demo_page import serve_demo

        return serve_demo(args.folder)
    return main()


def demo_campaign() -> Path:
    """A fresh project folder, so every demo starts with nobody called: the example campaign
    with its sheet paths made absolute and the demo's `[redial]` added."""
    when = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = ROOT / "demo" / when / "campaigns"
    folder.mkdir(parents=True, exist_ok=True)
    text = EXAMPLE.read_text(encoding="utf-8")
    text = text.replace('"../sample_data/', f'"{(ROOT / "sample_data").as_posix()}/')
    path = folder / "example.toml"
    path.write_text(text + REDIAL, encoding="utf-8")
    return path


def dialer(*args: str, env: dict[str, str]) -> int:
    print(f"\n$ dialer {' '.join(args)}", flush=True)
    return subprocess.call([sys.executable, "-m", "dialer", *args], env=env, cwd=ROOT)


def main() -> int:
    from dialer.fake_tabbly import FakeTabblyProcess  # its aiohttp server: only when it runs

    campaign = str(demo_campaign())
    with FakeTabblyProcess(*FAKE_OPTIONS) as fake:
        print(f"demo: fake Tabbly at {fake.url}", flush=True)
        print(f"demo: campaign {campaign}", flush=True)
        base = fake.url.split("/dashboard/")[0]
        env = {
            **os.environ,
            "TABBLY_API_URL": fake.url,
            "TABBLY_LOGS_URL": f"{base}/dashboard/agents/endpoints/call-logs-v2",
            "TABBLY_API_KEY": DEFAULT_API_KEY,
        }
        dialer("validate", campaign, env=env)
        first = dialer("run", campaign, "--yes", env=env)
        called = fake.state()["calls"]
        print(f"\ndemo: waiting {LOG_DELAY:g} s for the call logs", flush=True)
        time.sleep(LOG_DELAY + 0.5)  # a demo's pause, not a test: the fake's log delay
        synced = dialer("sync", campaign, env=env)
        # The redial waits `after_minutes` (3 s here) after each person's last call.
        time.sleep(3.5)
        reports = _reports(campaign)
        second = dialer("run", campaign, "--yes", env=env)
        redialed = {c["called_to"] for c in fake.state()["calls"][len(called) :]}
        new = _reports(campaign) - reports
        said = said_line(new.pop() if len(new) == 1 else None)
    unanswered = {c["called_to"] for c in called if c["outcome"] in REDIALED}
    exact = redialed == unanswered
    print(
        f"\ndemo: the first run placed {len(called)} calls; the call logs said "
        f"{len(unanswered)} were not answered or busy; the redial run called "
        f"{len(redialed)} people: {'exactly those' if exact else 'NOT exactly those'}",
        flush=True,
    )
    kept_off = heard(said, SAID in redialed)
    for name, code in (("first run", first), ("sync", synced), ("redial run", second)):
        print(f"demo: {name} exited {code} ({ExitCode(code).name})", flush=True)
    # The sample sheet has invalid rows on purpose, so 1 is the expected, healthy answer.
    healthy = all(code in FINISHED_CODES for code in (first, synced, second))
    return 0 if healthy and exact and kept_off else 1


def _reports(campaign: str) -> set[Path]:
    """The run reports (CSV) of the demo's campaign so far."""
    folder = Path(campaign).parents[1] / "reports" / "example"
    return {p for p in folder.glob("*.csv") if ".results." not in p.name}


def said_line(report: Path | None) -> tuple[str, str, bool] | None:
    """The redial run's report line for `SAID`: (status, reason, whether the report uses the
    `opted_out` status at all); None when there is no report or no such line."""
    if report is None:
        return None
    at_to, at_status, at_reason = (
        REPORT_COLUMNS.index(c) for c in ("called_to", "status", "reason")
    )
    found, uses = None, False
    for record in list(records(report))[1:]:
        if len(record) <= at_reason:
            continue
        status = record[at_status]
        uses = uses or status == Status.OPTED_OUT
        if found is None and undefuse(record[at_to]) == SAID:  # row 1; a later one is its duplicate
            found = (status, undefuse(record[at_reason]))
    return (*found, uses) if found else None


def heard(said: tuple[str, str, bool] | None, redialed: bool) -> bool:
    """Say what became of the person who asked not to be called; False when they were called
    again, or when the report uses `opted_out` but not for them."""
    who = mask_phone(SAID)
    if redialed:
        print(f"demo: {who} asked not to be called, and the redial run CALLED them", flush=True)
        return False
    if said is None:
        print(f"demo: {who} asked not to be called; not called again", flush=True)
        return True
    status, reason, uses = said
    print(
        f"demo: {who} asked not to be called on the first call; the redial run did not call "
        f"them: {status} ({reason})",
        flush=True,
    )
    return status == Status.OPTED_OUT or not uses


if __name__ == "__main__":
    sys.exit(main())
