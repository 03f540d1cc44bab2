"""`dialer users` and `dialer audit` against a careless operator and someone editing
`state/team.sqlite` behind dialer's back (SPEC 13): a password nobody could type on the page
refused, a trail whose table was dropped never called intact, a blank date never a filter."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import pytest

from dialer.team import audit
from dialer.team.audit import AuditTrail
from dialer.team.people import People

GOOD = "correct horse battery"
ADD = ("add", "alice", "--role", "admin", "--password-stdin")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "proj"
    (folder / "campaigns").mkdir(parents=True)
    return folder


def _users(cli, root: Path, monkeypatch: pytest.MonkeyPatch, stdin: str, *args: str):
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return cli(["users", *args, "--root", str(root)])


@pytest.mark.parametrize(
    "typed",
    [f"{GOOD}\n{GOOD}\n", f"{GOOD}\r\n{GOOD}", "first line\nsecond line here\n"],
)
def test_a_password_of_several_lines_is_refused(cli, root, monkeypatch, typed: str) -> None:
    """Piped twice, as `passwd` asks on a terminal: no login form takes a line break, so
    the person could never log in."""
    result = _users(cli, root, monkeypatch, typed, *ADD)
    assert result.code == 2 and "one line" in result.err, result.err
    assert GOOD not in result.err + result.out
    assert People(root / "state").count() == 0


def test_trailing_spaces_and_unicode_are_kept_and_checked_as_typed(cli, root, monkeypatch):
    typed = "pässwörd ünïcode  "
    result = _users(cli, root, monkeypatch, typed + "\n", *ADD)
    assert result.code == 0, result.err
    people = People(root / "state")
    assert people.check_password("alice", typed) is not None
    assert people.check_password("alice", typed.rstrip()) is None


def test_verify_of_a_trail_whose_table_was_dropped_is_not_intact(cli, root: Path) -> None:
    trail = AuditTrail(root / "state")
    for _ in range(3):
        trail.append("alice", audit.LOGIN)
    conn = sqlite3.connect(root / "state" / "team.sqlite", isolation_level=None)
    try:
        conn.execute("DROP TABLE audit")  # its triggers go with it
    finally:
        conn.close()
    result = cli(["audit", "verify", "--root", str(root)])
    assert result.code == 1, result.out
    assert "entry 1 and any after it were removed" in result.out


def test_a_blank_since_is_refused_not_ignored(cli, root: Path) -> None:
    AuditTrail(root / "state").append("alice", audit.LOGIN)
    result = cli(["audit", "--since", "", "--root", str(root)])
    assert result.code == 2 and "give a date as YYYY-MM-DD" in result.err


def test_a_team_file_that_is_no_database_is_one_line_exit_2(cli, root: Path, monkeypatch):
    (root / "state").mkdir()
    (root / "state" / "team.sqlite").write_bytes(b"these are not the pages of a database\n" * 200)
    for args in (["audit"], ["audit", "verify"], ["users", "list"]):
        result = cli([*args, "--root", str(root)])
        assert result.code == 2 and "not a database" in result.err, (args, result.err)
        assert len(result.err.splitlines()) == 1
    result = _users(cli, root, monkeypatch, GOOD, *ADD)
    assert result.code == 2 and "Traceback" not in result.err


def test_a_detail_holding_a_line_break_cannot_forge_a_listed_entry(cli, root: Path) -> None:
    """An uploaded file's name (the browser's to choose) with a line break and escapes: one
    entry is one line of `dialer audit`, whatever its details hold."""
    forged = "2026-12-07T01:00:00Z  alice  optout_removed  spring  reason=asked"
    trail = AuditTrail(root / "state")
    trail.append("bob", audit.UPLOAD, "spring", name=f"leads.csv\n{forged}\x1b[2K\r", size=9)
    trail.append("bob", audit.STOP, "spring")
    result = cli(["audit", "--root", str(root)])
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert len(lines) == 3 and lines[-1] == "2 entries", result.out
    assert not any(line.startswith(forged[:20]) for line in lines)
    assert "\x1b" not in result.out and "\r" not in result.out


class _Endless(io.TextIOBase):
    """`yes |`: a pipe that never ends (read to its end, it would fill the memory)."""

    def read(self, size: int | None = -1) -> str:
        if size is None or size < 0:
            raise MemoryError("read an endless pipe to its end")
        return "y" * size

    def isatty(self) -> bool:
        return False


def test_an_endless_pipe_is_refused_without_reading_it_all(cli, root, monkeypatch) -> None:
    monkeypatch.setattr("sys.stdin", _Endless())
    result = cli(["users", *ADD, "--root", str(root)])
    assert result.code == 2 and "over 1024 characters" in result.err, result.err
    assert People(root / "state").count() == 0
