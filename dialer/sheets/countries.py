"""Whose country a row's number belongs to: a sheet's country cell -> a region, and a number ->
its country's code and name for people to check (SPEC 4.3a).

    >>> region_of_cell("United States"), region_of_cell("+91"), region_of_cell("gb")
    ('US', 'IN', 'GB')
    >>> region_of_cell("Narnia") is None
    True
    >>> looks_north_american("(512) 553-9542"), looks_north_american("98765 43210")
    (True, False)
    >>> country_of("+15125539542"), country_name("US")
    ('US', 'United States')

A national number read with the wrong region is a valid number of a stranger (`(512) 553-9542`
read as Indian is a landline in Kanpur), so shop and CRM exports, which mix countries and say
each row's country in a column, are read with that column. Names come from phonenumbers' own
English geocoding data, so every region it can dial has a name; a few common aliases
("UK", "USA", "England") are added here.
"""

from __future__ import annotations

import functools
import re
import unicodedata

import phonenumbers
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

# The +1 plan: a number written in its shape belongs to one of these regions.
NANP_REGIONS = frozenset(phonenumbers.region_codes_for_country_code(1))
NANP_SHAPE_REASON = "written like a North American number; add +1 or a country column"
# What people write for a country besides its English name (after `_fold`).
_ALIASES = {
    "uk": "GB",
    "great britain": "GB",
    "britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "usa": "US",
    "us": "US",
    "u s": "US",
    "u s a": "US",
    "america": "US",
    "united states of america": "US",
    "uae": "AE",
    "can": "CA",
    "ind": "IN",
    "gbr": "GB",
    "aus": "AU",
    "bharat": "IN",
    "hindustan": "IN",
    "south korea": "KR",
    "korea": "KR",
    "russia": "RU",
    "vietnam": "VN",
    "czechia": "CZ",
    "czech republic": "CZ",
    "holland": "NL",
    "the netherlands": "NL",
    "ivory coast": "CI",
}
# Regions phonenumbers has no English name for in its geocoding data.
_NAMES = {
    "AC": "Ascension Island",
    "BL": "Saint Barthélemy",
    "EH": "Western Sahara",
    "MF": "Saint Martin",
    "TA": "Tristan da Cunha",
    "XK": "Kosovo",
}
# `(ddd) ddd-dddd`, `ddd-ddd-dddd`, `ddd.ddd.dddd`, optionally after a `1` and a separator:
# the ways the +1 plan writes its ten digits, and no other country writes them so.
# Area codes and exchanges start with 2-9, which keeps other countries' numbers out.
_NANP_SHAPE = re.compile(
    r"(?:1[\s.-]?)?(?:\([2-9]\d\d\)[\s.-]?[2-9]\d\d[\s.-]\d{4}"
    r"|[2-9]\d\d-[2-9]\d\d-\d{4}|[2-9]\d\d\.[2-9]\d\d\.\d{4})"
)
_CALLING_CODE = re.compile(r"\+?\s*(\d{1,3})")
_NOT_LETTERS = re.compile(r"[^a-z0-9]+")


def _fold(text: str) -> str:
    """'  Côte d’Ivoire ' -> 'cote d ivoire': case, accents and punctuation do not matter."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return _NOT_LETTERS.sub(" ", plain.lower()).strip()


@functools.cache
def _by_name() -> dict[str, str]:
    names = {_fold(country_name(r)): r for r in phonenumbers.SUPPORTED_REGIONS}
    names.update(_ALIASES)
    return names


@functools.lru_cache(maxsize=4096)
def region_of_cell(value: str) -> str | None:
    """The region a country cell names (ISO alpha-2, English name, or calling code); None when
    it names none. An empty cell is the caller's business (it means "no country given")."""
    text = value.strip()
    if (match := _CALLING_CODE.fullmatch(text)) is not None:
        region = phonenumbers.region_code_for_country_code(int(match[1]))
        return None if region == phonenumbers.UNKNOWN_REGION else _dialable(region)
    if len(text) == 2 and text.isascii() and text.upper() in phonenumbers.SUPPORTED_REGIONS:
        return text.upper()
    return _by_name().get(_fold(text))


def _dialable(region: str) -> str | None:
    # "001" is phonenumbers' region for non-geographic codes (+800, +882): no country.
    return region if region in phonenumbers.SUPPORTED_REGIONS else None


def looks_north_american(text: str) -> bool:
    """True for a number written in the +1 plan's shape (no `+` prefix)."""
    return _NANP_SHAPE.fullmatch(text.strip()) is not None


@functools.cache
def country_name(region: str) -> str:
    """'US' -> 'United States'; the code itself for a region without a name."""
    # Imported here: the geocoder's data is ~95 MB resident, for a name that only some
    # commands show (a sync never does).
    from phonenumbers import geocoder

    example = phonenumbers.example_number(region)
    name = geocoder.country_name_for_number(example, "en") if example else ""
    return name or _NAMES.get(region, region)


# "+917" -> "IN"; "+144" -> "" (a shared calling code: the region needs more digits).
_REGION_OF_START: dict[str, str] = {}
# Prefix -> region, for calling codes several regions share; bounded by the prefixes seen.
_REGION_OF_PREFIX: dict[str, str] = {}
_MAX_PREFIXES = 65_536


def country_of(e164: str) -> str:
    """The region of a valid E.164 number ('??' when phonenumbers cannot tell).

    Called for every ready row of a check, so the common answer is one dict lookup: calling
    codes are at most 3 digits, so "+" and 3 digits name one region unless several regions
    share the code (+1, +44, +7...); then the area code tells, and answers are kept by a
    prefix that long, so a million-row check costs a few thousand lookups."""
    start = e164[:4]
    region = _REGION_OF_START.get(start)
    if region is None:
        region = _region_of_start(start)
        if len(_REGION_OF_START) < _MAX_PREFIXES:
            _REGION_OF_START[start] = region
    return region or _region_of_prefix(e164)


def _region_of_start(start: str) -> str:
    for length in (1, 2, 3):  # calling codes are prefix-free
        regions = COUNTRY_CODE_TO_REGION_CODE.get(int(start[1 : 1 + length] or 0))
        if regions:
            return (_dialable(regions[0]) or "??") if len(regions) == 1 else ""
    return "??"


def _region_of_prefix(e164: str) -> str:
    # The +1 plan gives each area code to one region; elsewhere 4 digits after a code of up
    # to 3 tell the island from the mainland (+44 7624 is the Isle of Man).
    prefix = e164[:5] if e164.startswith("+1") else e164[:8]
    region = _REGION_OF_PREFIX.get(prefix)
    if region is None:
        try:
            region = phonenumbers.region_code_for_number(phonenumbers.parse(e164)) or "??"
        except phonenumbers.NumberParseException:
            region = "??"
        if len(_REGION_OF_PREFIX) < _MAX_PREFIXES:
            _REGION_OF_PREFIX[prefix] = region
    return region
