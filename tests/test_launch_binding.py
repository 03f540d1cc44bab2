"""A launch bound to its check in the run itself (SPEC 11; issue 9 review): `dialer run
--expect-campaign-sha256/--expect-contacts-sha256` refuses files other than those checked, and
the page passes the fingerprints it took at the check, so an edit in the moments between the
page's own comparison and the run reading the files sends nothing either."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from conftest import KEY_ENV, Project, contact_rows
from test_web_hardening import _check, _fake_env, _login, _run, _until

from dialer.campaign.binding import contacts_sha256
from dialer.core.statuses import ExitCode
from dialer.fake_tabbly import FakeTabblyThread


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _bound_run(cli, project: Project, sheet: Path, campaign_sha: str, contacts_sha: str):
    return cli(
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
        ],
        env=KEY_ENV,
    )


@pytest.mark.parametrize("what", ["campaign", "sheet", "do-not-call list"])
def test_run_refuses_files_other_than_those_checked(project: Project, cli, fake, what):
    sheet = project.write_sheet(contact_rows(5))
    dnc = project.root / "data" / "dnc.csv"
    dnc.write_text("phone\n+919999999999\n", encoding="utf-8")
    project.write_campaign(fake.url, contacts='suppress = "../data/dnc.csv"')
    campaign_sha = _sha(project.campaign)
    contacts_sha = contacts_sha256(_sha(sheet), [_sha(dnc)])
    # Checked; then, before the run reads them, one of the files changes.
    if what == "campaign":
        project.write_campaign(
            fake.url, contacts='suppress = "../data/dnc.csv"', first_line="CHANGED AFTER CHECK"
        )
    elif what == "sheet":
        project.write_sheet(contact_rows(6))
    else:
        dnc.write_text("phone\n", encoding="utf-8")

    result = _bound_run(cli, project, sheet, campaign_sha, contacts_sha)

    assert result.code == ExitCode.INPUT_ERROR, result.err
    (line,) = result.err.strip().splitlines()
    assert line.startswith("dialer: error: ") and "changed since it was checked" in line
    assert "nothing sent" in line
    assert fake.received == []
    assert not (project.root / "reports").exists()


def test_run_with_the_checked_files_runs(project: Project, cli, fake):
    sheet = project.write_sheet(contact_rows(5))
    project.write_campaign(fake.url)
    # Without do-not-call lists the contacts digest is the sheet's own, as sha256sum prints it.
    result = _bound_run(cli, project, sheet, _sha(project.campaign), _sha(sheet))
    assert result.code == ExitCode.OK, result.err
    assert len(fake.received) == 5


def test_web_launch_refused_by_the_run_when_the_campaign_changes_after_the_page_compared(
    tmp_path,
):
    """The race of the review made deterministic: the campaign file is rewritten after the
    page's own comparison at launch, just before it starts the run (through its `load`)."""
    with FakeTabblyThread(latency=0.01, balance=100) as fake:

        async def body(client, server) -> None:
            csrf = await _login(client)
            dry_id = await _check(client, csrf)
            load = server.jobs.load

            def edit_then_load(path: Path):
                text = path.read_text("utf-8")
                path.write_text(
                    re.sub(
                        r"(?m)^first_line = .*$",
                        'first_line = "CHANGED AFTER CHECK: your card number, {{ first_name }}."',
                        text,
                    ),
                    "utf-8",
                )
                return load(path)

            server.jobs.load = edit_then_load
            started = await client.post(
                f"/dry-runs/{dry_id}/launch",
                data={"csrf": csrf, "confirm": "yes", "count": "49"},
                allow_redirects=False,
            )
            assert started.status == 303, await started.text()  # the page saw no change
            run_url = started.headers["Location"]
            run = server.jobs.runs[run_url.rsplit("/", 1)[1]]
            await _until(lambda: run.finished, "the run ended")
            assert run.exit_code == ExitCode.INPUT_ERROR, list(run.messages)
            assert any("changed since it was checked" in m for m in run.messages)
            page = await (await client.get(run_url)).text()
            assert "changed since it was checked" in page

        _run(tmp_path, body, _fake_env(fake))
        assert fake.received == []
