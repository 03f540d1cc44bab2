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
import os
import re
from pathlib import Path
from typing import Any

import pytest

from dialer.fake_tabbly import DEFAULT_API_KEY, FakeTabblyProcess
from tests.test_web_e2e import (
    CHROMIUM,
    CHROMIUM_ARGS,
    SAMPLES,
    SHOTS,
    TOKEN,
    _project,
    _record_errors,
    _serve,
)

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
            _serve(root, fake.url, tmp_path / "serve.log", env) as base,
            sync_api.sync_playwright() as pw,
        ):
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_context(viewport={"width": 1100, "height": 900}).new_page()
                page.set_default_timeout(15_000)
                errors: list[str] = []
                _record_errors(page, errors)

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
                    re.compile(r"^finished"), timeout=RUN_BOUND_MS
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
            finally:
                browser.close()

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
