"""The page starts from the sheet (issue 16), over HTTP against the real server and a fake
Tabbly: upload first, then "New campaign from this sheet" (a name with spaces, every day),
the sheet's phone and country columns pre-chosen, the greeting's column menu and plain
template errors, preview and "call me first" in the form before any check, and the campaign
used last preselected for the next sheet, never a silent default."""

from __future__ import annotations

import csv
import html
import re
import tomllib
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient
from exports import SHOP, Row
from test_web import _checked, _login, _run, _wait_finished

from dialer import web
from dialer.fake_tabbly import DEFAULT_API_KEY, FakeTabblyThread
from dialer.sheets.countries import country_of
from dialer.web.services import column_fields

# A shop's export as the marketer has it: the number in "Phone" or only in the address.
SHOP_COLUMNS = [
    "First Name",
    "Last Name",
    "Default Address Country Code",
    "Default Address Phone",
    "Phone",
    "Total Spent",
]
# The shop rows a country names (US, CA, GB, IN), each with the number it truly means.
FLOW_ROWS: list[Row] = [r for r in SHOP if r.true and r.country in ("US", "CA", "GB", "IN")]
GREETING = "Hello {{ first_name }}, you spent {{ total_spent }} with us."
OWN_PHONE = "+919812300077"
NEW_CAMPAIGN = {
    "name": "Spring sale 2026",
    "organization_id": "244",
    "agent_id": "33",
    "call_from": "+14156801215",
    "first_line": GREETING,
    "instruction": "",
    "default_region": "",
    "window_from": "",
    "window_to": "",
    "window_days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
    "rate_per_second": "20",
    "redial_after_minutes": "60",
    "redial_max_calls": "3",
    "limits_per_day": "",
    "limits_per_week": "",
    "cost_per_call": "",
}


def write_flow_sheet(path: Path, rows: list[Row] = FLOW_ROWS) -> Path:
    """The shop-like CSV of the story: mixed US/CA/GB/IN, some numbers only in the second
    phone column ("Default Address Phone")."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(SHOP_COLUMNS)
        for i, r in enumerate(rows):
            spent = f"{120 + i * 7.5:.2f}"
            writer.writerow([r.first, "Smith", r.country, r.other, r.phone, spent])
    return path


def expected_countries() -> dict[str, str]:
    """First name -> the country code the preview must show beside the number."""
    return {r.first: country_of(r.true or "") for r in FLOW_ROWS}


async def upload_sheet(client: TestClient, csrf: str, path: Path) -> str:
    """Upload `path` with no campaign: the upload's page URL."""
    form = aiohttp.FormData()
    form.add_field("csrf", csrf)
    form.add_field("sheet", path.read_bytes(), filename=path.name)
    answer = await client.post("/dry-runs", data=form, allow_redirects=False)
    assert answer.status == 303, await answer.text()
    location = answer.headers["Location"]
    assert re.fullmatch(r"/uploads/[\w-]+", location), location
    return location


def _pairs(csrf: str, fields: dict[str, Any]) -> list[tuple[str, str]]:
    pairs = [("csrf", csrf)]
    for key, value in fields.items():
        for item in value if isinstance(value, list) else [value]:
            pairs.append((key, item))
    return pairs


def _selects(page: str) -> dict[str, tuple[str, str]]:
    """Each <select>'s name -> (its data-role, its selected value)."""
    found = {}
    for match in re.finditer(r"<select ([^>]*)>(.*?)</select>", page, re.S):
        attrs, body = match.groups()
        name = re.search(r'name="([^"]*)"', attrs)
        role = re.search(r'data-role="([^"]*)"', attrs)
        chosen = re.search(r'<option value="([^"]*)"[^>]*\sselected', body)
        if name:
            found[html.unescape(name.group(1))] = (
                role.group(1) if role else "",
                html.unescape(chosen.group(1)) if chosen else "",
            )
    return found


def _options(page: str, select_id: str) -> list[tuple[str, str]]:
    select = re.search(rf'<select id="{select_id}"[^>]*>(.*?)</select>', page, re.S)
    assert select, select_id
    return [
        (html.unescape(v), html.unescape(t))
        for v, t in re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', select.group(1))
    ]


