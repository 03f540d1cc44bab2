"""Messy contact sheets with a fixed seed, cached in bench/data/ by (rows, seed).

Phones are unique Indian mobiles (a bijection of the row number) written the ways real sheets
write them; every 100th first name is empty, every 1000th number is too short, and every 1000th
row repeats the previous row's number. Rows 0-96 are all valid, so small pacing sheets send all.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

DATA = Path(__file__).parent / "data"
HEADER = [
    "Customer ID",
    "First Name",
    "Last Name",
    "Phone",
    "Order ID",
    "Order Date",
    "Email",
    "City",
]
FIRST = ["Aarav", "Priya", "Rohan", "Ananya", "Vikram", "Meera", "Arjun", "Kavya", "Ishaan", "Diya"]
LAST = ["Sharma", "Patel", "Iyer", "Reddy", "Gupta", "Nair", "Singh", "Das", "Menon", "Khan"]
CITIES = ["Mumbai", "Delhi", "Bengaluru", "Chennai", "Pune", "Kolkata", "Jaipur", "Kochi"]
# The ways a 10-digit mobile arrives from a spreadsheet, CRM export or hand entry.
STYLES = (
    lambda n: f"+91 {n[:5]} {n[5:]}",
    lambda n: f"91{n}",
    lambda n: f"0{n}",
    lambda n: f"{n[:3]}-{n[3:6]}-{n[6:]}",
    lambda n: f"0091{n}",
    lambda n: f"91{n}.0",
    lambda n: f"(+91) {n}",
    lambda n: n,
    lambda n: f"+91-{n[:4]}-{n[4:]}",
)


def mobile(i: int) -> str:
    """A unique mobile for row i: 7919 is prime to 3,999,999,999, so no two rows collide."""
    return str(6_000_000_000 + ((i + 1) * 7919) % 3_999_999_999)


def _rows(n: int, seed: int):
    rng = random.Random(seed)
    for i in range(n):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        number = mobile(i - 1 if i % 1000 == 997 else i)
        phone = number[:7] if i % 1000 == 998 else rng.choice(STYLES)(number)
        date = f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        email = f"{first.lower()}.{last.lower()}{i}@example.com"
        name = "" if i % 100 == 99 else first
        order, city = f"ORD-{100000 + i}", rng.choice(CITIES)
        yield i, [f"C{i:07d}", name, last, phone, order, date, email, city]


def csv_sheet(n: int, seed: int = 5) -> Path:
    """The cached n-row messy CSV, generated on first use."""
    path = DATA / f"contacts-{n}-s{seed}.csv"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with tmp.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(HEADER)
            writer.writerows(row for _, row in _rows(n, seed))
        tmp.replace(path)
    return path


def xlsx_sheet(n: int, seed: int = 5) -> Path:
    """The cached n-row XLSX; the phone is a numeric cell (91XXXXXXXXXX), as Excel stores it."""
    from openpyxl import Workbook

    path = DATA / f"contacts-{n}-s{seed}.xlsx"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        book = Workbook(write_only=True)
        sheet = book.create_sheet("contacts")
        sheet.append(HEADER)
        for i, row in _rows(n, seed):
            row[3] = int("91" + mobile(i))
            sheet.append(row)
        tmp = path.with_suffix(".tmp.xlsx")
        book.save(tmp)
        tmp.replace(path)
    return path
