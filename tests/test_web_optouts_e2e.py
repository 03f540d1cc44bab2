"""The opt-out register page in real headless Chromium against `dialer serve`: the menu leads
to it, a number is added with a reason, found by the whole number with its history, and
removed only after the confirm page with a reason; a sheet is imported. Every field labelled,
the text readable, no script error."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialer.ledger.optouts import Register
from tests.test_web_e2e import CHROMIUM, TOKEN, _browser_page, _project, _serve
from tests.test_web_marketing_e2e import _labelled, _readable

NUMBER = "+15125550100"


def test_a_marketer_adds_finds_imports_and_removes_an_opt_out_on_the_page(tmp_path: Path):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    expect = sync_api.expect
    root = _project(tmp_path / "project")
    sheet = tmp_path / "dnc.csv"
    sheet.write_text("Name,Mobile No.\nann,+917359043943\n", encoding="utf-8")
    # Nothing is called here: the page needs no Tabbly.
    with (
        _serve(root, "http://127.0.0.1:9", tmp_path / "serve.log") as base,
        sync_api.sync_playwright() as pw,
        _browser_page(pw, timeout_ms=10_000) as (page, errors),
    ):
        page.goto(base + "/")
        page.fill("input[name=token]", TOKEN)
        page.click("button:has-text('Log in')")
        page.click("#menu-optouts")
        expect(page).to_have_url(base + "/optouts")
        for form in ("#optout-search", "#optout-add", "#optout-import"):
            _labelled(page, form)
        _readable(page)

        page.fill("#optout-add textarea[name=numbers]", NUMBER)
        page.fill("#optout-add input[name=reason]", "asked by email")
        page.click("#optout-add-button")
        expect(page.locator("#optout-notice")).to_contain_text("1 number opted out")

        page.set_input_files("#optout-import input[name=sheet]", str(sheet))
        page.click("#optout-import-button")
        expect(page.locator("#optout-notice")).to_contain_text("Imported dnc.csv")

        page.fill("#optout-search input[name=q]", NUMBER)
        page.click("#optout-search button[type=submit]")
        card = page.locator("article.optout")
        expect(card.locator(".optout-number")).to_have_text(NUMBER)
        expect(card.locator(".optout-history tr.change")).to_have_count(1)
        page.click(".remove-optout")
        expect(page.locator("#remove-ask")).to_be_visible()
        _labelled(page, "#optout-remove")
        page.fill("#optout-remove input[name=reason]", "signed consent form")
        page.check("#optout-remove input[name=confirm]")
        page.click("#optout-remove-confirm")
        expect(page.locator("#optout-notice")).to_contain_text("was removed")
        expect(page.locator(".optout-number")).to_have_count(0)
        assert errors == []

    with Register.reading(root / "state") as register:
        assert [e.called_to for e in register.listed()] == ["+917359043943"]
        assert [c.action for c in register.history(NUMBER)] == ["added", "removed"]
