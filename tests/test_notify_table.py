"""`[notify]` in a campaign file and `campaigns/_notify.toml` (SPEC 13): every bad key or
value one line naming the file and the key; the folder's file used when a campaign has no
table of its own, and never taken as a campaign."""

from __future__ import annotations

import pytest
from conftest import Project

from dialer.campaign.model import NOTIFY_EVENTS, Notify, NotifyEvent
from dialer.campaign.parse import load_campaign
from dialer.core.statuses import CampaignError
from dialer.web.services.campaigns import CampaignShelf


def _folder_file(project: Project, text: str) -> None:
    (project.root / "campaigns" / "_notify.toml").write_text(text, encoding="utf-8")


def test_a_campaign_table_is_read(project: Project) -> None:
    project.write_campaign(
        extra='[notify]\nurl_env = "HOOK_URL"\nsecret_env = "HOOK_SECRET"\n'
        'events = ["run_finished", "wallet_empty"]\noutcomes = true\n'
    )
    notify = load_campaign(project.campaign).notify
    assert notify == Notify(
        url_env="HOOK_URL",
        secret_env="HOOK_SECRET",
        events=frozenset({NotifyEvent.RUN_FINISHED, NotifyEvent.WALLET_EMPTY}),
        outcomes=True,
    )
    assert notify.wants(NotifyEvent.OUTCOMES) and not notify.wants(NotifyEvent.RUN_FAILED)


def test_no_table_anywhere_means_nothing_is_sent(project: Project) -> None:
    project.write_campaign()
    assert load_campaign(project.campaign).notify is None


def test_the_folder_file_serves_a_campaign_without_its_own_table(project: Project) -> None:
    project.write_campaign()
    _folder_file(project, '[notify]\nurl_env = "TEAM_HOOK"\n')
    notify = load_campaign(project.campaign).notify
    assert notify == Notify(url_env="TEAM_HOOK", events=frozenset(NOTIFY_EVENTS))


def test_a_campaign_table_replaces_the_folder_file_whole(project: Project) -> None:
    project.write_campaign(extra='[notify]\nurl_env = "OWN"\nevents = ["run_failed"]\n')
    _folder_file(project, '[notify]\nurl_env = "TEAM"\nsecret_env = "S"\noutcomes = true\n')
    notify = load_campaign(project.campaign).notify
    assert notify == Notify(url_env="OWN", events=frozenset({NotifyEvent.RUN_FAILED}))


def test_the_folder_file_is_never_a_campaign(project: Project, cli) -> None:
    project.write_campaign()
    _folder_file(project, '[notify]\nurl_env = "TEAM_HOOK"\n')
    shelf = CampaignShelf(project.root / "campaigns")
    assert list(shelf.all()) == ["test"]
    result = cli(["run", str(project.root / "campaigns" / "_notify.toml"), "--yes"])
    assert result.code == 2
    assert "not a campaign: _notify.toml holds the [notify] table" in result.err


@pytest.mark.parametrize(
    ("table", "said"),
    [
        ('url_env = "A"\ncolour = "red"', "unknown key 'notify.colour'"),
        ('events = ["run_failed"]', "missing required key 'notify.url_env'"),
        ('url_env = "https://hooks.slack.com/services/T/B/X"', "got a URL (the URL itself"),
        ("url_env = 7", "key 'notify.url_env' must be an environment variable name"),
        ('url_env = "A"\nsecret_env = "has space"', "key 'notify.secret_env' must be"),
        ('url_env = "A"\nevents = "run_failed"', "key 'notify.events' must be a list"),
        ('url_env = "A"\nevents = ["run_done"]', "key 'notify.events' has 'run_done'"),
        ('url_env = "A"\nevents = ["outcomes"]', "say `outcomes = true` instead"),
        ('url_env = "A"\noutcomes = "yes"', "key 'notify.outcomes' must be true or false"),
        ('url_env = "A"\nevents = []', "nothing would ever be sent"),
    ],
)
def test_bad_tables_are_one_line_naming_the_file_and_key(
    project: Project, table: str, said: str
) -> None:
    project.write_campaign(extra=f"[notify]\n{table}\n")
    with pytest.raises(CampaignError, match=r"test\.toml: ") as caught:
        load_campaign(project.campaign)
    assert said in str(caught.value) and "\n" not in str(caught.value)
    assert "hooks.slack.com" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ('url_env = "A"\n', "unknown key 'url_env' (allowed: notify)"),
        ("[other]\n", "unknown key 'other'"),
        ("", "missing table 'notify'"),
        ("[notify]\nurl_env = 3\n", "key 'notify.url_env' must be"),
        ("[notify\n", "not valid TOML"),
    ],
)
def test_a_bad_folder_file_names_itself(project: Project, text: str, said: str) -> None:
    project.write_campaign()
    _folder_file(project, text)
    with pytest.raises(CampaignError, match=r"_notify\.toml: ") as caught:
        load_campaign(project.campaign)
    assert said in str(caught.value)


def test_a_campaign_cannot_be_named_outbox(project: Project) -> None:
    project.write_campaign(name="Outbox")
    with pytest.raises(CampaignError, match="key 'name' cannot be 'Outbox'"):
        load_campaign(project.campaign)


def test_the_page_keeps_a_campaign_own_table_and_never_copies_the_folder_one(
    project: Project,
) -> None:
    from dialer.campaign.parse import parse_campaign
    from dialer.web.services.campaign_toml import form_from_campaign, render_toml

    project.write_campaign(extra='[notify]\nurl_env = "OWN"\nsecret_env = "S"\noutcomes = true\n')
    campaign = load_campaign(project.campaign)
    saved = parse_campaign(project.campaign, render_toml(form_from_campaign(campaign)).encode())
    assert saved.notify == campaign.notify
    project.write_campaign()
    _folder_file(project, '[notify]\nurl_env = "TEAM"\n')
    campaign = load_campaign(project.campaign)
    assert campaign.notify is not None and campaign.notify.shared
    assert "[notify]" not in render_toml(form_from_campaign(campaign))


def test_the_page_sees_a_changed_folder_file(project: Project) -> None:
    project.write_campaign()
    shelf = CampaignShelf(project.root / "campaigns")
    assert shelf.load(project.campaign).notify is None
    _folder_file(project, '[notify]\nurl_env = "TEAM_HOOK"\n')
    assert shelf.load(project.campaign).notify == Notify(url_env="TEAM_HOOK")
    _folder_file(project, '[notify]\nurl_env = "OTHER_HOOK"\n')
    assert shelf.load(project.campaign).notify == Notify(url_env="OTHER_HOOK")
