"""`make serve-demo` (`dialer demo --page`): the web page to try, against a local fake Tabbly.

    $ make serve-demo
    demo: fake Tabbly at http://127.0.0.1:41227/dashboard/agents/endpoints/trigger-call
    demo: open http://127.0.0.1:38911/ and log in with this token: 3kQ…
    demo: Ctrl-C stops the page and the fake

Starts `dialer fake-tabbly` and `dialer serve` on free ports of 127.0.0.1, in a fresh project
folder (`demo/<UTC time>/` holding a copy of the sample campaign and its sheets' paths). The
page's token is new each time and printed once, never stored. The page's environment points
every campaign (those made on the page too) and the agent menu at the fake, with the fake's key:
nothing reaches tabbly.io. Ctrl-C or SIGTERM stops both, the page first (its runs stop cleanly).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from dialer.campaign.model import ENDPOINT_ENV, LOGS_ENDPOINT_ENV
from dialer.core.statuses import ExitCode, UsageError
from dialer.fake_tabbly import DEFAULT_API_KEY
from dialer.fake_tabbly.command import LISTENING
from dialer.tabbly.agents import AGENTS_ENV
from dialer.web.auth import TOKEN_ENV

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "campaigns" / "example.toml"
SAMPLE_DATA = ROOT / "sample_data"
TRIGGER_PATH = "/dashboard/agents/endpoints/trigger-call"
LOGS_PATH = "/dashboard/agents/endpoints/call-logs-v2"
SERVE_PREFIX = "dialer serve: "
# A wallet for ~1,000 calls, outcomes drawn as the demo's, shown a second after each call.
FAKE_OPTIONS = ("--balance", "100", "--latency", "0.05", "--log-delay", "1")
START_BOUND = 60.0  # seconds each child may take to print its address
STOP_BOUND = 30.0  # seconds each child may take to stop after SIGTERM (runs write reports)
PAGE_LINE = "demo: open {url} and log in with this token: {token}"


def project_folder(folder: Path | None, fake_url: str) -> Path:
    """A folder with `campaigns/example.toml`, its sheet paths absolute and its endpoints the
    fake's; a fresh one under `demo/` unless `folder` is given."""
    if folder is None:
        folder = ROOT / "demo" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    campaigns = folder / "campaigns"
    campaigns.mkdir(parents=True, exist_ok=True)
    target = campaigns / "example.toml"
    if not target.exists():
        text = EXAMPLE.read_text(encoding="utf-8")
        text = text.replace('"../sample_data/', f'"{SAMPLE_DATA.as_posix()}/')
        base = fake_url.split(TRIGGER_PATH)[0]
        text = text.replace("http://127.0.0.1:8787", base)
        target.write_text(text, encoding="utf-8")
    return folder


def _start(
    args: Sequence[str], env: dict[str, str], prefix: str, *, echo: bool = True
) -> tuple[subprocess.Popen[str], str]:
    """A `python -m dialer` child in its own session (a Ctrl-C reaches it once, from here) and
    the rest of its first stdout line after `prefix`; its later output is copied to ours
    (`echo`) or read and dropped."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dialer", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    first: list[str] = []
    got = threading.Event()

    def read() -> None:
        first.append(proc.stdout.readline() if proc.stdout else "")
        got.set()

    threading.Thread(target=read, daemon=True).start()
    line = first[0].strip() if got.wait(START_BOUND) and first else ""
    if not line.startswith(prefix):
        _stop(proc)
        raise UsageError(f"the demo could not start `dialer {args[0]}`: {line or 'no answer'}")
    threading.Thread(target=_copy, args=(proc.stdout, echo), daemon=True).start()
    return proc, line.removeprefix(prefix)


def _copy(stream: IO[str], echo: bool) -> None:
    with stream:
        for line in stream:
            if echo:
                print(line, end="", flush=True)


def _stop(proc: subprocess.Popen[str]) -> int:
    """SIGTERM, then SIGKILL past `STOP_BOUND`: the child's exit code."""
    if proc.poll() is None:
        proc.terminate()
    try:
        return proc.wait(timeout=STOP_BOUND)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def page_environment(fake_url: str, token: str) -> dict[str, str]:
    """The page's environment: every campaign, the call logs and the agent menu at the fake,
    with the fake's key; the page's token; nothing of a real account's kept."""
    base = fake_url.split(TRIGGER_PATH)[0]
    env = {k: v for k, v in os.environ.items() if k != AGENTS_ENV}
    env.update(
        {
            ENDPOINT_ENV: fake_url,
            LOGS_ENDPOINT_ENV: f"{base}{LOGS_PATH}",
            "TABBLY_API_KEY": DEFAULT_API_KEY,
            TOKEN_ENV: token,
        }
    )
    return env


def serve_demo(folder: Path | None = None) -> int:
    """Run the fake and the page until Ctrl-C, SIGTERM, or either of them ends."""
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    fake: subprocess.Popen[str] | None = None
    page: subprocess.Popen[str] | None = None
    try:
        fake, fake_url = _start(
            ["fake-tabbly", "--port", "0", *FAKE_OPTIONS], dict(os.environ), LISTENING, echo=False
        )
        print(f"demo: fake Tabbly at {fake_url}", flush=True)
        root = project_folder(folder, fake_url)
        token = secrets.token_urlsafe(24)
        env = page_environment(fake_url, token)
        args = ["serve", "--root", str(root), "--host", "127.0.0.1", "--port", "0"]
        page, said = _start(args, env, SERVE_PREFIX)
        url = said.split()[0]
        print(f"demo: project folder {root}", flush=True)
        print(PAGE_LINE.format(url=url, token=token), flush=True)
        print("demo: Ctrl-C stops the page and the fake", flush=True)
        for proc in (fake, page):
            threading.Thread(target=lambda p=proc: (p.wait(), stop.set()), daemon=True).start()
        while not stop.wait(3600):
            pass
    finally:
        codes = [_stop(p) for p in (page, fake) if p is not None]  # the page first: its runs
        for s, handler in previous.items():
            signal.signal(s, handler)
    print("demo: stopped", flush=True)
    return int(ExitCode.OK) if all(c in (0, -signal.SIGTERM) for c in codes) else 1
