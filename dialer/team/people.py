"""The people who may use the page: a name, a role, and a password kept only as a salted
scrypt hash, in `state/team.sqlite`.

    people = People(root / "state")
    people.add("alice", Role.ADMIN, password)       # UsageError for a short password, ...
    people.check_password("alice", typed)           # the Person, or None
    people.set_password("alice", new)               # epoch + 1: her other sessions are over

A Person carries no hash (nothing that prints one can show it). The last admin can be neither
removed nor demoted: someone must be able to manage people from the page. Names are unique
whatever their case ("Alice" is "alice").
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import re
import secrets
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from dialer.core.clock import Clock, system_clock
from dialer.core.statuses import UsageError
from dialer.team.audit import safe_text
from dialer.team.roles import Role, role_named
from dialer.team.store import (
    reading_team,
    team_path,
    team_stamp,
    writing_team,
)

MIN_PASSWORD_CHARS = 12
# Far more than anyone types; a bound on what is hashed.
MAX_PASSWORD_CHARS = 1024
MAX_NAME_CHARS = 64
# The name the page's shared token acts as while nobody is added: never a person's.
TOKEN_NAME = "token"
# What the trail names as acting when no person did: a schedule firing, and a command the
# page started for someone (its own entry names the person). Never a person's name either.
SCHEDULE_ACTOR = "schedule"
PAGE_ACTOR = "page"
NOT_PEOPLE = (TOKEN_NAME, SCHEDULE_ACTOR, PAGE_ACTOR)
_NAME = re.compile(rf"[A-Za-z0-9._@-]{{1,{MAX_NAME_CHARS}}}")

# scrypt's cost (RFC 7914): 16 MiB and about 50 ms a hash. Stored with each hash, so raising
# them later leaves the old hashes checkable.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SALT_BYTES, KEY_BYTES = 16, 64
_SCHEME = "scrypt"

_WHAT = "the people"
_SCHEMA = """CREATE TABLE IF NOT EXISTS people (
    name TEXT PRIMARY KEY COLLATE NOCASE,
    role TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    created TEXT NOT NULL,
    password_hash TEXT NOT NULL
)"""


@dataclass(frozen=True, slots=True)
class Person:
    name: str
    role: Role
    epoch: int  # bumped by a password change; a session made at another epoch is over
    # UTC, ISO 8601 to the microsecond, `Z`-suffixed: with `epoch`, what a session is of, so a
    # name removed and added again within a second is someone new (the old sessions over).
    created: str


def hash_password(password: str) -> str:
    """`scrypt$n$r$p$salt$key` (hex): the parameters travel with the hash."""
    salt = secrets.token_bytes(SALT_BYTES)
    key = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, KEY_BYTES)
    return f"{_SCHEME}${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${key.hex()}"


def password_matches(password: str, stored: str) -> bool:
    """Whether `password` is the one `stored` was made from (compared in constant time)."""
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        expected = bytes.fromhex(key)
        if scheme != _SCHEME:
            return False
        found = _scrypt(password, bytes.fromhex(salt), int(n), int(r), int(p), len(expected))
    except ValueError:
        return False
    return hmac.compare_digest(found, expected)


@functools.cache
def _nobody() -> str:
    """What an unknown name's password is checked against: the same work as a real one."""
    return hash_password(secrets.token_hex(16))


