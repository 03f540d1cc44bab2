"""Campaign TOML -> a frozen, validated `Campaign`; every default lives here.

    >>> c = load_campaign(Path("campaigns/example.toml"))
    >>> c.dispatch.rate_per_second
    2.0

Unknown keys are errors (a typo must not silently disable a setting), and a campaign file
holding an `api_key` is refused: the key lives only in the environment (SPEC 7).
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import os
import re
import tomllib
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dialer.core.currencies import CURRENCIES
from dialer.core.statuses import REDIALABLE, CallOutcome, CampaignError, UsageError
from dialer.sheets.files import open_regular

DEFAULT_ENDPOINT = "https://www.tabbly.io/dashboard/agents/endpoints/trigger-call"
DEFAULT_API_KEY_ENV = "TABBLY_API_KEY"
ENDPOINT_ENV = "TABBLY_API_URL"
DEFAULT_LOGS_ENDPOINT = "https://www.tabbly.io/dashboard/agents/endpoints/call-logs-v2"
TRIGGER_NAME = "trigger-call"  # the last part of the trigger-call URL's path
LOGS_NAME = "call-logs-v2"
LOGS_ENDPOINT_ENV = "TABBLY_LOGS_URL"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_NAMES = {
    name: i
    for i, full in enumerate(
        ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    )
    for name in (full, full[:3])
}
# The name names the ledger and the reports' folder: a short, safe file name on every system.
MAX_CAMPAIGN_NAME_CHARS = 64
MAX_TITLE_CHARS = 120  # the name as typed on the page; `name` is derived from it
# `state/contacts.sqlite` is the folder's shared contact counts (dialer.ledger.contact_limits).
RESERVED_NAME = "contacts"
# A campaign file is a page of settings; anything far bigger is a file given by mistake.
MAX_CAMPAIGN_BYTES = 1024 * 1024
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_NOT_NAME_CHARS = re.compile(r"[^a-z0-9]+")


def name_problem(name: str) -> str | None:
    """What is wrong with a campaign's name, None when nothing: the one rule of it. It names
    files (`campaigns/<name>.toml`, its ledger, its reports folder)."""
    if len(name) <= MAX_CAMPAIGN_NAME_CHARS and _NAME.fullmatch(name):
        return None
    cut = MAX_CAMPAIGN_NAME_CHARS
    shown = name if len(name) <= cut else f"{name[:cut]}..."
    return (
        f"key 'name' must be at most {cut} letters, digits, '.', '_' or '-', starting with a "
        f"letter or digit (it names files), got {shown!r} ({len(name)} characters)"
    )


def file_name_for(title: str) -> str:
    """The campaign name (it names the file, the ledger and the reports) for a title typed on
    the page: "Spring sale 2026" -> "spring-sale-2026"; "" when nothing of it is usable."""
    folded = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().lower()
    return _NOT_NAME_CHARS.sub("-", folded).strip("-")[:MAX_CAMPAIGN_NAME_CHARS].strip("-")


# Ids go into JSON: above 2**53 - 1 a JavaScript upstream silently rounds them to another
# number (RFC 8259, section 6), which would be someone else's organization or agent.
MAX_ID = 2**53 - 1
# An upstream's budget: below 0.01/s (one call in 100 s) a run only sits idle; above 10,000/s
# no voice API could mean it (the benchmarks' "unthrottled" dispatch stays under it).
RATE_RANGE = (0.01, 10_000.0)
TIMEOUT_RANGE = (0.1, 600.0)
_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


@dataclass(frozen=True, slots=True)
class Contacts:
    source: str
    # In order: the first column holding a valid number gives the row's number (SPEC 4.3a).
    phone_columns: tuple[str, ...] = ("phone",)
    id_column: str | None = None
    default_region: str | None = None
    # A column saying each row's country: a national number is read as that country's.
    country_column: str | None = None
    suppress: tuple[Path, ...] = ()
    sheet: str | None = None
    # The campaign's names (phone_column, id_column, timezone_column, template variables) ->
    # the sheet's header as the user wrote it, matched after normalising (SPEC 4.2).
    columns: tuple[tuple[str, str], ...] = ()
    # Template variable -> the text used when its column is missing or its cell empty.
    defaults: tuple[tuple[str, str], ...] = ()

    @property
    def phone_column(self) -> str:
        """The first phone column: the one a row's number is looked for first."""
        return self.phone_columns[0]

    @property
    def roles(self) -> tuple[str, ...]:
        """The names that are columns and not template variables: phones, id, country."""
        return tuple(n for n in (*self.phone_columns, self.id_column, self.country_column) if n)


