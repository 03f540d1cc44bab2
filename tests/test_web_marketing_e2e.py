"""Issue 12 end to end, as a marketing person who never opens a terminal, in real headless
Chromium against `dialer serve` and `dialer fake-tabbly` (call logs included).

A new campaign made on the page; their own sheet ("Customer Name, Mobile No., Order #, City",
headers that match nothing) uploaded; the columns matched in one step; a live preview that
changes as the greeting is typed; a test call to their own phone that reaches the fake; a
launch whose requests the fake received exactly; progress to the end; the outcome chart after
a sync; the report and the results sheet downloaded and read. Keyboard and labels are checked
on the way. With DIALER_SCREENSHOTS=1 each step is saved to docs/screenshots/ for the README.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import urllib.request
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from dialer.core.statuses import Status
from dialer.fake_tabbly import DEFAULT_API_KEY, TOPUP_PATH, TRIGGER_PATH, FakeTabblyProcess
from dialer.sheets.countries import country_name, country_of
from tests.test_web_e2e import (
    CHROMIUM,
    SAMPLES,
    SHOTS,
    TOKEN,
    _browser_page,
    _project,
    _serve,
)
from tests.test_web_words import assert_plain

SHEET = SAMPLES / "marketing.csv"
OWN_PHONE = "+919812300077"  # the marketer's own mobile, for the test call
GREETING = "Hello {{ first_name }}, this is Spring Sale about order {{ order_id }}."
EDITED = "Hi {{ first_name }}! Spring Sale here, about your order {{ order_id }}."
RUN_BOUND_MS = 30_000


def _sheet_rows() -> list[dict[str, str]]:
    with open(SHEET, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _labelled(page: Any, form: str) -> None:
    """Every visible field of `form` has a label a screen reader announces."""
    unlabelled = page.evaluate(
        """(form) => [...document.querySelectorAll(form + ' input, ' + form + ' select, '
            + form + ' textarea')]
            .filter((el) => el.type !== 'hidden' && el.offsetParent !== null)
            .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                && !el.getAttribute('aria-labelledby'))
            .map((el) => el.id || el.name)""",
        form,
    )
    assert unlabelled == [], f"fields without a label in {form}: {unlabelled}"


# WCAG 2 contrast of every text element against the first opaque background behind it.
_LOW_CONTRAST = """() => {
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (; el; el = el.parentElement) {
      const c = rgb(getComputedStyle(el).backgroundColor);
      if (c.length === 3 || c[3] === 1) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const low = [];
  for (const el of document.querySelectorAll("body *")) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || el.offsetParent === null) continue;
    const style = getComputedStyle(el);
    const [a, b] = [lum(rgb(style.color).slice(0, 3)), lum(background(el))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const large = parseFloat(style.fontSize) >= 24 || (parseFloat(style.fontSize) >= 18.66
      && Number(style.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) low.push(`${el.tagName}#${el.id} ${ratio.toFixed(2)}`);
  }
  return low;
}"""


def _readable(page: Any) -> None:
    """Text contrast at least 4.5:1 (3:1 for large text) on the page as it is now."""
    low = page.evaluate(_LOW_CONTRAST)
    assert low == [], f"{page.url}: text below WCAG AA contrast: {low[:10]}"


def _tab_to(page: Any, selector: str, presses: int = 80) -> None:
    """Move the keyboard focus with Tab alone until `selector` has it (a bounded walk)."""
    for _ in range(presses):
        if page.evaluate("(s) => document.activeElement.matches(s)", selector):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{selector} cannot be reached with the Tab key")


def test_a_marketer_goes_from_their_own_sheet_to_who_answered_on_the_page_alone(
    tmp_path: Path,
) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    expect = sync_api.expect
    shoot = os.environ.get("DIALER_SCREENSHOTS") == "1"
    if shoot:
        SHOTS.mkdir(parents=True, exist_ok=True)

    def snap(page: Any, name: str) -> None:
        if shoot:
            page.screenshot(path=str(SHOTS / name), full_page=True)

    people = _sheet_rows()
    root = _project(tmp_path / "project")
    options = ("--latency", "0.02", "--balance", "100", "--log-delay", "0", "--seed", "7")
    with FakeTabblyProcess(*options) as fake:
        base_url = fake.url.split("/dashboard/")[0]
        env = {"TABBLY_LOGS_URL": f"{base_url}/dashboard/agents/endpoints/call-logs-v2"}
        with (
            _serve(root, fake.url, tmp_path / "serve.log", env, daytime=True) as base,
            sync_api.sync_playwright() as pw,
            _browser_page(pw) as (page, errors),
        ):
            # Log in with the keyboard alone: the token field has the focus; then Enter.
            page.goto(base + "/")
            expect(page.locator("input[name=token]")).to_be_focused()
            page.keyboard.type(TOKEN)
            page.keyboard.press("Enter")
            expect(page).to_have_url(base + "/")

            # 1. A new campaign, made on the page.
            page.click("#new-campaign")
            _labelled(page, "#campaign-form")
            _readable(page)
            page.fill("#name", "spring")
            agent = page.locator("#agent-id")
            if agent.evaluate("el => el.tagName") == "SELECT":
                agent.select_option("33")
            else:
                agent.fill("33")
            page.fill("#first-line", GREETING)
            page.fill("#instruction", "{{ first_name }} ordered {{ order_id }}.")
            page.fill("#default-region", "IN")
            snap(page, "1-new-campaign.png")
            page.click("#save-campaign")
            expect(page.locator("#notice")).to_be_visible()
            assert (root / "campaigns" / "spring.toml").exists()

            # 2. Their own sheet, whose headers match nothing the campaign names.
            page.goto(base + "/")
            page.set_input_files("input[name=sheet]", str(SHEET))
            page.click("#upload-form button[type=submit]")
            # The campaign just created is the one preselected for the sheet.
            expect(page.locator("#use-campaign")).to_have_value("spring")
            page.click("#use-campaign-button")
            expect(page.locator("#upload-name")).to_have_text(SHEET.name)
            # 3. Every column the campaign needs, at once, pre-chosen by close match.
            expect(page.locator("#column-phone")).to_have_value("Mobile No.")
            expect(page.locator("#column-first_name")).to_have_value("Customer Name")
            expect(page.locator("#column-order_id")).to_have_value("Order #")
            _labelled(page, "#columns-form")
            _readable(page)
            snap(page, "2-columns.png")
            page.click("#save-columns")
            expect(page).to_have_url(re.compile(r"/dry-runs/[\w-]+$"))
            ready = int(page.locator("#ready-count").inner_text())
            assert ready == len(people)
            expect(page.locator("#cost-estimate")).to_be_visible()

            # 4. The live preview follows the greeting as it is typed.
            page.click("#edit-with-sheet")
            greeting = page.locator("#preview-greeting")
            expect(greeting).to_have_text(re.compile(r"^Hello Aarav Sharma, this is Spring"))
            page.fill("#first-line", EDITED)
            expect(greeting).to_have_text(re.compile(r"^Hi Aarav Sharma! Spring Sale here"))
            snap(page, "3-preview.png")

            # 5. "Call me first": one call with row 2's words, to their own phone.
            page.fill("#test-number", OWN_PHONE)
            page.click("#test-call")
            expect(page.locator("#test-call-result")).to_be_visible()
            tests = [r["body"] for r in fake.state()["received"]]
            assert [b["called_to"] for b in tests] == [OWN_PHONE]
            assert tests[0]["custom_first_line"].startswith("Hi Aarav Sharma!")
            page.click("#save-campaign")
            expect(page.locator("#notice")).to_be_visible()

            # 6. The campaign changed since the check: check the sheet again, then launch.
            page.goto(base + "/")
            page.set_input_files("input[name=sheet]", str(SHEET))
            page.click("#upload-form button[type=submit]")
            expect(page.locator("#use-campaign")).to_have_value("spring")
            page.click("#use-campaign-button")
            expect(page).to_have_url(re.compile(r"/dry-runs/[\w-]+$"))
            expect(page.locator("#ready-count")).to_have_text(str(len(people)))
            assert DEFAULT_API_KEY not in page.content()
            _readable(page)
            # Confirmed and launched with the keyboard alone.
            _tab_to(page, "#launch-form input[name=confirm]")
            page.keyboard.press("Space")
            expect(page.locator("#launch-form input[name=confirm]")).to_be_checked()
            snap(page, "4-check.png")
            _tab_to(page, "#launch-form button[type=submit]")
            page.keyboard.press("Enter")
            expect(page).to_have_url(re.compile(r"/runs/[\w-]+$"))

            # 7. Progress to the end: "x of N".
            expect(page.locator("#run-state")).to_have_text(
                re.compile(r"^Finished"), timeout=RUN_BOUND_MS
            )
            expect(page.locator("#progress-text")).to_contain_text(
                f"{len(people)} of {len(people)}"
            )
            snap(page, "5-run.png")
            # 8. Who answered: a sync, then the chart of outcomes.
            page.click("#sync")
            chart = page.locator("svg#outcome-chart")
            expect(chart).to_be_visible()
            counts = {
                g.get_attribute("data-outcome"): int(g.get_attribute("data-count") or 0)
                for g in page.locator("svg#outcome-chart g[data-outcome]").all()
            }
            expect(page.locator("#answer-rate")).to_be_visible()
            assert chart.get_attribute("role") == "img" and chart.get_attribute("aria-label")
            _readable(page)
            snap(page, "6-results.png")

            # 9. Both downloads, opened and read.
            with page.expect_download() as info:
                page.click("#report-csv")
            report_text = Path(info.value.path()).read_text("utf-8")
            with page.expect_download() as info:
                page.click("#results-csv")
            results_text = Path(info.value.path()).read_text("utf-8")
            assert DEFAULT_API_KEY not in page.content()
            assert errors == []

        received = fake.state()
    report = list(csv.DictReader(io.StringIO(report_text)))
    results = list(csv.DictReader(io.StringIO(results_text)))
    # The launch: exactly one call per person of the sheet, with the edited greeting.
    campaign_calls = [r["body"] for r in received["received"][1:]]
    assert len(campaign_calls) == len(people)
    assert len({b["called_to"] for b in campaign_calls}) == len(people)
    assert all(b["custom_first_line"].startswith("Hi ") for b in campaign_calls)
    assert all(r["status"] == 200 for r in received["received"])
    assert [r["status"] for r in report] == ["triggered"] * len(people)
    # The results sheet: one line per person, each with the outcome the fake drew, and the
    # chart counts the same.
    drawn = {c["called_to"]: c["outcome"] for c in received["calls"] if c["called_to"] != OWN_PHONE}
    assert {r["called_to"]: r["outcome"] for r in results} == drawn
    assert sum(counts.values()) == len(people)
    for outcome, n in counts.items():
        assert n == sum(1 for o in drawn.values() if o == outcome)
    # A formula in the user's own sheet stays text in the results sheet.
    assert not any(v.startswith("=") for r in results for v in r.values())


class SheetFirstStory:
    """Issue 16's story, as a marketer with a shop's export does it, one method per step; each
    step starts where the one before left the page. A later step (a wallet stop and its
    advice, resume, sync, the results download) is one more method after `launch`:

        story = SheetFirstStory(page, base, fake, root, expect, shots)
        story.log_in(); story.upload(sheet); story.new_campaign_from_sheet("Spring sale 2026")
        ...; story.launch(); story.wallet_stop()   # the next engineer's step
    """

    def __init__(
        self, page: Any, base: str, fake: Any, root: Path, expect: Any, shots: Path | None
    ) -> None:
        self.page, self.base, self.fake, self.root = page, base, fake, root
        self.expect = expect
        self.shots = shots
        self.campaign = ""  # the file name the page derived from the typed name

    def snap(self, name: str) -> None:
        if self.shots is not None:
            self.page.screenshot(path=str(self.shots / f"flow-{name}.png"), full_page=True)

    def log_in(self) -> None:
        page = self.page
        page.goto(self.base + "/")
        page.fill("input[name=token]", TOKEN)
        page.keyboard.press("Enter")
        self.expect(page).to_have_url(self.base + "/")

    def upload(self, sheet: Path) -> None:
        """The start page's main action: the sheet, before any campaign."""
        page = self.page
        self.expect(page.locator("h1")).to_have_text("Start from your sheet")
        page.set_input_files("input[name=sheet]", str(sheet))
        self.snap("1-start")
        page.click("#upload-sheet")
        self.expect(page.locator("#upload-name")).to_have_text(sheet.name)
        # Nothing used yet in this session: no campaign silently chosen.
        self.expect(page.locator("#use-campaign")).to_have_value("")
        _readable(page)
        self.plain("the upload's page")
        self.snap("2-uploaded")

    def new_campaign_from_sheet(self, name: str) -> None:
        page = self.page
        page.click("#new-campaign-from-sheet")
        self.expect(page.locator("#campaign-form")).to_be_visible()
        self.expect(page.locator("#day-sun")).to_be_checked()  # every day, by default
        page.fill("#name", name)
        agent = page.locator("#agent-id")
        if agent.evaluate("el => el.tagName") == "SELECT":
            agent.select_option("33")
        else:
            agent.fill("33")
        page.fill("#default-region", "")
        _labelled(page, "#campaign-form")
        self.plain("the new campaign's form")

    def header_as_written_is_explained(self) -> None:
        """ "{{ Total Spent }}" typed as the sheet writes it: one plain sentence saying how."""
        page = self.page
        page.fill("#first-line", "Hi {{ Total Spent }}")
        error = page.locator("#preview-error")
        self.expect(error).to_contain_text("{{ total_spent }}")
        assert "expected token" not in error.inner_text()

    def greeting_from_the_menu(self) -> None:
        """The greeting written with the sheet's headers picked from the menu, at the cursor."""
        page = self.page
        greeting = page.locator("#first-line")
        greeting.fill("Hello ")
        greeting.press("End")
        page.select_option("#insert-column", label="First Name")
        page.locator("#first-line").press("End")
        page.keyboard.type(", you spent ")
        page.select_option("#insert-column", label="Total Spent")
        page.locator("#first-line").press("End")
        page.keyboard.type(" with us.")
        self.expect(greeting).to_have_value(
            "Hello {{ first_name }}, you spent {{ total_spent }} with us."
        )

    def preview_shows_countries(self, countries: dict[str, str]) -> None:
        """Each previewed number's country, beside the masked number; the second phone column
        read where the first is empty."""
        page = self.page
        self.expect(page.locator("#preview-greeting")).to_have_text(
            re.compile(r"^Hello \w+, you spent [\d.]+ with us\.$")
        )
        rows = page.locator("#preview-rows tr[data-status=ready]")
        self.expect(rows.first).to_be_visible()
        seen = 0
        for row in rows.all():
            cells = row.locator("td").all_inner_texts()
            first = cells[4].removeprefix("Hello ").split(",")[0]
            assert cells[2].split(" ")[0] == countries[first], cells
            seen += 1
        assert seen >= 3
        self.snap("3-form-preview")

    def call_me_first(self, number: str) -> None:
        """One test call: the button off while it runs, the outcome shown where it is."""
        page = self.page
        page.fill("#test-number", number)
        button = page.locator("#test-call")
        top = page.evaluate("window.scrollY")
        button.click()
        self.expect(button).to_be_disabled()
        said = page.locator("#test-call-result")
        self.expect(said).to_be_visible()
        self.expect(said).to_contain_text("Test call placed")
        self.expect(said).to_be_in_viewport()
        self.expect(button).to_be_enabled()
        assert page.evaluate("window.scrollY") >= top  # no reload to the page's top
        sent = [r["body"]["called_to"] for r in self.fake.state()["received"]]
        assert sent == [number]
        self.snap("4-test-call")

    def create(self, file_name: str) -> None:
        page = self.page
        page.click("#save-campaign")
        self.expect(page).to_have_url(re.compile(r"/uploads/[\w-]+/columns$"))
        assert (self.root / "campaigns" / f"{file_name}.toml").exists()
        self.campaign = file_name

    def columns_prechosen(self) -> None:
        """Phone, the second phone, the country and the greeting's columns, all chosen."""
        page = self.page
        role = 'select[data-role="{}"]'
        self.expect(page.locator(role.format("phone"))).to_have_value("Phone")
        self.expect(page.locator(role.format("other_phone"))).to_have_value("Default Address Phone")
        self.expect(page.locator(role.format("country"))).to_have_value(
            "Default Address Country Code"
        )
        self.expect(page.locator("#column-first_name")).to_have_value("First Name")
        self.expect(page.locator("#column-total_spent")).to_have_value("Total Spent")
        _labelled(page, "#columns-form")
        _readable(page)
        self.plain("the column page")
        self.snap("5-columns")

    def check(self, ready: int) -> None:
        page = self.page
        page.click("#save-columns")
        self.expect(page).to_have_url(re.compile(r"/dry-runs/[\w-]+$"))
        self.expect(page.locator("#ready-count")).to_have_text(str(ready))
        assert DEFAULT_API_KEY not in page.content()
        self.snap("6-check")

    def launch(self, ready: int) -> None:
        page = self.page
        page.check("#launch-form input[name=confirm]")
        # A launch waits for a sync the run page started on its own to let go of the ledger.
        page.click("#launch-form button[type=submit]", no_wait_after=True)
        self.expect(page).to_have_url(re.compile(r"/runs/[\w-]+$"), timeout=RUN_BOUND_MS)
        self.expect(page.locator("#run-state")).to_have_text(
            re.compile(r"^Finished"), timeout=RUN_BOUND_MS
        )
        self.expect(page.locator("#progress-text")).to_contain_text(f"{ready} of {ready}")
        self.plain("the finished run")
        self.snap("8-run")

    def plain(self, where: str) -> None:
        """The page as it is now says no status code, file name or engineering word."""
        assert_plain(self.page.content(), where)

    def check_counts_countries(self, ready: int, countries: Counter[str]) -> None:
        """The check: the ready people counted per country, before anyone is called."""
        said = self.page.locator("#countries").inner_text()
        for name, n in countries.items():
            assert f"{name} {n}" in said, said
        assert sum(countries.values()) == ready
        self.plain("the check")

    def launch_until_the_wallet_is_empty(self, ready: int) -> int:
        """The wallet runs dry mid-run: the page says to top up, then Resume, and its counts
        add up to the people of the check. Returns how many were not called."""
        page = self.page
        page.check("#launch-form input[name=confirm]")
        # A launch waits for a sync the run page started on its own to let go of the ledger.
        page.click("#launch-form button[type=submit]", no_wait_after=True)
        self.expect(page).to_have_url(re.compile(r"/runs/[\w-]+$"), timeout=RUN_BOUND_MS)
        state = page.locator("#run-state")
        self.expect(state).to_contain_text(
            "top up your Tabbly wallet, then Resume", timeout=RUN_BOUND_MS
        )
        self.expect(page.locator("#resume")).to_be_visible()
        counts = {
            row.get_attribute("data-status"): int(row.locator("td").inner_text())
            for row in page.locator("#live-counts tr").all()
        }
        assert sum(counts.values()) == ready, counts
        left = int(page.locator("#resume-count").inner_text())
        called = counts.get(Status.TRIGGERED, 0)
        assert 0 < called < ready and left == counts.get(Status.NOT_ATTEMPTED), counts
        self.expect(state).to_contain_text(f"Of the {ready} people in this run: {called} called")
        self.plain("the wallet stop")
        self.snap("7-wallet-stop")
        return left

    def top_up_and_resume(self, left: int) -> None:
        """Topped up, "Resume the N not called": a new check of the rest, then the launch."""
        request = urllib.request.Request(
            self.fake.url.removesuffix(TRIGGER_PATH) + TOPUP_PATH,
            data=json.dumps({"amount": 100}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200
        page = self.page
        page.click("#resume")
        self.expect(page).to_have_url(re.compile(r"/dry-runs/[\w-]+$"))
        self.expect(page.locator("#ready-count")).to_have_text(str(left))
        self.launch(left)

    def sync_with_feedback(self) -> None:
        """Sync says what it did; the chart counts the outcomes."""
        page = self.page
        page.click("#sync")
        self.expect(page.locator("#sync-message")).to_contain_text("Synced:")
        self.expect(page.locator("svg#outcome-chart")).to_be_visible()
        self.plain("the results after a sync")
        self.snap("9-results")

    def results_xlsx(self) -> list[dict[str, Any]]:
        """The results sheet as XLSX, opened as Excel would: the campaign's tab, numbers as
        numbers, dates as dates, a phone number as text."""
        page = self.page
        with page.expect_download() as info:
            page.click("#results-xlsx")
        assert info.value.suggested_filename.endswith(".xlsx")
        book = openpyxl.load_workbook(io.BytesIO(Path(info.value.path()).read_bytes()))
        sheet = book.worksheets[0]
        assert sheet.title == self.campaign
        rows = list(sheet.iter_rows(values_only=True))
        header = [str(h) for h in rows[0]]
        return [dict(zip(header, row, strict=True)) for row in rows[1:]]

    def next_sheet_preselects(self, sheet: Path) -> None:
        """The next upload: the campaign just made is the one chosen."""
        page = self.page
        page.goto(self.base + "/")
        page.set_input_files("input[name=sheet]", str(sheet))
        page.click("#upload-sheet")
        self.expect(page.locator("#use-campaign")).to_have_value(self.campaign)


def _shop_workbook(path: Path, rows: list[Any]) -> Path:
    """The shop export as an XLSX, as a marketer's spreadsheet holds it: "Total Spent" real
    numbers, "Customer Since" real dates, phone numbers written as text each country's way."""
    from tests.test_web_flow import SHOP_COLUMNS

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Customers"
    sheet.append([*SHOP_COLUMNS, "Customer Since"])
    for i, r in enumerate(rows):
        since = datetime(2025, 1 + i % 12, 1 + i)
        sheet.append(
            [r.first, "Smith", r.country, r.other or None, r.phone or None, 120 + i * 7.5, since]
        )
    book.save(path)
    return path


# Each call costs the fake 0.1 and it refuses below 0.2: 0.85 pays the test call and 6 more.
WALLET = 0.85
PAID_CALLS = 6


def test_a_marketer_starts_from_their_shop_export_and_calls_the_right_countries(
    tmp_path: Path,
) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    from tests.test_web_flow import FLOW_ROWS, expected_countries

    shots = SHOTS if os.environ.get("DIALER_SCREENSHOTS") == "1" else None
    if shots is not None:
        shots.mkdir(parents=True, exist_ok=True)
    sheet = _shop_workbook(tmp_path / "shop-customers.xlsx", FLOW_ROWS)
    ready = len(FLOW_ROWS)
    countries = Counter(country_name(country_of(r.true)) for r in FLOW_ROWS)
    root = _project(tmp_path / "project")
    # Latency: the test call takes long enough to see its button off.
    options = ("--latency", "0.4", "--balance", str(WALLET), "--log-delay", "0", "--seed", "7")
    with FakeTabblyProcess(*options) as fake:
        with (
            _serve(root, fake.url, tmp_path / "serve.log", daytime=True) as base,
            sync_api.sync_playwright() as pw,
            _browser_page(pw) as (page, errors),
        ):
            story = SheetFirstStory(page, base, fake, root, sync_api.expect, shots)
            story.log_in()
            story.upload(sheet)
            story.new_campaign_from_sheet("Spring sale 2026")
            story.header_as_written_is_explained()
            story.greeting_from_the_menu()
            story.preview_shows_countries(expected_countries())
            story.call_me_first(OWN_PHONE)
            story.create("spring-sale-2026")
            story.columns_prechosen()
            story.check(ready)
            story.check_counts_countries(ready, countries)
            left = story.launch_until_the_wallet_is_empty(ready)
            story.top_up_and_resume(left)
            story.sync_with_feedback()
            results = story.results_xlsx()
            story.next_sheet_preselects(sheet)
            assert errors == []
        state = fake.state()
    received = state["received"]
    placed = [r["body"]["called_to"] for r in received[1:] if r["status"] == 200]
    # Everyone once, each with their own country's number, across the stop and the resume.
    assert sorted(placed) == sorted(r.true for r in FLOW_ROWS)
    assert left == ready - PAID_CALLS
    # The results sheet opens typed: dialer's counts and costs are numbers, the last call's
    # time a date-time (UTC, says the header), the marketer's numbers and dates stay so, and
    # the number called stays text with its +.
    assert len(results) == ready
    drawn = {c["called_to"]: c["outcome"] for c in state["calls"] if c["called_to"] != OWN_PHONE}
    for row in results:
        assert row["outcome"] == drawn[row["called_to"]]
        assert isinstance(row["called_to"], str) and row["called_to"].startswith("+")
        assert type(row["calls"]) is int and row["calls"] == 1
        assert isinstance(row["last_called_at (UTC)"], datetime)
        assert row["cost"] is None or isinstance(row["cost"], int | float)
        assert isinstance(row["Total Spent"], int | float)
        assert isinstance(row["Customer Since"], datetime)
