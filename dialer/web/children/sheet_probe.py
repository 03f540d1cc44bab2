"""What the column page needs to know of an upload: its tabs, the chosen tab's headers as
written, and a few example cells of each column.

    $ python -m dialer.web.children.sheet_probe uploads/3f....xlsx "Contacts"
    {"tabs": ["Contacts", "Notes"], "tab": "Contacts", "headers": [...], "examples": [...]}

Run by the page as a child process with the same memory cap as a check
(`services.child_processes.probe_upload`): reading an XLSX header parses the whole sheet, and
a hostile workbook must fail that child, not the server. A tab that is not in the workbook
falls back to the first one, flagged, so the page can offer the tab menu instead of an error.
A sheet that cannot be read at all is one line on stderr and exit code 2, like the CLI.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from dialer.core.files import shown
from dialer.core.statuses import ERROR_PREFIX, DialerError, ExitCode
from dialer.sheets.reader import iter_rows, open_sheet, sheet_tabs

EXAMPLES = 3  # example cells shown per column
EXAMPLE_ROWS = 20  # data rows looked through for them
EXAMPLE_CHARS = 40


@dataclass(frozen=True, slots=True)
class Probe:
    tabs: tuple[str, ...]  # visible worksheets; () for a CSV
    tab: str | None  # the tab read (None for a CSV)
    headers: tuple[str, ...]  # as written; an empty one by its column_N name
    examples: tuple[tuple[str, ...], ...]  # per column, a few non-empty cells (masked, cut)
    asked_tab_missing: bool = False  # the campaign's `sheet` is not a tab of this workbook

    @classmethod
    def from_json(cls, text: str) -> Probe:
        data = json.loads(text)
        return cls(
            tabs=tuple(data["tabs"]),
            tab=data["tab"],
            headers=tuple(data["headers"]),
            examples=tuple(tuple(e) for e in data["examples"]),
            asked_tab_missing=bool(data["asked_tab_missing"]),
        )


def probe(path: Path, tab: str | None) -> Probe:
    """Read `path`'s header (of `tab`, for a workbook) and its first rows; SheetError if the
    file cannot be read as a sheet."""
    tabs = tuple(sheet_tabs(path))
    missing = False
    if tabs and tab is not None and tab not in tabs:
        folded = [t for t in tabs if t.strip().casefold() == tab.strip().casefold()]
        missing = not folded
        tab = folded[0] if folded else None
    sheet = open_sheet(path, tab)
    headers = sheet.named_headers
    examples: list[list[str]] = [[] for _ in headers]
    seen = 0
    for chunk in iter_rows(sheet, chunk_rows=EXAMPLE_ROWS):
        for _, cells in chunk:
            for found, cell in zip(examples, cells, strict=True):
                if cell and len(found) < EXAMPLES:
                    found.append(shown(cell, EXAMPLE_CHARS))
            seen += 1
        if seen >= EXAMPLE_ROWS:
            break
    return Probe(
        tabs=tabs,
        tab=sheet.sheet_name,
        headers=headers,
        examples=tuple(tuple(e) for e in examples),
        asked_tab_missing=missing,
    )


def main(argv: list[str]) -> int:
    try:
        found = probe(Path(argv[0]), argv[1] if len(argv) > 1 else None)
    except DialerError as exc:
        print(f"{ERROR_PREFIX}{exc}", file=sys.stderr)
        return int(ExitCode.INPUT_ERROR)
    print(json.dumps(asdict(found), ensure_ascii=False))
    return int(ExitCode.OK)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
