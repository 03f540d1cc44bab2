"""Campaign TOML -> a frozen, validated `Campaign` (`dialer.campaign.model`), one function
per table of the file.

    campaign = load_campaign(Path("campaigns/example.toml"))
    campaign = parse_campaign(path, form_bytes)   # the page's live preview, unsaved

Unknown keys are errors (a typo must not silently disable a setting), and a campaign file
holding an `api_key` is refused: the key lives only in the environment (SPEC 7). Each error
is one line naming the file and the key.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from dialer.campaign.model import (
    DEFAULT_API_KEY_ENV,
    ENV_NAME,
    MAX_CALLS_PER_PERSON,
    MAX_COLUMN_NAME_CHARS,
    MAX_DEFAULT_CHARS,
    MAX_ID,
    MAX_PHONE_COLUMNS,
    MAX_REDIAL_MINUTES,
    MAX_TITLE_CHARS,
    NOTIFY_FILE,
    RATE_RANGE,
    RESERVED_NAMES,
    TIMEOUT_RANGE,
    WEEKDAYS,
    Campaign,
    Contacts,
    Dispatch,
    Legal,
    Limits,
    OptOutWords,
    Redial,
    Window,
    endpoint_problem,
    name_problem,
)
from dialer.campaign.notify_table import campaign_notify, shown_value
from dialer.campaign.toml_file import toml_bytes, toml_tables
from dialer.core.currencies import CURRENCIES
from dialer.core.legal_floor import skip_dates, skip_dates_problem, tightened, tightening_problem
from dialer.core.statuses import REDIALABLE, CallOutcome, CampaignError

_DAY_NAMES = {
    name: i
    for i, full in enumerate(
        ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    )
    for name in (full, full[:3])
}
# The name names the ledger and the reports' folder: a short, safe file name on every system.
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")
_TEMPLATE_MARKS = re.compile(r"\{\{|\}\}|\{%|%\}")
# Keys a careless operator may paste a secret into (a webhook URL, an API key).
_SECRET_KEYS = frozenset({"notify", "api_key_env"})
_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    dict: "a table",
    list: "a list",
}
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
    "optout": (dict, False),
    "logs_endpoint": (str, False),
    "logs_timezone": (str, False),
    "cost_per_call": ((int, float), False),
    "currency": (str, False),
    "notify": (dict, False),
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
    "legal": (dict, False),
    "skip_dates": (list, False),
}
# Keys of [window] that hold under every campaign: alone, they make no calling window.
_LEGAL_KEYS = ("legal", "skip_dates")
_OPTOUT_LISTS = ("outcomes", "phrases")
MAX_OPTOUT_WORDS = 500
MAX_OPTOUT_WORD_CHARS = 200
_REDIAL: dict[str, tuple[type | tuple[type, ...], bool]] = {
    "outcomes": (list, False),
    "after_minutes": ((int, float), False),
    "max_calls": (int, False),
}
_LIMITS: dict[str, tuple[type | tuple[type, ...], bool]] = {
    "per_day": (int, False),
    "per_week": (int, False),
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
            # A webhook URL or an API key pasted in the wrong key is a secret: never quoted.
            shown = shown_value(value) if where in _SECRET_KEYS else repr(value)
            raise CampaignError(f"{path}: key '{where}' must be {_type_name(kind)}, got {shown}")


def _window(path: Path, table: dict[str, Any]) -> Window:
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


def _legal(path: Path, table: dict[str, Any]) -> Legal:
    """`[window.legal]` (tighten only) and `[window] skip_dates`: the floor stays beneath."""
    tightening = table.get("legal", {})
    for country, value in tightening.items():
        problem = tightening_problem(country, value)
        if problem is not None:
            raise CampaignError(f"{path}: {problem}")
    dates = table.get("skip_dates", [])
    problem = skip_dates_problem(dates)
    if problem is not None:
        raise CampaignError(f"{path}: {problem}")
    return Legal(
        hours=tightened(tightening),
        tightening=tuple(sorted((c.upper(), v) for c, v in tightening.items())),
        skip_dates=skip_dates(dates),
    )


def _optout(path: Path, table: dict[str, Any]) -> OptOutWords:
    """`[optout]`: detection on or off and its words; a campaign cannot switch the register
    off. A phrase with no letter or digit would match every transcript: refused."""
    for key in table:
        if key not in ("enabled", *_OPTOUT_LISTS):
            raise CampaignError(
                f"{path}: unknown key 'optout.{key}' (allowed: enabled, outcomes, phrases)"
            )
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        raise CampaignError(f"{path}: key 'optout.enabled' must be true or false, got {enabled!r}")
    lists: dict[str, tuple[str, ...] | None] = {}
    for key in _OPTOUT_LISTS:
        value = table.get(key)
        if value is None:
            lists[key] = None
            continue
        if not isinstance(value, list) or len(value) > MAX_OPTOUT_WORDS:
            raise CampaignError(
                f"{path}: key 'optout.{key}' must be a list of at most {MAX_OPTOUT_WORDS} texts"
            )
        for word in value:
            if not isinstance(word, str) or len(word) > MAX_OPTOUT_WORD_CHARS:
                raise CampaignError(
                    f"{path}: key 'optout.{key}' has {word!r}; each must be a text of at most "
                    f"{MAX_OPTOUT_WORD_CHARS} characters"
                )
            if not any(c.isalnum() for c in word):
                raise CampaignError(
                    f"{path}: key 'optout.{key}' has {word!r}, which has no letter or digit "
                    "and would match anything"
                )
        lists[key] = tuple(value)
    return OptOutWords(enabled, lists["outcomes"], lists["phrases"])


def _redial(path: Path, table: dict[str, Any]) -> Redial:
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


def _limits(path: Path, table: dict[str, Any]) -> Limits:
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
    from dialer.core.cells import normalise_header

    seen: set[str] = set()
    for name in names:
        key = normalise_header(name)
        if not key or key in seen:
            problem = "an empty name" if not key else f"'{name}' twice"
            raise CampaignError(f"{path}: key 'contacts.phone_column' has {problem}")
        seen.add(key)
    return tuple(names)


def _column_tables(
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


def _campaign_bytes(path: Path) -> bytes:
    """The file's bytes, from a regular file of sensible size only: `/dev/zero` or a FIFO
    given by mistake must be one clear line, not a hang or an out-of-memory kill."""
    if not os.path.lexists(path):
        raise CampaignError(f"{path}: campaign file not found")
    return toml_bytes(path, "campaign file", "a campaign .toml file")


def load_campaign(path: Path) -> Campaign:
    """Read and validate a campaign file; raise `CampaignError` naming the file and key."""
    path = Path(path)
    return parse_campaign(path, _campaign_bytes(path))


def parse_campaign(path: Path, raw: bytes) -> Campaign:
    """Validate the bytes of a campaign file as if read from `path` (relative paths in it are
    taken from `path`'s folder): the page's live preview checks a form this way, unsaved.
    Checked in the file's order of importance: the first problem found is the one shown."""
    if path.name == NOTIFY_FILE:  # `dialer run campaigns/*.toml` must not run it
        raise CampaignError(
            f"{path}: not a campaign: {NOTIFY_FILE} holds the [notify] table of every "
            "campaign of its folder"
        )
    data = _toml(path, raw)
    name = _name(path, data["name"])
    call_from, api_key_env = _identity(path, data)
    contacts = _contacts(path, data)
    dispatch = _dispatch(path, data.get("dispatch", {}))
    title = _title(path, data.get("title", ""))
    cost_per_call, currency = _costs(path, data)
    window_table = data.get("window", {})
    hours_keys = {k: v for k, v in window_table.items() if k not in _LEGAL_KEYS}
    # `[window]` holding only legal keys makes no calling window of its own.
    has_window = "window" in data and (hours_keys or not window_table)
    window = _window(path, hours_keys) if has_window else None
    legal = _legal(path, window_table)
    optout = _optout(path, data.get("optout", {}))
    redial = _redial(path, data["redial"]) if "redial" in data else None
    limits = _limits(path, data["limits"]) if "limits" in data else None
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
        legal=legal,
        optout=optout,
        redial=redial,
        limits=limits,
        logs_endpoint=data.get("logs_endpoint"),
        logs_timezone=_zone(path, data.get("logs_timezone", "UTC").strip()),
        cost_per_call=cost_per_call,
        currency=currency,
        source_sha256=hashlib.sha256(raw).hexdigest(),
        notify=campaign_notify(path, data.get("notify")),
    )


