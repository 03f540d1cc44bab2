"""STAND-IN for helper A's audit trail (branch team-store), written to /work/team-api.md so the
page's audit code can be built and tested before it lands. Replaced wholesale by the merge."""

from __future__ import annotations

import getpass
import hashlib
import json
import re
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from dialer.core.masking import mask_phone
from dialer.ledger.shared_file import connect_shared

LOGIN, LOGIN_FAILED, LOGOUT = "login", "login_failed", "logout"
CAMPAIGN_CREATED, CAMPAIGN_EDITED = "campaign_created", "campaign_edited"
UPLOAD, CHECK, TEST_CALL, LAUNCH, STOP, RESUME = (
    "upload",
    "check",
    "test_call",
    "launch",
    "stop",
    "resume",
)
SCHEDULE_CREATED, SCHEDULE_CHANGED = "schedule_created", "schedule_changed"
SCHEDULE_FIRED, SCHEDULE_MISSED, SCHEDULE_DELETED = (
    "schedule_fired",
    "schedule_missed",
    "schedule_deleted",
)
SYNC, DOWNLOAD = "sync", "download"
OPTOUT_ADDED, OPTOUT_REMOVED, OPTOUT_IMPORTED = "optout_added", "optout_removed", "optout_imported"
PERSON_ADDED, PERSON_REMOVED, PERSON_ROLE, PERSON_PASSWORD = (
    "person_added",
    "person_removed",
    "person_role",
    "person_password",
)
_DIGITS = re.compile(r"\+?\d{7,}")


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    time: str
    who: str
    action: str
    campaign: str
    details: dict[str, object]
    previous: str
    digest: str


def _safe(value: object) -> object:
    if isinstance(value, str):
        return _DIGITS.sub(lambda m: mask_phone(m.group(0)), value)
    if isinstance(value, dict):
        return {str(k): _safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_safe(v) for v in value]
    return value


def _digest(body: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


class AuditTrail:
    def __init__(self, state: Path) -> None:
        self.state = state

    def _db(self):  # type: ignore[no-untyped-def]
        db = connect_shared(self.state)
        db.execute(
            "CREATE TABLE IF NOT EXISTS audit (seq INTEGER PRIMARY KEY, time TEXT, who TEXT,"
            " action TEXT, campaign TEXT, details TEXT, previous TEXT, digest TEXT)"
        )
        return db

    def append(self, who: str, action: str, campaign: str = "", **details: object) -> AuditEntry:
        if any(k in ("key", "api_key", "password", "token", "secret") for k in details):
            raise ValueError("a secret in the audit trail")
        db = self._db()
        try:
            db.execute("BEGIN IMMEDIATE")
            last = db.execute("SELECT seq, digest FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
            seq, previous = (last[0] + 1, last[1]) if last else (1, "")
            body: dict[str, object] = {
                "seq": seq,
                "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "who": who,
                "action": action,
                "campaign": campaign,
                "details": _safe(details),
                "previous": previous,
            }
            digest = _digest(body)
            db.execute(
                "INSERT INTO audit VALUES (?,?,?,?,?,?,?,?)",
                (
                    seq,
                    body["time"],
                    who,
                    action,
                    campaign,
                    json.dumps(body["details"], sort_keys=True),
                    previous,
                    digest,
                ),
            )
            db.execute("COMMIT")
        finally:
            db.close()
        return AuditEntry(
            seq, str(body["time"]), who, action, campaign, body["details"], previous, digest
        )  # type: ignore[arg-type]

    def entries(
        self,
        since: datetime | None = None,
        who: str | None = None,
        campaign: str | None = None,
        limit: int | None = None,
    ) -> list[AuditEntry]:
        db = self._db()
        try:
            rows = db.execute("SELECT * FROM audit ORDER BY seq").fetchall()
        finally:
            db.close()
        found = [
            AuditEntry(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6], r[7]) for r in rows
        ]
        if since is not None:
            found = [e for e in found if e.time >= since.strftime("%Y-%m-%dT%H:%M:%SZ")]
        if who:
            found = [e for e in found if e.who == who]
        if campaign:
            found = [e for e in found if e.campaign == campaign]
        return found[-limit:] if limit else found

    def verify(self) -> AuditEntry | int | None:
        previous = ""
        for e in self.entries():
            body = {
                "seq": e.seq,
                "time": e.time,
                "who": e.who,
                "action": e.action,
                "campaign": e.campaign,
                "details": e.details,
                "previous": e.previous,
            }
            if e.previous != previous or _digest(body) != e.digest:
                return e.seq
            previous = e.digest
        return None


def cli_actor() -> str:
    return f"cli:{getpass.getuser()}@{socket.gethostname()}"
