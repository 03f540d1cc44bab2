"""A campaign as the page edits it (`CampaignForm`) -> the TOML file the CLI reads, saved safely.

    form = form_from_campaign(load_campaign(path))
    form = dataclasses.replace(form, first_line="Hello {{ first_name }}!")
    save_campaign(root / "campaigns", form)      # campaigns/<name>.toml, the old one as .bak

The file is written by `render_toml` (every string escaped, so a greeting holding quotes,
backslashes or newlines round-trips) and judged by the same loader the CLI uses, on a temporary
file in the same folder (relative paths resolve the same) before it replaces anything: a form
that does not load is never written, and its one-line error names the key. The previous file
is kept as `<name>.toml.bak`; comments of a hand-written file survive only there.

The keys a marketer does not set on the page (endpoint, api_key_env, dispatch concurrency and
the like) are carried through from the file being edited, never taken from a browser: a page
user must not be able to send the API key to another host.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from dialer.campaign.model import (
    DEFAULT_API_KEY_ENV,
    WEEKDAYS,
    Campaign,
    Dispatch,
    Notify,
    Redial,
    name_problem,
)
from dialer.campaign.parse import load_campaign, parse_campaign
from dialer.core.atomic import replacing, sync_folder
from dialer.core.statuses import CampaignError

BACKUP_SUFFIX = ".bak"
_TEMP_SUFFIX = ".toml.tmp"  # never `*.toml`: the page lists campaigns by that glob
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_KEY_IN_ERROR = re.compile(r"(?:key|table) '([^']+)'")
_DEFAULT_REDIAL = Redial()
_DEFAULT_DISPATCH = Dispatch()

# The loader's key (as its errors name it) -> the form field the page shows for it.
FIELD_OF_KEY = {
    "name": "name",
    "title": "name",
    "organization_id": "organization_id",
    "agent_id": "agent_id",
    "call_from": "call_from",
    "first_line": "first_line",
    "instruction": "instruction",
    "contacts.default_region": "default_region",
    "contacts.phone_column": "phone_column",
    "contacts.id_column": "id_column",
    "contacts.columns": "columns",
    "contacts.defaults": "defaults",
    "dispatch.rate_per_second": "rate_per_second",
    "window.hours": "window_hours",
    "window.days": "window_days",
    "redial.outcomes": "redial_outcomes",
    "redial.after_minutes": "redial_after_minutes",
    "redial.max_calls": "redial_max_calls",
    "limits": "limits_per_day",
    "limits.per_day": "limits_per_day",
    "limits.per_week": "limits_per_week",
    "cost_per_call": "cost_per_call",
}


@dataclass(frozen=True, slots=True)
class CampaignForm:
    """Every key of a campaign file, as plain values (paths as written in the file)."""

    name: str
    organization_id: int
    agent_id: int
    call_from: str
    first_line: str
    instruction: str = ""
    title: str = ""  # the name as typed on the page, when it is not `name` itself
    default_region: str | None = None
    window_hours: str | None = None  # None: no [window], calls at any hour
    # A new campaign calls every day; the calling hours (and the legal hours) are its guard.
    window_days: tuple[str, ...] = WEEKDAYS
    rate_per_second: float = _DEFAULT_DISPATCH.rate_per_second
    redial: bool = False
    redial_outcomes: tuple[str, ...] = tuple(sorted(_DEFAULT_REDIAL.outcomes))
    redial_after_minutes: float = _DEFAULT_REDIAL.after_minutes
    redial_max_calls: int = _DEFAULT_REDIAL.max_calls
    limits_per_day: int | None = None
    limits_per_week: int | None = None
    # Not on the form, kept from the file so that saving it never drops them: the legal hours
    # tightened per country, the dates nobody is called, and which words opt a person out.
    legal_hours: tuple[tuple[str, str], ...] = ()
    skip_dates: tuple[str, ...] = ()
    optout_enabled: bool = True
    optout_outcomes: tuple[str, ...] | None = None
    optout_phrases: tuple[str, ...] | None = None
    cost_per_call: float | None = None  # None: the estimate before launch says "unknown"
    currency: str | None = None  # kept from the file; None: costs shown as bare numbers
    # [contacts]: campaign variable -> the sheet's header as written; a value for a template
    # variable the sheet lacks.
    columns: dict[str, str] = field(default_factory=dict)
    defaults: dict[str, str] = field(default_factory=dict)
    # [contacts], kept from the file being edited (a new campaign gets `new_source`).
    source: str = ""
    phone_columns: tuple[str, ...] = ("phone",)
    id_column: str | None = None
    country_column: str | None = None
    suppress: tuple[str, ...] = ()
    sheet: str | None = None
    # Kept from the file being edited; the page never sets them.
    timezone_column: str | None = None
    called_by_account: str = "API"
    endpoint: str | None = None
    api_key_env: str = DEFAULT_API_KEY_ENV
    logs_endpoint: str | None = None
    logs_timezone: str = "UTC"
    concurrency: int = _DEFAULT_DISPATCH.concurrency
    max_attempts: int = _DEFAULT_DISPATCH.max_attempts
    timeout_seconds: float = _DEFAULT_DISPATCH.timeout_seconds
    notify: Notify | None = None  # the file's own [notify] (not the folder's _notify.toml)


def new_source(name: str) -> str:
    """Where a campaign made on the page reads its sheet when run without an upload (cron,
    a daily schedule): the newest file dropped in `data/<name>/` beside `campaigns/`."""
    return f"../data/{name}/*"


def form_from_campaign(campaign: Campaign) -> CampaignForm:
    """The form that saves back to an equivalent campaign (same `load_campaign` result)."""
    window, redial, limits = campaign.window, campaign.redial, campaign.limits
    contacts, dispatch = campaign.contacts, campaign.dispatch
    return CampaignForm(
        name=campaign.name,
        title=campaign.title,
        organization_id=campaign.organization_id,
        agent_id=campaign.agent_id,
        call_from=campaign.call_from,
        first_line=campaign.first_line,
        instruction=campaign.instruction,
        default_region=contacts.default_region,
        window_hours=window.hours if window else None,
        window_days=tuple(d for i, d in enumerate(WEEKDAYS) if i in window.days)
        if window
        else WEEKDAYS,
        timezone_column=window.timezone_column if window else None,
        rate_per_second=dispatch.rate_per_second,
        redial=redial is not None,
        redial_outcomes=tuple(sorted((redial or _DEFAULT_REDIAL).outcomes)),
        redial_after_minutes=(redial or _DEFAULT_REDIAL).after_minutes,
        redial_max_calls=(redial or _DEFAULT_REDIAL).max_calls,
        limits_per_day=limits.per_day if limits else None,
        limits_per_week=limits.per_week if limits else None,
        legal_hours=campaign.legal.tightening,
        skip_dates=tuple(sorted(d.isoformat() for d in campaign.legal.skip_dates)),
        optout_enabled=campaign.optout.enabled,
        optout_outcomes=campaign.optout.outcomes,
        optout_phrases=campaign.optout.phrases,
        cost_per_call=campaign.cost_per_call,
        currency=campaign.currency,
        # `columns`/`defaults` arrive with column matching; absent from older Contacts.
        columns=dict(getattr(contacts, "columns", None) or {}),
        defaults=dict(getattr(contacts, "defaults", None) or {}),
        source=contacts.source,
        phone_columns=contacts.phone_columns,
        id_column=contacts.id_column,
        country_column=contacts.country_column,
        suppress=tuple(_as_written(p, campaign.folder) for p in contacts.suppress),
        sheet=contacts.sheet,
        called_by_account=campaign.called_by_account,
        endpoint=campaign.endpoint,
        api_key_env=campaign.api_key_env,
        logs_endpoint=campaign.logs_endpoint,
        logs_timezone=campaign.logs_timezone,
        concurrency=dispatch.concurrency,
        max_attempts=dispatch.max_attempts,
        timeout_seconds=dispatch.timeout_seconds,
        notify=campaign.notify if campaign.notify and not campaign.notify.shared else None,
    )


def without_unused_columns(form: CampaignForm) -> CampaignForm:
    """`form` minus the `columns`/`defaults` entries for names its templates and roles (phone,
    id column, the window's time zone column) no longer use. The loader refuses such an entry
    (a typo must not leave a column unmatched), so removing a variable from the greeting on the
    page would otherwise make the campaign impossible to save, preview or edit there."""
    if not form.columns and not form.defaults:
        return form
    from dialer.templating.sandbox import template_variables

    variables = template_variables(form.first_line, form.instruction)
    if variables is None:
        return form  # a template that does not parse: compiling it names the error
    window_zone = form.timezone_column if form.window_hours is not None else None
    roles = (*form.phone_columns, form.id_column, form.country_column, window_zone)
    used = variables | {n for n in roles if n}
    return replace(
        form,
        columns={k: v for k, v in form.columns.items() if k in used},
        defaults={k: v for k, v in form.defaults.items() if k in variables},
    )


def _as_written(path: Path, folder: Path) -> str:
    """A do-not-call list's path for the file: relative to the campaign's folder when it is
    in the same project (the project stays movable), else absolute."""
    absolute = Path(os.path.abspath(path))
    folder = Path(os.path.abspath(folder))
    if absolute.is_relative_to(folder.parent):
        return os.path.relpath(absolute, folder)
    return str(absolute)


# -- TOML ---------------------------------------------------------------------------------------

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f"}
_ESCAPES["\r"] = "\\r"


def toml_string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and every control character escaped (TOML
    forbids raw controls and DEL); a lone surrogate, which no file can hold, is refused."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04x}")
        elif 0xD800 <= code <= 0xDFFF:
            raise CampaignError("a text holds an invalid character (a lone surrogate)")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _key(name: str) -> str:
    return name if _BARE_KEY.fullmatch(name) else toml_string(name)


def _float(value: float) -> str:
    if not math.isfinite(value):
        return "nan"  # refused by the loader with the key named
    return repr(float(value))


def toml_value(value: object) -> str:
    """A TOML value for text, whole numbers (a bool as 0 or 1), lists and tables of them: the
    one writer of TOML values (campaign files, the page's schedules)."""
    if isinstance(value, bool | int):
        return str(int(value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return (
            "{ " + ", ".join(f"{_key(str(k))} = {toml_value(v)}" for k, v in value.items()) + " }"
        )
    return toml_string(str(value))


def _strings(items: Iterable[str]) -> str:
    return toml_value(list(items))


def _inline(table: Mapping[str, str]) -> str:
    return toml_value(table)


def render_toml(form: CampaignForm, *, now: datetime | None = None) -> str:
    """The campaign file for `form`: valid TOML whatever its texts hold."""
    when = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# Saved from the dialer page on {when}; the previous version is kept as .bak.",
        f"name = {toml_string(form.name)}",
        *([f"title = {toml_string(form.title)}"] if form.title else []),
        f"organization_id = {form.organization_id}",
        f"agent_id = {form.agent_id}",
        f"call_from = {toml_string(form.call_from)}",
    ]
    if form.called_by_account != "API":
        lines.append(f"called_by_account = {toml_string(form.called_by_account)}")
    lines.append(f"first_line = {toml_string(form.first_line)}")
    if form.instruction:
        lines.append(f"instruction = {toml_string(form.instruction)}")
    for key in ("endpoint", "logs_endpoint"):
        value = getattr(form, key)
        if value is not None:
            lines.append(f"{key} = {toml_string(value)}")
    if form.api_key_env != DEFAULT_API_KEY_ENV:
        lines.append(f"api_key_env = {toml_string(form.api_key_env)}")
    if form.logs_timezone != "UTC":
        lines.append(f"logs_timezone = {toml_string(form.logs_timezone)}")
    if form.cost_per_call is not None:
        lines.append(f"cost_per_call = {_float(form.cost_per_call)}")
    if form.currency is not None:
        lines.append(f"currency = {toml_string(form.currency)}")

    lines += ["", "[contacts]", f"source = {toml_string(form.source or new_source(form.name))}"]
    phones = form.phone_columns
    phone_value = toml_string(phones[0]) if len(phones) == 1 else _strings(phones)
    lines.append(f"phone_column = {phone_value}")
    if form.id_column:
        lines.append(f"id_column = {toml_string(form.id_column)}")
    if form.default_region:
        lines.append(f"default_region = {toml_string(form.default_region)}")
    if form.country_column:
        lines.append(f"country_column = {toml_string(form.country_column)}")
    if form.suppress:
        lines.append(f"suppress = {_strings(form.suppress)}")
    if form.sheet:
        lines.append(f"sheet = {toml_string(form.sheet)}")
    if form.columns:
        lines.append(f"columns = {_inline(form.columns)}")
    if form.defaults:
        lines.append(f"defaults = {_inline(form.defaults)}")

    lines += [
        "",
        "[dispatch]",
        f"rate_per_second = {_float(form.rate_per_second)}",
        f"concurrency = {form.concurrency}",
        f"max_attempts = {form.max_attempts}",
        f"timeout_seconds = {_float(form.timeout_seconds)}",
    ]
    if form.window_hours is not None or form.skip_dates:
        lines += ["", "[window]"]
    if form.window_hours is not None:
        lines += [
            f"hours = {toml_string(form.window_hours)}",
            f"days = {_strings(form.window_days)}",
        ]
        if form.timezone_column:
            lines.append(f"timezone_column = {toml_string(form.timezone_column)}")
    if form.skip_dates:
        lines.append(f"skip_dates = {_strings(form.skip_dates)}")
    if form.legal_hours:
        lines += ["", "[window.legal]"]
        lines += [f"{_key(country)} = {toml_string(hours)}" for country, hours in form.legal_hours]
    if form.redial:
        lines += [
            "",
            "[redial]",
            f"outcomes = {_strings(form.redial_outcomes)}",
            f"after_minutes = {_float(form.redial_after_minutes)}",
            f"max_calls = {form.redial_max_calls}",
        ]
    if form.limits_per_day is not None or form.limits_per_week is not None:
        lines += ["", "[limits]"]
        if form.limits_per_day is not None:
            lines.append(f"per_day = {form.limits_per_day}")
        if form.limits_per_week is not None:
            lines.append(f"per_week = {form.limits_per_week}")
    optout = [] if form.optout_enabled else ["enabled = false"]
    if form.optout_outcomes is not None:
        optout.append(f"outcomes = {_strings(form.optout_outcomes)}")
    if form.optout_phrases is not None:
        optout.append(f"phrases = {_strings(form.optout_phrases)}")
    if optout:
        lines += ["", "[optout]", *optout]
    if form.notify is not None:
        lines += ["", "[notify]", *_notify_lines(form.notify)]
    return "\n".join(lines) + "\n"


def _notify_lines(notify: Notify) -> list[str]:
    """A campaign's own `[notify]`, as the loader reads it back."""
    lines = [f"url_env = {toml_string(notify.url_env)}"]
    if notify.secret_env:
        lines.append(f"secret_env = {toml_string(notify.secret_env)}")
    lines.append(f"events = {_strings(sorted(notify.events))}")
    lines.append(f"outcomes = {'true' if notify.outcomes else 'false'}")
    return lines


# -- saving -------------------------------------------------------------------------------------


def field_of(message: str) -> str | None:
    """The form field a loader error is about ("key 'window.hours' must ..." -> window_hours)."""
    match = _KEY_IN_ERROR.search(message)
    return FIELD_OF_KEY.get(match.group(1)) if match else None


def campaign_path(folder: Path, name: str) -> Path:
    """`campaigns/<name>.toml`; a name that is no safe file name is the loader's error."""
    problem = name_problem(name)
    if problem:
        raise CampaignError(problem)
    return folder / f"{name}.toml"


def check_form(folder: Path, form: CampaignForm, *, trial: bool = True) -> Campaign:
    """`form` as the CLI would load it from `folder/<name>.toml`, its templates compiled and
    (with `trial`) trial-rendered, as every check does, writing nothing; raises the
    loader's `CampaignError`. The page passes trial=False and leaves the trial render to
    a child: a template costing seconds per render must cost that child, not the server."""
    from dialer.sheets.contacts import Templates

    path = campaign_path(folder, form.name)
    try:
        campaign = parse_campaign(path, render_toml(form).encode())
        Templates.compile(campaign, trial=trial)
    except CampaignError as exc:  # the file's name, as save_campaign says it: not the server's
        raise CampaignError(str(exc).replace(str(path), path.name)) from None
    return campaign


class ChangedMeanwhile(CampaignError):
    """The file to be replaced is no longer the one the form was made from."""


def save_campaign(
    folder: Path,
    form: CampaignForm,
    *,
    create: bool = False,
    expect_sha256: str | None = None,
    templates_checked: bool = False,
) -> Path:
    """Write `campaigns/<name>.toml` atomically, keeping the previous one as `.bak`; a form
    that does not load is never written. With `create`, an existing file is an error. With
    `expect_sha256` (the SHA-256 of the file the form was made from), a file that changed
    since (saved elsewhere, edited by hand) is not replaced: ChangedMeanwhile, so nobody's
    edit is undone by a form opened before it. `templates_checked`: the caller had the
    templates trial-rendered elsewhere (the page: in a child), so they are only compiled."""
    from dialer.campaign.binding import file_sha256

    target = campaign_path(folder, form.name)
    temp, _ = _checked_temp(folder, form, trial=not templates_checked)
    try:
        if expect_sha256 is not None and file_sha256(target) != expect_sha256:
            raise ChangedMeanwhile(f"{target.name} changed since this form was opened")
        if create:
            try:
                os.link(temp, target)  # atomic "only if absent": two creators cannot clobber
            except FileExistsError:
                raise CampaignError(
                    f"key 'name': a campaign file {target.name} exists already; edit it instead"
                ) from None
        else:
            if target.exists():
                _backup(target)
            os.replace(temp, target)
        sync_folder(folder)
    except OSError as exc:
        raise CampaignError(f"{target}: cannot write the campaign file: {exc.strerror}") from None
    finally:
        temp.unlink(missing_ok=True)
    return target


def _checked_temp(folder: Path, form: CampaignForm, *, trial: bool = True) -> tuple[Path, Campaign]:
    """The form written to a temporary file in `folder` and loaded; removed if it fails."""
    from dialer.sheets.contacts import Templates

    shown = campaign_path(folder, form.name).name
    text = render_toml(form)
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=folder, prefix=".", suffix=_TEMP_SUFFIX)
    temp = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        try:
            campaign = load_campaign(temp)
            Templates.compile(campaign, trial=trial)
        except CampaignError as exc:
            raise CampaignError(str(exc).replace(str(temp), shown)) from None
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return temp, campaign


def _backup(target: Path) -> None:
    """The current file as `<name>.toml.bak`, itself replaced atomically."""
    with replacing(target.with_name(target.name + BACKUP_SUFFIX)) as f:
        f.write(target.read_bytes())
