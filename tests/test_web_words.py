"""The page speaks the marketer's words: every page of the story (start page, check, run in
progress and after a wallet stop, results, schedules) fetched from the real server, its visible
text free of status codes, file names and engineering words; the wallet stop's counts add up;
Sync says what it did; costs carry the campaign's currency; calls per hour waits for a run
long enough to mean it."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from test_web_hardening import READY, _check, _fake_env, _launch, _login, _run, _until
from test_web_results import _env
from test_web_watch import web_run

from dialer import web
from dialer.campaign.model import WEEKDAYS
from dialer.campaign.parse import load_campaign
from dialer.core.currencies import money
from dialer.core.statuses import CallOutcome, ExitCode, Status, StopReason
from dialer.fake_tabbly import FakeTabblyThread
from dialer.web import texts
from dialer.web.services.campaign_toml import form_from_campaign, save_campaign
from dialer.web.services.schedule_entry import MISSED, PAUSED, REFUSED, WAITING

# Words a marketer does not use, on any page: the report's status codes, file names and keys
# of the campaign file, the scheduler's jargon, HTTP codes, and wrong plurals.
FORBIDDEN = [
    *(re.escape(s.value) for s in Status if "_" in s.value),
    *(re.escape(o.value) for o in CallOutcome if "_" in o.value),
    *(re.escape(r.value) for r in StopReason if "_" in r.value),
    r"\btriggered\b",
    r"\binvalid_phone\b",
    r"\.toml",
    r"\[contacts\]",
    r"\bcost_per_call\b",
    r"\bcrontab\b",
    r"\(40[0-9]\)",
    r"\bexit code\b",
    r"\b1 people\b",
    r"\b1 duplicates\b",
    r"\b1 calls\b",
    r"\b1 rows\b",
    r"(?<![\w-])--[a-z]",  # a command-line option
]


def visible_text(page: str) -> str:
    """What a person reads: no scripts, styles, tags or attributes (titles are tooltips)."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S | re.I)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def assert_plain(page: str, where: str) -> None:
    text = visible_text(page)
    found = {p: m.group(0) for p in FORBIDDEN if (m := re.search(p, text, re.I))}
    assert not found, f"{where} says {sorted(found.values())}:\n{' '.join(text.split())}"


def _counts(page: str) -> dict[str, int]:
    table = re.search(r'<table class="counts" id="live-counts">(.*?)</table>', page, re.S)
    rows = re.findall(r'data-status="([^"]+)"[^>]*><th>[^<]*</th><td>(\d+)</td>', table.group(1))
    return {status: int(n) for status, n in rows}


def test_every_page_of_the_story_speaks_plainly_and_the_wallet_stop_adds_up(tmp_path):
    # Five calls' worth of balance: the run stops on an empty wallet, 44 people not called.
    with FakeTabblyThread(latency=0.3, balance=0.5, cost=0.1) as fake:

        async def body(client: TestClient, server: web.Server) -> None:
            csrf = await _login(client)
            assert_plain(await (await client.get("/")).text(), "the start page")

            dry_id = await _check(client, csrf)
            check = await (await client.get(f"/dry-runs/{dry_id}")).text()
            assert_plain(check, "the check")
            assert re.search(r"Ready by country: India \d+", check)
            assert re.search(r"\(\+91\*+\d+, <span class=\"country\" title=\"IN\">India<", check)

            started = await _launch(client, csrf, dry_id)
            run_url = started.headers["Location"]
            run = server.jobs.runs[run_url.rsplit("/", 1)[1]]
            assert_plain(await (await client.get(run_url)).text(), "the run page while calling")
            await _until(lambda: run.finished, "the run stopped on the empty wallet")
            assert run.exit_code == ExitCode.INSUFFICIENT_BALANCE

            page = await (await client.get(run_url)).text()
            assert_plain(page, "the run page after a wallet stop")
            text = " ".join(visible_text(page).split())
            assert "Your Tabbly wallet is empty: top up your Tabbly wallet, then Resume" in text
            counts = _counts(page)
            assert sum(counts.values()) == READY, counts  # called + not called + others
            assert counts[Status.TRIGGERED] == len(fake.accepted())
            assert f"The {READY} people in this run" in text
            said = re.search(r"Of the (\d+) people in this run: (.*?)\.", text)
            assert int(said.group(1)) == READY
            assert sum(int(n) for n in re.findall(r"(\d+) ", said.group(2))) == READY
            resume = int(re.search(r'id="resume-count">(\d+)<', page).group(1))
            assert resume == counts[Status.NOT_ATTEMPTED]
            index = await (await client.get("/")).text()
            assert_plain(index, "the start page with the run in its history")
            assert "stopped: Tabbly wallet empty" in index

            synced = await client.post(
                "/campaigns/example/sync", data={"csrf": csrf, "run": run.id}
            )
            page = await synced.text()
            assert re.search(
                r'id="sync-message"[^>]*>Synced: (\d+ calls? updated|nothing new)', page
            )
            assert_plain(page, "the run page after a sync")
            results = await (await client.get("/campaigns/example/results")).text()
            assert_plain(results, "the results page")

            again = await _check(client, csrf)
            scheduled = await client.post(
                f"/dry-runs/{again}/schedule",
                data={
                    "csrf": csrf,
                    "when": "daily",
                    "time": "13:00",
                    "zone": "UTC",
                    "sheet": "source",
                    "confirm": "yes",
                    "count": str(resume),
                },
            )
            assert scheduled.status == 200, await scheduled.text()
            assert_plain(await scheduled.text(), "the schedules page")

        _run(tmp_path, body, _env(fake))