class People:
    """The folder's people in `state/team.sqlite`; each call opens and closes its own
    connection (any thread may use one People). Reads never make the file."""

    def __init__(self, state: Path, clock: Clock = system_clock) -> None:
        self.path = team_path(state)
        self._state = state
        self._clock = clock

    def count(self) -> int:
        with self._reading() as conn:
            return conn.execute("SELECT COUNT(*) FROM people").fetchone()[0] if conn else 0

    def get(self, name: str) -> Person | None:
        with self._reading() as conn:
            row = _row(conn, name) if conn is not None else None
        return _person(row) if row else None

    def all(self) -> list[Person]:
        """Everyone, by name."""
        with self._reading() as conn:
            if conn is None:
                return []
            rows = conn.execute(
                "SELECT name, role, epoch, created, password_hash FROM people ORDER BY name"
            ).fetchall()
        return [_person(row) for row in rows]

    def require(self, name: str) -> Person:
        """The person named `name`, or a UsageError saying there is nobody of that name."""
        with self._reading() as conn:
            row = _row(conn, name) if conn is not None else None
        return _existing(row, name)

    def check_new_name(self, name: str) -> None:
        """UsageError unless `name` is a good name nobody has yet (asked before a password is
        typed, and again when the person is added)."""
        _check_name(name)
        with self._reading() as conn:
            _not_taken(_row(conn, name) if conn is not None else None)

    def add(self, name: str, role: Role, password: str) -> Person:
        """A new person. UsageError: a bad or taken name, a short or blank password."""
        _check_name(name)
        password_hash = hash_password(_checked_password(password))
        person = Person(name, role, 1, team_stamp(self._clock(), "microseconds"))
        with self._writing() as conn:
            _not_taken(_row(conn, name))
            conn.execute(
                "INSERT INTO people (name, role, epoch, created, password_hash) "
                "VALUES (?, ?, ?, ?, ?)",
                (name, str(role), person.epoch, person.created, password_hash),
            )
        return person

    def set_role(self, name: str, role: Role) -> Person:
        """UsageError: nobody of that name, or the last admin made anything less."""
        with self._writing() as conn:
            person = _existing(_row(conn, name), name)
            if person.role is Role.ADMIN and role is not Role.ADMIN:
                _keep_an_admin(conn, person.name, "made a " + str(role))
            conn.execute("UPDATE people SET role = ? WHERE name = ?", (str(role), person.name))
        return Person(person.name, role, person.epoch, person.created)

    def set_password(self, name: str, password: str) -> Person:
        """A new password; the epoch goes up, so every session of the old one is over."""
        password_hash = hash_password(_checked_password(password))
        with self._writing() as conn:
            person = _existing(_row(conn, name), name)
            conn.execute(
                "UPDATE people SET password_hash = ?, epoch = epoch + 1 WHERE name = ?",
                (password_hash, person.name),
            )
        return Person(person.name, person.role, person.epoch + 1, person.created)

    def remove(self, name: str) -> None:
        """UsageError: nobody of that name, or the last admin."""
        with self._writing() as conn:
            person = _existing(_row(conn, name), name)
            if person.role is Role.ADMIN:
                _keep_an_admin(conn, person.name, "removed")
            conn.execute("DELETE FROM people WHERE name = ?", (person.name,))

    def check_password(self, name: str, password: str) -> Person | None:
        """The person when `password` is theirs; None for a wrong password or an unknown
        name, after the same scrypt work either way (no timing tells which)."""
        with self._reading() as conn:
            row = _row(conn, name) if conn is not None else None
        # No password longer than any that can be set matches; it costs the same work.
        usable = row is not None and len(password) <= MAX_PASSWORD_CHARS
        stored = str(row[4]) if usable and row else _nobody()
        if not password_matches(password[:MAX_PASSWORD_CHARS], stored) or not usable:
            return None
        return _person(row) if row else None

    def _writing(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return writing_team(self._state, _WHAT, (_SCHEMA,))

    def _reading(self) -> contextlib.AbstractContextManager[sqlite3.Connection | None]:
        """A read-only connection, None when there is no file or no people in it yet."""
        return reading_team(self._state, _WHAT, "people")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    maxmem = 128 * r * (n + p + 2) + 1024 * 1024  # what these parameters need, and a margin
    return hashlib.scrypt(
        password.encode("utf-8", "surrogatepass"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        dklen=dklen,
        maxmem=maxmem,
    )


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise UsageError(
            f"a person's name is 1 to {MAX_NAME_CHARS} letters, digits, '.', '_', '-' or '@'"
            f" (got {name[:MAX_NAME_CHARS]!r})"
        )
    if name.lower() in NOT_PEOPLE:
        raise UsageError(
            f"{name!r} is what the audit trail names the page's shared token, a schedule or the"
            " page by: never a person, choose another"
        )
    if safe_text(name) != name:  # else every entry of theirs would say "10***456"
        raise UsageError(
            f"{name!r} holds what the audit trail masks as a phone number (7 or more digits):"
            " choose another"
        )


def _checked_password(password: str) -> str:
    """The password, or a UsageError that never shows it."""
    if not password.strip():
        raise UsageError("the password is empty or only spaces: choose another")
    if len(password) < MIN_PASSWORD_CHARS:
        raise UsageError(
            f"the password is {len(password)} characters: at least {MIN_PASSWORD_CHARS}, please"
        )
    if len(password) > MAX_PASSWORD_CHARS:
        raise UsageError(f"the password is over {MAX_PASSWORD_CHARS} characters")
    return password


def _row(conn: sqlite3.Connection, name: str) -> tuple[object, ...] | None:
    found = conn.execute(
        "SELECT name, role, epoch, created, password_hash FROM people WHERE name = ?", (name,)
    ).fetchone()
    return tuple(found) if found else None


def _not_taken(row: tuple[object, ...] | None) -> None:
    if row is not None:
        raise UsageError(f"{row[0]!r} is already a person here: choose another name")


def _existing(row: tuple[object, ...] | None, name: str) -> Person:
    if row is None:
        raise UsageError(f"nobody named {name[:MAX_NAME_CHARS]!r} here (dialer users list)")
    return _person(row)


def _keep_an_admin(conn: sqlite3.Connection, name: str, change: str) -> None:
    admins = conn.execute(
        "SELECT COUNT(*) FROM people WHERE role = ?", (str(Role.ADMIN),)
    ).fetchone()[0]
    if admins <= 1:
        raise UsageError(
            f"{name!r} is the last admin and cannot be {change}: make someone else admin first"
        )


def _person(row: tuple[object, ...]) -> Person:
    name, role, epoch, created, _hash = row
    return Person(str(name), role_named(str(role)), int(str(epoch)), str(created))
