"""Results on the page (SPEC 11): the Sync button and the automatic sync (a child `dialer sync`),
the outcome chart, answer rate, cost and calls per hour, both downloads, the cost estimate on
the check, and the history with checks and runs apart. A real server, a real fake Tabbly with
call logs, real files."""

from __future__ import annotations

import csv
import html
import io
import os
import re
import sqlite3
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from openpyxl import load_workbook
from test_web import ROOT, _checked, _login, _project, _run, _wait_finished

from dialer import web
from dialer.campaign.model import LOGS_ENDPOINT_ENV
from dialer.campaign.parse import load_campaign
from dialer.campaign.paths import PAGE_REPORT_STEM, ledger_path, page_report_path, sheet_slug
from dialer.core.statuses import CallOutcome, CampaignError
from dialer.fake_tabbly import DEFAULT_API_KEY, FakeTabblyThread
from dialer.ledger.sqlite import take_lock
from dialer.web.services.outcomes import Outcomes
from dialer.web.views.chart import COLOURS, TEXT_COLOUR, chart

SHEET = (ROOT / "sample_data" / "contacts.csv").read_bytes()
READY = 49  # the sample sheet's callable rows for the example campaign
# Outcomes whose log rows say them (no `failed`, which an attempt row would outrank).
OUTCOMES = {"answered": 0.4, "no_answer": 0.3, "busy": 0.15, "voicemail": 0.15}


def _fake() -> FakeTabblyThread:
    return FakeTabblyThread(balance=1000, outcomes=OUTCOMES, log_delay=0, seed=3)


def _env(fake: FakeTabblyThread) -> dict[str, str]:
    return {
        "TABBLY_API_KEY": DEFAULT_API_KEY,
        "TABBLY_API_URL": fake.url,
        LOGS_ENDPOINT_ENV: fake.logs_url,
        "PATH": "/usr/bin:/bin",
    }


async def _launched(client: TestClient, server: web.Server) -> tuple[str, str]:
    """Check the sample sheet, launch it, wait for the end: (csrf, run id)."""
    csrf, dry_id = await _checked(client, SHEET)
    started = await client.post(
        f"/dry-runs/{dry_id}/launch",
        data={"csrf": csrf, "confirm": "yes", "count": str(READY)},
        allow_redirects=False,
    )
    assert started.status == 303, await started.text()
    run_id = started.headers["Location"].rsplit("/", 1)[1]
    await _wait_finished(server, run_id)()
    return csrf, run_id


def _chart_counts(page: str) -> dict[str, int]:
    return {m[1]: int(m[2]) for m in re.finditer(r'data-outcome="(\w+)" data-count="(\d+)"', page)}


def _results_files(server: web.Server) -> list[Path]:
    return sorted((server.root / "reports" / "example").glob("*.results.csv"))


def _ledger_dials(server: web.Server) -> list[tuple[str, float | None]]:
    conn = sqlite3.connect(server.root / "state" / "example.sqlite")
    try:
        return list(conn.execute("SELECT outcome, cost FROM dials"))
    finally:
        conn.close()


def _assert_typed_results(data: bytes, people: int) -> None:
    """A results XLSX as the page serves it opens ready to use (SPEC 4.3b): counts and costs
    are numbers, the last call's time a UTC date-time, the tab named after the campaign."""
    book = load_workbook(io.BytesIO(data))
    sheet = book.worksheets[0]
    header, *rows = [dict(enumerate(r)) for r in sheet.iter_rows(values_only=True)]
    at = {name: i for i, name in header.items()}
    assert sheet.title == "example" and len(rows) == people
    for row in rows:
        assert type(row[at["calls"]]) is int
        assert isinstance(row[at["last_called_at (UTC)"]], datetime)
        assert row[at["cost"]] is None or isinstance(row[at["cost"]], int | float)
    assert any(isinstance(row[at["cost"]], float) for row in rows)


