"""A lost `state/contacts.sqlite-wal` (SPEC 10 `[limits]`, issue 17 part 3): the shared counts
are checked against the ledgers they summarise and topped up from them before anyone is
judged, in the run and in the dry run alike."""

from __future__ import annotations

import csv
import os
import signal
import sqlite3
import subprocess
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dialer.core.clock import stamp
from dialer.fake_tabbly import FakeTabbly, FakeTabblyThread
from dialer.ledger.contact_limits import ContactBook
from tests.conftest import (
    KEY_ENV,
    Project,
    contact_rows,
    dialer_subprocess,
    indian_mobile,
    wait_for,
    wait_for_requests,
)

PER_DAY_1 = "[limits]\nper_day = 1\n"
SHARED = 30


def _campaign(project: Project, name: str, url: str, sheet: str, dispatch: str = "") -> Path:
    """campaigns/<name>.toml with `per_day = 1`, its own sheet, the project's state/ folder."""
    written = project.write_campaign(
        url, name=name, extra=PER_DAY_1, source=f"../data/{sheet}", dispatch=dispatch
    )
    target = written.with_name(f"{name}.toml")
    written.rename(target)
    return target


def _last_report(project: Project, name: str) -> list[dict[str, str]]:
    folder = project.root / "reports" / name
    reports = sorted(
        (p for p in folder.glob("*.csv") if not p.name.endswith(".partial.csv")),
        key=lambda p: p.stat().st_mtime_ns,
    )
    with open(reports[-1], encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _statuses(project: Project, name: str) -> dict[str, str]:
    return {row["called_to"]: row["status"] for row in _last_report(project, name)}


def _reasons(project: Project, name: str) -> dict[str, str]:
    return {row["called_to"]: row["reason"] for row in _last_report(project, name)}


def _lose_book_wal(project: Project) -> None:
    """An operator tidies state/: the shared file's -wal and -shm are gone."""
    book = project.root / "state" / "contacts.sqlite"
    for suffix in ("-wal", "-shm"):
        book.with_name(book.name + suffix).unlink(missing_ok=True)


def _kill_after(proc: subprocess.Popen[str], fake: FakeTabbly, calls: int) -> None:
    try:
        wait_for_requests(fake, calls, proc, seconds=60)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    wait_for(lambda: all(r.status is not None for r in fake.received), 10, "in-flight answers")


def _start(campaign: Path) -> subprocess.Popen[str]:
    return dialer_subprocess(
        ["run", str(campaign), "--yes"],
        KEY_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _validate_then_run_agree(
    project: Project, cli, campaign: Path, fake: FakeTabbly
) -> tuple[set[str], str]:
    """The dry run's verdicts are the run's: ready → triggered, limited → limited. Also
    what both said (stdout of the dry run, stderr of the run)."""
    check = cli(["validate", str(campaign)])
    assert check.code == 0, check.err
    planned = _statuses(project, campaign.stem)
    fake.latency = 0.0
    run = cli(["run", str(campaign), "--yes"], KEY_ENV)
    assert run.code == 0, run.err
    done = _statuses(project, campaign.stem)
    assert {n for n, s in planned.items() if s == "limited"} == {
        n for n, s in done.items() if s == "limited"
    }
    assert {n for n, s in planned.items() if s == "ready"} == {
        n for n, s in done.items() if s == "triggered"
    }
    return {n for n, s in done.items() if s == "limited"}, check.out + run.err


@pytest.mark.parametrize("p_wal", ["kept", "lost-too"])
def test_lost_shared_wal_after_a_killed_run_still_limits_the_other_campaign(
    project: Project, cli, p_wal: str
):
    """p_wal lost-too: p's own ledger lost its -wal as well; p's claims journal remains."""
    project.write_sheet(contact_rows(SHARED), name="shared.csv")
    project.write_sheet(contact_rows(SHARED, start=100), name="z.csv")
    with FakeTabblyThread(balance=1000, latency=0.3) as fake:
        slow = "rate_per_second = 5\nconcurrency = 2"
        p = _campaign(project, "p", fake.url, "shared.csv", slow)
        q = _campaign(project, "q", fake.url, "shared.csv")
        z = _campaign(project, "z", fake.url, "z.csv")
        fake.latency = 0.0
        assert cli(["run", str(z), "--yes"], KEY_ENV).code == 0
        book = project.root / "state" / "contacts.sqlite"
        assert book.exists() and not book.with_name("contacts.sqlite-wal").exists()
        fake.latency = 0.3
        _kill_after(_start(p), fake, SHARED + 10)
        by_p = {r.body["called_to"] for r in fake.received[SHARED:]}
        assert 10 <= len(by_p) < SHARED
        _lose_book_wal(project)
        if p_wal == "lost-too":
            for suffix in ("-wal", "-shm"):
                (project.root / "state" / f"p.sqlite{suffix}").unlink(missing_ok=True)

        limited, said = _validate_then_run_agree(project, cli, q, fake)

        record = Counter(body["called_to"] for body in fake.accepted())
    # The loss is said, by the dry run and the run, not only survived.
    assert said.count("the shared contact counts were behind the folder's ledgers") == 2
    # From the fake's own record: nobody over per_day = 1, and everyone p reached is limited.
    assert max(record.values()) == 1, [n for n, c in record.items() if c > 1]
    assert by_p <= limited
    assert set(record) >= {indian_mobile(i) for i in range(SHARED)} - limited


def test_a_killed_run_that_created_the_shared_file_then_lost_its_wal(project: Project, cli):
    project.write_sheet(contact_rows(SHARED), name="shared.csv")
    with FakeTabblyThread(balance=1000, latency=0.3) as fake:
        p = _campaign(project, "p", fake.url, "shared.csv", "rate_per_second = 5\nconcurrency = 2")
        q = _campaign(project, "q", fake.url, "shared.csv")
        _kill_after(_start(p), fake, 10)
        by_p = {r.body["called_to"] for r in fake.received}
        _lose_book_wal(project)  # its tables were only in the -wal

        limited, _said = _validate_then_run_agree(project, cli, q, fake)

        record = Counter(body["called_to"] for body in fake.accepted())
    assert max(record.values()) == 1, [n for n, c in record.items() if c > 1]
    assert by_p <= limited


def test_a_finished_run_vouches_for_its_ledger_so_the_next_open_reads_nothing(
    project: Project, cli, fake
):
    project.write_sheet(contact_rows(5), name="shared.csv")
    q = _campaign(project, "q", fake.url, "shared.csv")
    assert cli(["run", str(q), "--yes"], KEY_ENV).code == 0
    state = project.root / "state"
    with sqlite3.connect(state / "contacts.sqlite") as conn:
        marks = dict(conn.execute("SELECT ledger, files FROM ledger_marks"))
    assert set(marks) == {"q.sqlite"}
    # A call the book lacks, slipped into the ledger with its size and time kept: an open
    # that compares a `stat` does not see it; one that read the ledger would restore it.
    ledger = state / "q.sqlite"
    before = ledger.stat()
    unseen = indian_mobile(99)
    conn = sqlite3.connect(ledger)
    with conn:
        conn.execute(
            "INSERT INTO dials (called_to, placed_at) VALUES (?, ?)",
            (unseen, stamp(datetime.now(UTC))),
        )
    conn.close()
    os.utime(ledger, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = ledger.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert not ledger.with_name("q.sqlite-wal").exists()

    book = ContactBook.open(state, datetime.now(UTC), create=False)
    assert book is not None
    with book:
        assert book.restored == 0
        assert book.recent(unseen, datetime.now(UTC)).week == 0


def test_a_rebuilt_ledger_is_read_whole_whatever_its_dial_ids(project: Project, cli, fake):
    project.write_sheet(contact_rows(5), name="shared.csv")
    q = _campaign(project, "q", fake.url, "shared.csv")
    assert cli(["run", str(q), "--yes"], KEY_ENV).code == 0
    state = project.root / "state"
    stranger = indian_mobile(99)
    now = datetime.now(UTC)
    # As a rebuild leaves it: a new identity, and its dials numbered afresh past the old mark
    # with a call the shared counts never saw among the first ids.
    with sqlite3.connect(state / "q.sqlite") as conn:
        placed = [r[0] for r in conn.execute("SELECT called_to FROM dials ORDER BY id")]
        conn.execute("DELETE FROM dials")
        conn.executemany(
            "INSERT INTO dials (id, called_to, placed_at) VALUES (?, ?, ?)",
            [(i, n, stamp(now)) for i, n in enumerate([stranger, *placed], start=1)],
        )
        conn.execute("UPDATE meta SET value = 'rebuilt' WHERE key = 'ledger_id'")
    conn.close()
    book = ContactBook.open(state, now, create=False)
    assert book is not None
    with book:
        assert book.recent(stranger, now).day == 1
        assert all(book.recent(n, now).day == 1 for n in placed)


def test_claims_cut_off_by_a_kill_are_said_to_be_maybes(project: Project, cli):
    """Issue 17 part 4: a claim in flight at a kill counts toward per_day (it may have
    rung), and the reason says so: "1 call, 1 maybe", not "2 calls"."""
    per_day_2 = "[limits]\nper_day = 2\n"
    project.write_sheet(contact_rows(SHARED), name="shared.csv")
    with FakeTabblyThread(balance=1000) as fake:

        def campaign(name: str, dispatch: str = "") -> Path:
            written = project.write_campaign(
                fake.url,
                name=name,
                extra=per_day_2,
                source="../data/shared.csv",
                dispatch=dispatch,
            )
            return written.rename(written.with_name(f"{name}.toml"))

        p, r = campaign("p"), campaign("r")
        q = campaign("q", "rate_per_second = 5\nconcurrency = 2")
        assert cli(["run", str(p), "--yes"], KEY_ENV).code == 0
        fake.latency = 1.0  # q's last requests are still awaiting their answers at the kill
        _kill_after(_start(q), fake, SHARED + 8)
        with sqlite3.connect(f"file:{project.root / 'state' / 'q.sqlite'}?mode=ro", uri=True) as c:
            in_flight = {row[0] for row in c.execute("SELECT called_to FROM sending")}
            placed = {row[0] for row in c.execute("SELECT called_to FROM dials")}
        c.close()
        assert in_flight and placed and not in_flight & placed
        fake.latency = 0.0
        before = len(fake.accepted())
        for command in ("validate", "run"):
            assert (
                cli([command, str(r), *(["--yes"] if command == "run" else [])], KEY_ENV).code == 0
            )
            reasons = _reasons(project, "r")
            maybe = "1 call, 1 maybe in the last 24 hours across campaigns, limit 2"
            assert {n for n, why in reasons.items() if why == maybe} == in_flight, command
            two = "2 calls in the last 24 hours across campaigns, limit 2"
            assert {n for n, why in reasons.items() if why == two} == placed, command
        # The two rule: r placed a call only to people with one call before.
        assert {b["called_to"] for b in fake.accepted()[before:]} == (
            {indian_mobile(i) for i in range(SHARED)} - in_flight - placed
        )


def test_a_book_from_before_maybes_counts_its_lines_as_calls(project: Project, cli, fake):
    """A book written before `placed` existed: its lines read as calls, as they always did,
    by the dry run (through a copy) and by the run (the column added in place)."""
    project.write_sheet(contact_rows(3), name="shared.csv")
    q = _campaign(project, "q", fake.url, "shared.csv")
    state = project.root / "state"
    state.mkdir(exist_ok=True)
    with sqlite3.connect(state / "contacts.sqlite") as conn:
        conn.executescript(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
            "CREATE TABLE contact_calls (id INTEGER PRIMARY KEY, called_to TEXT NOT NULL, "
            "campaign TEXT NOT NULL, run TEXT NOT NULL, at TEXT NOT NULL);"
        )
        conn.execute(
            "INSERT INTO contact_calls (called_to, campaign, run, at) VALUES (?, 'old', 'x', ?)",
            (indian_mobile(0), stamp(datetime.now(UTC))),
        )
    conn.close()
    for command in (["validate", str(q)], ["run", str(q), "--yes"]):
        assert cli(command, KEY_ENV).code == 0
        reasons = {n: why for n, why in _reasons(project, "q").items() if why.startswith("1 ")}
        assert reasons == {
            indian_mobile(0): "1 call in the last 24 hours across campaigns, limit 1"
        }
    assert {b["called_to"] for b in fake.accepted()} == {indian_mobile(1), indian_mobile(2)}
