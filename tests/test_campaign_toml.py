"""campaign_toml: a form saved is the campaign loaded, strings survive, bad forms never land."""

from __future__ import annotations

import dataclasses
import os
import shutil
import tomllib
from pathlib import Path

import pytest

from dialer.campaign.parse import load_campaign
from dialer.core.statuses import CampaignError
from dialer.web.services.campaign_toml import (
    CampaignForm,
    check_form,
    field_of,
    form_from_campaign,
    render_toml,
    save_campaign,
    without_unused_columns,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A project with the example campaign and its do-not-call list, paths as shipped."""
    (tmp_path / "campaigns").mkdir()
    (tmp_path / "sample_data").mkdir()
    shutil.copy(ROOT / "campaigns" / "example.toml", tmp_path / "campaigns" / "example.toml")
    shutil.copy(ROOT / "sample_data" / "dnc.csv", tmp_path / "sample_data" / "dnc.csv")
    return tmp_path / "campaigns"


def _form(**changes: object) -> CampaignForm:
    base = CampaignForm(
        name="spring",
        organization_id=244,
        agent_id=33,
        call_from="+14156801215",
        first_line="Hello {{ first_name }}",
    )
    return dataclasses.replace(base, **changes)


def test_saving_the_form_of_a_campaign_loads_the_same_campaign(folder):
    before = load_campaign(folder / "example.toml")
    saved = save_campaign(folder, form_from_campaign(before))
    after = load_campaign(saved)
    assert saved == folder / "example.toml"
    assert after == before  # every key, the do-not-call list's resolved path included
    assert (folder / "example.toml.bak").read_bytes() == (
        ROOT / "campaigns" / "example.toml"
    ).read_bytes()


def test_every_page_key_round_trips(folder):
    form = _form(
        instruction='Line one\nline "two" with a \\ backslash and a tab\t{{ first_name }}',
        default_region="IN",
        window_hours="09:30-18:00",
        window_days=("mon", "wed"),
        rate_per_second=0.5,
        redial=True,
        redial_outcomes=("busy", "no_answer"),
        redial_after_minutes=30.0,
        redial_max_calls=2,
        limits_per_day=1,
        limits_per_week=3,
        cost_per_call=0.75,
    )
    campaign = load_campaign(save_campaign(folder, form, create=True))
    assert form_from_campaign(campaign) == dataclasses.replace(form, source="../data/spring/*")
    assert campaign.instruction == form.instruction
    assert campaign.window is not None and campaign.window.days == frozenset({0, 2})
    assert campaign.cost_per_call == 0.75


def test_a_saved_campaign_keeps_its_cost_per_call(folder):
    path = folder / "example.toml"
    path.write_text(
        path.read_text().replace('name = "example"', 'name = "example"\ncost_per_call = 2')
    )
    before = load_campaign(path)
    assert before.cost_per_call == 2.0
    assert load_campaign(save_campaign(folder, form_from_campaign(before))) == before


@pytest.mark.parametrize(
    "text",
    ['"', "\\", "\\u0041", "'''", '"""', "\x00\x1f\x7f", "line\r\nbreak", "ümlaut 名前", "#x"],
)
def test_any_text_is_valid_toml_and_comes_back_unchanged(text):
    rendered = render_toml(_form(first_line=text, columns={"a b": text}, defaults={"k": text}))
    data = tomllib.loads(rendered)
    assert data["first_line"] == text
    assert data["contacts"]["columns"] == {"a b": text}
    assert data["contacts"]["defaults"] == {"k": text}


def test_columns_and_defaults_are_inline_tables_under_contacts():
    rendered = render_toml(
        _form(columns={"phone": "Mobile No.", "first_name": "Customer Name"}, defaults={})
    )
    assert 'columns = { phone = "Mobile No.", first_name = "Customer Name" }' in rendered
    assert "defaults" not in rendered
    data = tomllib.loads(rendered)
    assert data["contacts"]["columns"]["phone"] == "Mobile No."


def test_a_form_that_does_not_load_is_never_written(folder):
    original = (folder / "example.toml").read_bytes()
    form = dataclasses.replace(form_from_campaign(load_campaign(folder / "example.toml")))
    with pytest.raises(CampaignError) as caught:
        save_campaign(folder, dataclasses.replace(form, call_from="0415 680"))
    message = str(caught.value)
    assert message.startswith("example.toml: key 'call_from'") and "\n" not in message
    assert field_of(message) == "call_from"
    assert (folder / "example.toml").read_bytes() == original
    assert sorted(os.listdir(folder)) == ["example.toml"]  # no temp file, no .bak


