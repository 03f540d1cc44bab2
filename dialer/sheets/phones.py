"""Raw sheet cell -> E.164 phone number, or the reason it cannot be called (SPEC 4.3).

    normalise_phone("'+91 73590-43943", "IN")
    # Phone(e164='+917359043943', reason='', changed=False)
    normalise_phone("9.16946E+11", "IN").reason
    # 'invalid phone: truncated by scientific notation (9.16946E+11)'

Spreadsheets damage numbers in known ways: separators and non-breaking spaces, a leading
apostrophe or `="..."` (Excel's keep-as-text tricks), `tel:` and `00` prefixes, floats
(`917359043943.0`) and scientific notation. What can be undone exactly is undone; a number that
scientific notation has already truncated (`9.16946E+11`, `916946000000` after a round trip, or a
numeric XLSX cell `7834410000` from Excel's General format) is refused, never guessed. Numbers
without a `+`/`00` prefix use `default_region`; without one they are refused too, and so is a
number written the way the +1 plan writes it (`(512) 553-9542`) read with any other region: as
that region's it is a valid number of a stranger.

Digits of other scripts (Arabic-Indic, Devanagari, full-width...) are read as 0-9 when a number
is written in one script only, and the row says so (`note`); a number mixing scripts, or starting
with a minus sign (a negative number, not a phone), is refused. A pure module-level function, so
a multiprocessing worker can run it.

The cleaned number (`+` and digits, or digits and the default region) is first offered to
`phones_fast`, which answers for valid numbers of the common shapes from phonenumbers' own
metadata; everything else, and every invalid number with its reason, is phonenumbers' answer.
"""

from __future__ import annotations

import re
import unicodedata
from typing import NamedTuple

import phonenumbers
from phonenumbers import NumberParseException, ValidationResult

from dialer.core.cells import INVISIBLE_CHARS
from dialer.core.masking import PHONE_SEPARATORS
from dialer.sheets.countries import NANP_REGIONS, NANP_SHAPE_REASON, looks_north_american
from dialer.sheets.phones_fast import fast_parse, is_valid
from dialer.sheets.reader import NumericText

INVALID = "invalid phone: "
LOST_DIGITS = INVALID + "digits lost to scientific notation (trailing zeros)"
CLEANED_NOTE = "phone cleaned of invisible characters"
NANP_SHAPE = INVALID + NANP_SHAPE_REASON
# A run this long of trailing zeros in a bare number is what scientific notation leaves behind.
TRUNCATED_ZEROS = 5
# Excel's General format keeps six significant digits: in a numeric cell, at most this many
# digits followed by at least GENERAL_ZEROS zeros are a truncated number (SPEC 4.3).
GENERAL_DIGITS = 6
GENERAL_ZEROS = 4
_MINUS_SIGNS = "-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff0d"

_DROP_INVISIBLE = str.maketrans("", "", INVISIBLE_CHARS)
# Dashes other than "-" (what a word processor or a web page puts between digits), as "-".
_ASCII_DASHES = str.maketrans(
    dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\uff0d", "-")
)
# What people and spreadsheets put between digits (one list, shared with masking).
_SEPARATORS = PHONE_SEPARATORS
_DROP_SEPARATORS = str.maketrans("", "", _SEPARATORS)
# The same for ASCII text, as bytes.translate takes it: several times quicker than str's.
_ASCII_SEPARATORS = "".join(c for c in _SEPARATORS if c.isascii()).encode("ascii")
_PLUS_SIGNS = str.maketrans({"\uff0b": "+"})
_SCIENTIFIC = re.compile(r"\+?(\d+)(?:[.,](\d*))?[eE]\+?(\d{1,3})")
_FLOAT = re.compile(r"(\+?\d+)[.,]0+")
_EXTENSION = re.compile(r"\+?\d+(?:;ext=|extension|ext|x|#)(\d{1,10})", re.IGNORECASE)
_LETTER = re.compile(r"[^\W\d_]")

