"""`dialer sync`: a run, then the call logs of the real fake read into the ledger, the results
file and the user's sheet with outcomes (SPEC 10)."""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from conftest import HEADER, KEY_ENV, Project, contact_rows, indian_mobile

from dialer.campaign.model import LOGS_ENDPOINT_ENV
from dialer.campaign.parse import load_campaign
from dialer.core.clock import stamp
from dialer.core.statuses import CallOutcome, ExitCode
from dialer.fake_tabbly import DEFAULT_API_KEY, FakeTabbly, FakeTabblyThread
from dialer.ledger import dials
from dialer.ledger.rebuild import open_for_run
from dialer.ledger.sqlite import transaction
from dialer.ledger.store import Ledger
from dialer.outcomes.matching import Resolved
from dialer.outcomes.results_file import RESULT_COLUMNS
from dialer.outcomes.sync import SyncResult, date_range, describe
from dialer.outcomes.writeback import OUTCOME_COLUMNS
from dialer.reports.writer import undefuse
from dialer.sheets.cell_types import plain_header
from dialer.tabbly.log_rows import LogRow

# Every outcome the fake draws here leaves a row that says it (no `failed`, which an attempt
# row "Not Answered" would outrank): what sync finds is what the fake drew.
OUTCOMES = {"answered": 0.4, "no_answer": 0.3, "busy": 0.15, "voicemail": 0.15}


def _fake(shape: str = "v2") -> FakeTabblyThread:
    return FakeTabblyThread(balance=1000, logs_shape=shape, outcomes=OUTCOMES, seed=7)


@pytest.fixture
def logs_fake() -> Iterator[FakeTabbly]:
    with _fake() as server:
        yield server


def _env(fake: FakeTabbly) -> dict[str, str]:
    return {**KEY_ENV, LOGS_ENDPOINT_ENV: fake.logs_url}


def _run(project: Project, cli, fake: FakeTabbly, n: int = 12) -> None:
    project.write_sheet(contact_rows(n))
    # One worker: calls are accepted in sheet order, so a seed draws the same outcome per number.
    project.write_campaign(fake.url, dispatch="concurrency = 1")
    result = cli(["run", str(project.campaign), "--yes"], env=_env(fake))
    assert result.code == ExitCode.OK, result.err


def _dials(project: Project) -> list[dict[str, object]]:
    conn = sqlite3.connect(project.ledger)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM dials ORDER BY id")]
    finally:
        conn.close()


def _results(project: Project) -> list[Path]:
    return sorted((project.root / "reports").rglob("*.results.*"))


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("shape", ["v2", "docs"])
def test_a_sync_after_a_run_finds_the_outcomes_the_fake_drew(project: Project, cli, shape):
    with _fake(shape) as fake:
        _run(project, cli, fake)
        result = cli(["sync", str(project.campaign)], env=_env(fake))
        truth = fake.call_outcomes()

    assert result.code == ExitCode.OK, result.err
    stored = {d["room_name"]: d["outcome"] for d in _dials(project)}
    assert stored == truth and len(truth) == 12
    for d in _dials(project):
        assert d["log_rows"] >= 1 and d["synced_at"] and d["transcript"] is None
        if d["outcome"] == "answered":
            assert d["duration_s"] > 0 and d["summary"] and d["recording_url"]


def test_both_logs_shapes_give_the_same_ledger(tmp_path: Path, cli):
    kept = ("called_to", "outcome", "raw_status", "duration_s", "cost", "summary", "log_rows")
    ledgers = []
    for shape in ("v2", "docs"):
        project = Project(tmp_path / shape)
        with _fake(shape) as fake:
            _run(project, cli, fake)
            assert cli(["sync", str(project.campaign)], env=_env(fake)).code == 0
        ledgers.append([{k: d[k] for k in kept} for d in _dials(project)])
    assert ledgers[0] == ledgers[1] and len(ledgers[0]) == 12


def test_the_console_shows_counts_answer_rate_and_cost(project: Project, cli, logs_fake):
    _run(project, cli, logs_fake)

    result = cli(["sync", str(project.campaign)], env=_env(logs_fake))

    assert result.code == 0, result.err
    truth = list(logs_fake.call_outcomes().values())
    for outcome in CallOutcome:
        assert f"  {outcome.value:<10} {truth.count(outcome.value)}\n" in result.out
    answered = truth.count("answered")
    assert f"answer rate: {answered / len(truth):.1%} ({answered} of {len(truth)} people" in (
        result.out
    )
    cost = sum(d["cost"] or 0 for d in _dials(project))
    assert cost > 0 and f"total cost: {cost:.2f}\n" in result.out
    assert f"results: {_results(project)[0]} (12 people)" in result.out