def test_the_wallet_stop_counts_add_up_when_the_check_left_people_out(tmp_path):
    """The issue's 20 + 38 for 57: rows the check already called "called by an earlier run"
    were counted again among the run's not called. Called + not called = the check's N."""
    with FakeTabblyThread(latency=0.01, balance=0.3, cost=0.1) as fake:

        async def body(client: TestClient, server: web.Server) -> None:
            csrf = await _login(client)
            first = server.jobs.runs[
                (await _launch(client, csrf, await _check(client, csrf)))
                .headers["Location"]
                .rsplit("/", 1)[1]
            ]
            await _until(lambda: first.finished, "the first run stopped")
            fake.top_up(0.4)  # topped up a little: the resumed run stops again
            dry_id = await _check(client, csrf)
            ready = int(
                re.search(
                    r'id="ready-count">(\d+)<',
                    await (await client.get(f"/dry-runs/{dry_id}")).text(),
                ).group(1)
            )
            assert ready < READY  # the first run's people are left out by the check
            started = await client.post(
                f"/dry-runs/{dry_id}/launch",
                data={"csrf": csrf, "confirm": "yes", "count": str(ready)},
                allow_redirects=False,
            )
            run = server.jobs.runs[started.headers["Location"].rsplit("/", 1)[1]]
            await _until(lambda: run.finished, "the resumed run stopped")
            page = await (await client.get(f"/runs/{run.id}")).text()
            counts = _counts(page)
            assert sum(counts.values()) == ready, counts
            assert Status.ALREADY_CALLED not in counts
            assert "Not in this run (the check left them out): " in visible_text(page)

        _run(tmp_path, body, _fake_env(fake))


def test_nobody_callable_now_names_the_day_and_the_fix(tmp_path):
    """On a day the campaign does not call, the check says which day it is and what to do."""
    # The sample's people live from UTC-8 to UTC+5:30: none of them is on a day next to
    # today's in UTC, now or in the next minutes.
    utc_day = datetime.now(UTC).weekday()
    allowed = [d for i, d in enumerate(WEEKDAYS) if (i - utc_day) % 7 not in (6, 0, 1)]

    async def body(client: TestClient, server: web.Server) -> None:
        path = server.root / "campaigns" / "example.toml"
        path.write_text(
            path.read_text("utf-8")
            + f'\n[window]\nhours = "00:00-24:00"\ndays = {allowed!r}\n'.replace("'", '"'),
            "utf-8",
        )
        csrf = await _login(client)
        page = await (await client.get(f"/dry-runs/{await _check(client, csrf)}")).text()
        said = " ".join(visible_text(page).split())
        days = "|".join(texts.DAY_NAMES)
        assert re.search(
            rf"Nobody in this sheet can be called now\. Today is ({days}) in [A-Za-z/ ]+, and ",
            said,
        ), said
        assert "this campaign calls 00:00–24:00, " in said
        assert "schedule the run for then" in said and "change the calling days" in said
        assert_plain(page, "the check of nobody callable")

    _run(tmp_path, body)


