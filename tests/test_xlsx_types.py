"""XLSX reports and results open ready to use (SPEC 4.3b): the real CLI run against
`dialer fake-tabbly` with a CRM export as it comes, then the written workbooks read back."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import KEY_ENV, Project
from openpyxl import Workbook, load_workbook

from dialer.campaign.model import LOGS_ENDPOINT_ENV
from dialer.campaign.paths import summary_path
from dialer.core.statuses import ExitCode
from dialer.fake_tabbly import DEFAULT_AGENT_ID, DEFAULT_CALL_FROM, DEFAULT_ORGANIZATION_ID
from dialer.fake_tabbly.rules import LOGS_V2_PATH, TRIGGER_PATH
from dialer.fake_tabbly.runners import FakeTabblyProcess
from dialer.reports.writer import REPORT_COLUMNS
from dialer.sheets.cell_types import Kind, excel_value, tab_name
from dialer.sheets.reader import open_sheet
from dialer.web.services import reports

CAMPAIGN = "june-winback_vip-gold-customers-2024"  # past Excel's 31 characters for a tab
HEADER = ["Record ID", "First Name", "Phone Number", "Create Date", "Last Order Amount"]
PEOPLE = [
    ["00042", "Ada", "+1 617 661 2270", dt.datetime(2024, 1, 5, 9, 30), 120.5],
    ["00043", "Grace", "+1 617 661 2271", dt.datetime(2024, 2, 29, 0, 0), 80],
    ["00044", "Linus", "+1 617 661 2272", dt.datetime(2023, 12, 31, 23, 59), None],
]


def _crm_sheet(path: Path) -> Path:
    """A CRM export: ids and phones typed as text, dates as dates, amounts as numbers."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Contacts"
    sheet.append(HEADER)
    for person in PEOPLE:
        sheet.append(person)
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)
    return path


def _campaign(project: Project, url: str) -> Path:
    project.campaign.parent.mkdir(parents=True, exist_ok=True)
    project.campaign.write_text(
        f'''
name = "{CAMPAIGN}"
organization_id = {DEFAULT_ORGANIZATION_ID}
agent_id = {DEFAULT_AGENT_ID}
call_from = "{DEFAULT_CALL_FROM}"
first_line = "Hello {{{{ first_name }}}}."
instruction = "Ask {{{{ first_name }}}} about the last order."
endpoint = "{url}"

[contacts]
source = "../data/crm.xlsx"
phone_column = "Phone Number"
id_column = "Record ID"
default_region = "US"

[dispatch]
rate_per_second = 1000
concurrency = 1
''',
        encoding="utf-8",
    )
    return project.campaign


@pytest.fixture
def crm_run(project: Project, cli) -> Iterator[tuple[Project, FakeTabblyProcess]]:
    """The CRM sheet run for real into `reports/report.xlsx`, the fake still up for a sync."""
    _crm_sheet(project.root / "data" / "crm.xlsx")
    with FakeTabblyProcess("--latency", "0", "--balance", "1000", "--seed", "3") as fake:
        _campaign(project, fake.url)
        report = project.root / "reports" / "report.xlsx"
        result = cli(["run", str(project.campaign), "--yes", "--report", str(report)], KEY_ENV)
        assert result.code == ExitCode.OK, result.err
        yield project, fake


def _env(fake: FakeTabblyProcess) -> dict[str, str]:
    return {**KEY_ENV, LOGS_ENDPOINT_ENV: fake.url.split(TRIGGER_PATH)[0] + LOGS_V2_PATH}


def _read(path: Path) -> tuple[str, list[dict[str, Any]]]:
    """The workbook's tab title and its rows by header."""
    book = load_workbook(path)
    try:
        sheet = book.worksheets[0]
        header, *rows = list(sheet.iter_rows(values_only=True))
        return sheet.title, [dict(zip(header, row, strict=True)) for row in rows]
    finally:
        book.close()


