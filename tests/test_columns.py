"""`[contacts] columns` and `defaults`: the CLI reads a sheet through the campaign's column
mapping exactly as the page does; mistyped keys are refused naming the key (issue 12)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import KEY_ENV, Project

from dialer.campaign.parse import load_campaign
from dialer.core.statuses import CampaignError, ExitCode
from dialer.sheets.columns import guess, needs, similarity
from dialer.sheets.reader import open_sheet

# The marketing person's own sheet from issue 12.
THEIR_HEADER = ["Customer Name", "Mobile No.", "Order #", "City", "Ref"]
THEIR_ROWS = [
    ["Asha", "+91 73590 43943", "O1", "Pune", "R1"],
    ["Ben", "07359043944", "O2", "Delhi", "R2"],
    ["", "+91 73590 43945", "O3", "Goa", "R3"],
]
MAPPING = (
    'columns = { phone = "Mobile No.", first_name = "Customer Name", order_id = "Order #", '
    'customer_id = "Ref" }'
)


def _their_project(project: Project, contacts: str = MAPPING, **campaign: str) -> Path:
    project.write_sheet(THEIR_ROWS, header=THEIR_HEADER)
    return project.write_campaign(contacts=contacts, **campaign)


def _summary(project: Project) -> dict:
    return json.loads(Path(f"{project.reports()[-1]}.summary.json").read_text())


def test_validate_reads_the_sheet_through_the_column_mapping(project: Project, cli):
    _their_project(project)

    result = cli(["validate", str(project.campaign)])

    assert result.code == ExitCode.ROW_PROBLEMS, result.err  # the row without a name
    rows = {r["custom_identifiers"]: r for r in project.report_rows()}
    assert rows["R1"]["status"] == "ready"
    assert "Hello Asha, about order O1." in result.out  # the first rendered messages
    assert rows["R2"]["called_to"] == "+917359043944"
    # The reason names the header the user wrote, and the campaign's name for it.
    assert rows["R3"]["reason"] == (
        "template needs column 'Customer Name' (first_name), which is empty or missing"
    )
    assert _summary(project)["warnings"] == []


def test_run_sends_what_the_mapping_reads(project: Project, cli, fake):
    _their_project(project, endpoint=fake.url)

    result = cli(["run", str(project.campaign), "--yes"], env=KEY_ENV)

    assert result.code == ExitCode.ROW_PROBLEMS, result.err
    sent = {b["custom_identifiers"]: b for b in fake.accepted()}
    assert set(sent) == {"R1", "R2"}
    assert sent["R1"]["called_to"] == "+917359043943"
    assert sent["R1"]["custom_first_line"] == "Hello Asha, about order O1."


def test_defaults_fill_a_missing_column_and_an_empty_cell(project: Project, cli, fake):
    defaults = 'defaults = { first_name = "there", order_date = "last week" }'
    _their_project(
        project,
        contacts=f"{MAPPING}\n{defaults}",
        first_line="Hello {{ first_name }}, your order {{ order_id }} of {{ order_date }}.",
        endpoint=fake.url,
    )

    result = cli(["run", str(project.campaign), "--yes"], env=KEY_ENV)

    assert result.code == ExitCode.OK, result.err
    lines = {b["custom_identifiers"]: b["custom_first_line"] for b in fake.accepted()}
    assert lines == {
        "R1": "Hello Asha, your order O1 of last week.",
        "R2": "Hello Ben, your order O2 of last week.",
        "R3": "Hello there, your order O3 of last week.",  # empty cell: the default
    }


def test_without_a_default_a_missing_template_column_is_a_warning_and_invalid_rows(
    project: Project, cli
):
    _their_project(project, first_line="Hello {{ first_name }}, on {{ order_date }}.")

    result = cli(["validate", str(project.campaign)])

    assert result.code == ExitCode.ROW_PROBLEMS
    assert {r["status"] for r in project.report_rows()} == {"invalid"}
    (warning,) = _summary(project)["warnings"]
    # The user's own headers, and what to do about it.
    assert "order_date" in warning and "Customer Name, Mobile No., Order #" in warning
    assert "[contacts] defaults" in warning


def test_a_mapped_header_that_is_not_in_the_sheet_is_one_line_naming_it(project: Project, cli):
    _their_project(project, contacts='columns = { phone = "Cell", customer_id = "Ref" }')

    result = cli(["validate", str(project.campaign)])

    assert result.code == ExitCode.INPUT_ERROR
    (line,) = result.err.strip().splitlines()
    assert "no column 'Cell' for phone ([contacts] columns)" in line
    assert "columns found: Customer Name, Mobile No., Order #, City, Ref" in line


def test_a_missing_phone_column_suggests_the_mapping(project: Project, cli):
    _their_project(project, contacts="")

    result = cli(["validate", str(project.campaign)])

    assert result.code == ExitCode.INPUT_ERROR
    (line,) = result.err.strip().splitlines()
    assert "no phone column 'phone'; columns found: Customer Name, Mobile No." in line
    assert 'columns = { "phone" = "Mobile No." }' in line


def test_the_mapping_wins_over_a_column_of_the_same_name(project: Project, cli):
    project.write_sheet(
        [["C1", "Asha", "landline?", "O1", "+91 73590 43943"]],
        header=["customer_id", "first_name", "phone", "order_id", "Mobile"],
    )
    project.write_campaign(contacts='columns = { phone = "Mobile" }')

    result = cli(["validate", str(project.campaign)])

    assert result.code == ExitCode.OK, result.err
    assert project.report_rows()[0]["called_to"] == "+917359043943"


def test_two_variables_may_read_one_column(project: Project, cli):
    project.write_sheet([["C1", "Asha", "+91 73590 43943"]], header=["id", "name", "phone"])
    project.write_campaign(
        contacts='columns = { customer_id = "id", first_name = "name", order_id = "id" }'
    )

    result = cli(["validate", str(project.campaign)])

    assert result.code == ExitCode.OK, result.err
    assert "Hello Asha, about order C1." in result.out


@pytest.mark.parametrize(
    ("contacts", "message"),
    [
        (
            'columns = { frist_name = "Name" }',
            "unknown key 'contacts.columns.frist_name' (the campaign uses: phone, customer_id, "
            "first_name, order_id)",
        ),
        ('defaults = { phone = "+911234" }', "unknown key 'contacts.defaults.phone'"),
        ('defaults = { order_dat = "soon" }', "unknown key 'contacts.defaults.order_dat'"),
        ("columns = { phone = 7 }", "key 'contacts.columns.phone' must be a non-empty string"),
        ('columns = { phone = "  " }', "key 'contacts.columns.phone' must be a non-empty string"),
        ('defaults = { first_name = "{{ x }}" }', "has template braces"),
        (f'defaults = {{ first_name = "{"x" * 201}" }}', "at most 200 printable characters"),
    ],
)
def test_unknown_or_bad_keys_are_refused_naming_the_key(project: Project, cli, contacts, message):
    project.write_sheet([], header=["customer_id", "first_name", "phone", "order_id"])
    project.write_campaign(contacts=contacts)

    with pytest.raises(CampaignError) as caught:
        load_campaign(project.campaign)
    assert message in str(caught.value)
    result = cli(["validate", str(project.campaign)])
    assert result.code == ExitCode.INPUT_ERROR
    assert len(result.err.strip().splitlines()) == 1 and message in result.err


def test_a_timezone_column_may_be_mapped(project: Project, cli):
    project.write_sheet(
        [["C1", "Asha", "+91 73590 43943", "O1", "Asia/Kolkata"]],
        header=["customer_id", "first_name", "phone", "order_id", "Zone of the person"],
    )
    project.write_campaign(
        contacts='columns = { tz = "Zone of the person" }',
        extra='[window]\nhours = "00:00-24:00"\ndays = ["mon","tue","wed","thu","fri","sat","sun"]'
        '\ntimezone_column = "tz"\n',
    )

    result = cli(["validate", str(project.campaign)])

    assert result.code == ExitCode.OK, result.err


def test_the_guess_matches_the_sheet_of_issue_12():
    campaign_names = ["phone", "customer_id", "first_name", "last_name", "order_date", "order_id"]
    headers = ["Customer Name", "Mobile No.", "Order #", "City"]

    assert guess(campaign_names, headers) == {
        "phone": "Mobile No.",
        "first_name": "Customer Name",
        "order_id": "Order #",
    }
    # An exact header beats every look-alike, and a header is guessed for one name only.
    assert guess(["first_name", "last_name"], ["Name", "First Name"]) == {
        "first_name": "First Name"
    }
    assert similarity("order_id", "Order-ID") == 1.0
    assert similarity("phone", "City") < 0.7


def test_needs_lists_every_name_and_which_variables_are_required():
    campaign = load_campaign(Path(__file__).resolve().parent.parent / "campaigns/example.toml")

    found = needs(campaign)

    assert found.names == (
        "phone",
        "customer_id",
        "first_name",
        "last_name",
        "order_date",
        "order_id",
    )
    # `{{ last_name | default('') }}`: the greeting does without it.
    assert found.required == {"first_name", "order_date", "order_id"}


def test_spreadsheet_row_numbers_count_the_header_and_the_rows_above_it(tmp_path: Path):
    plain = tmp_path / "plain.csv"
    plain.write_text("phone\n+917359043943\n")
    above = tmp_path / "above.csv"
    above.write_text("\n\nphone\n+917359043943\n")
    hinted = tmp_path / "hinted.csv"
    hinted.write_text("sep=;\nphone;name\n+917359043943;A\n")

    assert open_sheet(plain).excel_header_row == 1
    assert open_sheet(above).excel_header_row == 3
    assert open_sheet(hinted).excel_header_row == 1  # Excel reads "sep=;" as a setting


def test_validate_writes_the_header_row_and_tab_into_the_summary(project: Project, cli):
    path = project.root / "data" / "contacts.csv"
    path.parent.mkdir(parents=True)
    path.write_text("\ncustomer_id,first_name,phone,order_id\nC1,Asha,+917359043943,O1\n")
    project.write_campaign()

    assert cli(["validate", str(project.campaign)]).code == ExitCode.OK
    summary = _summary(project)
    assert summary["header_row"] == 2 and summary["tab"] is None
