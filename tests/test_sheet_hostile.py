"""Hostile and damaged contact sheets through the real CLI: bounded memory, one true line, no
whole phone number on the console, and no number called that a spreadsheet has altered."""

from __future__ import annotations

import os
import random
import resource
import string
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import openpyxl
import pytest
from conftest import HEADER, Project, contact_rows

from dialer.core.statuses import ExitCode
from dialer.sheets.phones import normalise_phone

ONE_GIB = 1 << 30

_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" '
    'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-'
    'officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.'
    'openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>'
)
_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>'
)
_WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    '<sheets><sheet name="Contacts" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
_WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>'
)


def _column(n: int) -> str:
    letters = ""
    while n:
        n, rest = divmod(n - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


STRAY_CELL = '<c r="{ref}" t="inlineStr"><is><t>x</t></is></c>'


def write_raw_xlsx(
    path: Path,
    rows: list[list[str]],
    stray: str | None = None,
    strings: bytes | None = None,
    stray_cell: str = STRAY_CELL,
) -> Path:
    """A minimal workbook written as XML by hand (a few KB): `rows` from A1 down, plus an
    optional `stray` cell (e.g. "ZZ200000", written as `stray_cell`) and sharedStrings part."""
    body = []
    for r, row in enumerate(rows, start=1):
        cells = "".join(
            f'<c r="{_column(c)}{r}" t="inlineStr"><is><t>{v}</t></is></c>'
            for c, v in enumerate(row, start=1)
        )
        body.append(f'<row r="{r}">{cells}</row>')
    if stray:
        row_number = "".join(ch for ch in stray if ch.isdigit())
        body.append(
            f'<row r="{row_number}"><c r="{stray}" t="inlineStr"><is><t>x</t></is></c></row>'
        )
    sheet = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        f"<sheetData>{''.join(body)}</sheetData></worksheet>"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES)
        archive.writestr("_rels/.rels", _RELS)
        archive.writestr("xl/workbook.xml", _WORKBOOK)
        archive.writestr("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS)
        archive.writestr("xl/worksheets/sheet1.xml", sheet)
        if strings is not None:
            archive.writestr("xl/sharedStrings.xml", strings)
    return path


def run_limited(project: Project, contacts: Path) -> subprocess.CompletedProcess[str]:
    """`dialer validate` in a child whose address space is capped at 1 GiB (SPEC 7)."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ONE_GIB, ONE_GIB))

    return subprocess.run(
        [sys.executable, "-m", "dialer", "validate", str(project.campaign), "--contacts",
         str(contacts)],
        capture_output=True, text=True, preexec_fn=cap, timeout=120,
        env={**os.environ, "DIALER_DEBUG": ""},
    )  # fmt: skip


def assert_one_line(text: str, *parts: str) -> None:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text[:2000]
    assert lines[0].startswith("dialer: error: "), lines[0]
    assert "Traceback" not in text and "panic" not in text.lower()
    for part in parts:
        assert part in lines[0], lines[0]


def assert_no_whole_number(text: str, *numbers: str) -> None:
    digits_only = "".join(c for c in text if c.isdigit() or c == "\n")
    for number in numbers:
        assert number not in digits_only.replace("\n", " "), f"{number} shown whole: {text!r}"


# --- XLSX: the declared range and the real cells, judged before reading -------------------------


@pytest.mark.parametrize(
    ("stray", "cell"),
    [
        ("ZZ200000", STRAY_CELL),
        ("XFD1048576", STRAY_CELL),
        ("ZZ200000", '<c t="n"\n   r="{ref}"><v>1</v></c>'),  # attributes in another order
        ("ZZ200000", '<x:c xmlns:x="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
                     ' r="{ref}"><x:v>1</x:v></x:c>'),  # a namespace prefix
    ],
    ids=["ZZ200000", "XFD1048576", "odd-spacing", "prefixed"],
)  # fmt: skip
def test_xlsx_with_one_stray_cell_far_away_is_refused_in_one_line_within_1_gib(
    project: Project, stray: str, cell: str
) -> None:
    project.write_campaign()
    path = write_raw_xlsx(
        project.root / "data" / "stray.xlsx", [HEADER, *contact_rows(2)], stray, stray_cell=cell
    )
    assert path.stat().st_size < 4096
    result = run_limited(project, path)
    assert result.returncode == ExitCode.INPUT_ERROR, result.stderr[-2000:]
    assert_one_line(result.stderr, "stray.xlsx", f"spans A1:{stray}", "stray value")


def _repeated_part(head: bytes, block: bytes, times: int, tail: bytes) -> tuple[bytes, int, int]:
    """(deflated, crc, size) of head + block * times + tail, compressed without building it:
    once the window holds `block`, each repeat deflates to the same bytes."""
    packer = zlib.compressobj(6, zlib.DEFLATED, -15)
    first = packer.compress(head + block) + packer.flush(zlib.Z_SYNC_FLUSH)
    again = packer.compress(block) + packer.flush(zlib.Z_SYNC_FLUSH)
    assert packer.compress(block) + packer.flush(zlib.Z_SYNC_FLUSH) == again
    last = packer.compress(block) + packer.flush(zlib.Z_SYNC_FLUSH)  # == again: window unchanged
    packed = first + again * (times - 2) + last + packer.compress(tail) + packer.flush()
    crc = zlib.crc32(head)
    for _ in range(times):
        crc = zlib.crc32(block, crc)
    crc = zlib.crc32(tail, crc)
    return packed, crc, len(head) + len(block) * times + len(tail)


def add_deflated_part(path: Path, name: str, packed: bytes, crc: int, size: int) -> None:
    """Append a part with ready-made deflated bytes to a zip written by `write_raw_xlsx`."""
    with zipfile.ZipFile(path) as archive:
        parts = [(i, archive.read(i)) for i in archive.infolist()]
    local, central, offset = bytearray(), bytearray(), 0
    entries = [
        (i.filename.encode(), zlib.compress(d)[2:-4], zlib.crc32(d), len(d)) for i, d in parts
    ]
    entries.append((name.encode(), packed, crc, size))
    for filename, data, checksum, length in entries:
        fields = (20, 0, 8, 0, 0x21, checksum, len(data), length, len(filename))
        header = struct.pack("<4s5HIII2H", b"PK\x03\x04", *fields, 0)
        central += struct.pack("<4s6HIII5H2I", b"PK\x01\x02", 20, *fields, 0, 0, 0, 0, 0, offset)
        central += filename
        local += header + filename + data
        offset += len(header) + len(filename) + len(data)
    end = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(central),
                      offset, 0)  # fmt: skip
    path.write_bytes(bytes(local + central + end))


def test_xlsx_shared_strings_part_too_big_to_hold_is_refused_before_reading(
    project: Project,
) -> None:
    """~270 MiB of shared strings in a 2.5 MB file, ratio ~114 (under the old bomb checks):
    refused from the part's size, before python-calamine holds any of it."""
    rng = random.Random(9)
    items = b"".join(  # 256 strings of 64 bytes: 16 KiB, well inside deflate's 32 KiB window
        b"<si><t>" + "".join(rng.choices(string.ascii_letters, k=48)).encode() + b"</t></si>"
        for _ in range(256)
    )
    head = b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    project.write_campaign()
    path = write_raw_xlsx(project.root / "data" / "sst.xlsx", [HEADER, *contact_rows(2)])
    packed = _repeated_part(head, items, 270 * 64, b"</sst>")
    add_deflated_part(path, "xl/sharedStrings.xml", *packed)
    info = zipfile.ZipFile(path).getinfo("xl/sharedStrings.xml")
    assert info.file_size > 256 << 20 and info.file_size // info.compress_size < 200
    result = run_limited(project, path)
    assert result.returncode == ExitCode.INPUT_ERROR, result.stderr[-2000:]
    assert_one_line(result.stderr, "sst.xlsx", "xl/sharedStrings.xml", "limit")


def test_numeric_xlsx_cell_cut_by_excels_general_format_is_invalid_not_ready(
    project: Project, cli
) -> None:
    """SPEC 4.3: 7.83441E+09 comes back as the number 7834410000; a text cell is the user's."""
    workbook = openpyxl.Workbook()
    ws = workbook.active
    ws.append(HEADER)
    ws.append(["C1", "Asha", 7834410000, "O1"])  # numeric: four digits lost
    ws.append(["C2", "Ben", 917834000000, "O2"])  # numeric: six digits lost
    ws.append(["C3", "Cai", "7834410000", "O3"])  # typed as text: taken at its word
    ws.append(["C4", "Dev", 7359043943, "O4"])  # numeric, whole
    path = project.root / "data" / "general.xlsx"
    path.parent.mkdir(parents=True)
    workbook.save(path)
    project.write_campaign()
    result = cli(["validate", str(project.campaign), "--contacts", str(path)])
    assert result.code == ExitCode.ROW_PROBLEMS
    rows = {r["custom_identifiers"]: r for r in project.report_rows()}
    lost = "invalid phone: digits lost to scientific notation (trailing zeros)"
    assert (rows["C1"]["status"], rows["C1"]["reason"]) == ("invalid", lost)
    assert (rows["C2"]["status"], rows["C2"]["reason"]) == ("invalid", lost)
    assert (rows["C3"]["status"], rows["C3"]["called_to"]) == ("ready", "+917834410000")
    assert (rows["C4"]["status"], rows["C4"]["called_to"]) == ("ready", "+917359043943")


# --- CSV: encodings and NUL bytes, judged on every byte -------------------------------------------


def test_csv_mixing_utf8_and_cp1252_is_refused_naming_the_first_line_not_utf8(
    project: Project, cli
) -> None:
    path = project.root / "data" / "mixed.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes(
        b"customer_id,first_name,phone,order_id\n"
        b"C1,Jos\xc3\xa9,+917359000001,O1\n"  # UTF-8
        b"C2,Ren\xe9e,+917359000002,O2\n"  # cp1252
    )
    project.write_campaign()
    result = cli(["validate", str(project.campaign), "--contacts", str(path)])
    assert result.code == ExitCode.INPUT_ERROR
    assert_one_line(result.err, "mixed.csv: line 3 is not UTF-8", "line 2 is", "CSV UTF-8")
    assert not project.reports()


