"""The one home of every rule that names things: row statuses, exit codes, stop reasons,
and which upstream answers are safe to retry.

Everything else imports from here; nothing restates a status string or an exit number.

Error family (the CLI is the only place that turns these into exit codes)::

    DialerError                exit_code 2   anything a user's input (or the environment) can cause
     +-- UsageError            exit_code 2   bad command-line options
     +-- CampaignError         exit_code 2   campaign TOML: missing / unknown / mistyped key
     +-- SheetError            exit_code 2   contact sheet: format, encoding, headers
     +-- LedgerError           exit_code 2   corrupt or lost ledger, or another run holds it
     +-- LogsError             exit_code 2   the call logs cannot be read (SPEC 10)
     +-- ReportExists          exit_code 2   (report.py) a report is never overwritten
     +-- ReportWriteError      exit_code 2   (report.py) the report or its summary cannot be written
     +-- InternalError         exit_code 70  a defect of ours, never the user's input (EX_SOFTWARE)

A file that cannot be written (disk full, read-only folder) is the environment, not a defect:
a DialerError (exit 2) naming the file and the cause.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum, IntEnum, StrEnum


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
    REDIAL_LATER = "redial_later"  # called before; due again later (SPEC 10, `[redial]`)
    LIMITED = "limited"  # over `[limits]` across campaigns; sent once the limit allows
    # On the folder's opt-out register (the person asked not to be called): never sent, by
    # any campaign, until a person removes the entry. Like `suppressed`, not a row problem:
    # it is absent from PROBLEM_STATUSES, so a run of only these exits 0.
    OPTED_OUT = "opted_out"


class CallOutcome(StrEnum):
    """What happened on a placed call, from Tabbly's call logs (SPEC 10); `pending`: no log
    row yet. Declared best first: over several log rows of one call the best one wins."""

    ANSWERED = "answered"
    VOICEMAIL = "voicemail"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    FAILED = "failed"
    PENDING = "pending"


def stored_outcome(value: str | None) -> CallOutcome:
    """A dial's `outcome` column: NULL is `pending`; a value this version does not know (a
    newer dialer wrote it) is `failed`, never a reason to stop reading or to call again."""
    if value is None:
        return CallOutcome.PENDING
    try:
        return CallOutcome(value)
    except ValueError:
        return CallOutcome.FAILED


# Over a call's log rows: answered beats voicemail beats busy beats no_answer beats failed.
OUTCOME_RANK: Mapping[CallOutcome, int] = {o: i for i, o in enumerate(CallOutcome)}
# What a person's last call may have ended as for `[redial] outcomes` to name it.
REDIALABLE = frozenset(
    {CallOutcome.VOICEMAIL, CallOutcome.BUSY, CallOutcome.NO_ANSWER, CallOutcome.FAILED}
)


# What the ledger and `dialer status` call a claim: a request about to leave, or one whose
# answer a killed run never recorded (SPEC 6.3). Never a report row's status.
CLAIM = "sending"

# Rows whose sending went wrong: the live view lists them as they happen (progress).
SEND_PROBLEMS = frozenset({Status.FAILED, Status.UNKNOWN})
# Statuses that count against "every row that could be sent was triggered" (exit 1): the
# sending problems, and rows the sheet itself made unsendable.
PROBLEM_STATUSES = SEND_PROBLEMS | {Status.INVALID}


class ExitCode(IntEnum):
    """What cron reads (SPEC 5)."""

    OK = 0
    ROW_PROBLEMS = 1
    INPUT_ERROR = 2
    INSUFFICIENT_BALANCE = 3
    CAMPAIGN_REFUSED = 4
    INTERRUPTED = 130
    INTERNAL = 70  # EX_SOFTWARE: cron and systemd must see a crash as a failure


# The run went to the end of the sheet (some rows may have problems): not stopped early.
FINISHED_CODES = frozenset({ExitCode.OK, ExitCode.ROW_PROBLEMS})


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


class Kind(Enum):
    """What one upstream answer means, the taxonomy the row sender switches on (`tabbly`)::

    TRIGGERED       200 + success: the call is placed; `call_id` is Tabbly's room_name
    RETRY           certainly NOT placed (connect failed, 429, 500, 502, 503): send again
    FAILED          refused for this row (400, other 4xx): sending again would not help
    STOP_BALANCE    402: the wallet is empty; stop the whole run
    STOP_CAMPAIGN   401/403/404: the campaign itself is wrong; stop the whole run
    UNKNOWN         sent, but no usable answer (read timeout, dropped connection, 504):
                    the call MAY be placed, so it is never re-sent automatically
    """

    TRIGGERED = "triggered"
    RETRY = "retry"
    FAILED = "failed"
    STOP_BALANCE = "stop_balance"
    STOP_CAMPAIGN = "stop_campaign"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class KindRule:
    """What a row's last answer of one kind makes of the row and of the run."""

    status: Status  # the row's status (RETRY: once its attempts are used up)
    stop: StopReason | None  # the whole run stops sending
    retryable: bool  # recorded as a cause a later run may send again
    placed_no_call: bool  # the upstream certainly placed no call (safe to call later)


