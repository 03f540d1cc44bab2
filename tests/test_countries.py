"""Each row its own country, from any of its phone columns: shop and CRM exports as they come.

The evidence is the report's `called_to` and, for a run, what the fake Tabbly received: every
number must be exactly the one the row means (`tests/exports.py`), never a stranger's.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import KEY_ENV, Project, sent_once_each
from exports import CRM, CRM_HEADER, SHOP, SHOP_HEADER, expected, write_crm, write_shop

from dialer.campaign.model import LOGS_ENDPOINT_ENV
from dialer.core.statuses import ExitCode
from dialer.fake_tabbly import (
    DEFAULT_AGENT_ID,
    DEFAULT_CALL_FROM,
    DEFAULT_ORGANIZATION_ID,
    FakeTabblyThread,
)
from dialer.sheets.columns import country_header, guess, phone_headers
from dialer.sheets.countries import country_name, country_of, looks_north_american, region_of_cell
from dialer.sheets.phones import normalise_phone
from dialer.sheets.row_phone import PhoneColumns

SHOP_CONTACTS = """source = "../data/shop.csv"
phone_column = ["Phone", "Default Address Phone"]
country_column = "Default Address Country Code"
id_column = "Customer ID"
default_region = "IN"
"""
CRM_CONTACTS = """source = "../data/crm.xlsx"
phone_column = ["Phone Number", "Mobile Phone Number"]
country_column = "Country/Region"
id_column = "Record ID"
default_region = "IN"
"""


def _campaign(project: Project, contacts: str, endpoint: str = "http://127.0.0.1:9/x") -> Path:
    project.campaign.parent.mkdir(parents=True, exist_ok=True)
    project.campaign.write_text(
        f"""name = "test"
organization_id = {DEFAULT_ORGANIZATION_ID}
agent_id = {DEFAULT_AGENT_ID}
call_from = "{DEFAULT_CALL_FROM}"
first_line = "Hello {{{{ first_name }}}}"
endpoint = "{endpoint}"

