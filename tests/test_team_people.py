"""The people store (`dialer.team.people`, SPEC 13): scrypt hashes only, roles, epochs, and
the last admin kept, in the real `state/team.sqlite`."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from dialer.core.statuses import UsageError
from dialer.team.people import MIN_PASSWORD_CHARS, People, Person, password_matches
from dialer.team.roles import Role

GOOD = "correct horse battery"
OTHER = "staple and a longer one"


def _people(tmp_path: Path) -> People:
    return People(tmp_path / "state")


def _stored(tmp_path: Path) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(tmp_path / "state" / "team.sqlite")
    try:
        return conn.execute("SELECT * FROM people ORDER BY name").fetchall()
    finally:
        conn.close()


def test_reads_make_no_file_and_count_nobody(tmp_path: Path) -> None:
    people = _people(tmp_path)
    assert people.count() == 0 and people.all() == [] and people.get("alice") is None
    assert people.check_password("alice", GOOD) is None
    assert not (tmp_path / "state").exists()


def test_a_person_is_stored_as_a_salted_scrypt_hash_only(tmp_path: Path) -> None:
    people = _people(tmp_path)
    alice = people.add("alice", Role.ADMIN, GOOD)
    bob = people.add("bob", Role.VIEWER, GOOD)
    assert alice == Person("alice", Role.ADMIN, 1, alice.created) and alice.created.endswith("Z")
    assert people.count() == 2 and people.all() == [alice, bob] and people.get("ALICE") == alice
    rows = _stored(tmp_path)
    hashes = [str(row[-1]) for row in rows]
    assert all(h.startswith("scrypt$16384$8$1$") for h in hashes) and hashes[0] != hashes[1]
    assert GOOD.encode() not in (tmp_path / "state" / "team.sqlite").read_bytes()
    assert "scrypt" not in repr(alice) and GOOD not in repr(alice)
    assert password_matches(GOOD, hashes[0]) and not password_matches(OTHER, hashes[0])


def test_check_password(tmp_path: Path) -> None:
    people = _people(tmp_path)
    alice = people.add("alice", Role.CALLER, GOOD)
    assert people.check_password("alice", GOOD) == alice
    assert people.check_password("Alice", GOOD) == alice
    assert people.check_password("alice", OTHER) is None
    assert people.check_password("alice", GOOD + " ") is None
    assert people.check_password("nobody", GOOD) is None
    assert people.check_password("alice", "") is None
    longest = people.add("bob", Role.VIEWER, "b" * 1024)
    assert people.check_password("bob", "b" * 1024) == longest
    assert people.check_password("bob", "b" * 1024 + "more") is None  # never cut to match


@pytest.mark.parametrize(
    "name, password, says",
    [
        ("alice", "short", f"at least {MIN_PASSWORD_CHARS}"),
        ("alice", " " * 20, "only spaces"),
        ("alice", "x" * 2000, "over 1024"),
        ("", GOOD, "1 to 64"),
        ("a b", GOOD, "1 to 64"),
        ("x" * 65, GOOD, "1 to 64"),
        ("Token", GOOD, "shared token"),
        ("schedule", GOOD, "never a person"),
        ("Page", GOOD, "never a person"),
        ("ALICE", GOOD, "already a person"),
    ],
)
def test_bad_names_and_passwords_are_refused_and_never_shown(
    tmp_path: Path, name: str, password: str, says: str
) -> None:
    people = _people(tmp_path)
    people.add("alice", Role.ADMIN, GOOD)
    with pytest.raises(UsageError, match=says) as caught:
        people.add(name, Role.VIEWER, password)
    if password.strip():
        assert password not in str(caught.value)
    assert people.count() == 1


def test_a_password_change_bumps_the_epoch(tmp_path: Path) -> None:
    people = _people(tmp_path)
    people.add("alice", Role.ADMIN, GOOD)
    changed = people.set_password("alice", OTHER)
    assert changed.epoch == 2 and people.get("alice") == changed
    assert people.check_password("alice", GOOD) is None
    assert people.check_password("alice", OTHER) == changed
    with pytest.raises(UsageError, match="at least"):
        people.set_password("alice", "short")
    with pytest.raises(UsageError, match="nobody named 'bob'"):
        people.set_password("bob", OTHER)
    assert people.get("alice") == changed


def test_roles_change_and_the_last_admin_stays(tmp_path: Path) -> None:
    people = _people(tmp_path)
    people.add("alice", Role.ADMIN, GOOD)
    people.add("bob", Role.CALLER, GOOD)
    with pytest.raises(UsageError, match="'alice' is the last admin and cannot be made a viewer"):
        people.set_role("alice", Role.VIEWER)
    with pytest.raises(UsageError, match="last admin and cannot be removed"):
        people.remove("alice")
    assert people.set_role("bob", Role.ADMIN).role is Role.ADMIN
    assert people.set_role("alice", Role.EDITOR) == Person("alice", Role.EDITOR, 1, ANY)
    with pytest.raises(UsageError, match="'bob' is the last admin"):
        people.remove("BOB")
    people.remove("alice")
    assert [p.name for p in people.all()] == ["bob"]
    with pytest.raises(UsageError, match="nobody named 'alice'"):
        people.remove("alice")
    with pytest.raises(UsageError, match="nobody named 'carol'"):
        people.set_role("carol", Role.ADMIN)


def test_the_only_person_may_be_removed_unless_admin(tmp_path: Path) -> None:
    people = _people(tmp_path)
    people.add("viewer", Role.VIEWER, GOOD)
    people.remove("viewer")
    assert people.count() == 0


class _Any:
    def __eq__(self, other: object) -> bool:
        return True


ANY: str = _Any()  # type: ignore[assignment]
