"""Phone masking for console and log lines: `+917359043943` -> `+91******943` (SPEC 7).

The report keeps numbers whole (the user acts on it); nothing else that a terminal, a log
file or a cron mail shows ever does.
"""

from __future__ import annotations

import re

_NUMBER = re.compile(r"\+?\d[\d\s().-]{6,}\d")


def mask_phone(number: str) -> str:
    digits = number.strip()
    if len(digits) <= 6:
        return "*" * len(digits)
    keep_head = 3 if digits.startswith("+") else 2
    return digits[:keep_head] + "*" * (len(digits) - keep_head - 3) + digits[-3:]


def mask_text(text: str) -> str:
    """Mask every phone-like run of digits in free text (reasons, messages)."""
    return _NUMBER.sub(lambda m: mask_phone(m.group(0)), text)