KIND_RULES: Mapping[Kind, KindRule] = {
    Kind.TRIGGERED: KindRule(Status.TRIGGERED, None, False, False),
    Kind.FAILED: KindRule(Status.FAILED, None, False, False),
    Kind.UNKNOWN: KindRule(Status.UNKNOWN, None, False, False),
    Kind.RETRY: KindRule(Status.FAILED, None, True, True),
    # The row is `not_attempted` with the stop's reason: the next run sends it.
    Kind.STOP_BALANCE: KindRule(Status.NOT_ATTEMPTED, StopReason.INSUFFICIENT_BALANCE, False, True),
    Kind.STOP_CAMPAIGN: KindRule(Status.FAILED, StopReason.CAMPAIGN_REFUSED, True, False),
}

# HTTP answers after which the upstream certainly placed no call: retried with backoff.
# 504 and 408 are deliberately absent: a gateway timeout may hide a placed call (SPEC 6.1).
RETRYABLE_HTTP = frozenset({429, 500, 502, 503})
# Call-log reads are safe to repeat (SPEC 10): timeouts and every passing 5xx are asked again.
RETRYABLE_LOGS_HTTP = frozenset({408, 425, 429, 500, 502, 503, 504})
# Answers that mean the campaign itself is wrong: stop everything (SPEC 6.2).
CAMPAIGN_REFUSED_HTTP = frozenset({401, 403, 404})
BALANCE_HTTP = 402
# "The first 5 answers all 400" also refuses the campaign.
FIRST_ANSWERS_ALL_400 = 5


def exit_code_for(
    counts: Mapping[str, int], stop: StopReason | None, error: DialerError | None = None
) -> ExitCode:
    """The one decision of a finished command's exit code: an error first (a file that could
    not be written, a defect), then why the run stopped, then the rows' statuses."""
    if error is not None:
        return error.exit_code
    if stop is not None:
        return STOP_EXIT_CODES[stop]
    if any(counts.get(s, 0) for s in PROBLEM_STATUSES):
        return ExitCode.ROW_PROBLEMS
    return ExitCode.OK


def close_reason(stop: StopReason | None) -> str:
    """The summary's and the ledger's `close_reason`: why the run stopped early, or finished."""
    return stop.value if stop is not None else "finished"


# How the CLI prints a DialerError on stderr; `dialer serve` reads its children's by it.
ERROR_PREFIX = "dialer: error: "


def error_line(exc: DialerError) -> str:
    return f"{ERROR_PREFIX}{exc}"


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


class LogsError(DialerError):
    """Tabbly's call logs could not be read (network, an error envelope, a bound passed); the
    message never holds the key, which travels in the logs URL's query string (SPEC 7)."""


class InternalError(DialerError):
    """A defect, not the user's input: the run still stops cleanly, says so, and exits 70."""

    exit_code = ExitCode.INTERNAL


def internal_error(exc: BaseException) -> InternalError:
    """The one wording of an unexpected exception, for the CLI and a run that stops on one."""
    return InternalError(f"internal error: {type(exc).__name__}: {exc}")
