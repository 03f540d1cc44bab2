"""What the page keeps of a check (`DryRun`) and of a run (`WebRun`), and what the run page
says of a run's people: "x of N" counts people tried out of those the check said would be
called, and the parts of N (called, failed, maybe called, not called and why) add up to N."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dialer.core.statuses import SEND_PROBLEMS, ExitCode, Status
from dialer.web import texts
from dialer.web.services.waiting_line import Line


@dataclass(slots=True)
class DryRun:
    id: str
    campaign: str
    campaign_path: Path
    call_from: str
    agent_id: int
    sheet_name: str  # the uploader's file name: shown, never used as a path
    upload: Path
    report: Path
    summary: dict[str, Any]
    fingerprint: dict[str, str]  # campaign file, do-not-call lists, sheet -> content hash
    epoch: int  # the campaign's run epoch when the check began (a run since makes it stale)
    run_id: str | None = None  # set once launched: a check launches one run
    # The `dialer run` options that make the run itself refuse files other than those checked.
    expect: tuple[str, ...] = ()
    # The cost estimate the check page showed, kept for the launch's audit entry.
    cost: dict[str, Any] = field(default_factory=dict)

    @property
    def report_file(self) -> str:
        return self.report.name


@dataclass(slots=True)
class WebRun:
    id: str
    campaign: str
    report: Path
    proc: asyncio.subprocess.Process | None  # None while it waits in line (`runs_at_once`)
    started: str
    upload: Path
    messages: deque[str]
    state: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    stopping: bool = False
    follower: asyncio.Task[None] | None = None
    final: dict[str, int] | None = None  # the summary's counts once the run has ended
    total: int = 0  # N of "x of N": the people its check said would be called
    sheet_name: str = ""  # the uploader's file name, for "Resume the N not called"
    campaign_path: Path | None = None
    checked: dict[str, int] = field(default_factory=dict)  # its check's counts
    line: Line | None = None  # the runs' line
    ticket: asyncio.Future[None] | None = None  # its place in line, while it waits

    def interrupt(self) -> None:
        """SIGINT once: the same clean stop as one Ctrl-C (a second would abort calls). A run
        still waiting in line leaves it: nobody was called (exit 130, "Resume" offered)."""
        if self.stopping or self.finished:
            return
        self.stopping = True
        if self.proc is None:  # in line (or just leaving it: started, then stopped)
            if self.ticket is not None:
                self.ticket.cancel()
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGINT)

    @property
    def ahead(self) -> int | None:
        """Runs waiting in line before this one (None: it is not waiting)."""
        if self.proc is not None or self.finished or self.line is None:
            return None
        return self.line.ahead(self)

    @property
    def finished(self) -> bool:
        return self.exit_code is not None

    def people(self) -> list[tuple[str, int, str]]:
        """What became of the N people of the run's check, as (key, count, words) parts that
        add up to N: called, failed, maybe called, and the rest not called, each with why.
        Rows the check already left out (invalid, duplicates, already called...) are not
        among the N; anyone not accounted for is waiting (or, once ended, not called)."""
        counts = self.final if self.final is not None else self.state.get("counts", {})
        left = self.total
        found: dict[str, int] = {}
        for status in (Status.TRIGGERED, Status.FAILED, Status.UNKNOWN, *NOT_CALLED_ORDER):
            # A status the check gave a row (unknown, failed, already called by an earlier
            # run...) kept that row out of the N: only rows that became it now count.
            seen = counts.get(status, 0) - self.checked.get(status, 0)
            found[status] = min(max(seen, 0), left)
            left -= found[status]
        if self.finished:  # never reached: not called, for the reason the run stopped
            found[Status.NOT_ATTEMPTED] += left
        parts = [(str(s), n, texts.status_words(s, self.exit_code)) for s, n in found.items()]
        if not self.finished:
            parts.append(("waiting", left, texts.WAITING))
        return [p for p in parts if p[1]]

    def view(self) -> dict[str, Any]:
        """What the run page and its event stream show: "x of N" counts people tried (called,
        failed or maybe called) out of those the check said would be called, never rows read;
        the parts of N add up to N."""
        counts = self.final if self.final is not None else self.state.get("counts", {})
        parts = self.people()
        tried = sum(n for key, n, _ in parts if key in TRIED)
        if self.exit_code is not None:
            text = texts.run_state(self.exit_code, parts, self.total)
        elif (ahead := self.ahead) is not None:
            text = texts.queued(ahead)
        elif self.stopping:
            text = "stopping: calls in flight are finishing"
        elif self.state:
            text = "calling"
        else:
            text = "starting"
        elapsed = float(self.state.get("elapsed", 0) or 0)
        left = None
        if not self.finished and self.total and tried and elapsed > 0:
            left = (self.total - tried) * elapsed / tried  # at the rate so far
        stopped = self.exit_code in RESUMABLE_EXITS
        not_called = [[n, words] for key, n, words in parts if key not in TRIED]
        resume = sum(n for key, n, _ in parts if key == Status.NOT_ATTEMPTED)
        return {
            "id": self.id,
            "campaign": self.campaign,
            "finished": self.finished,
            "exit_code": self.exit_code,
            "state_text": text,
            "total": self.total,
            "total_text": texts.people(self.total),
            "left_out": texts.left_out(self.checked),
            "called": tried,
            "progress_text": texts.progress_text(tried, self.total),
            "time_left": texts.time_left(left),
            "not_called": not_called,
            "resume": resume if stopped else 0,
            "counts": [[key, n, words] for key, n, words in parts],
            "rate": self.state.get("calls_per_second", 0),
            "done": self.state.get("done", 0),
            "failures": [_failure_words(f) for f in self.state.get("failures", [])],
            "messages": list(self.messages),
            "codes": {str(s): counts[s] for s in map(str, Status) if counts.get(s)},
        }


def _failure_words(failure: Any) -> Any:
    """A failed row of the live view with its status in words (the code stays in the report)."""
    if isinstance(failure, dict) and isinstance(failure.get("status"), str):
        return {**failure, "status": texts.status_words(failure["status"], None)}
    return failure


# Rows a run tried to call: "x" of "x of N". Their request left (or certainly failed).
TRIED = frozenset({Status.TRIGGERED}) | SEND_PROBLEMS
# The order the run page lists why people were not called.
NOT_CALLED_ORDER = (
    Status.NOT_ATTEMPTED,
    Status.OUTSIDE_WINDOW,
    Status.LIMITED,
    Status.REDIAL_LATER,
    Status.ALREADY_CALLED,
    Status.OPTED_OUT,  # opted out after the check: judged again as the row was read
)
# Stops after which "Resume the N not called" is offered: nothing about the campaign is wrong.
RESUMABLE_EXITS = frozenset({ExitCode.INSUFFICIENT_BALANCE, ExitCode.INTERRUPTED})
