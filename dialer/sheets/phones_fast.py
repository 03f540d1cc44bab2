"""`phonenumbers.parse` + `is_valid_number` for the common shapes, from phonenumbers' own metadata.

    >>> fast_parse("917359043943", "IN")          # (country code, national number)
    (91, '7359043943')
    >>> is_valid(91, "7359043943")
    True
    >>> fast_parse("+99912", None) is None          # not sure: ask phonenumbers
    True

A cleaned cell (`+` and ASCII digits, or ASCII digits and a default region) goes through the
same steps as `phonenumbers.parse` (international prefix, country code, national prefix,
possible lengths) and `is_valid_number` (the region's number patterns), each region's patterns
compiled once. The answer is an E.164 number only when phonenumbers would say the same and call
it valid; anything else (an invalid number, an error, an international prefix such as `011`, a
non-geographic code such as +800) is None, and the caller asks phonenumbers, which also says why.
tests/test_phones_fast.py holds every answer to phonenumbers' over a generated corpus.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from phonenumbers import PhoneMetadata, ValidationResult
from phonenumbers.phonenumberutil import (
    COUNTRY_CODE_TO_REGION_CODE,
    REGION_CODE_FOR_NON_GEO_ENTITY,
)

# phonenumbers' bounds (_MIN_LENGTH_FOR_NSN, _MAX_LENGTH_FOR_NSN); beyond them it raises.
_MIN_NSN, _MAX_NSN = 2, 17
# Fewer digits than this after a `+` is an error in phonenumbers (too short after IDD); more
# than this is never a number. Both go to phonenumbers, which says why.
_MIN_DIGITS, _MAX_DIGITS = 3, 20
_TOO_SHORT, _TOO_LONG = ValidationResult.TOO_SHORT, ValidationResult.TOO_LONG
# Lengths after which parse keeps the national number as it was before stripping a prefix.
_KEEP_PREFIX = frozenset(
    {
        ValidationResult.TOO_SHORT,
        ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
        ValidationResult.INVALID_LENGTH,
    }
)
# The number types of `_number_type_helper`: a number is valid when one matches. Mobile and
# fixed line first, the usual answers; the order does not change a yes/no.
_TYPES = (
    "mobile",
    "fixed_line",
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
)
_Match = Callable[[str], object]
_Desc = tuple[frozenset[int], _Match]  # (possible lengths, empty = any; fullmatch)


def _never(_: str) -> None:
    return None


def _desc(desc: Any) -> _Desc | None:
    """A PhoneNumberDesc as `_is_number_matching_desc` reads it; None where nothing matches."""
    if desc is None or not desc.national_number_pattern:
        return None
    return frozenset(desc.possible_length), re.compile(desc.national_number_pattern).fullmatch


@dataclass(slots=True)
class Region:
    """One region's metadata, compiled: what parse and validation read of it."""

    code: int
    code_text: str
    idd: _Match  # the international prefix (`00`, `011`): matched at the start
    general: _Match  # the general national number pattern (fullmatch)
    lengths: tuple[int, ...]  # general possible lengths, sorted
    local: frozenset[int]  # lengths possible only locally
    prefix: re.Pattern[str] | None  # national_prefix_for_parsing
    rule: str  # national_prefix_transform_rule ("" when none)
    general_desc: _Desc
    types: tuple[_Desc, ...]
    leading: _Match | None  # leading_digits, which picks a region sharing a country code
    by_length: dict[int, tuple[_Match, ...]] = field(default_factory=dict)

    @classmethod
    def compile(cls, metadata: Any) -> Region | None:
        general = _desc(metadata.general_desc)
        lengths = tuple(metadata.general_desc.possible_length)
        prefix = metadata.national_prefix_for_parsing or None
        compiled_prefix = re.compile(prefix) if prefix else None
        rule = metadata.national_prefix_transform_rule or ""
        if (
            general is None
            or not lengths
            or (rule and compiled_prefix and not compiled_prefix.groups)
        ):
            return None  # metadata phonenumbers itself would stumble on: let it
        names = _TYPES[1:] if metadata.same_mobile_and_fixed_line_pattern else _TYPES
        types = tuple(d for d in (_desc(getattr(metadata, name)) for name in names) if d)
        idd = metadata.international_prefix
        return cls(
            code=metadata.country_code,
            code_text=str(metadata.country_code),
            idd=re.compile(idd).match if idd else _never,
            general=general[1],
            lengths=lengths,
            local=frozenset(metadata.general_desc.possible_length_local_only),
            prefix=compiled_prefix,
            rule=rule,
            general_desc=general,
            types=types,
            leading=re.compile(metadata.leading_digits).match if metadata.leading_digits else None,
        )

    def test_length(self, number: str) -> int:
        """`_test_number_length` for any type (the general description)."""
        size, lengths = len(number), self.lengths
        if size in self.local:
            return ValidationResult.IS_POSSIBLE_LOCAL_ONLY
        if size == lengths[0]:
            return ValidationResult.IS_POSSIBLE
        if size < lengths[0]:
            return _TOO_SHORT
        if size > lengths[-1]:
            return _TOO_LONG
        return ValidationResult.IS_POSSIBLE if size in lengths else ValidationResult.INVALID_LENGTH

    def strip_prefix(self, number: str) -> str:
        """`_maybe_strip_national_prefix_carrier_code`: the number without its national
        prefix (`0`, `1`, a carrier code), unless only the original fits the general pattern."""
        prefix = self.prefix
        if prefix is None or not number:
            return number
        match = prefix.match(number)
        if match is None:
            return number
        if not self.rule or match.groups()[-1] is None:
            stripped = number[match.end() :]
        else:
            stripped = prefix.sub(self.rule, number, count=1)
        if not self.general(stripped) and self.general(number):
            return number
        return stripped

    def national(self, number: str) -> str | None:
        """The end of `parse`: the national significant number, the national prefix stripped
        where the rest is still possible; None where phonenumbers would raise."""
        if len(number) < _MIN_NSN:
            return None
        stripped = self.strip_prefix(number)
        if stripped is not number and self.test_length(stripped) not in _KEEP_PREFIX:
            number = stripped
        return number if _MIN_NSN <= len(number) <= _MAX_NSN else None

    def valid(self, nsn: str) -> bool:
        """`_number_type_helper(nsn, metadata) != UNKNOWN`: the general description and then
        one type's (lengths, pattern)."""
        size = len(nsn)
        fits = self.by_length.get(size)
        if fits is None:
            lengths, general = self.general_desc
            if lengths and size not in lengths:
                fits = ()
            else:
                fits = (general, *(m for lens, m in self.types if not lens or size in lens))
            self.by_length[size] = fits  # bounded: a few dozen lengths at most
        if not fits or not fits[0](nsn):
            return False
        for match in fits[1:]:  # noqa: SIM110 - a loop is quicker than any() on a generator
            if match(nsn):
                return True
        return False