@dataclass(frozen=True, slots=True)
class Dispatch:
    rate_per_second: float = 2.0
    concurrency: int = 8
    max_attempts: int = 4
    timeout_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class Window:
    """Calling hours in the callee's local time; `start > end` means the window crosses midnight."""

    start_minute: int
    end_minute: int
    days: frozenset[int] = frozenset(range(6))  # Monday=0 .. Saturday=5
    timezone_column: str | None = None
    hours: str = "09:00-20:00"


@dataclass(frozen=True, slots=True)
class Redial:
    """Who is called again, by their last call's outcome (SPEC 10)."""

    outcomes: frozenset[CallOutcome] = frozenset(
        {CallOutcome.NO_ANSWER, CallOutcome.BUSY, CallOutcome.VOICEMAIL}
    )
    after_minutes: float = 120.0
    max_calls: int = 3  # calls per person in this campaign, the first included


@dataclass(frozen=True, slots=True)
class Limits:
    """Calls to one person across every campaign of a `state/` folder (SPEC 10)."""

    per_day: int | None = None  # in any rolling 24 hours
    per_week: int | None = None  # in any rolling 7 days


@dataclass(frozen=True, slots=True)
class Campaign:
    path: Path
    name: str
    organization_id: int
    agent_id: int
    call_from: str
    first_line: str
    contacts: Contacts
    instruction: str = ""
    called_by_account: str = "API"
    endpoint: str | None = None
    api_key_env: str = DEFAULT_API_KEY_ENV
    dispatch: Dispatch = field(default_factory=Dispatch)
    window: Window | None = None
    redial: Redial | None = None
    limits: Limits | None = None
    logs_endpoint: str | None = None
    logs_timezone: str = "UTC"  # the zone of a log row's `called_time` without an offset
    # What one call costs, for the page's estimate before launch when no synced call has a cost.
    cost_per_call: float | None = None
    # The ISO 4217 code costs are said in on the page ("USD"); None: the number alone.
    currency: str | None = None
    # SHA-256 of the very bytes parsed: a run bound to a check compares it (dialer/binding.py).
    source_sha256: str = field(default="", compare=False)
    # The name as the marketer typed it on the page ("Spring sale 2026"); "" when it is `name`.
    title: str = ""

    @property
    def shown_name(self) -> str:
        """What the page calls the campaign: its title, else its name."""
        return self.title or self.name

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def project_root(self) -> Path:
        """Reports and state live beside the campaigns folder, so cron's cwd does not matter."""
        return self.folder.parent

    def resolved_endpoint(
        self, environ: Mapping[str, str] = os.environ, *, logs: bool = False
    ) -> str:
        """The trigger-call URL (or the call-logs URL): the environment, the file, Tabbly's."""
        trigger = environ.get(ENDPOINT_ENV) or self.endpoint
        if logs:
            # Calls sent elsewhere than Tabbly (a fake, a proxy) read their logs there too,
            # never from tabbly.io with the key, unless a logs URL is given.
            return (
                environ.get(LOGS_ENDPOINT_ENV)
                or self.logs_endpoint
                or beside_trigger(trigger, LOGS_NAME)
                or DEFAULT_LOGS_ENDPOINT
            )
        return trigger or DEFAULT_ENDPOINT

    def checked_endpoint(self, environ: Mapping[str, str], *, logs: bool = False) -> str:
        """The trigger (or call-logs) URL, checked before anything is sent or read: a typo
        must not look like a timeout. The error names where the URL came from."""
        env, key = (LOGS_ENDPOINT_ENV, "logs_endpoint") if logs else (ENDPOINT_ENV, "endpoint")
        if logs and not (environ.get(env) or self.logs_endpoint):  # beside the trigger URL
            env, key = ENDPOINT_ENV, "endpoint"
        url = self.resolved_endpoint(environ, logs=logs)
        problem = endpoint_problem(url)  # scheme, host and port: `http://[::1`, `:99999`
        if problem:
            where = (
                f"{env} in the environment" if environ.get(env) else f"key '{key}' in {self.path}"
            )
            raise UsageError(f"{where} {problem}")
        return url