def test_results_file_has_one_line_per_person_with_the_sheet_columns(
    project: Project, cli, logs_fake
):
    _run(project, cli, logs_fake, n=6)
    assert cli(["sync", str(project.campaign)], env=_env(logs_fake)).code == 0

    [path] = _results(project)
    rows = _csv(path)
    assert list(rows[0]) == [*RESULT_COLUMNS, *HEADER]
    assert [r["called_to"] for r in rows] == [indian_mobile(i) for i in range(6)]  # sheet order
    by_room = {d["called_to"]: d for d in _dials(project)}
    for i, row in enumerate(rows):
        dial = by_room[row["called_to"]]
        assert row["customer_id"] == row["custom_identifiers"] == f"C{i}"
        assert row["first_name"] == f"Name{i}" and row["order_id"] == f"O{i}"
        assert row["calls"] == "1" and row["last_called_at"] == dial["placed_at"]
        assert row["outcome"] == dial["outcome"] and row["raw_status"] == dial["raw_status"]
        assert row["duration_s"] == str(dial["duration_s"])


def test_results_xlsx_and_a_gone_report_leaves_the_sheet_columns_blank(
    project: Project, cli, logs_fake
):
    _run(project, cli, logs_fake, n=3)
    for report in project.reports():
        report.unlink()
    out = project.root / "results.xlsx"

    result = cli(["sync", str(project.campaign), "--results", str(out)], env=_env(logs_fake))

    assert result.code == 0, result.err
    from openpyxl import load_workbook

    sheet = load_workbook(out, read_only=True).worksheets[0]
    lines = [list(r) for r in sheet.iter_rows(values_only=True)]
    # No report left: no sheet columns to add; the last call's time is a UTC date-time.
    assert [plain_header(h) for h in lines[0]] == list(RESULT_COLUMNS)
    assert "last_called_at (UTC)" in lines[0]
    assert [r[0] for r in lines[1:]] == [indian_mobile(i) for i in range(3)]
    assert all(r[2] == 1 for r in lines[1:])  # `calls` is a number


def test_a_person_called_twice_has_both_calls_and_the_last_runs_sheet_row(
    project: Project, cli, logs_fake
):
    _run(project, cli, logs_fake, n=2)
    elsewhere = project.root / "elsewhere" / "second.xlsx"
    elsewhere.parent.mkdir()
    # Another id: the fake logs both calls in the same second, which only the id tells apart.
    project.write_sheet([["C0b", "Renamed", indian_mobile(0), "O7"]], name="again.csv")
    again = cli(
        ["run", str(project.campaign), "--yes", "--recall", "--contacts",
         str(project.root / "data" / "again.csv"), "--report", str(elsewhere)],
        env=_env(logs_fake),
    )  # fmt: skip
    assert again.code == 0, again.err

    result = cli(["sync", str(project.campaign), "--transcripts"], env=_env(logs_fake))

    assert result.code == 0, result.err
    rows = {r["called_to"]: r for r in _csv(_results(project)[0])}
    twice, once = rows[indian_mobile(0)], rows[indian_mobile(1)]
    last = _dials(project)[-1]
    assert twice["calls"] == "2" and twice["last_called_at"] == last["placed_at"]
    assert twice["outcome"] == logs_fake.call_outcomes()[last["room_name"]]
    # The sheet columns of the last call's row, read from that run's XLSX report.
    assert (twice["customer_id"], twice["first_name"], twice["order_id"]) == (
        "C0b",
        "Renamed",
        "O7",
    )
    assert (once["calls"], once["first_name"]) == ("1", "Name1")
    costs = [d["cost"] for d in _dials(project) if d["called_to"] == indian_mobile(0)]
    assert float(twice["cost"]) == pytest.approx(sum(c or 0 for c in costs))
    for dial in _dials(project):
        assert bool(dial["transcript"]) == (dial["outcome"] == "answered")


