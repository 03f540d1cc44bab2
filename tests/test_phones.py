"""dialer.sheets.phones: spreadsheet-damaged cells -> E.164, or a reason that starts
"invalid phone: "."""

from __future__ import annotations

import contextlib
import pickle
import runpy
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import phonenumbers
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dialer.core.masking import mask_text
from dialer.sheets.phones import Phone, normalise_phone
from dialer.sheets.reader import iter_rows, open_sheet

SAMPLES = Path(__file__).resolve().parent.parent / "sample_data"
E164 = "+917359043943"
ZEROS = "invalid phone: digits lost to scientific notation (trailing zeros)"
EXTENSION = "invalid phone: has an extension ({}); a call cannot dial an extension"
NO_REGION = "invalid phone: no country code (+..) and no default_region"


def reason(raw: str, region: str | None = "IN") -> str:
    return normalise_phone(raw, region).reason


# --- what spreadsheets do to numbers, undone (SPEC 4.3) -----------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "+917359043943",
        "+91 73590 43943",  # spaces
        "+91.73590.43943",  # dots
        "+91-73590-43943",  # dashes
        "(+91) (73590) [43943]",  # brackets
        "+91\u00a073590\u202f43943",  # non-breaking spaces
        "'+91 73590 43943",  # Excel's leading apostrophe
        '="+917359043943"',  # Excel's keep-as-text formula
        "0091 73590 43943",  # 00 international prefix
        "tel:+917359043943",  # tel: prefix
        "TEL: +91-73590-43943",  # any case
        "917359043943.0",  # float from Excel
        "917359043943.00",
        "9.17359043943E+11",  # scientific notation that carries every digit
        "9,17359043943e+11",  # ... with a decimal comma
        "91 73590 43943",  # country code without +, default region's
        "7359043943",  # national number, default region
        "07359043943",  # national number with trunk prefix
        "  +91 73590 43943\t",  # whitespace around
        "+91 7359043943 ",
    ],
)
def test_damaged_but_complete_number_normalises_to_e164(raw: str) -> None:
    assert normalise_phone(raw, "IN") == Phone(E164, "", changed=False)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+1 (415) 555-0132", "+14155550132"),
        ("001 415 555 0132", "+14155550132"),
        ("+44 (0)7400 123456", "+447400123456"),
        ("+44 7400 123456", "+447400123456"),
    ],
)
def test_prefixed_numbers_ignore_the_default_region(raw: str, expected: str) -> None:
    assert normalise_phone(raw, "IN").e164 == expected
    assert normalise_phone(raw, None).e164 == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", "invalid phone: empty"),
        ("   ", "invalid phone: empty"),
        ("'", "invalid phone: empty"),
        ("\u200b", "invalid phone: empty"),
        ("tel:", "invalid phone: empty"),
        ("9.16946E+11", "invalid phone: truncated by scientific notation (9.16946E+11)"),
        ("9.17359E+11", "invalid phone: truncated by scientific notation (9.17359E+11)"),
        ("9.1735904394355E+11", "invalid phone: not a whole number (9.1735904394355E+11)"),
        ("916946000000", ZEROS),
        ("916946000000.0", ZEROS),
        ("9.16946000000E+11", ZEROS),
        ("98450", "invalid phone: too short"),
        ("+91 73590 43943 12345", "invalid phone: too long"),
        ("+999 7359043943", "invalid phone: invalid country code"),
        ("+1 123 456 7890", "invalid phone: not a valid number for US (+1)"),
        ("44 1000 000000", "invalid phone: not a valid number for IN (+91)"),
        ("call me after 6pm", "invalid phone: contains letters"),
        ("1-800-FLOWERS", "invalid phone: contains letters"),
        ("+1 415 555 0132 x12", EXTENSION.format("12")),
        ("+1 415 555 0132 ext. 7", EXTENSION.format("7")),
        ("tel:+14155550132;ext=9", EXTENSION.format("9")),
        ("+91*7359043943", "invalid phone: unexpected characters (*)"),
        ("98450 12345 / 98450 12346", "invalid phone: too long"),
    ],
)  # fmt: skip
def test_invalid_numbers_give_the_reason(raw: str, expected: str) -> None:
    phone = normalise_phone(raw, "IN")
    assert (phone.e164, phone.reason) == (None, expected)
    assert not phone.valid


def test_typed_number_with_trailing_zeros_is_taken_at_its_word() -> None:
    """Only a bare numeric cell can be a scientific-notation victim; "+91 …" was typed as text."""
    assert normalise_phone("+91 69460 00000", "IN").e164 == "+916946000000"
    assert normalise_phone("06946000000", "IN").e164 == "+916946000000"


