"""Every upstream answer maps to exactly one outcome; "maybe placed" is never retryable."""

from __future__ import annotations

import json

import pytest

from dialer.campaign import load_campaign
from dialer.contacts import Contact
from dialer.statuses import RETRYABLE_HTTP, Status
from dialer.tabbly import BodyBuilder, Kind, Secret, classify, parse_retry_after

OK_BODY = json.dumps(
    {
        "success": True,
        "sip_trunk_id": "t",
        "sip_call_to": "+91",
        "room_name": "room-7",
        "participant_identity": "p",
        "participant_name": "n",
    }
)


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (200, OK_BODY, Kind.TRIGGERED),
        (200, "", Kind.UNKNOWN),
        (200, "<html>ok</html>", Kind.UNKNOWN),
        (200, '{"success": false, "error": "nope"}', Kind.FAILED),
        (400, '{"error": "Missing required fields"}', Kind.FAILED),
        (401, "", Kind.STOP_CAMPAIGN),
        (403, "<html>forbidden</html>", Kind.STOP_CAMPAIGN),
        (404, '{"error": "agent not found"}', Kind.STOP_CAMPAIGN),
        (402, '{"error": "Insufficient wallet balance"}', Kind.STOP_BALANCE),
        (429, "", Kind.RETRY),
        (500, "<html>boom</html>", Kind.RETRY),
        (502, "", Kind.RETRY),
        (503, "", Kind.RETRY),
        (504, "", Kind.UNKNOWN),
        (408, "", Kind.FAILED),
        (501, "", Kind.UNKNOWN),
    ],
)
def test_answers_map_to_one_outcome(status, body, kind):
    assert classify(status, body, None).kind is kind


def test_triggered_keeps_room_name_as_call_id():
    outcome = classify(200, OK_BODY, None)
    assert outcome.call_id == "room-7" and outcome.http_status == 200


def test_only_answers_that_certainly_placed_no_call_are_retryable():
    assert {429, 500, 502, 503} == RETRYABLE_HTTP
    assert 504 not in RETRYABLE_HTTP and 408 not in RETRYABLE_HTTP


def test_html_error_page_gives_a_short_reason():
    assert classify(500, "<!DOCTYPE html><html>...</html>", None).reason == "500: HTML error page"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("2", 2.0), ("0.5", 0.5), ("-3", 0.0), ("99999", 300.0), (None, None), ("soon", None)],
)
def test_retry_after_parsing(value, seconds):
    assert parse_retry_after(value) == seconds


def test_retry_after_http_date_in_the_past_is_zero():
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_secret_never_shows_in_repr_or_str():
    secret = Secret("sk-live-123")
    assert "sk-live" not in repr(secret) and "sk-live" not in str(secret)
    assert "sk-live" not in f"{secret}"


def test_body_has_exactly_the_documented_keys_and_types(tmp_path):
    (tmp_path / "c.toml").write_text(
        'name = "x"\norganization_id = 244\nagent_id = 33\ncall_from = "+14156801215"\n'
        'first_line = "Hi"\n[contacts]\nsource = "c.csv"\n'
    )
    campaign = load_campaign(tmp_path / "c.toml")
    contact = Contact(
        row=1,
        custom_identifiers="C1",
        phone_raw="x",
        called_to="+917359043943",
        status=Status.READY,
        reason="",
        first_line="Hi Asha",
        instruction="",
        cells=(),
    )
    body = json.loads(BodyBuilder(campaign, Secret("k")).build(contact))
    assert body == {
        "organization_id": 244,
        "use_agent_id": 33,
        "called_to": "+917359043943",
        "call_from": "+14156801215",
        "custom_first_line": "Hi Asha",
        "custom_instruction": "",
        "called_by_account": "API",
        "api_key": "k",
        "custom_identifiers": "C1",
    }
