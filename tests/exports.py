"""Sheets as shops and CRMs export them: mixed countries, numbers written as each country writes
them, two phone columns, a country column; each row with the one number it truly means.

`TRUE` is what a careful person reading the row would dial (None: nobody can tell, so nobody
may be called). A test holds every ready row to it: a number from the wrong country is a
stranger's.
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import openpyxl


@dataclass(frozen=True)
class Row:
    ident: str
    first: str
    country: str  # as the export writes it ("" when the shop never asked)
    phone: str | int  # the first phone column ("Phone" / "Phone Number"); int: a numeric cell
    other: str | int  # the second ("Default Address Phone" / "Mobile Phone Number")
    true: str | None  # the E.164 the row means; None: it must not be called
    why: str = ""  # for a row that must not be called: a word its reason contains


# Shopify's customer export: "Phone" is often empty, the number is in the address.
SHOP_HEADER = [
    "Customer ID", "First Name", "Last Name", "Email", "Accepts Email Marketing",
    "Default Address Company", "Default Address Address1", "Default Address City",
    "Default Address Province Code", "Default Address Country Code", "Default Address Zip",
    "Default Address Phone", "Phone", "Total Spent", "Total Orders", "Tags",
]  # fmt: skip
SHOP = [
    Row("7001", "Olivia", "US", "(512) 553-9542", "", "+15125539542"),
    Row("7002", "Liam", "US", "", "617.661.2270", "+16176612270"),
    Row("7003", "Emma", "CA", "(416) 555-0199", "", "+14165550199"),
    Row("7004", "Noah", "CA", "", "604-555-0172", "+16045550172"),
    Row("7005", "Amelia", "GB", "07400 123456", "", "+447400123456"),
    Row("7006", "Oliver", "GB", "", "020 7946 0958", "+442079460958"),
    Row("7007", "Aarav", "IN", "098450 12345", "", "+919845012345"),
    Row("7008", "Diya", "IN", "", "73590 43943", "+917359043943"),
    Row("7009", "Mia", "US", "'+1 213-481-5523", "", "+12134815523"),
    Row("7010", "Ava", "IN", "+1 (206) 555-0134", "", "+12065550134"),  # own prefix wins
    Row("7011", "Lucas", "", "(972) 555-0187", "", None, "North American"),  # no country
    Row("7012", "Ishaan", "", "98200 12345", "", "+919820012345"),  # default_region IN
    Row("7013", "Sophia", "US", "", "", None, "empty"),
    Row("7014", "Ethan", "Narnia", "(312) 555-7781", "", None, "Narnia"),
    Row("7015", "Zara", "GB", "07400 654321", "07400 111222", "+447400654321"),  # two numbers
    Row("7016", "Kabir", "IN", "12", "81234 56789", "+918123456789"),  # first is junk
    Row("7017", "Harper", "US", "", "(415) 680-1215", "+14156801215"),
]
# HubSpot's contact export: a country name, numbers as numeric cells, dates, a pivot tab.
CRM_HEADER = [
    "Record ID", "First Name", "Last Name", "Phone Number", "Mobile Phone Number",
    "Country/Region", "Create Date", "Last Order Amount",
]  # fmt: skip
CRM = [
    Row("301", "Jack", "United States", "(646) 555-0143", "", "+16465550143"),
    Row("302", "Chloe", "Canada", "", 4165550199, "+14165550199"),
    Row("303", "Harry", "United Kingdom", "", "07400 123457", "+447400123457"),
    Row("304", "Ananya", "India", 919845012346, "", "+919845012346"),
    Row("305", "Grace", "UK", "0161 496 0754", "", "+441614960754"),
    Row("306", "Rohan", "+91", "", "73590 43944", "+917359043944"),
    Row("307", "Ella", "1", "312.555.7781", "", "+13125557781"),
    Row("308", "Arjun", "", "617-661-2271", "", None, "North American"),
    Row("309", "Leo", "United States", "", "", None, "empty"),
    Row("310", "Saanvi", "Bharat", "", "98200 12346", "+919820012346"),
]
FIRST_NAMES = {r.ident: r.first for r in (*SHOP, *CRM)}


def write_shop(path: Path, rows: list[Row] = SHOP) -> Path:
    """The shop's CSV; every other column filled as a shop fills it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(SHOP_HEADER)
        for i, r in enumerate(rows):
            writer.writerow(
                [
                    r.ident, r.first, "Smith", f"{r.first.lower()}@example.com", "yes", "",
                    f"{i + 1} Main St", "Springfield", "", r.country, "01234", r.other, r.phone,
                    f"{100 + i * 7.5:.2f}", str(i % 4 + 1), "vip" if i % 3 == 0 else "",
                ]
            )  # fmt: skip
    return path


def write_crm(path: Path, rows: list[Row] = CRM) -> Path:
    """The CRM's workbook: ids, numbers and amounts as numeric cells, dates as dates, and a
    second tab ("Pivot") after the contacts."""
    path.parent.mkdir(parents=True, exist_ok=True)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Contacts"
    sheet.append(CRM_HEADER)
    for i, r in enumerate(rows):
        created = dt.datetime(2026, 3, 1 + i, 9, 30)
        cells = [int(r.ident), r.first, "Doe", r.phone or None, r.other or None]
        sheet.append([*cells, r.country or None, created, 49.5 + i])
    pivot = book.create_sheet("Pivot")
    pivot.append(["Country/Region", "Count"])
    pivot.append(["United States", 3])
    book.save(path)
    return path


def expected(rows: list[Row]) -> dict[str, str | None]:
    return {r.ident: r.true for r in rows}
