"""The rules of "call me first" (SPEC 11): a test call is a real call to a real person, so the
page places one only to a personal phone of the campaign's countries, inside the hours, within
its caps, and counts it in `[limits]` like any call.

    guard = TestCalls(settings, clock)
    guard.judge_number(campaign, "+19005550123", now)   # UsageError: premium rate
    guard.judge_country(campaign, e164, ["IN", "US"])   # UsageError: not a country it calls
    guard.take(session.csrf, now)                       # TestCallsCapped (429) past an hour's cap
    outcome = await guard.place(campaign, contact, environ, "june.xlsx")

What may be called: a mobile or landline number (phonenumbers' type), never premium-rate,
shared-cost, personal (forwarding), pager, UAN, VoIP or a number of no country (+881, +882,
+870 satellites, +979 international premium); of the campaign's countries (its country for
local numbers, the row's own number's, each its country column names); at a time inside the
campaign's window and `test_call_hours` in every zone of the number (`dialer.engine.window`).

How many: per browser session and for every session together (one shared token is one user
today) in any hour, counted here in memory; per campaign in any 24 hours, counted in the
campaign's ledger (`test_calls`) under its run lock, so neither a restart nor a second server
resets it. Each test call is claimed in `state/contacts.sqlite` like a run's call
(`ContactBook.reserve`): a person over the campaign's `[limits]` is refused, and the call
counts toward their limits in every campaign of the folder.
"""

from __future__ import annotations

import asyncio
import math
import secrets
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import phonenumbers
from phonenumbers import PhoneNumberType

from dialer.campaign.model import Campaign, Window
from dialer.campaign.paths import state_folder
from dialer.core.clock import Clock, parse_stamp, stamp, system_clock
from dialer.core.statuses import KIND_RULES, Kind, UsageError
from dialer.engine.gate import limit_rule
from dialer.engine.window import check_window
from dialer.ledger.contact_limits import ContactBook
from dialer.ledger.rebuild import open_for_run
from dialer.ledger.store import Ledger
from dialer.sheets.contacts import Contact
from dialer.sheets.countries import country_name
from dialer.tabbly.client import BodyBuilder, Outcome, TabblyClient, api_key_from
from dialer.web import texts
from dialer.web.settings import Settings

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# The kinds of number a person answers themselves; every other type costs the caller or
# rings nobody in particular.
PERSONAL_TYPES = frozenset(
    {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE, PhoneNumberType.FIXED_LINE_OR_MOBILE}
)
# phonenumbers' region for country codes of no country: satellites, international networks.
NO_COUNTRY = "001"
_TYPE_WORDS = {
    PhoneNumberType.PREMIUM_RATE: "a premium-rate number",
    PhoneNumberType.SHARED_COST: "a shared-cost number",
    PhoneNumberType.TOLL_FREE: "a toll-free number",
    PhoneNumberType.PERSONAL_NUMBER: "a personal (forwarding) number",
    PhoneNumberType.PAGER: "a pager number",
    PhoneNumberType.UAN: "a company (UAN) number",
    PhoneNumberType.VOIP: "an internet (VoIP) number",
    PhoneNumberType.VOICEMAIL: "a voicemail access number",
}


class TestCallsCapped(UsageError):
    """Too many test calls for now (HTTP 429); `retry_after` in whole seconds."""

    __test__ = False  # not a pytest class, whatever its name

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = max(1, math.ceil(retry_after))


@dataclass(slots=True)
class _Hourly:
    """When the test calls of the last hour were placed, oldest first."""

    times: deque[datetime]

    def count(self, now: datetime) -> int:
        while self.times and now - self.times[0] >= HOUR:
            self.times.popleft()
        return len(self.times)