_POSSIBLE_REASONS = {
    ValidationResult.INVALID_COUNTRY_CODE: "invalid country code",
    ValidationResult.TOO_SHORT: "too short",
    ValidationResult.TOO_LONG: "too long",
    ValidationResult.INVALID_LENGTH: "invalid length",
}
_PARSE_REASONS = {
    NumberParseException.INVALID_COUNTRY_CODE: "invalid country code",
    NumberParseException.NOT_A_NUMBER: "not a number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
    NumberParseException.TOO_SHORT_NSN: "too short",
    NumberParseException.TOO_LONG: "too long",
}


class Phone(NamedTuple):
    """A normalised number (`e164`) or why not (`reason`, starting "invalid phone: ").

    `changed` is True when invisible characters (controls, zero-width, bidi) were removed from
    the raw cell; `note` says every such change (and digits read from another script), for the
    report: a silently altered number is never called (SPEC 7). A NamedTuple: a million rows
    build a million of them, and a tuple is built more cheaply than a frozen dataclass.
    """

    e164: str | None
    reason: str
    changed: bool
    note: str = ""

    @property
    def valid(self) -> bool:
        return self.e164 is not None


def normalise_phone(raw: str, default_region: str | None, *, fast: bool = True) -> Phone:
    """Normalise one cell; `default_region` (ISO code) applies to numbers without `+`/`00`.

    `fast=False` asks phonenumbers itself for every number: the reference that
    tests/test_phones_fast.py holds the fast path to."""
    text, changed = raw, False
    if not (text.isascii() and text.isprintable()):
        visible = text.translate(_DROP_INVISIBLE)
        changed = len(visible) != len(text)
        text = visible
    text = _unwrap(text)
    if not text:
        return Phone(None, INVALID + "empty", changed)
    if (
        ("-" in text or "." in text or "(" in text or not text.isascii())
        and default_region is not None
        and default_region.upper() not in NANP_REGIONS
        and looks_north_american(text.translate(_ASCII_DASHES))
    ):
        # Read as this region's, it is a valid number of a stranger (SPEC 4.3a).
        return Phone(None, NANP_SHAPE, changed)
    if text[0] in _MINUS_SIGNS and any(c.isdecimal() for c in text):
        return Phone(None, INVALID + "starts with a minus sign (a negative number)", changed)
    numeric_cell = isinstance(raw, NumericText)

    # A bare number is what a numeric spreadsheet cell turns into; only those get the
    # trailing-zeros check (a typed "+91 69460 00000" is taken at its word). The `in` tests
    # only spare most cells the two regular expressions.
    numeric = False
    if ("e" in text or "E" in text) and (match := _SCIENTIFIC.fullmatch(text)):
        expanded, problem = _expand_scientific(*match.groups())
        if expanded is None:
            return Phone(None, f"{INVALID}{problem} ({text})", changed)
        text, numeric = expanded, True
    elif ("." in text or "," in text) and (match := _FLOAT.fullmatch(text)):
        text = match[1]
        numeric = text[0] not in "+0"
    else:
        numeric = text[0] in "123456789" and text.isascii() and text.isdigit()

    if numeric:
        compact = text
    elif text.isascii():
        compact = text.encode("ascii").translate(None, _ASCII_SEPARATORS).decode("ascii")
    else:
        compact = text.translate(_DROP_SEPARATORS)
    note = CLEANED_NOTE if changed else ""
    if not compact.isascii():
        compact, script = _ascii_digits(compact)
        if script is None:
            return Phone(None, INVALID + "mixes digits of different scripts", changed)
        if script:
            note = "; ".join(filter(None, (note, f"phone digits read from {script} as 0-9")))
    # `\+?\d+`: decimal digits of any script, after one optional "+".
    if not (compact.isdecimal() or (compact[:1] == "+" and compact[1:].isdecimal())):
        return Phone(None, INVALID + _junk_reason(compact), changed)
    if numeric_cell:
        significant = compact.rstrip("0")
        lost = len(compact) - len(significant)
        if lost >= GENERAL_ZEROS and len(significant) <= GENERAL_DIGITS:
            return Phone(None, LOST_DIGITS, changed)
    if compact.startswith("00"):
        compact = "+" + compact[2:]

    region = None
    if not compact.startswith("+"):
        if not default_region:
            return Phone(None, INVALID + "no country code (+..) and no default_region", changed)
        region = default_region.upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            return Phone(None, f"{INVALID}unknown default_region '{default_region}'", changed)
    parsed = fast_parse(compact, region) if fast else None
    if parsed is not None and is_valid(*parsed):
        # A valid number of a common shape, told without phonenumbers.parse.
        code, national = parsed
        if not (numeric and national.endswith("0" * TRUNCATED_ZEROS)):
            return Phone(f"+{code}{national}", "", changed, note)
    try:
        number = phonenumbers.parse(compact, region)
    except NumberParseException as exc:
        return Phone(None, INVALID + _PARSE_REASONS.get(exc.error_type, "cannot parse"), changed)

    national = phonenumbers.national_significant_number(number)
    if numeric and national.endswith("0" * TRUNCATED_ZEROS):
        return Phone(None, LOST_DIGITS, changed)
    if _is_valid(number, national) if fast else phonenumbers.is_valid_number(number):
        # E.164 is "+", country code, national significant number: what format_number builds.
        return Phone(f"+{number.country_code}{national}", "", changed, note)
    # Only an invalid number pays for finding out why (a million rows are mostly valid).
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible in _POSSIBLE_REASONS:
        return Phone(None, INVALID + _POSSIBLE_REASONS[possible], changed)
    country = number.country_code
    where = phonenumbers.region_code_for_country_code(country)
    return Phone(None, f"{INVALID}not a valid number for {where} (+{country})", changed)


