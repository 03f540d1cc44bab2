"""`dialer run` when its files or its process are abused: full disks, planted symlinks, hostile
upstream text, signals at awkward moments (SPEC 5, 6.3, 7). The fake Tabbly's received
requests, the ledger and the report on disk are the evidence."""

from __future__ import annotations

import io
import json
import signal
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import (
    KEY_ENV,
    Project,
    contact_rows,
    dialer_subprocess,
    error_lines,
    wait_for_requests,
)

from dialer.core.statuses import ExitCode
from dialer.fake_tabbly import FakeTabbly, FakeTabblyThread

CONCURRENCY = 8  # the project fixture's default


@pytest.fixture
def mount_tmpfs() -> Iterator[Callable[..., Path]]:
    """Mount a small tmpfs on a folder (a disk that fills, or a read-only one); unmounted after."""
    mounted: list[Path] = []

    def mount(folder: Path, size: str, *, read_only: bool = False) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        options = f"size={size}" + (",ro" if read_only else "")
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in reversed(mounted):
        # Lazy: an in-process run may still hold a file open there until it is collected.
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _received_numbers(fake: FakeTabbly) -> list[str]:
    return [r.body["called_to"] for r in fake.received if r.body]


def _ledger_people(project: Project) -> dict[str, str]:
    """Every person the ledger knows, with their status (`sending` for a claim)."""
    conn = sqlite3.connect(f"file:{project.ledger}?mode=ro", uri=True)
    try:
        people = dict(conn.execute("SELECT called_to, status FROM calls"))
        people.update((n, "sending") for (n,) in conn.execute("SELECT called_to FROM sending"))
    finally:
        conn.close()
    return people


def _summary(project: Project) -> dict[str, object]:
    report = project.reports()[-1]
    return json.loads(Path(f"{report}.summary.json").read_text(encoding="utf-8"))


def _one_error_line(err: str) -> str:
    lines = error_lines(err)
    assert len(lines) == 1, err
    assert "Traceback" not in err and "never retrieved" not in err
    return lines[0]


# ---- full disks (SPEC 6.3) ----


def test_state_filling_mid_run_reports_placed_calls_as_called_never_not_attempted(
    project: Project, cli, mount_tmpfs
):
    mount_tmpfs(project.root / "state", "400k")  # room for the ledger's first few commits
    with FakeTabblyThread(balance=1000, latency=0.3) as fake:  # several requests in flight
        project.write_sheet(contact_rows(40))
        project.write_campaign(fake.url, dispatch="rate_per_second = 20")
        result = cli(["run", str(project.campaign), "--yes"], env=KEY_ENV)
        received = _received_numbers(fake)

    assert result.code == ExitCode.INPUT_ERROR, result.err
    line = _one_error_line(result.err)
    assert str(project.ledger) in line and "disk is full" in line
    assert 0 < len(received) < 40, "the ledger should fill after some calls, and stop the run"
    statuses = {r["called_to"]: r["status"] for r in project.report_rows()}
    assert len(statuses) == 40
    # A placed call is never `not_attempted`: the next run would call that person again.
    assert {statuses[n] for n in received} <= {"triggered", "unknown"}, Counter(
        statuses[n] for n in received
    )
    # No request left without its claim on disk: nothing was sent after the ledger failed.
    ledger = _ledger_people(project)
    assert all(n in ledger for n in received)
    assert _summary(project)["close_reason"] == "error"


def test_reports_filling_mid_run_stops_sending_at_once(project: Project, cli, mount_tmpfs):
    mount_tmpfs(project.root / "reports", "16k")  # about a hundred report rows
    with FakeTabblyThread(balance=1000, latency=0.02) as fake:
        project.write_sheet(contact_rows(300))
        project.write_campaign(fake.url, dispatch="rate_per_second = 200")
        result = cli(["run", str(project.campaign), "--yes"], env=KEY_ENV)
        received = _received_numbers(fake)
        accepted = len(fake.accepted())

    assert result.code == ExitCode.INPUT_ERROR, result.err
    line = _one_error_line(result.err)
    (report,) = (project.root / "reports").rglob("*.csv")
    assert str(report) in line and "No space left on device" in line
    assert "Exception in callback" not in result.err
    assert 0 < len(received) < 300
    # Every call placed is recorded: the ledger holds them all; the report all but those that
    # were already in flight when it failed (nothing left after).
    ledger = _ledger_people(project)
    assert all(ledger.get(n) == "triggered" for n in received) and accepted == len(received)
    in_report = report.read_text(encoding="utf-8").count(",triggered,")
    assert len(received) <= in_report + CONCURRENCY
    assert "rows: 300" in result.out  # the printed summary still accounts for every row