# key -> (type, required); "path" types are resolved against the campaign file's folder.
_TOP: dict[str, tuple[type | tuple[type, ...], bool]] = {
    "name": (str, True),
    "title": (str, False),
    "organization_id": (int, True),
    "agent_id": (int, True),
    "call_from": (str, True),
    "called_by_account": (str, False),
    "first_line": (str, True),
    "instruction": (str, False),
    "endpoint": (str, False),
    "api_key_env": (str, False),
    "contacts": (dict, True),
    "dispatch": (dict, False),
    "window": (dict, False),
    "redial": (dict, False),
    "limits": (dict, False),
    "logs_endpoint": (str, False),
    "logs_timezone": (str, False),
    "cost_per_call": ((int, float), False),
    "currency": (str, False),
}
_CONTACTS: dict[str, tuple[type | tuple[type, ...], bool]] = {
    "source": (str, True),
    "phone_column": ((str, list), False),
    "id_column": (str, False),
    "default_region": (str, False),
    "country_column": (str, False),
    "suppress": ((str, list), False),
    "sheet": (str, False),
    "columns": (dict, False),
    "defaults": (dict, False),
}
_DISPATCH: dict[str, tuple[type | tuple[type, ...], bool]] = {
    "rate_per_second": ((int, float), False),
    "concurrency": (int, False),
    "max_attempts": (int, False),
    "timeout_seconds": ((int, float), False),
}
_WINDOW: dict[str, tuple[type | tuple[type, ...], bool]] = {
    "hours": (str, False),
    "days": (list, False),
    "timezone_column": (str, False),
}
_REDIAL: dict[str, tuple[type | tuple[type, ...], bool]] = {
    "outcomes": (list, False),
    "after_minutes": ((int, float), False),
    "max_calls": (int, False),
}
_LIMITS: dict[str, tuple[type | tuple[type, ...], bool]] = {
    "per_day": (int, False),
    "per_week": (int, False),
}
# A default stands in for a sheet cell: no longer than a cell may put into the prompt (SPEC 7).
MAX_DEFAULT_CHARS = 200
# A header longer than this is not a header (dialer.sheets.reader.MAX_HEADER_CHARS).
MAX_COLUMN_NAME_CHARS = 1_000
# Shop and CRM exports have two or three phone columns (mobile, phone, address phone).
MAX_PHONE_COLUMNS = 5
_TEMPLATE_MARKS = re.compile(r"\{\{|\}\}|\{%|%\}")
# A redial delay longer than this is a typo (minutes for hours, say): 60 days.
MAX_REDIAL_MINUTES = 60 * 24 * 60
MAX_CALLS_PER_PERSON = 100
_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    dict: "a table",
    list: "a list",
}


def _type_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)


def _check_table(
    path: Path, prefix: str, table: dict[str, Any], schema: dict[str, tuple[Any, bool]]
) -> None:
    for key in table:
        if key not in schema:
            where = f"{prefix}{key}"
            raise CampaignError(f"{path}: unknown key '{where}' (allowed: {', '.join(schema)})")
    for key, (kind, required) in schema.items():
        where = f"{prefix}{key}"
        if key not in table:
            if required:
                raise CampaignError(f"{path}: missing required key '{where}'")
            continue
        value = table[key]
        # bool is an int subclass in Python; `organization_id = true` is still a typo.
        if isinstance(value, bool) or not isinstance(value, kind):
            raise CampaignError(f"{path}: key '{where}' must be {_type_name(kind)}, got {value!r}")


