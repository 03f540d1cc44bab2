"""A CSV file's encoding and records, read in bounded memory with the line each problem is on.

    encoding = scan_encoding(path, newline=b"\\n")   # reads the whole file once, in blocks
    reader = CsvReader(path, encoding, ",")
    header = reader.rows(1)
    while rows := reader.rows(5_000, 0, 8):
        ...

`scan_encoding` looks at every byte before any row is used: a NUL byte anywhere, or a file that
mixes UTF-8 with another encoding, is refused with the line it is on, so a run never stops half
way over a byte it could have seen at the start. `CsvReader` feeds Python's csv module lines cut
from 1 MiB blocks: a line, a cell and a batch of rows each have a size limit (`Settings`), so an
unclosed quote or an endless line gives a one-line error instead of filling memory. At the end it
feeds one sentinel line, which a quote left open swallows: that is how "never closed" is told
apart.
"""

from __future__ import annotations

import codecs
import csv
import itertools
import re
from collections.abc import Iterator
from pathlib import Path

from dialer.core.files import human_size, open_regular
from dialer.core.settings import DEFAULTS, Settings
from dialer.core.statuses import SheetError

_BLOCK_BYTES = 1 << 20
_SENTINEL = "\x00"  # NUL bytes are refused up front, so only the sentinel line holds one

# Bytes that cp1252 leaves undefined: a file holding them can only be latin-1.
_CP1252_UNDEFINED = re.compile(rb"[\x81\x8d\x8f\x90\x9d]")
# A multi-byte UTF-8 character: in a file that also holds non-UTF-8 bytes, the mark of mixing.
_UTF8_CHAR = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)
_NON_ASCII = re.compile(rb"[\x80-\xff]")
# Line breaks as csv and text editors see them (str.splitlines also splits at \x0b, \u2028 ...).
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")

# The csv module's cell bound is one for the whole process (a delimiter's sniff reads under
# it too); each reader sets its own settings' bound again.
csv.field_size_limit(DEFAULTS.max_csv_cell_chars)