# ---- everything a run writes is checked before the first call ----


def test_existing_summary_json_refuses_the_run_before_sending(project: Project, cli, fake):
    project.write_sheet(contact_rows(3))
    project.write_campaign(fake.url)
    report = project.root / "reports" / "r.csv"
    report.parent.mkdir(parents=True)
    Path(f"{report}.summary.json").write_text("{}", encoding="utf-8")

    result = cli(["run", str(project.campaign), "--yes", "--report", str(report)], env=KEY_ENV)

    assert result.code == ExitCode.INPUT_ERROR
    assert "summary.json" in _one_error_line(result.err) and "already exists" in result.err
    assert fake.received == []
    assert Path(f"{report}.summary.json").read_text(encoding="utf-8") == "{}"


def test_report_name_too_long_for_its_summary_is_refused_before_sending(
    project: Project, cli, fake
):
    project.write_sheet(contact_rows(3))
    project.write_campaign(fake.url)
    # 249 bytes fit a file name; with ".summary.json" it would not.
    report = project.root / "reports" / ("r" * 245 + ".csv")

    result = cli(["run", str(project.campaign), "--yes", "--report", str(report)], env=KEY_ENV)

    assert result.code == ExitCode.INPUT_ERROR
    assert "too long" in _one_error_line(result.err)
    assert fake.received == []


def test_read_only_report_folder_is_refused_before_sending(
    project: Project, cli, fake, mount_tmpfs
):
    mount_tmpfs(project.root / "reports", "64k", read_only=True)
    project.write_sheet(contact_rows(3))
    project.write_campaign(fake.url)

    result = cli(["run", str(project.campaign), "--yes"], env=KEY_ENV)

    assert result.code == ExitCode.INPUT_ERROR
    assert "Read-only file system" in _one_error_line(result.err)
    assert fake.received == []


def test_report_under_a_file_names_the_true_cause(project: Project, cli, fake):
    project.write_sheet(contact_rows(1))
    project.write_campaign(fake.url)

    result = cli(
        ["run", str(project.campaign), "--yes", "--report", "/dev/full/x.csv"], env=KEY_ENV
    )

    assert result.code == ExitCode.INPUT_ERROR
    line = _one_error_line(result.err)
    assert "/dev/full is not a folder" in line and "File exists" not in line
    assert fake.received == []


def test_planted_symlinks_at_temp_names_are_never_followed(project: Project, cli, fake):
    project.write_sheet(contact_rows(20))
    project.write_campaign(fake.url)
    reports = project.root / "reports"
    reports.mkdir(parents=True)
    victim = project.root / "victim.txt"
    victim.write_text("precious\n", encoding="utf-8")
    planted = [reports / "r.xlsx.tmp", reports / "r.xlsx.partial.csv.sorting"]
    for link in planted:
        link.symlink_to("../victim.txt")

    result = cli(
        ["run", str(project.campaign), "--yes", "--report", str(reports / "r.xlsx")], env=KEY_ENV
    )

    assert result.code == ExitCode.OK, result.err
    assert victim.read_text(encoding="utf-8") == "precious\n"
    assert all(link.is_symlink() for link in planted)
    from openpyxl import load_workbook

    assert load_workbook(reports / "r.xlsx").active.max_row == 21


# ---- untrusted upstream text (SPEC 7) ----

HOSTILE_ROOM = '=HYPERLINK("http://evil.example/","click")'


