"""`[contacts] source` -> the one sheet file to read: a plain path, or the newest of a glob.

    resolve_source("drops/contacts-*.csv", Path("campaigns"))  # nightly drops
    # PosixPath('campaigns/drops/contacts-2025-01-15.csv')

Relative patterns are taken from the campaign file's folder (`base`), so cron's working
directory does not matter.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

from dialer.core.statuses import SheetError

_GLOB_CHARS = frozenset("*?[")


def resolve_source(pattern: str, base: Path) -> Path:
    """The sheet file for `pattern`; raise `SheetError` when there is none.

    A glob (`*`, `?` or `[`) picks the newest matching file by modification time, ties
    broken by path (last wins) so the choice is repeatable; directories are ignored.
    `~` is expanded. Hidden files match only if the pattern names the dot.
    """
    expanded = os.path.expanduser(pattern)
    if not _GLOB_CHARS.intersection(expanded):
        path = base / expanded
        if not path.exists():
            raise SheetError(f"{path}: contact sheet not found")
        if path.is_dir():
            raise SheetError(f"{path}: is a folder, not a contact sheet")
        return path

    newest: tuple[int, str, Path] | None = None
    # root_dir keeps glob metacharacters in `base` literal; absolute patterns ignore it.
    for match in glob.glob(expanded, root_dir=base):
        path = base / match
        try:
            if not path.is_file():
                continue
            key = (path.stat().st_mtime_ns, str(path), path)
        except OSError:  # removed or rotated between listing and stat
            continue
        if newest is None or key[:2] > newest[:2]:
            newest = key
    if newest is None:
        where = "" if Path(expanded).is_absolute() else f" in {base}"
        raise SheetError(f"no file matches {pattern}{where}")
    return newest[2]