def scan_encoding(path: Path, newline: bytes) -> str:
    """The file's encoding, from every byte: UTF-8 (with or without BOM), else cp1252/latin-1.

    Refuses NUL bytes and a file holding both UTF-8 characters and bytes that are not UTF-8
    (read as cp1252 it would turn "José" into "JosÃ©" on the phone). `newline` is the byte
    that counts lines in messages.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines = 0  # line breaks before the current block
    bad: tuple[int, int] | None = None  # (line, byte) of the first byte that is not UTF-8
    utf8_line: int | None = None  # a line holding a multi-byte UTF-8 character
    undefined = False
    bom = None
    with open_regular(path) as f:
        while block := f.read(_BLOCK_BYTES):
            if bom is None:
                bom = block.startswith(codecs.BOM_UTF8)
            nul = block.find(b"\0")
            if nul != -1:
                line = lines + block.count(newline, 0, nul) + 1
                raise SheetError(
                    f"{path}: line {line} holds a NUL byte: binary data, not CSV text; "
                    f"export the sheet again as 'CSV UTF-8'"
                )
            rest = 0  # where the search for UTF-8 characters resumes once a bad byte is seen
            if bad is None:
                try:
                    decoder.decode(block)
                    good = len(block)
                except UnicodeDecodeError as exc:
                    good = exc.start
                    bad = (lines + block.count(newline, 0, good) + 1, block[good])
                    rest = good + 1
                if (
                    utf8_line is None
                    and not (block if good == len(block) else block[:good]).isascii()
                ):
                    where = _NON_ASCII.search(block).start()  # type: ignore[union-attr]
                    utf8_line = lines + block.count(newline, 0, where) + 1
            if bad is not None:
                undefined = undefined or _CP1252_UNDEFINED.search(block, rest) is not None
                if utf8_line is None and (found := _UTF8_CHAR.search(block, rest)):
                    utf8_line = lines + block.count(newline, 0, found.start()) + 1
            lines += block.count(newline)
    if bad is None:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            bad = (lines + 1, 0)
    if bad is None:
        return "utf-8-sig" if bom else "utf-8"
    if utf8_line is None:
        return "latin-1" if undefined else "cp1252"
    line, byte = bad
    raise SheetError(
        f"{path}: line {line} is not UTF-8 (byte 0x{byte:02x}) but line {utf8_line} is: the "
        f"file mixes encodings; open it in a spreadsheet and save it as 'CSV UTF-8'"
    )


class CsvReader:
    """Records of a CSV file in bounded memory; every error names the line it is on.

    The bounds are the `max_csv_*` and `csv_batch_rows` of `settings`.
    """

    def __init__(
        self, path: Path, encoding: str, delimiter: str, settings: Settings = DEFAULTS
    ) -> None:
        self.path = path
        self._settings = settings
        self._encoding = encoding
        csv.field_size_limit(settings.max_csv_cell_chars)
        self._file = open_regular(path)
        self._fed = 0  # characters handed to the csv module so far
        self._batch_from = 0  # ... when the current batch started
        self._reader = csv.reader(
            itertools.chain.from_iterable(self._blocks()), delimiter=delimiter
        )
        self._done_line = 0  # the line the last complete record ended on

    def close(self) -> None:
        self._file.close()

    def rows(self, count: int, start: int = 0, stop: int | None = None) -> list[list[str]]:
        """Up to `count` records (fewer only at the end), each cut or padded to [start:stop]."""
        out: list[list[str]] = []
        batch_rows = self._settings.csv_batch_rows
        while len(out) < count:
            batch = self._batch(min(batch_rows, count - len(out)))
            if stop is not None:
                width = stop - start
                if start or any(len(r) != width for r in batch):
                    batch = [_fit(r, start, stop, width) for r in batch]
            out += batch
            if len(batch) < batch_rows:
                break
        return out

    def _batch(self, count: int) -> list[list[str]]:
        reader, out = self._reader, []
        self._batch_from = self._fed
        try:
            for _ in range(count):
                row = next(reader, None)
                if row is None or row == [_SENTINEL]:
                    break
                if row and row[-1].endswith(_SENTINEL + "\n"):
                    raise SheetError(
                        f'{self.path}: line {self._done_line + 1}: a quote (") opened in this '
                        f"row is never closed; close it or remove it"
                    )
                out.append(row)
                self._done_line = reader.line_num
        except csv.Error as exc:
            line = self._done_line + 1
            if "field limit" in str(exc):
                raise SheetError(
                    f"{self.path}: line {line}: a cell runs past "
                    f"{human_size(self._settings.max_csv_cell_chars)}; "
                    f'a quote (") opened in this row is probably never closed'
                ) from None
            raise SheetError(f"{self.path}: line {line}: cannot parse CSV: {exc}") from None
        return out

    def _blocks(self) -> Iterator[list[str]]:
        """Lists of whole lines from 1 MiB blocks, then the sentinel line."""
        decoder = codecs.getincrementaldecoder(self._encoding)()
        carry, total, last = "", 0, "\n"
        limits = self._settings
        while True:
            data = self._file.read(_BLOCK_BYTES)
            total += len(data)
            if total > limits.max_csv_bytes:
                raise SheetError(
                    f"{self.path}: grew past the {human_size(limits.max_csv_bytes)} limit for CSV "
                    f"files while being read"
                )
            try:
                text = carry + decoder.decode(data, final=not data)
            except UnicodeDecodeError:
                raise SheetError(f"{self.path}: changed while being read; try again") from None
            lines = _split_lines(text)
            carry = ""
            # A last line without its break may go on in the next block (a "\r" may be "\r\n").
            if data and lines and (lines[-1][-1] == "\r" or lines[-1][-1] != "\n"):
                carry = lines.pop()
                if len(carry) > limits.max_csv_line_chars:
                    line = self._reader.line_num + len(lines) + 1
                    raise SheetError(
                        f"{self.path}: line {line} is over "
                        f"{human_size(limits.max_csv_line_chars)} long: "
                        f"not a contact sheet"
                    )
            self._fed += len(text) - len(carry)
            if self._fed - self._batch_from > limits.max_csv_batch_chars:
                raise SheetError(
                    f"{self.path}: from line {self._done_line + 1}, {limits.csv_batch_rows} rows "
                    f"hold over {human_size(limits.max_csv_batch_chars)}: "
                    f'a quote (") that is never closed, or not a contact sheet'
                )
            if lines:
                last = lines[-1][-1]
                yield lines
            if not data:
                break
        if last not in "\r\n":
            yield ["\n"]
        yield [_SENTINEL + "\n"]


def _split_lines(text: str) -> list[str]:
    """Lines with their breaks, split only at \\r, \\n and \\r\\n (as the csv module does)."""
    lines = text.splitlines(keepends=True)
    breaks = text.count("\n") + text.count("\r") - text.count("\r\n")
    if len(lines) != breaks + (not text.endswith(("\n", "\r"))) - (not text):
        return _LINE.findall(text)
    return lines


def _fit(row: list[str], start: int, stop: int, width: int) -> list[str]:
    cells = row[start:stop]
    if len(cells) < width:
        cells += [""] * (width - len(cells))
    return cells
