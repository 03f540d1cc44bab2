"""Column matching on the page (issue 12): the marketing person's own sheet matched in one
step, saved to the campaign the CLI reads, the upload kept through every error, workbook tabs,
and the check page in the user's terms (their headers, their spreadsheet's row numbers)."""

from __future__ import annotations

import html
import io
import re
import tomllib
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from conftest import run_cli
from openpyxl import Workbook
from test_web import _login, _run, _upload_form

from dialer import web
from dialer.core.statuses import ExitCode
from dialer.web.views import columns

# Issue 12: "Customer Name, Mobile No., Order #, City" against the example campaign.
THEIR_SHEET = (
    b"Customer Name,Mobile No.,Order #,City\n"
    b"Asha,+91 73590 43943,ORD-1,Pune\n"
    b"Ben,+91 73590 43944,ORD-2,Delhi\n"
    b",+91 73590 43945,ORD-3,Goa\n"
)


def _selected(page: str, element_id: str) -> str:
    """The value of the selected option of the <select> with `element_id` ("" for none)."""
    select = re.search(rf'<select id="{element_id}"[^>]*>(.*?)</select>', page, re.S)
    assert select, f"no select #{element_id}"
    chosen = re.search(r'<option value="([^"]*)"[^>]*\sselected', select.group(1))
    return html.unescape(chosen.group(1)) if chosen else ""