def test_nothing_pending_reads_no_logs_but_writes_the_results(project: Project, cli, logs_fake):
    _run(project, cli, logs_fake, n=3)
    assert cli(["sync", str(project.campaign)], env=_env(logs_fake)).code == 0
    asked = logs_fake.logs.requests

    again = cli(["sync", str(project.campaign)], env=_env(logs_fake))

    assert again.code == 0, again.err
    assert logs_fake.logs.requests == asked
    assert "call logs not read" in again.out
    assert len(_results(project)) == 2


def test_a_campaign_never_run_is_said_so_and_no_ledger_is_made(project: Project, cli, logs_fake):
    project.write_sheet(contact_rows(1))
    project.write_campaign(logs_fake.url)

    result = cli(["sync", str(project.campaign)], env=_env(logs_fake))

    assert result.code == 0 and "never run" in result.out
    assert not project.ledger.exists() and _results(project) == []


def test_a_logs_error_is_one_line_exit_2_and_writes_nothing(project: Project, cli, logs_fake):
    _run(project, cli, logs_fake, n=3)
    logs_fake.script_logs("error")

    result = cli(["sync", str(project.campaign)], env=_env(logs_fake))

    assert result.code == ExitCode.INPUT_ERROR
    assert result.err.count("\n") == 1 and result.err.startswith("dialer: error: ")
    assert _results(project) == []
    assert {d["outcome"] for d in _dials(project)} == {None}


def test_the_key_is_in_no_output_or_file_even_when_the_upstream_echoes_it(
    project: Project, cli, logs_fake
):
    _run(project, cli, logs_fake, n=3)
    logs_fake.script_logs("echo")
    refused = cli(["sync", str(project.campaign)], env=_env(logs_fake))
    done = cli(["sync", str(project.campaign), "--transcripts"], env=_env(logs_fake))

    assert refused.code == 2 and done.code == 0, done.err
    for text in (refused.out, refused.err, done.out, done.err):
        assert DEFAULT_API_KEY not in text
    for path in project.root.rglob("*"):
        if path.is_file():
            assert DEFAULT_API_KEY.encode() not in path.read_bytes(), path


def test_a_sync_while_a_run_holds_the_ledger_is_refused(project: Project, cli, logs_fake):
    _run(project, cli, logs_fake, n=2)
    campaign = load_campaign(project.campaign)

    with open_for_run(campaign):
        result = cli(["sync", str(project.campaign)], env=_env(logs_fake))

    assert result.code == ExitCode.INPUT_ERROR
    assert "another run" in result.err and result.err.count("\n") == 1
    assert logs_fake.logs.requests == 0 and _results(project) == []


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_sheet_out_appends_the_outcomes_to_every_row(project: Project, cli, logs_fake, suffix):
    _run(project, cli, logs_fake, n=3)
    # The user's own list: other spellings of the numbers, a stranger, a formula-looking cell.
    theirs = project.write_sheet(
        [
            ["C0", "=HYPERLINK(1)", "07359000000", "O0"],
            ["X9", "Stranger", "+91 99999 99999", "O9"],
            ["C2", "Name2", "+91 73590-00002", "O2"],
        ],
        name="mine.csv",
    )
    out = project.root / f"mine-called{suffix}"

    result = cli(
        ["sync", str(project.campaign), "--sheet", str(theirs), "--out", str(out)],
        env=_env(logs_fake),
    )

    assert result.code == 0, result.err
    assert f"sheet with outcomes: {out} (3 rows)" in result.out
    if suffix == ".csv":
        rows = [list(r.values()) for r in _csv(out)]
        header = list(_csv(out)[0])
        assert rows[0][1] == "'=HYPERLINK(1)"  # defused: Excel shows it as text
    else:
        from openpyxl import load_workbook

        sheet = load_workbook(out).worksheets[0]
        lines = [[c for c in r] for r in sheet.iter_rows()]
        header = [c.value for c in lines[0]]
        rows = [["" if c.value is None else c.value for c in r] for r in lines[1:]]
        assert lines[1][1].data_type == "s" and rows[0][1] == "=HYPERLINK(1)"
        assert all(r[2].data_type == "s" for r in lines[1:])  # phones are text cells
        rows = [[str(v) for v in r] for r in rows]
        header = [plain_header(h) for h in header]
    assert header == [*HEADER, *OUTCOME_COLUMNS]
    outcomes = {d["called_to"]: d["outcome"] for d in _dials(project)}
    at = len(HEADER)
    assert rows[0][at] == outcomes[indian_mobile(0)] and rows[0][at + 1] == "1"
    assert rows[1][at:] == [""] * len(OUTCOME_COLUMNS)  # never called
    assert rows[2][at] == outcomes[indian_mobile(2)]
    assert undefuse(rows[2][2]) == "+91 73590-00002"  # the user's own spelling kept


