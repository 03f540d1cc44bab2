"""`dialer users add|list|role|passwd|remove`: the people who may log in to the page, and
their roles (the store is `team/people.py`'s).

Passwords are read twice from the terminal, or once from `--password-stdin` (for scripts),
never from the command line where `ps` and the shell's history would keep them. Each change
is written to the audit trail (never the password). Exit codes: 0 done, 2 bad input (nothing
changed).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TextIO

from dialer.commands.arguments import (
    Subparsers,
    add_root,
    command_parser,
    project_state,
)
from dialer.core.statuses import ExitCode, UsageError
from dialer.team.roles import ROLE_NAMES

EXAMPLE = "dialer users add alice --role admin"
_ROLES = f"{', '.join(ROLE_NAMES[:-1])} or {ROLE_NAMES[-1]}"  # viewer, caller, editor or admin

_ACTIONS = {
    "add": "Add a person who may log in to the page, with a role and a password.",
    "list": "List the people: name, role, when added (never a password).",
    "role": "Give a person another role.",
    "passwd": "Set a person's password; their open sessions on the page end.",
    "remove": "Remove a person; their open sessions on the page end.",
}
_EXAMPLES = {
    "add": EXAMPLE,
    "list": "dialer users list",
    "role": "dialer users role bob editor",
    "passwd": "printf '%s\\n' \"$NEW_PASSWORD\" | dialer users passwd bob --password-stdin",
    "remove": "dialer users remove bob",
}


def add_parser(subparsers: Subparsers) -> None:
    users = command_parser(
        subparsers,
        "users",
        "The people who may log in to the page, and their roles.",
        EXAMPLE,
        description="The people of a project folder who may log in to the page (dialer "
        f"serve), each with a role: {_ROLES}. Passwords are stored only as salted scrypt "
        "hashes. Add the first admin before anyone else: the page's shared token stops "
        "working once a person exists.",
    )
    actions = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    parsers = {
        name: command_parser(actions, name, text, _EXAMPLES[name])
        for name, text in _ACTIONS.items()
    }
    for parser in parsers.values():
        add_root(parser)
    for name in ("add", "role", "passwd", "remove"):
        parsers[name].add_argument("name", metavar="NAME", help="the person's login name")
    parsers["add"].add_argument("--role", required=True, help=_ROLES)
    parsers["role"].add_argument("role", metavar="ROLE", help=_ROLES)
    for name in ("add", "passwd"):
        parsers[name].add_argument(
            "--password-stdin",
            action="store_true",
            help="read the password once from standard input (one line) instead of the terminal",
        )
    for name, handler in _HANDLERS.items():
        parsers[name].set_defaults(handle=handler)


def read_password(from_stdin: bool, stdin: TextIO | None = None) -> str:
    """The new password: stdin's text less one trailing newline, or typed twice on the
    terminal (not echoed). UsageError when there is no terminal or the two differ."""
    from dialer.team.people import MAX_PASSWORD_CHARS

    stdin = stdin or sys.stdin
    if from_stdin:
        # Never a whole endless pipe (`yes |`): past the longest password, it is refused.
        text = stdin.read(MAX_PASSWORD_CHARS + 3).removesuffix("\n").removesuffix("\r")
        if "\n" in text or "\r" in text:  # piped twice, as a terminal asks: no form takes it
            raise UsageError("the password on standard input must be one line: nothing changed")
        return text
    if not stdin.isatty():
        raise UsageError("no terminal to read the password from: use --password-stdin")
    first = getpass.getpass("password: ")
    if getpass.getpass("password again: ") != first:
        raise UsageError("the two passwords differ: nothing changed")
    return first


def handle_add(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from dialer.commands.trail import record
    from dialer.team.audit import PERSON_ADDED
    from dialer.team.people import People
    from dialer.team.roles import Role, role_named

    out = out or sys.stdout
    state, role = project_state(args.root), role_named(args.role)
    people = People(state)
    people.check_new_name(args.name)  # before the password is asked for
    person = people.add(args.name, role, read_password(args.password_stdin))
    record(state, PERSON_ADDED, name=person.name, role=person.role)
    print(f"added {person.name} ({person.role})", file=out)
    if not any(p.role is Role.ADMIN for p in people.all()):
        print(
            "note: nobody is admin yet, so nobody can manage people on the page: "
            "dialer users add NAME --role admin",
            file=out,
        )
    return int(ExitCode.OK)


def handle_list(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from dialer.team.people import People

    out = out or sys.stdout
    everyone = People(project_state(args.root)).all()
    if not everyone:
        print(f"nobody yet: add the first admin with `{EXAMPLE}`", file=out)
        return int(ExitCode.OK)
    width = max(len(p.name) for p in everyone)
    for person in everyone:
        added = person.created[:19] + "Z"  # to the second (it is kept to the microsecond)
        print(f"{person.name:<{width}}  {person.role!s:<6}  added {added}", file=out)
    print(f"{len(everyone)} person(s)", file=out)
    return int(ExitCode.OK)


def handle_role(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from dialer.commands.trail import record
    from dialer.team.audit import PERSON_ROLE
    from dialer.team.people import People
    from dialer.team.roles import role_named

    out = out or sys.stdout
    state, role = project_state(args.root), role_named(args.role)
    people = People(state)
    was = str(people.require(args.name).role)
    person = people.set_role(args.name, role)
    record(state, PERSON_ROLE, name=person.name, role=person.role, was=was)
    print(f"{person.name} is now {person.role} (was {was})", file=out)
    return int(ExitCode.OK)


def handle_passwd(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from dialer.commands.trail import record
    from dialer.team.audit import PERSON_PASSWORD
    from dialer.team.people import People

    out = out or sys.stdout
    state = project_state(args.root)
    people = People(state)
    people.require(args.name)  # before the password is asked for
    person = people.set_password(args.name, read_password(args.password_stdin))
    record(state, PERSON_PASSWORD, name=person.name)
    print(f"password of {person.name} changed; their sessions on the page are over", file=out)
    return int(ExitCode.OK)


def handle_remove(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from dialer.commands.trail import record
    from dialer.team.audit import PERSON_REMOVED
    from dialer.team.people import People

    out = out or sys.stdout
    state = project_state(args.root)
    people = People(state)
    person = people.require(args.name)
    people.remove(args.name)
    record(state, PERSON_REMOVED, name=person.name, role=person.role)
    print(f"removed {person.name}; their sessions on the page are over", file=out)
    return int(ExitCode.OK)


_HANDLERS = {
    "add": handle_add,
    "list": handle_list,
    "role": handle_role,
    "passwd": handle_passwd,
    "remove": handle_remove,
}
