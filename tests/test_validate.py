"""`dialer validate`: the dry run on real files, every row's verdict, no network."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import HEADER, Project, contact_rows
from openpyxl import Workbook, load_workbook

from dialer.campaign.parse import load_campaign
from dialer.commands.validate import validate
from dialer.core.statuses import ExitCode
from dialer.reports.writer import REPORT_COLUMNS
from dialer.sheets.cell_types import plain_header


def _messy_rows() -> list[list[str]]:
    return [
        ["C1", "Asha", "+91 73590 43943", "O1"],
        ["C2", "Ben", "0091-73590-43944", "O2"],
        ["C3", "", "7359043945", "O3"],  # template needs first_name
        ["C4", "Cara", "12", "O4"],  # too short
        ["C5", "Dev", "073590-43943", "O5"],  # same person as C1, written nationally
        ["C6", "Esha", "9.16946E+11", "O6"],  # truncated by Excel
        ["C7", '=HYPERLINK("x")', "+91 73590 43947", "O7"],  # formula-looking name
        ["C8", "Fay\u200b\u202e", "+91 73590 43948", "O8"],  # zero-width + bidi override
        ["C9", "Gus", "+91 73590 43949", "{{ 7 * 7 }}"],  # a template in a cell is data
        ["C10", "Hal", "+91 73590 43950", "O10"],  # on the do-not-call list
    ]


def _dnc(project: Project) -> str:
    path = project.root / "data" / "dnc.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("Phone\n+917359043950\n", encoding="utf-8")
    return 'suppress = "../data/dnc.csv"'


def test_dry_run_gives_every_row_its_verdict(project: Project, cli):
    project.write_sheet(_messy_rows())
    project.write_campaign(contacts=_dnc(project))

    result = cli(["validate", str(project.campaign)])

    assert result.code == ExitCode.ROW_PROBLEMS  # there are invalid rows
    rows = project.report_rows()
    assert list(rows[0])[: len(REPORT_COLUMNS)] == list(REPORT_COLUMNS)
    assert list(rows[0])[len(REPORT_COLUMNS) :] == HEADER
    status = {r["custom_identifiers"]: (r["status"], r["reason"]) for r in rows}
    assert status["C1"] == ("ready", "")
    assert status["C2"][0] == "ready"
    assert status["C3"] == (
        "invalid",
        "template needs column 'first_name', which is empty or missing",
    )
    assert status["C4"][0] == "invalid" and status["C4"][1].startswith("invalid phone")
    assert status["C5"] == ("duplicate", "duplicate of row 1")
    assert status["C6"][0] == "invalid" and "scientific" in status["C6"][1]
    assert status["C10"] == ("suppressed", "on the do-not-call list")
    assert status["C9"] == (
        "invalid",
        "message would contain template braces '{{' or '}}' (from a cell)",
    )
    summary = json.loads(Path(str(project.reports()[-1]) + ".summary.json").read_text())
    assert summary["counts"]["ready"] == 4 and summary["counts"]["invalid"] == 4
    assert summary["exit_code"] == 1
    assert "Hello Asha, about order O1." in result.out  # the first rendered messages
    assert "+917359043943" not in result.out  # masked on the console


def test_cells_are_cleaned_and_blank_looking_values_count_as_empty(project: Project):
    rows = [
        *_messy_rows(),
        ["C11", "\u3164", "+91 73590 43951", "O11"],  # Hangul filler: looks blank
        ["C12", "-", "+91 73590 43952", "O12"],  # no letter or digit
        ["C13", "\u2800", "+91 73590 43953", "O13"],  # braille blank
    ]
    project.write_sheet(rows)
    project.write_campaign()
    campaign = load_campaign(project.campaign)
    from dialer.sheets.pipeline import open_contacts

    contacts = {
        c.custom_identifiers: c for chunk in open_contacts(campaign).chunks() for c in chunk
    }
    assert contacts["C8"].first_line == "Hello Fay, about order O8."
    for ident in ("C11", "C12", "C13"):
        assert contacts[ident].status == "invalid", ident
        assert "first_name" in contacts[ident].reason


def test_single_brace_placeholder_is_a_campaign_error(project: Project, cli):
    project.write_sheet(contact_rows(1))
    project.write_campaign(first_line="Hello {first_name}")

    result = cli(["validate", str(project.campaign)])

    assert result.code == ExitCode.INPUT_ERROR
    assert "{{ first_name }}" in result.err


def test_report_defuses_formulas_in_csv(project: Project, cli):
    project.write_sheet(_messy_rows())
    project.write_campaign()
    cli(["validate", str(project.campaign)])

    with open(project.reports()[-1], encoding="utf-8", newline="") as f:
        raw = list(csv.reader(f))
    c7 = next(r for r in raw if r[1] == "C7")
    assert c7[len(REPORT_COLUMNS) + 1] == '\'=HYPERLINK("x")'
    assert c7[2] == "'+91 73590 43947"  # phone_raw from the sheet starts with +
    assert c7[3] == "+917359043947"  # called_to is ours: kept machine-readable


def test_xlsx_report_has_text_cells_frozen_header_and_filter(project: Project, cli, tmp_path):
    project.write_sheet(_messy_rows())
    project.write_campaign()
    out = tmp_path / "r.xlsx"

    result = cli(["validate", str(project.campaign), "--report", str(out)])

    assert result.code == ExitCode.ROW_PROBLEMS
    ws = load_workbook(out).active
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref.startswith("A1:")
    header = [c.value for c in ws[1]]
    assert [plain_header(h) for h in header[: len(REPORT_COLUMNS)]] == list(REPORT_COLUMNS)
    assert "started_at (UTC)" in header  # times are date-times in UTC, the header says so
    rows = {r[1].value: r for r in ws.iter_rows(min_row=2)}
    c7 = rows["C7"]
    name = c7[len(REPORT_COLUMNS) + 1]
    assert name.data_type == "s" and name.value == '=HYPERLINK("x")'
    assert c7[3].data_type == "s" and c7[3].value == "+917359043947"
    assert c7[0].value == 7  # row number stays a number
    assert not (out.parent / (out.name + ".partial.csv")).exists()


def test_existing_report_is_never_overwritten(project: Project, cli, tmp_path):
    project.write_sheet(contact_rows(2))
    project.write_campaign()
    out = tmp_path / "r.csv"
    out.write_text("precious", encoding="utf-8")

    result = cli(["validate", str(project.campaign), "--report", str(out)])

    assert result.code == ExitCode.INPUT_ERROR
    assert "never overwritten" in result.err
    assert out.read_text(encoding="utf-8") == "precious"


def _bad_sheet_cases(root: Path) -> dict[str, tuple[Path, str]]:
    data = root / "bad"
    data.mkdir(parents=True, exist_ok=True)
    junk = data / "junk.xlsx"
    junk.write_bytes(b"\x00\x01binary junk" * 100)
    empty = data / "empty.csv"
    empty.write_bytes(b"")
    header_only = data / "header.csv"
    header_only.write_text("customer_id,first_name,phone,order_id\n", encoding="utf-8")
    no_phone = data / "nophone.csv"
    no_phone.write_text("customer_id,first_name,mobile,order_id\nC1,A,+917359043943,O\n")
    dup = data / "dup.csv"
    dup.write_text("customer_id,First Name,first_name,phone,order_id\nC1,A,B,+917359043943,O\n")
    ods = data / "c.ods"
    ods.write_bytes(b"PK\x03\x04")
    return {
        "junk": (junk, "xlsx"),
        "empty": (empty, "empty"),
        "header_only": (header_only, "no data rows"),
        "no_phone": (no_phone, "mobile"),
        "duplicate_headers": (dup, "first_name"),
        "unsupported": (ods, ".csv"),
    }


@pytest.mark.parametrize(
    "case", ["junk", "empty", "header_only", "no_phone", "duplicate_headers", "unsupported"]
)
def test_bad_sheets_exit_2_with_one_clear_line(project: Project, cli, case):
    project.write_campaign()
    path, words = _bad_sheet_cases(project.root)[case]

    result = cli(["validate", str(project.campaign), "--contacts", str(path)])

    assert result.code == ExitCode.INPUT_ERROR, result.out
    assert result.err.count("\n") == 1, result.err
    assert "Traceback" not in result.err
    assert str(path.name) in result.err and words in result.err
    assert not project.reports()  # nothing written for a sheet that cannot be read


def test_xlsx_sheet_with_numeric_phone_cells(project: Project, cli, tmp_path):
    wb = Workbook()
    ws = wb.active
    ws.append(["Customer ID", "First Name", "Phone", "Order ID"])
    ws.append([1, "Asha", 917359043943, "O1"])
    ws.append([2, "Ben", 917359043944.0, "O2"])
    path = tmp_path / "c.xlsx"
    wb.save(path)
    project.write_campaign()

    result = cli(["validate", str(project.campaign), "--contacts", str(path)])

    assert result.code == ExitCode.OK, result.err
    rows = project.report_rows()
    assert [r["called_to"] for r in rows] == ["+917359043943", "+917359043944"]
    assert [r["custom_identifiers"] for r in rows] == ["1", "2"]


def test_unsafe_template_makes_rows_invalid_not_a_crash(project: Project, cli):
    project.write_sheet(contact_rows(2))
    project.write_campaign(first_line="Hi {{ first_name.__class__.__mro__ }}")

    result = cli(["validate", str(project.campaign)])

    assert result.code == ExitCode.ROW_PROBLEMS
    assert {r["reason"] for r in project.report_rows()} == {"template error: unsafe expression"}


def test_template_syntax_error_is_a_campaign_error(project: Project, cli):
    project.write_sheet(contact_rows(2))
    project.write_campaign(first_line="Hi {{ first_name ")

    result = cli(["validate", str(project.campaign)])

    assert result.code == ExitCode.INPUT_ERROR and "first_line" in result.err


def test_long_cells_are_cut_before_reaching_the_prompt(project: Project, cli):
    project.write_sheet([["C1", "A" * 5000, "+917359043943", "O1"]])
    project.write_campaign()
    campaign = load_campaign(project.campaign)
    from dialer.sheets.pipeline import open_contacts

    (contact,) = next(open_contacts(campaign).chunks())
    assert contact.first_line == f"Hello {'A' * 200}, about order O1."
    assert "cut to 200 characters: first_name" in contact.reason


def test_validate_shows_outside_window_with_an_injected_clock(project: Project):
    project.write_sheet(contact_rows(3))
    project.write_campaign(extra="", contacts="")
    text = project.campaign.read_text() + '\n[window]\nhours = "09:00-20:00"\n'
    project.campaign.write_text(text)
    campaign = load_campaign(project.campaign)
    # 20:30 UTC is 02:00 in India: nobody may be called.
    night = datetime(2026, 11, 25, 20, 30, tzinfo=UTC)
    out = io.StringIO()

    code = validate(campaign, clock=lambda: night, out=out)

    assert code == ExitCode.OK
    assert Counter(r["status"] for r in project.report_rows()) == {"outside_window": 3}


def test_validate_shows_already_called_after_a_run(project: Project, cli, fake):
    from conftest import KEY_ENV

    project.write_sheet(contact_rows(3))
    project.write_campaign(fake.url)
    cli(["run", str(project.campaign), "--yes"], env=KEY_ENV)
    project.write_sheet(contact_rows(4))

    result = cli(["validate", str(project.campaign)])

    assert result.code == ExitCode.OK
    assert Counter(r["status"] for r in project.report_rows()) == {"already_called": 3, "ready": 1}
    assert len(fake.received) == 3


def test_unwritable_report_path_is_a_clean_error(project: Project, cli, tmp_path):
    project.write_sheet(contact_rows(1))
    project.write_campaign()
    blocker = tmp_path / "file"
    blocker.write_text("x")

    result = cli(["validate", str(project.campaign), "--report", str(blocker / "r.csv")])

    assert result.code == ExitCode.INPUT_ERROR
    assert "cannot write the report" in result.err and "Traceback" not in result.err


def test_phone_numbers_in_printed_messages_are_masked(project: Project, cli):
    project.write_sheet(contact_rows(1))
    project.write_campaign(first_line="Hello {{ first_name }}, your number is {{ phone }}.")

    result = cli(["validate", str(project.campaign)])

    assert result.code == ExitCode.OK
    assert "+9173590" not in result.out and "your number is +91" in result.out
