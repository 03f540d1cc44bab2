"""dialer.sheets.reader: real CSV/XLSX files in tmp_path -> header checks and clean text rows."""

from __future__ import annotations

import datetime as dt
import os
import zipfile
from dataclasses import replace
from pathlib import Path

import openpyxl
import pytest

from dialer.core.cells import clean_cell, normalise_header
from dialer.core.settings import DEFAULTS
from dialer.core.statuses import SheetError
from dialer.sheets.reader import Sheet, iter_rows, open_sheet

SAMPLES = Path(__file__).resolve().parent.parent / "sample_data"


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def rows_of(sheet: Sheet, **kwargs: object) -> list[tuple[int, list[str]]]:
    return [row for chunk in iter_rows(sheet, **kwargs) for row in chunk]  # type: ignore[arg-type]


def write_xlsx(path: Path, sheets: dict[str, list[list[object]]]) -> Path:
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for name, body in sheets.items():
        ws = workbook.create_sheet(name)
        for row in body:
            ws.append(row)
    workbook.save(path)
    return path


# --- header normalisation and cell cleaning ---------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("First Name ", "first_name"),
        ("Order-ID", "order_id"),
        ("\ufeffPhone", "phone"),
        ("  E-mail / Address ", "e_mail_address"),
        ("__tz__", "tz"),
        ("Téléphone", "téléphone"),
        ("Phone\u200b Number", "phone_number"),
    ],
)
def test_normalise_header_matches_spec_examples(header: str, expected: str) -> None:
    assert normalise_header(header) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Rahul  ", "Rahul"),
        ("Ra\u200bhul", "Rahul"),  # zero-width space
        ("\u202eAmit", "Amit"),  # right-to-left override
        ("\u2066Isolated\u2069 \u200eMarks\u200f", "Isolated Marks"),
        ("\ufeffBOM", "BOM"),
        ("bell\x07 and\x00nul\x7f del\x9b csi", "bell andnul del csi"),
        ("line\r\nbreak\tand\ttab", "line break and tab"),
        ("non\u00a0breaking\u202fnarrow\u2007figure", "non breaking narrow figure"),
        ("tag\U000e0041\U000e0042 chars", "tag chars"),
        ("José Zoë अनन्या", "José Zoë अनन्या"),
        ("\u200b\u200d", ""),
    ],
)
def test_clean_cell_removes_invisible_characters(raw: str, expected: str) -> None:
    assert clean_cell(raw) == expected


# --- CSV: encodings, delimiters, quoting --------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "expected"),
    [
        ("utf-8", "utf-8"),
        ("utf-8-sig", "utf-8-sig"),
        ("cp1252", "cp1252"),
    ],
)
def test_csv_encoding_is_detected_and_text_survives(
    tmp_path: Path, encoding: str, expected: str
) -> None:
    path = write(tmp_path / "c.csv", "Name,Price\nJosé,€5\nZoë,é\n", encoding)
    sheet = open_sheet(path)
    assert sheet.encoding == expected
    assert sheet.headers == ("Name", "Price")  # no BOM left in the first header
    assert rows_of(sheet) == [(1, ["José", "€5"]), (2, ["Zoë", "é"])]


def test_csv_with_bytes_cp1252_cannot_decode_is_read_as_latin1(tmp_path: Path) -> None:
    path = tmp_path / "l.csv"
    path.write_bytes(b"name,city\nJos\xe9,x\x81y\n")
    sheet = open_sheet(path)
    assert sheet.encoding == "latin-1"
    assert rows_of(sheet) == [(1, ["José", "xy"])]  # U+0081 is a control: cleaned away


def test_csv_whose_first_non_ascii_byte_is_after_the_first_mib_is_read_as_cp1252(
    tmp_path: Path,
) -> None:
    """The encoding is judged on every byte, not the first MiB: one late 'é' is not an error."""
    filler = "a,b\n" + "x,y\n" * 300_000  # 1.2 MB of ASCII
    path = tmp_path / "late.csv"
    path.write_bytes(filler.encode() + b"caf\xe9,z\n")
    sheet = open_sheet(path)
    assert sheet.encoding == "cp1252"
    assert rows_of(sheet)[-1] == (300_001, ["café", "z"])


def test_csv_with_utf8_then_a_non_utf8_byte_after_the_first_mib_names_the_line(
    tmp_path: Path,
) -> None:
    filler = "a,b\nJosé,y\n" + "x,y\n" * 300_000
    path = tmp_path / "late.csv"
    path.write_bytes(filler.encode() + b"caf\xe9,z\n")
    with pytest.raises(
        SheetError,
        match=r"late\.csv: line 300003 is not UTF-8 \(byte 0xe9\) but "
        r"line 2 is: the file mixes encodings",
    ):
        open_sheet(path)


