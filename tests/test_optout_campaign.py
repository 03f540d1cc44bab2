"""`[optout]` in the campaign file (SPEC 12): what a sync listens for on this campaign's calls.
It switches detection off or changes its words; it never switches the register off."""

from __future__ import annotations

import pytest
from conftest import KEY_ENV, Project, contact_rows

from dialer.campaign.model import LOGS_ENDPOINT_ENV
from dialer.campaign.parse import load_campaign
from dialer.core.statuses import ExitCode, Status
from dialer.fake_tabbly import FakeTabblyThread
from dialer.fake_tabbly.rules import LOGS_V2_PATH, TRIGGER_PATH
from dialer.ledger.optouts import Register

NUMBERS = [row[2] for row in contact_rows(3)]
SAID = {NUMBERS[0]: "phrase", NUMBERS[1]: "outcome"}


def _heard(project: Project, cli, optout: str) -> set[str]:
    """Run and sync a campaign with this `[optout]` table: the numbers the register holds."""
    with FakeTabblyThread(balance=1000, said=SAID, seed=3) as fake:
        env = {**KEY_ENV, LOGS_ENDPOINT_ENV: fake.url.removesuffix(TRIGGER_PATH) + LOGS_V2_PATH}
        project.write_sheet(contact_rows(3))
        project.write_campaign(fake.url, extra=optout)
        assert cli(["run", str(project.campaign), "--yes"], env).code == ExitCode.OK
        synced = cli(["sync", str(project.campaign)], env)
        assert synced.code == ExitCode.OK, synced.err
    register = Register.reading(project.root / "state")
    if register is None:
        return set()
    with register:
        return set(register.entries(NUMBERS))


def test_detection_switched_off_hears_nobody(project: Project, cli) -> None:
    assert _heard(project, cli, "[optout]\nenabled = false\n") == set()


def test_the_campaigns_phrases_replace_the_built_in_list(project: Project, cli) -> None:
    # Not a phrase the fake's person says: only the `call_outcome` opt-out is heard.
    heard = _heard(project, cli, '[optout]\nphrases = ["zebra crossing"]\n')
    assert heard == {NUMBERS[1]}


def test_the_default_hears_both(project: Project, cli) -> None:
    assert _heard(project, cli, "") == {NUMBERS[0], NUMBERS[1]}


def test_detection_off_does_not_switch_the_register_off(project: Project, cli, fake) -> None:
    project.write_sheet(contact_rows(3))
    project.write_campaign(fake.url, extra="[optout]\nenabled = false\n")
    root = str(project.root)
    assert cli(["optout", "add", NUMBERS[2], "--reason", "letter", "--root", root]).code == 0

    assert cli(["run", str(project.campaign), "--yes"], KEY_ENV).code == ExitCode.OK

    assert NUMBERS[2] not in [b["called_to"] for b in fake.accepted()]
    statuses = {r["called_to"]: r["status"] for r in project.report_rows()}
    assert statuses[NUMBERS[2]] == Status.OPTED_OUT


@pytest.mark.parametrize(
    ("table", "said"),
    [
        ("[optout]\nenable = false\n", "unknown key 'optout.enable'"),
        ("[optout]\nenabled = 1\n", "key 'optout.enabled' must be true or false"),
        ('[optout]\nphrases = ["?!", "stop calling"]\n', "key 'optout.phrases' has '?!'"),
        ('[optout]\noutcomes = ["--"]\n', "key 'optout.outcomes' has '--'"),
        ('[optout]\nphrases = "stop"\n', "key 'optout.phrases' must be a list"),
    ],
)
def test_a_bad_optout_table_is_one_line_exit_2(
    project: Project, cli, table: str, said: str
) -> None:
    project.write_sheet(contact_rows(1))
    project.write_campaign(extra=table)

    result = cli(["validate", str(project.campaign)])

    assert result.code == ExitCode.INPUT_ERROR
    assert said in result.err and len(result.err.strip().splitlines()) == 1


def test_the_table_is_read_into_the_campaign(project: Project) -> None:
    project.write_campaign(extra='[optout]\noutcomes = ["wrong_number"]\nphrases = ["band karo"]\n')
    words = load_campaign(project.campaign).optout
    assert (words.enabled, words.outcomes, words.phrases) == (
        True,
        ("wrong_number",),
        ("band karo",),
    )
