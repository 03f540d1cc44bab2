""" "Call me first" as a logged-in user who means harm would use it (issue 18, item 10): capped
per session, for everyone and per campaign (HTTP 429), only to a personal phone of the
campaign's countries, only by day in the number's zone, counted in `[limits]`, and listed with
its cost on the campaign's page. A real server, a real fake Tabbly, real ledgers."""

from __future__ import annotations

import html
import re
import sqlite3
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from dialer import web
from dialer.fake_tabbly import DEFAULT_API_KEY, FakeTabblyThread
from tests.test_web import _checked, _login, _project, _serve_on, daytime
from tests.test_web_editor import ROWS, _form, _test_call_fields

# The page's clock in these tests reads around noon in India today; this later, 01:00.
NIGHT = timedelta(hours=13)


def _serve(root: Path, fake: FakeTabblyThread, body, **options) -> None:  # type: ignore[no-untyped-def]
    env = {"TABBLY_API_KEY": DEFAULT_API_KEY, "TABBLY_API_URL": fake.url}
    options.setdefault("clock", daytime)
    _serve_on(root, body, env, **options)


async def _call(client: TestClient, csrf: str, dry_id: str, **changes: Any) -> tuple[int, str]:
    answer = await client.post("/test-call", data=_form(csrf, _test_call_fields(dry_id, **changes)))
    return answer.status, html.unescape(await answer.text())


def _sent(fake: FakeTabblyThread) -> list[str]:
    return [r.body["called_to"] for r in fake.received]


def test_test_calls_are_capped_per_session_and_for_everyone_in_an_hour_with_429(tmp_path):
    caps = replace(web.DEFAULTS, test_calls_per_session_hour=2, test_calls_per_hour=3)
    with FakeTabblyThread(balance=10) as fake:

        async def body(client: TestClient, server: web.Server) -> None:
            csrf, dry_id = await _checked(client, ROWS)
            for _ in range(2):
                status, page = await _call(client, csrf, dry_id)
                assert status == 200 and "Test call placed" in page, page
            answer = await client.post(
                "/test-call", data=_form(csrf, _test_call_fields(dry_id), reply="json")
            )
            said = await answer.json()
            assert answer.status == 429, said
            assert int(answer.headers["Retry-After"]) > 0
            assert "At most 2 test calls from you in any hour" in said["message"]
            # A new session (log in again) has its own count, but not past everyone's.
            await client.post("/logout", data={"csrf": csrf})
            csrf = await _login(client)
            status, page = await _call(client, csrf, dry_id)
            assert status == 200, page
            status, page = await _call(client, csrf, dry_id)
            assert status == 429, page
            assert "At most 3 test calls from everyone on this page together" in page

        _serve(_project(tmp_path), fake, body, settings=caps)
        assert len(fake.received) == 3


def test_test_calls_of_a_campaign_are_capped_per_day_even_across_a_restart(tmp_path):
    caps = replace(web.DEFAULTS, test_calls_per_campaign_day=2)
    root = _project(tmp_path)
    with FakeTabblyThread(balance=10) as fake:

        async def first(client: TestClient, server: web.Server) -> None:
            csrf, dry_id = await _checked(client, ROWS)
            for _ in range(2):
                status, page = await _call(client, csrf, dry_id)
                assert status == 200, page

        async def restarted(client: TestClient, server: web.Server) -> None:
            csrf, dry_id = await _checked(client, ROWS)
            status, page = await _call(client, csrf, dry_id)
            assert status == 429, page
            assert "At most 2 test calls of campaign example in any 24 hours" in page

        _serve(root, fake, first, settings=caps)
        _serve(root, fake, restarted, settings=caps)
        assert len(fake.received) == 2


# What a caller might type, and the words of each refusal.
NOT_PERSONAL = [
    ("+19005551234", "premium-rate"),  # US 900
    ("+449091234567", "premium-rate"),  # UK 0909
    ("+9118603451234", "shared-cost"),  # India 1860
    ("+911409305260", "company (UAN)"),
    ("+447012345678", "personal (forwarding)"),  # UK 070
    ("+447640123456", "pager"),
    ("+445612345678", "internet (VoIP)"),
    ("+881612345678", "+881 numbers belong to no country"),  # satellite
    ("+870773111632", "+870 numbers belong to no country"),  # Inmarsat
    ("+979123456789", "+979 numbers belong to no country"),  # international premium
    ("+6591234567", "That is a number of Singapore"),  # not the campaign's country
]


def test_only_a_personal_phone_of_the_campaigns_countries_is_called(tmp_path):
    with FakeTabblyThread(balance=10) as fake:

        async def body(client: TestClient, server: web.Server) -> None:
            csrf, dry_id = await _checked(client, ROWS)
            for number, said in NOT_PERSONAL:
                status, page = await _call(client, csrf, dry_id, test_number=number)
                assert status == 400, (number, page)
                assert said in page, number
                assert 'id="error-test-number"' in page

        _serve(_project(tmp_path), fake, body)
        assert fake.received == []


