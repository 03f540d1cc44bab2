"""The command line's own actions in the audit trail (SPEC 13): `dialer optout`, `dialer run`
and `dialer sync` each leave an entry as `cli:<user>@<host>`, never a whole number; a trail
that cannot be written is one warning line and changes nothing of the run."""

from __future__ import annotations

import hashlib
import signal
import subprocess
from pathlib import Path

from conftest import (
    KEY_ENV,
    Project,
    contact_rows,
    dialer_subprocess,
    indian_mobile,
    wait_for_requests,
)

from dialer.campaign.model import LOGS_ENDPOINT_ENV
from dialer.core.statuses import ExitCode
from dialer.fake_tabbly import FakeTabblyThread
from dialer.team import audit
from dialer.team.audit import BY_PAGE_ENV, AuditTrail, cli_actor


def _entries(root: Path) -> list[audit.AuditEntry]:
    return AuditTrail(root / "state").entries()


def _trail_text(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (root / "state").glob("team.sqlite*"))


def test_optout_add_remove_import_are_recorded_masked(project: Project, cli) -> None:
    root = project.root
    (root / "campaigns").mkdir(parents=True)
    number = "+15125550100"
    args = ["--root", str(root)]
    assert cli(["optout", "add", number, "--reason", "asked by email", *args]).code == 0
    assert cli(["optout", "remove", number, "--reason", "signed consent", *args]).code == 0
    sheet = root / "dnc.csv"
    sheet.write_text(f"phone\n{indian_mobile(1)}\n{indian_mobile(2)}\n", encoding="utf-8")
    assert cli(["optout", "import", str(sheet), *args]).code == 0

    added, removed, imported = _entries(root)
    assert (added.action, added.who, added.details) == (
        audit.OPTOUT_ADDED,
        cli_actor(),
        {"number": "+15******100", "reason": "asked by email"},
    )
    assert removed.action == audit.OPTOUT_REMOVED and removed.details["reason"] == "signed consent"
    assert imported.action == audit.OPTOUT_IMPORTED
    assert imported.details == {
        "file": "dnc.csv",
        "file_sha256": hashlib.sha256(sheet.read_bytes()).hexdigest(),
        "added": 2,
        "already": 0,
        "reason": "imported from dnc.csv",
    }
    text = _trail_text(root)
    for whole in (number, indian_mobile(1), indian_mobile(2)):
        assert whole.lstrip("+").encode() not in text
    assert AuditTrail(root / "state").verify() is None


def test_a_bound_run_records_its_launch_with_the_check_and_a_sync_its_counts(
    project: Project, cli
) -> None:
    with FakeTabblyThread(balance=1000) as fake:
        sheet = project.write_sheet(contact_rows(3))
        project.write_campaign(fake.url)
        campaign_sha = hashlib.sha256(project.campaign.read_bytes()).hexdigest()
        contacts_sha = hashlib.sha256(sheet.read_bytes()).hexdigest()
        env = {**KEY_ENV, LOGS_ENDPOINT_ENV: fake.logs_url}
        result = cli(
            [
                "run",
                str(project.campaign),
                "--contacts",
                str(sheet),
                "--yes",
                "--expect-campaign-sha256",
                campaign_sha,
                "--expect-contacts-sha256",
                contacts_sha,
                "--limit",
                "5",
            ],
            env=env,
        )
        assert result.code == ExitCode.OK, result.err
        assert len(fake.received) == 3
        synced = cli(["sync", str(project.campaign)], env=env)
        assert synced.code == ExitCode.OK, synced.err

    launch, sync = _entries(project.root)
    assert (launch.action, launch.campaign, launch.who) == (audit.LAUNCH, "test", cli_actor())
    assert launch.details == {
        "campaign_sha256": campaign_sha,
        "contacts_sha256": contacts_sha,
        "sheet": "contacts.csv",
        "limit": 5,
        "asked": False,
    }
    assert sync.action == audit.SYNC and sync.campaign == "test"
    outcomes = sync.details["outcomes"]
    assert isinstance(outcomes, dict) and sum(outcomes.values()) == 3  # one per person called
    assert sync.details["updated"] == 3 and sync.details["opted_out"] == 0
    assert AuditTrail(project.root / "state").verify() is None


def test_a_trail_that_cannot_be_written_never_stops_a_run(project: Project, cli) -> None:
    with FakeTabblyThread(balance=1000) as fake:
        project.write_sheet(contact_rows(3))
        project.write_campaign(fake.url)
        (project.root / "state" / "team.sqlite").mkdir(parents=True)  # no file can be opened
        result = cli(["run", str(project.campaign), "--yes"], env=KEY_ENV)
        assert len(fake.received) == 3

    assert result.code == ExitCode.OK, result.err
    warnings = [line for line in result.err.splitlines() if "audit trail" in line]
    assert len(warnings) == 1 and warnings[0].startswith("dialer: warning: not written to")


def test_a_command_the_page_started_leaves_the_entry_to_the_page(project: Project, cli) -> None:
    with FakeTabblyThread(balance=1000) as fake:
        project.write_sheet(contact_rows(2))
        project.write_campaign(fake.url)
        result = cli(["run", str(project.campaign), "--yes"], env={**KEY_ENV, BY_PAGE_ENV: "bob"})
    assert result.code == ExitCode.OK, result.err
    assert _entries(project.root) == []


def test_an_interrupted_run_records_its_stop(project: Project) -> None:
    with FakeTabblyThread(latency=0.2) as fake:
        project.write_sheet(contact_rows(40))
        project.write_campaign(fake.url, dispatch="rate_per_second = 10")
        proc = dialer_subprocess(
            ["run", str(project.campaign), "--yes"],
            env=KEY_ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        wait_for_requests(fake, 2, proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)

    assert proc.returncode == ExitCode.INTERRUPTED, err
    launch, stop = _entries(project.root)
    assert launch.action == audit.LAUNCH and stop.action == audit.STOP
    assert stop.campaign == "test" and stop.details == {"exit_code": 130}