def test_a_new_campaign_is_made_from_the_sheet_previewed_test_called_matched_and_launched(
    tmp_path,
):
    sheet = write_flow_sheet(tmp_path / "shop-customers.csv")
    with FakeTabblyThread(balance=100) as fake:
        env = {"TABBLY_API_KEY": DEFAULT_API_KEY, "TABBLY_API_URL": fake.url}

        async def body(client: TestClient, server: web.Server) -> None:
            csrf = await _login(client)
            upload_url = await upload_sheet(client, csrf, sheet)
            upload_id = upload_url.rsplit("/", 1)[1]

            # The upload's page: a new campaign from it, or one of yours, none preselected.
            page = await (await client.get(upload_url)).text()
            assert f'href="/campaigns/new?sheet={upload_id}"' in page
            assert _selects(page)["campaign"][1] == ""

            # The form opens with that sheet chosen, its headers in the menu, every day ticked.
            form_page = await (await client.get(f"/campaigns/new?sheet={upload_id}")).text()
            assert _selects(form_page)["preview_sheet"][1] == upload_id
            menu = dict((t, v) for v, t in _options(form_page, "insert-column"))
            assert menu["Total Spent"] == "{{ total_spent }}"
            assert menu["First Name"] == "{{ first_name }}"
            for day in ("sat", "sun"):
                assert re.search(rf'id="day-{day}"[^>]*checked', form_page), day
            assert "disabled" not in re.search(r'<button[^>]*id="test-call"[^>]*>', form_page)[0]

            # Preview before anything is saved: each number's country beside it.
            fields = {**NEW_CAMPAIGN, "original": "", "preview_sheet": upload_id}
            answer = await client.post("/campaigns/preview", data=_pairs(csrf, fields))
            result = await answer.json()
            assert result["error"] == "", result
            rows = result["rows"]
            assert [r["status"] for r in rows] == ["ready"] * len(rows)
            shown = {r["first_line"].split(",")[0].removeprefix("Hello "): r for r in rows}
            want = expected_countries()
            for first, row in shown.items():
                assert row["country"].split(" ")[0] == want[first], row
            assert any(r["country"] == "CA Canada" for r in rows)
            assert "Liam" in shown  # his number is only in "Default Address Phone"

            # "{{ Total Spent }}" as the header is written: one plain sentence.
            spaced = {**fields, "first_line": "Hi {{ Total Spent }}"}
            result = await (
                await client.post("/campaigns/preview", data=_pairs(csrf, spaced))
            ).json()
            assert (
                "{{ total_spent }}" in result["error"] and "expected token" not in result["error"]
            )

            # "Call me first", answered in JSON for the button: one call, to the typed number.
            test = {**fields, "test_number": OWN_PHONE, "test_row": "2", "reply": "json"}
            answer = await client.post("/test-call", data=_pairs(csrf, test))
            said = await answer.json()
            assert said["ok"] is True, said
            assert [r.body["called_to"] for r in fake.received if r.body] == [OWN_PHONE]

            # Created with a name with spaces: a file name derived, the columns page next.
            created = await client.post(
                "/campaigns/new", data=_pairs(csrf, fields), allow_redirects=False
            )
            assert created.status == 303, await created.text()
            columns_url = created.headers["Location"]
            assert re.fullmatch(r"/uploads/[\w-]+/columns", columns_url)
            path = server.root / "campaigns" / "spring-sale-2026.toml"
            saved = tomllib.loads(path.read_text("utf-8"))
            assert saved["title"] == "Spring sale 2026"  # the name as typed, kept
            assert saved["contacts"]["phone_column"] == ["Phone", "Default Address Phone"]
            assert saved["contacts"]["country_column"] == "Default Address Country Code"

            # The columns, pre-chosen: two phones, the country, the greeting's columns.
            page = await (await client.get(columns_url)).text()
            chosen = {k.removeprefix("column:"): v for k, v in _selects(page).items() if ":" in k}
            assert chosen["Phone"] == ("phone", "Phone")
            assert chosen["Default Address Phone"] == ("other_phone", "Default Address Phone")
            assert chosen["Default Address Country Code"] == (
                "country",
                "Default Address Country Code",
            )
            assert chosen["first_name"] == ("variable", "First Name")
            assert chosen["total_spent"] == ("variable", "Total Spent")
            post = {f"column:{k}": v for k, (_, v) in chosen.items()}
            checked = await client.post(columns_url, data=_pairs(csrf, post), allow_redirects=False)
            assert checked.status == 303, await checked.text()
            dry_url = checked.headers["Location"]
            page = await (await client.get(dry_url)).text()
            ready = len(FLOW_ROWS)
            assert f'id="ready-count">{ready}<' in page

            launched = await client.post(
                f"{dry_url}/launch",
                data={"csrf": csrf, "confirm": "yes", "count": str(ready)},
                allow_redirects=False,
            )
            assert launched.status == 303, await launched.text()
            await _wait_finished(server, launched.headers["Location"].rsplit("/", 1)[1])()
            called = sorted(r.body["called_to"] for r in fake.received[1:] if r.body)
            assert called == sorted(r.true for r in FLOW_ROWS if r.true)

            # The next sheet: the campaign used last is preselected, and listed once to preview.
            again = await upload_sheet(client, csrf, sheet)
            assert _selects(await (await client.get(again)).text())["campaign"][1] == (
                "spring-sale-2026"
            )
            edit = await (await client.get("/campaigns/spring-sale-2026/edit")).text()
            assert "<h1>Campaign Spring sale 2026" in edit
            names = [t for _, t in _options(edit, "preview-sheet")]
            assert names.count(sheet.name) == 1, names
            for shown_page in (edit, page):
                assert DEFAULT_API_KEY not in shown_page

        _run(tmp_path, body, env)


