"""`python -m dialer` and the `dialer` console script.

Stop signals are handled before the heavy imports (a fifth of a second): SIGTERM or SIGHUP at
start-up gives exit 130 and one line, never a silent 143 (SPEC 5).
"""

from __future__ import annotations

import sys

from dialer.core import interrupts  # the standard library's signal only


def entry_point() -> None:
    try:
        interrupts.install()  # first: a signal held back by the parent is delivered here
        from dialer.cli import main
    except KeyboardInterrupt:
        from dialer.core.statuses import ExitCode  # light: the standard library's enum only

        print("dialer: interrupted", file=sys.stderr)
        sys.exit(int(ExitCode.INTERRUPTED))
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
