"""Phone masking for console and log lines: `+917359043943` -> `+91******943` (SPEC 7).

The report keeps numbers whole (the user acts on it); nothing else that a terminal, a log
file or a cron mail shows ever does.
"""

from __future__ import annotations

import re

# Digits with what people and spreadsheets put between them: spaces of every kind, brackets,
# dots, slashes, underscores (a normalised header) and every dash (hyphen, en, em, figure, minus).
_NUMBER = re.compile(r"\+?\d[\d\s()./_\-\u2010-\u2015\u2212\ufe63\uff0d]{6,}\d")
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
