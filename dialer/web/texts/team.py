"""What the login page, the 403 page and the people page say."""

from __future__ import annotations

from dialer.team.roles import WHAT_EACH_MAY, Role

WRONG_LOGIN = "Wrong name or password."
LOGIN_FROM_ELSEWHERE = (
    "This login came from a page of another site, so it is refused: open this page's own "
    "address and log in here."
)
TOKEN_REFUSED = (
    "The shared token no longer logs in: people have been added, so log in with your own name "
    "and password (an admin adds you with: dialer users add NAME --role ROLE)."
)
FIRST_ADMIN = (
    "Nobody has a name and password yet: log in with the token (DIALER_UI_TOKEN on the machine "
    "running dialer serve), then add the first admin there: dialer users add NAME --role admin. "
    "Once someone is added, the token no longer logs in."
)
NOBODY_TO_LOG_IN = (
    "nobody can log in to the page: add a person (dialer users add NAME --role admin) or set "
    "DIALER_UI_TOKEN"
)
PASSWORDS_DIFFER = "The two passwords differ: type the same password twice."


def refused(need: Role | int, role: Role | None, path: str) -> str:
    """One sentence: why `path` is refused to this person."""
    yours = f"you are {_a(role)}, who {WHAT_EACH_MAY[role]}" if role else "you are not logged in"
    if need not in tuple(Role):
        return f"Nobody may use {path}: it is closed to every role ({yours})."
    return f"This needs the role {Role(need)}; {yours}."


def _a(role: Role) -> str:
    return f"an {role}" if str(role)[0] in "aeiou" else f"a {role}"


def person_added(name: str, role: Role) -> str:
    return f"{name} added as {_a(role)}."


def role_changed(name: str, role: Role) -> str:
    return f"{name} is now {_a(role)}."


def password_set(name: str) -> str:
    return f"New password set for {name}; their sessions have ended."


def person_removed(name: str) -> str:
    return f"{name} removed; their sessions have ended."


def remove_ask(name: str) -> str:
    return f"Remove {name}? They are logged out at once and can no longer log in."
