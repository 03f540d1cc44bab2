"""`make soak`: kill -9 a real campaign run at random moments, rerun, and prove nobody was
called twice and no row was lost (SPEC 6.3).

    python -m bench.soak [--kills 30] [--rows 400] [--seed 1] [--lose-wal 0.3]

One `dialer fake-tabbly` process serves every run (a wallet that never empties, a few 500s so
retries happen). Each round starts `dialer run --yes` and kills it with SIGKILL at a random
moment: during start-up (before any request) or once the fake has received a random number
of new requests. After some kills (`--lose-wal`, a fraction) the ledger's -wal and -shm files
are deleted too, as an operator copying only `soak.sqlite` would: `dialer status` must then
refuse the ledger as lost whenever the deleted WAL held anything, and `dialer ledger rebuild`
rebuilds it from the reports and the claims journal. The next round is the rerun. A last run
is left to finish. Then:

- twice: numbers the upstream accepted (200) more than once. Must be 0.
- lost: numbers the upstream accepted that the ledger does not hold as `triggered` or
  `unknown` (a call placed that no file records). Must be 0.
- unfinished: sheet rows without a final status in the last report, or claims still
  `sending` in the ledger after the last run. Must be 0.

Exit 0 when all three are 0, else 1. Not part of `make test`: it runs a minute or two.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from dialer.campaign.paths import JOURNAL_SUFFIX
from dialer.core.statuses import Status
from dialer.fake_tabbly import (
    DEFAULT_AGENT_ID,
    DEFAULT_API_KEY,
    DEFAULT_CALL_FROM,
    DEFAULT_ORGANIZATION_ID,
    FakeTabblyProcess,
)

# Statuses a row may end a run with (everything in the report but the dry run's `ready`).
FINAL = frozenset(Status) - {Status.READY}
# How long one round may take before the soak gives up on it (a hang is a finding too).
ROUND_BOUND_SECONDS = 120.0


def _campaign(root: Path, url: str) -> Path:
    path = root / "campaigns" / "soak.toml"
    path.parent.mkdir(parents=True)
    path.write_text(
        f'''name = "soak"
organization_id = {DEFAULT_ORGANIZATION_ID}
agent_id = {DEFAULT_AGENT_ID}
call_from = "{DEFAULT_CALL_FROM}"
first_line = "Hello {{{{ first_name }}}}."
endpoint = "{url}"

[contacts]
source = "../data/contacts.csv"
phone_column = "phone"
id_column = "customer_id"
default_region = "IN"

[dispatch]
rate_per_second = 150
concurrency = 8
max_attempts = 3
timeout_seconds = 5
''',
        encoding="utf-8",
    )
    return path


def _sheet(root: Path, rows: int) -> list[str]:
    numbers = [f"+9173590{i:05d}" for i in range(rows)]
    path = root / "data" / "contacts.csv"
    path.parent.mkdir(parents=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["customer_id", "first_name", "phone"])
        writer.writerows([f"C{i}", f"Name{i}", n] for i, n in enumerate(numbers))
    return numbers


def _received(fake: FakeTabblyProcess) -> list[dict[str, object]]:
    return fake.state()["received"]


def cli_env() -> dict[str, str]:
    """The soaks' commands' environment: the fake's key."""
    return {**os.environ, "TABBLY_API_KEY": DEFAULT_API_KEY}


def _start(campaign: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "dialer", "run", str(campaign), "--yes", "--progress", "log"],
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _kill_round(campaign: Path, fake: FakeTabblyProcess, rng: random.Random) -> str:
    """One run killed at a random moment; returns when (for the log)."""
    before = len(_received(fake))
    proc = _start(campaign)
    deadline = time.monotonic() + ROUND_BOUND_SECONDS
    if rng.random() < 0.2:
        moment = rng.uniform(0.0, 0.6)
        time.sleep(moment)  # a random moment of start-up is the point here, not a wait
        when = f"start-up +{moment:.2f}s"
    else:
        target = before + rng.randint(1, 80)
        when = f"after request {target - before}"
        while len(_received(fake)) < target and proc.poll() is None:
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    else:
        when += " (had finished)"
    proc.wait(timeout=ROUND_BOUND_SECONDS)
    return when


def run_dialer(*args: str) -> subprocess.CompletedProcess[str]:
    """One dialer command to its end (bounded), its output kept."""
    return subprocess.run(
        [sys.executable, "-m", "dialer", *args],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=ROUND_BOUND_SECONDS,
        check=False,
    )


