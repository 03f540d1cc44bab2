"""Two campaigns of one state folder, the same agent, the same people and ids (SPEC 10, issue 17
part 2): a log row belongs to at most one call of the folder, so one campaign's sync never
takes the other's rows, and its calls wait for their own rows. The fake's own record of what
each call became (`fake.logs.calls()`) and of what it was sent (`fake.accepted()`) is the
truth every assertion compares to."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import KEY_ENV, Project, contact_rows, wait_for

from dialer.campaign.model import LOGS_ENDPOINT_ENV
from dialer.campaign.parse import load_campaign
from dialer.core.clock import stamp
from dialer.core.statuses import ExitCode
from dialer.fake_tabbly import DEFAULT_AGENT_ID, FakeTabbly, FakeTabblyThread
from dialer.outcomes.shared_agent import other_dials
from dialer.outcomes.sync import UPDATED_LINE

# No `failed` and no `voicemail`: what a sync stores for a call is what the fake drew.
OUTCOMES = {"answered": 0.5, "no_answer": 0.3, "busy": 0.2}
REDIALED = {"no_answer", "busy"}
PEOPLE = 20
# Tabbly's `called_time` is cut to the second: two calls to one person less than a second or
# two apart cannot be told apart by their rows. The recipe runs d 2 s after e.
GAP_SECONDS = 2.0


@pytest.fixture
def fake() -> Iterator[FakeTabbly]:
    with FakeTabblyThread(balance=1000, outcomes=OUTCOMES, seed=5) as server:
        yield server


def _campaign(project: Project, name: str, endpoint: str = "", extra: str = "") -> Path:
    """campaigns/<name>.toml over the one sheet, with the fake's agent (the same for all)."""
    endpoint = endpoint or "http://127.0.0.1:9/unused"
    project.write_campaign(endpoint, name=name, extra=extra, dispatch="concurrency = 2")
    return project.campaign.rename(project.campaign.with_name(f"{name}.toml"))


def _dials(project: Project, name: str) -> list[dict[str, object]]:
    conn = sqlite3.connect(project.root / "state" / f"{name}.sqlite")
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM dials ORDER BY id")]
    finally:
        conn.close()


def _drawn(fake: FakeTabbly) -> dict[str, str]:
    """{room_name: outcome}: what the fake drew for each call."""
    return {c["room_name"]: c["outcome"] for c in fake.logs.calls()}


def test_a_sync_never_takes_another_campaigns_rows_and_waits_for_its_own(
    project: Project, cli, fake: FakeTabbly
) -> None:
    env = {**KEY_ENV, LOGS_ENDPOINT_ENV: fake.logs_url}
    project.write_sheet(contact_rows(PEOPLE))
    e = _campaign(project, "e", fake.url)
    redial = '[redial]\noutcomes = ["no_answer", "busy"]\nafter_minutes = 0\nmax_calls = 3\n'
    d = _campaign(project, "d", fake.url, extra=redial)

    assert cli(["run", str(e), "--yes"], env).code == ExitCode.OK
    assert len(fake.accepted()) == PEOPLE
    # Only e's rows are out when d syncs: d's own are held back (a log delay, no clock).
    fake.logs.hold()
    e_last = datetime.fromisoformat(fake.logs.calls()[-1]["called_at"]).timestamp()
    wait_for(lambda: time.time() >= e_last + GAP_SECONDS, 10, "d's calls 2 s after e's")
    first = cli(["run", str(d), "--yes"], env)
    assert first.code == ExitCode.OK, first.err
    assert len(fake.accepted()) == 2 * PEOPLE

    early = cli(["sync", str(d)], env)

    assert early.code == ExitCode.OK, early.err
    assert UPDATED_LINE.findall(early.out) == ["0"], early.out
    assert "other campaigns' calls with this agent" in early.out
    assert all(x["outcome"] is None for x in _dials(project, "d"))  # each still waits
    assert all(x["outcome"] is None for x in _dials(project, "e"))  # read, never written

    # d's rows come out: the next run reads them (its calls are still pending), then calls
    # back exactly the people whose own call with d went unanswered.
    fake.logs.hold(False)
    second = cli(["run", str(d), "--yes"], env)

    assert second.code == ExitCode.OK, second.err
    drawn = _drawn(fake)
    d_first = _dials(project, "d")[:PEOPLE]  # the first run's calls; the redials follow
    d_calls = {x["called_to"]: drawn[str(x["room_name"])] for x in d_first}
    e_calls = {x["called_to"]: drawn[str(x["room_name"])] for x in _dials(project, "e")}
    assert len(d_calls) == len(e_calls) == PEOPLE
    # The recipe bites: people who answered d's call though e's went unanswered.
    answered_d = {n for n, o in d_calls.items() if o == "answered"}
    assert answered_d & {n for n, o in e_calls.items() if o in REDIALED}
    redialed = [b["called_to"] for b in fake.accepted()[2 * PEOPLE :]]
    assert not answered_d & set(redialed)
    assert sorted(redialed) == sorted(n for n, o in d_calls.items() if o in REDIALED)
    assert {x["called_to"]: x["outcome"] for x in d_first} == d_calls

    # And e, synced now with every row out, finds its own outcomes, none of d's.
    assert cli(["sync", str(e)], env).code == ExitCode.OK
    assert {x["called_to"]: x["outcome"] for x in _dials(project, "e")} == e_calls