# --- default_region -----------------------------------------------------------------------------


def test_number_without_country_code_needs_a_default_region() -> None:
    assert (
        reason("7359043943", None) == "invalid phone: no country code (+..) and no default_region"
    )
    assert reason("917359043943.0", None) == (
        "invalid phone: no country code (+..) and no default_region"
    )
    assert normalise_phone("0091 7359043943", None).e164 == E164


def test_default_region_is_never_used_to_guess_another_country() -> None:
    """A UK number whose + was lost is not silently re-homed to the default region."""
    assert reason("447400123456", "IN").startswith("invalid phone: ")
    assert normalise_phone("4155550132", "US").e164 == "+14155550132"
    assert reason("14155550132", "IN").startswith("invalid phone: ")


def test_default_region_is_case_insensitive_and_unknown_regions_are_named() -> None:
    assert normalise_phone("7359043943", "in").e164 == E164
    assert reason("7359043943", "XX") == "invalid phone: unknown default_region 'XX'"


# --- invisible characters are removed, and said so (SPEC 7) -------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "+91\u200b7359043943",
        "\u202a+917359043943\u202c",
        "+91 73590\u200e 43943",
        "+9173590\x0043943",
    ],
)
def test_invisible_characters_are_removed_and_reported_as_changed(raw: str) -> None:
    cleaned = "phone cleaned of invisible characters"
    assert normalise_phone(raw, "IN") == Phone(E164, "", changed=True, note=cleaned)


def test_invalid_number_still_reports_it_was_changed() -> None:
    phone = normalise_phone("98\u200b450", "IN")
    assert (phone.e164, phone.reason, phone.changed) == (None, "invalid phone: too short", True)


def test_visible_formatting_is_not_a_change() -> None:
    assert not normalise_phone("'+91\u00a073590-43943", "IN").changed


# --- works in a worker process ------------------------------------------------------------------


def test_normalise_phone_runs_in_a_worker_process() -> None:
    assert pickle.loads(pickle.dumps(normalise_phone("7359043943", "IN"))).e164 == E164
    with ProcessPoolExecutor(max_workers=1) as pool:
        phones = list(pool.map(normalise_phone, ["7359043943", "98450"], ["IN", "IN"]))
    assert [p.e164 for p in phones] == [E164, None]


# --- property: formatting noise never changes the number ----------------------------------------

REGIONS = ["IN", "US", "GB", "DE", "FR", "BR", "AU", "JP", "AE", "SG", "NG", "ZA", "MX", "IT"]
EXAMPLES = [
    number
    for region in REGIONS
    for kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE)
    if (number := phonenumbers.example_number_for_type(region, kind)) is not None
]
INVISIBLE = ["\u200b", "\u200e", "\u202e", "\u2066", "\ufeff", "\x07"]
SEPARATORS = [" ", ".", "-", "\u00a0", "  ", " - ", "/", "\u2013"]


@st.composite
def noisy(draw: st.DrawFn) -> tuple[str, str | None, str]:
    """(noisy text, default_region, expected E.164) for a valid example number."""
    number = draw(st.sampled_from(EXAMPLES))
    expected = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    region = phonenumbers.region_code_for_number(number)
    national = phonenumbers.national_significant_number(number)
    assume(not national.endswith("00000"))
    style = draw(st.sampled_from(["+", "00", "national"]))
    if style == "national":
        digits = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
        digits = "".join(c for c in digits if c.isdigit())
        prefix, default_region = "", region
    else:
        digits, prefix = f"{number.country_code}{national}", style
        default_region = draw(st.sampled_from([None, "IN", "US", region]))
    # Cut the digits into groups and glue them with random separators, some in brackets.
    cuts = sorted(draw(st.sets(st.integers(1, len(digits) - 1), max_size=4)))
    groups = [digits[a:b] for a, b in zip([0, *cuts], [*cuts, len(digits)], strict=True)]
    parts = []
    for group in groups:
        bracket = draw(st.sampled_from(["", "()", "[]"]))
        parts.append(bracket[:1] + group + bracket[1:])
        parts.append(draw(st.sampled_from(SEPARATORS)))
    text = prefix + draw(st.sampled_from(["", " "])) + "".join(parts[:-1])
    if draw(st.booleans()):
        text = draw(st.sampled_from(["tel:", "TEL:", "Tel: "])) + text
    if draw(st.booleans()):
        text = "'" + text
    text = draw(st.sampled_from(["", " ", "\u00a0"])) + text + draw(st.sampled_from(["", " "]))
    return text, default_region, expected