def test_csv_with_nul_bytes_after_the_first_mib_is_refused_not_silently_cut(
    project: Project, cli
) -> None:
    rows = contact_rows(32_000)  # ~1.2 MB
    path = project.write_sheet(rows)
    with path.open("ab") as f:
        f.write(b"C99999,Nul\x00Name,+917359099999,O9\n")
    assert path.stat().st_size > 1 << 20
    project.write_campaign()
    result = cli(["validate", str(project.campaign)])
    assert result.code == ExitCode.INPUT_ERROR
    assert_one_line(result.err, "contacts.csv: line 32002 holds a NUL byte")


# --- messages built from sheet text: true, masked, one short line --------------------------------


def test_unclosed_quote_in_the_header_names_the_cause_and_shows_no_phone(
    project: Project, cli
) -> None:
    path = project.root / "data" / "quote.csv"
    path.parent.mkdir(parents=True)
    body = "".join(f"C{i},Name{i},+9173590{i:05d},O{i}\n" for i in range(50))
    path.write_text('customer_id,"first_name,phone,order_id\n' + body, encoding="utf-8")
    project.write_campaign()
    result = cli(["validate", str(project.campaign), "--contacts", str(path)])
    assert result.code == ExitCode.INPUT_ERROR
    assert_one_line(result.err, "quote.csv: line 1", "never closed")
    assert "empty" not in result.err and len(result.err) < 300
    assert_no_whole_number(result.err + result.out, "917359000001")


