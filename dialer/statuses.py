"""The one home of every rule that names things: row statuses, exit codes, stop reasons,
and which upstream answers are safe to retry.

Everything else imports from here; nothing restates a status string or an exit number.

Error family (the CLI is the only place that turns these into exit codes)::

    DialerError                exit_code 2   anything a user's input can cause
     +-- UsageError            exit_code 2   bad command-line options
     +-- CampaignError         exit_code 2   campaign TOML: missing / unknown / mistyped key
     +-- SheetError            exit_code 2   contact sheet: format, encoding, headers
     +-- LedgerError           exit_code 2   corrupt or lost ledger, or another run holds it
     +-- ReportExists          exit_code 2   (report.py) a report is never overwritten
    InternalError              exit_code 70  a defect of ours, never the user's input (EX_SOFTWARE)

A file that cannot be written (disk full, read-only folder) is the environment, not a defect:
a DialerError (exit 2) naming the file and the cause.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class Status(StrEnum):
    """A report row's final status (SPEC 9)."""

    READY = "ready"
    TRIGGERED = "triggered"
    FAILED = "failed"
    INVALID = "invalid"
    DUPLICATE = "duplicate"
    SUPPRESSED = "suppressed"
    ALREADY_CALLED = "already_called"
    OUTSIDE_WINDOW = "outside_window"
    NOT_ATTEMPTED = "not_attempted"
    UNKNOWN = "unknown"


# Statuses that count against "every row that could be sent was triggered" (exit 1).
PROBLEM_STATUSES = frozenset({Status.FAILED, Status.INVALID, Status.UNKNOWN})


class ExitCode(IntEnum):
    """What cron reads (SPEC 5)."""

    OK = 0
    ROW_PROBLEMS = 1
    INPUT_ERROR = 2
    INSUFFICIENT_BALANCE = 3
    CAMPAIGN_REFUSED = 4
    INTERRUPTED = 130
    INTERNAL = 70  # EX_SOFTWARE: cron and systemd must see a crash as a failure


class StopReason(StrEnum):
    """Why a run stopped sending early; it names the summary's `close_reason`."""

    INSUFFICIENT_BALANCE = "insufficient_balance"
    CAMPAIGN_REFUSED = "campaign_refused"
    INTERRUPTED = "interrupted"
    ERROR = "error"  # the sheet became unreadable mid-run, or the ledger could not be written


# What each exit code tells the person reading it (the CLI's help, the web page).
EXIT_MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "finished: every row that could be sent was triggered",
    ExitCode.ROW_PROBLEMS: "finished: some rows failed, were invalid or are unknown",
    ExitCode.INPUT_ERROR: "nothing (more) sent: usage, campaign file, contact sheet or "
    "ledger error",
    ExitCode.INSUFFICIENT_BALANCE: "stopped early: insufficient wallet balance (402)",
    ExitCode.CAMPAIGN_REFUSED: "stopped early: the upstream refuses the campaign "
    "(404, 401/403, or the first 5 answers all 400)",
    ExitCode.INTERRUPTED: "stopped early: interrupted (SIGINT/SIGTERM/SIGHUP, or Stop)",
    ExitCode.INTERNAL: "internal error: a defect in dialer (please report it)",
}

STOP_EXIT_CODES: dict[StopReason, ExitCode] = {
    StopReason.INSUFFICIENT_BALANCE: ExitCode.INSUFFICIENT_BALANCE,
    StopReason.CAMPAIGN_REFUSED: ExitCode.CAMPAIGN_REFUSED,
    StopReason.INTERRUPTED: ExitCode.INTERRUPTED,
    StopReason.ERROR: ExitCode.INPUT_ERROR,
}

# The `reason` written on rows that were never sent because the run stopped.
STOP_ROW_REASONS: dict[StopReason, str] = {
    StopReason.INSUFFICIENT_BALANCE: "insufficient balance",
    StopReason.CAMPAIGN_REFUSED: "campaign refused by upstream",
    StopReason.INTERRUPTED: "interrupted",
    StopReason.ERROR: "run stopped by an error (see the summary)",
}

# HTTP answers after which the upstream certainly placed no call: retried with backoff.
# 504 and 408 are deliberately absent: a gateway timeout may hide a placed call (SPEC 6.1).
RETRYABLE_HTTP = frozenset({429, 500, 502, 503})
# Answers that mean the campaign itself is wrong: stop everything (SPEC 6.2).
CAMPAIGN_REFUSED_HTTP = frozenset({401, 403, 404})
BALANCE_HTTP = 402
# "The first 5 answers all 400" also refuses the campaign.
FIRST_ANSWERS_ALL_400 = 5


class DialerError(Exception):
    """An error a user's input can cause: one line, no traceback, a SPEC exit code."""

    exit_code: ExitCode = ExitCode.INPUT_ERROR


class UsageError(DialerError):
    """Bad command-line options."""


class CampaignError(DialerError):
    """The campaign file is wrong; the message names the file and the key."""


class SheetError(DialerError):
    """The contact sheet cannot be read as a table of contacts."""


class LedgerError(DialerError):
    """The ledger is corrupt or held by another run; it is never silently repaired."""


class InternalError(DialerError):
    """A defect, not the user's input: the run still stops cleanly, says so, and exits 70."""

    exit_code = ExitCode.INTERNAL


def internal_error(exc: BaseException) -> InternalError:
    """The one wording of an unexpected exception, for the CLI and a run that stops on one."""
    return InternalError(f"internal error: {type(exc).__name__}: {exc}")
