"""Campaign files: every mistake is one line naming the file and the key, exit 2."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dialer.campaign.model import DEFAULT_ENDPOINT, DEFAULT_LOGS_ENDPOINT
from dialer.campaign.parse import load_campaign
from dialer.core.statuses import CampaignError, ExitCode, UsageError
from tests.conftest import KEY_ENV, contact_rows

GOOD = """
name = "order-followup"
organization_id = 244
agent_id = 33
call_from = "+14156801215"
first_line = "Hello {{ first_name }}"

[contacts]
source = "contacts.csv"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_filled_in(tmp_path: Path):
    c = load_campaign(_write(tmp_path, GOOD))
    assert c.called_by_account == "API" and c.instruction == ""
    assert c.api_key_env == "TABBLY_API_KEY"
    assert c.contacts.phone_column == "phone" and c.contacts.id_column is None
    assert (c.dispatch.rate_per_second, c.dispatch.concurrency) == (2.0, 8)
    assert (c.dispatch.max_attempts, c.dispatch.timeout_seconds) == (4, 30.0)
    assert c.window is None
    assert c.resolved_endpoint({}) == DEFAULT_ENDPOINT


def test_endpoint_precedence_env_then_file_then_default(tmp_path: Path):
    c = load_campaign(_write(tmp_path, 'endpoint = "http://127.0.0.1:1/x"\n' + GOOD))
    assert c.resolved_endpoint({}) == "http://127.0.0.1:1/x"
    assert c.resolved_endpoint({"TABBLY_API_URL": "http://127.0.0.1:2/y"}) == "http://127.0.0.1:2/y"


def test_call_logs_are_read_where_the_calls_were_sent_unless_a_logs_url_is_given(tmp_path):
    """A campaign (often a page-made one) whose calls go to a fake or a proxy read its call
    logs from tabbly.io, carrying the key there; they now come from the trigger URL's folder."""
    folder = "http://127.0.0.1:9/dashboard/agents/endpoints"
    trigger = {"TABBLY_API_URL": f"{folder}/trigger-call"}
    c = load_campaign(_write(tmp_path, GOOD))
    assert c.resolved_endpoint({}, logs=True) == DEFAULT_LOGS_ENDPOINT
    assert c.resolved_endpoint(trigger, logs=True) == f"{folder}/call-logs-v2"
    given = trigger | {"TABBLY_LOGS_URL": "http://127.0.0.1:8/logs"}
    assert c.resolved_endpoint(given, logs=True) == "http://127.0.0.1:8/logs"
    # Not a trigger-call URL: nothing to stand beside, Tabbly's own logs URL.
    assert c.resolved_endpoint({"TABBLY_API_URL": "http://127.0.0.1:2/y"}, logs=True) == (
        DEFAULT_LOGS_ENDPOINT
    )
    in_file = load_campaign(_write(tmp_path, f'endpoint = "{folder}/trigger-call"\n' + GOOD))
    assert in_file.resolved_endpoint({}, logs=True) == f"{folder}/call-logs-v2"
    with pytest.raises(UsageError, match="TABBLY_API_URL in the environment"):
        c.checked_endpoint({"TABBLY_API_URL": "http://127.0.0.1:99999/a/trigger-call"}, logs=True)


def test_every_documented_key_is_accepted(tmp_path: Path):
    text = (
        GOOD.replace(
            "[contacts]",
            """called_by_account = "CRM"
instruction = "x"
endpoint = "http://127.0.0.1:8787/t"
api_key_env = "MY_KEY"

[contacts]""",
        )
        + """phone_column = "Mobile"
id_column = "customer_id"
default_region = "in"
suppress = ["dnc.csv", "dnc2.csv"]
sheet = "Contacts"

[dispatch]
rate_per_second = 2
concurrency = 8
max_attempts = 4
timeout_seconds = 30

[window]
hours = "21:00-02:00"
days = ["mon", "Tue", "wed"]
timezone_column = "tz"
"""
    )
    c = load_campaign(_write(tmp_path, text))
    assert c.contacts.default_region == "IN"
    assert [p.name for p in c.contacts.suppress] == ["dnc.csv", "dnc2.csv"]
    assert c.window is not None and c.window.start_minute == 21 * 60 and c.window.end_minute == 120
    assert c.window.days == frozenset({0, 1, 2})