def _ledger(project: Project, name: str, *numbers: str) -> None:
    """A ledger with one dial per number, placed now (the tables `other_dials` reads)."""
    path = project.root / "state" / f"{name}.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT INTO meta VALUES ('campaign', ?)", (name,))
        conn.execute(
            "CREATE TABLE dials (id INTEGER PRIMARY KEY, called_to TEXT, custom_identifiers "
            "TEXT, placed_at TEXT, room_name TEXT, participant_identity TEXT)"
        )
        conn.executemany(
            "INSERT INTO dials VALUES (NULL, ?, 'C', ?, ?, '')",
            [(n, stamp(datetime.now(UTC)), f"room-{name}-{n}") for n in numbers],
        )
    conn.close()


def test_other_dials_are_the_folders_other_campaigns_with_this_agent(project: Project) -> None:
    for name in ("d", "e", "x"):
        _campaign(project, name)
    x = project.root / "campaigns" / "x.toml"
    agent = f"agent_id = {DEFAULT_AGENT_ID}\n"
    x.write_text(x.read_text().replace(agent, f"agent_id = {DEFAULT_AGENT_ID + 1}\n"))
    for name in ("d", "e", "x", "gone"):  # gone: a ledger whose campaign file was removed
        _ledger(project, name, f"+9100{name}")
    _ledger(project, "contacts", "+9100contacts")  # the shared counts, never a campaign's
    (project.root / "state" / "junk.sqlite").write_bytes(b"not a database")
    d = load_campaign(project.root / "campaigns" / "d.toml")

    found = {(x.campaign, x.called_to, x.room_name) for x in other_dials(d, None)}

    assert found == {("e", "+9100e", "room-e-+9100e"), ("gone", "+9100gone", "room-gone-+9100gone")}
    later = datetime.now(UTC) + timedelta(minutes=1)
    assert list(other_dials(d, later)) == []  # only calls placed in the range read


def test_a_killed_runs_calls_keep_their_rows_from_every_other_call_of_the_person(
    project: Project, cli, fake: FakeTabbly
) -> None:
    """e's run was killed with every request answered by the fake but no answer recorded: its
    calls are claims (`sending`), not dials. Their log rows are still theirs: d's sync must not
    fold them into d's own calls to the same people (a better outcome taken from e's row), and
    e's next run holds each as a maybe-call (never sent again), which its own row resolves."""
    env = {**KEY_ENV, LOGS_ENDPOINT_ENV: fake.logs_url}
    project.write_sheet(contact_rows(PEOPLE))
    d = _campaign(project, "d", fake.url)
    e = _campaign(project, "e", fake.url)
    assert cli(["run", str(d), "--yes"], env).code == ExitCode.OK
    d_last = datetime.fromisoformat(fake.logs.calls()[-1]["called_at"]).timestamp()
    wait_for(lambda: time.time() >= d_last + GAP_SECONDS, 10, "e's calls 2 s after d's")
    assert cli(["run", str(e), "--yes"], env).code == ExitCode.OK
    assert len(fake.accepted()) == 2 * PEOPLE
    # What a kill -9 after every request had left leaves: claims, no dials, no records.
    conn = sqlite3.connect(project.root / "state" / "e.sqlite")
    with conn:
        conn.execute(
            "INSERT INTO sending (called_to, row, run_id, started_at) "
            "SELECT called_to, row, run_id, placed_at FROM dials"
        )
        conn.execute("DELETE FROM dials")
        conn.execute("DELETE FROM calls")
    conn.close()
    for report in (project.root / "reports" / "e").iterdir():
        report.unlink()  # its rows came with the answers, which were never recorded
    drawn = _drawn(fake)
    # The recipe bites: people whose call with e ended better than their call with d.
    rank = ["answered", "busy", "no_answer"]
    d_calls = {x["called_to"]: drawn[str(x["room_name"])] for x in _dials(project, "d")}
    e_truth = {c["called_to"]: c["outcome"] for c in fake.logs.calls()[PEOPLE:]}
    assert any(rank.index(e_truth[n]) < rank.index(o) for n, o in d_calls.items())

    synced = cli(["sync", str(d)], env)

    assert synced.code == ExitCode.OK, synced.err
    assert {x["called_to"]: x["outcome"] for x in _dials(project, "d")} == d_calls
    again = cli(["run", str(e), "--yes"], env)  # adopts the claims: maybe called, not sent
    assert again.code in (ExitCode.OK, ExitCode.ROW_PROBLEMS), again.err
    assert len(fake.accepted()) == 2 * PEOPLE
    # A maybe-call alone never makes a sync read the logs (its request may never have
    # left); read on purpose, its own row resolves it.
    since = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    assert cli(["sync", str(e), "--since", since], env).code == ExitCode.OK
    e_dials = _dials(project, "e")
    assert all(x["maybe"] for x in e_dials) and len(e_dials) == PEOPLE
    assert {x["called_to"]: x["outcome"] for x in e_dials} == e_truth
