"""Contact limits across campaigns (SPEC 10, `[limits]`): counted in a shared
`state/contacts.sqlite`, checked and recorded atomically at the claim."""

from __future__ import annotations

import sqlite3
import subprocess
from collections import Counter
from pathlib import Path

from dialer.fake_tabbly import FakeTabblyThread
from tests.conftest import (
    KEY_ENV,
    Project,
    contact_rows,
    dialer_subprocess,
    indian_mobile,
)

PER_DAY_1 = "[limits]\nper_day = 1\n"


def _campaign(project: Project, name: str, url: str, limits: str = PER_DAY_1) -> Path:
    """A second campaign file beside the project's, sharing its sheet and state/ folder."""
    path = project.write_campaign(url, name=name)
    target = project.root / "campaigns" / f"{name}.toml"
    text = path.read_text(encoding="utf-8")
    # `[limits]` is a table: after every top-level key, before [contacts].
    target.write_text(text.replace("[contacts]", f"{limits}\n[contacts]"), encoding="utf-8")
    return target


def _rows(report: Path) -> list[dict[str, str]]:
    import csv

    with open(report, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _reports(project: Project, name: str) -> list[Path]:
    folder = project.root / "reports" / name
    return sorted(p for p in folder.glob("*.csv") if not p.name.endswith(".partial.csv"))


def test_two_campaigns_at_the_same_moment_call_each_person_once(project: Project):
    n = 60
    project.write_sheet(contact_rows(n))
    # Slow answers keep both runs in flight together, so their claims interleave.
    with FakeTabblyThread(balance=1000, latency=0.05) as fake:
        campaigns = [_campaign(project, name, fake.url) for name in ("spring", "summer")]
        procs = [
            dialer_subprocess(
                ["run", str(c), "--yes"],
                KEY_ENV,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for c in campaigns
        ]
        outputs = [p.communicate(timeout=120) for p in procs]
        accepted = Counter(body["called_to"] for body in fake.accepted())
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    # Each person called exactly once in total, by one campaign or the other.
    assert accepted == Counter({indian_mobile(i): 1 for i in range(n)})
    statuses: Counter[str] = Counter()
    for name in ("spring", "summer"):
        for row in _rows(_reports(project, name)[-1]):
            statuses[row["status"]] += 1
            if row["status"] == "limited":
                # "maybe": the other campaign's call was still awaiting its answer.
                assert row["reason"] in {
                    f"1 {what} in the last 24 hours across campaigns, limit 1"
                    for what in ("call", "maybe")
                }
    assert statuses == Counter({"triggered": n, "limited": n})


def test_a_campaign_without_limits_counts_once_the_book_exists(project: Project, cli, fake):
    project.write_sheet(contact_rows(5))
    plain = _campaign(project, "plain", fake.url, limits="")
    limited = _campaign(project, "capped", fake.url)
    # The first campaign ran before any campaign had [limits]: no book, nothing extra paid.
    assert cli(["run", str(plain), "--yes"], KEY_ENV).code == 0
    book = project.root / "state" / "contacts.sqlite"
    assert not book.exists()
    # The capped campaign creates the book from every ledger's recent calls: all limited.
    result = cli(["run", str(limited), "--yes"], KEY_ENV)
    assert result.code == 0, result.err
    assert Counter(r["status"] for r in _rows(_reports(project, "capped")[-1])) == {"limited": 5}
    assert len(fake.accepted()) == 5
    # The dry run shows the same before anything is spent.
    check = cli(["validate", str(limited)])
    assert check.code == 0
    assert "limited" in check.out


def test_calls_certainly_not_placed_do_not_count(project: Project, cli):
    project.write_sheet(contact_rows(12))
    # 0.75 with cost 0.1 and a 0.2 minimum: 6 calls fit, then 402.
    with FakeTabblyThread(balance=0.75, cost=0.1) as fake:
        campaign = _campaign(project, "capped", fake.url)
        first = cli(["run", str(campaign), "--yes"], KEY_ENV)
        assert first.code == 3
        placed = {b["called_to"] for b in fake.accepted()}
        assert len(placed) == 6
        fake.top_up(10)
        second = cli(["run", str(campaign), "--yes"], KEY_ENV)
        assert second.code == 0, second.err
        later = [b["called_to"] for b in fake.accepted()][6:]
    # The 402's rows were not placed: their count was released, the next run sends them.
    assert sorted(later) == sorted({indian_mobile(i) for i in range(12)} - placed)
    conn = sqlite3.connect(project.root / "state" / "contacts.sqlite")
    counted = Counter(r[0] for r in conn.execute("SELECT called_to FROM contact_calls"))
    assert counted == Counter({indian_mobile(i): 1 for i in range(12)})


def test_limits_are_checked_at_load(project: Project, cli):
    project.write_sheet(contact_rows(1))
    bad = _campaign(project, "bad", "http://127.0.0.1:9/x", limits="[limits]\nper_day = 0\n")
    result = cli(["validate", str(bad)])
    assert result.code == 2
    assert "limits.per_day" in result.err and len(result.err.strip().splitlines()) == 1


def test_the_dry_run_before_the_book_exists_shows_limited(project: Project, cli, fake):
    project.write_sheet(contact_rows(3))
    plain = _campaign(project, "plain", fake.url, limits="")
    capped = _campaign(project, "capped", fake.url)
    assert cli(["run", str(plain), "--yes"], KEY_ENV).code == 0
    check = cli(["validate", str(capped)])
    assert check.code == 0, check.err
    rows = _rows(_reports(project, "capped")[-1])
    assert {r["status"] for r in rows} == {"limited"}
    # The dry run wrote nothing: the book is made by the first run with [limits].
    assert not (project.root / "state" / "contacts.sqlite").exists()


def test_ledgers_from_before_dials_still_count(project: Project, cli, fake):
    project.write_sheet(contact_rows(3))
    plain = _campaign(project, "plain", fake.url, limits="")
    assert cli(["run", str(plain), "--yes"], KEY_ENV).code == 0
    conn = sqlite3.connect(project.root / "state" / "plain.sqlite")
    with conn:
        conn.execute("DROP TABLE dials")  # as a ledger written before the outcome loop
    conn.close()
    capped = _campaign(project, "capped", fake.url)
    assert cli(["run", str(capped), "--yes"], KEY_ENV).code == 0
    assert len(fake.accepted()) == 3
    assert {r["status"] for r in _rows(_reports(project, "capped")[-1])} == {"limited"}


def test_bad_shared_counts_and_reserved_name_are_one_line_exit_2(project: Project, cli):
    project.write_sheet(contact_rows(1))
    capped = _campaign(project, "capped", "http://127.0.0.1:9/x")
    state = project.root / "state"
    state.mkdir(parents=True)
    (state / "contacts.sqlite").write_bytes(b"not a database at all" * 100)
    result = cli(["validate", str(capped)])
    assert result.code == 2, result.err
    assert "contacts.sqlite" in result.err and len(result.err.strip().splitlines()) == 1
    reserved = _campaign(project, "contacts", "http://127.0.0.1:9/x")
    result = cli(["validate", str(reserved)])
    assert result.code == 2 and "key 'name' cannot be 'contacts'" in result.err
