"""How a child of the page answers (`web.services.child_processes.ask_child` is the other
side): one JSON request on stdin, one JSON answer on stdout, or a user's error on stderr as
one line with exit 2. Anything else is a crash, which the server reports as such."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from dialer.core.statuses import ERROR_PREFIX, DialerError, ExitCode


def answer(work: Callable[[dict[str, Any]], dict[str, Any]]) -> int:
    """Read the request, answer with what `work` makes of it; the child's exit code."""
    try:
        found = work(json.loads(sys.stdin.buffer.read()))
    except DialerError as exc:
        print(f"{ERROR_PREFIX}{exc}", file=sys.stderr)
        return int(ExitCode.INPUT_ERROR)
    print(json.dumps(found, ensure_ascii=False))
    return int(ExitCode.OK)