# Compiled on first use; bounded by the regions in phonenumbers' metadata (~250).
_REGIONS: dict[str, Region | None] = {}
# Country code -> the regions that share it, in phonenumbers' order; None: not handled here.
_CODES: dict[int, tuple[Region, ...] | None] = {}


def _region(code: str) -> Region | None:
    if code not in _REGIONS:
        metadata = PhoneMetadata.metadata_for_region(code, None)
        _REGIONS[code] = Region.compile(metadata) if metadata is not None else None
    return _REGIONS[code]


def regions_for(country_code: int) -> tuple[Region, ...] | None:
    """The regions of a country code, main one first; None for non-geographic codes (+800...)
    and for a region whose metadata this module does not handle."""
    if country_code not in _CODES:
        names = COUNTRY_CODE_TO_REGION_CODE.get(country_code, ())
        regions = tuple(_region(name) for name in names)
        supported = names and REGION_CODE_FOR_NON_GEO_ENTITY not in names and None not in regions
        _CODES[country_code] = regions if supported else None  # type: ignore[assignment]
    return _CODES[country_code]


_CODE_TEXTS = {str(code): code for code in COUNTRY_CODE_TO_REGION_CODE}


def _country_code(digits: str) -> tuple[int, str]:
    """`_extract_country_code`: the leading 1-3 digits that are a country code, and the rest
    (none starts with 0)."""
    for size in (1, 2, 3):
        code = _CODE_TEXTS.get(digits[:size])
        if code is not None:
            return code, digits[size:]
    return 0, digits


def fast_parse(compact: str, region_code: str | None) -> tuple[int, str] | None:
    """(country code, national significant number) as `phonenumbers.parse(compact, region_code)`
    gives them, for `+` and ASCII digits, or digits and a region; None: ask phonenumbers."""
    if not compact.isascii():
        return None
    if compact[:1] == "+":
        digits = compact[1:]
        if not (_MIN_DIGITS <= len(digits) <= _MAX_DIGITS and digits.isdigit()):
            return None
        code, rest = _country_code(digits)
        regions = regions_for(code) if code else None
        if regions is None:
            return None
        national = regions[0].national(rest)
        return None if national is None else (code, national)
    if region_code is None or not (
        _MIN_DIGITS <= len(compact) <= _MAX_DIGITS and compact.isdigit()
    ):
        return None
    home = _region(region_code)
    if home is None or home.idd(compact):
        return None  # an international prefix such as 011: phonenumbers' own rules decide
    code = home.code
    if compact.startswith(home.code_text):
        # The default region's country code without the `+`: kept as the country code if only
        # the rest fits the region's pattern, or the whole is too long (parse's rule).
        rest = home.strip_prefix(compact[len(home.code_text) :])
        general = home.general
        if (not general(compact) and general(rest)) or home.test_length(compact) == _TOO_LONG:
            regions = regions_for(code)
            if regions is None:
                return None
            national = regions[0].national(rest)
            return None if national is None else (code, national)
    national = home.national(compact)
    return None if national is None else (code, national)


def is_valid(country_code: int, nsn: str) -> bool | None:
    """`phonenumbers.is_valid_number` for a parsed number; None for codes not handled here.

    Where regions share a code (+1, +44, +7), the number's region is the first whose leading
    digits match, or that validates it (`region_code_for_number`), as phonenumbers picks it."""
    regions = _CODES.get(country_code) or regions_for(country_code)
    if regions is None:
        return None
    if len(regions) == 1:
        return regions[0].valid(nsn)
    for region in regions:
        if region.leading is not None:
            if region.leading(nsn):
                return region.valid(nsn)
        elif region.valid(nsn):
            return True
    return False
