"""What type a cell is for Excel: the one rule, both ways (SPEC 4.3b).

    excel_value("12.50", Kind.NUMBER), excel_value("00042", Kind.NUMBER)  # (12.5, '00042')
    excel_value("2026-12-06T20:15:00.123Z", Kind.UTC)
    # datetime.datetime(2026, 12, 6, 20, 15, 0, 123000)
    text_of(12.0), text_of(datetime.date(2024, 1, 5))  # ('12', '2024-01-05')

Every file dialer writes is made as CSV text first (a crash loses no row); an XLSX is made from
that text at the end. A column's `Kind` says how its text goes back to an Excel value: numbers,
dates and times become numbers and date-times so SUM and filters work, and anything that does
not read back exactly (a `+1 617...` phone, an id `00042`, a word) stays the text it was.
`column_kind` decides a user's column from the cells of their XLSX; `text_of` is the reverse,
a cell as the text a person typed, used by the sheet reader and by every reader of an XLSX.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from decimal import Decimal
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    """A column's type in an XLSX file dialer writes (its name is what a summary stores)."""

    TEXT = "text"
    NUMBER = "number"
    DATE = "date"
    DATETIME = "datetime"
    UTC = "utc"  # dialer's own `stamp()` times: shown as date-times, the header says "(UTC)"


_NAMES = frozenset(str(k) for k in Kind)
# Excel sheet names: at most 31 characters, none of these, not blank.
MAX_TAB_CHARS = 31
_TAB_FORBIDDEN = re.compile(r"[\[\]:*?/\\\x00-\x1f]")
UTC_SUFFIX = " (UTC)"
DATE_FORMAT = "yyyy-mm-dd"
DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
# What `text_of` (or `str` of a tiny cost, `1e-05`) writes for a number: no leading zero (but
# "0.5"), no "+". Text that is not this (`00042`, `+1 617 661 2270`) was never a number cell.
_NUMBER_TEXT = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:e[-+]?\d+)?")
# Beyond 15 significant digits Excel rounds a number: such "numbers" are ids, kept as text.
_MAX_DIGITS = 15


def tab_name(name: str, fallback: str = "report") -> str:
    """An Excel sheet name for `name`: forbidden characters dropped, cut to 31 characters,
    no apostrophe at either end, not `History` (Excel refuses those); `fallback` if nothing
    is left."""
    cleaned = _TAB_FORBIDDEN.sub("", name).strip()[:MAX_TAB_CHARS].strip().strip("'").strip()
    if cleaned.casefold() == "history":  # Excel keeps this name for itself
        cleaned = f"{cleaned} 1"
    return cleaned or fallback


# A source cell's type -> its kind; None is an empty cell (it fits any kind). A boolean, a time of
# day or a duration is text (not listed): its typed form helps nobody's SUM.
_TYPE_KINDS: dict[type, Kind | None] = {
    float: Kind.NUMBER,
    int: Kind.NUMBER,
    dt.datetime: Kind.DATETIME,
    dt.date: Kind.DATE,
    type(None): None,
}


def cell_kind(value: Any) -> Kind | None:
    """A source cell's kind (calamine's value); None for an empty cell."""
    if type(value) is str:
        return Kind.TEXT if value.strip() else None
    return _TYPE_KINDS.get(type(value), Kind.TEXT)


def cells_kind(cells: Sequence[Any]) -> Kind | None:
    """`cell_kind` of a run of one column's cells, merged: a set of types, not a call per cell
    (a million-row sheet is read in chunks, every column through here)."""
    types = set(map(type, cells))
    kinds = {_TYPE_KINDS.get(t, Kind.TEXT) for t in types if t is not str}
    if str in types and any(c.strip() for c in cells if type(c) is str):
        kinds.add(Kind.TEXT)
    found: Kind | None = None
    for kind in kinds:
        found = merge(found, kind)
    return found


def merge(a: Kind | None, b: Kind | None) -> Kind | None:
    """Two cells' kinds as one column's: a column is a number only if every filled cell is a
    number; dates and date-times together are date-times; anything else mixed is text."""
    if a is None or a == b:
        return b
    if b is None:
        return a
    if {a, b} == {Kind.DATE, Kind.DATETIME}:
        return Kind.DATETIME
    return Kind.TEXT


