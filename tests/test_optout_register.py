"""The opt-out register by hand: `dialer optout add|remove|import|list|check` end to end
through the real CLI, against the real `state/contacts.sqlite` of a project folder."""

from __future__ import annotations

import csv
import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import openpyxl
import pytest
from conftest import CliResult, Project, dialer_subprocess, error_lines

from dialer.ledger.contact_limits import ContactBook
from dialer.ledger.optouts import Ask, Register, Source, entries_in

US = "+15125550100"
US2 = "+15125550101"
IN = "+917359043943"
IN2 = "+917359043944"
NOW = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)


@pytest.fixture
def root(project: Project) -> Path:
    (project.root / "campaigns").mkdir(parents=True)
    return project.root


def optout(cli, root: Path, *args: str) -> CliResult:
    action, *rest = args
    return cli(["optout", action, "--root", str(root), *rest])


def book(root: Path) -> Path:
    return root / "state" / "contacts.sqlite"


def history_rows(root: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(book(root)) as conn:
        return conn.execute(
            "SELECT called_to, action, reason FROM optout_history ORDER BY id"
        ).fetchall()


def test_add_check_list_and_the_terminal_never_shows_a_whole_number(cli, root: Path) -> None:
    added = optout(cli, root, "add", US, "+91 73590 43943", "--reason", "asked by email")
    assert added.code == 0, added.err
    assert "+15******100: opted out" in added.out and "+91*******943: opted out" in added.out

    checked = optout(cli, root, "check", "+1 (512) 555-0100")
    assert checked.code == 0
    assert "opted out since" in checked.out and "asked by email" in checked.out
    assert "added" in checked.out and "command" in checked.out

    listed = optout(cli, root, "list")
    assert listed.code == 0 and "2 number(s) opted out" in listed.out
    for whole in (US, IN):
        for text in (added.out, checked.out, listed.out):
            assert whole not in text and whole[1:] not in text

    assert optout(cli, root, "check", US2).code == 1  # not opted out: exit 1
    again = optout(cli, root, "add", US, "--reason", "asked again")
    assert again.code == 0 and "already opted out" in again.out
    assert [r[0] for r in history_rows(root)] == [US, IN]  # nothing written for a repeat


def test_list_out_writes_whole_numbers_and_defuses_formulas(cli, root: Path) -> None:
    assert optout(cli, root, "add", US, "--reason", '=HYPERLINK("http://x")').code == 0
    out = root / "optouts.csv"
    listed = optout(cli, root, "list", "--out", str(out))
    assert listed.code == 0, listed.err
    with open(out, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["called_to"] for r in rows] == [US]
    assert rows[0]["reason"].startswith("'=")
    again = optout(cli, root, "list", "--out", str(out))  # never overwritten
    assert again.code == 2 and "exists" in again.err
    assert optout(cli, root, "list", "--since", "2099-01-01").out.startswith("0 number(s)")
    assert optout(cli, root, "list", "--since", "yesterday").code == 2


def test_remove_needs_a_reason_and_the_history_keeps_both(cli, root: Path) -> None:
    assert optout(cli, root, "add", IN, "--reason", "said stop on the phone").code == 0

    refused = optout(cli, root, "remove", IN)
    assert refused.code == 2 and "--reason" in refused.err
    assert len(error_lines(refused.err)) == 1 and "Traceback" not in refused.err
    assert optout(cli, root, "remove", IN, "--reason", "   ").code == 2
    assert optout(cli, root, "check", IN).code == 0  # still opted out

    removed = optout(cli, root, "remove", IN, "--reason", "signed consent form 2026-12-05")
    assert removed.code == 0, removed.err
    checked = optout(cli, root, "check", IN)
    assert checked.code == 1 and "not opted out" in checked.out
    assert "removed" in checked.out and "signed consent form" in checked.out
    assert history_rows(root) == [
        (IN, "added", "said stop on the phone"),
        (IN, "removed", "signed consent form 2026-12-05"),
    ]
    gone = optout(cli, root, "remove", IN, "--reason", "again")
    assert gone.code == 2 and "not on the opt-out register" in gone.err


def test_bad_input_is_one_line_and_changes_nothing(cli, root: Path) -> None:
    bad = optout(cli, root, "add", US, "12345", "--reason", "x")
    assert bad.code == 2 and len(error_lines(bad.err)) == 1
    national = optout(cli, root, "add", "5125550100", "--reason", "x")
    assert national.code == 2 and "--region" in national.err
    assert optout(cli, root, "add", "--region", "ZZ", US, "--reason", "x").code == 2
    assert not book(root).exists()  # nothing added: not even the file
    assert optout(cli, root, "add", "--region", "US", "512 555 0100", "--reason", "x").code == 0
    assert optout(cli, root, "check", US).code == 0

    elsewhere = cli(["optout", "list", "--root", str(root / "campaigns")])
    assert elsewhere.code == 2 and "no campaigns/ or state/" in elsewhere.err


def test_check_and_list_on_a_folder_nobody_opted_out_create_nothing(cli, root: Path) -> None:
    assert optout(cli, root, "check", US).code == 1
    assert optout(cli, root, "list").out.startswith("0 number(s)")
    assert not (root / "state").exists()


def test_a_register_file_that_is_not_a_database_is_one_line_exit_2(cli, root: Path) -> None:
    book(root).parent.mkdir()
    book(root).write_bytes(b"not a database at all" * 100)
    for args in (("check", US), ("add", US, "--reason", "x")):
        result = optout(cli, root, *args)
        assert result.code == 2 and "contacts.sqlite" in result.err
        assert len(error_lines(result.err)) == 1


def test_import_opts_out_every_number_of_every_phone_column(cli, root: Path) -> None:
    sheet = root / "dnc.csv"
    sheet.write_text(
        "Name,Mobile,Other Phone,Country\n"
        "Ann,+15125550100,,\n"
        "Bob,98765 43210,(512) 555-0101,US\n"  # national numbers read as the row's country
        "Cid,07359043943,,India\n"
        "Ann again,+1 512 555 0100,,\n",
        encoding="utf-8",
    )
    imported = optout(cli, root, "import", str(sheet), "--region", "IN")
    assert imported.code == 2  # Bob's first number is no US number: a bad row
    assert "row 3" in imported.err and "nothing imported" in imported.err
    assert not book(root).exists()

    sheet.write_text(sheet.read_text().replace("98765 43210", "+91 98765 43210"))
    imported = optout(cli, root, "import", str(sheet), "--region", "IN")
    assert imported.code == 0, imported.err
    assert "4 number(s) opted out" in imported.out
    listed = {r[0] for r in history_rows(root)}
    assert listed == {US, US2, "+919876543210", IN}
    checked = optout(cli, root, "check", US2)
    assert checked.code == 0 and "import" in checked.out and "dnc.csv row 3" in checked.out


def test_import_of_a_sheet_with_bad_rows_lists_them_and_imports_nothing(cli, root: Path) -> None:
    path = root / "dnc.xlsx"
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["phone", "note"])
    sheet.append([US, "fine"])
    sheet.append(["+9112", "too short"])
    sheet.append(["", "no number"])
    sheet.append([IN, "fine"])
    workbook.save(path)

    result = optout(cli, root, "import", str(path))
    assert result.code == 2 and "Traceback" not in result.err
    lines = error_lines(result.err)
    assert any("row 3:" in line and "too short" in line for line in lines)
    assert any("row 4:" in line and "no phone number" in line for line in lines)
    assert "2 bad row(s)" in lines[-1] and "nothing imported" in lines[-1]
    assert optout(cli, root, "check", US).code == 1  # the good rows were not imported either

    no_phone = root / "names.csv"
    no_phone.write_text("name,city\nAnn,Pune\n", encoding="utf-8")
    missing = optout(cli, root, "import", str(no_phone))
    assert missing.code == 2 and "--column" in missing.err
    named = optout(cli, root, "import", str(path), "--column", "note")
    assert named.code == 2  # the notes hold no numbers