def test_utf8_character_cut_at_the_sniff_boundary_stays_utf8(tmp_path: Path) -> None:
    path = write(tmp_path / "cut.csv", "name,ph\nJosé,1\n")  # 'é' spans bytes 11-12
    sheet = open_sheet(path, settings=replace(DEFAULTS, csv_sniff_bytes=12))
    assert sheet.encoding == "utf-8"
    assert rows_of(sheet) == [(1, ["José", "1"])]


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_csv_delimiter_is_detected(tmp_path: Path, delimiter: str) -> None:
    body = delimiter.join(["Phone", "Name", "Note"]) + "\n"
    body += delimiter.join(["+919845012345", "Priya", "a,b;c"]) + "\n"
    path = write(tmp_path / "d.csv", body.replace("a,b;c", '"a,b;c"'))
    sheet = open_sheet(path)
    assert sheet.delimiter == delimiter
    assert rows_of(sheet) == [(1, ["+919845012345", "Priya", "a,b;c"])]


def test_semicolon_csv_with_decimal_commas_is_not_taken_for_comma(tmp_path: Path) -> None:
    path = write(tmp_path / "eu.csv", "name;amount;phone\nAna;1,5;+34600111222\nBo;2,75;+1\n")
    assert open_sheet(path).delimiter == ";"


def test_excel_sep_hint_line_names_the_delimiter_and_is_not_the_header(tmp_path: Path) -> None:
    path = write(tmp_path / "s.csv", "sep=;\nname;phone\nA, B;+1\n")
    sheet = open_sheet(path)
    assert (sheet.delimiter, sheet.columns) == (";", ("name", "phone"))
    assert rows_of(sheet) == [(1, ["A, B", "+1"])]


@pytest.mark.parametrize("newline", ["\r\n", "\r"])
def test_windows_and_old_mac_line_endings(tmp_path: Path, newline: str) -> None:
    path = write(tmp_path / "n.csv", newline.join(["name,phone", "A,1", "", "B,2", ""]))
    assert rows_of(open_sheet(path)) == [(1, ["A", "1"]), (3, ["B", "2"])]


def test_quoted_cells_keep_delimiters_and_newlines_become_spaces(tmp_path: Path) -> None:
    path = write(tmp_path / "q.csv", 'name,address\n"Doe, Jane","1 Main St\nApt 2"\nBo,x\n')
    assert rows_of(open_sheet(path)) == [(1, ["Doe, Jane", "1 Main St Apt 2"]), (2, ["Bo", "x"])]


def test_leading_zeros_and_plus_survive_as_text(tmp_path: Path) -> None:
    path = write(tmp_path / "z.csv", "id,phone,zip,amount\n00101,+919845012345,02139,1.50\n")
    assert rows_of(open_sheet(path)) == [(1, ["00101", "+919845012345", "02139", "1.50"])]


def test_na_like_cells_stay_text_not_nan(tmp_path: Path) -> None:
    path = write(tmp_path / "na.csv", "a,b,c,d\nNA,null,NaN,\n")
    assert rows_of(open_sheet(path)) == [(1, ["NA", "null", "NaN", ""])]


def test_empty_rows_are_skipped_but_keep_their_numbers(tmp_path: Path) -> None:
    path = write(tmp_path / "e.csv", "name,phone\nA,1\n\n,\n  ,\u200b\nB,2\n")
    assert rows_of(open_sheet(path)) == [(1, ["A", "1"]), (5, ["B", "2"])]


def test_blank_lines_before_header_are_skipped_and_numbering_starts_after_header(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "b.csv", "\n,,\nname,phone\nA,1\n")
    sheet = open_sheet(path)
    assert sheet.columns == ("name", "phone")
    assert rows_of(sheet) == [(1, ["A", "1"])]


def test_short_rows_are_padded_and_long_rows_cut_to_header_width(tmp_path: Path) -> None:
    path = write(tmp_path / "w.csv", "a,b,c\n1\n1,2,3,4,5\n")
    assert rows_of(open_sheet(path)) == [(1, ["1", "", ""]), (2, ["1", "2", "3"])]


