"""Campaigns on the page (SPEC 11): create, edit, preview as you type, test call, agent menu,
through a real `Server`, a real fake Tabbly and real files."""

from __future__ import annotations

import asyncio
import html
import json
import re
import sqlite3
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import web as aioweb
from aiohttp.test_utils import TestClient, TestServer

from dialer import web
from dialer.campaign.parse import load_campaign
from dialer.fake_tabbly import DEFAULT_API_KEY, FakeTabblyThread
from tests.test_web import ROOT, _checked, _login, _run
from tests.test_web_hardening import _fake_env, _until

ROWS = (
    b"customer_id,first_name,phone,order_id,order_date\n"
    b"C1,Asha,+917359043943,O1,May 1\nC2,Ravi,+917359043944,O2,May 2\n"
)

# Everything the form sends for a new campaign like the example (before the test's changes).
NEW = {
    "name": "spring",
    "organization_id": "244",
    "agent_id": "33",
    "call_from": "+14156801215",
    "first_line": "Hi {{ first_name }}, about order {{ order_id }}.",
    "instruction": 'Order {{ order_id }} for "{{ first_name }}".\nBe kind.',
    "default_region": "in",
    "window_from": "09:00",
    "window_to": "20:00",
    "window_days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
    "rate_per_second": "20",
    "redial": "yes",
    "redial_outcomes": ["busy", "no_answer"],
    "redial_after_minutes": "90",
    "redial_max_calls": "2",
    "limits_per_day": "1",
    "limits_per_week": "",
    "cost_per_call": "0,5",
}


def _form(csrf: str, fields: dict[str, Any], **extra: Any) -> list[tuple[str, str]]:
    pairs = [("csrf", csrf)]
    for key, value in {**fields, **extra}.items():
        for item in value if isinstance(value, list) else [value]:
            pairs.append((key, item))
    return pairs


