"""`dialer audit` and `dialer audit verify` (SPEC 13) through the real CLI: the listing and
its filters, the CSV export, and verify's exit 1 after an entry is edited or removed in the
real `state/team.sqlite` with sqlite3 directly."""

from __future__ import annotations

import csv
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dialer.team import audit
from dialer.team.audit import AuditTrail, entry_digest

SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A project folder whose trail holds five entries, a day apart from 2026-12-01."""
    folder = tmp_path / "proj"
    (folder / "campaigns").mkdir(parents=True)
    days = iter(datetime(2026, 12, d, 10, tzinfo=UTC) for d in range(1, 6))
    trail = AuditTrail(folder / "state", lambda: next(days))
    trail.append("alice", audit.LOGIN)
    trail.append("alice", audit.CHECK, "spring", campaign_sha256=SHA, rows=120)
    trail.append("bob", audit.LAUNCH, "spring", campaign_sha256=SHA, people=118)
    trail.append("cli:ops@host", audit.OPTOUT_ADDED, number="+919876543210", reason="=asked")
    trail.append("bob", audit.STOP, "autumn")
    return folder


def _sql(root: Path, *statements: str) -> None:
    conn = sqlite3.connect(root / "state" / "team.sqlite", isolation_level=None)
    try:
        for statement in statements:
            conn.execute(statement)
    finally:
        conn.close()


def _unguarded(root: Path, *statements: str) -> None:
    _sql(
        root,
        "DROP TRIGGER audit_append_only_update",
        "DROP TRIGGER audit_append_only_delete",
        *statements,
    )


def test_the_listing_and_its_filters(cli, root: Path) -> None:
    result = cli(["audit", "--root", str(root)])
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert len(lines) == 6 and lines[-1] == "5 entries"
    assert lines[0] == "2026-12-01T10:00:00Z  alice  login  -  "
    assert lines[2].startswith("2026-12-03T10:00:00Z  bob  launch  spring  campaign_sha256=9f86")
    assert lines[2].endswith("...")  # details cut on one line
    assert "+91*******210" in lines[3] and "9876543210" not in result.out

    def listed(*args: str) -> list[str]:
        found = cli(["audit", *args, "--root", str(root)])
        assert found.code == 0, found.err
        return [line.split()[2] for line in found.out.splitlines()[:-1]]

    assert listed("--who", "bob") == ["launch", "stop"]
    assert listed("--campaign", "spring") == ["check", "launch"]
    assert listed("--since", "2026-12-04") == ["optout_added", "stop"]
    assert listed("--since", "2026-12-02", "--who", "alice") == ["check"]
    assert listed("--who", "nobody") == []


def test_the_export_is_a_new_csv_of_every_column(cli, root: Path, tmp_path: Path) -> None:
    out = tmp_path / "trail.csv"
    result = cli(["audit", "--root", str(root), "--campaign", "spring", "--out", str(out)])
    assert result.code == 0 and "2 audit entries written to" in result.out, result.err
    with open(out, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["seq", "time", "who", "action", "campaign", "details", "previous",
                             "digest"]  # fmt: skip
    check, launch = rows
    assert json.loads(launch["details"]) == {"campaign_sha256": SHA, "people": 118}
    assert launch["previous"] == check["digest"]
    assert launch["digest"] == entry_digest(
        3, launch["time"], "bob", "launch", "spring", json.loads(launch["details"]),
        launch["previous"],
    )  # fmt: skip
    again = cli(["audit", "--root", str(root), "--out", str(out)])
    assert again.code == 2 and "never overwritten" in again.err


def test_an_exported_formula_stays_text(cli, root: Path, tmp_path: Path) -> None:
    AuditTrail(root / "state").append("=cmd", audit.LOGIN)
    out = tmp_path / "all.csv"
    assert cli(["audit", "--root", str(root), "--out", str(out)]).code == 0
    with open(out, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows[-1]["who"] == "'=cmd"


def test_verify_passes_then_names_an_edited_entry(cli, root: Path) -> None:
    result = cli(["audit", "verify", "--root", str(root)])
    assert result.code == 0, result.err
    digest = AuditTrail(root / "state").head()[1]
    assert result.out == f"audit trail intact: 5 entries; last digest {digest}\n"
    _unguarded(root, """UPDATE audit SET details = '{"people":2}' WHERE seq = 3""")
    result = cli(["audit", "--root", str(root), "verify"])
    assert result.code == 1
    assert "entry 3 (2026-12-03T10:00:00Z, launch) does not match" in result.out


def test_verify_names_the_entry_after_a_removed_one_and_a_removed_last(cli, root: Path) -> None:
    _unguarded(root, "DELETE FROM audit WHERE seq = 2")
    result = cli(["audit", "verify", "--root", str(root)])
    assert result.code == 1 and "entry 3 (2026-12-03T10:00:00Z, launch)" in result.out
    other = root.parent / "other"
    (other / "state").mkdir(parents=True)
    trail = AuditTrail(other / "state")
    for _ in range(3):
        trail.append("alice", audit.LOGIN)
    _unguarded(other, "DELETE FROM audit WHERE seq = 3")
    result = cli(["audit", "verify", "--root", str(other)])
    assert result.code == 1 and "entry 3 and any after it were removed" in result.out


def test_bad_input_is_exit_2(cli, root: Path, tmp_path: Path) -> None:
    for args, says in [
        (["--since", "yesterday"], "give a date as YYYY-MM-DD"),
        (["--out", str(tmp_path / "x.xlsx")], "written as .csv"),
        (["verify", "--who", "x"], "unrecognized arguments"),
    ]:
        result = cli(["audit", "--root", str(root), *args])
        assert result.code == 2 and says in result.err, (args, result.err)
    result = cli(["audit", "verify", "--root", str(tmp_path)])
    assert result.code == 2 and "no campaigns/ or state/ folder here" in result.err


def test_a_folder_with_no_trail_is_intact_and_stays_untouched(cli, tmp_path: Path) -> None:
    (tmp_path / "campaigns").mkdir()
    result = cli(["audit", "verify", "--root", str(tmp_path)])
    assert result.code == 0 and result.out == "audit trail intact: 0 entries\n"
    assert cli(["audit", "--root", str(tmp_path)]).out == "0 entries\n"
    assert not (tmp_path / "state").exists()