[contacts]
{contacts}
[dispatch]
rate_per_second = 1000
""",
        encoding="utf-8",
    )
    return project.campaign


def _verdicts(project: Project) -> dict[str, dict[str, str]]:
    return {r["custom_identifiers"]: r for r in project.report_rows()}


@pytest.mark.parametrize(
    ("cell", "region"),
    [
        ("US", "US"),
        ("gb", "GB"),
        ("United States", "US"),
        ("united kingdom", "GB"),
        ("UK", "GB"),
        ("USA", "US"),
        ("India", "IN"),
        ("Côte d’Ivoire", "CI"),
        ("+1", "US"),
        ("1", "US"),
        ("91", "IN"),
        ("+44", "GB"),
        ("Narnia", None),
        ("800", None),  # a non-geographic code is no country
        ("ZZ", None),
    ],
)
def test_a_country_cell_names_a_region(cell: str, region: str | None) -> None:
    assert region_of_cell(cell) == region


@pytest.mark.parametrize(
    ("text", "shaped"),
    [
        ("(512) 553-9542", True),
        ("512-553-9542", True),
        ("617.661.2270", True),
        ("1-617-661-2270", True),
        ("98200 12345", False),
        ("098450-12345", False),
        ("+1 512 553 9542", False),
        ("022-2345-6789", False),
        ("(022) 234-5678", False),  # area codes start with 2-9
    ],
)
def test_north_american_shapes(text: str, shaped: bool) -> None:
    assert looks_north_american(text) is shaped


def test_a_number_tells_its_country_even_where_regions_share_a_code() -> None:
    assert [country_of(n) for n in ("+15125539542", "+14165550199", "+917359043943")] == [
        "US",
        "CA",
        "IN",
    ]
    assert country_of("+447624123456") == "IM" and country_name("IN") == "India"


def test_shop_export_every_ready_number_is_the_true_one(project: Project, cli) -> None:
    write_shop(project.root / "data" / "shop.csv")
    _campaign(project, SHOP_CONTACTS)

    result = cli(["validate", str(project.campaign)])

    assert result.code == ExitCode.ROW_PROBLEMS, result.err
    rows = _verdicts(project)
    truth = expected(SHOP)
    assert set(rows) == set(truth)
    for ident, true in truth.items():
        row = rows[ident]
        if true is None:
            assert row["status"] == "invalid", (ident, row)
            assert row["called_to"] == ""
        else:
            assert (row["status"], row["called_to"]) == ("ready", true), (ident, row)


def test_shop_export_reasons_say_which_column_and_what_to_do(project: Project, cli) -> None:
    write_shop(project.root / "data" / "shop.csv")
    _campaign(project, SHOP_CONTACTS)

    cli(["validate", str(project.campaign)])

    rows = _verdicts(project)
    assert rows["7011"]["reason"] == (
        "invalid phone: written like a North American number; add +1 or a country column"
    )
    assert rows["7014"]["reason"] == "country 'Narnia' not recognised"
    assert rows["7013"]["reason"] == "invalid phone: empty"
    assert rows["7002"]["reason"] == "phone from 'Default Address Phone' ('Phone' is empty)"
    assert rows["7016"]["reason"] == ("phone from 'Default Address Phone' ('Phone': too short)")
    assert rows["7015"]["reason"] == (
        "'Default Address Phone' holds another number; the one in 'Phone' was used"
    )
    assert rows["7001"]["reason"] == ""  # the first column, read as usual
    # The report keeps the row as the shop wrote it, both phone columns included.
    assert rows["7002"]["Default Address Phone"] == "617.661.2270"


def test_crm_workbook_numeric_cells_and_country_names(project: Project, cli) -> None:
    write_crm(project.root / "data" / "crm.xlsx")
    _campaign(project, CRM_CONTACTS)

    result = cli(["validate", str(project.campaign)])

    assert result.code == ExitCode.ROW_PROBLEMS, result.err
    rows = _verdicts(project)
    for ident, true in expected(CRM).items():
        assert rows[ident]["called_to"] == (true or ""), (ident, rows[ident])
        assert rows[ident]["status"] == ("ready" if true else "invalid"), (ident, rows[ident])
    assert "North American" in rows["308"]["reason"]


def test_without_a_country_column_north_american_shapes_are_never_called(
    project: Project, cli, fake
) -> None:
    write_shop(project.root / "data" / "shop.csv")
    contacts = SHOP_CONTACTS.replace('country_column = "Default Address Country Code"\n', "")
    _campaign(project, contacts, fake.url)

    cli(["run", str(project.campaign), "--yes"], env=KEY_ENV)

    sent = set(sent_once_each(fake))
    assert {"+919845012345", "+917359043943"} <= sent, "the Indian rows are called"
    # Not one of the US and Canadian numbers written nationally, read as Indian, reached the
    # upstream; those written with +1 did, as +1.
    strangers = {"+91" + t[2:] for t in expected(SHOP).values() if t and t.startswith("+1")}
    assert not sent & strangers, sorted(sent & strangers)
    assert {n for n in sent if n.startswith("+1")} == {"+12134815523", "+12065550134"}
    rows = _verdicts(project)
    assert rows["7001"]["status"] == "invalid" and "North American" in rows["7001"]["reason"]


def test_run_sends_exactly_the_true_numbers_of_both_columns(project: Project, cli, fake) -> None:
    write_shop(project.root / "data" / "shop.csv")
    _campaign(project, SHOP_CONTACTS, fake.url)

    result = cli(["run", str(project.campaign), "--yes"], env=KEY_ENV)

    assert result.code == ExitCode.ROW_PROBLEMS, result.err
    truth = {t for t in expected(SHOP).values() if t}
    assert set(sent_once_each(fake)) == truth
    # The second column reached people the first misses (Phone empty there).
    assert {"+16176612270", "+16045550172", "+442079460958"} <= truth
    greeted = {r.body["custom_identifiers"]: r.body["custom_first_line"] for r in fake.received}
    assert greeted["7002"] == "Hello Liam"


def test_a_north_american_do_not_call_entry_suppresses_the_us_number(project: Project, cli) -> None:
    write_shop(project.root / "data" / "shop.csv")
    (project.root / "data" / "dnc.csv").write_text("Phone\n(512) 553-9542\n", encoding="utf-8")
    _campaign(project, SHOP_CONTACTS + 'suppress = "../data/dnc.csv"\n')

    cli(["validate", str(project.campaign)])

    assert _verdicts(project)["7001"]["status"] == "suppressed"


@pytest.mark.parametrize(
    ("contacts", "message"),
    [
        ('phone_column = []\nsource = "x.csv"', "list of 1 to 5 column names"),
        ('phone_column = ["Phone", "phone"]\nsource = "x.csv"', "'phone' twice"),
        ('phone_column = ["Phone", 3]\nsource = "x.csv"', "list of 1 to 5 column names"),
        ('country_column = 1\nsource = "x.csv"', "contacts.country_column"),
    ],
)
def test_bad_phone_or_country_columns_are_a_campaign_error(
    project: Project, cli, contacts: str, message: str
) -> None:
    _campaign(project, contacts)

    result = cli(["validate", str(project.campaign)])

    assert result.code == ExitCode.INPUT_ERROR
    assert message in result.err and "Traceback" not in result.err


def test_a_country_column_missing_from_the_sheet_names_the_columns(project: Project, cli) -> None:
    write_shop(project.root / "data" / "shop.csv")
    _campaign(project, SHOP_CONTACTS.replace("Default Address Country Code", "Land"))

    result = cli(["validate", str(project.campaign)])

    assert result.code == ExitCode.INPUT_ERROR
    assert "no country column 'Land'" in result.err and "Default Address Phone" in result.err


def test_phone_columns_read_the_same_in_a_worker_process() -> None:
    import pickle

    columns = PhoneColumns((1, 2), ("Phone", "Mobile"), 0, "IN")
    again = pickle.loads(pickle.dumps(columns))
    row = ["US", "", "(512) 553-9542"]
    assert again.read(row) == columns.read(row)
    assert columns.read(row).phone.e164 == "+15125539542"


def test_the_dry_run_counts_ready_rows_per_country(project: Project, cli) -> None:
    write_shop(project.root / "data" / "shop.csv")
    _campaign(project, SHOP_CONTACTS)

    result = cli(["validate", str(project.campaign)])

    line = "ready by country: United States 5, India 4, United Kingdom 3, Canada 2"
    assert line in result.out
    assert "row 1 +15******542 (United States):" in result.out
    summary = json.loads(next(project.root.rglob("*.summary.json")).read_text())
    assert summary["countries"] == {"US": 5, "IN": 4, "GB": 3, "CA": 2}


@pytest.mark.parametrize(
    ("headers", "first", "others", "country"),
    [
        (SHOP_HEADER, "Phone", ["Default Address Phone"], "Default Address Country Code"),
        (CRM_HEADER, "Phone Number", ["Mobile Phone Number"], "Country/Region"),
        (["Name", "Mobile No.", "City"], "Mobile No.", [], None),
    ],
)
def test_the_page_finds_every_phone_column_and_the_country_column(
    headers: list[str], first: str, others: list[str], country: str | None
) -> None:
    chosen = guess(["phone"], headers)["phone"]
    assert chosen == first
    assert phone_headers(headers, taken=[chosen]) == others
    assert country_header(headers) == country


def test_sync_sheet_finds_each_row_by_its_own_country_and_column(project: Project, cli) -> None:
    shop = write_shop(project.root / "data" / "shop.csv")
    with FakeTabblyThread(balance=1000, outcomes={"no_answer": 1.0}) as fake:
        _campaign(project, SHOP_CONTACTS, fake.url)
        env = {**KEY_ENV, LOGS_ENDPOINT_ENV: fake.logs_url}
        assert cli(["run", str(project.campaign), "--yes"], env=env).code == 1
        out = project.root / "shop-called.csv"

        result = cli(
            ["sync", str(project.campaign), "--sheet", str(shop), "--out", str(out)], env=env
        )

    assert result.code == 0, result.err
    with open(out, encoding="utf-8", newline="") as f:
        rows = {r["Customer ID"]: r for r in csv.DictReader(f)}
    for ident, true in expected(SHOP).items():
        assert rows[ident]["calls"] == ("1" if true else ""), (ident, rows[ident])


@pytest.mark.parametrize(
    "cell",
    [
        "(512) 553-9542",
        "(512)\u00a0553\u20139542",  # a non-breaking space and an en dash, from a web page
        "512\u200b-553-9542",  # a zero-width space
        "'512.553.9542",  # Excel's keep-as-text apostrophe
        "tel:512-553-9542",
    ],
)
def test_a_north_american_shape_is_never_read_as_another_countrys(cell: str) -> None:
    phone = normalise_phone(cell, "IN")
    assert phone.e164 is None and "North American" in phone.reason
    assert normalise_phone(cell, "US").e164 == "+15125539542"
    assert normalise_phone(cell, "CA").e164 == "+15125539542"
