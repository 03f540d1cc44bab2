"""`make demo`: the sample campaign end to end against a local fake Tabbly on 127.0.0.1.

Starts `dialer fake-tabbly` on a free port, runs `dialer run campaigns/example.toml --yes`
against it (with `--recall`, so the demo calls everyone again each time you run it), prints
the summary and the report path, and stops the server. Nothing leaves this machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dialer.fake_tabbly import DEFAULT_API_KEY, FakeTabblyProcess
from dialer.statuses import FINISHED_CODES, ExitCode

ROOT = Path(__file__).resolve().parent.parent
CAMPAIGN = ROOT / "campaigns" / "example.toml"


def main() -> int:
    options = ("--balance", "100", "--latency", "0.05", "--fail-rate", "0.05")
    with FakeTabblyProcess(*options) as fake:
        print(f"demo: fake Tabbly at {fake.url}", flush=True)
        env = {**os.environ, "TABBLY_API_URL": fake.url, "TABBLY_API_KEY": DEFAULT_API_KEY}
        for args in (["validate", str(CAMPAIGN)], ["run", str(CAMPAIGN), "--yes", "--recall"]):
            print(f"\n$ dialer {' '.join(args)}", flush=True)
            code = subprocess.call([sys.executable, "-m", "dialer", *args], env=env, cwd=ROOT)
    print(f"\ndemo: `dialer run` exited {code} ({ExitCode(code).name})", flush=True)
    # The sample sheet has invalid rows on purpose, so 1 is the expected, healthy answer.
    return 0 if code in FINISHED_CODES else code


if __name__ == "__main__":
    sys.exit(main())
