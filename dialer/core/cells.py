"""The text of one cell as every reader of a sheet or a campaign file sees it: invisible
characters dropped, odd spaces folded, and a header's name normalised, so a column named in a
campaign file and the same column in a sheet are one name.

    clean_cell("Asha\u200b\t")          # 'Asha'
    normalise_header("First Name ")      # 'first_name'
"""

from __future__ import annotations

import re

from dialer.core.console import BIDI_CONTROLS

_ZERO_WIDTH = "\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad\u180e"
# Blank-looking letters and joiners (Hangul fillers, braille blank, grapheme joiner): they
# make an empty name look filled in ("Hello ㅤ,").
_BLANK_LOOKING = "\u115f\u1160\u3164\uffa0\u2800\u034f"
_CONTROL_WHITESPACE = "\t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\u2028\u2029"
# Characters a reader cannot see: C0/C1 controls, zero-width and bidi controls, and Unicode tag
# characters (U+E0000..U+E007F, used to smuggle invisible text into AI prompts).
INVISIBLE_CHARS = (
    "".join(chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)] if chr(c) not in _CONTROL_WHITESPACE)
    + _ZERO_WIDTH
    + _BLANK_LOOKING
    + BIDI_CONTROLS
    + "".join(chr(c) for c in range(0xE0000, 0xE0080))
)
_DROP_INVISIBLE = str.maketrans("", "", INVISIBLE_CHARS)
# Any run of whitespace holding a tab, newline or non-breaking/odd space becomes one space.
_ODD_SPACE_RUN = re.compile(r"\s*[^\S ]\s*")
_NOT_ALNUM_RUN = re.compile(r"[\W_]+")


def normalise_header(name: str) -> str:
    """'First Name ' -> 'first_name', 'Order-ID' -> 'order_id' (SPEC 4.2)."""
    return _NOT_ALNUM_RUN.sub("_", clean_cell(name).lower()).strip("_")


def clean_cell(value: str) -> str:
    """Drop invisible characters, turn tabs/newlines/NBSP runs into one space, strip the ends."""
    if value.isascii() and value.isprintable():
        return value.strip()
    return _ODD_SPACE_RUN.sub(" ", value.translate(_DROP_INVISIBLE)).strip()