def test_a_test_call_rings_only_inside_the_window_and_the_legal_hours(tmp_path):
    with FakeTabblyThread(balance=10) as fake:

        async def body(client: TestClient, server: web.Server) -> None:
            csrf, dry_id = await _checked(client, ROWS)
            # The campaign calls at any hour: the legal hours still hold at 01:00 in India.
            server.test_calls.clock = lambda: daytime() + NIGHT
            status, page = await _call(client, csrf, dry_id)
            assert status == 400, page
            assert "Not a time to ring that number: outside calling hours 09:00-21:00" in page
            # Noon, but the campaign's own window is the morning.
            server.test_calls.clock = daytime
            days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
            window = {"window_from": "09:00", "window_to": "11:00", "window_days": days}
            status, page = await _call(client, csrf, dry_id, **window)
            assert status == 400, page
            assert "outside calling hours 09:00-11:00 in Asia/Calcutta" in page

        _serve(_project(tmp_path), fake, body)
        assert fake.received == []


def test_a_test_call_counts_in_limits_and_a_person_over_them_is_refused(tmp_path):
    root = _project(tmp_path)
    toml = root / "campaigns" / "example.toml"
    toml.write_text(toml.read_text() + "\n[limits]\nper_day = 1\n")
    own = b"customer_id,first_name,phone,order_id,order_date\nC9,Me,+917359099999,O9,May 9\n"
    with FakeTabblyThread(balance=10) as fake:

        async def body(client: TestClient, server: web.Server) -> None:
            csrf, dry_id = await _checked(client, ROWS)
            status, page = await _call(client, csrf, dry_id, limits_per_day="1")
            assert status == 200, page
            status, page = await _call(client, csrf, dry_id, limits_per_day="1")
            assert status == 400, page
            assert "may not be called now under the campaign's limits: 1 call in the last 24" in (
                page
            )
            # A check of a sheet with that number holds it back: the test call counted.
            _, own_id = await _checked(client, own)
            assert server.jobs.dry_runs[own_id].summary["counts"].get("limited") == 1

        _serve(root, fake, body)
        assert _sent(fake) == ["+917359099999"]
    with sqlite3.connect(root / "state" / "contacts.sqlite") as conn:
        lines = conn.execute("SELECT called_to, campaign, placed FROM contact_calls").fetchall()
    assert lines == [("+917359099999", "example", 1)]


def test_a_test_call_made_before_any_limits_counts_once_they_are_set(tmp_path):
    """No campaign had `[limits]` (no contact book yet): the book made later is filled from
    the ledgers, and a test call of theirs counts there like a run's call."""
    root = _project(tmp_path)
    toml = root / "campaigns" / "example.toml"
    own = b"customer_id,first_name,phone,order_id,order_date\nC9,Me,+917359099999,O9,May 9\n"
    with FakeTabblyThread(balance=10) as fake:

        async def body(client: TestClient, server: web.Server) -> None:
            csrf, dry_id = await _checked(client, ROWS)
            status, page = await _call(client, csrf, dry_id)
            assert status == 200, page
            assert not (root / "state" / "contacts.sqlite").exists()
            toml.write_text(toml.read_text() + "\n[limits]\nper_day = 1\n")
            _, own_id = await _checked(client, own)
            assert server.jobs.dry_runs[own_id].summary["counts"].get("limited") == 1

        _serve(root, fake, body)


def test_each_test_call_is_listed_with_its_cost_on_the_campaigns_page(tmp_path):
    root = _project(tmp_path)
    toml = root / "campaigns" / "example.toml"
    toml.write_text(toml.read_text().replace("[contacts]", "cost_per_call = 0.25\n\n[contacts]"))
    with FakeTabblyThread(balance=10) as fake:

        async def body(client: TestClient, server: web.Server) -> None:
            csrf, dry_id = await _checked(client, ROWS)
            status, page = await _call(client, csrf, dry_id)
            assert status == 200, page
            page = html.unescape(await (await client.get("/campaigns/example/results")).text())
            row = re.search(r'<tr class="test-call">(.*?)</tr>', page, re.S)
            assert row, page
            cells = re.findall(r"<td[^>]*>(.*?)</td>", row[1], re.S)
            assert cells[1] == "+91*******999"  # masked, as everywhere on the page
            assert "placed" in cells[2]
            assert cells[3] == "≈ 0.25"
            assert "+917359099999" not in page
            assert "1 test call placed in the last 24 hours, about 0.25" in page

        _serve(root, fake, body)