def test_a_greeting_that_does_not_compile_is_refused_naming_it(folder):
    with pytest.raises(CampaignError) as caught:
        save_campaign(folder, _form(first_line="Hello {{ first_name "))
    assert field_of(str(caught.value)) == "first_line"
    assert not (folder / "spring.toml").exists()


def test_create_refuses_an_existing_file(folder):
    with pytest.raises(CampaignError, match="exists already"):
        save_campaign(folder, _form(name="example"), create=True)
    assert load_campaign(folder / "example.toml").agent_id == 33


def test_a_name_that_is_no_file_name_is_refused_before_anything_is_written(folder):
    for name in ("../evil", "a/b", "", "x" * 65):
        with pytest.raises(CampaignError) as caught:
            save_campaign(folder, _form(name=name))
        assert field_of(str(caught.value)) == "name"
    assert sorted(os.listdir(folder)) == ["example.toml"]


def test_check_form_writes_nothing(folder):
    campaign = check_form(folder, _form(suppress=("../sample_data/dnc.csv",)))
    assert campaign.path == folder / "spring.toml"
    assert campaign.contacts.suppress[0].resolve() == (folder.parent / "sample_data" / "dnc.csv")
    assert sorted(os.listdir(folder)) == ["example.toml"]


def test_columns_and_defaults_of_names_no_longer_used_are_dropped():
    form = _form(
        first_line="Hi {{ first_name }}",
        instruction="",
        id_column="customer_id",
        timezone_column="tz",
        columns={"phone": "Mobile", "customer_id": "Cust", "first_name": "Name", "tz": "Zone"}
        | {"order_id": "Order #"},
        defaults={"first_name": "there", "order_date": "soon"},
    )
    kept = without_unused_columns(form)
    assert kept.columns == {"phone": "Mobile", "customer_id": "Cust", "first_name": "Name"}
    assert kept.defaults == {"first_name": "there"}
    with_window = without_unused_columns(dataclasses.replace(form, window_hours="09:00-18:00"))
    assert with_window.columns["tz"] == "Zone"
    broken = dataclasses.replace(form, first_line="Hi {{ first_name ")
    assert without_unused_columns(broken) == broken  # compiling it names the error


def test_a_new_campaign_with_calling_hours_calls_every_day(folder):
    path = save_campaign(folder, _form(window_hours="09:00-20:00"), create=True)
    assert load_campaign(path).window.days == frozenset(range(7))


def test_the_currency_is_written_back_and_kept_when_saved_from_the_page(folder):
    path = save_campaign(folder, _form(currency="EUR"), create=True)
    campaign = load_campaign(path)
    assert campaign.currency == "EUR"
    save_campaign(folder, form_from_campaign(campaign))
    assert load_campaign(path).currency == "EUR"
    assert 'currency = "EUR"' in path.read_text("utf-8")


@pytest.mark.parametrize("hours", [None, "09:30-18:00"])
def test_saving_from_the_page_keeps_the_legal_hours_skip_dates_and_optout_words(folder, hours):
    """Keys the form does not show are written back as the file had them: a page edit must
    never widen a campaign's legal hours again, nor forget its opt-out words."""
    form = _form(
        window_hours=hours,
        legal_hours=(("IN", "10:00-19:00"), ("US", "09:00-20:00")),
        skip_dates=("2026-12-25", "2027-01-01"),
        optout_enabled=False,
        optout_outcomes=("dnc",),
        optout_phrases=("stop calling", "कॉल मत करो"),
    )
    campaign = load_campaign(save_campaign(folder, form, create=True))
    assert campaign.legal.tightening == form.legal_hours
    assert sorted(d.isoformat() for d in campaign.legal.skip_dates) == list(form.skip_dates)
    assert (campaign.window is None) == (hours is None)
    assert not campaign.optout.enabled
    assert campaign.optout.phrases == form.optout_phrases
    again = form_from_campaign(campaign)
    assert load_campaign(save_campaign(folder, again)) == campaign