def _toml(path: Path, raw: bytes) -> dict[str, Any]:
    """The file's tables, each key known and of its type; never an `api_key`."""
    data = toml_tables(path, raw, "campaign file")
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
    return data


def _name(path: Path, raw: str) -> str:
    name = raw.strip()
    problem = name_problem(name)
    if problem:
        raise CampaignError(f"{path}: {problem}")
    if name.lower() in RESERVED_NAMES:
        raise CampaignError(
            f"{path}: key 'name' cannot be {name!r}: state/{name.lower()}.sqlite holds what "
            "every campaign of the folder shares; choose another name"
        )
    return name


def _identity(path: Path, data: dict[str, Any]) -> tuple[str, str]:
    """Who calls, and how: the caller id, the ids, the first line, the endpoints and the
    key's variable. Returns (call_from, api_key_env)."""
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
    if not ENV_NAME.fullmatch(api_key_env):
        raise CampaignError(f"{path}: key 'api_key_env' must be an environment variable name")
    return call_from, api_key_env


def _contacts(path: Path, data: dict[str, Any]) -> Contacts:
    """`[contacts]`: the sheet, its phone columns, region, suppression lists, column tables."""
    table = data["contacts"]
    suppress_raw = table.get("suppress", [])
    suppress_list = [suppress_raw] if isinstance(suppress_raw, str) else suppress_raw
    if not all(isinstance(item, str) for item in suppress_list):
        raise CampaignError(f"{path}: key 'contacts.suppress' must be a path or a list of paths")
    region = table.get("default_region")
    if region is not None:
        region = region.strip().upper()
        import phonenumbers

        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise CampaignError(
                f"{path}: key 'contacts.default_region' must be an ISO country code like IN or US, "
                f"got {table['default_region']!r}"
            )
    contacts = Contacts(
        source=table["source"],
        phone_columns=_phone_columns(path, table.get("phone_column", "phone")),
        id_column=table.get("id_column"),
        default_region=region,
        country_column=table.get("country_column"),
        suppress=tuple(path.parent / item for item in suppress_list),
        sheet=table.get("sheet"),
    )
    return _column_tables(path, data, contacts, table)


def _dispatch(path: Path, d: dict[str, Any]) -> Dispatch:
    """`[dispatch]`: pace, concurrency, attempts and timeout, each within its range."""
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
    return dispatch


def _title(path: Path, raw: str) -> str:
    title = " ".join(raw.split())
    if len(title) > MAX_TITLE_CHARS or not title.isprintable():
        raise CampaignError(
            f"{path}: key 'title' must be at most {MAX_TITLE_CHARS} printable characters"
        )
    return title


def _costs(path: Path, data: dict[str, Any]) -> tuple[float | None, str | None]:
    """`cost_per_call` (0 or more) and the `currency` costs are said in."""
    cost_per_call = data.get("cost_per_call")
    if cost_per_call is not None and not (math.isfinite(cost_per_call) and cost_per_call >= 0):
        raise CampaignError(f"{path}: key 'cost_per_call' must be a number, 0 or more")
    currency = data.get("currency")
    if currency is not None and currency not in CURRENCIES:
        raise CampaignError(
            f"{path}: key 'currency' must be a 3-letter ISO 4217 code in capitals, like "
            f'"USD", "EUR" or "INR"; got {currency!r}'
        )
    return (None if cost_per_call is None else float(cost_per_call)), currency
