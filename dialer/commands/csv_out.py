"""A new CSV a command writes with `--out FILE` (`optout list`, `audit`): never over a file
that exists, written whole or not at all (`core.atomic`), text cells never run as formulas
by the spreadsheet that opens it (`reports.writer.defuse`, applied by the caller)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from pathlib import Path

from dialer.core.statuses import DialerError, UsageError


def check_new_csv(path: Path, what: str) -> None:
    """UsageError unless `path` names a .csv that does not exist yet (asked before the work)."""
    if path.suffix.lower() != ".csv":
        raise UsageError(f"--out {path}: {what} is written as .csv")
    if path.exists() or path.is_symlink():
        raise UsageError(f"--out {path}: the file exists; it is never overwritten")


def write_new_csv(
    path: Path, header: Sequence[str], rows: Iterable[Sequence[object]], what: str
) -> None:
    """The rows under `header`, as a new file at `path` (CRLF lines, UTF-8)."""
    from dialer.core.atomic import replacing

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    try:
        with replacing(path, exclusive=True) as f:
            f.write(buffer.getvalue().encode("utf-8"))
    except FileExistsError:
        raise UsageError(f"--out {path}: the file exists; it is never overwritten") from None
    except OSError as exc:
        raise DialerError(f"{path}: cannot write {what}: {exc.strerror or exc}") from None
