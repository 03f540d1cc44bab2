"""Redial (SPEC 10, `[redial]`): who is called again, when, and how many times; the dry run
shows exactly what the run does. Outcomes here are set in the ledger as a sync leaves them
(the loop through the fake's call logs is in test_outcome_loop.py)."""

from __future__ import annotations

import sqlite3
from collections import Counter
from datetime import UTC, datetime, timedelta

from dialer.core.clock import stamp
from tests.conftest import KEY_ENV, Project, contact_rows, indian_mobile


def _redial(after: float = 0, max_calls: int = 2) -> str:
    return (
        '[redial]\noutcomes = ["no_answer", "busy"]\n'
        f"after_minutes = {after}\nmax_calls = {max_calls}\n"
    )


def _set_outcomes(project: Project, outcomes: dict[str, str | None], ago: float = 0) -> None:
    """What a sync stores: each number's last call's outcome, placed `ago` minutes back."""
    conn = sqlite3.connect(project.ledger)
    placed = stamp(datetime.now(UTC) - timedelta(minutes=ago))
    with conn:
        for number, outcome in outcomes.items():
            conn.execute(
                "UPDATE dials SET outcome = ?, placed_at = ? WHERE id = "
                "(SELECT MAX(id) FROM dials WHERE called_to = ?)",
                (outcome, placed, number),
            )
    conn.close()


def _statuses(project: Project) -> dict[str, tuple[str, str]]:
    return {r["called_to"]: (r["status"], r["reason"]) for r in project.report_rows()}


def test_only_listed_outcomes_are_redialed_until_max_calls(project: Project, cli, fake):
    project.write_sheet(contact_rows(5))
    project.write_campaign(fake.url, extra=_redial())
    assert cli(["run", str(project.campaign), "--yes"], KEY_ENV).code == 0
    n = [indian_mobile(i) for i in range(5)]
    _set_outcomes(
        project,
        {n[0]: "answered", n[1]: "no_answer", n[2]: "busy", n[3]: "failed", n[4]: None},
    )
    dry = cli(["validate", str(project.campaign)])
    assert dry.code == 0
    assert "2 will be called again" in dry.out
    ready = {k for k, (s, _) in _statuses(project).items() if s == "ready"}
    assert ready == {n[1], n[2]}

    second = cli(["run", str(project.campaign), "--yes", "--no-sync"], KEY_ENV)
    assert second.code == 0, second.err
    sent = Counter(b["called_to"] for b in fake.accepted())
    assert sent == Counter({**dict.fromkeys(n, 1), n[1]: 2, n[2]: 2})
    rows = _statuses(project)
    assert rows[n[1]] == ("triggered", "call 2 of 2, last: no answer")
    assert rows[n[2]][0] == "triggered"
    assert rows[n[0]] == ("already_called", "answered (1 of 2 calls made)")
    assert rows[n[3]] == ("already_called", "last call: failed, not a [redial] outcome")
    assert rows[n[4]][0] == "redial_later" and "not synced" in rows[n[4]][1]

    # At the limit: 2 of 2 calls made, never a third.
    _set_outcomes(project, {n[1]: "no_answer", n[2]: "busy"})
    third = cli(["run", str(project.campaign), "--yes", "--no-sync"], KEY_ENV)
    assert third.code == 0
    assert len(fake.accepted()) == 7
    rows = _statuses(project)
    assert rows[n[1]] == ("already_called", "2 of 2 calls made, last: no_answer")
    status = cli(["status", str(project.campaign)])
    assert "last call per person:" in status.out