def test_unclosed_quote_in_a_file_bigger_than_a_cell_may_be_names_the_cause(
    project: Project, cli
) -> None:
    path = project.root / "data" / "quote.csv"
    path.parent.mkdir(parents=True)
    body = "".join(f"C{i},Name{i},+9173590{i:05d},O{i}\n" for i in range(40_000))  # 1.5 MB
    path.write_text(HEADER[0] + ',"' + ",".join(HEADER[1:]) + "\n" + body, encoding="utf-8")
    project.write_campaign()
    result = cli(["validate", str(project.campaign), "--contacts", str(path)])
    assert result.code == ExitCode.INPUT_ERROR
    assert_one_line(result.err, "quote.csv: line 1", "never closed")
    assert "empty" not in result.err


def test_header_of_200000_characters_gives_the_true_cause(project: Project, cli) -> None:
    path = project.root / "data" / "long.csv"
    path.parent.mkdir(parents=True)
    path.write_text("x" * 200_000 + ",phone\nA,+917359000001\n", encoding="utf-8")
    project.write_campaign()
    result = cli(["validate", str(project.campaign), "--contacts", str(path)])
    assert result.code == ExitCode.INPUT_ERROR
    assert_one_line(result.err, "long.csv", "200,000 characters long")
    assert "empty" not in result.err and len(result.err) < 400