def test_an_opt_out_heard_on_a_call_is_recorded_once_and_a_removal_holds(root: Path) -> None:
    heard = Ask(
        IN,
        Source.CALL,
        "sync@host",
        "said: stop calling",
        "spring",
        "call-1",
        "User: please stop calling me, +91 73590 43943",
    )
    state = root / "state"
    with Register.open(state) as register:
        assert register.add([heard], NOW).added == [IN]
        entry = register.entry(IN)
        assert entry is not None and IN not in entry.evidence and "***" in entry.evidence
        assert entry.row_reason() == "asked not to be called, call of 2026-12-04 (spring)"
        register.remove(IN, Source.COMMAND, "alice@host", "consented in writing", NOW)
        # The next sync reads the same call again: the removal is not undone.
        assert register.add([heard], NOW).heard_before == [IN]
        assert register.entry(IN) is None
        later = Ask(IN, Source.CALL, "sync@host", "said: stop", "spring", "call-2")
        assert register.add([later], NOW).added == [IN]  # a new call's opt-out counts
        assert [c.action for c in register.history(IN)] == ["added", "removed", "added"]
        assert set(register.entries([IN, US, IN2])) == {IN}


def test_the_history_is_append_only_whatever_code_asks(cli, root: Path) -> None:
    assert optout(cli, root, "add", US, "--reason", "x").code == 0
    conn = sqlite3.connect(book(root))
    try:
        for sql in ("UPDATE optout_history SET reason = 'y'", "DELETE FROM optout_history"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute(sql)
    finally:
        conn.close()
    assert history_rows(root) == [(US, "added", "x")]


def test_the_register_and_the_contact_counts_share_their_file(root: Path) -> None:
    state = root / "state"
    with Register.open(state) as register:
        register.add([Ask(US, Source.COMMAND, "a@h", "x")], NOW)
    counts = ContactBook.open(state, NOW, create=False)
    assert counts is not None
    with counts:
        assert counts.reserve([IN], "spring", "run-1", NOW, None) == {}
    reading = Register.reading(state)
    assert reading is not None
    with reading:
        assert set(reading.entries([US, IN])) == {US}


def test_two_processes_adding_at_once_both_land_and_nothing_is_doubled(root: Path) -> None:
    numbers = [f"+9173590{i:05d}" for i in range(40)]
    first, second = numbers[:25], numbers[15:]  # 10 numbers asked by both
    procs = [
        dialer_subprocess(
            ["optout", "add", "--root", str(root), *part, "--reason", f"batch {i}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i, part in enumerate((first, second))
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    rows = history_rows(root)
    assert sorted(r[0] for r in rows) == sorted(numbers)  # each added exactly once
    reading = Register.reading(root / "state")
    assert reading is not None
    with reading:
        assert set(reading.entries(numbers)) == set(numbers)


def test_the_claim_reads_the_register_inside_its_own_transaction(root: Path) -> None:
    """What the claim calls on its own connection to `contacts.sqlite`: one query for the
    batch, seeing every opt-out committed before its transaction began; a file from before
    the register holds nobody."""
    state = root / "state"
    state.mkdir()
    claim = sqlite3.connect(book(root), isolation_level=None)
    try:
        assert entries_in(claim, [US, IN]) == {}  # no register tables yet
        with Register.open(state) as register:
            register.add([Ask(US, Source.COMMAND, "a@h", "x")], NOW)
        claim.execute("BEGIN IMMEDIATE")
        found = entries_in(claim, [US, IN, US])
        claim.execute("COMMIT")
    finally:
        claim.close()
    assert list(found) == [US] and found[US].source == "command"
