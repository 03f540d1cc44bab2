"""`make soak-redial`: the outcome loop under kill -9 and lost WALs, judged by the fake's record.

    python -m bench.soak_redial [--minutes 10] [--campaigns 4] [--rows 150] [--seed 1]

Several campaigns of one folder share one agent, half their numbers and the same customer ids;
each has `[redial]` (no answer and busy, after 3 s, at most 3 calls) and the first two have
`[limits] per_day = 2`. One `dialer fake-tabbly` draws outcomes and shows each call's log rows
a little later. Until the time is up, a random campaign is run, or synced, or its sheet grows;
a run or a sync is killed with SIGKILL at a random moment, and after some kills the campaign's
ledger -wal or the shared `contacts.sqlite` -wal is deleted; a command refused for a lost
ledger is followed by `dialer ledger rebuild`, as the refusal says.

Judged only from what the fake accepted (each call's number, outcome and time; the campaign is
told by its own caller number), never from dialer's files:
- over max_calls: people a campaign called more than 3 times;
- after answered: calls a campaign placed to someone who had answered its earlier call;
- unlisted: redials after an outcome that is not no answer or busy (voicemail, answered);
- early: redials sooner than 3 s after the campaign's previous call to that person;
- over per_day: calls of a limited campaign to a number already called twice (by any
  campaign) in the 24 hours before.
Exit 0 when every count is 0, else 1. `tests/test_soak.py` runs a short form.
"""

from __future__ import annotations

import argparse
import csv
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from bench.soak import ROUND_BOUND_SECONDS, cli_env, run_dialer
from dialer.fake_tabbly import (
    DEFAULT_AGENT_ID,
    DEFAULT_ORGANIZATION_ID,
    FakeTabblyProcess,
)

MAX_CALLS = 3
AFTER_SECONDS = 3.0  # after_minutes = 0.05
REDIAL_ON = frozenset({"no_answer", "busy"})
PER_DAY = 2
LIMITED = 2  # the first campaigns carry [limits]
# The fake's time of acceptance and dialer's own time of the call differ by the request's
# latency on either side: a redial may arrive this much short of AFTER_SECONDS and be right.
EARLY_SLACK = 0.5
RULES = ("over max_calls", "after answered", "unlisted", "early", "over per_day")
OUTCOMES = "answered=0.3,no_answer=0.35,busy=0.2,voicemail=0.1,failed=0.05"


def _caller(i: int) -> str:
    return f"+1415680{1300 + i:04d}"


def _campaign(root: Path, name: str, i: int, url: str, logs_url: str) -> Path:
    limits = f"\n[limits]\nper_day = {PER_DAY}\n" if i < LIMITED else ""
    path = root / "campaigns" / f"{name}.toml"
    path.write_text(
        f'''name = "{name}"
organization_id = {DEFAULT_ORGANIZATION_ID}
agent_id = {DEFAULT_AGENT_ID}
call_from = "{_caller(i)}"
first_line = "Hello {{{{ first_name }}}}."
endpoint = "{url}"
logs_endpoint = "{logs_url}"

[contacts]
source = "../data/{name}.csv"
phone_column = "phone"
id_column = "customer_id"
default_region = "IN"

[dispatch]
rate_per_second = 40
concurrency = 4
max_attempts = 3
timeout_seconds = 5

[redial]
outcomes = ["no_answer", "busy"]
after_minutes = {AFTER_SECONDS / 60}
max_calls = {MAX_CALLS}
{limits}''',
        encoding="utf-8",
    )
    return path