@contextmanager
def _hostile_upstream() -> Iterator[str]:
    """Answers every trigger with the documented success body, but a formula as room_name."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = json.dumps({"success": True, "room_name": HOSTILE_ROOM}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/trigger-call"
    finally:
        server.shutdown()
        server.server_close()


def test_upstream_room_name_formula_is_defused_in_csv_and_text_in_xlsx(
    project: Project, cli, tmp_path: Path
):
    import csv

    from openpyxl import load_workbook

    project.write_sheet(contact_rows(2))
    with _hostile_upstream() as url:
        project.write_campaign(url)
        csv_report, xlsx_report = tmp_path / "r.csv", tmp_path / "r.xlsx"
        for report in (csv_report, xlsx_report):
            result = cli(
                ["run", str(project.campaign), "--yes", "--recall", "--report", str(report)],
                env=KEY_ENV,
            )
            assert result.code == ExitCode.OK, result.err

    with open(csv_report, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["call_id"] for r in rows] == ["'" + HOSTILE_ROOM] * 2
    ws = load_workbook(xlsx_report).active
    column = [c.value for c in ws[1]].index("call_id")
    cells = [row[column] for row in ws.iter_rows(min_row=2)]
    assert [(c.value, c.data_type) for c in cells] == [(HOSTILE_ROOM, "s")] * 2


# ---- signals (SPEC 5, 6.2) ----


def _catches(pid: int, sig: signal.Signals) -> bool:
    """Whether the process has a handler for `sig` (Linux: SigCgt in /proc/PID/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next(int(x.split()[1], 16) for x in status.splitlines() if x.startswith("SigCgt:"))
    return bool(mask & (1 << (sig - 1)))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_stop_signal_at_startup_exits_130_with_one_line(
    project: Project, fake: FakeTabbly, sig: signal.Signals
):
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc to see when the process can first handle a signal")
    project.write_sheet(contact_rows(5))
    project.write_campaign(fake.url)
    proc = dialer_subprocess(
        ["run", str(project.campaign), "--yes"],
        env=KEY_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    # As early as the process can possibly handle it: while it still imports and reads.
    deadline = time.monotonic() + 10
    while not _catches(proc.pid, sig) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.001)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)

    assert proc.returncode == ExitCode.INTERRUPTED, (proc.returncode, err)
    assert _one_error_line(err) == "dialer: interrupted"
    assert out == ""
    assert fake.received == []


def test_sighup_mid_run_stops_like_sigterm_with_a_summary(project: Project):
    with FakeTabblyThread(latency=0.2) as fake:
        project.write_sheet(contact_rows(40))
        project.write_campaign(fake.url, dispatch="rate_per_second = 10")
        proc = dialer_subprocess(
            ["run", str(project.campaign), "--yes"],
            env=KEY_ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        wait_for_requests(fake, 3, proc)
        proc.send_signal(signal.SIGHUP)  # the operator's SSH session dropped
        out, err = proc.communicate(timeout=20)
        received = _received_numbers(fake)
        accepted = len(fake.accepted())

    assert proc.returncode == ExitCode.INTERRUPTED, err
    assert "Traceback" not in err
    assert "stopped: interrupted" in out
    assert _summary(project)["close_reason"] == "interrupted"
    rows = project.report_rows()
    assert len(rows) == 40
    statuses = {r["called_to"]: r["status"] for r in rows}
    # In-flight requests finished and were recorded: each call placed is in the report.
    assert {statuses[n] for n in received} <= {"triggered", "unknown"}
    assert Counter(statuses.values())["triggered"] == accepted
    assert "sending" not in _ledger_people(project).values()


# ---- consent (SPEC 6.5) ----


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_retry_unknown_says_how_many_may_already_have_been_called(project: Project, cli, fake):
    from dialer.campaign.parse import load_campaign
    from dialer.commands.run import IOContext, Run, run
    from dialer.engine.options import RunOptions

    project.write_sheet(contact_rows(5))
    project.write_campaign(fake.url, dispatch="concurrency = 1")
    fake.script("504", "504")  # the first two calls: maybe placed
    first = cli(["run", str(project.campaign), "--yes"], env=KEY_ENV)
    assert first.code == ExitCode.ROW_PROBLEMS, first.err
    assert Counter(r["status"] for r in project.report_rows())["unknown"] == 2
    sent_before = len(fake.received)

    out = io.StringIO()
    code = run(
        Run(load_campaign(project.campaign), options=RunOptions(retry_unknown=True)),
        IOContext(environ=KEY_ENV, stdin=_Terminal(), out=out, ask=lambda prompt: "n"),
    )

    assert code == ExitCode.OK and len(fake.received) == sent_before
    assert "About to call 2 people" in out.getvalue()
    assert "2 of the people to call may already have been called" in out.getvalue()

    # Without the question (--yes), the same warning is printed before anything is sent.
    yes = cli(["run", str(project.campaign), "--yes", "--retry-unknown"], env=KEY_ENV)
    assert yes.code == ExitCode.OK, yes.err
    assert "--retry-unknown: up to 2 of the people to call may already have been called" in (
        yes.err
    )


def test_nohup_still_keeps_a_run_alive_when_its_terminal_goes(project: Project):
    with FakeTabblyThread() as fake:
        project.write_sheet(contact_rows(10))
        project.write_campaign(fake.url, dispatch="rate_per_second = 10")
        proc = dialer_subprocess(
            ["run", str(project.campaign), "--yes"],
            env=KEY_ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN),  # what nohup does
        )
        wait_for_requests(fake, 2, proc)
        proc.send_signal(signal.SIGHUP)
        _out, err = proc.communicate(timeout=20)

    assert proc.returncode == ExitCode.OK, err
    assert len(fake.accepted()) == 10
