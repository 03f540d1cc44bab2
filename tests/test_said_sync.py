"""What they said (dispositions): a sync stores each call's `call_outcome`, `call_sentiment`
and `call_json_output` in the ledger, the results file and the sheet with outcomes gain
`disposition`, `sentiment`, `opted_out` and one `ai_<key>` column per key of the extraction,
and `dialer sync` counts the dispositions. Calls are placed on the real fake; the logs come
from the fake in both shapes, or from a small server on 127.0.0.1 for hostile extractions."""

from __future__ import annotations

import csv
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import HEADER, KEY_ENV, Project, contact_rows, indian_mobile
from test_hostile_logs import LogPages, log_row, page

from dialer.campaign.model import LOGS_ENDPOINT_ENV
from dialer.core.settings import DEFAULTS
from dialer.core.statuses import ExitCode
from dialer.fake_tabbly import FakeTabbly, FakeTabblyThread
from dialer.fake_tabbly.rules import LOGS_DOCS_PATH, LOGS_V2_PATH, TRIGGER_PATH
from dialer.ledger.dials import Dial
from dialer.ledger.schema import ADDED_DIAL_COLUMNS
from dialer.outcomes.matching import Matcher
from dialer.outcomes.results_file import AI_COLUMNS, RESULT_COLUMNS
from dialer.outcomes.writeback import OUTCOME_COLUMNS
from dialer.sheets.cell_types import plain_header
from dialer.tabbly.log_rows import parse_row

PEOPLE = 8
NUMBERS = [row[2] for row in contact_rows(PEOPLE)]
SAID = dict(zip(NUMBERS, ["phrase", "hindi", "json", "outcome", "decoy"], strict=False))
OPTED_OUT = {n for n, kind in SAID.items() if kind != "decoy"}
JSON, OUTCOME, DECOY = (n for n, kind in SAID.items() if kind in ("json", "outcome", "decoy"))


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("shape", [LOGS_V2_PATH, LOGS_DOCS_PATH])
def test_a_sync_keeps_what_they_said_and_the_results_show_it(
    project: Project, cli, shape: str
) -> None:
    with FakeTabblyThread(balance=1000, said=SAID, seed=3) as fake:
        env = {**KEY_ENV, LOGS_ENDPOINT_ENV: fake.url.removesuffix(TRIGGER_PATH) + shape}
        sheet = project.write_sheet(contact_rows(PEOPLE))
        project.write_campaign(fake.url, dispatch="concurrency = 1")
        campaign = str(project.campaign)
        assert cli(["run", campaign, "--yes"], env).code == ExitCode.OK
        results, back = project.root / "results.csv", project.root / "back.xlsx"

        synced = cli(
            [
                "sync",
                campaign,
                "--results",
                str(results),
                "--sheet",
                str(sheet),
                "--out",
                str(back),
            ],
            env,
        )

    assert synced.code == ExitCode.OK, synced.err
    stored = project.dials()
    assert stored[OUTCOME]["disposition"] == "do_not_call"  # both shapes carry it
    assert json.loads(stored[JSON]["json_output"]) == {"opt_out": "yes", "interested": "no"}
    assert stored[JSON]["sentiment"] == "negative" and stored[DECOY]["sentiment"] == "positive"
    # What they said comes after the outcomes, and the opt-outs line stays.
    said = synced.out.index("what they said (each person's last call's disposition):")
    assert synced.out.index("total cost:") < said
    assert "  do_not_call" in synced.out[said:]
    assert f"opted out on a call: {len(OPTED_OUT)} " in synced.out

    rows = {r["called_to"]: r for r in _csv(results)}
    assert list(next(iter(rows.values()))) == [
        *RESULT_COLUMNS,
        "ai_opt_out",
        "ai_interested",
        *HEADER,
    ]
    assert {n for n, r in rows.items() if r["opted_out"] == "yes"} == OPTED_OUT
    assert {r["opted_out"] for n, r in rows.items() if n not in OPTED_OUT} == {""}
    assert rows[JSON]["ai_opt_out"] == "yes" and rows[JSON]["ai_interested"] == "no"
    assert rows[DECOY]["ai_opt_out"] == "no" and rows[DECOY]["ai_interested"] == "yes"
    assert rows[OUTCOME]["disposition"] == "do_not_call"
    assert rows[JSON]["sentiment"] == "negative"
    quiet = [n for n in NUMBERS if n not in SAID]
    assert all(rows[n]["ai_opt_out"] == "" for n in quiet)

    from openpyxl import load_workbook

    lines = list(load_workbook(back, read_only=True).worksheets[0].iter_rows(values_only=True))
    header = [plain_header(h) for h in lines[0]]
    assert header == [*HEADER, *OUTCOME_COLUMNS, "ai_opt_out", "ai_interested"]
    # A read-only sheet leaves out a row's empty cells at its end.
    back_rows = {str(r[2]): dict(zip(header, r, strict=False)) for r in lines[1:]}
    assert back_rows[JSON]["opted_out"] == "yes" and back_rows[JSON]["ai_interested"] == "no"
    assert back_rows[DECOY].get("opted_out") is None and back_rows[DECOY]["ai_opt_out"] == "no"


