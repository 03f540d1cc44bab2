"""Text and files nobody expected (issue 18, items 7 and 16-19): an upstream's control
characters, cells out of Python's range, report names that break a line, files that are pipes
or folders, a ledger from a newer dialer, a console that is not UTF-8. Each through the real CLI.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from subprocess import PIPE, TimeoutExpired

import pytest
from aiohttp import web
from conftest import KEY_ENV, Project, contact_rows, dialer_subprocess, sent_once_each

from dialer.campaign.model import LOGS_ENDPOINT_ENV
from dialer.core.statuses import ExitCode
from dialer.fake_tabbly import DEFAULT_AGENT_ID

# What a hostile upstream puts in its text: a control character and an ANSI clear-screen.
NASTY = "\x01\x1b[2J\x1b[31m"


class Hostile:
    """Trigger-call and call logs on 127.0.0.1 whose every text carries `NASTY`."""

    def __init__(self) -> None:
        self.text = NASTY  # what every text of its answers carries
        self.called: list[str] = []
        self.url = ""
        self.logs_url = ""
        self.logs_error = False  # answer the logs with an error envelope holding NASTY

    async def trigger(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.called.append(body["called_to"])
        room = f"room-{len(self.called)}{self.text}"
        return web.json_response({"success": True, "room_name": room})

    async def logs(self, request: web.Request) -> web.Response:
        if self.logs_error:
            return web.json_response({"status": "error", "message": f"bad{self.text}"}, status=400)
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
        rows = [
            {
                "id": i + 1,
                "called_to": to,
                "called_time": now,
                "call_status": f"completed{self.text}",
                "call_duration": "30",
                "call_summary": f"Spoke{self.text} about it",
                "call_transcript": "Agent: Hello.\nUser: Yes, speaking.",
                "total_call_cost": "0.1",
                "use_agent_id": DEFAULT_AGENT_ID,
                "room_name": f"room-{i + 1}{self.text}",
            }
            for i, to in enumerate(self.called)
        ]
        offset = int(request.query.get("offset", "0"))
        page = rows[offset:] if offset < len(rows) else []
        return web.json_response({"status": "success", "data": page, "total_records": len(rows)})


@contextmanager
def hostile_upstream() -> Iterator[Hostile]:
    """`Hostile` served from its own event loop in a thread, on a free port."""
    upstream = Hostile()
    app = web.Application()
    app.router.add_post("/trigger", upstream.trigger)
    app.router.add_get("/logs", upstream.logs)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        upstream.url = f"http://127.0.0.1:{port}/trigger"
        upstream.logs_url = f"http://127.0.0.1:{port}/logs"

    loop.run_until_complete(start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield upstream
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture
def hostile() -> Iterator[Hostile]:
    with hostile_upstream() as upstream:
        yield upstream


def _env(upstream: Hostile) -> dict[str, str]:
    return {**KEY_ENV, LOGS_ENDPOINT_ENV: upstream.logs_url}


def _xlsx_texts(path: Path) -> list[str]:
    from openpyxl import load_workbook

    sheet = load_workbook(path, read_only=True).worksheets[0]
    return [str(c) for row in sheet.iter_rows(values_only=True) for c in row if c is not None]


def _assert_shown_not_obeyed(*texts: str) -> None:
    for text in texts:
        assert "\x1b" not in text and "\x01" not in text, text


# --- 7: control characters from upstream text ----------------------------------------------


def test_upstream_control_characters_leave_every_xlsx_whole(project: Project, cli, hostile):
    project.write_sheet(contact_rows(3))
    project.write_campaign(hostile.url)
    report = project.root / "reports" / "test" / "mine.xlsx"

    run = cli(["run", str(project.campaign), "--yes", "--report", str(report)], env=_env(hostile))
    results = project.root / "out" / "results.xlsx"
    out = project.root / "out" / "sheet.xlsx"
    synced = cli(
        [
            "sync",
            str(project.campaign),
            "--results",
            str(results),
            "--sheet",
            str(project.root / "data" / "contacts.csv"),
            "--out",
            str(out),
        ],
        env=_env(hostile),
    )

    assert run.code == ExitCode.OK, run.err
    assert synced.code == ExitCode.OK, synced.err
    assert len(hostile.called) == 3
    rooms = [t for t in _xlsx_texts(report) if t.startswith("room-")]
    assert sorted(rooms) == ["room-1[2J[31m", "room-2[2J[31m", "room-3[2J[31m"]
    for path in (results, out):
        texts = _xlsx_texts(path)
        assert "Spoke[2J[31m about it" in texts and f"completed{NASTY}" not in texts
    _assert_shown_not_obeyed(run.out, run.err, synced.out, synced.err)


def test_a_lone_surrogate_from_the_upstream_reaches_no_file_nor_the_console(
    project: Project, cli, hostile
):
    hostile.text = "\ud800"  # JSON "\\ud800": a string no file or ledger can hold
    project.write_sheet(contact_rows(2))
    project.write_campaign(hostile.url)

    run = cli(["run", str(project.campaign), "--yes"], env=_env(hostile))
    results = project.root / "out" / "results.xlsx"
    synced = cli(["sync", str(project.campaign), "--results", str(results)], env=_env(hostile))

    assert run.code == ExitCode.OK, run.err
    assert synced.code == ExitCode.OK, synced.err
    assert "Spoke\ufffd about it" in _xlsx_texts(results)
    conn = sqlite3.connect(project.ledger)
    try:
        rooms = sorted(r[0] for r in conn.execute("SELECT room_name FROM dials"))
    finally:
        conn.close()
    assert rooms == ["room-1\ufffd", "room-2\ufffd"]


def test_an_upstreams_error_is_printed_with_its_control_characters_escaped(
    project: Project, cli, hostile
):
    project.write_sheet(contact_rows(1))
    project.write_campaign(hostile.url)
    assert cli(["run", str(project.campaign), "--yes"], env=_env(hostile)).code == 0
    hostile.logs_error = True

    synced = cli(["sync", str(project.campaign)], env=_env(hostile))

    assert synced.code == ExitCode.INPUT_ERROR
    assert "bad\\x01\\x1b[2J\\x1b[31m" in synced.err and synced.err.count("\n") == 1
    _assert_shown_not_obeyed(synced.out, synced.err)


def test_the_pages_xlsx_download_of_a_report_with_control_characters_is_served(tmp_path):
    from test_web import _login, _run

    from dialer.reports.writer import REPORT_COLUMNS

    async def body(client, server) -> None:
        await _login(client)
        folder = server.root / "reports" / "example"
        folder.mkdir(parents=True)
        stem = "20260101T000000.000Z"
        row = {c: "" for c in REPORT_COLUMNS} | {"row": "2", "status": "triggered"}
        row["call_id"] = f"room-1{NASTY}"
        lines = [",".join(REPORT_COLUMNS), ",".join(row[c] for c in REPORT_COLUMNS)]
        (folder / f"{stem}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")

        answer = await client.get(f"/reports/example/{stem}.xlsx")

        assert answer.status == 200, await answer.text()
        (tmp_path / "got.xlsx").write_bytes(await answer.read())
        assert "room-1[2J[31m" in _xlsx_texts(tmp_path / "got.xlsx")

    _run(tmp_path, body)


def test_the_progress_bar_still_draws_on_a_terminal_that_escapes_outside_text():
    import io

    from dialer.core.console import Printable
    from dialer.engine.progress import Progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    shown = Printable(terminal)
    bar = Progress(out=shown, total=3)
    bar.close()
    shown.write(f"summary: {NASTY}\r\n")

    drawn = terminal.getvalue()
    assert drawn.startswith("\r  0%|") and "\x1b" not in drawn
    assert drawn.endswith("summary: \\x01\\x1b[2J\\x1b[31m\\x0d\n")


# --- 19: a console that is not UTF-8 ---------------------------------------------------------


def test_a_console_that_cannot_print_a_character_keeps_the_runs_exit_code(tmp_path, fake):
    project = Project(tmp_path / "prøjekt-ünï")
    project.write_sheet(contact_rows(3))
    project.write_campaign(fake.url, first_line="Grüß dich {{ first_name }} ✓")
    env = {**KEY_ENV, "PYTHONIOENCODING": "ascii", "LANG": "C", "LC_ALL": "C"}

    proc = dialer_subprocess(
        ["run", str(project.campaign), "--yes"], env=env, stdout=PIPE, stderr=PIPE
    )
    out, err = proc.communicate(timeout=60)

    assert proc.returncode == ExitCode.OK, err
    assert len(sent_once_each(fake)) == 3
    assert "pr\\xf8jekt-\\xfcn\\xef" in out and "Traceback" not in err
    conn = sqlite3.connect(project.ledger)
    try:
        assert conn.execute("SELECT exit_code FROM runs").fetchall() == [(0,)]
    finally:
        conn.close()


# --- 16: XLSX cells out of Python's range ------------------------------------------------------


def _xlsx_sheet(path: Path, rows: list[list[object]], formats: dict[str, str]) -> Path:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    for ref, number_format in formats.items():
        sheet[ref].number_format = number_format
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)
    return path


def test_xlsx_cells_out_of_pythons_range_make_their_row_invalid_not_the_run_crash(
    project: Project, cli
):
    (good, huge, negative, last, early) = (
        [f"C{i}", f"Name{i}", f"+9173590{i:05d}", f"O{i}"] for i in range(5)
    )
    huge[3], negative[3] = 1e15, -1e15  # durations of 1e15 days: beyond Python's timedelta
    last[3] = 2958465.99999999  # 9999-12-31 23:59:59.999: rounding to the second overflows
    early[3] = -5  # before 1900
    sheet = _xlsx_sheet(
        project.root / "data" / "contacts.xlsx",
        [["customer_id", "first_name", "phone", "order_id"], good, huge, negative, last, early],
        {"D3": "[h]:mm:ss", "D4": "[h]:mm:ss", "D5": "yyyy-mm-dd hh:mm:ss", "D6": "yyyy-mm-dd"},
    )
    project.write_campaign(source="../data/contacts.xlsx")

    result = cli(["validate", str(project.campaign)])

    assert result.code == ExitCode.ROW_PROBLEMS, result.err
    rows = {r["row"]: r for r in project.report_rows()}
    assert [rows[n]["status"] for n in "12345"] == ["ready", "invalid", "invalid", "ready", "ready"]
    for n in "23":
        assert "could not be read" in rows[n]["reason"] and "out of range" in rows[n]["reason"]
    assert rows["4"]["order_id"] == "9999-12-31 23:59:59"
    assert sheet.exists()


def test_an_xlsx_header_row_out_of_range_is_one_line_exit_2(project: Project, cli):
    _xlsx_sheet(
        project.root / "data" / "contacts.xlsx",
        [[1e15, "first_name", "phone", "order_id"]],
        {"A1": "[h]:mm:ss"},
    )
    project.write_campaign(source="../data/contacts.xlsx")

    result = cli(["validate", str(project.campaign)])

    assert result.code == ExitCode.INPUT_ERROR
    assert "row 1" in result.err and "out of range" in result.err
    assert result.err.count("\n") == 1


# --- 17: report names that break a line ------------------------------------------------------


@pytest.mark.parametrize("odd", ["\n", "\u2028", "\x85", "\r"])
def test_a_report_elsewhere_whose_name_breaks_a_line_is_found_when_the_ledger_is_lost(
    project: Project, cli, fake, tmp_path, odd
):
    project.write_sheet(contact_rows(3))
    project.write_campaign(fake.url)
    elsewhere = tmp_path / "out" / f"odd{odd}/name{odd}.csv"
    first = cli(["run", str(project.campaign), "--yes", "--report", str(elsewhere)], env=KEY_ENV)
    assert first.code == ExitCode.OK and elsewhere.is_file(), first.err
    project.ledger.write_bytes(b"")  # the ledger is lost

    again = cli(["run", str(project.campaign), "--yes"], env=KEY_ENV)

    assert again.code == ExitCode.INPUT_ERROR and "show 3 people called" in again.err
    rebuilt = cli(["ledger", "rebuild", str(project.campaign)])
    assert rebuilt.code == ExitCode.OK and "called: 3 (triggered 3)" in rebuilt.out, rebuilt
    assert cli(["run", str(project.campaign), "--yes"], env=KEY_ENV).code == ExitCode.OK
    assert len(sent_once_each(fake)) == 3


def test_an_index_line_an_older_dialer_wrote_as_a_bare_path_still_counts(
    project: Project, cli, fake, tmp_path
):
    project.write_sheet(contact_rows(3))
    project.write_campaign(fake.url)
    elsewhere = tmp_path / "out" / "old.csv"
    first = cli(["run", str(project.campaign), "--yes", "--report", str(elsewhere)], env=KEY_ENV)
    assert first.code == ExitCode.OK, first.err
    index = project.root / "reports" / "test" / "other-reports.txt"
    assert index.read_text("ascii") == json.dumps(str(elsewhere)) + "\n"
    index.write_text(f"{elsewhere}\n", encoding="utf-8")  # as dialer wrote it before
    project.ledger.write_bytes(b"")

    again = cli(["run", str(project.campaign), "--yes"], env=KEY_ENV)

    assert again.code == ExitCode.INPUT_ERROR and "show 3 people called" in again.err
    assert len(sent_once_each(fake)) == 3


# --- 18: a pipe or a folder where a file belongs; a ledger from a newer dialer ---------------


def _run_child(project: Project, fake, *more: str) -> tuple[int, str]:
    """`dialer run` in a child, bounded: a run that blocks on a pipe fails the test."""
    proc = dialer_subprocess(
        ["run", str(project.campaign), "--yes", *more],
        env={**KEY_ENV, "TABBLY_API_URL": fake.url},
        stdout=PIPE,
        stderr=PIPE,
    )
    try:
        _, err = proc.communicate(timeout=30)
    except TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("the run hung")
    return proc.returncode, err


def _make(kind: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_a_claims_journal_that_is_not_a_file_is_refused_before_any_call(
    project: Project, cli, fake, kind
):
    project.write_sheet(contact_rows(2))
    project.write_campaign(fake.url)
    assert cli(["run", str(project.campaign), "--yes"], env=KEY_ENV).code == ExitCode.OK
    project.write_sheet(contact_rows(4))
    _make(kind, project.root / "state" / "test.claims")

    code, err = _run_child(project, fake)

    assert code == ExitCode.INPUT_ERROR, err
    assert "test.claims" in err and "not a regular file" in err and err.count("\n") == 1
    assert len(sent_once_each(fake)) == 2  # nobody new called


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_an_index_of_other_reports_that_is_not_a_file_is_refused_before_any_call(
    project: Project, fake, tmp_path, kind
):
    project.write_sheet(contact_rows(2))
    project.write_campaign(fake.url)
    _make(kind, project.root / "reports" / "test" / "other-reports.txt")

    code, err = _run_child(project, fake, "--report", str(tmp_path / "elsewhere.csv"))

    assert code == ExitCode.INPUT_ERROR, err
    assert "other-reports.txt" in err and "not a regular file" in err and err.count("\n") == 1
    assert fake.received == []


def test_a_ledger_made_by_a_newer_dialer_is_refused(project: Project, cli, fake):
    project.write_sheet(contact_rows(2))
    project.write_campaign(fake.url)
    assert cli(["run", str(project.campaign), "--yes"], env=KEY_ENV).code == ExitCode.OK
    conn = sqlite3.connect(project.ledger)
    with conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.close()
    project.write_sheet(contact_rows(4))

    for command in (["run", str(project.campaign), "--yes"], ["status", str(project.campaign)]):
        result = cli(command, env=KEY_ENV)
        assert result.code == ExitCode.INPUT_ERROR, result
        assert "made by a newer dialer" in result.err and result.err.count("\n") == 1
    assert len(sent_once_each(fake)) == 2
