"""What reaches a terminal: text from an upstream or a sheet shown, never obeyed (SPEC 5).

    with console.guarded():       # in `cli.main`, around every command
        print(f"warning: {reason}", file=sys.stderr)   # "\\x1b[2J" printed, not a cleared screen

Every line the CLI prints may carry someone else's text: a call's summary or status, a sheet's
header, an upstream's error. Its control characters (C0 and C1, ESC of an ANSI sequence,
carriage return) and bidi overrides are shown escaped (`\\x1b`, `\\u202e`); a newline and a tab
stay. A console that cannot encode a character (PYTHONIOENCODING=ascii, LANG=C) gets it as a
backslash escape instead of a UnicodeEncodeError: printing the summary after the calls must never
turn a finished run into exit 70.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterator
from typing import Any, TextIO

# The marks and overrides that reorder what a reader sees (`sheet` drops them from cells).
BIDI_CONTROLS = "\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
# C0 but newline and tab, DEL, C1, and the bidi controls.
_UNSAFE = re.compile(f"[\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f{BIDI_CONTROLS}]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` with every control character shown as its escape; newlines and tabs kept."""
    if text.isprintable():
        return text
    return _UNSAFE.sub(_escape, text)


class Printable:
    """A text stream that writes `printable(text)` to the stream it wraps; all else is the
    wrapped stream's (`isatty`, `fileno`, `encoding`). `unfiltered` is for our own terminal
    drawing (the progress bar's carriage returns), which carries no outside text."""

    __slots__ = ("unfiltered",)

    def __init__(self, stream: TextIO) -> None:
        self.unfiltered = stream

    def write(self, text: str) -> int:
        self.unfiltered.write(printable(text))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.unfiltered, name)


def unfiltered(stream: TextIO) -> TextIO:
    """The stream under a `Printable`, or `stream` itself."""
    return stream.unfiltered if isinstance(stream, Printable) else stream


def _never_fails_to_encode(stream: TextIO) -> None:
    """A character the console's encoding lacks is printed as its backslash escape."""
    reconfigure = getattr(stream, "reconfigure", None)
    if reconfigure is not None:
        with contextlib.suppress(ValueError, OSError):
            reconfigure(errors="backslashreplace")


@contextlib.contextmanager
def guarded() -> Iterator[None]:
    """stdout and stderr escape control characters and never fail to encode, for the block."""
    saved = sys.stdout, sys.stderr
    for stream in saved:
        _never_fails_to_encode(stream)
    sys.stdout, sys.stderr = Printable(saved[0]), Printable(saved[1])
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