@settings(max_examples=300, deadline=None)
@given(noisy())
def test_formatting_noise_gives_the_same_e164(case: tuple[str, str | None, str]) -> None:
    text, default_region, expected = case
    assert normalise_phone(text, default_region) == Phone(expected, "", changed=False)


@settings(max_examples=100, deadline=None)
@given(
    noisy(),
    st.lists(
        st.sampled_from(["\u200b", "\u200e", "\u202e", "\u2066", "\ufeff", "\x07"]), min_size=1
    ),
    st.randoms(use_true_random=False),
)
def test_invisible_characters_anywhere_give_the_same_e164_and_changed(
    case: tuple[str, str | None, str], junk: list[str], rnd: object
) -> None:
    text, default_region, expected = case
    chars = list(text)
    for char in junk:
        chars.insert(rnd.randrange(len(chars) + 1), char)  # type: ignore[attr-defined]
    phone = normalise_phone("".join(chars), default_region)
    assert (phone.e164, phone.reason, phone.changed) == (expected, "", True)


# --- the sample data says what make_samples.py says it is -----------------------------------------


@pytest.mark.parametrize("name", ["contacts.csv", "contacts.xlsx"])
def test_sample_phones_normalise_as_the_generator_documents(name: str) -> None:
    contacts = runpy.run_path(str(SAMPLES / "make_samples.py"))["CONTACTS"]
    expected = {n: c[3] for n, c in enumerate(contacts, start=1) if c is not None}
    sheet = open_sheet(SAMPLES / name)
    phone = sheet.column_index("phone", role="phone")
    got = {
        n: normalise_phone(cells[phone], "IN").e164
        for chunk in iter_rows(sheet, raw_columns=frozenset({phone}))
        for n, cells in chunk
    }
    assert got == expected
    assert sum(e is None for e in got.values()) == 6  # 2 scientific, zeros, short, letters, empty


def test_sample_dnc_numbers_match_two_sample_contacts() -> None:
    dnc = open_sheet(SAMPLES / "dnc.csv")
    listed = {
        normalise_phone(cells[0], "IN").e164 for chunk in iter_rows(dnc) for _, cells in chunk
    }
    contacts = runpy.run_path(str(SAMPLES / "make_samples.py"))["CONTACTS"]
    assert len(listed & {c[3] for c in contacts if c}) == 2 and None not in listed


def _random_numbers(seed: int, count: int) -> list[phonenumbers.PhoneNumber]:
    """Example numbers of every region with random digits changed, added or dropped."""
    import random

    rng = random.Random(seed)
    regions = sorted(phonenumbers.SUPPORTED_REGIONS)
    numbers = []
    while len(numbers) < count:
        region = rng.choice(regions)
        example = phonenumbers.example_number(region)
        digits = list(phonenumbers.national_significant_number(example) if example else "1234567")
        for _ in range(rng.randint(0, 3)):
            digits[rng.randrange(len(digits))] = str(rng.randint(0, 9))
        if rng.random() < 0.2:
            digits.append(str(rng.randint(0, 9)))
        if rng.random() < 0.2 and len(digits) > 3:
            digits.pop()
        code = phonenumbers.country_code_for_region(region)
        with contextlib.suppress(phonenumbers.NumberParseException):
            numbers.append(phonenumbers.parse(f"+{code}{''.join(digits)}", None))
    return numbers


def test_fast_validity_agrees_with_phonenumbers_everywhere():
    # Written as E.164 and read back: the number a sheet would hold (a leading zero kept by
    # `parse` is part of the national number then, as it is when dialer reads it).
    numbers = [
        phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164)
        for n in _random_numbers(seed=7, count=10_000)
    ]
    valid = {text: phonenumbers.is_valid_number(phonenumbers.parse(text, None)) for text in numbers}
    disagree = [text for text in numbers if normalise_phone(text, None).valid != valid[text]]
    assert disagree == []
    assert 0.3 < sum(valid.values()) / len(valid) < 0.8


@pytest.mark.parametrize(
    "written",
    ["+91ー7359ー043943", "+91 7359[043]943", "+91 (735) 904-3943", "+91\u20117359\u2011043943"],
)
def test_every_number_the_parser_reads_is_masked_in_free_text(written: str):
    # The parser and the masker share one list of separators: none can be read but shown whole.
    assert normalise_phone(written, "IN").e164 == "+917359043943"
    shown = mask_text(f"row 4: {written} is invalid")
    assert "043943" not in shown.replace("*", "") and shown.endswith("943 is invalid")
