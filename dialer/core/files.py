"""Opening a contact sheet (or any file of ours) safely, and the words its error messages share.

    with open_regular(Path("data/contacts.csv")) as f:
        head = f.read(1024)

A sheet is read only from a regular file: a device (`/dev/zero`), a pipe or a folder given as a
sheet would otherwise be read without end or hang. Messages built from sheet text go through
`shown`, so a phone number in a header or a cell never reaches the console whole (SPEC 7).
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from dialer.core.masking import mask_text
from dialer.core.statuses import DialerError, SheetError

# A name longer than this is cut in a message; a list of names is cut after this many.
SHOWN_CHARS = 40
SHOWN_NAMES = 30


def open_regular(
    path: Path, error: type[DialerError] = SheetError, wanted: str = "a .csv or .xlsx file"
) -> BinaryIO:
    """Open `path` for binary reading, refusing anything but a regular file with `error`
    (a sheet's, or a campaign file's), whose message asks for `wanted`.

    O_NONBLOCK keeps a FIFO from blocking the open; it changes nothing for a regular file.
    """
    try:
        fd = regular_fd(path, os.O_RDONLY, error, f"give {wanted}")
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def regular_fd(path: Path, flags: int, error: type[DialerError], advice: str) -> int:
    """`os.open(path, flags)` (0600 if created) of a regular file only, else `error` saying
    what is there and `advice`: a pipe would block the open or the read for ever, a folder
    or a device is no file of ours. The open's own OSErrors are raised as they are.

    Checked before the open (a write-only open of a pipe nobody reads fails with a cryptic
    ENXIO under O_NONBLOCK, of a folder with EISDIR) and after it, on what was opened."""
    with contextlib.suppress(FileNotFoundError):
        _refuse_unless_regular(path, os.stat(path).st_mode, error, advice)
    fd = os.open(path, flags | os.O_NONBLOCK | os.O_CLOEXEC, 0o600)
    try:
        _refuse_unless_regular(path, os.fstat(fd).st_mode, error, advice)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _refuse_unless_regular(path: Path, mode: int, error: type[DialerError], advice: str) -> None:
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "a device, pipe or socket"
        raise error(f"{path}: not a regular file ({kind}); {advice}")


def shown(text: str, limit: int = SHOWN_CHARS) -> str:
    """Sheet text fit for a one-line message: phone numbers masked, cut to `limit` chars."""
    text = mask_text(" ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def shown_names(names: Iterable[str]) -> str:
    """'a, b, c' for a message: each name `shown`, at most SHOWN_NAMES of them."""
    names = list(names)
    listed = ", ".join(shown(n) for n in names[:SHOWN_NAMES])
    more = len(names) - SHOWN_NAMES
    return f"{listed} … and {more:,} more" if more > 0 else listed


def human_size(size: int) -> str:
    """1536 -> '1.5 KiB', 1 << 30 -> '1 GiB'."""
    if size < 1024:
        return f"{size} bytes"
    power = min(3, (size.bit_length() - 1) // 10)
    return f"{size / 1024**power:.1f}".removesuffix(".0") + (" KiB", " MiB", " GiB")[power - 1]
