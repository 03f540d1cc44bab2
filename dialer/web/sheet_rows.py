"""A sheet's row as the page shows it: numbered as the spreadsheet numbers it (the header is
row 1), its "duplicate of row N" too. The check page and the live preview (a child process)
both number rows so, from the reader's data-row numbers.

    excel_row({"row": 3, "reason": "duplicate of row 1"}, offset=1)
    # {"row": 4, "reason": "duplicate of row 2"}
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

_DUPLICATE_OF = re.compile(r"\bduplicate of row (\d+)")


def excel_row(row: dict[str, Any], offset: int) -> dict[str, Any]:
    """A copy of `row` with its number (and any row its reason names) moved by `offset`, the
    spreadsheet row of the header."""
    shown = dict(row)
    with contextlib.suppress(KeyError, TypeError, ValueError):
        shown["row"] = int(row["row"]) + offset
    if isinstance(shown.get("reason"), str):
        shown["reason"] = _DUPLICATE_OF.sub(
            lambda m: f"duplicate of row {int(m.group(1)) + offset}", shown["reason"]
        )
    return shown