@dataclass
class Folder:
    """The campaigns, their growing sheets, and the pool of numbers they share."""

    root: Path
    rng: random.Random
    names: list[str]
    campaigns: dict[str, Path] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    own: int = 0

    def grow(self, name: str, n: int) -> None:
        """`n` more rows: half from the shared pool (same id in every sheet), half its own."""
        path = self.root / "data" / f"{name}.csv"
        new = not path.exists()
        with open(path, "a", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(["customer_id", "first_name", "phone"])
            for _ in range(n):
                if self.rng.random() < 0.5:
                    k = self.rng.randrange(400)
                    writer.writerow([f"S{k}", f"Shared{k}", f"+9173591{k:05d}"])
                else:
                    self.own += 1
                    writer.writerow([f"O{self.own}", f"Own{self.own}", f"+9173592{self.own:05d}"])
        self.rows[name] = self.rows.get(name, 0) + n


def _accepted(fake: FakeTabblyProcess) -> int:
    return int(fake.state()["accepted"])


def _killed(args: list[str], fake: FakeTabblyProcess, rng: random.Random, kill: bool) -> str:
    """One command; with `kill`, SIGKILL once the fake has accepted a few more calls (or at a
    random moment of start-up); else left to finish. Returns what happened (for the log)."""
    before = _accepted(fake)
    proc = subprocess.Popen(
        [sys.executable, "-m", "dialer", *args],
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + ROUND_BOUND_SECONDS
    said = "finished"
    if kill:
        target = before + rng.randint(1, 12)
        if rng.random() < 0.3:
            time.sleep(rng.uniform(0.0, 1.5))  # a random moment is the point, not a wait
        else:
            while _accepted(fake) < target and proc.poll() is None:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            said = "killed"
    try:
        _, err = proc.communicate(timeout=ROUND_BOUND_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        return "hung (killed)"
    if said == "finished" and proc.returncode not in (0, 1, 3):
        said = f"exit {proc.returncode}: {(err or '').strip().splitlines()[-1:]}"
    return said


def _lose_wal(folder: Folder, name: str, shared: bool) -> str:
    """Delete a -wal and -shm; a ledger then refused as lost is rebuilt, as its refusal says."""
    base = folder.root / "state" / ("contacts.sqlite" if shared else f"{name}.sqlite")
    for suffix in ("-wal", "-shm"):
        base.with_name(base.name + suffix).unlink(missing_ok=True)
    what = "shared -wal lost" if shared else "ledger -wal lost"
    rebuilt = 0
    for other, campaign in folder.campaigns.items():
        status = run_dialer("status", str(campaign))
        if status.returncode != 0 and "dialer ledger rebuild" in status.stderr:
            done = run_dialer("ledger", "rebuild", str(campaign))
            if done.returncode != 0:
                raise SystemExit(f"soak: rebuild of {other} failed: {done.stderr.strip()}")
            rebuilt += 1
    return f"{what}: {rebuilt} ledger(s) refused and rebuilt"


@dataclass(frozen=True, slots=True)
class Call:
    campaign: str
    number: str
    outcome: str
    at: float


def _outcome(drawn: str, attempt: str) -> str:
    """The outcome a call's log rows mean: over one call's rows answered > voicemail > busy >
    no answer > failed, so a failed call logged after a "no answer" attempt row is no answer."""
    return "no_answer" if drawn == "failed" and attempt else drawn


def _calls(fake: FakeTabblyProcess, callers: dict[str, str]) -> list[Call]:
    return sorted(
        (
            Call(
                callers[c["call_from"]],
                c["called_to"],
                _outcome(c["outcome"], c["attempt"]),
                datetime.fromisoformat(c["called_at"]).timestamp(),
            )
            for c in fake.state()["calls"]
            if c["call_from"] in callers
        ),
        key=lambda c: c.at,
    )


def judge(calls: list[Call], limited: set[str]) -> Counter[str]:
    """Each rule's breaches, from the accepted calls alone."""
    found: Counter[str] = Counter()
    by_person: dict[tuple[str, str], list[Call]] = defaultdict(list)
    by_number: dict[str, list[float]] = defaultdict(list)
    for call in calls:
        mine = by_person[call.campaign, call.number]
        if mine:
            last = mine[-1]
            if any(c.outcome == "answered" for c in mine):
                found["after answered"] += 1
            elif last.outcome not in REDIAL_ON:
                found["unlisted"] += 1
                found[f"unlisted after {last.outcome}"] += 1
            if call.at - last.at < AFTER_SECONDS - EARLY_SLACK:
                found["early"] += 1
        if call.campaign in limited:
            day = [t for t in by_number[call.number] if call.at - t < 86_400]
            if len(day) >= PER_DAY:
                found["over per_day"] += 1
        mine.append(call)
        by_number[call.number].append(call.at)
    found["over max_calls"] = sum(1 for calls in by_person.values() if len(calls) > MAX_CALLS)
    return found


def _show_breaches(calls: list[Call], t0: float) -> None:
    """Each campaign-person pair that broke a rule, with its calls (seconds on the clock of
    the action log above): what to look for first."""
    by_person: dict[tuple[str, str], list[Call]] = defaultdict(list)
    for call in calls:
        by_person[call.campaign, call.number].append(call)
    for (campaign, number), mine in sorted(by_person.items()):
        if any(judge(mine, set()).values()):  # its own calls alone (per_day aside)
            story = ", ".join(f"{c.outcome} at {c.at - t0:.1f}s" for c in mine)
            print(f"    {campaign} {number}: {story}")


def soak(
    minutes: float, n: int, rows: int, seed: int, lose_wal: float = 0.3, keep: Path | None = None
) -> int:
    rng = random.Random(seed)
    names = [f"c{i}" for i in range(n)]
    callers = {_caller(i): name for i, name in enumerate(names)}
    options = ["--latency", "0.05", "--balance", "1000000", "--fail-rate", "0.02"]
    options += ["--outcomes", OUTCOMES, "--log-delay", "1", "--seed", str(seed)]
    for caller in callers:
        options += ["--call-from", caller]
    actions: Counter[str] = Counter()
    with tempfile.TemporaryDirectory(prefix="dialer-soak-redial-") as tmp:
        root = keep or Path(tmp)
        for sub in ("campaigns", "data", "state", "reports"):
            (root / sub).mkdir()
        folder = Folder(root, rng, names)
        with FakeTabblyProcess(*options) as fake:
            logs = fake.url.replace("trigger-call", "call-logs-v2")
            for i, name in enumerate(names):
                folder.campaigns[name] = _campaign(root, name, i, fake.url, logs)
                folder.grow(name, rows)
            t0, t0_wall = time.monotonic(), time.time()
            end = t0 + minutes * 60
            while time.monotonic() < end:
                name = rng.choice(names)
                campaign = str(folder.campaigns[name])
                pick = rng.random()
                if pick < 0.55:
                    kill = rng.random() < 0.6
                    said = _killed(["run", campaign, "--yes", "--progress", "log"], fake, rng, kill)
                    what = f"run {name}: {said}"
                elif pick < 0.85:
                    kill = rng.random() < 0.3
                    said = _killed(["sync", campaign], fake, rng, kill)
                    what = f"sync {name}: {said}"
                else:
                    folder.grow(name, rng.randint(5, 20))
                    what = f"sheet {name}: {folder.rows[name]} rows"
                    said = "grown"
                actions[what.split(":")[0].split()[0] + " " + said.split(" ")[0]] += 1
                if said == "killed" and rng.random() < lose_wal:
                    lost = _lose_wal(folder, name, shared=rng.random() < 0.4)
                    actions[lost.split(":")[0]] += 1
                    what += f"; {lost}"
                print(f"  {time.monotonic() - t0:6.1f}s {what}", flush=True)
            calls = _calls(fake, callers)
            seconds = time.monotonic() - t0
    found = judge(calls, set(names[:LIMITED]))
    people = len({(c.campaign, c.number) for c in calls})
    print(f"soak-redial: {n} campaigns, {seconds:.0f} s (seed {seed})")
    print(f"  actions: {dict(sorted(actions.items()))}")
    print(f"  calls accepted by the fake: {len(calls)}, to {people} campaign-person pairs")
    for rule in RULES:
        print(f"  {rule}: {found[rule]}")
    if found["unlisted"]:
        after = (f"{k} {v}" for k, v in found.items() if k.startswith("unlisted "))
        print(f"    ({', '.join(after)})")
    ok = not any(found[rule] for rule in RULES)
    if not ok:
        _show_breaches(calls, t0_wall)
    print("soak-redial: PASS" if ok else "soak-redial: FAIL")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak_redial", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0, help="how long (default 10)")
    parser.add_argument("--campaigns", type=int, default=4, help="campaigns (default 4)")
    parser.add_argument("--rows", type=int, default=150, help="first rows of each sheet (150)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the choices (1)")
    parser.add_argument(
        "--lose-wal", type=float, default=0.3, help="kills followed by a lost -wal (0.3)"
    )
    parser.add_argument(
        "--keep", type=Path, help="an empty folder to run in and keep, to read a breach after"
    )
    args = parser.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    return soak(args.minutes, args.campaigns, args.rows, args.seed, args.lose_wal, args.keep)


if __name__ == "__main__":
    sys.exit(main())
