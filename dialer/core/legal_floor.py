"""Legal calling hours: the floor under every campaign's `[window]`, per country, each entry
with its source; what a campaign may write to tighten it (`[window.legal]`) and the dates on
which it calls nobody (`[window] skip_dates`).

    FLOOR["US"].shown()  # '08:00–21:00'
    tightening_problem("US", "07:00-21:00")
    # "key 'window.legal.US' = '07:00-21:00' is wider than the legal hours in US (08:00–21:00,
    # TCPA): legal hours can only be tightened"
    legal = tightened({"US": "09:00-20:00"})          # the floor, US tightened
    skip_dates_problem(["2026-12-25"]), skip_dates(["2026-12-25"])

Pure data and checks, below the campaign parser (which calls the checks) and the engine (which
judges a number at a moment: `engine.legal_hours`). Hours are the callee's local time, start
included, end excluded ("08:00–21:00" refuses 21:00 sharp), on each day of the week.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date

# The campaign file's keys these check, named in their errors.
LEGAL_KEY = "window.legal"
SKIP_DATES_KEY = "window.skip_dates"
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)\s*[-–]\s*([01]\d|2[0-4]):([0-5]\d)$")
_REGION = re.compile(r"^[A-Za-z]{2}$")
MAX_SKIP_DATES = 1_000


@dataclass(frozen=True, slots=True)
class Hours:
    """A span of one day, in minutes after midnight: `start` included, `end` excluded."""

    start: int
    end: int

    def __contains__(self, minute: object) -> bool:
        return isinstance(minute, int) and self.start <= minute < self.end

    def within(self, other: Hours) -> bool:
        return other.start <= self.start and self.end <= other.end

    def __and__(self, other: Hours) -> Hours | None:
        start, end = max(self.start, other.start), min(self.end, other.end)
        return Hours(start, end) if start < end else None

    def __str__(self) -> str:
        return f"{_clock(self.start)}–{_clock(self.end)}"


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


@dataclass(frozen=True, slots=True)
class LegalHours:
    """When a country's people may be called, Monday to Sunday (None: not that day)."""

    country: str
    days: tuple[Hours | None, ...]
    rule: str  # its short name, in errors: "TCPA"
    source: str  # the citation

    def on(self, weekday: int) -> Hours | None:
        return self.days[weekday]

    def widest(self) -> Hours | None:
        """The earliest start and the latest end of any day: what a tightening must stay in."""
        spans = [d for d in self.days if d is not None]
        if not spans:
            return None
        return Hours(min(d.start for d in spans), max(d.end for d in spans))

    def shown(self) -> str:
        """'08:00–21:00', or per run of days: 'Mon–Fri 09:00–21:30, Sat–Sun 10:00–18:00'."""
        if len(set(self.days)) == 1 and self.days[0] is not None:
            return str(self.days[0])
        runs: list[tuple[int, int, Hours | None]] = []
        for weekday, hours in enumerate(self.days):
            if runs and runs[-1][2] == hours:
                runs[-1] = (runs[-1][0], weekday, hours)
            else:
                runs.append((weekday, weekday, hours))
        return ", ".join(
            f"{DAY_NAMES[a]}{'' if a == b else '–' + DAY_NAMES[b]} {h if h else 'no calls'}"
            for a, b, h in runs
        )

    def tightened(self, hours: Hours) -> LegalHours:
        """Each day's hours cut to `hours` (a day they do not meet: no calls)."""
        return replace(
            self,
            days=tuple(d & hours if d is not None else None for d in self.days),
            rule=f"{self.rule}, tightened by the campaign",
        )


def _every_day(hours: Hours) -> tuple[Hours, ...]:
    return (hours,) * 7