def column_kind(kinds: Iterable[Kind | None]) -> Kind:
    """The kind of a column from its cells' kinds; an empty column is text."""
    found: Kind | None = None
    for kind in kinds:
        found = merge(found, kind)
        if found is Kind.TEXT:
            break
    return found or Kind.TEXT


def phones_as_text(kinds: Sequence[Kind], phones: Iterable[int]) -> tuple[Kind, ...]:
    """`kinds` with the phone columns text: a phone typed as a number in Excel is still an
    identifier (written back as a number, Excel shows 9.17359E+11)."""
    texts = frozenset(phones)
    return tuple(Kind.TEXT if i in texts else k for i, k in enumerate(kinds))


def typed_columns(headers: Sequence[str], kinds: Sequence[Kind]) -> dict[str, str]:
    """The columns that are not text, by header (as the CSV report has it; an unnamed column
    is left out): what a summary keeps of a sheet's types."""
    return {h: str(k) for h, k in zip(headers, kinds, strict=False) if h and k is not Kind.TEXT}


def kinds_of(headers: Sequence[str], typed: Any) -> list[Kind]:
    """`typed_columns` read back (from a summary: anything unexpected is text)."""
    known = typed if isinstance(typed, dict) else {}
    return [Kind(known[h]) if known.get(h) in _NAMES else Kind.TEXT for h in headers]


def excel_value(text: str, kind: Kind) -> Any:
    """The value an XLSX cell gets for `text` in a `kind` column: None when empty, a number or
    a naive date-time when the text reads back exactly as one, else the text itself."""
    if not text:
        return None
    if kind is Kind.TEXT:
        return text
    if kind is Kind.NUMBER:
        if _NUMBER_TEXT.fullmatch(text) and len(text.replace("-", "").replace(".", "")) <= (
            _MAX_DIGITS
        ):
            return int(text) if text.lstrip("-").isdigit() else float(text)
        return text
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    if when.tzinfo is not None:  # Excel has no time zones: UTC it is, and the header says so
        when = when.astimezone(dt.UTC).replace(tzinfo=None)
    if kind is Kind.DATE and when.time() == dt.time():
        return when.date()
    return when


def number_format(kind: Kind) -> str | None:
    """How Excel shows a `kind` cell; None for its default."""
    if kind is Kind.DATE:
        return DATE_FORMAT
    if kind in (Kind.DATETIME, Kind.UTC):
        return DATETIME_FORMAT
    return None


def excel_header(name: str, kind: Kind) -> str:
    """A column's header in an XLSX: a UTC time says so (`started_at (UTC)`)."""
    return name + UTC_SUFFIX if kind is Kind.UTC else name


def plain_header(name: str) -> str:
    """`excel_header` undone: the column's name as a CSV has it."""
    return name.removesuffix(UTC_SUFFIX)


def text_of(value: Any) -> str:
    """A cell as the text a person typed: 917359043943.0 -> '917359043943', dates as ISO."""
    kind = type(value)
    if kind is str:
        return value
    if kind is float:
        if value.is_integer():
            return str(int(value))
        text = f"{value:.15g}"  # Excel keeps 15 significant digits; no binary-float noise
        return format(Decimal(text), "f") if "e" in text else text
    if kind is bool:
        return "TRUE" if value else "FALSE"
    if kind is int:
        return str(value)
    if kind is dt.datetime:
        if value.microsecond >= 500_000 and value < dt.datetime.max.replace(microsecond=0):
            value += dt.timedelta(microseconds=500_000)  # to the nearest second, as Excel shows it
        return value.replace(microsecond=0).isoformat(sep=" ")
    if kind is dt.date:
        return value.isoformat()
    if kind is dt.time:
        return value.isoformat(timespec="seconds")
    if kind is dt.timedelta:
        seconds = round(value.total_seconds())
        sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
        return f"{sign}{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    if value is None:
        return ""
    return str(value)


def written_text(value: Any, utc: bool = False) -> str:
    """A cell of an XLSX dialer wrote, as its CSV has it: a `utc` column's time as `stamp()`
    gives it, a date (openpyxl reads every date back as a midnight date-time) as a date."""
    if type(value) is dt.datetime:
        if utc:
            return value.isoformat(timespec="milliseconds") + "Z"
        if value.time() == dt.time():
            return value.date().isoformat()
    return text_of(value)