def test_days_may_be_written_in_full(tmp_path: Path):
    c = load_campaign(_write(tmp_path, GOOD + '[window]\ndays = ["Monday", "sun", " friday "]\n'))
    assert c.window is not None and c.window.days == frozenset({0, 4, 6})


@pytest.mark.parametrize(
    "line",
    [
        "organization_id = 9007199254740991",
        "rate_per_second = 0.01",
        "rate_per_second = 10000",
        'endpoint = "http://[::1]:8787/t"',
        'endpoint = "https://www.tabbly.io/dashboard/agents/endpoints/trigger-call"',
    ],
)
def test_values_at_the_bounds_are_accepted(tmp_path: Path, line: str):
    key = line.split(" ")[0]
    text = GOOD.replace("organization_id = 244", line) if key == "organization_id" else GOOD
    if key == "rate_per_second":
        text += f"[dispatch]\n{line}\n"
    elif key == "endpoint":
        text = f"{line}\n{text}"
    load_campaign(_write(tmp_path, text))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda t: t.replace("agent_id = 33", "agent_id = 33\nagnet_id = 3"),
            "unknown key 'agnet_id'",
        ),
        (lambda t: t + "rate_per_secnd = 3\n", "unknown key 'contacts.rate_per_secnd'"),
        (lambda t: t.replace("agent_id = 33\n", ""), "missing required key 'agent_id'"),
        (
            lambda t: t.replace("agent_id = 33", 'agent_id = "33"'),
            "key 'agent_id' must be an integer",
        ),
        (
            lambda t: t.replace("agent_id = 33", "agent_id = true"),
            "key 'agent_id' must be an integer",
        ),
        (lambda t: t.replace('"+14156801215"', '"4156801215"'), "key 'call_from' must be E.164"),
        (lambda t: 'api_key = "sk-live-123"\n' + t, "key 'api_key' is not allowed"),
        (lambda t: t + "[dispatch]\nrate_per_second = 0\n", "rate_per_second' must be between"),
        (lambda t: t + '[window]\nhours = "9-5"\n', "key 'window.hours'"),
        (lambda t: t + '[window]\ndays = ["funday"]\n', "key 'window.days'"),
        (lambda t: t.replace("[contacts]", '[contacts]\ndefault_region = "XX"'), "default_region"),
        (
            lambda t: t.replace('first_line = "Hello {{ first_name }}"', 'first_line = " "'),
            "first_line",
        ),
        (lambda t: t.replace("name = ", "name = 1 #"), "key 'name' must be a string"),
        (lambda t: t + "this is not toml", "not valid TOML"),
        (lambda t: "dispatch = 5\n" + t, "key 'dispatch' must be a table"),
        (lambda t: t + "[dispatch]\nrate_per_second = inf\n", "must be a finite number"),
        (lambda t: t + "[dispatch]\nrate_per_second = nan\n", "must be a finite number"),
        (lambda t: t + "[dispatch]\ntimeout_seconds = nan\n", "must be a finite number"),
        # Issue 9: accepted until now.
        (lambda t: t + '[window]\ndays = ["monkey", "sunburn"]\n', "has 'monkey'"),
        (lambda t: t + '[window]\ndays = ["mon", "frid"]\n', "has 'frid'"),
        (
            lambda t: t.replace(
                "organization_id = 244", "organization_id = 100000000000000000000000"
            ),
            "key 'organization_id' must be a positive integer up to 9007199254740991",
        ),
        (
            lambda t: t.replace("agent_id = 33", "agent_id = 9007199254740992"),
            "key 'agent_id' must be a positive integer up to",
        ),
        (
            lambda t: t.replace("agent_id = 33", "agent_id = -3"),
            "key 'agent_id' must be a positive",
        ),
        (
            lambda t: t.replace('"order-followup"', '"' + "n" * 65 + '"'),
            "key 'name' must be at most 64 letters",
        ),
        (lambda t: t.replace('"order-followup"', '"../up"'), "key 'name' must be"),
        (lambda t: t + "[dispatch]\nrate_per_second = 1e-300\n", "between 0.01 and 10,000"),
        (lambda t: t + "[dispatch]\nrate_per_second = 0.009\n", "rate_per_second' must be"),
        (lambda t: t + "[dispatch]\nrate_per_second = 1e300\n", "rate_per_second' must be"),
        (lambda t: t + "[dispatch]\ntimeout_seconds = 1e-300\n", "between 0.1 and 600"),
        (lambda t: t + "[dispatch]\ntimeout_seconds = 1e9\n", "timeout_seconds' must be"),
        (lambda t: 'endpoint = "http://[::1"\n' + t, "key 'endpoint' is not a valid URL"),
        (lambda t: 'endpoint = "http://127.0.0.1:99999/x"\n' + t, "key 'endpoint' is not a valid"),
        (lambda t: 'endpoint = "ftp://example.com/x"\n' + t, "key 'endpoint' is not an http(s)"),
        (lambda t: 'endpoint = "http://exa mple.com/x"\n' + t, "key 'endpoint' has spaces"),
        (lambda t: 'endpoint = "http:///x"\n' + t, "key 'endpoint' has no valid host"),
        (lambda t: 'endpoint = "http://127.0.0.1:0/x"\n' + t, "key 'endpoint' has port 0"),
    ],
)
def test_bad_campaign_files_name_the_key(tmp_path: Path, change, message):
    path = _write(tmp_path, change(GOOD))
    with pytest.raises(CampaignError) as info:
        load_campaign(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)
    assert info.value.exit_code == ExitCode.INPUT_ERROR


