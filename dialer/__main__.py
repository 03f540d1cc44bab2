"""`python -m dialer` and the `dialer` console script.

Stop signals are handled before the heavy imports (a fifth of a second): SIGTERM or SIGHUP at
start-up gives exit 130 and one line, never a silent 143 (SPEC 5).
"""

from __future__ import annotations

import sys

from dialer import interrupts
from dialer.statuses import ExitCode  # light: the standard library's enum only


def entry_point() -> None:
    interrupts.install()
    try:
        from dialer.cli import main
    except KeyboardInterrupt:
        print("dialer: interrupted", file=sys.stderr)
        sys.exit(int(ExitCode.INTERRUPTED))
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
