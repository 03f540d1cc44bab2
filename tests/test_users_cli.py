"""`dialer users add|list|role|passwd|remove` (SPEC 13) through the real CLI, against the real
`state/team.sqlite` of a project folder: every bad input one line, exit 2, nothing changed,
and every change in the audit trail without the password."""

from __future__ import annotations

import io
import os
import pty
import select
import sqlite3
import subprocess
from pathlib import Path

import pytest
from conftest import dialer_subprocess

from dialer.team import audit
from dialer.team.audit import AuditTrail, cli_actor
from dialer.team.people import People
from dialer.team.roles import Role

GOOD = "correct horse battery"
OTHER = "a different long one"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "proj"
    (folder / "campaigns").mkdir(parents=True)
    return folder


@pytest.fixture
def users(cli, root: Path, monkeypatch: pytest.MonkeyPatch):
    """`dialer users ... --root ROOT`, with `stdin` fed to it."""

    def run(*args: str, stdin: str = ""):
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        return cli(["users", *args, "--root", str(root)])

    return run


def _add(users, name: str, role: str, password: str = GOOD):
    return users("add", name, "--role", role, "--password-stdin", stdin=password + "\n")


def _state(root: Path) -> Path:
    return root / "state"


def _bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in _state(root).glob("team.sqlite*"))


def _content(root: Path) -> list[str]:
    """Everything the team file holds, as SQL."""
    conn = sqlite3.connect(_state(root) / "team.sqlite")
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def test_add_list_role_passwd_remove_and_the_trail(users, root: Path) -> None:
    result = _add(users, "alice", "admin")
    assert result.code == 0 and result.out == "added alice (admin)\n", result.err
    assert _add(users, "bob", "Caller", password=OTHER + "\r").code == 0
    people = People(_state(root))
    assert people.check_password("bob", OTHER) is not None  # one trailing newline stripped

    listed = users("list")
    assert listed.code == 0
    lines = listed.out.splitlines()
    assert lines[0].split()[:2] == ["alice", "admin"] and lines[1].split()[:2] == ["bob", "caller"]
    assert "added 20" in lines[0] and lines[-1] == "2 person(s)"
    assert "scrypt" not in listed.out

    assert users("role", "bob", "editor").out == "bob is now editor (was caller)\n"
    changed = users("passwd", "bob", "--password-stdin", stdin=GOOD)
    assert changed.code == 0 and "sessions on the page are over" in changed.out
    assert people.check_password("bob", GOOD).epoch == 2  # type: ignore[union-attr]
    assert users("remove", "bob").code == 0
    assert [p.name for p in people.all()] == ["alice"]

    entries = AuditTrail(_state(root)).entries()
    assert [(e.action, e.details) for e in entries] == [
        (audit.PERSON_ADDED, {"name": "alice", "role": "admin"}),
        (audit.PERSON_ADDED, {"name": "bob", "role": "caller"}),
        (audit.PERSON_ROLE, {"name": "bob", "role": "editor", "was": "caller"}),
        (audit.PERSON_PASSWORD, {"name": "bob"}),
        (audit.PERSON_REMOVED, {"name": "bob", "role": "editor"}),
    ]
    assert {e.who for e in entries} == {cli_actor()}
    assert GOOD.encode() not in _bytes(root) and OTHER.encode() not in _bytes(root)


@pytest.mark.parametrize(
    "args, stdin, says",
    [
        (("add", "carol", "--role", "admin", "--password-stdin"), "short\n", "at least 12"),
        (("add", "carol", "--role", "boss", "--password-stdin"), GOOD, "unknown role 'boss'"),
        (("add", "alice", "--role", "viewer", "--password-stdin"), GOOD, "already a person"),
        (("add", "token", "--role", "viewer", "--password-stdin"), GOOD, "shared token"),
        (("add", "carol", "--role", "viewer"), GOOD, "no terminal"),
        (("role", "alice", "viewer"), "", "last admin"),
        (("role", "carol", "viewer"), "", "nobody named 'carol'"),
        (("role", "alice", "root"), "", "unknown role"),
        (("remove", "alice"), "", "last admin"),
        (("remove", "carol"), "", "nobody named 'carol'"),
        (("passwd", "carol", "--password-stdin"), GOOD, "nobody named 'carol'"),
        (("passwd", "alice", "--password-stdin"), "   \n", "only spaces"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(
    users, root: Path, args: tuple[str, ...], stdin: str, says: str
) -> None:
    assert _add(users, "alice", "admin").code == 0
    before = _content(root)
    result = users(*args, stdin=stdin)
    assert result.code == 2 and says in result.err, result.err
    assert len(result.err.strip().splitlines()) == 1 and result.out == ""
    assert _content(root) == before
    assert [e.action for e in AuditTrail(_state(root)).entries()] == [audit.PERSON_ADDED]


def test_a_folder_that_is_no_project_is_refused(cli, tmp_path: Path) -> None:
    result = cli(["users", "list", "--root", str(tmp_path)])
    assert result.code == 2 and "no campaigns/ or state/ folder here" in result.err
    assert not (tmp_path / "state").exists()


def test_list_of_nobody_says_how_to_add_the_first_admin(users, root: Path) -> None:
    result = users("list")
    assert result.code == 0 and "dialer users add alice --role admin" in result.out
    assert not _state(root).exists()


def test_adding_nobody_admin_says_so(users) -> None:
    result = _add(users, "vic", "viewer")
    assert result.code == 0 and "nobody is admin yet" in result.out


def _typed(root: Path, *answers: str) -> subprocess.CompletedProcess[str]:
    """`dialer users add carol` on a terminal (a pty, no echo), typing `answers`."""
    leader, follower = pty.openpty()
    try:
        proc = dialer_subprocess(
            ["users", "add", "carol", "--role", "editor", "--root", str(root)],
            stdin=follower,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # no controlling terminal: getpass reads the pty
        )
        os.close(follower)
        assert proc.stderr is not None
        shown = b""
        for prompt, answer in zip((b"password: ", b"password again: "), answers, strict=True):
            # getpass flushes what was typed before it asks: type after each prompt
            while not shown.endswith(prompt):
                ready, _, _ = select.select([proc.stderr], [], [], 30)
                assert ready, f"no prompt {prompt!r}: {shown!r}"
                shown += os.read(proc.stderr.fileno(), 1)
            os.write(leader, answer.encode() + b"\n")
        out, err = proc.communicate(timeout=60)
    finally:
        os.close(leader)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_a_password_is_typed_twice_on_the_terminal(root: Path) -> None:
    differ = _typed(root, GOOD, OTHER)
    assert differ.returncode == 2 and "the two passwords differ" in differ.stderr
    assert People(_state(root)).count() == 0
    same = _typed(root, GOOD, GOOD)
    assert same.returncode == 0, same.stderr
    assert People(_state(root)).check_password("carol", GOOD).role is Role.EDITOR  # type: ignore[union-attr]