def test_trailing_empty_header_cells_are_dropped_and_inner_ones_named(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "name,,phone,,\nA,x,1,y,z\n")
    sheet = open_sheet(path)
    assert sheet.columns == ("name", "column_2", "phone")
    assert rows_of(sheet) == [(1, ["A", "x", "1"])]


def test_cells_are_cleaned_and_raw_columns_are_handed_over_untouched(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", "name,phone\nRa\u200bhul , +91\u200e98450 12345\n")
    sheet = open_sheet(path)
    assert rows_of(sheet) == [(1, ["Rahul", "+9198450 12345"])]
    assert rows_of(sheet, raw_columns=frozenset({1})) == [(1, ["Rahul", " +91\u200e98450 12345"])]


def test_rows_stream_in_chunks_of_the_requested_size(tmp_path: Path) -> None:
    path = write(tmp_path / "big.csv", "n\n" + "".join(f"{i}\n" for i in range(1, 26)))
    chunks = list(iter_rows(open_sheet(path), chunk_rows=10))
    assert len(chunks) == 3 and max(len(c) for c in chunks) <= 10
    assert [n for c in chunks for n, _ in c] == list(range(1, 26))
    assert [cells[0] for c in chunks for _, cells in c] == [str(i) for i in range(1, 26)]


def test_header_only_sheet_yields_no_rows(tmp_path: Path) -> None:
    assert rows_of(open_sheet(write(tmp_path / "h.csv", "name,phone\n"))) == []


def test_broken_quoting_is_a_sheet_error_naming_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "broken.csv", 'name,phone\nA,1\n"B,2\nC,3\n')
    with pytest.raises(
        SheetError, match=r"broken\.csv: line 3: a quote \(\"\) opened in this row is never closed"
    ):
        rows_of(open_sheet(path))


# --- header and file errors ---------------------------------------------------------------------


def test_duplicate_headers_after_normalising_list_the_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "dup.csv", "First Name,first_name,Phone\n")
    with pytest.raises(SheetError) as caught:
        open_sheet(path)
    message = str(caught.value)
    assert "dup.csv" in message and "'First Name' and 'first_name'" in message
    # The user's own header names, not the normalised ones (issue 12).
    assert message.endswith("columns found: First Name, first_name, Phone")


def test_missing_column_lists_the_columns_found(tmp_path: Path) -> None:
    sheet = open_sheet(write(tmp_path / "c.csv", "Customer ID,Mobile No.\n"))
    assert sheet.column_index("Customer ID", role="id") == 0
    assert sheet.column_index("customer-id", role="id") == 0
    with pytest.raises(SheetError) as caught:
        sheet.column_index("phone", role="phone")
    assert str(caught.value) == (
        f"{tmp_path / 'c.csv'}: no phone column 'phone'; columns found: Customer ID, Mobile No."
    )


@pytest.mark.parametrize("content", [b"", b"\n\n\r\n", b",,\n , \t\n", b"\xef\xbb\xbf"])
def test_empty_file_is_a_sheet_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    with pytest.raises(SheetError, match=r"empty\.csv: the file is empty"):
        open_sheet(path)


@pytest.mark.parametrize("name", ["c.xls", "c.ods", "c.json", "contacts"])
def test_unsupported_extension_names_the_supported_formats(tmp_path: Path, name: str) -> None:
    path = write(tmp_path / name, "phone\n1\n")
    with pytest.raises(SheetError, match=r"supported formats: \.csv, \.xlsx"):
        open_sheet(path)


def test_missing_file_is_a_sheet_error(tmp_path: Path) -> None:
    with pytest.raises(SheetError, match=r"nope\.csv: cannot read"):
        open_sheet(tmp_path / "nope.csv")


def test_oversize_csv_is_refused_with_size_and_limit(tmp_path: Path) -> None:
    path = write(tmp_path / "huge.csv", "phone\n" + "+919845012345\n" * 200)
    with pytest.raises(SheetError, match=r"huge\.csv: 2\.7 KiB is over the 1 KiB limit"):
        open_sheet(path, settings=replace(DEFAULTS, max_csv_bytes=1024))


def test_a_csv_that_grows_past_the_limit_while_read_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "growing.csv", "phone\n" + "+919845012345\n" * 50)
    sheet = open_sheet(path, settings=replace(DEFAULTS, max_csv_bytes=1024))
    with path.open("a") as f:  # another program appends after the header was read
        f.write("+919845012345\n" * 200)
    with pytest.raises(SheetError, match=r"growing\.csv: grew past the 1 KiB limit"):
        rows_of(sheet)