def test_the_campaign_used_last_is_remembered_per_session_never_a_default(tmp_path):
    sheet = write_flow_sheet(tmp_path / "shop.csv")

    async def body(client: TestClient, server: web.Server) -> None:
        csrf = await _login(client)
        url = await upload_sheet(client, csrf, sheet)
        assert _selects(await (await client.get(url)).text())["campaign"][1] == ""
        used = await client.post(url, data={"csrf": csrf, "campaign": "example"})
        assert used.status == 200
        url = await upload_sheet(client, csrf, sheet)
        assert _selects(await (await client.get(url)).text())["campaign"][1] == "example"
        # Another session (a colleague) starts with none chosen.
        server.last_used.remember("someone-else", "broken")
        assert server.last_used.of("nobody") == ""

    _run(tmp_path, body)


def test_every_phone_column_and_the_country_are_roles_not_template_variables(tmp_path):
    from dialer.campaign.parse import load_campaign
    from dialer.sheets.columns import needs

    folder = tmp_path / "campaigns"
    folder.mkdir()
    (folder / "shop.toml").write_text(
        'name = "shop"\norganization_id = 1\nagent_id = 1\ncall_from = "+14156801215"\n'
        'first_line = "Hi {{ first_name }}"\n[contacts]\nsource = "x.csv"\n'
        'phone_column = ["Phone", "Default Address Phone"]\n'
        'country_column = "Default Address Country Code"\n',
        "utf-8",
    )
    campaign = load_campaign(folder / "shop.toml")
    fields = column_fields.column_fields(campaign, needs(campaign))
    kinds = {f.name: f.kind for f in fields}
    assert kinds == {
        "Phone": "phone",
        "Default Address Phone": "other_phone",
        "Default Address Country Code": "country",
        "first_name": "variable",
    }
    assert [f.required for f in fields] == [True, False, False, True]
    assert column_fields.template_name("Total Spent") == "total_spent"
    assert column_fields.template_name("2nd Phone") == ""
    assert column_fields.sheet_guesses(SHOP_COLUMNS) == (
        ("Phone", "Default Address Phone"),
        "Default Address Country Code",
    )


def test_an_existing_campaign_is_offered_the_sheets_second_phone_and_country_columns(tmp_path):
    """The example campaign reads one phone column and no country: with a shop's export, the
    column page comes first and saves both (nobody in "Default Address Phone" left out)."""
    sheet = write_flow_sheet(tmp_path / "shop.csv")

    async def body(client: TestClient, server: web.Server) -> None:
        csrf = await _login(client)
        url = await upload_sheet(client, csrf, sheet)
        used = await client.post(
            url, data={"csrf": csrf, "campaign": "example"}, allow_redirects=False
        )
        assert used.status == 303, await used.text()
        columns_url = used.headers["Location"]
        assert columns_url.endswith("/columns")
        page = await (await client.get(columns_url)).text()
        chosen = {k: v for k, v in _selects(page).items() if k.startswith("column:")}
        roles = {role: value for role, value in chosen.values() if role != "variable"}
        assert roles["phone"] == "Phone"
        assert roles["other_phone"] == "Default Address Phone"
        assert roles["country"] == "Default Address Country Code"
        post: dict[str, str] = {k: v for k, (_, v) in chosen.items()}
        post["column:customer_id"] = "First Name"  # no id column in this export
        for name in ("order_id", "order_date"):
            post[f"default:{name}"] = "your last order"
        saved = await client.post(columns_url, data=_pairs(csrf, post), allow_redirects=False)
        assert saved.status == 303, await saved.text()
        example = tomllib.loads((server.root / "campaigns" / "example.toml").read_text("utf-8"))
        contacts = example["contacts"]
        assert contacts["phone_column"] == ["phone", "Default Address Phone"]
        assert contacts["country_column"] == "Default Address Country Code"
        page = await (await client.get(saved.headers["Location"])).text()
        counts = dict(re.findall(r'<tr data-status="(\w+)"><th>[^<]*</th><td>(\d+)</td>', page))
        assert f'id="ready-count">{len(FLOW_ROWS)}<' in page, counts

    _run(tmp_path, body)


def test_a_saved_campaign_leads_on_to_its_sheets_page_with_it_preselected(tmp_path):
    """From a check's "edit with this sheet" (a check's id), saving leads to that sheet's
    upload page, this campaign chosen: never a page for another campaign."""
    sheet = (Path(__file__).resolve().parent.parent / "sample_data" / "contacts.csv").read_bytes()

    async def body(client: TestClient, server: web.Server) -> None:
        csrf, dry_id = await _checked(client, sheet)
        page = await (await client.get(f"/campaigns/example/edit?saved=yes&sheet={dry_id}")).text()
        link = re.search(r'<a href="(/uploads/[\w-]+)" id="check-with-sheet">', page)
        assert link, page
        upload = await (await client.get(link.group(1))).text()
        assert _selects(upload)["campaign"][1] == "example"
        assert "c.csv" in upload and csrf in upload  # the name it was uploaded under

    _run(tmp_path, body)
