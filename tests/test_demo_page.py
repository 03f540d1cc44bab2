"""`dialer demo --page` (`make serve-demo`): one URL and a token to open, the page logged into
over HTTP, both servers gone after SIGTERM."""

from __future__ import annotations

import http.cookiejar
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from pathlib import Path

from dialer.commands.demo_page import PAGE_LINE

START_BOUND = 60.0
FAKE_LINE = re.compile(r"^demo: fake Tabbly at http://127\.0\.0\.1:(\d+)/")
OPEN_LINE = re.compile(
    "^"
    + re.escape(PAGE_LINE)
    .replace(r"\{url\}", r"(http://127\.0\.0\.1:(\d+)/)")
    # token_urlsafe(24): 32 characters of the URL-safe alphabet
    .replace(r"\{token\}", r"([A-Za-z0-9_-]{24,})")
    + "$"
)


def _lines(proc: subprocess.Popen[str]) -> queue.Queue[str | None]:
    """The child's stdout lines as they come; None once it is closed."""
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return lines


def _closed(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_demo_page_prints_one_url_and_token_logs_in_and_stops_both_servers(tmp_path: Path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "dialer", "demo", "--page", "--folder", str(tmp_path / "site")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = _lines(proc)
        fake_port = url = token = None
        said: list[str] = []
        while url is None:
            line = lines.get(timeout=START_BOUND)
            assert line is not None, f"the demo ended early: {said}"
            said.append(line)
            if found := FAKE_LINE.match(line):
                fake_port = int(found.group(1))
            if found := OPEN_LINE.match(line):
                url, page_port, token = found.group(1), int(found.group(2)), found.group(3)
        assert fake_port is not None and fake_port != page_port
        assert sum(token in line for line in said) == 1  # printed once

        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        body = urllib.parse.urlencode({"token": token}).encode()
        with opener.open(f"{url}login", data=body, timeout=30) as answer:
            page = answer.read().decode()
        assert answer.url == url  # the login went through to the campaign list
        assert "example" in page and "Log out" in page
        campaign = (tmp_path / "site" / "campaigns" / "example.toml").read_text("utf-8")
        assert f'endpoint = "http://127.0.0.1:{fake_port}/' in campaign  # the fake, not 8787

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert _closed(page_port) and _closed(fake_port)
    assert token not in proc.stderr.read()