@pytest.mark.parametrize(
    ("content", "hint"),
    [
        ("phone\n1\n".encode("utf-16"), "UTF-16"),
        (b"PK\x03\x04junk", "not CSV; give it the .xlsx name"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1junk", "old .xls or password-protected"),
        (b"ph\x00one\n", "binary data"),
    ],
)
def test_binary_file_named_csv_is_refused_with_a_hint(
    tmp_path: Path, content: bytes, hint: str
) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(content)
    with pytest.raises(SheetError, match=hint):
        open_sheet(path)


# --- XLSX ---------------------------------------------------------------------------------------


def test_xlsx_numeric_cells_become_the_digits_a_person_typed(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "n.xlsx",
        {
            "Contacts": [
                ["Phone", "Amount", "Paid", "Order Date", "At", "Tiny"],
                [917359043943, 1.5, True, dt.date(2024, 3, 1), dt.datetime(2024, 3, 1, 10, 30),
                 1e-05],
                [917359043943.0, 0.1 + 0.2, False, None, None, -2.0],
                ["'+919845012345", "0012", None, None, None, None],
            ]
        },
    )  # fmt: skip
    assert rows_of(open_sheet(path)) == [
        (1, ["917359043943", "1.5", "TRUE", "2024-03-01", "2024-03-01 10:30:00", "0.00001"]),
        (2, ["917359043943", "0.3", "FALSE", "", "", "-2"]),
        (3, ["'+919845012345", "0012", "", "", "", ""]),
    ]


def test_xlsx_first_sheet_by_default_and_named_sheet_on_request(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "s.xlsx",
        {"Contacts": [["phone"], ["+1"]], "Notes": [["note"], ["hello"]]},
    )
    first = open_sheet(path)
    assert (first.sheet_name, first.columns, rows_of(first)) == (
        "Contacts",
        ("phone",),
        [(1, ["+1"])],
    )
    named = open_sheet(path, sheet_name="notes")  # case-insensitive fallback
    assert (named.sheet_name, rows_of(named)) == ("Notes", [(1, ["hello"])])


def test_xlsx_missing_sheet_lists_the_sheets_found(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "s.xlsx", {"Contacts": [["phone"]], "Notes": [["x"]]})
    with pytest.raises(SheetError, match=r"no sheet named 'Leads'; sheets found: Contacts, Notes"):
        open_sheet(path, sheet_name="Leads")


def test_xlsx_hidden_first_sheet_is_skipped_by_default(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "h.xlsx", {"Lookup": [["code"]], "Contacts": [["phone"]]})
    workbook = openpyxl.load_workbook(path)
    workbook["Lookup"].sheet_state = "hidden"
    workbook.save(path)
    assert open_sheet(path).sheet_name == "Contacts"


def test_xlsx_empty_rows_skipped_numbering_kept_and_offset_table_found(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    ws = workbook.active
    ws["C3"], ws["D3"] = "Phone", "Name"
    ws["C4"], ws["D4"] = 919845012345, "Priya"
    ws["C6"], ws["D6"] = "+14155550132", "Emily"
    workbook.save(tmp_path / "o.xlsx")
    sheet = open_sheet(tmp_path / "o.xlsx")
    assert sheet.columns == ("phone", "name")
    assert rows_of(sheet) == [(1, ["919845012345", "Priya"]), (3, ["+14155550132", "Emily"])]


def test_xlsx_duplicate_headers_list_the_columns(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "d.xlsx", {"S": [["Phone", "PHONE "]]})
    with pytest.raises(SheetError, match="columns found: Phone, PHONE"):
        open_sheet(path)


def test_xlsx_header_only_yields_no_rows_and_empty_sheet_is_an_error(tmp_path: Path) -> None:
    assert rows_of(open_sheet(write_xlsx(tmp_path / "h.xlsx", {"S": [["phone"]]}))) == []
    with pytest.raises(SheetError, match="sheet 'S' is empty"):
        open_sheet(write_xlsx(tmp_path / "e.xlsx", {"S": []}))


def test_binary_junk_named_xlsx_is_a_sheet_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.xlsx"
    path.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(
        SheetError, match=r"junk\.xlsx: not a valid \.xlsx file \(it may be a renamed"
    ):
        open_sheet(path)


def test_zip_that_is_not_a_workbook_is_a_sheet_error(tmp_path: Path) -> None:
    path = tmp_path / "other.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "not a workbook")
    with pytest.raises(SheetError, match=r"other\.xlsx: not a valid \.xlsx file"):
        open_sheet(path)


def test_zip_bomb_member_with_huge_ratio_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", b"\0" * (4 << 20))  # 4 MiB -> ~4 KiB
    with pytest.raises(SheetError, match=r"bomb\.xlsx: part 'xl/worksheets/sheet1\.xml' unpacks"):
        open_sheet(path)


def test_xlsx_over_the_uncompressed_limit_is_refused(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "big.xlsx", {"S": [["phone"], ["+1"]]})
    with pytest.raises(SheetError, match=r"big\.xlsx: unpacks to .* over the 2 KiB limit"):
        open_sheet(path, settings=replace(DEFAULTS, max_xlsx_uncompressed=2048))


# --- the sample data ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["contacts.csv", "contacts.xlsx"])
def test_sample_contacts_have_60_rows_with_blank_lines_counted(name: str) -> None:
    sheet = open_sheet(SAMPLES / name)
    assert sheet.columns == (
        "customer_id", "first_name", "last_name", "phone", "order_id", "order_date", "email", "tz"
    )  # fmt: skip
    rows = rows_of(sheet)
    numbers = [n for n, _ in rows]
    assert len(rows) == 60 and numbers[-1] == 62 and 20 not in numbers and 34 not in numbers
    by_number = dict(rows)
    assert by_number[1][:2] == ["00101", "Aarav"]
    assert by_number[1][5] == "2024-03-02"
    assert by_number[12][1] == "Rahul" and by_number[13][1] == "Amit"
    assert by_number[15][1].startswith("=HYPERLINK(")


def test_sample_xlsx_stores_plain_phones_as_numbers() -> None:
    """The XLSX must exercise numeric phone cells and date cells, not just text."""
    workbook = openpyxl.load_workbook(SAMPLES / "contacts.xlsx")
    ws = workbook.worksheets[0]
    assert workbook.sheetnames == ["Contacts", "Notes"]
    assert isinstance(ws["D3"].value, int)  # "9845012345"
    assert isinstance(ws["F2"].value, dt.datetime)
    assert ws["B16"].data_type == "s"  # the formula-looking name stays text


def test_sample_files_are_what_make_samples_writes(tmp_path: Path) -> None:
    """Regenerating the samples changes nothing: the checked-in files match the generator."""
    import runpy

    generator = runpy.run_path(str(SAMPLES / "make_samples.py"))
    body = generator["rows"]()
    generator["write_csv"](tmp_path / "c.csv", generator["HEADER"], body)
    generator["write_xlsx"](tmp_path / "c.xlsx", body)
    assert (tmp_path / "c.csv").read_bytes() == (SAMPLES / "contacts.csv").read_bytes()
    assert (tmp_path / "c.xlsx").read_bytes() == (SAMPLES / "contacts.xlsx").read_bytes()


# --- what an XLSX costs is judged before reading (the refusals: tests/test_sheet_hostile.py) ----


def test_xlsx_far_declared_dimension_or_empty_styled_cell_is_read_normally(tmp_path: Path) -> None:
    """Only filled cells make the reader allocate: a large `<dimension>` or a formatted empty
    cell far away (Excel's Ctrl+End) is no reason to refuse a sheet."""
    workbook = openpyxl.Workbook()
    ws = workbook.active
    ws.append(["phone", "name"])
    ws.append(["+917359043943", "Asha"])
    ws["ZZ200000"].number_format = "0.00"  # styled, no value: written as an empty cell
    workbook.save(tmp_path / "styled.xlsx")
    sheet = open_sheet(tmp_path / "styled.xlsx")
    assert rows_of(sheet) == [(1, ["+917359043943", "Asha"])]


def test_xlsx_numeric_phone_cells_come_as_numeric_text_only_in_raw_columns(tmp_path: Path) -> None:
    from dialer.sheets.reader import NumericText

    path = write_xlsx(tmp_path / "n.xlsx", {"S": [["phone", "n"], [7834410000, 5], ["78344", 6]]})
    rows = rows_of(open_sheet(path), raw_columns=frozenset({0}))
    assert [type(cells[0]) for _, cells in rows] == [NumericText, str]
    assert [type(cells[1]) for _, cells in rows] == [str, str]


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_pipe_or_device_named_like_a_sheet_is_refused_without_reading(
    tmp_path: Path, kind: str
) -> None:
    """A FIFO would block the open and /dev/zero never ends: only regular files are read."""
    path = tmp_path / "contacts.csv"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    with pytest.raises(SheetError, match=r"contacts\.csv: not a regular file \(a device, pipe"):
        open_sheet(path)