def test_never_before_after_minutes(project: Project, cli, fake):
    project.write_sheet(contact_rows(2))
    project.write_campaign(fake.url, extra=_redial(after=120))
    assert cli(["run", str(project.campaign), "--yes"], KEY_ENV).code == 0
    n = [indian_mobile(i) for i in range(2)]
    # One unanswered 30 minutes ago (due in 90), one 3 hours ago (due).
    _set_outcomes(project, {n[0]: "no_answer"}, ago=30)
    _set_outcomes(project, {n[1]: "no_answer"}, ago=180)
    result = cli(["run", str(project.campaign), "--yes", "--no-sync"], KEY_ENV)
    assert result.code == 0, result.err
    assert [b["called_to"] for b in fake.accepted()][2:] == [n[1]]
    status, reason = _statuses(project)[n[0]]
    assert status == "redial_later"
    assert reason.startswith("no answer 30 min ago; call 2 of 2 due ")
    assert "redial_later" in result.out


def test_recall_is_not_redial_and_unknown_is_never_redialed(project: Project, cli, fake):
    project.write_sheet(contact_rows(2))
    project.write_campaign(fake.url, extra=_redial())
    fake.script("drop")  # the first request: sent, no answer -> unknown (maybe called)
    first = cli(["run", str(project.campaign), "--yes"], KEY_ENV)
    assert first.code == 1
    placed = {b["called_to"] for b in fake.accepted()}
    (unknown,) = {indian_mobile(i) for i in range(2)} - placed
    _set_outcomes(project, dict.fromkeys(placed, "no_answer"))
    again = cli(["run", str(project.campaign), "--yes", "--no-sync"], KEY_ENV)
    assert again.code == 1
    rows = _statuses(project)
    assert rows[unknown][0] == "unknown"
    assert sorted(b["called_to"] for b in fake.accepted()) == sorted([*placed, *placed])


def test_redial_keys_are_checked_at_load(project: Project, cli):
    project.write_sheet(contact_rows(1))
    for extra, key in (
        ('[redial]\noutcomes = ["answered"]\n', "redial.outcomes"),
        ('[redial]\noutcomes = ["no answer", "later"]\n', "redial.outcomes"),
        ("[redial]\nmax_calls = 0\n", "redial.max_calls"),
        ("[redial]\nafter_minutes = -1\n", "redial.after_minutes"),
        ("[redial]\nevery = 3\n", "redial.every"),
    ):
        project.write_campaign(extra=extra)
        result = cli(["validate", str(project.campaign)])
        assert result.code == 2, extra
        assert key in result.err and len(result.err.strip().splitlines()) == 1


def test_a_call_adopted_from_its_report_counts_toward_max_calls(project: Project, cli, fake):
    project.write_sheet(contact_rows(1))
    project.write_campaign(fake.url, extra=_redial(max_calls=2))
    number = indian_mobile(0)
    assert cli(["run", str(project.campaign), "--yes"], KEY_ENV).code == 0
    _set_outcomes(project, {number: "no_answer"}, ago=10)
    assert cli(["run", str(project.campaign), "--yes", "--no-sync"], KEY_ENV).code == 0
    assert len(fake.accepted()) == 2
    # As if the second run was killed after its report line but before the ledger recorded
    # the answer: the call's claim is left, its dial is not there, the report says triggered.
    conn = sqlite3.connect(project.ledger)
    with conn:
        run = conn.execute("SELECT MAX(id) FROM runs").fetchone()[0]
        conn.execute("DELETE FROM dials WHERE id = (SELECT MAX(id) FROM dials)")
        conn.execute(
            "UPDATE calls SET run_id = ?, status = 'sending' WHERE called_to = ?", (run, number)
        )
        conn.execute("DELETE FROM calls WHERE called_to = ?", (number,))
        conn.execute(
            "INSERT INTO sending (called_to, row, run_id, started_at) VALUES (?, 1, ?, ?)",
            (number, run, stamp(datetime.now(UTC))),
        )
    conn.close()
    third = cli(["run", str(project.campaign), "--yes", "--no-sync"], KEY_ENV)
    assert third.code == 0, third.err
    # Adopted as the report says, with its dial: 2 of 2 calls made, never a third.
    assert len(fake.accepted()) == 2
    conn = sqlite3.connect(project.ledger)
    assert conn.execute("SELECT COUNT(*) FROM dials").fetchone()[0] == 2
    conn.close()
