"""The opt-out register page (SPEC 12 on the page): search by the whole number or its last
digits, each entry's evidence and history, add with a reason, import a sheet all or nothing,
removal only after a confirm step with a reason (kept in the history), CSRF on every form;
and the page's words for `opted_out`. The real page's app, a real register file."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestClient
from openpyxl import Workbook
from test_web import _login, _run
from test_web_words import assert_plain, visible_text

from dialer import web
from dialer.core.statuses import Status
from dialer.ledger.optouts import Ask, Register, Source
from dialer.web import texts

NUMBER = "+15125550100"
OTHER = "+917359043943"
NOW = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)


def _heard(root: Path) -> None:
    """An opt-out heard on a call, as a sync records it (evidence masked)."""
    with Register.open(root / "state") as register:
        register.add(
            [
                Ask(
                    OTHER,
                    Source.CALL,
                    "sync",
                    "call_outcome do_not_call",
                    campaign="example",
                    call_id="call-7",
                    evidence='User: "please stop calling me, +91******943"',
                    at=NOW,
                )
            ],
            NOW,
        )


def _entries(root: Path) -> dict[str, object]:
    register = Register.reading(root / "state")
    if register is None:
        return {}
    with register:
        return {e.called_to: e for e in register.listed()}


def _import_form(csrf: str | None, name: str, data: bytes, reason: str = "") -> aiohttp.FormData:
    form = aiohttp.FormData()
    if csrf is not None:
        form.add_field("csrf", csrf)
    form.add_field("reason", reason)
    form.add_field("region", "")
    form.add_field("sheet", data, filename=name, content_type="application/octet-stream")
    return form


def test_add_search_history_and_remove_after_a_confirm_with_a_reason(tmp_path):
    async def body(client: TestClient, server: web.Server) -> None:
        csrf = await _login(client)
        start = await (await client.get("/")).text()
        assert 'href="/optouts"' in start  # in the menu
        empty = await client.get("/optouts")
        assert empty.status == 200
        assert "Nobody has opted out yet" in await empty.text()

        added = await client.post(
            "/optouts/add",
            data={"csrf": csrf, "numbers": f"{NUMBER}\n+1 512 555 0100", "reason": "by email"},
        )
        page = await added.text()
        assert added.status == 200, page
        assert "1 number opted out" in page
        entry = _entries(server.root)[NUMBER]
        assert entry.source == "page" and entry.reason == "by email"
        assert entry.who == "token"  # who logged in: the shared token, while nobody is a person

        _heard(server.root)
        # The newest entries, masked: no whole number the user did not type.
        listed = await (await client.get("/optouts")).text()
        assert NUMBER not in listed and OTHER not in listed
        assert "+15******100" in listed and "+91*******943" in listed
        assert "said so on a call" in listed and "please stop calling me" in listed
        assert "remove-optout" not in listed  # removal starts from a whole number
        # By the last digits: masked; by the whole number: whole, with its history.
        by_digits = await (await client.get("/optouts", params={"q": "3943"})).text()
        assert "+91*******943" in by_digits and OTHER not in by_digits
        assert "call-7" in by_digits and "example" in by_digits
        assert "+15******100" not in by_digits
        short = await client.get("/optouts", params={"q": "43"})
        assert "at least its last 4 digits" in await short.text()
        whole = await (await client.get("/optouts", params={"q": OTHER})).text()
        assert OTHER in whole and "remove-optout" in whole
        assert "opted out" in visible_text(whole.split('class="optout-history"')[1])

        # Remove: the first press only asks; without a reason nothing goes.
        ask = await client.post("/optouts/remove", data={"csrf": csrf, "number": OTHER})
        ask_page = await ask.text()
        assert ask.status == 200 and "optout-remove-confirm" in ask_page
        assert OTHER in _entries(server.root)
        no_reason = await client.post(
            "/optouts/remove",
            data={"csrf": csrf, "number": OTHER, "reason": "  ", "confirm": "yes"},
        )
        assert no_reason.status == 400
        assert texts.OPTOUT_REMOVE_NEEDS_REASON in await no_reason.text()
        unconfirmed = await client.post(
            "/optouts/remove", data={"csrf": csrf, "number": OTHER, "reason": "signed form"}
        )
        assert unconfirmed.status == 400 and OTHER in _entries(server.root)
        done = await client.post(
            "/optouts/remove",
            data={"csrf": csrf, "number": OTHER, "reason": "signed form 12/5", "confirm": "yes"},
        )
        done_page = await done.text()
        assert done.status == 200, done_page
        assert "was removed from the opt-out register" in done_page
        assert OTHER not in _entries(server.root)
        with Register.reading(server.root / "state") as register:
            history = register.history(OTHER)
        assert [c.action for c in history] == ["added", "removed"]
        assert history[1].reason == "signed form 12/5" and history[1].who == "token"
        again = await client.post(
            "/optouts/remove",
            data={"csrf": csrf, "number": OTHER, "reason": "again", "confirm": "yes"},
        )
        assert again.status == 400 and "not on the opt-out register" in await again.text()
        assert_plain(await (await client.get("/optouts")).text(), "the register page")

    _run(tmp_path, body)


def test_add_refuses_a_bad_number_or_no_reason_and_adds_nothing(tmp_path):
    async def body(client: TestClient, server: web.Server) -> None:
        csrf = await _login(client)
        bad = await client.post(
            "/optouts/add", data={"csrf": csrf, "numbers": f"{NUMBER}, 12", "reason": "x"}
        )
        assert bad.status == 400 and "Nothing added" in await bad.text()
        no_reason = await client.post(
            "/optouts/add", data={"csrf": csrf, "numbers": NUMBER, "reason": " "}
        )
        assert no_reason.status == 400
        national = await client.post(
            "/optouts/add",
            data={"csrf": csrf, "numbers": "07359 043943", "region": "in", "reason": "asked"},
        )
        assert national.status == 200, await national.text()
        assert list(_entries(server.root)) == [OTHER]

    _run(tmp_path, body)


def _xlsx(rows: list[list[object]]) -> bytes:
    book = Workbook()
    for row in rows:
        book.active.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_import_is_all_or_nothing_and_lists_the_bad_rows(tmp_path):
    async def body(client: TestClient, server: web.Server) -> None:
        csrf = await _login(client)
        bad_sheet = f"name,phone\nann,{NUMBER}\nbob,not a number\ncy,\n".encode()
        bad = await client.post("/optouts/import", data=_import_form(csrf, "dnc.csv", bad_sheet))
        page = await bad.text()
        assert bad.status == 400, page
        assert "Nothing imported: 2 rows of dnc.csv" in page
        assert re.search(r"<li>row 3: [^<]+</li>", page)
        assert "<li>row 4: no phone number</li>" in page
        assert _entries(server.root) == {}

        good = await client.post(
            "/optouts/import",
            data=_import_form(csrf, "dnc.xlsx", _xlsx([["Mobile No."], [NUMBER], [OTHER]])),
        )
        page = await good.text()
        assert good.status == 200, page
        assert "Imported dnc.xlsx: 2 numbers opted out" in page
        entries = _entries(server.root)
        assert set(entries) == {NUMBER, OTHER}
        assert entries[NUMBER].reason == "imported from dnc.xlsx"
        assert entries[OTHER].evidence == "dnc.xlsx row 3"
        assert not any((server.root / "uploads").iterdir())  # a list of numbers is not kept

        junk = await client.post(
            "/optouts/import", data=_import_form(csrf, "x.xlsx", b"not a workbook")
        )
        assert junk.status == 400
        assert "Traceback" not in await junk.text()

    _run(tmp_path, body)


def test_every_form_of_the_register_needs_the_csrf_token(tmp_path):
    async def body(client: TestClient, server: web.Server) -> None:
        await _login(client)
        sheet = f"phone\n{NUMBER}\n".encode()
        for answer in (
            await client.post("/optouts/add", data={"numbers": NUMBER, "reason": "x"}),
            await client.post(
                "/optouts/add", data={"csrf": "forged", "numbers": NUMBER, "reason": "x"}
            ),
            await client.post("/optouts/import", data=_import_form(None, "d.csv", sheet)),
            await client.post("/optouts/import", data=_import_form("forged", "d.csv", sheet)),
            await client.post(
                "/optouts/remove",
                data={"number": NUMBER, "reason": "x", "confirm": "yes"},
            ),
        ):
            assert answer.status == 403
        assert _entries(server.root) == {}

    _run(tmp_path, body)


def test_the_import_upload_is_bounded_like_a_sheet_and_small_elsewhere(tmp_path):
    from dataclasses import replace

    from dialer.web.settings import DEFAULTS

    settings = replace(DEFAULTS, upload_limit=2048, upload_form_slack=1024)

    async def body(client: TestClient, server: web.Server) -> None:
        csrf = await _login(client)
        big = f"phone\n{NUMBER}\n".encode() + b"x" * 10_000
        answer = await client.post("/optouts/import", data=_import_form(csrf, "d.csv", big))
        assert answer.status == 413
        assert _entries(server.root) == {}

    _run(tmp_path, body, settings=settings)


def test_opted_out_rows_are_named_in_the_page_words():
    assert texts.check_words(Status.OPTED_OUT) != Status.OPTED_OUT
    assert "asked not to be called" in texts.status_words(Status.OPTED_OUT, None)
    assert "2 asked not to be called" in texts.left_out({Status.OPTED_OUT: 2})


def test_a_run_names_the_people_opted_out_after_its_check():
    """A person opted out by a sync between the check and the run is not called: the run page
    says so by name, and the parts still add up to the people of the check."""
    from collections import deque

    from dialer.web.services.job_records import WebRun

    run = WebRun(
        id="r1",
        campaign="example",
        report=Path("r.csv"),
        proc=None,
        started="",
        upload=Path("u.csv"),
        messages=deque(),
        exit_code=0,
        final={Status.TRIGGERED: 3, Status.OPTED_OUT: 2},
        total=5,
    )
    parts = {key: (n, words) for key, n, words in run.people()}
    assert parts[Status.OPTED_OUT][0] == 2
    assert "asked not to be called" in parts[Status.OPTED_OUT][1]
    assert sum(n for n, _ in parts.values()) == 5
    assert "2 not called: asked not to be called" in run.view()["state_text"]