def _assert_user_columns_keep_their_types(row: dict[str, Any], person: list[Any]) -> None:
    record_id, first_name, phone, created, amount = person
    assert row["Record ID"] == record_id  # "00042" stays text, its zeros kept
    assert row["First Name"] == first_name
    assert row["Phone Number"] == phone  # "+1 617 ..." stays text
    assert isinstance(row["Create Date"], dt.datetime) and row["Create Date"] == created
    if amount is None:
        assert row["Last Order Amount"] is None  # empty, never an empty text
    else:
        assert isinstance(row["Last Order Amount"], int | float)
        assert row["Last Order Amount"] == amount


def test_a_run_report_keeps_numbers_dates_and_text_ids(crm_run):
    project, _ = crm_run
    title, rows = _read(project.root / "reports" / "report.xlsx")

    assert title == tab_name(CAMPAIGN) == CAMPAIGN[:31]
    assert [r["status"] for r in rows] == ["triggered"] * 3
    for row, person in zip(rows, PEOPLE, strict=True):
        assert type(row["row"]) is int and type(row["attempts"]) is int
        assert type(row["http_status"]) is int
        for column in ("started_at (UTC)", "finished_at (UTC)"):
            assert isinstance(row[column], dt.datetime), column
        assert "started_at" not in row  # the header names the zone
        assert row["started_at (UTC)"] <= row["finished_at (UTC)"]
        _assert_user_columns_keep_their_types(row, person)


def test_date_columns_display_as_dates(crm_run):
    project, _ = crm_run
    book = load_workbook(project.root / "reports" / "report.xlsx")
    sheet = book.worksheets[0]
    header = [c.value for c in sheet[1]]
    for name in ("started_at (UTC)", "Create Date"):
        cell = sheet.cell(row=2, column=header.index(name) + 1)
        assert cell.is_date and "yy" in cell.number_format, name
    book.close()


def test_sync_results_have_numeric_costs_counts_and_utc_times(crm_run, cli):
    project, fake = crm_run
    out = project.root / "results.xlsx"

    result = cli(["sync", str(project.campaign), "--results", str(out)], _env(fake))

    assert result.code == ExitCode.OK, result.err
    title, rows = _read(out)
    assert title == tab_name(CAMPAIGN)
    assert len(rows) == 3
    for row, person in zip(rows, PEOPLE, strict=True):
        assert type(row["calls"]) is int
        for column in ("cost", "duration_s"):
            assert row[column] is None or isinstance(row[column], int | float), column
        assert isinstance(row["last_called_at (UTC)"], dt.datetime)
        _assert_user_columns_keep_their_types(row, person)
    assert any(isinstance(r["cost"], float) and not r["cost"].is_integer() for r in rows), (
        "no fractional cost drawn: the test cannot see a cost written as text"
    )


def test_sheet_out_keeps_the_users_types_and_adds_typed_outcomes(crm_run, cli):
    project, fake = crm_run
    out = project.root / "crm-called.xlsx"
    sheet = project.root / "data" / "crm.xlsx"

    result = cli(
        ["sync", str(project.campaign), "--sheet", str(sheet), "--out", str(out)], _env(fake)
    )

    assert result.code == ExitCode.OK, result.err
    title, rows = _read(out)
    assert title == "Contacts"
    for row, person in zip(rows, PEOPLE, strict=True):
        _assert_user_columns_keep_their_types(row, person)
        assert type(row["calls"]) is int and isinstance(row["last_called_at (UTC)"], dt.datetime)