def test_an_xlsx_sheet_with_numeric_phone_cells_finds_its_people(project: Project, cli, logs_fake):
    from openpyxl import Workbook, load_workbook

    _run(project, cli, logs_fake, n=2)
    theirs = project.root / "data" / "mine.xlsx"
    book = Workbook()
    book.active.append(HEADER)
    book.active.append(["C1", "Name1", 7359000001, "O1"])  # typed as a number, as Excel does
    book.save(theirs)
    out = project.root / "mine-called.xlsx"

    result = cli(
        ["sync", str(project.campaign), "--sheet", str(theirs), "--out", str(out)],
        env=_env(logs_fake),
    )

    assert result.code == 0, result.err
    [_header, line] = load_workbook(out).worksheets[0].iter_rows()
    assert line[2].value == "7359000001" and line[2].data_type == "s"
    outcome = {d["called_to"]: d["outcome"] for d in _dials(project)}[indian_mobile(1)]
    assert line[len(HEADER)].value == outcome


@pytest.mark.parametrize(
    "args",
    [
        ["--sheet", "x.csv"],
        ["--out", "x.csv"],
        ["--since", "2026-13-01"],
        ["--since", "yesterday"],
    ],
)
def test_bad_options_are_one_line_usage_errors(project: Project, cli, args):
    project.write_sheet(contact_rows(1))
    project.write_campaign()

    result = cli(["sync", str(project.campaign), *args], env=KEY_ENV)

    assert result.code == ExitCode.INPUT_ERROR and result.err.count("\n") == 1


def test_out_must_not_be_the_sheet_nor_exist(project: Project, cli, logs_fake):
    sheet = project.write_sheet(contact_rows(1))
    project.write_campaign(logs_fake.url)
    taken = project.write_sheet(contact_rows(1), name="taken.csv")

    same = cli(["sync", str(project.campaign), "--sheet", str(sheet), "--out", str(sheet)],
               env=_env(logs_fake))  # fmt: skip
    exists = cli(["sync", str(project.campaign), "--sheet", str(sheet), "--out", str(taken)],
                 env=_env(logs_fake))  # fmt: skip

    assert same.code == exists.code == ExitCode.INPUT_ERROR
    assert "is the --sheet itself" in same.err and "already exists" in exists.err
    assert logs_fake.logs.requests == 0


# ---- the dials table's rules, on a real ledger ---------------------------------------------

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


def _row(outcome: CallOutcome, status: str, duration: int | None = None, **more) -> LogRow:
    fields = {
        "log_id": "",
        "called_to": "+917359000001",
        "called_at": NOW,
        "raw_status": status,
        "outcome": outcome,
        "duration_s": duration,
        "cost": 0.25,
        "summary": "",
        "transcript": "",
        "recording_url": "",
        "participant_identity": "",
        "room_name": "",
        "custom_identifiers": "",
        "agent_id": None,
        "call_outcome": "",
        **more,
    }
    return LogRow(**fields)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger.open(tmp_path / "x.sqlite", "x") as opened:
        conn = opened.connection
        with transaction(conn):
            conn.executemany(
                "INSERT INTO dials (called_to, custom_identifiers, placed_at, room_name) "
                "VALUES (?, ?, ?, ?)",
                [
                    ("+917359000001", "C1", stamp(NOW - timedelta(days=2)), "r1"),
                    ("+917359000001", "C1", stamp(NOW - timedelta(hours=1)), "r2"),
                    ("+917359000002", "C2", stamp(NOW - timedelta(hours=3)), "r3"),
                ],
            )
        yield opened


def _stored(ledger: Ledger, dial_id: int) -> tuple:
    return ledger.connection.execute(
        "SELECT outcome, raw_status, transcript FROM dials WHERE id = ?", (dial_id,)
    ).fetchone()


