"""The redial soak's short form (`make soak` runs it for 10 minutes): campaigns sharing an
agent, numbers and ids, with `[redial]` and `[limits]`, runs and syncs killed with -9 and -wal
files lost at random; judged by what the fake accepted, every rule must hold."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_short_redial_soak_breaks_no_rule():
    args = ["--minutes", "0.5", "--campaigns", "3", "--rows", "40", "--seed", "7"]
    done = subprocess.run(
        [sys.executable, "-m", "bench.soak_redial", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    summary = done.stdout[done.stdout.find("soak-redial: 3 campaigns") :]
    assert done.returncode == 0 and "soak-redial: PASS" in done.stdout, summary or done.stderr
    assert "calls accepted by the fake: 0," not in summary  # it did call people