def test_api_key_value_is_not_echoed_in_the_error(tmp_path: Path):
    path = _write(tmp_path, 'api_key = "sk-live-SECRET"\n' + GOOD)
    with pytest.raises(CampaignError) as info:
        load_campaign(path)
    assert "SECRET" not in str(info.value)


def test_missing_campaign_file_is_a_clean_error(tmp_path: Path):
    with pytest.raises(CampaignError, match="not found"):
        load_campaign(tmp_path / "nope.toml")


def test_cli_bad_campaign_exits_2_with_one_line(tmp_path: Path, cli):
    path = _write(tmp_path, GOOD + "bogus = 1\n")
    result = cli(["validate", str(path)])
    assert result.code == ExitCode.INPUT_ERROR
    assert result.err.count("\n") == 1 and "Traceback" not in result.err
    assert "bogus" in result.err


def test_cli_overlong_name_exits_2_naming_the_key(project, cli):
    # Until now: exit 1 "internal error" when the report folder's name was too long.
    project.write_sheet(contact_rows(1))
    project.write_campaign(name="n" * 300)

    result = cli(["validate", str(project.campaign)])

    assert result.code == ExitCode.INPUT_ERROR
    assert result.err.count("\n") == 1 and "internal error" not in result.err
    assert "key 'name' must be at most 64" in result.err
    assert not (project.root / "reports").exists()


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://[::1", "not a valid URL"),
        ("http://127.0.0.1:99999/x", "not a valid URL"),
        ("http://127.0.0.1:0/x", "port 0"),
        ("gopher://127.0.0.1/x", "not an http(s) URL"),
    ],
)
def test_cli_bad_endpoint_in_the_environment_exits_2_before_anything(project, cli, url, says):
    project.write_sheet(contact_rows(2))
    project.write_campaign()

    result = cli(["run", str(project.campaign), "--yes"], env={**KEY_ENV, "TABBLY_API_URL": url})

    assert result.code == ExitCode.INPUT_ERROR
    assert result.err.count("\n") == 1 and "internal error" not in result.err
    assert "TABBLY_API_URL in the environment" in result.err and says in result.err
    assert not project.ledger.exists() and not project.reports()


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda tmp: Path("/dev/zero"), "not a regular file"),
        (lambda tmp: (os.mkfifo(tmp / "fifo.toml"), tmp / "fifo.toml")[1], "not a regular file"),
        (lambda tmp: tmp, "not a regular file"),
        (
            lambda tmp: (
                (tmp / "huge.toml").write_text("#" * (3 * 1024 * 1024)),
                tmp / "huge.toml",
            )[1],
            "over 1024 KiB",
        ),
    ],
    ids=["dev-zero", "fifo", "folder", "3-MiB-file"],
)
def test_a_campaign_path_that_is_no_campaign_file_is_one_line_not_a_hang(
    tmp_path: Path, cli, make, says
):
    result = cli(["validate", str(make(tmp_path))])
    assert result.code == ExitCode.INPUT_ERROR
    assert says in result.err and result.err.count("\n") == 1