@pytest.fixture
def called(project: Project, cli, fake: FakeTabbly) -> Project:
    """Four people called through the fake, in sheet order (no log read yet)."""
    project.write_sheet(contact_rows(4))
    project.write_campaign(fake.url, dispatch="concurrency = 1")
    assert cli(["run", str(project.campaign), "--yes"], KEY_ENV).code == ExitCode.OK
    return project


FORMULA = "=cmd|' /C calc'!A0"
FIFTY = {f"k{i:02d}": i for i in range(50)}  # the most keys an extraction may have
FIFTY_ONE = {f"x{i:02d}": i for i in range(51)}  # one too many: kept as text
HUGE = {"blob": "x" * (DEFAULTS.log_json_chars + 10)}  # too long: kept as text, cut


def test_hostile_extractions_are_kept_bounded_and_defused(called: Project, cli) -> None:
    n = [indian_mobile(i) for i in range(4)]
    rows = [
        log_row(n[0], call_json_output={"next_step": FORMULA, "interested": "yes"}),
        log_row(n[1], call_json_output=json.dumps(FIFTY)),  # the v2 shape's JSON text
        log_row(n[2], call_json_output=FIFTY_ONE),
        log_row(n[3], call_json_output=HUGE),
    ]
    results = called.root / "results.csv"
    xlsx = called.root / "results.xlsx"
    with LogPages(page(rows)) as pages:
        env = {**KEY_ENV, LOGS_ENDPOINT_ENV: pages.url}
        synced = cli(["sync", str(called.campaign), "--results", str(results)], env)
        again = cli(
            ["sync", str(called.campaign), "--results", str(xlsx), "--since", "2026-01-01"], env
        )

    assert synced.code == again.code == ExitCode.OK, synced.err + again.err
    stored = called.dials()
    assert json.loads(stored[n[1]]["json_output"]) == FIFTY
    assert stored[n[2]]["json_output"] == json.dumps(FIFTY_ONE, ensure_ascii=False)
    assert len(stored[n[3]]["json_output"]) == DEFAULTS.log_text_chars  # the text, cut
    assert stored[n[3]]["json_output"].startswith('{"blob": "xxx')

    lines = _csv(results)
    header = list(lines[0])
    ai = [h for h in header if h.startswith("ai_")]
    # First seen first, at most 50: k48 and k49 (the 51st and 52nd keys) are dropped; the
    # 51-key object and the cut text give no column.
    assert ai == ["ai_next_step", "ai_interested", *(f"ai_k{i:02d}" for i in range(48))]
    assert len(ai) == AI_COLUMNS
    assert header[len(RESULT_COLUMNS) : len(RESULT_COLUMNS) + len(ai)] == ai
    by_number = {r["called_to"]: r for r in lines}
    assert by_number[n[0]]["ai_next_step"] == "'" + FORMULA  # defused: Excel shows text
    assert by_number[n[1]]["ai_k07"] == "7" and by_number[n[1]]["ai_next_step"] == ""
    assert all(by_number[n[3]][c] == "" for c in ai)

    from openpyxl import load_workbook

    sheet = load_workbook(xlsx).worksheets[0]
    cells = list(sheet.iter_rows())
    at = [plain_header(c.value) for c in cells[0]].index("ai_next_step")
    first = next(r for r in cells[1:] if r[0].value == n[0])
    assert first[at].value == FORMULA and first[at].data_type == "s"  # text, never a formula


