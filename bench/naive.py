"""The naive validation baseline: one process, the obvious calls, nothing clever.

python -m bench.naive SHEET.csv OUT.csv
"""

from __future__ import annotations

import csv
import sys

import pandas as pd
import phonenumbers
from jinja2 import Environment, StrictUndefined, UndefinedError

from bench.measure import FIRST_LINE, INSTRUCTION


def naive(sheet: str, out: str) -> None:
    frame = pd.read_csv(sheet, dtype=str, keep_default_na=False)
    columns = [c.strip().lower().replace(" ", "_") for c in frame.columns]
    env = Environment(undefined=StrictUndefined)
    first_line, instruction = env.from_string(FIRST_LINE), env.from_string(INSTRUCTION)
    results = []
    for values in frame.itertuples(index=False, name=None):
        row = dict(zip(columns, values, strict=True))
        try:
            number = phonenumbers.parse(row["phone"], "IN")
            valid = phonenumbers.is_valid_number(number)
            e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        except phonenumbers.NumberParseException:
            valid, e164 = False, ""
        try:
            rendered = [first_line.render(row), instruction.render(row)]
        except UndefinedError:
            rendered = ["", ""]
        results.append([row["customer_id"], e164, "ready" if valid else "invalid", *rendered])
    with open(out, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(results)


if __name__ == "__main__":
    naive(sys.argv[1], sys.argv[2])
