"""Write contacts.csv, contacts.xlsx and dnc.csv: sample sheets with the damage real ones carry.

Run `python sample_data/make_samples.py`; the output is deterministic (no randomness, fixed zip
timestamps), so regenerating changes nothing unless this file changed.

Every valid number is checked with phonenumbers. Rows meant as problems (row = data row number):
  row 12  first name holds a zero-width space ("Ra\u200bhul")    -> cleaned to "Rahul"
  row 13  first name starts with a right-to-left override          -> cleaned to "Amit"
  row 14  empty First Name (the campaign template needs it)        -> invalid later (template)
  row 15  first name is a formula (=HYPERLINK...)                  -> must stay text in the report
  rows 9, 10, 35  non-ASCII names: José, Zoë, अनन्या
  row 17  9.16946E+11, truncated by scientific notation            -> invalid phone
  row 18  phone holds an invisible left-to-right mark (web copy)  -> valid, reported as changed
  row 19  98450, too short                                          -> invalid phone
  row 20  entirely empty line (ignored, numbering kept)
  row 23  "call me after 6pm", letters                              -> invalid phone
  row 26  empty phone                                               -> invalid phone
  row 28  919873000000, a round trip left trailing zeros            -> invalid phone
  row 30  "+91 98450-12345", row 2's number written differently     -> duplicate
  row 34  entirely empty line (ignored, numbering kept)
  row 39  9.18765E+11, truncated by scientific notation            -> invalid phone
  row 42  "07359043943", row 1's number written differently         -> duplicate
Rows 6 (Meera) and 24 (Sarah) are on dnc.csv, written differently there -> suppressed.
Valid numbers come in varied dress: +91/0091/0 prefixes, spaces, dots, dashes, brackets, tel:,
a leading apostrophe, NBSPs, a float (918123456789.0) and an exact 9.18310456721E+11.
In the XLSX, phones that are plain numbers are numeric cells and Order Date is a date cell; a
second sheet "Notes" makes "the first sheet" matter.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zipfile
from pathlib import Path

import openpyxl
import phonenumbers

HERE = Path(__file__).resolve().parent
HEADER = [
    "Customer ID", "First Name", "Last Name", "Phone", "Order ID", "Order Date", "Email", "tz"
]  # fmt: skip
IN, NY, LA, UK = "Asia/Kolkata", "America/New_York", "America/Los_Angeles", "Europe/London"
FIXED_TIME = (2024, 1, 1, 0, 0, 0)
BLANK = None  # an entirely empty line

# (first name, last name, phone as written, the E.164 it means or None when invalid, tz)
CONTACTS: list[tuple[str, str, str, str | None, str] | None] = [
    ("Aarav", "Sharma", "+91 73590 43943", "+917359043943", IN),
    ("Priya", "Patel", "9845012345", "+919845012345", IN),
    ("Rohan", "Gupta", "0091 99000 12345", "+919900012345", IN),
    ("Ananya", "Iyer", "(+91) 98123-45678", "+919812345678", IN),
    ("Vikram", "Singh", "tel:+91-9876543210", "+919876543210", ""),
    ("Meera", "Nair", "'+91 98201 12345", "+919820112345", IN),
    ("Arjun", "Reddy", "+91\u00a070123\u00a045678", "+917012345678", IN),
    ("Kavya", "Menon", "918123456789.0", "+918123456789", IN),
    ("José", "Fernandes", "+91 70456 12398", "+917045612398", IN),
    ("Zoë", "Thomas", "+44 7400 123456", "+447400123456", UK),
    ("Emily", "Carter", "+1 (415) 555-0132", "+14155550132", LA),
    ("Ra\u200bhul", "Verma", "09123456780", "+919123456780", IN),
    ("\u202eAmit", "Joshi", "+91.63541.23987", "+916354123987", IN),
    ("", "Kumar", "+918867452310", "+918867452310", IN),
    ('=HYPERLINK("http://example.com","Sneha")', "Rao", "+91 97400 12876", "+919740012876", IN),
    ("Michael", "Brown", "+1 212-555-0147", "+12125550147", NY),
    ("Deepak", "Mishra", "9.16946E+11", None, IN),
    ("Pooja", "Desai", "+91 77956\u200e 34120", "+917795634120", IN),
    ("Sanjay", "Kapoor", "98450", None, IN),
    BLANK,
    ("Neha", "Bansal", "91 9560078123", "+919560078123", IN),
    ("Aditya", "Chauhan", "+91 80954 12367", "+918095412367", IN),
    ("Ishita", "Banerjee", "call me after 6pm", None, IN),
    ("Sarah", "Johnson", "+1 310 555 0178", "+13105550178", LA),
    ("Karan", "Malhotra", "+91-62821-45390", "+916282145390", IN),
    ("Nikhil", "Jain", "", None, IN),
    ("Divya", "Pillai", "+91 90034 12876", "+919003412876", IN),
    ("Rakesh", "Yadav", "919873000000", None, IN),
    ("Aisha", "Khan", "+91 74112 56893", "+917411256893", IN),
    ("Priya", "Patel", "+91 98450-12345", "+919845012345", IN),
    ("Oliver", "Smith", "+44 (0)7555 123456", "+447555123456", UK),
    ("Tanvi", "Kulkarni", "9.18310456721E+11", "+918310456721", IN),
    ("Suresh", "Pillai", "+91 99456 78012", "+919945678012", IN),
    BLANK,
    ("अनन्या", "Mehta", "+91 63609 87412", "+916360987412", IN),
    ("Gaurav", "Saxena", "+917204563198", "+917204563198", IN),
    ("Lakshmi", "Krishnan", "+91 98865 43201", "+919886543201", IN),
    ("David", "Wilson", "+1 617 555 0119", "+16175550119", NY),
    ("Harsh", "Vardhan", "9.18765E+11", None, IN),
    ("Sunita", "Agarwal", "+91 89712 36540", "+918971236540", IN),
    ("Manish", "Tiwari", "+91 97312 45670", "+919731245670", IN),
    ("Aarav", "Sharma", "07359043943", "+917359043943", IN),
    ("Ritu", "Sinha", "+91 63014 78523", "+916301478523", IN),
    ("Yash", "Thakur", "+91 78296 31450", "+917829631450", IN),
    ("Shreya", "Ghosh", "+91 94498 76123", "+919449876123", IN),
    ("James", "Taylor", "+44 7840 123456", "+447840123456", UK),
    ("Farhan", "Qureshi", "+91 80501 23987", "+918050123987", IN),
    ("Nisha", "Chopra", "+91 95912 34876", "+919591234876", IN),
    ("Abhishek", "Pandey", "+91 76765 43219", "+917676543219", IN),
    ("Swati", "Bhatt", "+91 60051 23478", "+916005123478", IN),
    ("Rajesh", "Nair", "+91 91673 45289", "+919167345289", IN),
    ("Anjali", "Mehra", "+91 84540 93127", "+918454093127", IN),
    ("Varun", "Dhawan", "+91 78781 23456", "+917878123456", IN),
    ("Kriti", "Saini", "+91 98111 22334", "+919811122334", IN),
    ("Mohit", "Arora", "+91 99110 23456", "+919911023456", IN),
    ("Emma", "Davies", "+44 7723 456789", "+447723456789", UK),
    ("Rohit", "Bhatia", "+91 98765 12340", "+919876512340", IN),
    ("Sneha", "Iyer", "+91 70221 33445", "+917022133445", IN),
    ("Chris", "Miller", "+1 (212) 555-0163", "+12125550163", NY),
    ("Pallavi", "Joshi", "+91 99887 76655", "+919988776655", IN),
    ("Tarun", "Goel", "+91 93456 78901", "+919345678901", IN),
    ("Amit", "Saxena", "+91 81234 50987", "+918123450987", IN),
]
# Two of these are in CONTACTS written differently (Meera, Sarah); the third is nobody's.
DNC = ["0091-9820112345", "+1 310-555-0178", "+918888812345"]
DNC_E164 = ["+919820112345", "+13105550178", "+918888812345"]


def rows() -> list[list[str] | None]:
    """CONTACTS as sheet rows (None = empty line), checking every number means what it says."""
    out: list[list[str] | None] = []
    number = 0
    for contact in CONTACTS:
        number += 1
        if contact is None:
            out.append(None)
            continue
        first, last, phone, e164, tz = contact
        if e164 is not None:
            assert phonenumbers.is_valid_number(phonenumbers.parse(e164)), (number, e164)
        order_date = dt.date(2024, 3, 1) + dt.timedelta(days=number % 28)
        cid = f"{100 + number:05d}"  # leading zeros that must survive
        out.append(
            [cid, first, last, phone, f"ORD-{24000 + 7 * number}", order_date.isoformat(),
             f"customer{cid}@example.com", tz]
        )  # fmt: skip
    for e164 in DNC_E164:
        assert phonenumbers.is_valid_number(phonenumbers.parse(e164)), e164
    return out


def write_csv(path: Path, header: list[str], body: list[list[str] | None]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in body:
        writer.writerow(row or [])
    path.write_text(buffer.getvalue(), encoding="utf-8", newline="")


def numeric(phone: str) -> str | int | float:
    """A phone that Excel would have read as a number becomes a numeric cell."""
    if re.fullmatch(r"[1-9]\d*", phone):
        return int(phone)
    if re.fullmatch(r"[1-9][\d.]*(E\+\d+)?", phone):
        return float(phone)
    return phone


def write_xlsx(path: Path, body: list[list[str] | None]) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Contacts"
    sheet.append(HEADER)
    for row in body:
        if row is None:
            sheet.append([])
            continue
        cid, first, last, phone, order_id, order_date, email, tz = row
        date = dt.date.fromisoformat(order_date)
        sheet.append([cid, first, last, numeric(phone), order_id, date, email, tz])
        for cell in sheet[sheet.max_row]:
            if isinstance(cell.value, str) and cell.value.startswith("="):
                cell.data_type = "s"  # text that looks like a formula, as a CRM export holds it
        sheet.cell(sheet.max_row, 6).number_format = "yyyy-mm-dd"
        sheet.cell(sheet.max_row, 4).number_format = "0"
    notes = workbook.create_sheet("Notes")
    notes.append(["Sample contacts for the dialer; the first sheet is the contact list."])
    notes.append(["Generated by sample_data/make_samples.py; edit that file, not this one."])
    workbook.properties.created = dt.datetime(*FIXED_TIME)
    buffer = io.BytesIO()
    workbook.save(buffer)
    _fix_zip_times(buffer.getvalue(), path)


def _fix_zip_times(data: bytes, path: Path) -> None:
    """Rewrite the zip with fixed timestamps so the file is byte-for-byte reproducible."""
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            content = src.read(info.filename)
            if info.filename == "docProps/core.xml":  # openpyxl stamps "modified" at save time
                content = re.sub(
                    rb"(<dcterms:modified[^>]*>)[^<]*", rb"\g<1>2024-01-01T00:00:00Z", content
                )
            fixed = zipfile.ZipInfo(info.filename, date_time=FIXED_TIME)
            fixed.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(fixed, content)


def main() -> None:
    body = rows()
    write_csv(HERE / "contacts.csv", HEADER, body)
    write_xlsx(HERE / "contacts.xlsx", body)
    write_csv(HERE / "dnc.csv", ["phone"], [[p] for p in DNC])


if __name__ == "__main__":
    main()
