"""Phone masking for console and log lines: `+917359043943` -> `+91******943` (SPEC 7).

The report keeps numbers whole (the user acts on it); nothing else that a terminal, a log
file or a cron mail shows ever does.
"""

from __future__ import annotations

import re

from dialer.core.cells import INVISIBLE_CHARS

# What people and spreadsheets put between a number's digits: spaces of every kind, dots,
# dashes, brackets, slashes. `phones` drops these when it reads a number, so masking must see
# through every one of them too: a number the parser accepts is never shown whole.
PHONE_SEPARATORS = (
    " \t\n\r\x0b\x0c\x85\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
    ".-()[]/\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u30fc\uff0d"
)
# Digits with those between them, plus underscores (a normalised header), any other space, the
# small hyphen-minus, and the invisible characters every cell is cleaned of (a zero-width space
# or a bidi mark pasted inside a number: the parser drops them and calls it).
_NUMBER = re.compile(
    r"\+?\d[\d\s_\ufe63" + re.escape(PHONE_SEPARATORS + INVISIBLE_CHARS) + r"]{6,}\d"
)
# Fewer digits than this is a date, an order number or an amount, not a phone number.
_MIN_PHONE_DIGITS = 9


def mask_phone(number: str) -> str:
    digits = number.strip()
    if len(digits) <= 6:
        return "*" * len(digits)
    keep_head = 3 if digits.startswith("+") else 2
    return digits[:keep_head] + "*" * (len(digits) - keep_head - 3) + digits[-3:]


def mask_text(text: str) -> str:
    """Mask every phone-like run of digits in free text (reasons, messages)."""
    return _NUMBER.sub(_mask_match, text)


def _mask_match(match: re.Match[str]) -> str:
    found = match.group(0)
    if sum(c.isdigit() for c in found) < _MIN_PHONE_DIGITS:
        return found
    return mask_phone(found)