def _is_valid(number: phonenumbers.PhoneNumber, national: str) -> bool:
    """`phonenumbers.is_valid_number` from the same patterns, compiled once per region."""
    valid = is_valid(number.country_code, national)
    return phonenumbers.is_valid_number(number) if valid is None else valid


def _unwrap(text: str) -> str:
    """Strip the ends, Excel's text markers (`'`, `="..."`) and a `tel:` prefix."""
    text = text.strip()
    if text.startswith("'"):
        text = text.lstrip("'").strip()
    if text.startswith('="') and text.endswith('"') and len(text) >= 3:
        text = text[2:-1].strip()
    if text[:4].lower() == "tel:":
        text = text[4:].strip()
    return text


def _expand_scientific(
    whole: str, fraction: str | None, exponent: str
) -> tuple[str, str] | tuple[None, str]:
    """'9.17359043943E+11' -> ('917359043943', ''); (None, why) when it cannot be undone.

    The digits are never padded with zeros: a mantissa too short for its exponent is exactly
    what Excel shows after throwing the last digits away.
    """
    fraction = fraction or ""
    digits, padding = whole + fraction, int(exponent) - len(fraction)
    if padding > 0:
        return None, "truncated by scientific notation"
    if padding < 0:
        # More mantissa digits than the exponent shifts: only zeros may follow the point.
        digits, tail = digits[:padding], digits[padding:]
        if tail.strip("0"):
            return None, "not a whole number"
    return digits.lstrip("0") or "0", ""


def _ascii_digits(text: str) -> tuple[str, str | None]:
    """Other scripts' digits (Arabic-Indic, Devanagari, fullwidth) -> ASCII digits, and the
    script's name ("" when there were none, None when scripts are mixed)."""
    text = text.translate(_PLUS_SIGNS)
    zeros = {ord(c) - unicodedata.decimal(c) for c in text if c.isdecimal()}
    if len(zeros) > 1:
        return text, None
    if not zeros or zeros == {ord("0")}:
        return text, ""
    name = unicodedata.name(chr(zeros.pop()), "other script").removesuffix(" DIGIT ZERO")
    digits = "".join(str(unicodedata.decimal(c)) if c.isdecimal() else c for c in text)
    return digits, name.title().replace("Fullwidth", "full-width")


def _junk_reason(compact: str) -> str:
    if match := _EXTENSION.fullmatch(compact):
        return f"has an extension ({match[1]}); a call cannot dial an extension"
    if _LETTER.search(compact):
        return "contains letters"
    odd = "".join(dict.fromkeys(c for c in compact.removeprefix("+") if not c.isdigit()))
    return f"unexpected characters ({odd})"