def _parse_window(path: Path, table: dict[str, Any]) -> Window:
    hours = table.get("hours", "09:00-20:00").strip()
    match = _HOURS.match(hours)
    if not match:
        raise CampaignError(
            f"{path}: key 'window.hours' must look like \"09:00-20:00\", got {hours!r}"
        )
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if end > 24 * 60 or start == end:
        raise CampaignError(
            f"{path}: key 'window.hours' is an empty or impossible window: {hours!r}"
        )
    raw_days = table.get("days", list(WEEKDAYS[:6]))
    days: set[int] = set()
    for day in raw_days:
        # "monday" or "mon", never "monkey": a typo must not pick a day at random.
        index = _DAY_NAMES.get(day.strip().lower()) if isinstance(day, str) else None
        if index is None:
            raise CampaignError(f"{path}: key 'window.days' has {day!r}; use {', '.join(WEEKDAYS)}")
        days.add(index)
    if not days:
        raise CampaignError(f"{path}: key 'window.days' is empty: nobody could ever be called")
    return Window(
        start_minute=start,
        end_minute=end,
        days=frozenset(days),
        timezone_column=table.get("timezone_column"),
        hours=hours,
    )


def _parse_redial(path: Path, table: dict[str, Any]) -> Redial:
    defaults = Redial()
    outcomes: set[CallOutcome] = set()
    for item in table.get("outcomes", sorted(defaults.outcomes)):
        name = item.strip().lower().replace(" ", "_") if isinstance(item, str) else None
        if name == CallOutcome.ANSWERED:
            raise CampaignError(
                f"{path}: key 'redial.outcomes' has 'answered': an answered call is never redialed"
            )
        if name not in REDIALABLE:
            allowed = ", ".join(sorted(REDIALABLE))
            raise CampaignError(f"{path}: key 'redial.outcomes' has {item!r}; use {allowed}")
        outcomes.add(CallOutcome(name))
    if not outcomes:
        raise CampaignError(f"{path}: key 'redial.outcomes' is empty: nobody would be redialed")
    after = float(table.get("after_minutes", defaults.after_minutes))
    if not math.isfinite(after) or not 0 <= after <= MAX_REDIAL_MINUTES:
        raise CampaignError(
            f"{path}: key 'redial.after_minutes' must be between 0 and {MAX_REDIAL_MINUTES:,} "
            f"(60 days), got {after:g}"
        )
    max_calls = table.get("max_calls", defaults.max_calls)
    if not 1 <= max_calls <= MAX_CALLS_PER_PERSON:
        raise CampaignError(
            f"{path}: key 'redial.max_calls' must be between 1 and {MAX_CALLS_PER_PERSON} "
            f"(calls per person, the first included), got {max_calls}"
        )
    return Redial(frozenset(outcomes), after, max_calls)


def _parse_limits(path: Path, table: dict[str, Any]) -> Limits:
    if not table:
        raise CampaignError(f"{path}: table 'limits' is empty: set per_day and/or per_week")
    for key, value in table.items():
        if not 1 <= value <= MAX_CALLS_PER_PERSON * 10:
            raise CampaignError(
                f"{path}: key 'limits.{key}' must be between 1 and {MAX_CALLS_PER_PERSON * 10} "
                f"calls, got {value}"
            )
    per_day, per_week = table.get("per_day"), table.get("per_week")
    if per_day is not None and per_week is not None and per_week < per_day:
        raise CampaignError(
            f"{path}: key 'limits.per_week' ({per_week}) is below 'limits.per_day' ({per_day})"
        )
    return Limits(per_day, per_week)


def _phone_columns(path: Path, value: str | list[Any]) -> tuple[str, ...]:
    """`phone_column = "Phone"` or a list of columns tried in order; each named once."""
    names = [value] if isinstance(value, str) else value
    if not names or len(names) > MAX_PHONE_COLUMNS or not all(isinstance(n, str) for n in names):
        raise CampaignError(
            f"{path}: key 'contacts.phone_column' must be a column name or a list of 1 to "
            f"{MAX_PHONE_COLUMNS} column names"
        )
    from dialer.sheets.reader import normalise_header

    seen: set[str] = set()
    for name in names:
        key = normalise_header(name)
        if not key or key in seen:
            problem = "an empty name" if not key else f"'{name}' twice"
            raise CampaignError(f"{path}: key 'contacts.phone_column' has {problem}")
        seen.add(key)
    return tuple(names)