def _value(page: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}"[^>]*?value="([^"]*)"', page)
    assert found, element_id
    return html.unescape(found.group(1))


def _text(page: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}"[^>]*>(.*?)</', page, re.S)
    assert found, element_id
    return html.unescape(found.group(1))


def test_a_campaign_created_on_the_page_loads_in_the_cli_as_typed(tmp_path, cli):
    async def body(client: TestClient, server: web.Server) -> None:
        csrf = await _login(client)
        page = await (await client.get("/campaigns/new")).text()
        assert _value(page, "organization-id") == "244"  # from the example campaign
        for label in ("Greeting", "Caller number", "Calling days", "Campaign name"):
            assert label in page
        created = await client.post("/campaigns/new", data=_form(csrf, NEW), allow_redirects=False)
        assert created.status == 303, await created.text()
        assert created.headers["Location"] == "/campaigns/spring/edit?saved=created"
        page = await (await client.get(created.headers["Location"])).text()
        assert 'id="notice"' in page and "created" in page

    _run(tmp_path, body)
    saved = tmp_path / "site" / "campaigns" / "spring.toml"
    campaign = load_campaign(saved)
    assert campaign.first_line == NEW["first_line"]
    assert campaign.instruction == NEW["instruction"]
    assert campaign.contacts.default_region == "IN"
    assert campaign.window is not None and campaign.window.hours == "09:00-20:00"
    assert campaign.window.days == frozenset(range(7))
    assert campaign.redial is not None and campaign.redial.max_calls == 2
    assert campaign.redial.after_minutes == 90
    assert campaign.limits is not None and campaign.limits.per_day == 1
    assert campaign.limits.per_week is None
    assert campaign.cost_per_call == 0.5
    assert campaign.endpoint is None  # a browser never sets where the key is sent
    result = cli(["validate", str(saved), "--contacts", str(ROOT / "sample_data" / "contacts.csv")])
    assert result.code in (0, 1) and "rows: 60" in result.out, result.out + result.err


def test_an_edited_campaign_validates_exactly_as_before_and_keeps_a_backup(tmp_path, cli):
    site = tmp_path / "site"
    sheet = str(ROOT / "sample_data" / "contacts.csv")
    path = None

    async def body(client: TestClient, server: web.Server) -> None:
        nonlocal path
        csrf = await _login(client)
        page = await (await client.get("/campaigns/example/edit")).text()
        fields = {
            name: _value(page, name.replace("_", "-"))
            for name in ("name", "organization_id", "call_from", "rate_per_second")
        }
        fields |= {
            "agent_id": "33",
            "first_line": _text(page, "first-line"),
            "instruction": _text(page, "instruction"),
            "default_region": "IN",
            "window_days": ["mon", "tue", "wed", "thu", "fri", "sat"],
            "opened": _value(page, "opened"),  # the file the form was opened on
        }
        path = server.root / "campaigns" / "example.toml"
        before_file = path.read_bytes()
        before = cli(
            ["validate", str(path), "--contacts", sheet, "--report", str(tmp_path / "a.csv")]
        )
        saved = await client.post(
            "/campaigns/example/edit", data=_form(csrf, fields), allow_redirects=False
        )
        assert saved.status == 303, await saved.text()
        assert (server.root / "campaigns" / "example.toml.bak").read_bytes() == before_file
        after = cli(
            ["validate", str(path), "--contacts", sheet, "--report", str(tmp_path / "b.csv")]
        )
        assert before.code == after.code
        counts = re.compile(r"^\s*(ready|invalid|duplicate|suppressed)\b.*$", re.M)
        assert counts.findall(before.out) and counts.findall(before.out) == counts.findall(
            after.out
        )
        assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()

    _run(tmp_path, body)
    campaign = load_campaign(site / "campaigns" / "example.toml")
    assert campaign.endpoint == "http://127.0.0.1:8787/dashboard/agents/endpoints/trigger-call"


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("call_from", "0415 680 1215", "Caller number"),
        ("organization_id", "two", "Organisation id"),
        ("first_line", "Hi {{ first_name ", "Greeting"),
        ("window_to", "8pm", "Call until"),
        ("default_region", "XX", "Country for numbers"),
        ("rate_per_second", "0", "Calls started per second"),
        ("limits_per_day", "0", "Calls to one person per day"),
        ("name", "../..", "Campaign name"),
        ("cost_per_call", "-1", "Cost per call"),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_keeping_every_value(
    tmp_path, field, value, words
):
    async def body(client: TestClient, server: web.Server) -> None:
        csrf = await _login(client)
        answer = await client.post("/campaigns/new", data=_form(csrf, NEW | {field: value}))
        assert answer.status == 400
        page = await answer.text()
        assert words in page
        alert = re.search(r'<p class="error" role="alert">(.*?)</p>', page, re.S)
        assert alert and html.unescape(alert.group(1)).startswith(words), alert
        assert f'id="error-{field.replace("_", "-")}"' in page
        assert 'aria-invalid="true"' in page
        kept = NEW | {field: value}
        for name in ("call_from", "organization_id", "window_to", "default_region", "name"):
            assert _value(page, name.replace("_", "-")) == kept[name]
        assert _text(page, "first-line") == kept["first_line"]
        assert sorted(p.name for p in (server.root / "campaigns").iterdir()) == [
            "broken.toml",
            "example.toml",
        ]

    _run(tmp_path, body)


def test_the_name_of_an_existing_campaign_is_refused_for_a_new_one_and_cannot_change(tmp_path):
    async def body(client: TestClient, server: web.Server) -> None:
        csrf = await _login(client)
        taken = await client.post("/campaigns/new", data=_form(csrf, NEW | {"name": "example"}))
        assert taken.status == 400 and "exists already" in await taken.text()
        renamed = await client.post(
            "/campaigns/example/edit", data=_form(csrf, NEW | {"name": "other"})
        )
        assert renamed.status == 400 and "cannot change" in await renamed.text()
        assert not (server.root / "campaigns" / "other.toml").exists()
        forged = await client.post(
            "/campaigns/new", data=_form("forged", NEW), allow_redirects=False
        )
        assert forged.status == 403
        assert (await client.get("/campaigns/broken/edit")).status == 409
        assert (await client.get("/campaigns/nope/edit")).status == 404

    _run(tmp_path, body)


def test_the_preview_renders_the_edited_greeting_with_the_checks_invalid_rules(tmp_path):
    sheet = (
        b"customer_id,first_name,phone,order_id,order_date\n"
        b"C1,Asha,+917359043943,O1,May 1\nC2,,+917359043944,O2,May 2\nC3,Ravi,12,O3,May 3\n"
    )

    async def body(client: TestClient, server: web.Server) -> None:
        csrf, dry_id = await _checked(client, sheet)
        page = await (await client.get(f"/campaigns/example/edit?sheet={dry_id}")).text()
        assert "Hello Asha, this is Company XYZ" in _text(page, "preview-greeting")

        async def preview(first_line: str) -> dict[str, Any]:
            fields = {"original": "example", "preview_sheet": dry_id, "first_line": first_line}
            answer = await client.post("/campaigns/preview", data=_form(csrf, fields))
            assert answer.status == 200
            return await answer.json()

        result = await preview("Namaste {{ first_name|upper }}!")
        assert result["error"] == ""
        rows = {r["row"]: r for r in result["rows"]}  # spreadsheet rows: the header is row 1
        assert rows[2]["first_line"] == "Namaste ASHA!" and rows[2]["status"] == "ready"
        assert rows[3]["status"] == "invalid" and "first_name" in rows[3]["reason"]
        assert rows[4]["status"] == "invalid" and "phone" in rows[4]["reason"]
        broken = await preview("Hi {{ first_name ")
        assert broken["field"] == "first_line" and broken["error"].startswith("Greeting")
        unsafe = await preview("{{ ''.__class__ }}")
        assert unsafe["rows"][0]["status"] == "invalid"
        forged = await client.post("/campaigns/preview", data={"first_line": "x"})
        assert forged.status == 403

    _run(tmp_path, body)


def test_a_test_call_reaches_the_fake_once_and_stays_out_of_the_ledgers_calls(tmp_path, cli):
    with FakeTabblyThread(balance=10) as fake:
        env = {"TABBLY_API_KEY": DEFAULT_API_KEY, "TABBLY_API_URL": fake.url}

        async def body(client: TestClient, server: web.Server) -> None:
            csrf, dry_id = await _checked(client, ROWS)
            page = await (await client.get(f"/campaigns/example/edit?sheet={dry_id}")).text()
            fields = {
                "name": "example",
                "organization_id": "244",
                "agent_id": "33",
                "call_from": "+14156801215",
                "first_line": "Test for {{ first_name }} on order {{ order_id }}",
                "instruction": _text(page, "instruction"),
                "default_region": "IN",
                "rate_per_second": "20",
                "original": "example",
                "preview_sheet": dry_id,
                "test_number": "07359 099 999",
                "test_row": "3",  # Ravi's row in the spreadsheet (the header is row 1)
            }
            reports = server.root / "reports" / "example"
            before = sorted(reports.iterdir())
            answer = await client.post("/test-call", data=_form(csrf, fields))
            page = await answer.text()
            assert sorted(reports.iterdir()) == before  # a test call writes no report
            assert answer.status == 200, page
            assert "Test call placed to +917359099999" in _text(page, "test-call-result")
            assert _value(page, "test-number") == "07359 099 999"  # the form comes back as typed
            bad = await client.post("/test-call", data=_form(csrf, fields | {"test_number": "12"}))
            assert bad.status == 400 and 'id="error-test-number"' in await bad.text()
            assert DEFAULT_API_KEY not in page

        _run(tmp_path, body, env)
        (sent,) = fake.received
        assert sent.body["called_to"] == "+917359099999"
        assert sent.body["custom_first_line"] == "Test for Ravi on order O2"
        assert sent.body["custom_instruction"].startswith("Ravi placed order O2 on May 2.")
        assert sent.body["custom_identifiers"] == "test:C2"
    ledger = tmp_path / "site" / "state" / "example.sqlite"
    with sqlite3.connect(ledger) as conn:
        assert conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM dials").fetchone()[0] == 0
        tests = conn.execute("SELECT called_to, row, status FROM test_calls").fetchall()
    assert tests == [("+917359099999", 2, "triggered")]  # the ledger counts data rows
    status = cli(["status", str(tmp_path / "site" / "campaigns" / "example.toml")])
    assert "+917359099999" not in status.out


@pytest.mark.parametrize("shape", ["docs", "gitbook"])
def test_the_agent_menu_lists_the_organisations_agents_in_both_shapes(tmp_path, shape):
    with FakeTabblyThread(agents_shape=shape) as fake:
        env = {"TABBLY_API_KEY": DEFAULT_API_KEY, "TABBLY_API_URL": fake.url}

        async def body(client: TestClient, server: web.Server) -> None:
            await _login(client)
            page = await (await client.get("/campaigns/example/edit")).text()
            menu = re.search(r'<select id="agent-id".*?</select>', page, re.S)
            assert menu, "no agent menu"
            assert '<option value="33" selected>Order follow-up (agent 33)' in menu.group(0)
            assert "Support line (agent 34" in menu.group(0)
            answer = await client.get("/agents?organization_id=244")
            listed = await answer.json()
            assert [a["id"] for a in listed["agents"]] == [33, 34]
            assert DEFAULT_API_KEY not in page

        _run(tmp_path, body, env)
        assert fake.agents.requests == 1  # the second look came from the cache


def test_without_the_agents_api_the_agent_is_a_number_field(tmp_path):
    env = {"TABBLY_API_KEY": DEFAULT_API_KEY, "TABBLY_API_URL": "http://127.0.0.1:9/x/trigger-call"}

    async def body(client: TestClient, server: web.Server) -> None:
        await _login(client)
        page = await (await client.get("/campaigns/example/edit")).text()
        assert re.search(r'<input type="number" id="agent-id" name="agent_id" value="33"', page)
        assert "could not be listed" in _text(page, "agents-problem")
        assert DEFAULT_API_KEY not in page

    _run(tmp_path, body, env)


def test_saving_from_the_page_keeps_and_sets_the_cost_per_call(tmp_path):
    async def body(client: TestClient, server: web.Server) -> None:
        path = server.root / "campaigns" / "example.toml"
        path.write_text(
            path.read_text().replace('name = "example"', 'name = "example"\ncost_per_call = 0.25')
        )
        csrf = await _login(client)
        page = await (await client.get("/campaigns/example/edit")).text()
        assert "Cost per call (for the estimate before launch)" in page
        assert _value(page, "cost-per-call") == "0.25"
        fields = NEW | {"name": "example", "cost_per_call": _value(page, "cost-per-call")}
        fields["opened"] = _value(page, "opened")
        saved = await client.post("/campaigns/example/edit", data=_form(csrf, fields))
        assert saved.status == 200, await saved.text()
        assert load_campaign(path).cost_per_call == 0.25
        fields["opened"] = _value(await saved.text(), "opened")  # the page saved it showed
        cleared = await client.post(
            "/campaigns/example/edit", data=_form(csrf, fields | {"cost_per_call": ""})
        )
        assert cleared.status == 200
        assert load_campaign(path).cost_per_call is None

    _run(tmp_path, body)


def test_a_variable_removed_from_the_templates_drops_its_columns_and_defaults(tmp_path):
    sheet = (
        b"customer_id,Customer Name,phone,order_id\n"
        b"C1,Asha,+917359043943,O1\nC2,Ravi,+917359043944,O2\n"
    )

    async def body(client: TestClient, server: web.Server) -> None:
        path = server.root / "campaigns" / "example.toml"
        text = path.read_text().replace(
            'suppress = "',
            'columns = { first_name = "Customer Name", phone = "phone" }\n'
            'defaults = { order_date = "soon" }\nsuppress = "',
        )
        path.write_text(text)
        csrf, dry_id = await _checked(client, sheet)
        plain = {"first_line": "Hello there, about {{ order_id }}.", "instruction": "Be kind."}
        fields = {"original": "example", "preview_sheet": dry_id, **plain}
        answer = await client.post("/campaigns/preview", data=_form(csrf, fields))
        result = await answer.json()
        assert result["error"] == "", result
        assert result["rows"][0]["first_line"] == "Hello there, about O1."
        page = await (await client.get("/campaigns/example/edit")).text()
        opened = {"opened": _value(page, "opened")}
        saved = await client.post(
            "/campaigns/example/edit",
            data=_form(csrf, NEW | {"name": "example"} | plain | opened),
            allow_redirects=False,
        )
        assert saved.status == 303, await saved.text()
        campaign = load_campaign(path)
        assert campaign.contacts.columns == (("phone", "phone"),)  # a role: kept
        assert campaign.contacts.defaults == ()
        assert (await client.get("/campaigns/example/edit")).status == 200

    _run(tmp_path, body)


def _test_call_fields(dry_id: str, **changes: str) -> dict[str, str]:
    """A test call of the example campaign as its edit page posts it."""
    return {
        "name": "example",
        "organization_id": "244",
        "agent_id": "33",
        "call_from": "+14156801215",
        "first_line": "Test for {{ first_name }} on order {{ order_id }}",
        "default_region": "IN",
        "rate_per_second": "20",
        "original": "example",
        "preview_sheet": dry_id,
        "test_number": "07359 099 999",
        "test_row": "2",
    } | changes


def _launch_soon(
    client: TestClient, server: web.Server, csrf: str, dry_id: str
) -> asyncio.Future[Any]:
    """The check's launch, confirmed, posted in the background: it may have to wait."""
    ready = server.jobs.dry_runs[dry_id].summary["counts"]["ready"]
    form = {"csrf": csrf, "confirm": "yes", "count": str(ready)}
    return asyncio.ensure_future(
        client.post(f"/dry-runs/{dry_id}/launch", data=form, allow_redirects=False)
    )


def test_a_launch_waits_for_a_test_call_that_holds_the_ledger(tmp_path):
    arrived, release = asyncio.Event(), asyncio.Event()
    busy_seen: list[bool] = []

    async def body(client: TestClient, server: web.Server) -> None:
        async def trigger(request: aioweb.Request) -> aioweb.Response:
            busy_seen.append(server.jobs.busy("example"))
            arrived.set()
            await release.wait()
            return aioweb.json_response({"success": True, "room_name": "room-1"})

        stub = aioweb.Application()
        stub.router.add_post("/x/trigger-call", trigger)
        async with TestServer(stub, host="127.0.0.1") as tabbly:
            server.jobs.environ["TABBLY_API_URL"] = str(tabbly.make_url("/x/trigger-call"))
            csrf, dry_id = await _checked(client, ROWS)
            with server.jobs.holding("example"):  # a launch of the campaign is starting
                refused = await client.post(
                    "/test-call", data=_form(csrf, _test_call_fields(dry_id))
                )
                page = await refused.text()
            assert refused.status == 400, page
            assert "Campaign example is running or starting" in page
            assert not busy_seen  # nothing was sent

            call = asyncio.ensure_future(
                client.post("/test-call", data=_form(csrf, _test_call_fields(dry_id)))
            )
            await arrived.wait()
            launch = _launch_soon(client, server, csrf, dry_id)
            # The launch waits for the test call to let go of the ledger: it neither fails on
            # the lock nor starts a run meanwhile (a wait that may only ever find it waiting).
            done, _ = await asyncio.wait({launch}, timeout=0.3)
            assert not done and server.jobs.runs == {}
            assert server.jobs.dry_runs[dry_id].run_id is None
            release.set()
            answer = await call
            assert answer.status == 200 and "Test call placed" in await answer.text()
            launched = await launch
            assert launched.status == 303, await launched.text()
            assert launched.headers["Location"].startswith("/runs/")
            assert busy_seen[0] is True

    _run(tmp_path, body, {"TABBLY_API_KEY": DEFAULT_API_KEY})


def test_a_launch_pressed_while_outcomes_are_read_waits_and_then_calls(tmp_path):
    """After a wallet stop the run page reads outcomes on its own, just when "Resume" leads
    to a launch: the launch waits for that sync to let go of the ledger, then runs (it was
    a bare 409 "already running" page); the sync itself is refused nothing."""
    with FakeTabblyThread(balance=10) as fake:
        env = _fake_env(fake)

        async def body(client: TestClient, server: web.Server) -> None:
            csrf, dry_id = await _checked(client, ROWS)
            ready = server.jobs.dry_runs[dry_id].summary["counts"]["ready"]
            with server.jobs.holding("example"):  # a sync has the ledger
                launch = _launch_soon(client, server, csrf, dry_id)
                done, _ = await asyncio.wait({launch}, timeout=0.3)
                assert not done and server.jobs.runs == {} and fake.received == []
            launched = await launch
            assert launched.status == 303, await launched.text()
            run_id = launched.headers["Location"].rsplit("/", 1)[1]
            await _until(lambda: server.jobs.runs[run_id].finished, "the run's end")
            assert len(fake.received) == ready

        _run(tmp_path, body, env)


def test_preview_and_test_call_read_the_sheet_in_a_memory_capped_child(tmp_path):
    async def body(client: TestClient, server: web.Server) -> None:
        csrf = await _login(client)
        upload = server.root / "june.csv"
        upload.write_bytes(ROWS)
        campaign = server.campaigns.get("example")
        report = server.root / "check.csv"
        dry = server.jobs.restore_check(campaign, upload, "june.csv", report, 2, {}, ())
        fields = {"original": "example", "preview_sheet": dry.id, "first_line": "Hi"}
        answer = await client.post("/campaigns/preview", data=_form(csrf, fields))
        result = await answer.json()
        assert result["rows"] == []
        assert "needs more than 12 MB of memory" in result["error"], result
        called = await client.post("/test-call", data=_form(csrf, _test_call_fields(dry.id)))
        assert called.status == 400
        assert "needs more than 12 MB of memory" in await called.text()

    # A cap no child fits in: the server itself would read these few rows without a word.
    capped = replace(web.DEFAULTS, check_memory=12 * 1024 * 1024)
    _run(tmp_path, body, {"TABBLY_API_KEY": DEFAULT_API_KEY}, settings=capped)


@pytest.mark.parametrize("odd", ["²", "١٢", "9" * 5000])
def test_odd_digits_are_field_errors_never_a_server_error(tmp_path, odd):
    async def body(client: TestClient, server: web.Server) -> None:
        csrf, dry_id = await _checked(client, ROWS)
        listed = await client.get("/agents", params={"organization_id": odd})
        assert listed.status == 200 and (await listed.json())["agents"] == []
        edited = await client.post(
            "/campaigns/example/edit",
            data=_form(csrf, NEW | {"name": "example", "organization_id": odd}),
        )
        page = await edited.text()
        assert edited.status == 400, page
        assert 'id="error-organization-id"' in page
        called = await client.post(
            "/test-call", data=_form(csrf, _test_call_fields(dry_id, test_row=odd))
        )
        page = await called.text()
        assert called.status == 400, page
        assert 'id="error-test-row"' in page

    _run(tmp_path, body, {"TABBLY_API_KEY": DEFAULT_API_KEY})


def test_an_agent_id_the_upstream_writes_in_odd_digits_is_skipped(tmp_path):
    async def body(client: TestClient, server: web.Server) -> None:
        async def agents(request: aioweb.Request) -> aioweb.Response:
            listed = [
                {"agent_id": "²", "agent_name": "Squared"},
                {"agent_id": "9" * 5000, "agent_name": "Long"},
                {"agent_id": "7", "agent_name": "Seven"},
            ]
            return aioweb.json_response({"success": True, "agents": listed, "total": 3})

        stub = aioweb.Application()
        stub.router.add_get("/x/get-agents", agents)
        async with TestServer(stub, host="127.0.0.1") as tabbly:
            server.jobs.environ["TABBLY_AGENTS_URL"] = str(tabbly.make_url("/x/get-agents"))
            await _login(client)
            answer = await client.get("/agents", params={"organization_id": "244"})
            assert answer.status == 200
            assert (await answer.json())["agents"] == [{"id": 7, "label": "Seven (agent 7)"}]

    _run(tmp_path, body, {"TABBLY_API_KEY": DEFAULT_API_KEY})


def test_preview_and_test_call_errors_name_the_file_not_the_servers_folders(tmp_path):
    async def body(client: TestClient, server: web.Server) -> None:
        csrf, dry_id = await _checked(client, ROWS)
        broken = "Hi {{ first_name "
        fields = {"original": "example", "preview_sheet": dry_id, "first_line": broken}
        result = await (await client.post("/campaigns/preview", data=_form(csrf, fields))).json()
        # One plain sentence, not jinja's "unexpected end of template".
        assert result["error"].startswith("Greeting: something between {{ and }}"), result
        fields = _test_call_fields(dry_id, first_line=broken)
        called = await client.post("/test-call", data=_form(csrf, fields))
        alert = re.search(r'<p class="error" role="alert">(.*?)</p>', await called.text(), re.S)
        assert called.status == 400 and alert, alert
        assert "Greeting: something between {{ and }}" in html.unescape(alert.group(1))
        for shown in (result["error"], alert.group(1)):
            assert str(tmp_path) not in shown and "/campaigns/" not in shown

    _run(tmp_path, body, {"TABBLY_API_KEY": DEFAULT_API_KEY})


def test_the_agents_cache_is_bounded_and_kept_apart_per_key(tmp_path):
    with FakeTabblyThread() as fake:
        env = {"TABBLY_API_KEY": DEFAULT_API_KEY, "TABBLY_API_URL": fake.url, "OTHER_KEY": "no"}

        async def body(client: TestClient, server: web.Server) -> None:
            example = server.root / "campaigns" / "example.toml"
            text = example.read_text().replace('name = "example"', 'name = "other"')
            text = text.replace("[contacts]", 'api_key_env = "OTHER_KEY"\n\n[contacts]')
            (server.root / "campaigns" / "other.toml").write_text(text)
            await _login(client)

            async def agents(organization: str, campaign: str) -> dict[str, Any]:
                query = {"organization_id": organization, "campaign": campaign}
                return await (await client.get("/agents", params=query)).json()

            assert [a["id"] for a in (await agents("244", "example"))["agents"]] == [33, 34]
            other = await agents("244", "other")  # another key: not the cached agents
            assert other["agents"] == [] and "Invalid API key" in other["problem"]
            await agents("244", "example")  # still cached
            assert fake.agents.requests == 2
            assert (await agents("245", "example"))["agents"] == []  # unknown: the third entry
            await agents("244", "example")  # the oldest, dropped from a cache of two: asked again
            assert fake.agents.requests == 4

        capped = replace(web.DEFAULTS, agents_cache_entries=2)
        _run(tmp_path, body, env, settings=capped)


def test_the_preview_masks_phone_numbers_as_the_check_page_does(tmp_path):
    sheet = ROWS + b"C3,Mina,+91 73590 43945 x,O3,May 3\n"

    async def body(client: TestClient, server: web.Server) -> None:
        csrf, dry_id = await _checked(client, sheet)
        page = await (await client.get(f"/campaigns/example/edit?sheet={dry_id}")).text()
        fields = {"original": "example", "preview_sheet": dry_id, "first_line": "Hi"}
        result = await (await client.post("/campaigns/preview", data=_form(csrf, fields))).json()
        table = re.search(r'<tbody id="preview-rows">(.*?)</tbody>', page, re.S)
        assert table and "+91*******943" in table.group(1)
        shown = json.dumps(result, ensure_ascii=False) + table.group(1)
        assert result["rows"][2]["status"] == "invalid", result
        for number in ("7359043943", "7359043944", "73590 43945"):
            assert number not in shown
        assert result["rows"][0]["called_to"] == "+91*******943"

    _run(tmp_path, body)


def test_preview_and_test_call_number_rows_as_the_check_page_does(tmp_path):
    with FakeTabblyThread(balance=10) as fake:
        env = {"TABBLY_API_KEY": DEFAULT_API_KEY, "TABBLY_API_URL": fake.url}

        async def body(client: TestClient, server: web.Server) -> None:
            csrf, dry_id = await _checked(client, b"\n\n" + ROWS)  # the header is row 3
            check = await (await client.get(f"/dry-runs/{dry_id}")).text()
            assert "Row 4 of your sheet" in check  # Asha, as the check page numbers her
            page = await (await client.get(f"/campaigns/example/edit?sheet={dry_id}")).text()
            assert _text(page, "preview-row") == "4"
            assert _value(page, "test-row") == "4"
            fields = {"original": "example", "preview_sheet": dry_id, "first_line": "Hi"}
            preview = await client.post("/campaigns/preview", data=_form(csrf, fields))
            assert [r["row"] for r in (await preview.json())["rows"]] == [4, 5]
            called = await client.post(
                "/test-call", data=_form(csrf, _test_call_fields(dry_id, test_row="5"))
            )
            assert "with row 5's greeting" in _text(await called.text(), "test-call-result")
            header = await client.post(
                "/test-call", data=_form(csrf, _test_call_fields(dry_id, test_row="3"))
            )
            assert header.status == 400 and "The sheet has no row 3." in await header.text()

        _run(tmp_path, body, env)
        (sent,) = fake.received
        assert sent.body["custom_first_line"] == "Test for Ravi on order O2"
