"""Shared fixtures: a campaign project in a temp folder, the real CLI, a real fake Tabbly."""

from __future__ import annotations

import csv
import io
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dialer.cli import main
from dialer.fake_tabbly import (
    DEFAULT_AGENT_ID,
    DEFAULT_API_KEY,
    DEFAULT_CALL_FROM,
    DEFAULT_ORGANIZATION_ID,
    FakeTabbly,
    FakeTabblyProcess,
    FakeTabblyThread,
)

HEADER = ["customer_id", "first_name", "phone", "order_id"]
FLOOR_LIFT_DIR = str(Path(__file__).parent / "floor_lift")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "legal_floor: keep the legal calling hours floor (tests of it inject a clock)"
    )


def with_pythonpath(env: dict[str, str] | None) -> dict[str, str]:
    """An environment a test hands to the page (whose children get it, not ours): with our
    PYTHONPATH, so the legal floor is lifted in those children as in this process."""
    env = dict(env or {})
    if "PYTHONPATH" in os.environ:
        env.setdefault("PYTHONPATH", os.environ["PYTHONPATH"])
    return env


@pytest.fixture(autouse=True)
def _legal_floor(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite runs against the fake at any hour with Indian numbers: the legal floor is
    lifted (here and in child processes, `floor_lift/sitecustomize.py`) except in tests
    marked `legal_floor`, which judge it with an injected clock."""
    path = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    path = [p for p in path if p != FLOOR_LIFT_DIR]
    if request.node.get_closest_marker("legal_floor") is None:
        from dialer.core.legal_floor import FLOOR

        for country in list(FLOOR):
            monkeypatch.delitem(FLOOR, country)  # type: ignore[attr-defined]
        path.insert(0, FLOOR_LIFT_DIR)
    if path:
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join(path))
    else:
        monkeypatch.delenv("PYTHONPATH", raising=False)


def indian_mobile(i: int) -> str:
    """A distinct valid Indian mobile number per i (E.164)."""
    return f"+9173590{i:05d}"


def contact_rows(n: int, start: int = 0) -> list[list[str]]:
    return [[f"C{i}", f"Name{i}", indian_mobile(i), f"O{i}"] for i in range(start, start + n)]


@dataclass
class Project:
    """A campaign folder laid out like the real one: campaigns/, data/, reports/, state/."""

    root: Path

    @property
    def campaign(self) -> Path:
        return self.root / "campaigns" / "test.toml"

    def write_sheet(
        self,
        rows: Sequence[Sequence[str]],
        header: Sequence[str] = HEADER,
        name: str = "contacts.csv",
    ) -> Path:
        path = self.root / "data" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)
        return path

    def write_campaign(
        self,
        endpoint: str = "http://127.0.0.1:9/unused",
        *,
        extra: str = "",
        dispatch: str = "",
        contacts: str = "",
        source: str = "../data/contacts.csv",
        first_line: str = "Hello {{ first_name }}, about order {{ order_id }}.",
        name: str = "test",
    ) -> Path:
        settings = {
            "rate_per_second": "1000",
            "concurrency": "8",
            "max_attempts": "3",
            "timeout_seconds": "2",
        }
        for line in filter(None, (x.strip() for x in dispatch.splitlines())):
            key, value = (part.strip() for part in line.split("=", 1))
            settings[key] = value
        dispatch_lines = "\n".join(f"{k} = {v}" for k, v in settings.items())
        text = f'''
name = "{name}"
organization_id = {DEFAULT_ORGANIZATION_ID}
agent_id = {DEFAULT_AGENT_ID}
call_from = "{DEFAULT_CALL_FROM}"
first_line = "{first_line}"
instruction = "Order {{{{ order_id }}}} for {{{{ first_name }}}}."
endpoint = "{endpoint}"
{extra}
[contacts]
source = "{source}"
phone_column = "phone"
id_column = "customer_id"
default_region = "IN"
{contacts}
[dispatch]
{dispatch_lines}
'''
        self.campaign.parent.mkdir(parents=True, exist_ok=True)
        self.campaign.write_text(text, encoding="utf-8")
        return self.campaign

    def reports(self) -> list[Path]:
        folder = self.root / "reports"
        return sorted(
            p
            for p in folder.rglob("*")
            if p.suffix in (".csv", ".xlsx") and not p.name.endswith(".partial.csv")
        )

    def report_rows(self, path: Path | None = None) -> list[dict[str, str]]:
        path = path or self.reports()[-1]
        with open(path, encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f))

    @property
    def ledger(self) -> Path:
        return self.root / "state" / "test.sqlite"

    def dials(self) -> dict[str, dict[str, Any]]:
        """The ledger's `dials`, each number's last row as a dict (read without dialer)."""
        conn = sqlite3.connect(self.ledger)
        conn.row_factory = sqlite3.Row
        try:
            found = conn.execute("SELECT * FROM dials ORDER BY id")
            return {r["called_to"]: dict(r) for r in found}
        finally:
            conn.close()


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path / "proj")


@dataclass
class CliResult:
    code: int
    out: str
    err: str


def run_cli(args: Sequence[str], env: dict[str, str] | None = None) -> CliResult:
    """The real CLI in-process (`main(argv)`), with stdout/stderr captured."""
    out, err = io.StringIO(), io.StringIO()
    saved = dict(os.environ)
    os.environ.update(env or {})
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code = main(list(args))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return CliResult(code, out.getvalue(), err.getvalue())


@pytest.fixture
def cli():
    return run_cli


def wait_for(predicate: Callable[[], object], seconds: float, what: str) -> None:
    """Wait on a condition with a bound, never on the clock alone."""
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def wait_for_requests(
    fake: FakeTabbly, n: int, proc: subprocess.Popen[str], seconds: float = 20
) -> None:
    """Until the fake has received `n` requests from a run in a child process, which must
    still be running: a run that died or never sends fails the test, not a later assert."""

    def sent() -> bool:
        assert proc.poll() is None, f"the run ended early: {proc.communicate()}"
        return len(fake.received) >= n

    wait_for(sent, seconds, f"{n} requests from the run")


def sent_once_each(fake: FakeTabbly) -> Counter[str]:
    """Numbers the fake received, each at most once: nobody called twice."""
    sent = Counter(r.body["called_to"] for r in fake.received)
    assert set(sent.values()) <= {1}, f"called twice: {[p for p, n in sent.items() if n > 1]}"
    return sent


_PROGRESS_LINE = re.compile(r"^dialer: \d+ rows done, ")


def error_lines(err: str) -> list[str]:
    """stderr's lines less the progress log lines a run prints every few seconds when it is
    not a terminal: a loaded machine makes a short run slow enough to print one."""
    return [line for line in err.strip().splitlines() if not _PROGRESS_LINE.match(line)]


def fresh_python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`code` run by a new interpreter that imports this checkout's dialer and nothing else
    first: what a command loads on its own (modules, data) is seen there, not this process's."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )


def dialer_subprocess(
    args: Sequence[str], env: dict[str, str] | None = None, **popen: Any
) -> subprocess.Popen[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "dialer", *args], env=full_env, text=True, **popen
    )


@pytest.fixture
def fake() -> Iterator[FakeTabbly]:
    with FakeTabblyThread() as server:
        yield server


KEY_ENV = {"TABBLY_API_KEY": DEFAULT_API_KEY}


@pytest.fixture
def fake_process() -> Iterator[FakeTabblyProcess]:
    """`dialer fake-tabbly` in its own process: its receive times carry no jitter from ours."""
    with FakeTabblyProcess("--latency", "0", "--balance", "1000") as fake:
        yield fake