_TCPA = (
    "TCPA: 47 CFR 64.1200(c)(1) (no telephone solicitation before 8 a.m. or after 9 p.m. "
    "at the called party's location); also the FTC's Telemarketing Sales Rule, "
    "16 CFR 310.4(c)"
)
_US_HOURS = _every_day(Hours(8 * 60, 21 * 60))
# The built-in floor. The US rule covers its territories, which have their own region codes.
FLOOR: Mapping[str, LegalHours] = {
    **{
        region: LegalHours(region, _US_HOURS, "TCPA", _TCPA)
        for region in ("US", "PR", "GU", "VI", "AS", "MP")
    },
    "CA": LegalHours(
        "CA",
        (Hours(9 * 60, 21 * 60 + 30),) * 5 + (Hours(10 * 60, 18 * 60),) * 2,
        "CRTC Telemarketing Rules",
        "CRTC Unsolicited Telecommunications Rules, Part III (Telemarketing Rules): "
        "9:00 a.m.-9:30 p.m. Monday to Friday, 10:00 a.m.-6:00 p.m. Saturday and Sunday, "
        "the called person's time, unless a province's law is stricter",
    ),
    "IN": LegalHours(
        "IN",
        _every_day(Hours(9 * 60, 21 * 60)),
        "TRAI",
        "TRAI: no commercial communication between 21:00 and 09:00 (Telecom Commercial "
        "Communications Customer Preference Regulations, 2010; TCCCPR 2018)",
    ),
}


def parse_hours(text: str) -> Hours | None:
    """'09:00-20:00' (or with an en dash) within one day, else None."""
    match = _HOURS.match(text.strip())
    if not match:
        return None
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    return Hours(start, end) if start < end <= 24 * 60 else None


def _region_code(country: str) -> str | None:
    import phonenumbers

    code = country.strip().upper()
    return code if _REGION.match(code) and code in phonenumbers.SUPPORTED_REGIONS else None


def tightening_problem(country: str, value: object) -> str | None:
    """What is wrong with `[window.legal] <country> = value`, as one line naming the key, or
    None. A country without a built-in floor may be given hours too (they only restrict)."""
    key = f"{LEGAL_KEY}.{country}"
    code = _region_code(country)
    if code is None:
        return f"key '{key}': {country!r} is not a country code (US, CA, IN, GB...)"
    hours = parse_hours(value) if isinstance(value, str) else None
    if hours is None:
        return f"key '{key}' must be hours within one day like \"09:00-20:00\", got {value!r}"
    floor = FLOOR.get(code)
    widest = floor.widest() if floor else None
    if floor is not None and (widest is None or not hours.within(widest)):
        return (
            f"key '{key}' = {value!r} is wider than the legal hours in {code} "
            f"({floor.shown()}, {floor.rule}): legal hours can only be tightened"
        )
    return None


def tightened(table: Mapping[str, object]) -> dict[str, LegalHours]:
    """The floor with a campaign's `[window.legal]` applied (each value checked first by
    `tightening_problem`): the tighter of the two on every day."""
    legal = dict(FLOOR)
    for country, value in table.items():
        code = _region_code(country)
        hours = parse_hours(value) if isinstance(value, str) else None
        if code is None or hours is None:
            raise ValueError(f"unchecked tightening {country!r}")  # a defect of the caller
        floor = legal.get(code)
        legal[code] = (
            floor.tightened(hours)
            if floor is not None
            else LegalHours(code, _every_day(hours), "the campaign's", "[window.legal]")
        )
    return legal


def skip_dates_problem(value: object) -> str | None:
    """What is wrong with `[window] skip_dates`, as one line naming the key, or None."""
    if not isinstance(value, list):
        return f"key '{SKIP_DATES_KEY}' must be a list of dates like [\"2026-12-25\"]"
    if len(value) > MAX_SKIP_DATES:
        return f"key '{SKIP_DATES_KEY}' holds {len(value)} dates; at most {MAX_SKIP_DATES}"
    for item in value:
        if _as_date(item) is None:
            return f"key '{SKIP_DATES_KEY}' has {item!r}; write dates as \"YYYY-MM-DD\""
    return None


def skip_dates(value: Iterable[object]) -> frozenset[date]:
    """The dates of a checked `skip_dates` (TOML dates, or text as YYYY-MM-DD)."""
    found = {_as_date(item) for item in value}
    if None in found:
        raise ValueError("unchecked skip_dates")  # a defect of the caller
    return frozenset(d for d in found if d is not None)


def _as_date(item: object) -> date | None:
    if type(item) is date:  # a TOML date (a datetime is not one)
        return item
    if isinstance(item, str):
        try:
            return date.fromisoformat(item.strip())
        except ValueError:
            return None
    return None