def _value(page: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}"[^>]*value="([^"]*)"', page)
    assert found, f"no input #{element_id}"
    return html.unescape(found.group(1))


async def _upload(client: TestClient, csrf: str, name: str, data: bytes, campaign="example"):
    return await client.post(
        "/dry-runs", data=_upload_form(csrf, campaign, name, data), allow_redirects=False
    )


def _campaign_file(server: web.Server) -> Path:
    return server.root / "campaigns" / "example.toml"


def test_their_sheet_is_matched_in_one_step_and_the_cli_reads_it_the_same(tmp_path):
    sheet_file = tmp_path / "their.csv"
    sheet_file.write_bytes(THEIR_SHEET)

    async def body(client: TestClient, server: web.Server) -> None:
        csrf = await _login(client)
        answer = await _upload(client, csrf, "their-sheet.csv", THEIR_SHEET)
        # Not an error and not a check of every row invalid: the column page, at once.
        assert answer.status == 303, await answer.text()
        columns_url = answer.headers["Location"]
        assert re.fullmatch(r"/uploads/[\w-]+/columns", columns_url)

        page = await (await client.get(columns_url)).text()
        assert '<span id="upload-name">their-sheet.csv</span>' in page
        # Every name the campaign reads, listed at once, pre-chosen by close match.
        assert _selected(page, "column-phone") == "Mobile No."
        assert _selected(page, "column-first_name") == "Customer Name"
        assert _selected(page, "column-order_id") == "Order #"
        assert _selected(page, "column-customer_id") == ""
        assert _selected(page, "column-order_date") == ""
        assert _selected(page, "column-last_name") == ""
        assert 'id="default-order_date"' in page and 'id="default-phone"' not in page
        assert "e.g. ORD-1, ORD-2, ORD-3" in page  # the chosen column's first cells
        assert 'id="tab"' not in page  # a CSV has no tabs

        saved = await client.post(
            columns_url,
            data={
                "csrf": csrf,
                "column:phone": "Mobile No.",
                "column:customer_id": "Mobile No.",
                "column:first_name": "Customer Name",
                "column:order_id": "Order #",
                "column:order_date": "",
                "default:order_date": "last week",
                "default:first_name": "there",
                "column:last_name": "",
                "default:last_name": "",
            },
            allow_redirects=False,
        )
        assert saved.status == 303, await saved.text()
        dry_id = saved.headers["Location"].rsplit("/", 1)[1]
        check = server.jobs.dry_runs[dry_id]
        assert check.summary["counts"]["ready"] == 3  # the empty name got its default
        check_page = await (await client.get(f"/dry-runs/{dry_id}")).text()
        assert "Hello Asha, this is Company XYZ calling about your order ORD-1." in check_page
        assert f'href="{columns_url}"' in check_page  # back to the columns, same upload

        # Saved in the campaign file the CLI reads; the previous version kept.
        path = _campaign_file(server)
        contacts = tomllib.loads(path.read_text("utf-8"))["contacts"]
        assert contacts["columns"] == {
            "phone": "Mobile No.",
            "customer_id": "Mobile No.",
            "first_name": "Customer Name",
            "order_id": "Order #",
        }
        assert contacts["defaults"] == {"order_date": "last week", "first_name": "there"}
        assert path.with_name("example.toml.bak").is_file()

    _run(tmp_path, body)
    site = tmp_path / "site" / "campaigns" / "example.toml"
    result = run_cli(["validate", str(site), "--contacts", str(sheet_file)])
    assert result.code == ExitCode.OK, result.err
    assert re.search(r"ready\s+3", result.out)


def test_a_refused_choice_names_the_fields_and_keeps_every_value_and_the_upload(tmp_path):
    async def body(client: TestClient, server: web.Server) -> None:
        csrf = await _login(client)
        before = _campaign_file(server).read_bytes()
        columns_url = (await _upload(client, csrf, "their.csv", THEIR_SHEET)).headers["Location"]

        refused = await client.post(
            columns_url,
            data={
                "csrf": csrf,
                "column:phone": "",
                "column:customer_id": "City",
                "column:first_name": "Customer Name",
                "column:order_id": "Not a header",
                "column:order_date": "",
                "default:order_date": "",
                "default:first_name": "friend",
            },
        )
        page = await refused.text()
        assert refused.status == 400
        assert 'id="error-phone"' in page and "Choose the column" in page
        assert 'id="error-order_id"' in page and "not a column of this sheet" in page
        assert 'id="error-order_date"' in page and "type a default value" in page
        assert 'id="error-first_name"' not in page and 'id="error-customer_id"' not in page
        assert 'aria-invalid="true"' in page
        # What the user entered is kept, and so is the upload: nothing to pick again.
        assert _selected(page, "column-customer_id") == "City"
        assert _selected(page, "column-first_name") == "Customer Name"
        assert _value(page, "default-first_name") == "friend"
        assert '<span id="upload-name">their.csv</span>' in page
        assert len(list(server.uploads.folder.iterdir())) == 1
        assert _campaign_file(server).read_bytes() == before  # nothing saved
        assert server.jobs.dry_runs == {}

    _run(tmp_path, body)


def test_a_sheet_that_matches_goes_straight_to_its_check(tmp_path):
    sheet = (Path(__file__).resolve().parent.parent / "sample_data" / "contacts.csv").read_bytes()

    async def body(client: TestClient, server: web.Server) -> None:
        csrf = await _login(client)
        answer = await _upload(client, csrf, "contacts.csv", sheet)
        assert answer.status == 303 and answer.headers["Location"].startswith("/dry-runs/")
        page = await (await client.get(answer.headers["Location"])).text()
        link = re.search(r'<a href="(/uploads/[\w-]+/columns)" id="change-columns"', page)
        assert link, "the check page links to the column page of this upload"
        columns = await (await client.get(link.group(1))).text()
        assert _selected(columns, "column-phone") == "Phone"
        assert _selected(columns, "column-first_name") == "First Name"

    _run(tmp_path, body)


def _workbook(tabs: dict[str, list[list[str]]]) -> bytes:
    book = Workbook()
    book.remove(book.active)
    for name, rows in tabs.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_a_workbook_with_several_tabs_gets_a_tab_menu_and_the_tab_is_saved(tmp_path):
    data = _workbook(
        {
            "Notes": [["Read me"], ["these are notes"]],
            "Leads": [
                ["Client Ref", "First Name", "Phone", "Order ID", "Order Date"],
                ["R1", "Asha", "+917359043943", "O1", "monday"],
            ],
        }
    )

    async def body(client: TestClient, server: web.Server) -> None:
        csrf = await _login(client)
        answer = await _upload(client, csrf, "book.xlsx", data)
        assert answer.status == 303, await answer.text()
        columns_url = answer.headers["Location"]
        first = await (await client.get(columns_url)).text()
        assert _selected(first, "tab") == "Notes" and '<option value="Leads"' in first
        assert 'id="show-tab"' in first  # a button too: keyboard and no-JS users
        leads = await (await client.get(f"{columns_url}?tab=Leads")).text()
        assert _selected(leads, "tab") == "Leads"
        assert _selected(leads, "column-phone") == "Phone"
        assert _selected(leads, "column-customer_id") == "Client Ref"
        saved = await client.post(
            columns_url,
            data={
                "csrf": csrf,
                "tab": "Leads",
                "column:phone": "Phone",
                "column:customer_id": "Client Ref",
                "column:first_name": "First Name",
                "column:order_id": "Order ID",
                "column:order_date": "Order Date",
            },
            allow_redirects=False,
        )
        assert saved.status == 303, await saved.text()
        dry = server.jobs.dry_runs[saved.headers["Location"].rsplit("/", 1)[1]]
        assert dry.summary["counts"]["ready"] == 1 and dry.summary["tab"] == "Leads"
        contacts = tomllib.loads(_campaign_file(server).read_text("utf-8"))["contacts"]
        assert contacts["sheet"] == "Leads"
        assert contacts["columns"] == {"customer_id": "Client Ref"}  # the rest match as named

    _run(tmp_path, body)


def test_the_check_page_shows_spreadsheet_rows_and_their_header_names(tmp_path):
    sheet = (
        b",,,,\n\n"  # empty rows above the header, as exports make them: the header is row 3
        b"Customer ID,First Name,Phone,Order ID,Order Date\n"
        b"C1,Asha,+917359043943,O1,monday\n"
        b"C2,Ben,+917359043943,O2,monday\n"  # the same number: spreadsheet row 5
        b"C3,,+917359043945,O3,monday\n"  # no name: spreadsheet row 6
    )

    async def body(client: TestClient, server: web.Server) -> None:
        csrf = await _login(client)
        answer = await _upload(client, csrf, "c.csv", sheet)
        assert answer.status == 303, await answer.text()
        page = await (await client.get(answer.headers["Location"])).text()
        problems = re.search(r'<table class="problems" id="problems">(.*?)</table>', page, re.S)
        rows = re.findall(r"<tr><td>(\d+)</td><td>(C\d)</td>.*?<td>([^<]*)</td></tr>", problems[1])
        assert rows == [
            ("5", "C2", "duplicate of row 4"),
            (
                "6",
                "C3",
                "template needs column &#39;First Name&#39; (first_name), which is "
                "empty or missing",
            ),
        ]
        assert "Row 4 of your sheet" in page  # the first message's row, as Excel numbers it

    _run(tmp_path, body)


def test_a_check_that_fails_keeps_the_upload_chosen_and_says_it_once(tmp_path):
    sheet = (Path(__file__).resolve().parent.parent / "sample_data" / "contacts.csv").read_bytes()

    async def body(client: TestClient, server: web.Server) -> None:
        path = _campaign_file(server)
        text = path.read_text("utf-8")
        path.write_text(re.sub(r"(?m)^suppress = .*$", 'suppress = "gone-dnc.csv"', text))
        csrf = await _login(client)
        answer = await _upload(client, csrf, "contacts.csv", sheet)
        page = await answer.text()
        assert answer.status == 400
        assert "do-not-call list not found" in page
        assert '<span id="upload-name">contacts.csv</span>' in page
        assert 'id="save-columns"' in page
        assert page.count("contacts.csv:") == 0  # no "contacts.csv: contacts.csv: ..."
        assert len(list(server.uploads.folder.iterdir())) == 1  # kept for the next try

    _run(tmp_path, body)


def test_an_unreadable_upload_is_one_line_naming_the_file_once_and_not_kept(tmp_path):
    async def body(client: TestClient, server: web.Server) -> None:
        csrf = await _login(client)
        answer = await _upload(client, csrf, "leads.csv", b"")
        text = await answer.text()
        assert answer.status == 400
        assert "leads.csv: the file is empty" in text and "leads.csv: leads.csv" not in text
        assert not any(server.uploads.folder.iterdir())

    _run(tmp_path, body)


def test_the_column_page_needs_the_csrf_token_and_a_kept_upload(tmp_path):
    async def body(client: TestClient, server: web.Server) -> None:
        csrf = await _login(client)
        columns_url = (await _upload(client, csrf, "their.csv", THEIR_SHEET)).headers["Location"]
        forged = await client.post(columns_url, data={"csrf": "forged", "column:phone": "City"})
        assert forged.status == 403
        assert (await client.get("/uploads/nope/columns")).status == 404
        for upload in server.uploads.folder.iterdir():
            upload.unlink()  # pruned meanwhile
        gone = await client.get(columns_url)
        assert gone.status == 404 and "upload the sheet again" in await gone.text()

    _run(tmp_path, body)


def test_a_tab_name_a_workbook_cannot_have_is_refused_with_the_field_named(tmp_path):
    """A NUL, a control character or a very long tab name (only a hand-made request sends one)
    is a 400 naming the tab, never a 500 from the probe child's arguments."""
    data = _workbook({"Leads": [["Phone"], ["+917359043943"]]})

    async def body(client: TestClient, server: web.Server) -> None:
        csrf = await _login(client)
        columns_url = (await _upload(client, csrf, "book.xlsx", data)).headers["Location"]
        before = _campaign_file(server).read_bytes()
        for tab in ("%00", "Leads%0A", "L" * 101):
            answer = await client.get(f"{columns_url}?tab={tab}")
            assert answer.status == 400, tab
            assert "Tab: a tab's name has no control characters" in await answer.text()
        for tab in ("Le\x00ads", "x" * 101):
            answer = await client.post(columns_url, data={"csrf": csrf, "tab": tab})
            assert answer.status == 400 and "Tab: " in await answer.text()
        assert (await client.get(f"{columns_url}?tab=Leads")).status == 200
        assert _campaign_file(server).read_bytes() == before

    _run(tmp_path, body)


def test_saving_columns_never_undoes_an_edit_saved_while_the_sheet_was_read(tmp_path, monkeypatch):
    """The campaign is edited (saved from another page) while the save reads the sheet: the
    columns are not written over it from the copy read before; the user is asked to check
    again."""
    probe = columns.probe_upload

    async def body(client: TestClient, server: web.Server) -> None:
        csrf = await _login(client)
        columns_url = (await _upload(client, csrf, "their.csv", THEIR_SHEET)).headers["Location"]
        path = _campaign_file(server)

        async def edited_meanwhile(*args: Any) -> Any:
            found = await probe(*args)
            path.write_text(path.read_text("utf-8").replace("Company XYZ", "Company NEW"))
            return found

        monkeypatch.setattr(columns, "probe_upload", edited_meanwhile)
        answer = await client.post(
            columns_url,
            data={
                "csrf": csrf,
                "column:phone": "Mobile No.",
                "column:customer_id": "Mobile No.",
                "column:first_name": "Customer Name",
                "column:order_id": "Order #",
                "default:order_date": "soon",
            },
        )
        page = await answer.text()
        assert answer.status == 400 and "open this page again to check" in page
        assert _selected(page, "column-first_name") == "Customer Name"  # the choice is kept
        text = path.read_text("utf-8")
        assert "Company NEW" in text and "Mobile No." not in text  # the edit stands
        assert server.jobs.dry_runs == {}

    _run(tmp_path, body)
