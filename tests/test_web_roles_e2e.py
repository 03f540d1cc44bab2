"""The page's four roles in real headless Chromium against `dialer serve` and `dialer
fake-tabbly`: a viewer, a caller, an editor and an admin log in by name and password in turn,
and each page offers what the role may do and nothing more. The audit trail the test leaves
names the failed login and the caller's launch with its check's fingerprints, verifies, and
stops verifying once one entry is edited in the file."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from dialer.fake_tabbly import FakeTabblyProcess
from dialer.team import audit
from dialer.team.audit import AuditTrail
from dialer.team.people import People
from dialer.team.roles import Role
from tests.test_web_e2e import CHROMIUM, RUN_BOUND_MS, SAMPLES, _browser_page, _project, _serve
from tests.test_web_roles import PASSWORD, _sheet_numbers


def _log_in(page: Any, base: str, name: str) -> None:
    page.goto(base + "/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Log in')")
    page.wait_for_url(base + "/")


def _log_out(page: Any) -> None:
    page.click("button:has-text('Log out')")


def test_each_role_sees_and_may_do_what_it_is_allowed_on_the_page(tmp_path: Path, cli) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    expect = sync_api.expect
    root = _project(tmp_path / "project")
    people = People(root / "state")
    for role in Role:
        people.add(str(role), role, PASSWORD)
    numbers = _sheet_numbers()

    with (
        FakeTabblyProcess("--latency", "0.02", "--balance", "100") as fake,
        _serve(root, fake.url, tmp_path / "serve.log") as base,
        sync_api.sync_playwright() as pw,
        _browser_page(pw, timeout_ms=15_000) as (page, errors),
    ):
        # The login page asks for a name and a password, and says the token is over.
        page.goto(base + "/")
        expect(page.locator("#login-hint")).to_contain_text("no longer logs in")

        # A wrong password is refused (and kept in the trail).
        page.fill("input[name=name]", "caller")
        page.fill("input[name=password]", "not-the-password-at-all")
        page.click("button:has-text('Log in')")
        expect(page.locator("p.error")).to_be_visible()
        assert [e for e in errors if "status of 403" not in e] == []
        errors.clear()  # the browser logs the 403 of the refused login

        # A caller uploads, checks and launches.
        _log_in(page, base, "caller")
        expect(page.locator("#new-campaign")).to_have_count(0)
        page.set_input_files("input[name=sheet]", str(SAMPLES / "contacts.csv"))
        page.click("#upload-form button[type=submit]")
        page.select_option("#use-campaign", "example")
        page.click("#use-campaign-button")
        expect(page).to_have_url(re.compile(r"/dry-runs/[\w-]+$"))
        check_url = page.url
        assert any(n in page.content() for n in numbers)  # a caller sees numbers whole
        page.check("#launch-form input[name=confirm]")
        page.click("#launch-form button:has-text('Start calling')")
        expect(page).to_have_url(re.compile(r"/runs/[\w-]+$"))
        run_url = page.url
        expect(page.locator("#run-state")).to_have_text(
            re.compile(r"^Finished"), timeout=RUN_BOUND_MS
        )
        expect(page.locator("#report-csv")).to_be_visible()
        _log_out(page)

        # A viewer: no upload form, no launch, stop or download, masked numbers only.
        _log_in(page, base, "viewer")
        expect(page.locator("#whoami")).to_have_text("viewer (viewer)")
        expect(page.locator("#upload-form")).to_have_count(0)
        expect(page.locator("#history-runs a[href^='/reports/']")).to_have_count(0)
        for url in (check_url, run_url, base + "/campaigns/example/results", base + "/optouts"):
            page.goto(url)
            for absent in ("#launch-form", "#stop-form", "#downloads", "#sync-form", "#optout-add"):
                expect(page.locator(absent)).to_have_count(0)
            html = page.content()
            assert [n for n in numbers if n in html] == [], url
        # A viewer's forged launch, with the viewer's own session and CSRF token: refused.
        csrf = page.locator("input[name=csrf]").first.get_attribute("value")
        sent = len(fake.state()["received"])
        forged = page.request.post(
            check_url + "/launch", form={"csrf": csrf, "confirm": "yes", "count": "49"}
        )
        assert forged.status == 403 and "This needs the role caller" in forged.text()
        assert len(fake.state()["received"]) == sent  # nobody called
        page.goto(base + "/campaigns/new")
        expect(page.locator("p.error")).to_contain_text("This needs the role editor")
        assert [e for e in errors if "status of 403" not in e] == []
        errors.clear()  # the browser logs the 403 it was meant to get
        _log_out(page)

        # An editor opens the campaign form; the people page is an admin's.
        _log_in(page, base, "editor")
        page.click("#new-campaign")
        expect(page).to_have_url(base + "/campaigns/new")
        expect(page.locator("#menu-people")).to_have_count(0)
        _log_out(page)

        # An admin manages people.
        _log_in(page, base, "admin")
        page.click("#menu-people")
        expect(page).to_have_url(base + "/people")
        expect(page.locator("tr.person")).to_have_count(4)
        page.goto(base + "/audit")
        expect(page.locator("body")).to_contain_text("login_failed")
        assert errors == []
        assert len(fake.state()["received"]) > 0  # the caller's launch called people

    entries = AuditTrail(root / "state").entries()
    [failed] = [e for e in entries if e.action == audit.LOGIN_FAILED]
    assert failed.who == "caller"
    [check] = [e for e in entries if e.action == audit.CHECK and e.who == "caller"]
    [launch] = [e for e in entries if e.action == audit.LAUNCH]
    assert launch.who == "caller" and launch.campaign == "example"
    assert launch.details["fingerprints"] == check.details["fingerprints"] != {}
    trail = "\n".join(str(e) for e in entries)
    assert [n for n in numbers if n in trail] == []  # no whole number in the trail
    verified = cli(["audit", "verify", "--root", str(root)])
    assert verified.code == 0 and "intact" in verified.out
    conn = sqlite3.connect(root / "state" / "team.sqlite", isolation_level=None)
    conn.execute("DROP TRIGGER audit_append_only_update")  # the file is the user's to edit
    conn.execute("UPDATE audit SET who = 'somebody else' WHERE seq = ?", (launch.seq,))
    conn.close()
    edited = cli(["audit", "verify", "--root", str(root)])
    assert edited.code == 1 and f"entry {launch.seq} " in edited.out + edited.err