def test_sync_button_shows_the_outcomes_the_fake_drew_with_rate_cost_and_downloads(tmp_path):
    with _fake() as fake:

        async def body(client: TestClient, server: web.Server) -> None:
            csrf, run_id = await _launched(client, server)
            page = await (await client.get(f"/runs/{run_id}")).text()
            assert 'id="sync"' in page and 'data-auto-sync="' in page
            before = _chart_counts(page)  # nothing read yet: everyone pending
            assert before == {
                o.value: READY if o is CallOutcome.PENDING else 0 for o in CallOutcome
            }
            assert "No outcome read yet" in page
            none_yet = await client.get("/campaigns/example/results.csv")
            assert none_yet.status == 404 and "press Sync" in await none_yet.text()

            synced = await client.post(
                "/campaigns/example/sync", data={"csrf": csrf, "run": run_id}, allow_redirects=False
            )
            assert synced.status == 303
            assert synced.headers["Location"] == f"/runs/{run_id}#results"
            page = await (await client.get(f"/runs/{run_id}")).text()

            truth = Counter(fake.call_outcomes().values())
            assert sum(truth.values()) == READY
            assert _chart_counts(page) == {o.value: truth.get(o.value, 0) for o in CallOutcome}
            answered = truth["answered"]
            assert f'id="answer-rate">{answered / READY:.0%}<' in page
            assert f'id="answer-rate-of">{answered} of {READY} people with a known' in page
            cost = sum(c or 0 for _, c in _ledger_dials(server))
            assert cost > 0 and f'id="cost">{cost:.2f}<' in page
            # A run of seconds: too short for a rate per hour to mean anything.
            assert re.search(r'id="calls-per-hour"><span class="hint">shown once', page)
            assert re.search(r"Synced: (\d+ calls? updated|nothing new yet)", page)
            assert DEFAULT_API_KEY not in page

            sheet = await client.get("/campaigns/example/results.csv")
            assert sheet.status == 200
            assert re.search(
                r'filename="example_results_\d{8}T\d{6}\.\d{3}Z\.csv"',
                sheet.headers["Content-Disposition"],
            )
            rows = list(csv.DictReader(io.StringIO(await sheet.text())))
            assert len(rows) == READY
            assert Counter(r["outcome"] for r in rows) == truth
            assert all(r["First Name"] for r in rows)  # the sheet's own columns come along
            xlsx = await client.get("/campaigns/example/results.xlsx")
            assert xlsx.status == 200
            _assert_typed_results(await xlsx.read(), READY)
            report = await client.get(f"/runs/{run_id}/report.csv")
            assert report.status == 200
            assert (await report.text()).count(",triggered,") == READY

            # The campaign's own results page shows the same people (the run is not needed).
            whole = await (await client.get("/campaigns/example/results")).text()
            assert _chart_counts(whole) == _chart_counts(page)
            assert f"Outcomes of the {READY} people example called" in whole

        _run(tmp_path, body, _env(fake))


def test_the_check_estimates_the_cost_from_synced_calls_else_the_campaign_else_unknown(
    tmp_path,
):
    with _fake() as fake:

        async def body(client: TestClient, server: web.Server) -> None:
            _, dry_id = await _checked(client, SHEET)
            page = await (await client.get(f"/dry-runs/{dry_id}")).text()
            assert re.search(r'id="cost-estimate"[^>]*>unknown: no call', page)

            toml = server.root / "campaigns" / "example.toml"
            text = toml.read_text()
            toml.write_text(
                text.replace('name = "example"', 'name = "example"\ncost_per_call = 0.5')
            )
            _, dry_id = await _checked(client, SHEET)
            page = await (await client.get(f"/dry-runs/{dry_id}")).text()
            assert (
                "about 24.50 (49 people × 0.5 per call, the cost per call set in the campaign)"
                in page
            )
            assert "(estimated cost about 24.50)" in page  # beside the confirmation too

            csrf, run_id = await _launched(client, server)
            await client.post("/campaigns/example/sync", data={"csrf": csrf, "run": run_id})
            dials = _ledger_dials(server)
            average = sum(c or 0 for _, c in dials) / len(dials)
            _, dry_id = await _checked(client, SHEET)
            page = html.unescape(await (await client.get(f"/dry-runs/{dry_id}")).text())
            # Everyone was called: nobody is ready, and the synced average beats cost_per_call.
            assert (
                f"about 0.00 (0 people × {average:.4g} per call, the average of this campaign's "
                in page
            )
            assert f"{len(dials)} calls read from Tabbly" in page

        _run(tmp_path, body, _env(fake))


