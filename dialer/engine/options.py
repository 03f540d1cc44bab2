"""What one run was asked to do on the command line (or by the web page)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RunOptions:
    limit: int | None = None  # call at most this many people in this run
    recall: bool = False  # call again people an earlier run triggered
    retry_unknown: bool = False  # send again rows that may or may not have been called
    sync: bool = True  # a campaign with [redial] reads the call logs before it runs (SPEC 10)