def _with_column_tables(
    path: Path, data: dict[str, Any], contacts: Contacts, table: dict[str, Any]
) -> Contacts:
    """`[contacts] columns` and `defaults`, checked against the names the campaign uses: a
    mistyped key would otherwise leave a column unmatched and every row `invalid`."""
    if "columns" not in table and "defaults" not in table:
        return contacts  # no template parse for the many campaigns without them
    from dialer.templating.sandbox import template_variables

    variables = template_variables(data["first_line"], data.get("instruction", ""))
    if variables is None:
        return contacts  # a template that does not parse: compiling it names the error
    roles: list[str | None] = list(contacts.roles)
    window = data.get("window", {})
    roles.append(window.get("timezone_column") if isinstance(window, dict) else None)
    names = [n for n in roles if n] + sorted(variables - set(roles))
    columns = _string_table(path, "columns", table.get("columns", {}), names, MAX_COLUMN_NAME_CHARS)
    defaults = _string_table(
        path, "defaults", table.get("defaults", {}), sorted(variables), MAX_DEFAULT_CHARS
    )
    for key, value in defaults:
        if _TEMPLATE_MARKS.search(value):
            raise CampaignError(
                f"{path}: key 'contacts.defaults.{key}' has template braces; a default is "
                "said as written"
            )
    return replace(contacts, columns=columns, defaults=defaults)


def _string_table(
    path: Path, name: str, table: dict[str, Any], allowed: list[str], longest: int
) -> tuple[tuple[str, str], ...]:
    """A table of campaign name -> non-empty text; any other key is refused, naming it."""
    pairs = []
    for key, value in table.items():
        where = f"contacts.{name}.{key}"
        if key not in allowed:
            uses = ", ".join(allowed) or "no template variables"
            raise CampaignError(f"{path}: unknown key '{where}' (the campaign uses: {uses})")
        if not isinstance(value, str) or not value.strip():
            raise CampaignError(f"{path}: key '{where}' must be a non-empty string, got {value!r}")
        if len(value) > longest or any(not c.isprintable() for c in value):
            raise CampaignError(
                f"{path}: key '{where}' must be at most {longest} printable characters"
            )
        pairs.append((key, value.strip()))
    return tuple(pairs)


