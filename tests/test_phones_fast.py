"""The fast path of dialer.sheets.phones gives phonenumbers' answer, or none: a differential test.

Every number is generated (no file): phonenumbers' example number for each type of each region,
then mutated (a digit dropped, added or changed, trailing zeros), then written the ways people and
spreadsheets write numbers (SPEC 4.3). The fast path must agree with phonenumbers itself
(`normalise_phone(..., fast=False)`, which calls `phonenumbers.parse` and `is_valid_number`) on
every one; the last tests check that a broken fast path is caught and that it is really taken.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import phonenumbers
import pytest
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

from dialer.sheets import phones_fast
from dialer.sheets.phones import normalise_phone
from dialer.sheets.phones_fast import Region, fast_parse, is_valid
from dialer.sheets.reader import NumericText

# The regions whose numbers a campaign most often holds: every mangling of SPEC 4.3 is tried on
# them. Every other region still gets every shape of a cleaned number (test 1).
MAIN_REGIONS = (
    "IN", "US", "GB", "DE", "FR", "BR", "AE", "SG", "AU", "CA", "IT", "ES", "NL", "MX", "JP",
    "ZA", "NG", "KE", "PK", "BD", "PH", "ID", "SA", "RU", "KZ", "AR", "CN", "GG", "CX",
)  # fmt: skip
ALL_REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)
TYPES = [
    getattr(PhoneNumberType, name)
    for name in dir(PhoneNumberType)
    if name.isupper() and name not in ("UNKNOWN", "FIXED_LINE_OR_MOBILE")
]


def _mutants(nsn: str, rng: random.Random, count: int) -> list[str]:
    """The number itself and `count` near misses: a digit dropped, added or changed, or the last
    digits zeroed (what scientific notation leaves)."""
    out = [nsn]
    for _ in range(count):
        digits = list(nsn)
        kind = rng.randrange(4)
        if kind == 0 and len(digits) > 2:
            del digits[rng.randrange(len(digits))]
        elif kind == 1:
            digits.insert(rng.randrange(len(digits) + 1), str(rng.randrange(10)))
        elif kind == 2:
            digits[rng.randrange(len(digits))] = str(rng.randrange(10))
        else:
            digits[-5:] = "00000"
        out.append("".join(digits))
    return out


def _numbers(regions: list[str] | tuple[str, ...], mutants: int, seed: int) -> Iterator[tuple]:
    """(region, country code, national significant number, national dialling digits)."""
    rng = random.Random(seed)
    for region in regions:
        code = phonenumbers.country_code_for_region(region)
        for kind in TYPES:
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            national = phonenumbers.format_number(example, PhoneNumberFormat.NATIONAL)
            dialled = "".join(c for c in national if c.isdigit())  # with the trunk prefix
            nsn = phonenumbers.national_significant_number(example)
            for number in _mutants(nsn, rng, mutants):
                yield region, code, number, dialled
        for _ in range(mutants * 4):  # and digits at random, of every length
            digits = "".join(rng.choices("0123456789", k=rng.randint(3, 16)))
            yield region, code, digits, rng.choice(("0", "1", "")) + digits


def _cleaned_shapes(region: str, code: int, nsn: str, dialled: str) -> list[tuple]:
    """(compact text, default region) as normalise_phone hands them over after cleaning."""
    other = "US" if region != "US" else "IN"
    return [
        (f"+{code}{nsn}", None),
        (f"+{code}0{nsn}", None),  # "+44 (0)20...": a trunk prefix after the country code
        (f"+{code}1{nsn}", None),
        (nsn, region),
        (dialled, region),
        (f"0{nsn}", region),
        (f"1{nsn}", region),
        (f"{code}{nsn}", region),  # the default region's country code without the +
        (f"{code}0{nsn}", region),
        (f"{code}00{nsn}", region),
        (f"011{code}{nsn}", region),  # an international prefix (US), other regions' digits
        (nsn, other),
        (f"{code}{nsn}", other),
    ]


def _reference(compact: str, region: str | None) -> tuple[int, str, bool] | None:
    try:
        number = phonenumbers.parse(compact, region)
    except NumberParseException:
        return None
    nsn = phonenumbers.national_significant_number(number)
    return number.country_code, nsn, phonenumbers.is_valid_number(number)


def parse_disagreements(cases: list[tuple[str, str | None]]) -> Iterator[str]:
    """Cases where the fast parse or validity says something phonenumbers does not."""
    for compact, region in cases:
        parsed = phones_fast.fast_parse(compact, region)
        if parsed is None:
            continue  # phonenumbers decides: nothing to compare
        expected = _reference(compact, region)
        valid = phones_fast.is_valid(*parsed)
        if expected is None or parsed != expected[:2] or valid != expected[2]:
            yield f"{compact!r} in {region}: fast {parsed} {valid}, phonenumbers {expected}"


@pytest.fixture(scope="module")
def every_region_cases() -> list[tuple[str, str | None]]:
    return [
        case
        for number in _numbers(ALL_REGIONS, mutants=2, seed=10)
        for case in _cleaned_shapes(*number)
    ]


# 1. The parse and the validity, in every region: exactly phonenumbers' -------------------------


def test_fast_parse_and_validity_agree_with_phonenumbers_in_every_region(
    every_region_cases: list[tuple[str, str | None]],
) -> None:
    assert len(every_region_cases) > 40_000
    assert list(parse_disagreements(every_region_cases)) == []


# 2. Every mangling of SPEC 4.3, end to end: the same Phone, reason and notes included ----------

_SCRIPTS = {"Arabic-Indic": 0x660, "Extended Arabic-Indic": 0x6F0, "Devanagari": 0x966}


def _script(text: str, zero: int) -> str:
    return "".join(chr(zero + int(c)) if c.isdigit() else c for c in text)


def _grouped(digits: str, separator: str, rng: random.Random) -> str:
    cuts = sorted(rng.sample(range(1, len(digits)), min(3, len(digits) - 1)))
    return separator.join(digits[a:b] for a, b in zip([0, *cuts], [*cuts, None], strict=True))


def _manglings(code: int, nsn: str, dialled: str, rng: random.Random) -> list[str]:
    """One number as spreadsheets, CRMs and people write it."""
    full = f"{code}{nsn}"
    bare = [full, nsn, dialled]
    out = [f"+{full}", f"00{full}", *bare]
    for digits in bare:
        exponent = len(digits) - 1
        out += [
            f"{digits}.0",
            f"{digits}.00",
            f"{digits[0]}.{digits[1:]}E+{exponent}",  # scientific notation with every digit
            f"{digits[0]},{digits[1:]}e+{exponent}",
            f"{digits[0]}.{digits[1:6]}E+{exponent}",  # ... and truncated by it
            f"{digits[0]}.{digits[1:]}0E+{exponent + 1}",
        ]
    for separator in (" ", ".", "-", "\u00a0", "\u202f", " - ", "/"):
        out += [
            f"+{code}{separator}{_grouped(nsn, separator, rng)}",
            _grouped(dialled, separator, rng),
        ]
    out += [
        f"(+{code}) ({nsn[:3]}) {nsn[3:]}",
        f"+{code} [{nsn[:2]}] {nsn[2:]}",
        f"({dialled[:4]}) {dialled[4:]}",
        f"'+{full}",
        f"'{dialled}",
        f'="+{full}"',
        f'="{dialled}"',
        f"tel:+{full}",
        f"TEL: +{code}-{nsn}",
        f"tel:{dialled}",
        f"\uff0b{full}",  # full-width plus
        f"  +{full}\t",
        f"+{code}\u200b{nsn}",  # an invisible character: changed, and said so
        f"\u202a{dialled}\u202c",
        f"-{full}",
        f"+{full} x12",
        f"{dialled}a",
    ]
    out += [_script(f"+{full}", zero) for zero in _SCRIPTS.values()]
    out += [_script(dialled, 0xFF10), _script(nsn[:4], 0x660) + nsn[4:]]  # mixed: refused
    return out


def phone_disagreements(cases: list[tuple[str, str | None]]) -> Iterator[str]:
    for raw, region in cases:
        fast, slow = normalise_phone(raw, region), normalise_phone(raw, region, fast=False)
        if fast != slow:
            yield f"{raw!r} in {region}: fast {fast}, phonenumbers {slow}"


@pytest.fixture(scope="module")
def mangled_cases() -> list[tuple[str, str | None]]:
    """Each mangling of each number, with its region as default_region; every fourth also with
    another default region (a `+` number must not care, a national one becomes another)."""
    rng = random.Random(43)
    cases: list[tuple[str, str | None]] = []
    for region, code, nsn, dialled in _numbers(MAIN_REGIONS, mutants=1, seed=42):
        for raw in _manglings(code, nsn, dialled, rng):
            for text in (raw, NumericText(raw)) if raw.isdigit() else (raw,):
                cases.append((text, region))
                if len(cases) % 4 == 0:
                    cases.append((text, "IN" if region != "IN" else "GB"))
    return cases


def test_every_spreadsheet_mangling_gives_phonenumbers_answer(
    mangled_cases: list[tuple[str, str | None]],
) -> None:
    assert len(mangled_cases) > 25_000
    assert list(phone_disagreements(mangled_cases)) == []


# 3. The test is able to fail, and the fast path is really taken --------------------------------

_TEST_LENGTH = Region.test_length
_NATIONAL = Region.national
_POSSIBLE = phonenumbers.ValidationResult.IS_POSSIBLE


def _strip_nothing(self: Region, number: str) -> str:
    return number


def _length_but(result: int) -> Callable[[Region, str], int]:
    """`test_length` that says "possible" where it should say `result`."""

    def test_length(self: Region, number: str) -> int:
        found = _TEST_LENGTH(self, number)
        return _POSSIBLE if found == result else found

    return test_length


def _prefix_always_stripped(self: Region, number: str) -> str | None:
    """`national` that strips the national prefix even where parse keeps it."""
    return _NATIONAL(self, self.strip_prefix(number))


def _no_length_bound(self: Region, number: str) -> str | None:
    """`national` that lets through what phonenumbers refuses as too long (over 17 digits)."""
    found = _NATIONAL(self, number)
    return number if found is None and len(number) > 17 else found


def _first_region_only(country_code: int, nsn: str) -> bool | None:
    regions = phones_fast.regions_for(country_code)
    return None if regions is None else regions[0].valid(nsn)


@pytest.mark.parametrize(
    ("target", "name", "broken"),
    [
        (Region, "strip_prefix", _strip_nothing),
        (Region, "national", _prefix_always_stripped),
        (Region, "test_length", _length_but(phonenumbers.ValidationResult.TOO_LONG)),
        (
            Region,
            "test_length",
            _length_but(phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY),
        ),
        (Region, "national", _no_length_bound),
        (phones_fast, "is_valid", _first_region_only),
    ],
    ids=[
        "no-national-prefix",
        "prefix-always-stripped",
        "too-long-rule",
        "local-only-lengths",
        "nsn-bound",
        "shared-country-codes",
    ],
)
def test_a_broken_fast_path_is_caught(
    monkeypatch: pytest.MonkeyPatch,
    every_region_cases: list[tuple[str, str | None]],
    target: object,
    name: str,
    broken: object,
) -> None:
    monkeypatch.setattr(target, name, broken)
    assert next(parse_disagreements(every_region_cases), None) is not None


def test_a_fast_path_that_skips_validation_is_caught_end_to_end(
    monkeypatch: pytest.MonkeyPatch, mangled_cases: list[tuple[str, str | None]]
) -> None:
    """A wrong parse of an invalid number only sends it to phonenumbers; a wrong "valid" is
    what would call a stranger, and the mangled corpus must catch it."""
    monkeypatch.setattr("dialer.sheets.phones.is_valid", lambda code, nsn: True)
    assert next(phone_disagreements(mangled_cases), None) is not None


def test_common_shapes_take_the_fast_path() -> None:
    """Every valid `+CC…` or national number of the main regions is told without
    phonenumbers.parse (only international prefixes, such as 011, are left to it)."""
    told = total = 0
    for region, code, nsn, _ in _numbers(MAIN_REGIONS, mutants=0, seed=0):
        for compact, default in ((f"+{code}{nsn}", None), (nsn, region), (f"{code}{nsn}", region)):
            if normalise_phone(compact, default, fast=False).valid:
                total += 1
                parsed = fast_parse(compact, default)
                told += parsed is not None and bool(is_valid(*parsed))
    assert total > 500
    assert told == total