def test_automatic_sync_runs_at_most_every_n_seconds_and_the_button_always(tmp_path):
    with _fake() as fake:

        async def body(client: TestClient, server: web.Server) -> None:
            csrf, run_id = await _launched(client, server)
            auto = {"csrf": csrf, "run": run_id, "auto": "1", "reply": "fragment"}
            first = await client.post("/campaigns/example/sync", data=auto)
            assert first.status == 200
            fragment = await first.text()
            assert fragment.lstrip().startswith("<section") and 'id="outcome-chart"' in fragment
            assert len(_results_files(server)) == 1
            again = await client.post("/campaigns/example/sync", data=auto)
            assert again.status == 200 and 'id="outcome-chart"' in await again.text()
            assert len(_results_files(server)) == 1  # not due: shown, not synced again
            button = await client.post(
                "/campaigns/example/sync", data={"csrf": csrf, "run": run_id}, allow_redirects=False
            )
            assert button.status == 303
            assert len(_results_files(server)) == 2

        _run(tmp_path, body, _env(fake), settings=replace(web.DEFAULTS, auto_sync_every=3600))


def test_sync_is_refused_in_a_sentence_while_the_campaign_runs_or_its_ledger_is_held(tmp_path):
    with _fake() as fake:

        async def body(client: TestClient, server: web.Server) -> None:
            csrf, run_id = await _launched(client, server)
            no_csrf = await client.post("/campaigns/example/sync", data={"run": run_id})
            assert no_csrf.status == 403

            campaign = load_campaign(server.root / "campaigns" / "example.toml")
            lock = take_lock(ledger_path(campaign), "example")  # a run from a terminal
            try:
                held = await client.post(
                    "/campaigns/example/sync", data={"csrf": csrf, "reply": "fragment"}
                )
            finally:
                os.close(lock)
            text = await held.text()
            assert "is running elsewhere (perhaps from a terminal)" in text
            assert "Traceback" not in text and "sqlite" not in text
            assert _results_files(server) == []

            # A run of the campaign under way (or starting): no child is started at all.
            with server.jobs.holding("example"):
                busy = await client.post(
                    "/campaigns/example/sync", data={"csrf": csrf, "reply": "fragment"}
                )
                assert "is calling now: its outcomes are read when the run ends" in (
                    await busy.text()
                )
            assert _results_files(server) == []

        _run(tmp_path, body, _env(fake))


def test_a_launch_held_off_by_a_sync_past_its_deadline_starts_nothing_and_says_why(tmp_path):
    """A launch waits for a sync to let go of the ledger (tests/test_web_editor.py), but no
    longer than a sync may take: then it is refused in a sentence, and no run starts."""

    async def body(client: TestClient, server: web.Server) -> None:
        csrf, dry_id = await _checked(client, SHEET)
        form = {"csrf": csrf, "confirm": "yes", "count": str(READY)}
        with server.jobs.holding("example"):  # what a sync holds while its child runs
            refused = await client.post(f"/dry-runs/{dry_id}/launch", data=form)
            page = await refused.text()
            assert refused.status == 409, page
            assert "Not launched: campaign example is running, starting, or still reading" in page
        assert server.jobs.runs == {}
        assert server.jobs.dry_runs[dry_id].run_id is None  # the check can still be launched

    _run(tmp_path, body, settings=replace(web.DEFAULTS, sync_timeout=0.5))


def test_history_lists_runs_and_checks_apart_with_utc_times_and_page_report_names(tmp_path):
    with _fake() as fake:

        async def body(client: TestClient, server: web.Server) -> None:
            await _launched(client, server)
            page = await (await client.get("/")).text()
            runs = page[page.index('id="history-runs"') : page.index('id="history-checks"')]
            checks = page[page.index('id="history-checks"') :]
            name = r"example_c_\d{8}T\d{6}\.\d{3}Z\.csv"
            assert len(re.findall(rf'<tr data-report="{name}"', runs)) == 1
            assert len(re.findall(rf'<tr data-report="{name}"', checks)) == 1
            stamps = re.findall(r'<time datetime="([^"]+)">', page)
            assert len(stamps) == 2
            for when in stamps:
                assert datetime.fromisoformat(when).tzinfo == UTC and when.endswith("Z")
            for link in re.findall(rf'href="(/reports/example/{name[:-6]}\.(?:csv|xlsx))"', page):
                assert (await client.get(link)).status == 200, link

        _run(tmp_path, body, _env(fake))


