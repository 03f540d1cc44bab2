"""A campaign as values: the frozen `Campaign` and its tables, every default, and the rules
of its values (the name, the endpoints, the bounds a parse checks against).

    campaign = load_campaign(Path("campaigns/example.toml"))   # dialer.campaign.parse
    campaign.dispatch.rate_per_second                          # 2.0 unless the file says

Reading a campaign file (one function per table, unknown keys refused) is
`dialer.campaign.parse`; writing one is `dialer.web.services.campaign_toml`.
"""

from __future__ import annotations

import ipaddress
import os
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

from dialer.core.legal_floor import FLOOR, LegalHours
from dialer.core.statuses import CallOutcome, UsageError

DEFAULT_ENDPOINT = "https://www.tabbly.io/dashboard/agents/endpoints/trigger-call"
DEFAULT_API_KEY_ENV = "TABBLY_API_KEY"
ENDPOINT_ENV = "TABBLY_API_URL"
DEFAULT_LOGS_ENDPOINT = "https://www.tabbly.io/dashboard/agents/endpoints/call-logs-v2"
TRIGGER_NAME = "trigger-call"  # the last part of the trigger-call URL's path
LOGS_NAME = "call-logs-v2"
LOGS_ENDPOINT_ENV = "TABBLY_LOGS_URL"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_CAMPAIGN_NAME_CHARS = 64
MAX_TITLE_CHARS = 120  # the name as typed on the page; `name` is derived from it
# `state/contacts.sqlite` is the folder's shared contact counts (dialer.ledger.contact_limits).
RESERVED_NAME = "contacts"
# `state/team.sqlite` is the folder's people and audit trail (dialer.team).
TEAM_NAME = "team"
# A campaign file is a page of settings; anything far bigger is a file given by mistake.
MAX_CAMPAIGN_BYTES = 1024 * 1024
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_NOT_NAME_CHARS = re.compile(r"[^a-z0-9]+")
# What to do about template variables the sheet lacks (the dry run's warning, the page's).
MATCH_COLUMNS = "match them in [contacts] columns or give [contacts] defaults"


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
class Legal:
    """What holds under every campaign, `[window]` or not (SPEC 12): the legal calling hours
    per country (the built-in floor, tightened by `[window.legal]`) and `[window] skip_dates`,
    both in the callee's local time."""

    # The floor with the campaign's tightenings applied (`core.legal_floor.tightened`).
    hours: Mapping[str, LegalHours] = field(default_factory=lambda: FLOOR, compare=False)
    tightening: tuple[tuple[str, str], ...] = ()  # as written: what makes two equal
    skip_dates: frozenset[date] = frozenset()


@dataclass(frozen=True, slots=True)
class OptOutWords:
    """`[optout]`: which words heard on a call opt the person out (SPEC 12). None: the
    built-in list (`outcomes.optout_words`). A campaign switches detection off, never the
    register: a number opted out is never called by any campaign of the folder."""

    enabled: bool = True
    outcomes: tuple[str, ...] | None = None
    phrases: tuple[str, ...] | None = None


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
    legal: Legal = field(default_factory=Legal)
    optout: OptOutWords = field(default_factory=OptOutWords)
    redial: Redial | None = None
    limits: Limits | None = None
    logs_endpoint: str | None = None
    logs_timezone: str = "UTC"  # the zone of a log row's `called_time` without an offset
    # What one call costs, for the page's estimate before launch when no synced call has a cost.
    cost_per_call: float | None = None
    # The ISO 4217 code costs are said in on the page ("USD"); None: the number alone.
    currency: str | None = None
    # SHA-256 of the very bytes parsed: a run bound to a check compares it (campaign.binding).
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
