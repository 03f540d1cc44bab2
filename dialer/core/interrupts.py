"""Stop signals from the program's first line: SIGTERM and SIGHUP behave like Ctrl-C (SPEC 5).

    interrupts.install()     # first thing in the entry point, before the heavy imports

Until the run's event loop takes them over (the dispatcher's graceful stop), a stop signal
raises KeyboardInterrupt, which the CLI turns into one line and exit 130. Without this, a
SIGTERM at start-up (reading the sheet, opening the ledger) killed the process with 143 and no
word, and a dropped SSH session (SIGHUP) killed a run mid-dispatch with no summary.

Standard library only: this module is imported before anything else.
"""

from __future__ import annotations

import signal
from types import FrameType

# Each one stops a run the same way: stop sending, let in-flight requests finish, exit 130.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def honoured(sig: signal.Signals) -> bool:
    """False for a signal the parent set to be ignored: `nohup dialer run ...` must survive
    its SSH session dropping, as it always did."""
    return signal.getsignal(sig) is not signal.SIG_IGN


def install() -> None:
    """Make every stop signal raise KeyboardInterrupt (main thread only), then unblock them.

    The interpreter's own start-up (before any of our code runs: 20-50 ms) cannot be covered
    from Python: a signal then kills the process (143) or lands in `site`. A parent that can
    block the stop signals across exec (`dialer serve` does, for its runs) closes that window:
    a signal sent meanwhile stays pending and is delivered here, as KeyboardInterrupt, once
    the handlers are in place. So call this inside the `try` that turns it into exit 130.
    """
    caught = []
    for sig in STOP_SIGNALS:
        if honoured(sig):
            handler = signal.default_int_handler if sig == signal.SIGINT else _interrupt
            signal.signal(sig, handler)
            caught.append(sig)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, caught)