def test_a_resolved_dial_changes_only_for_a_better_outcome(ledger: Ledger):
    conn = ledger.connection
    busy = Resolved(_row(CallOutcome.BUSY, "Busy"), ["Busy"], 1)
    assert dials.store(conn, {1: busy}, transcripts=False, synced_at="t1") == 1

    worse = Resolved(_row(CallOutcome.NO_ANSWER, "Missed"), ["Missed"], 1)
    assert dials.store(conn, {1: worse}, transcripts=False, synced_at="t2") == 0
    assert _stored(ledger, 1) == ("busy", "Busy", None)

    both = Resolved(_row(CallOutcome.ANSWERED, "completed", 60), ["Not Answered", "completed"], 2)
    assert dials.store(conn, {1: both}, transcripts=False, synced_at="t3") == 1
    assert _stored(ledger, 1) == ("answered", "Not Answered | completed", None)


def test_transcripts_are_kept_only_when_asked(ledger: Ledger):
    conn = ledger.connection
    said = Resolved(
        _row(CallOutcome.ANSWERED, "answered", 30, transcript="Agent: hi"), ["answered"], 1
    )
    dials.store(conn, {2: said}, transcripts=False, synced_at="t1")
    assert _stored(ledger, 2)[2] is None
    dials.store(conn, {2: said}, transcripts=True, synced_at="t2")  # the same row, now asked
    assert _stored(ledger, 2)[2] == "Agent: hi"


def test_counts_answer_rate_cost_and_people_use_each_persons_last_call(ledger: Ledger):
    conn = ledger.connection
    answered = Resolved(_row(CallOutcome.ANSWERED, "answered", 30), ["answered"], 1)
    missed = Resolved(_row(CallOutcome.NO_ANSWER, "Missed"), ["Missed"], 1)
    dials.store(conn, {1: answered, 3: missed}, transcripts=False, synced_at="t")

    counts = dials.last_outcomes(conn)
    # +..01's last call (dial 2) is still pending; its first answered call does not count.
    assert counts[CallOutcome.PENDING] == 1 and counts[CallOutcome.NO_ANSWER] == 1
    assert counts[CallOutcome.ANSWERED] == 0
    assert dials.answer_rate(counts) == 0.0
    assert dials.total_cost(conn) == 0.5
    first = dials.person(conn, "+917359000001")
    assert first is not None and first.calls == 2 and first.cost == 0.25
    assert first.outcome is CallOutcome.PENDING and first.last_called_at == stamp(
        NOW - timedelta(hours=1)
    )
    assert dials.person(conn, "+10000000000") is None
    assert dials.oldest_pending(conn) == NOW - timedelta(hours=1)


def test_the_date_range_starts_the_day_before_the_oldest_pending_call():
    oldest = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)
    assert date_range(None, oldest, NOW, UTC) == (date(2026, 11, 19), date(2026, 12, 2))
    assert date_range(None, None, NOW, UTC) is None
    assert date_range(date(2026, 11, 1), None, NOW, UTC) == (date(2026, 11, 1), date(2026, 12, 2))
    # Never further back than the lookback; a pending call from a year ago stays pending.
    assert date_range(None, NOW - timedelta(days=365), NOW, UTC)[0] == date(2026, 11, 1)


def test_describe_is_one_line_for_a_run_that_syncs_first():
    counts = dict.fromkeys(CallOutcome, 0) | {CallOutcome.ANSWERED: 3, CallOutcome.BUSY: 1}
    result = SyncResult(counts, 9, 2, 1, 1.5, 0.75, (date(2026, 11, 30), date(2026, 12, 2)))
    assert describe(result) == (
        "3 answered, 1 busy; answer rate 75.0%; total cost 1.50 (9 log row(s) matched from "
        "1 page(s))"
    )
    nothing = SyncResult(dict.fromkeys(CallOutcome, 0), 0, 0, 0, 0.0, None)
    assert describe(nothing).startswith("nobody called; answer rate -;")


def test_hopeless_dates_and_zones_are_one_line_exit_2(project, cli) -> None:
    project.write_sheet(contact_rows(1))
    project.write_campaign()
    result = cli(["sync", str(project.campaign), "--since", "0001-01-01"])
    assert result.code == 2 and "--since" in result.err
    project.write_campaign(extra='logs_timezone = "America"')
    result = cli(["sync", str(project.campaign)])
    assert result.code == 2 and "logs_timezone" in result.err
    assert len(result.err.strip().splitlines()) == 1