def _lose_wal(root: Path, campaign: Path) -> str:
    """Delete the -wal and -shm; if the ledger is then refused as lost, rebuild it."""
    ledger = root / "state" / "soak.sqlite"
    held = ledger.with_name(ledger.name + "-wal")
    frames = held.stat().st_size if held.exists() else 0
    for suffix in ("-wal", "-shm"):
        ledger.with_name(ledger.name + suffix).unlink(missing_ok=True)
    status = run_dialer("status", str(campaign))
    if status.returncode == 0:
        return f"WAL ({frames} bytes) lost: not refused"
    if "dialer ledger rebuild" not in status.stderr:
        raise SystemExit(f"soak: status after a lost WAL: {status.stderr.strip()}")
    rebuilt = run_dialer("ledger", "rebuild", str(campaign))
    if rebuilt.returncode != 0:
        raise SystemExit(f"soak: rebuild failed: {rebuilt.stderr.strip()}")
    return f"WAL ({frames} bytes) lost: refused, rebuilt"


def _last_report(root: Path) -> Path:
    folder = root / "reports" / "soak"
    reports = sorted(
        p for p in folder.iterdir() if p.suffix == ".csv" and not p.name.endswith(JOURNAL_SUFFIX)
    )
    return reports[-1]


def soak(kills: int, rows: int, seed: int, lose_wal: float = 0.0) -> int:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="dialer-soak-") as tmp:
        root = Path(tmp)
        numbers = _sheet(root, rows)
        with FakeTabblyProcess(
            "--latency", "0.02", "--balance", "1000000", "--fail-rate", "0.03", "--seed", str(seed)
        ) as fake:
            campaign = _campaign(root, fake.url)
            t0 = time.monotonic()
            losses = Counter[str]()
            for i in range(kills):
                when = _kill_round(campaign, fake, rng)
                if rng.random() < lose_wal:
                    lost = _lose_wal(root, campaign)
                    losses[lost.split(": ", 1)[1]] += 1
                    when += f"; {lost}"
                print(f"  kill {i + 1:>2}/{kills}: {when}", flush=True)
            final = _start(campaign)
            code = final.wait(timeout=ROUND_BOUND_SECONDS)
            seconds = time.monotonic() - t0
            received = _received(fake)

        accepted = Counter(
            r["body"]["called_to"]  # type: ignore[index]
            for r in received
            if r["status"] == 200 and isinstance(r["body"], dict)
        )
        twice = sum(1 for n in accepted.values() if n > 1)
        conn = sqlite3.connect(root / "state" / "soak.sqlite")
        held = dict(conn.execute("SELECT called_to, status FROM calls"))
        sending = conn.execute("SELECT COUNT(*) FROM sending").fetchone()[0]
        conn.close()
        kept = {Status.TRIGGERED, Status.UNKNOWN}
        lost = sum(1 for n in accepted if held.get(n) not in kept)
        with open(_last_report(root), encoding="utf-8", newline="") as f:
            report = {row["called_to"]: row["status"] for row in csv.DictReader(f)}
        unfinished = sending + sum(1 for n in numbers if report.get(n) not in FINAL)
        statuses = Counter(report.values())

    print(f"soak: {kills} kill -9 over {rows} rows in {seconds:.0f} s (seed {seed})")
    print(f"  requests received by the fake: {len(received)}, accepted: {sum(accepted.values())}")
    print(f"  last run: exit {code}, report statuses {dict(sorted(statuses.items()))}")
    print(f"  kills followed by a lost -wal: {sum(losses.values())} {dict(losses)}")
    print(f"  numbers accepted twice: {twice}")
    print(f"  numbers accepted but not triggered/unknown in the ledger: {lost}")
    print(f"  rows without a final status: {unfinished}")
    ok = twice == 0 and lost == 0 and unfinished == 0
    print("soak: PASS" if ok else "soak: FAIL")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--kills", type=int, default=30, help="kill -9 rounds (default 30)")
    parser.add_argument("--rows", type=int, default=2000, help="rows in the sheet (default 2000)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the kill moments (1)")
    parser.add_argument(
        "--lose-wal",
        type=float,
        default=0.3,
        help="fraction of kills after which the ledger's -wal is deleted (default 0.3)",
    )
    args = parser.parse_args()
    return soak(args.kills, args.rows, args.seed, args.lose_wal)


if __name__ == "__main__":
    sys.exit(main())