def test_a_sync_counts_the_top_ten_dispositions_and_the_rest_as_other(
    project: Project, cli, fake: FakeTabbly
) -> None:
    project.write_sheet(contact_rows(14))
    project.write_campaign(fake.url)
    assert cli(["run", str(project.campaign), "--yes"], KEY_ENV).code == ExitCode.OK
    said = ["appointment_set"] * 3 + [f"label_{i:02d}" for i in range(11)]
    rows = [log_row(indian_mobile(i), call_outcome=d) for i, d in enumerate(said)]

    with LogPages(page(rows)) as pages:
        synced = cli(["sync", str(project.campaign)], {**KEY_ENV, LOGS_ENDPOINT_ENV: pages.url})

    assert synced.code == ExitCode.OK, synced.err
    block = synced.out.split("what they said (each person's last call's disposition):\n")[1]
    shown = [line.split() for line in block.splitlines() if line.startswith("  ")]
    assert shown == [
        ["appointment_set", "3"],
        *([f"label_{i:02d}", "1"] for i in range(9)),
        ["other", "2"],
    ]


def test_an_older_ledger_gains_the_columns_and_they_fill_at_the_next_sync(
    called: Project, cli
) -> None:
    conn = sqlite3.connect(called.ledger)
    with conn:
        for column, _ in ADDED_DIAL_COLUMNS[1:]:
            conn.execute(f"ALTER TABLE dials DROP COLUMN {column}")
    conn.close()
    number = indian_mobile(0)
    row = log_row(number, call_outcome="callback_requested", call_sentiment="neutral")

    with LogPages(page([row])) as pages:
        synced = cli(["sync", str(called.campaign)], {**KEY_ENV, LOGS_ENDPOINT_ENV: pages.url})

    assert synced.code == ExitCode.OK, synced.err
    stored = called.dials()[number]
    assert (stored["disposition"], stored["sentiment"]) == ("callback_requested", "neutral")


def _dial(number: str, placed_at: datetime) -> Dial:
    return Dial(1, number, "", placed_at, "", "")


def _row(number: str, at: datetime, **fields: Any):
    row = {
        "id": fields.pop("id"),
        "called_to": number,
        "called_time": at.isoformat(),
        "call_duration": "0",
        "use_agent_id": 33,
        **fields,
    }
    return parse_row(row, UTC)


def test_the_best_rows_words_else_the_latest_rows_field_by_field() -> None:
    number, placed = indian_mobile(0), datetime.now(UTC)
    later = placed + timedelta(minutes=1)
    matcher = Matcher([_dial(number, placed)], agent_id=33)
    # Newest first, as pages come: a disposition only on the final row (a failed one), the
    # sentiment on the answered row, an older disposition on the attempt row.
    for row in (
        _row(
            number,
            later + timedelta(minutes=1),
            id="3",
            call_status="failed",
            call_outcome="appointment_set",
        ),
        _row(
            number,
            later,
            id="2",
            call_status="answered",
            call_duration="60",
            call_sentiment="positive",
            call_json_output={"interested": "yes"},
        ),
        _row(
            number,
            placed,
            id="1",
            call_status="no answer",
            call_outcome="no_answer",
            call_sentiment="negative",
        ),
    ):
        assert matcher.feed(row) == 1

    resolved = matcher.results()[1]
    assert resolved.best.outcome.value == "answered"
    assert resolved.sentiment == "positive"  # the best row's own
    assert resolved.disposition == "appointment_set"  # the latest row that has one
    assert json.loads(resolved.json_output) == {"interested": "yes"}
    assert resolved.best.transcript == ""  # nothing else of the rows kept