class TestCalls:
    """The caps and rules of one server's test calls; `clock` is the page's clock."""

    __test__ = False

    def __init__(self, settings: Settings, clock: Clock = system_clock) -> None:
        self.settings = settings
        self.clock = clock
        self._sessions: dict[str, _Hourly] = {}
        self._everyone = _Hourly(deque())

    def judge_number(self, campaign: Campaign, e164: str, now: datetime) -> None:
        """A UsageError unless `e164` is a personal phone of some country, inside the hours."""
        number = phonenumbers.parse(e164)
        prefix = f"+{number.country_code}"
        if phonenumbers.region_code_for_number(number) in (None, NO_COUNTRY):
            raise UsageError(texts.test_call_no_country(prefix))
        kind = phonenumbers.number_type(number)
        if kind not in PERSONAL_TYPES:
            what = _TYPE_WORDS.get(kind, "a number of an unknown kind")
            raise UsageError(texts.test_call_not_personal(what))
        start, end = self.settings.test_call_hours
        floor = Window(start, end, frozenset(range(7)), hours=f"{_hm(start)}-{_hm(end)}")
        for window in (campaign.window, floor):
            check = check_window(window, e164, None, now)
            if not check.allowed:
                raise UsageError(texts.test_call_outside_hours(check.reason))

    @staticmethod
    def judge_country(campaign: Campaign, e164: str, countries: Iterable[str]) -> None:
        """A UsageError unless `e164` is of the campaign's country for local numbers or one
        of `countries`, those it calls with the sheet (`preview.test_contact`)."""
        region = phonenumbers.region_code_for_number(phonenumbers.parse(e164))
        allowed = {r for r in (campaign.contacts.default_region, *countries) if r}
        if region not in allowed:
            raise UsageError(
                texts.test_call_other_country(country_name(region), _names(sorted(allowed)))
            )

    def take(self, session: str, now: datetime) -> None:
        """Count one test call of `session` now, or TestCallsCapped past an hour's cap."""
        mine = self._sessions.setdefault(session, _Hourly(deque()))
        settings = self.settings
        for hourly, cap, said in (
            (mine, settings.test_calls_per_session_hour, texts.TEST_CALLS_YOURS),
            (self._everyone, settings.test_calls_per_hour, texts.TEST_CALLS_EVERYONE),
        ):
            if hourly.count(now) >= cap:
                wait = (hourly.times[0] + HOUR - now).total_seconds()
                raise TestCallsCapped(texts.test_calls_capped(cap, said, wait), wait)
        mine.times.append(now)
        self._everyone.times.append(now)
        for key in [k for k, v in self._sessions.items() if not v.count(now)]:
            del self._sessions[key]  # sessions with nothing in the last hour are forgotten

    async def place(
        self, campaign: Campaign, contact: Contact, environ: Mapping[str, str], sheet_name: str
    ) -> Outcome:
        """One trigger request, claimed in the contact book and recorded in the ledger's
        `test_calls` before it leaves and after it answers; a UsageError or LedgerError when
        it may not be placed (no key, a run holds the lock, a cap or limit says no)."""
        key = environ.get(campaign.api_key_env, "")
        if not key:
            raise UsageError(texts.NO_API_KEY.format(env=campaign.api_key_env))
        secret = api_key_from(campaign, environ)  # refuses an absurdly long key
        endpoint = campaign.checked_endpoint(environ)
        now = self.clock()
        run = f"test:{secrets.token_hex(8)}"  # the book's name for this one call
        ledger = await asyncio.to_thread(open_for_run, campaign, self.clock)
        book: ContactBook | None = None
        try:
            book = await asyncio.to_thread(
                ContactBook.open, state_folder(campaign), now, create=campaign.limits is not None
            )
            test_id = await asyncio.to_thread(
                self._claim, ledger, book, campaign, contact, sheet_name, run, now
            )
            body = BodyBuilder(campaign, secret).build(contact)
            timeout = campaign.dispatch.timeout_seconds
            async with TabblyClient(endpoint, secret, 1, timeout) as client:
                outcome = await client.post(body)
            await asyncio.to_thread(
                ledger.finish_test_call,
                test_id,
                outcome.kind.value,
                outcome.reason,
                outcome.http_status,
                outcome.call_id,
            )
            if book is not None:
                await asyncio.to_thread(_settle, book, outcome.kind, contact, campaign, run)
        finally:
            if book is not None:
                await asyncio.to_thread(book.close)
            await asyncio.to_thread(ledger.close)
        return outcome

    def _claim(
        self,
        ledger: Ledger,
        book: ContactBook | None,
        campaign: Campaign,
        contact: Contact,
        sheet_name: str,
        run: str,
        now: datetime,
    ) -> int:
        """Under the run lock: the campaign's daily cap, the person's limits, then the
        record made before the request leaves. Blocking."""
        cap = self.settings.test_calls_per_campaign_day
        count, oldest = ledger.test_calls_since(stamp(now - DAY))
        if count >= cap:
            first = parse_stamp(oldest or "") or now
            wait = (first + DAY - now).total_seconds()
            said = texts.TEST_CALLS_CAMPAIGN.format(name=campaign.shown_name)
            raise TestCallsCapped(texts.test_calls_capped(cap, said, wait, day=True), wait)
        if book is not None:
            number = contact.called_to
            refused = book.reserve([number], campaign.name, run, now, limit_rule(campaign.limits))
            if number in refused:
                raise UsageError(texts.TEST_CALL_LIMITED.format(reason=refused[number]))
        return ledger.start_test_call(
            contact.called_to, contact.row, sheet_name, contact.custom_identifiers
        )


def _settle(book: ContactBook, kind: Kind, contact: Contact, campaign: Campaign, run: str) -> None:
    """The book's line for the call: placed, or gone if the upstream certainly placed none."""
    if KIND_RULES[kind].placed_no_call:
        book.release([contact.called_to], campaign.name, run)
    elif kind is Kind.TRIGGERED:
        book.placed([contact.called_to], campaign.name, run)


def _hm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _names(regions: Iterable[str]) -> str:
    return " or ".join(country_name(r) for r in regions)
