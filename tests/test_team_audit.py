"""The audit trail (`dialer.team.audit`, SPEC 13): append-only, hash-chained entries in the
real `state/team.sqlite`; any entry edited or removed behind its back is found by `verify`,
and no whole phone number or secret ever goes in."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dialer.team import audit
from dialer.team.audit import AuditEntry, AuditTrail, cli_actor, entry_digest, safe_text
from dialer.team.roles import Role

SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 7, 9, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


def _trail(tmp_path: Path, n: int = 0) -> AuditTrail:
    trail = AuditTrail(tmp_path / "state", Clock())
    for i in range(n):
        trail.append(f"user{i % 2}", audit.LAUNCH, f"camp{i % 3}", people=i)
    return trail


def _sql(tmp_path: Path, *statements: str) -> None:
    """What someone with the file and the sqlite3 shell could do."""
    conn = sqlite3.connect(tmp_path / "state" / "team.sqlite", isolation_level=None)
    try:
        for statement in statements:
            conn.execute(statement)
    finally:
        conn.close()


def _unguarded(tmp_path: Path, *statements: str) -> None:
    _sql(
        tmp_path,
        "DROP TRIGGER audit_append_only_update",
        "DROP TRIGGER audit_append_only_delete",
        *statements,
    )


def test_every_action_is_a_snake_case_constant_and_listed_once() -> None:
    names = [n for n in dir(audit) if n.isupper() and isinstance(getattr(audit, n), str)]
    actions = {getattr(audit, n) for n in names if getattr(audit, n) in audit.ACTIONS}
    assert len(audit.ACTIONS) == len(set(audit.ACTIONS)) == 25 == len(actions)
    assert audit.LOGIN_FAILED == "login_failed" and audit.PERSON_ROLE == "person_role"
    assert all(getattr(audit, a.upper()) == a for a in audit.ACTIONS)


def test_entries_are_chained_and_a_read_makes_no_file(tmp_path: Path) -> None:
    trail = _trail(tmp_path)
    assert trail.entries() == [] and trail.verify() is None and trail.head() == (0, "")
    assert not (tmp_path / "state").exists()
    first = trail.append("alice", audit.LOGIN)
    second = trail.append("alice", audit.CHECK, "spring", campaign_sha256=SHA, rows=12)
    assert first.seq == 1 and first.previous == "" and first.time == "2026-12-07T09:01:00Z"
    assert second.previous == first.digest and second.seq == 2
    assert second.details == {"campaign_sha256": SHA, "rows": 12}
    assert second.digest == entry_digest(
        2, second.time, "alice", "check", "spring", second.details, first.digest
    )
    assert trail.entries() == [first, second]
    assert trail.verify() is None and trail.head() == (2, second.digest)


def test_entries_filter_by_time_who_campaign_and_limit(tmp_path: Path) -> None:
    trail = _trail(tmp_path, 6)
    every = trail.entries()
    assert [e.seq for e in every] == [1, 2, 3, 4, 5, 6]
    assert [e.seq for e in trail.entries(who="user1")] == [2, 4, 6]
    assert [e.seq for e in trail.entries(campaign="camp0")] == [1, 4]
    assert [e.seq for e in trail.entries(since=datetime(2026, 12, 7, 9, 4, tzinfo=UTC))] == [
        4,
        5,
        6,
    ]
    assert [e.seq for e in trail.entries(since=datetime(2026, 12, 7, 9, 4))] == [4, 5, 6]
    assert [e.seq for e in trail.entries(who="user0", limit=2)] == [3, 5]
    assert trail.entries(who="nobody") == []


def test_no_whole_number_goes_in_anywhere(tmp_path: Path) -> None:
    trail = _trail(tmp_path)
    entry = trail.append(
        "bob 919876543210",
        audit.OPTOUT_ADDED,
        "camp 5125550100",
        number="+919876543210",
        spaced="call +91 98765 43210 now",
        reason="ticket 1234567, order 42",
        nested={"list": ["5125550100", 7, 12345678], "n": 9876543210},
        fingerprint=SHA,
        role=Role.ADMIN,
        ratio=1.5,
    )
    stored = (tmp_path / "state" / "team.sqlite").read_bytes().decode("latin-1")
    text = repr(entry) + repr(trail.entries()) + stored
    for whole in ("9876543210", "98765 43210", "1234567", "5125550100", "12345678"):
        assert whole not in text
    assert entry.details["number"] == "+91*******210"
    assert entry.details["reason"] == "ticket 12**567, order 42"
    assert entry.details["fingerprint"] == SHA  # a digest is no phone number
    assert entry.details["role"] == "admin" and entry.details["ratio"] == 1.5
    assert entry.details["nested"] == {"list": ["51*****100", 7, "12***678"], "n": "98*****210"}
    assert entry.who == "bob 91*******210" and entry.campaign == "camp 51*****100"
    assert safe_text("deadbeef" * 4 + " 1234567") == "deadbeef" * 4 + " 12**567"


@pytest.mark.parametrize("key", ["password", "api_key", "token", "secret", "Authorization"])
def test_a_detail_named_like_a_secret_is_refused_and_nothing_written(
    tmp_path: Path, key: str
) -> None:
    trail = _trail(tmp_path, 1)
    with pytest.raises(ValueError, match="named like a secret") as caught:
        trail.append("alice", audit.LOGIN, **{key: "hunter2-hunter2"})
    assert "hunter2" not in str(caught.value)
    with pytest.raises(ValueError, match="named like a secret"):
        trail.append("alice", audit.LOGIN, nested={"password": "x"})
    with pytest.raises(ValueError, match="unknown audit action"):
        trail.append("alice", "launched")
    assert len(trail.entries()) == 1 and trail.verify() is None


def test_triggers_refuse_an_update_or_delete(tmp_path: Path) -> None:
    _trail(tmp_path, 2)
    for statement in ("UPDATE audit SET who = 'x'", "DELETE FROM audit WHERE seq = 2"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            _sql(tmp_path, statement)


@pytest.mark.parametrize(
    "column, value",
    [
        ("details", """'{"people":99}'"""),
        ("details", """'{"people": 1}'"""),
        ("who", "'mallory'"),
        ("time", "'2026-01-01T00:00:00Z'"),
        ("action", "'check'"),
        ("campaign", "'other'"),
        ("previous", "'00'"),
        ("digest", "'00'"),
    ],
)
def test_an_edit_of_any_column_is_found_at_that_entry(
    tmp_path: Path, column: str, value: str
) -> None:
    trail = _trail(tmp_path, 4)
    _unguarded(tmp_path, f"UPDATE audit SET {column} = {value} WHERE seq = 2")
    found = trail.verify()
    assert isinstance(found, AuditEntry) and found.seq == 2


def test_an_edit_with_its_digest_recomputed_breaks_the_next_link(tmp_path: Path) -> None:
    trail = _trail(tmp_path, 3)
    second = trail.entries()[1]
    forged = {"people": 0}
    digest = entry_digest(2, second.time, "mallory", second.action, "", forged, second.previous)
    _unguarded(
        tmp_path,
        f"""UPDATE audit SET who = 'mallory', campaign = '', details = '{{"people":0}}',
            digest = '{digest}' WHERE seq = 2""",
    )
    found = trail.verify()
    assert isinstance(found, AuditEntry) and found.seq == 3


def test_a_removed_entry_is_found_in_the_middle_and_at_the_end(tmp_path: Path) -> None:
    trail = _trail(tmp_path, 5)
    _unguarded(tmp_path, "DELETE FROM audit WHERE seq = 5")
    assert trail.verify() == 5  # the head counts 5: the last is missing
    _sql(tmp_path, "DELETE FROM audit WHERE seq = 3")
    found = trail.verify()
    assert isinstance(found, AuditEntry) and found.seq == 4


def test_a_removed_head_or_first_entry_is_found(tmp_path: Path) -> None:
    trail = _trail(tmp_path, 3)
    _unguarded(tmp_path, "DELETE FROM audit WHERE seq = 1")
    found = trail.verify()
    assert isinstance(found, AuditEntry) and found.seq == 2
    other = _trail(tmp_path / "b", 2)
    _sql(tmp_path / "b", "DROP TABLE audit_head")
    found = other.verify()
    assert isinstance(found, AuditEntry) and found.seq == 2


def test_appends_go_on_after_a_verify_and_from_two_trails(tmp_path: Path) -> None:
    one, two = _trail(tmp_path), AuditTrail(tmp_path / "state")
    one.append("a", audit.SYNC, "c", placed=3)
    two.append("b", audit.STOP, "c")
    one.append("a", audit.RESUME, "c")
    assert [e.seq for e in two.entries()] == [1, 2, 3] and two.verify() is None


def test_cli_actor_names_the_os_user_and_host() -> None:
    actor = cli_actor()
    assert actor.startswith("cli:") and "@" in actor


def test_a_campaign_named_team_is_refused(project, cli) -> None:
    path = project.write_campaign("http://127.0.0.1:9/x", name="team")
    result = cli(["validate", str(path)])
    assert result.code == 2 and "key 'name' cannot be 'team'" in result.err


def test_ids_digests_and_report_time_stamps_are_kept_whole_and_numbers_masked(tmp_path):
    trail = AuditTrail(tmp_path / "state")
    entry = trail.append(
        "alice",
        audit.DOWNLOAD,
        "spring",
        file="spring_20261207T041717.172Z.csv",
        schedule="3f1234567a9b0c1d",
        number="+15125550100",
        said="call 5125550100 back",
    )
    assert entry.details["file"] == "spring_20261207T041717.172Z.csv"
    assert entry.details["schedule"] == "3f1234567a9b0c1d"
    assert "5125550100" not in str(entry.details) and "+15******100" in str(entry.details)
