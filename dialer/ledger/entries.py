"""What is written to a ledger, as value types: a row's outcome (`Entry`) and a call a
report shows (`PastDial`), each with the parameters of the SQL that writes it (`schema`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dialer.core.statuses import Status


@dataclass(frozen=True, slots=True)
class Entry:
    """A row's outcome, the person's last record."""

    called_to: str
    status: Status
    reason: str = ""
    retryable: bool = False
    http_status: int | None = None
    attempts: int = 0
    call_id: str = ""
    custom_identifiers: str = ""
    row: int | None = None
    participant_identity: str = ""  # a triggered call's, with call_id (room_name): `dials`
    at: str = ""  # a rebuild's: when its report row was written (else: the time of the write)

    def params(self, run_id: int | None, now: str) -> tuple[Any, ...]:
        return (
            self.called_to,
            self.status,
            self.reason,
            int(self.retryable),
            self.http_status,
            self.attempts,
            self.call_id,
            self.custom_identifiers,
            self.row,
            run_id,
            self.at or now,
        )


@dataclass(frozen=True, slots=True)
class PastDial:
    """A call a report shows (a `triggered` row, or a maybe: an `unknown` row its run sent, a
    claims-journal line), for a rebuild to restore into `dials`."""

    called_to: str
    custom_identifiers: str
    row: int | None
    run_id: int | None  # the run that placed it, when the old ledger still names its report
    placed_at: str
    room_name: str
    started_at: str = ""  # with no room and no run, a dial placed from here ...
    until: str = ""  # ... to here is this call
    maybe: bool = False  # a claim or an `unknown` row: the request may have placed it

    def params(self) -> tuple[Any, ...]:
        return (
            self.called_to,
            self.custom_identifiers,
            self.row,
            self.run_id,
            self.placed_at,
            self.room_name,
            "",
            int(self.maybe),
            self.started_at or self.placed_at,
            self.until or self.placed_at,
        )


def dial_params(entry: Entry, run_id: int | None, now: str) -> tuple[Any, ...]:
    """The `dials` row of a recorded call (`schema.INSERT_DIAL`): an `unknown` one a maybe."""
    return (
        entry.called_to,
        entry.custom_identifiers,
        entry.row,
        run_id,
        now,
        entry.call_id,
        entry.participant_identity,
        int(entry.status is Status.UNKNOWN),
    )