def _zone(path: Path, name: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # "America" is a folder
        raise CampaignError(
            f"{path}: key 'logs_timezone' must be a time zone like UTC or Asia/Kolkata, "
            f"got {name!r}"
        ) from None
    return name


def _read_campaign_bytes(path: Path) -> bytes:
    """The file's bytes, from a regular file of sensible size only: `/dev/zero` or a FIFO
    given by mistake must be one clear line, not a hang or an out-of-memory kill."""
    if not os.path.lexists(path):
        raise CampaignError(f"{path}: campaign file not found")
    try:
        with open_regular(path, CampaignError, "a campaign .toml file") as f:
            raw = f.read(MAX_CAMPAIGN_BYTES + 1)
    except OSError as exc:
        raise CampaignError(f"{path}: cannot read campaign file: {exc.strerror}") from None
    if len(raw) > MAX_CAMPAIGN_BYTES:
        raise CampaignError(
            f"{path}: campaign file is over {MAX_CAMPAIGN_BYTES // 1024} KiB; "
            "is this really a campaign file?"
        )
    return raw


def load_campaign(path: Path) -> Campaign:
    """Read and validate a campaign file; raise `CampaignError` naming the file and key."""
    path = Path(path)
    return parse_campaign(path, _read_campaign_bytes(path))


def parse_campaign(path: Path, raw: bytes) -> Campaign:
    """Validate the bytes of a campaign file as if read from `path` (relative paths in it are
    taken from `path`'s folder): the page's live preview checks a form this way, unsaved."""
    try:
        data = tomllib.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise CampaignError(f"{path}: campaign file is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise CampaignError(f"{path}: not valid TOML: {exc}") from None

    if "api_key" in data:
        raise CampaignError(
            f"{path}: key 'api_key' is not allowed in a campaign file; "
            f"put the key in the environment ({DEFAULT_API_KEY_ENV} or api_key_env)"
        )
    _check_table(path, "", data, _TOP)
    _check_table(path, "contacts.", data["contacts"], _CONTACTS)
    _check_table(path, "dispatch.", data.get("dispatch", {}), _DISPATCH)
    _check_table(path, "window.", data.get("window", {}), _WINDOW)
    _check_table(path, "redial.", data.get("redial", {}), _REDIAL)
    _check_table(path, "limits.", data.get("limits", {}), _LIMITS)

    name = data["name"].strip()
    problem = name_problem(name)
    if problem:
        raise CampaignError(f"{path}: {problem}")
    if name.lower() == RESERVED_NAME:
        raise CampaignError(
            f"{path}: key 'name' cannot be {name!r}: state/{RESERVED_NAME}.sqlite holds the "
            "calls per person that every campaign shares; choose another name"
        )
    call_from = data["call_from"].strip()
    if not _E164.match(call_from):
        raise CampaignError(
            f"{path}: key 'call_from' must be E.164 like +14156801215, got {call_from!r}"
        )
    for key in ("organization_id", "agent_id"):
        if not 0 < data[key] <= MAX_ID:
            raise CampaignError(
                f"{path}: key '{key}' must be a positive integer up to {MAX_ID}, got {data[key]}"
            )
    if not data["first_line"].strip():
        raise CampaignError(f"{path}: key 'first_line' must not be empty")
    for key in ("endpoint", "logs_endpoint"):
        if key in data:
            problem = endpoint_problem(data[key])
            if problem:
                raise CampaignError(f"{path}: key '{key}' {problem}")
    api_key_env = data.get("api_key_env", DEFAULT_API_KEY_ENV)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", api_key_env):
        raise CampaignError(f"{path}: key 'api_key_env' must be an environment variable name")

    contacts_table = data["contacts"]
    suppress_raw = contacts_table.get("suppress", [])
    suppress_list = [suppress_raw] if isinstance(suppress_raw, str) else suppress_raw
    if not all(isinstance(item, str) for item in suppress_list):
        raise CampaignError(f"{path}: key 'contacts.suppress' must be a path or a list of paths")
    region = contacts_table.get("default_region")
    if region is not None:
        region = region.strip().upper()
        import phonenumbers

        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise CampaignError(
                f"{path}: key 'contacts.default_region' must be an ISO country code like IN or US, "
                f"got {contacts_table['default_region']!r}"
            )
    contacts = Contacts(
        source=contacts_table["source"],
        phone_columns=_phone_columns(path, contacts_table.get("phone_column", "phone")),
        id_column=contacts_table.get("id_column"),
        default_region=region,
        country_column=contacts_table.get("country_column"),
        suppress=tuple(path.parent / item for item in suppress_list),
        sheet=contacts_table.get("sheet"),
    )
    contacts = _with_column_tables(path, data, contacts, contacts_table)

    d = data.get("dispatch", {})
    defaults = Dispatch()
    dispatch = Dispatch(
        rate_per_second=float(d.get("rate_per_second", defaults.rate_per_second)),
        concurrency=d.get("concurrency", defaults.concurrency),
        max_attempts=d.get("max_attempts", defaults.max_attempts),
        timeout_seconds=float(d.get("timeout_seconds", defaults.timeout_seconds)),
    )
    for key, (low, high), unit in (
        ("rate_per_second", RATE_RANGE, "calls a second"),
        ("timeout_seconds", TIMEOUT_RANGE, "seconds"),
    ):
        value = getattr(dispatch, key)
        if not math.isfinite(value):
            raise CampaignError(f"{path}: key 'dispatch.{key}' must be a finite number")
        if not low <= value <= high:
            raise CampaignError(
                f"{path}: key 'dispatch.{key}' must be between {low:g} and {high:,g} {unit}, "
                f"got {value:g}"
            )
    if not 1 <= dispatch.concurrency <= 1024:
        raise CampaignError(f"{path}: key 'dispatch.concurrency' must be between 1 and 1024")
    if not 1 <= dispatch.max_attempts <= 20:
        raise CampaignError(f"{path}: key 'dispatch.max_attempts' must be between 1 and 20")

    title = " ".join(data.get("title", "").split())
    if len(title) > MAX_TITLE_CHARS or not title.isprintable():
        raise CampaignError(
            f"{path}: key 'title' must be at most {MAX_TITLE_CHARS} printable characters"
        )

    cost_per_call = data.get("cost_per_call")
    if cost_per_call is not None and not (math.isfinite(cost_per_call) and cost_per_call >= 0):
        raise CampaignError(f"{path}: key 'cost_per_call' must be a number, 0 or more")

    currency = data.get("currency")
    if currency is not None and currency not in CURRENCIES:
        raise CampaignError(
            f"{path}: key 'currency' must be a 3-letter ISO 4217 code in capitals, like "
            f'"USD", "EUR" or "INR"; got {currency!r}'
        )

    window = _parse_window(path, data["window"]) if "window" in data else None
    redial = _parse_redial(path, data["redial"]) if "redial" in data else None
    limits = _parse_limits(path, data["limits"]) if "limits" in data else None

    return Campaign(
        path=path.resolve(),
        name=name,
        title=title if title != name else "",
        organization_id=data["organization_id"],
        agent_id=data["agent_id"],
        call_from=call_from,
        called_by_account=data.get("called_by_account", "API"),
        first_line=data["first_line"],
        instruction=data.get("instruction", ""),
        endpoint=data.get("endpoint"),
        api_key_env=api_key_env,
        contacts=contacts,
        dispatch=dispatch,
        window=window,
        redial=redial,
        limits=limits,
        logs_endpoint=data.get("logs_endpoint"),
        logs_timezone=_zone(path, data.get("logs_timezone", "UTC").strip()),
        cost_per_call=None if cost_per_call is None else float(cost_per_call),
        currency=currency,
        source_sha256=hashlib.sha256(raw).hexdigest(),
    )


def beside_trigger(trigger: str | None, name: str) -> str | None:
    """The Tabbly endpoint `name` in the trigger-call URL's folder (Tabbly serves trigger-call,
    call-logs-v2 and get-agents from one folder, and so does the fake); None when `trigger`
    is not a trigger-call URL."""
    if not trigger:
        return None
    parts = urlsplit(trigger)
    head, _, last = parts.path.rpartition("/")
    if last != TRIGGER_NAME:
        return None
    return parts._replace(path=f"{head}/{name}", query="", fragment="").geturl()


def shown_url(url: str) -> str:
    """A URL as a message may show it: without user:password@ and without its query string
    or fragment, where a key may be (`?...` says one was there)."""
    marks = [i for i in (url.find("?"), url.find("#")) if i != -1]
    head, cut = (url[: min(marks)], True) if marks else (url, False)
    at = head.rfind("@")
    if at != -1:
        slashes = head.find("//")
        start = slashes + 2 if -1 < slashes < at else 0
        head = head[:start] + head[at + 1 :]
    return f"{head}?..." if cut else head


def endpoint_problem(url: str) -> str | None:
    """What is wrong with an endpoint URL (scheme, host, port), or None; checked before
    anything is sent, so a typo is one clear line rather than every row `failed`."""
    if any(c.isspace() or not c.isprintable() for c in url):
        return "has spaces or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # "Invalid IPv6 URL", "Port out of range 0-65535", ...
        # Other texts of urlsplit's (NFKC) quote the netloc, user:password@ included.
        said = str(exc) if str(exc).startswith(("Invalid IPv6", "Port ")) else "bad host"
        return f"is not a valid URL ({said}): {shown_url(url)!r}"
    if parts.scheme not in ("http", "https"):
        return f"is not an http(s) URL: {shown_url(url)!r}"
    host = parts.hostname or ""
    if "[" in parts.netloc:
        try:
            ipaddress.IPv6Address(host.split("%")[0])
        except ValueError:
            return f"has an invalid IPv6 address: {shown_url(url)!r}"
    elif not _HOST.fullmatch(host):
        return f"has no valid host name: {shown_url(url)!r}"
    if port == 0:
        return f"has port 0, which nothing listens on: {shown_url(url)!r}"
    return None
