"""What the run page says of a run and of each of its people, in plain words: its headline
once ended, each row status, the rows its check left out, its progress and time left, and
the start page's history of how each run ended."""

from __future__ import annotations

from collections.abc import Mapping

from dialer.core.statuses import ExitCode, Status, StopReason
from dialer.web.texts.checks import people

# Why people the run did not reach were not called, by the run's exit code.
STOP_WORDS = {
    ExitCode.INSUFFICIENT_BALANCE: "your Tabbly wallet is empty",
    ExitCode.INTERRUPTED: "the run was stopped",
    ExitCode.CAMPAIGN_REFUSED: "Tabbly refused the campaign",
    ExitCode.INPUT_ERROR: "the run stopped on an error",
}

# How the start page's history says how a run ended (its summary's close_reason).
RUN_RESULTS = {
    "": "finished",
    StopReason.INSUFFICIENT_BALANCE: "stopped: Tabbly wallet empty",
    StopReason.CAMPAIGN_REFUSED: "stopped: Tabbly refused the campaign",
    StopReason.INTERRUPTED: "stopped",
    StopReason.ERROR: "stopped on an error",
}


def run_result(close_reason: object) -> str:
    reason = str(close_reason or "")
    return RUN_RESULTS.get(reason, reason)  # type: ignore[call-overload]


# What the run page says first once a run has ended, by its exit code.
RUN_HEADLINES = {
    ExitCode.OK: "Finished",
    ExitCode.ROW_PROBLEMS: "Finished",
    ExitCode.INSUFFICIENT_BALANCE: (
        "Your Tabbly wallet is empty: top up your Tabbly wallet, then Resume"
    ),
    ExitCode.INTERRUPTED: "Stopped: Resume calls the people not called yet",
    ExitCode.CAMPAIGN_REFUSED: (
        "Tabbly refused this campaign (its organisation, agent, caller number or the API key): "
        "nothing more was sent; correct the campaign, then check the sheet again"
    ),
    ExitCode.INPUT_ERROR: "Stopped on an error (below): nothing more was sent",
    ExitCode.INTERNAL: "Stopped on an internal error: nothing more was sent",
}

# A row's status in the marketer's words; the code itself is kept in a tooltip and the report.
STATUS_WORDS = {
    Status.TRIGGERED: "called",
    Status.FAILED: "call failed",
    Status.UNKNOWN: "maybe called (Tabbly did not answer in time)",
    Status.NOT_ATTEMPTED: "not called yet",
    Status.OUTSIDE_WINDOW: "not called yet: outside the calling hours",
    Status.LIMITED: "not called yet: called as often as the limits allow",
    Status.REDIAL_LATER: "to be called again later",
    Status.ALREADY_CALLED: "called by an earlier run",
    Status.INVALID: "cannot be called: number or details missing or wrong",
    Status.DUPLICATE: "same number as an earlier row",
    Status.SUPPRESSED: "on the do-not-call list",
    Status.OPTED_OUT: "not called: asked not to be called (opt-out register)",
    Status.READY: "ready to call",
}
WAITING = "waiting to be called"

STOP_ASK = (
    "Stop calling? Calls already placed go on; everyone not called yet stays not called "
    "until you resume."
)


def status_words(status: str, exit_code: int | None) -> str:
    """A row status in plain words; "not called yet: your Tabbly wallet is empty" names the
    stop's cause."""
    if status == Status.NOT_ATTEMPTED and exit_code in STOP_WORDS:
        return f"not called yet: {STOP_WORDS[exit_code]}"  # type: ignore[index]
    return STATUS_WORDS.get(status, status)  # type: ignore[call-overload]


# How the check's left-out rows are counted in a sentence: (one, many).
LEFT_OUT_NOUNS = {
    Status.INVALID: (
        "row that cannot be called (number or details)",
        "rows that cannot be called (number or details)",
    ),
    Status.DUPLICATE: ("duplicate", "duplicates"),
    Status.SUPPRESSED: ("on the do-not-call list", "on the do-not-call list"),
    Status.OPTED_OUT: ("asked not to be called", "asked not to be called"),
    Status.ALREADY_CALLED: ("called by an earlier run", "called by an earlier run"),
    Status.OUTSIDE_WINDOW: ("outside the calling hours", "outside the calling hours"),
    Status.LIMITED: ("held back by the limits", "held back by the limits"),
    Status.REDIAL_LATER: ("to be called again later", "to be called again later"),
    Status.UNKNOWN: ("maybe called by an earlier run", "maybe called by an earlier run"),
    Status.FAILED: ("failed in an earlier run", "failed in an earlier run"),
}


def left_out(checked: Mapping[str, int]) -> str:
    """The sheet's rows its check left out of the run, in one sentence ("" if none)."""
    said = [
        f"{n:,} {one if n == 1 else many}"
        for status, (one, many) in LEFT_OUT_NOUNS.items()
        if (n := checked.get(status, 0))
    ]
    return f"Not in this run (the check left them out): {', '.join(said)}." if said else ""


def run_state(exit_code: int | None, parts: list[tuple[str, int, str]], total: int) -> str:
    """The run page's headline once the run ended: what became of its people, in a sentence
    whose numbers add up to `total` ("Finished: 20 called, 37 not called yet")."""
    if exit_code is None:
        return "calling"
    head = RUN_HEADLINES.get(exit_code, f"Ended (exit code {exit_code})")  # type: ignore[call-overload]
    if not total:
        return f"{head}: nobody in this run"
    # The headline already says why the run stopped: "37 not called yet" is enough here.
    said = [
        f"{n:,} {STATUS_WORDS[Status.NOT_ATTEMPTED] if key == Status.NOT_ATTEMPTED else words}"
        for key, n, words in parts
        if n
    ]
    called = sum(n for key, n, _ in parts if key == Status.TRIGGERED)
    if not called:
        said.insert(0, "nobody called")
    return f"{head}. Of the {people(total)} in this run: {', '.join(said)}."


def progress_text(called: int, total: int) -> str:
    if not total:
        return f"{called} called"
    return f"{called} of {total} called"


def time_left(seconds: float | None) -> str:
    """ "about 3 minutes left" from the rate so far; "" while there is no rate yet."""
    if seconds is None:
        return ""
    if seconds < 60:
        return "less than a minute left"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"about {minutes} minute{'s' if minutes != 1 else ''} left"
    return f"about {seconds / 3600:.1f} hours left"


def queued(ahead: int) -> str:
    """A run or sync waiting for its turn (`runs_at_once`, `syncs_at_once`)."""
    return f"queued, {ahead} ahead: it starts when one under way ends"
