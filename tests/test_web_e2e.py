"""`dialer serve` end to end in real headless Chromium, against `dialer fake-tabbly`.

What a marketing person does, click by click: log in, pick the campaign, upload the sample XLSX,
read the check, confirm, start calling, watch it finish (through a page reload) and download the
report. (The README's screenshots come from test_web_marketing_e2e.py, the page used alone.)
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from dialer.fake_tabbly import DEFAULT_API_KEY, FakeTabblyProcess

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "sample_data"
SHOTS = REPO / "docs" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "e2e-token-0123456789abcdef"
START_BOUND = 15.0
RUN_BOUND_MS = 20_000
# The sample sheet's known shape (sample_data/make_samples.py): 60 rows, of which 49 callable.
EXPECTED_DRY = {"ready": "49", "invalid": "7", "duplicate": "2", "suppressed": "2"}
SHEET_ROWS = 60
CALLABLE = 49


def _project(root: Path) -> Path:
    """A project folder holding the example campaign, its sample paths made absolute."""
    text = (REPO / "campaigns" / "example.toml").read_text("utf-8")
    for name in ("contacts.csv", "dnc.csv"):
        rel = f'"../sample_data/{name}"'
        assert rel in text, f"example.toml no longer points at {rel}"
        text = text.replace(rel, json.dumps(str(SAMPLES / name)))
    (root / "campaigns").mkdir(parents=True)
    (root / "campaigns" / "example.toml").write_text(text, "utf-8")
    return root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


# `dialer serve` whose clock moves with the wall clock but reads 06:30 UTC (noon in India) now.
_SERVE_AT_DAYTIME = """
import sys
from datetime import UTC, datetime
from pathlib import Path
from dialer.web.app import serve
now = datetime.now(UTC)
shift = now.replace(hour=6, minute=30, second=0, microsecond=0) - now
root, port = Path(sys.argv[1]), int(sys.argv[2])
sys.exit(serve(root, "127.0.0.1", port, clock=lambda: datetime.now(UTC) + shift))
"""


@contextmanager
def _serve(
    root: Path,
    fake_url: str,
    log: Path,
    extra_env: dict[str, str] | None = None,
    *,
    daytime: bool = False,
) -> Iterator[str]:
    """`dialer serve` as a process; yields its base URL once the port answers. `daytime`:
    its clock reads around noon in India today (test calls ring only by day), else the
    command itself."""
    port = _free_port()
    env = {
        **os.environ,
        "DIALER_UI_TOKEN": TOKEN,
        "TABBLY_API_KEY": DEFAULT_API_KEY,
        "TABBLY_API_URL": fake_url,
        **(extra_env or {}),
    }
    with open(log, "w", encoding="utf-8") as err:
        command = ["-m", "dialer", "serve", "--root", str(root), "--port", str(port)]
        if daytime:
            command = ["-c", _SERVE_AT_DAYTIME, str(root), str(port)]
        proc = subprocess.Popen(
            [sys.executable, *command],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
            text=True,
        )
    try:
        deadline = time.monotonic() + START_BOUND
        while not _answers(port):
            assert time.monotonic() < deadline, f"dialer serve did not listen: {log.read_text()}"
            # Waiting on the process both paces the poll and notices a server that died.
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = proc.wait(timeout=0.05)
                raise AssertionError(f"dialer serve exited {code}: {log.read_text()}")
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)


@contextlib.contextmanager
def _browser_page(
    pw: Any, *, height: int = 900, timeout_ms: int = 20_000
) -> Iterator[tuple[Any, list[str]]]:
    """Debian's Chromium with one page and the console errors it collects (every page, the
    login form included, must load its script and style cleanly); closed however it ends.
    `timeout_ms` bounds both actions and `expect` (whose own default, 5 s, is too short for a
    preview's child process on a loaded 2-core machine)."""
    from playwright.sync_api import expect

    expect.set_options(timeout=timeout_ms)
    browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    try:
        page = browser.new_context(viewport={"width": 1100, "height": height}).new_page()
        page.set_default_timeout(timeout_ms)
        errors: list[str] = []
        _record_errors(page, errors)
        yield page, errors
    finally:
        browser.close()


def _record_errors(page: Any, errors: list[str]) -> None:
    """Collect script errors and failed loads; the browser's own favicon probe is not the page's."""

    def console(message: Any) -> None:
        url = message.location.get("url", "")
        if message.type == "error" and not url.endswith("/favicon.ico"):
            errors.append(f"{message.text} ({url})")

    page.on("console", console)
    page.on("pageerror", lambda exc: errors.append(str(exc)))


def test_marketing_runs_the_sample_campaign_from_the_page_end_to_end(tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    expect = sync_api.expect

    def snap(page: Any, name: str) -> None:
        """The steps this test once photographed; the README's pictures are the other test's."""

    root = _project(tmp_path / "project")
    with (
        FakeTabblyProcess("--latency", "0.02", "--balance", "100") as fake,
        _serve(root, fake.url, tmp_path / "serve.log") as base,
        sync_api.sync_playwright() as pw,
    ):
        with _browser_page(pw, height=800, timeout_ms=10_000) as (page, errors):
            page.goto(base + "/")
            expect(page).to_have_url(base + "/login")
            page.fill("input[name=token]", TOKEN)
            snap(page, "1-login.png")
            page.click("button:has-text('Log in')")
            expect(page).to_have_url(base + "/")

            page.set_input_files("input[name=sheet]", str(SAMPLES / "contacts.xlsx"))
            snap(page, "2-upload.png")
            page.click("#upload-form button[type=submit]")
            # The sheet first, then the campaign: none preselected before one is used.
            expect(page.locator("#use-campaign")).to_have_value("")
            page.select_option("#use-campaign", "example")
            page.click("#use-campaign-button")
            expect(page).to_have_url(re.compile(r"/dry-runs/[\w-]+$"))

            dry = {
                status: page.locator(f"#dry-counts tr[data-status={status}] td").inner_text()
                for status in EXPECTED_DRY
            }
            assert dry == EXPECTED_DRY
            assert DEFAULT_API_KEY not in page.content()
            expect(page.locator("#ready-count")).to_have_text(str(CALLABLE))
            page.check("#launch-form input[name=confirm]")
            snap(page, "3-check.png")
            page.click("#launch-form button:has-text('Start calling')")
            expect(page).to_have_url(re.compile(r"/runs/[\w-]+$"))
            run_url = page.url
            state = page.locator("#run-state")
            expect(state).to_have_text(re.compile(r"^(starting|calling|Finished)"))
            snap(page, "4-run.png")

            # A reload mid-run reconnects to the same run; its events carry it to the end.
            page.reload()
            expect(page.locator("h1")).to_have_text("Campaign example")
            expect(state).to_have_text(re.compile(r"^Finished"), timeout=RUN_BOUND_MS)
            expect(page.locator("#downloads")).to_be_visible()
            expect(page.locator("#stop-form")).to_be_hidden()
            triggered = page.locator("#live-counts tr[data-status=triggered] td")
            expect(triggered).to_have_text(str(CALLABLE))

            # And after it ended, the server renders the finished run by itself.
            page.reload()
            assert page.url == run_url
            expect(state).to_have_text(re.compile(r"^Finished"))
            expect(triggered).to_have_text(str(CALLABLE))
            expect(page.locator("#downloads")).to_be_visible()
            snap(page, "5-done.png")
            assert DEFAULT_API_KEY not in page.content()

            with page.expect_download() as info:
                page.click("#report-csv")
            download = info.value
            assert download.suggested_filename.endswith(".csv")
            report = list(csv.DictReader(io.StringIO(Path(download.path()).read_text("utf-8"))))
            assert errors == []

        assert len(report) == SHEET_ROWS
        assert sum(r["status"] == "triggered" for r in report) == CALLABLE

        received = fake.state()["received"]
        called = [r["body"]["called_to"] for r in received]
        assert len(called) == CALLABLE
        assert len(set(called)) == CALLABLE, "a number was called twice"
        assert all(r["status"] == 200 for r in received)
