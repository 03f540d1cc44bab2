"""Opt-outs heard on a call: a sync (and the sync of `dialer run`) reads what each called person
said in the call logs, in both shapes the logs come in, and records those who said "do not
call me" in the folder's register, once per call; the agent's own words are not theirs."""

from __future__ import annotations

import pytest
from conftest import KEY_ENV, Project, contact_rows

from dialer.campaign.model import LOGS_ENDPOINT_ENV
from dialer.core.statuses import ExitCode
from dialer.fake_tabbly import FakeTabblyThread
from dialer.fake_tabbly.rules import LOGS_DOCS_PATH, LOGS_V2_PATH, TRIGGER_PATH
from dialer.ledger.optouts import Register

PEOPLE = 8
NUMBERS = [row[2] for row in contact_rows(PEOPLE)]
# Four ways of saying no, the agent's decoy, and three who said nothing of note.
SAID = dict(zip(NUMBERS, ["phrase", "hindi", "json", "outcome", "decoy"], strict=False))
OPTED_OUT = {n for n, kind in SAID.items() if kind != "decoy"}


@pytest.mark.parametrize("shape", [LOGS_V2_PATH, LOGS_DOCS_PATH])
def test_a_sync_records_who_said_no_and_nobody_else(project: Project, cli, shape: str) -> None:
    with FakeTabblyThread(balance=1000, said=SAID, seed=3) as fake:
        env = {**KEY_ENV, LOGS_ENDPOINT_ENV: fake.url.removesuffix(TRIGGER_PATH) + shape}
        project.write_sheet(contact_rows(PEOPLE))
        project.write_campaign(fake.url)
        campaign = str(project.campaign)
        assert cli(["run", campaign, "--yes"], env).code == ExitCode.OK
        assert not (project.root / "state" / "contacts.sqlite").exists()

        synced = cli(["sync", campaign], env)

        assert synced.code == ExitCode.OK, synced.err
        assert f"opted out on a call: {len(OPTED_OUT)} " in synced.out
        register = Register.reading(project.root / "state")
        assert register is not None
        with register:
            entries = register.entries(NUMBERS)
        assert set(entries) == OPTED_OUT  # the decoy and the quiet ones are not there
        for number in OPTED_OUT:
            entry = entries[number]
            assert entry.source == "call" and entry.campaign == "test"
            assert number[-6:] not in entry.evidence  # numbers in the evidence are masked
        for number in OPTED_OUT:
            checked = cli(["optout", "check", number, "--root", str(project.root)])
            assert checked.code == 0, checked.err

        again = cli(["sync", campaign, "--since", "2026-01-01"], env)  # the same calls
        assert again.code == ExitCode.OK, again.err
        assert "opted out on a call" not in again.out