def test_costs_are_said_in_the_campaigns_currency_and_a_bad_code_is_refused(tmp_path):
    assert money(24.5, "USD") == "24.50 USD" and money(24.5, None) == "24.50"

    async def body(client: TestClient, server: web.Server) -> None:
        path = server.root / "campaigns" / "example.toml"
        text = path.read_text("utf-8")
        path.write_text(
            text.replace(
                'name = "example"', 'name = "example"\ncost_per_call = 0.5\ncurrency = "USD"'
            ),
            "utf-8",
        )
        campaign = load_campaign(path)
        assert campaign.currency == "USD"
        # Saved from the page, the currency stays.
        save_campaign(path.parent, form_from_campaign(campaign))
        assert load_campaign(path).currency == "USD"
        csrf = await _login(client)
        page = await (await client.get(f"/dry-runs/{await _check(client, csrf)}")).text()
        assert f"about 24.50 USD ({READY} people × 0.5 USD per call" in page
        assert "(estimated cost about 24.50 USD)" in page

    _run(tmp_path, body)


@pytest.mark.parametrize("bad", ["usd", "US", "DOLLARS", "XYZ", ""])
def test_a_currency_that_is_not_an_iso_code_is_refused(tmp_path, bad):
    from dialer.core.statuses import CampaignError

    root = tmp_path / "c"
    root.mkdir()
    source = Path(__file__).resolve().parent.parent / "campaigns" / "example.toml"
    path = root / "example.toml"
    path.write_text(
        source.read_text("utf-8").replace(
            'name = "example"', f'name = "example"\ncurrency = "{bad}"'
        ),
        "utf-8",
    )
    with pytest.raises(CampaignError, match="'currency' must be a 3-letter ISO 4217 code"):
        load_campaign(path)


def test_calls_per_hour_waits_for_ten_minutes_of_calls():
    import sqlite3

    from dialer.ledger import dials

    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, started_at TEXT, finished_at TEXT)")
    conn.execute("CREATE TABLE dials (id INTEGER PRIMARY KEY, run_id INTEGER)")
    conn.execute("INSERT INTO runs VALUES (1, '2026-01-01T10:00:00Z', '2026-01-01T10:00:20Z')")
    conn.executemany("INSERT INTO dials (run_id) VALUES (?)", [(1,)] * 30)
    after = web.DEFAULTS.calls_per_hour_after
    assert after == 600
    assert dials.calls_per_hour(conn, 1) == 30 * 3600 / 20  # the old "5,400 per hour"
    assert dials.calls_per_hour(conn, 1, min_seconds=after) is None
    conn.execute("UPDATE runs SET finished_at = '2026-01-01T10:10:00Z'")
    assert dials.calls_per_hour(conn, 1, min_seconds=after) == 30 * 6


def test_plurals_and_the_schedule_states_are_words():
    assert texts.people(1) == "1 person" and texts.people(2) == "2 people"
    assert texts.plural(1, "duplicate") == "1 duplicate"
    assert texts.plural(3, "duplicate") == "3 duplicates"
    assert texts.left_out({Status.DUPLICATE: 1, Status.INVALID: 1}) == (
        "Not in this run (the check left them out): 1 row that cannot be called "
        "(number or details), 1 duplicate."
    )
    assert {WAITING, REFUSED, MISSED, PAUSED, "started"} == set(texts.SCHEDULE_STATES)
    assert texts.days_text(range(7)) == "every day"
    assert texts.days_text(range(6)) == "Monday–Saturday"
    assert texts.days_text([0, 2, 4]) == "Monday, Wednesday and Friday"


def test_sync_says_how_many_calls_it_updated():
    assert texts.synced(0).startswith("Synced: nothing new yet")
    assert texts.synced(1).startswith("Synced: 1 call updated")
    assert texts.synced(12).startswith("Synced: 12 calls updated")


def test_the_issues_wallet_stop_adds_up_to_the_people_of_the_check():
    """20 called + 38 not called for 57 people: the one row the check had already found
    "called by an earlier run" was counted again among the run's not called."""
    checked = {Status.READY: 57, Status.ALREADY_CALLED: 1, Status.INVALID: 3}
    final = {Status.TRIGGERED: 20, Status.NOT_ATTEMPTED: 37, Status.ALREADY_CALLED: 1}
    run = web_run(57, {}, ExitCode.INSUFFICIENT_BALANCE, checked=checked, final=final)
    view = run.view()
    assert [[k, n] for k, n, _ in view["counts"]] == [["triggered", 20], ["not_attempted", 37]]
    assert view["state_text"] == (
        "Your Tabbly wallet is empty: top up your Tabbly wallet, then Resume. "
        "Of the 57 people in this run: 20 called, 37 not called yet."
    )
    assert view["resume"] == 37
    assert view["left_out"] == (
        "Not in this run (the check left them out): 3 rows that cannot be called "
        "(number or details), 1 called by an earlier run."
    )