def test_one_endless_line_is_refused_with_a_short_message(project: Project, cli) -> None:
    path = project.root / "data" / "wide.csv"
    path.parent.mkdir(parents=True)
    path.write_text("ab," * 1_000_000 + "\n", encoding="utf-8")  # 3 MB, one line
    project.write_campaign()
    result = cli(["validate", str(project.campaign), "--contacts", str(path)])
    assert result.code == ExitCode.INPUT_ERROR
    assert_one_line(result.err, "wide.csv: line 1 is over 1 MiB long")
    assert len(result.err) < 300


def test_sheet_without_a_header_row_does_not_list_its_phone_numbers(project: Project, cli) -> None:
    path = project.root / "data" / "noheader.csv"
    path.parent.mkdir(parents=True)
    path.write_text("C1,Asha,+91 73590 00001,O1\nC2,Ben,+917359000002,O2\n", encoding="utf-8")
    project.write_campaign()
    result = cli(["validate", str(project.campaign), "--contacts", str(path)])
    assert result.code == ExitCode.INPUT_ERROR
    assert_one_line(result.err, "columns found")
    assert_no_whole_number(result.err, "917359000001")


@pytest.mark.parametrize(
    "name",
    ["98450\u201312345", "98450\u201212345", "984/501/2345"],
    ids=["en-dash", "figure-dash", "slashes"],
)
def test_template_preview_masks_numbers_written_with_any_dash_or_slash(
    project: Project, cli, name: str
) -> None:
    project.write_sheet([["C1", name, "+917359000001", "O1"]])
    project.write_campaign()
    result = cli(["validate", str(project.campaign)])
    assert result.code == ExitCode.OK, result.err
    assert "first line" in result.out
    assert_no_whole_number(result.out + result.err, "9845012345")


# --- phone numbers changed on the way in are said so, or refused (SPEC 7) -----------------------


def test_other_scripts_digits_are_noted_and_mixed_scripts_or_a_minus_refused(
    project: Project, cli
) -> None:
    project.write_sheet(
        [
            ["C1", "Asha", "\u0669\u0661\u0667\u0663\u0665\u0669" + "\u0660" * 5 + "\u0661", "O1"],
            ["C2", "Ben", "+\uff19\uff11\uff17\uff13\uff15\uff19" + "\uff10" * 5 + "\uff12", "O2"],
            ["C3", "Cai", "\u096d\u0969\u096b\u096f\u0966\u0966\u0966\u0966\u0966\u0969", "O3"],
            ["C4", "Dev", "+91 7359\u096600004", "O4"],  # one Devanagari zero among ASCII
            ["C5", "Esa", "-917359000005", "O5"],
        ]
    )  # fmt: skip
    project.write_campaign()
    result = cli(["validate", str(project.campaign)])
    assert result.code == ExitCode.ROW_PROBLEMS
    rows = {r["custom_identifiers"]: r for r in project.report_rows()}
    assert (rows["C1"]["status"], rows["C1"]["called_to"]) == ("ready", "+917359000001")
    assert rows["C1"]["reason"] == "phone digits read from Arabic-Indic as 0-9"
    assert (rows["C2"]["called_to"], rows["C2"]["reason"]) == (
        "+917359000002", "phone digits read from full-width as 0-9"
    )  # fmt: skip
    assert (rows["C3"]["called_to"], rows["C3"]["reason"]) == (
        "+917359000003", "phone digits read from Devanagari as 0-9"
    )  # fmt: skip
    assert (rows["C4"]["status"], rows["C4"]["reason"]) == (
        "invalid", "invalid phone: mixes digits of different scripts"
    )  # fmt: skip
    assert (rows["C5"]["status"], rows["C5"]["reason"]) == (
        "invalid", "invalid phone: starts with a minus sign (a negative number)"
    )  # fmt: skip


def test_numeric_text_marker_is_what_the_general_format_rule_reads() -> None:
    """The rule is for numeric cells only: the same digits as text are the user's."""
    from dialer.sheets.reader import NumericText

    assert normalise_phone(NumericText("7834410000"), "IN").e164 is None
    assert normalise_phone("7834410000", "IN").e164 == "+917834410000"
    assert normalise_phone(NumericText("7834412345"), "IN").e164 == "+917834412345"