def test_a_later_sync_still_finds_the_xlsx_reports_people(crm_run, cli):
    """The typed report reads back as the text it was: a sync matches its rows again."""
    project, fake = crm_run
    first = project.root / "first.csv"
    assert cli(["sync", str(project.campaign), "--results", str(first)], _env(fake)).code == 0
    text = first.read_text("utf-8").splitlines()
    assert text[1].split(",")[:2] == ["+16176612270", "00042"]
    assert ",2024-01-05 09:30:00,120.5" in text[1]


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("00042", Kind.NUMBER, "00042"),
        ("+16176612270", Kind.NUMBER, "+16176612270"),
        ("1234567890123456", Kind.NUMBER, "1234567890123456"),  # past Excel's 15 digits
        ("-12.5", Kind.NUMBER, -12.5),
        ("1e-05", Kind.NUMBER, 1e-05),  # str() of a tiny cost
        ("0", Kind.NUMBER, 0),
        ("", Kind.NUMBER, None),
        ("=1+1", Kind.TEXT, "=1+1"),
        ("2024-01-05", Kind.DATE, dt.date(2024, 1, 5)),
        ("soon", Kind.DATE, "soon"),
        ("2026-12-06T20:15:00.123Z", Kind.UTC, dt.datetime(2026, 12, 6, 20, 15, 0, 123000)),
    ],
)
def test_only_text_that_reads_back_exactly_becomes_a_number_or_date(text, kind, value):
    assert excel_value(text, kind) == value
    assert type(excel_value(text, kind)) is type(value)


@pytest.mark.parametrize(
    ("name", "tab"),
    [
        ("a" * 40, "a" * 31),
        ("[]:*?/\\", "report"),
        ("'quoted'", "quoted"),
        ("History", "History 1"),
        ("ok", "ok"),
    ],
)
def test_tab_names_follow_excels_rules(name, tab):
    assert tab_name(name) == tab


def _page_report(folder: Path, amounts: list[str]) -> Path:
    """A report CSV as a run leaves it, with a "Last Order Amount" sheet column."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "20261206T201500.000Z.csv"
    lines = [",".join([*REPORT_COLUMNS, "Last Order Amount"])]
    for i, amount in enumerate(amounts, 1):
        lines.append(f"{i},C{i},+16176612270,+16176612270,triggered,,200,1,r{i},,,{amount}")
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    return path


def _amounts(xlsx: Path) -> list[Any]:
    return [row["Last Order Amount"] for row in _read(xlsx)[1]]


def test_a_page_download_made_before_the_summary_is_made_again_with_its_types(tmp_path):
    report = _page_report(tmp_path / "reports" / "example", ["120.5", "80"])
    assert _amounts(reports.xlsx_of(report)) == ["120.5", "80"]  # no summary yet: text

    summary_path(report).write_text(
        json.dumps({"column_types": {"Last Order Amount": "number"}}), encoding="utf-8"
    )

    xlsx = reports.xlsx_of(report)
    assert _amounts(xlsx) == [120.5, 80]
    assert _read(xlsx)[0] == "example"  # the tab: the campaign's folder


def test_a_page_download_of_a_replaced_csv_with_an_older_time_is_not_stale(tmp_path):
    report = _page_report(tmp_path / "reports" / "example", ["1", "2"])
    before = report.stat()
    assert _amounts(reports.xlsx_of(report)) == ["1", "2"]

    # A restored copy (rsync -t, a backup): new data, its old time, smaller than the XLSX's.
    _page_report(tmp_path / "new", ["3", "4"]).replace(report)
    os.utime(report, ns=(before.st_atime_ns, before.st_mtime_ns))

    assert _amounts(reports.xlsx_of(report)) == ["3", "4"]


def test_column_kinds_come_from_the_source_cells(tmp_path):
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Amount", "Mixed", "When", "Id", "Blank", "Flag"])
    sheet.append([1.5, 3, dt.date(2024, 1, 5), "00042", None, True])
    sheet.append([None, "three", dt.datetime(2024, 1, 5, 9, 30), "00043", None, False])
    sheet.append([2, 4, None, "00044", None, True])
    book.save(tmp_path / "s.xlsx")
    opened = open_sheet(tmp_path / "s.xlsx")

    kinds = opened.column_kinds()  # not read yet: read here

    assert kinds == (Kind.NUMBER, Kind.TEXT, Kind.DATETIME, Kind.TEXT, Kind.TEXT, Kind.TEXT)
    crm = open_sheet(_crm_sheet(tmp_path / "crm.xlsx"))
    assert crm.column_kinds() == (Kind.TEXT, Kind.TEXT, Kind.TEXT, Kind.DATETIME, Kind.NUMBER)