def test_reports_are_served_by_their_old_and_new_names_and_no_other_file(tmp_path):
    async def body(client: TestClient, server: web.Server) -> None:
        await _login(client)
        folder = server.root / "reports" / "example"
        folder.mkdir(parents=True)
        for stem in ("20260101T000000.000Z", "example_Leads-March_20260101T000000.000Z-2"):
            (folder / f"{stem}.csv").write_text("row,status\n1,ready\n")
            answer = await client.get(f"/reports/example/{stem}.csv")
            assert answer.status == 200 and "ready" in await answer.text(), stem
        (folder / "notes.csv").write_text("secret\n")
        for name in ("notes.csv", "example_x.csv", "..%2Fexample.toml", "a_b_c.csv"):
            assert (await client.get(f"/reports/example/{name}")).status == 404, name

    _run(tmp_path, body)


@pytest.mark.parametrize(
    ("uploaded", "slug"),
    [
        ("Leads March (final).xlsx", "Leads-March-final"),
        ("../../etc/evil.csv", "evil"),
        ("Kunden_Liste.CSV", "Kunden-Liste"),
        ("名单.csv", "sheet"),
        ("x" * 80 + ".csv", "x" * 40),
    ],
)
def test_page_report_names_carry_campaign_and_a_safe_sheet_name(tmp_path, uploaded, slug):
    root = _project(tmp_path)
    campaign = load_campaign(root / "campaigns" / "example.toml")
    when = datetime(2026, 12, 1, 15, 14, 29, 898000, tzinfo=UTC)
    path = page_report_path(campaign, uploaded, when)
    assert sheet_slug(uploaded) == slug
    assert path == root / "reports" / "example" / f"example_{slug}_20261201T151429.898Z.csv"
    found = PAGE_REPORT_STEM.match(path.stem)
    assert found and found["campaign"] == "example" and found["sheet"] == slug


def test_cost_per_call_must_be_a_number_not_below_zero(tmp_path):
    root = _project(tmp_path)
    toml = root / "campaigns" / "example.toml"
    text = toml.read_text()
    for bad in ("-1", '"cheap"', "nan"):
        toml.write_text(
            text.replace('name = "example"', f'name = "example"\ncost_per_call = {bad}')
        )
        with pytest.raises(CampaignError, match="cost_per_call"):
            load_campaign(toml)
    toml.write_text(text.replace('name = "example"', 'name = "example"\ncost_per_call = 2'))
    assert load_campaign(toml).cost_per_call == 2.0


def _contrast(colour: str, background: str = "#ffffff") -> float:
    def luminance(hex_colour: str) -> float:
        channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    high, low = sorted((luminance(colour), luminance(background)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_the_chart_reads_without_colour_and_its_colours_have_contrast():
    counts = dict.fromkeys(CallOutcome, 0) | {CallOutcome.ANSWERED: 3, CallOutcome.BUSY: 1}
    outcomes = Outcomes(counts, cost=1.0, answer_rate=0.75, calls_per_hour=None, synced_at=None)
    svg = str(chart(outcomes, "Outcomes of <b>4</b> people"))
    assert svg.startswith('<svg id="outcome-chart" role="img"')
    assert '<title id="outcome-chart-title">Outcomes of &lt;b&gt;4&lt;/b&gt; people</title>' in svg
    assert 'aria-label="Outcomes of &lt;b&gt;4&lt;/b&gt; people"' in svg
    assert "answered 3 (75%), voicemail 0 (0%), no answer 0 (0%), busy 1 (25%)" in svg
    for label, n in (("answered", 3), ("no answer", 0), ("busy", 1), ("pending", 0)):
        assert re.search(rf">{label}</text><rect [^>]*/><text [^>]*>{n} \(", svg), label
    assert " style=" not in svg  # the page's CSP allows no inline style
    assert _contrast(TEXT_COLOUR) >= 4.5
    for outcome, colour in COLOURS.items():
        assert _contrast(colour) >= 4.5, outcome
    assert len(set(COLOURS.values())) == len(COLOURS)


def test_results_routes_need_a_login(tmp_path):
    async def body(client: TestClient, server: web.Server) -> None:
        for path in ("/campaigns/example/results", "/campaigns/example/results.csv"):
            answer = await client.get(path, allow_redirects=False)
            assert answer.status == 303 and answer.headers["Location"] == "/login", path
        posted = await client.post("/campaigns/example/sync", data={}, allow_redirects=False)
        assert posted.status in (303, 403)
        assert server.jobs.runs == {} and not (server.root / "state").exists()
        await _login(client)
        assert (await client.get("/campaigns/nope/results")).status == 404
        assert (await client.get("/campaigns/broken/results.csv")).status == 404

    _run(tmp_path, body)
