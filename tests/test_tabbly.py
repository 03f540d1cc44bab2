"""Every upstream answer maps to exactly one outcome; "maybe placed" is never retryable."""

from __future__ import annotations

import json

import pytest

from dialer.campaign.parse import load_campaign
from dialer.core.statuses import Status
from dialer.sheets.contacts import Contact
from dialer.tabbly.client import BodyBuilder, Kind, Secret, classify, parse_retry_after

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


# -- the key in upstream answers (SPEC 7): removed after decoding, in every encoding -----------

_KEY = "sk-live/ABC+def&0"


def _forms(key: str) -> dict[str, str]:
    return {
        "plain": key,
        "json": "".join(f"\\u{ord(c):04x}" for c in key),
        "json upper": "".join(f"\\u{ord(c):04X}" for c in key),
        "json doubled": "".join(f"\\\\u{ord(c):04x}" for c in key),
        "json partly": key[:4] + "".join(f"\\u{ord(c):04x}" for c in key[4:]),
        "percent": "".join(f"%{b:02X}" for b in key.encode()),
        "percent lower": "".join(f"%{b:02x}" for b in key.encode()),
        "percent doubled": "".join(f"%25{b:02X}" for b in key.encode()),
        "html decimal": "".join(f"&#{ord(c)};" for c in key),
        "html hex": "".join(f"&#x{ord(c):X};" for c in key),
        "html doubled": "".join(f"&amp;#{ord(c)};" for c in key),
        "mixed": "s%6B-&#108;ive\\u002fABC+def&amp;0",
    }


@pytest.mark.parametrize("form", list(_forms(_KEY)))
def test_scrubber_removes_the_key_in_every_encoding(form: str):
    from dialer.tabbly.client import Scrubber

    text = f"before {_forms(_KEY)[form]} after"
    assert Scrubber(Secret(_KEY))(text) == "before *** after"


def test_scrubber_leaves_other_text_and_an_empty_key_alone():
    from dialer.tabbly.client import Scrubber

    # Runs of fewer than 8 of the key's characters are not the key.
    assert Scrubber(Secret(_KEY))("sk-live ABC+def 0 %41") == "sk-live ABC+def 0 %41"
    assert Scrubber(Secret(""))("anything") == "anything"
    assert "sk-live" not in repr(Scrubber(Secret(_KEY)))


def test_classify_scrubs_the_decoded_text_before_cutting_it():
    from dialer.tabbly.client import Scrubber

    scrub = Scrubber(Secret(_KEY))
    escaped = "".join(f"\\u{ord(c):04x}" for c in _KEY)
    # Decoded, the key straddles the 200-character cut of the reason.
    body = '{"error": "' + "x" * 190 + " " + escaped + '"}'
    outcome = classify(400, scrub(body), None, scrub)
    assert "sk-live" not in outcome.reason and "ABC" not in outcome.reason
    room = '{"success": true, "room_name": "room-' + escaped + '"}'
    assert classify(200, scrub(room), None, scrub).call_id == "room-***"


def test_a_key_echoed_escaped_reaches_no_report_ledger_or_console(project, cli, fake):
    # The real fake Tabbly, scripted to echo the key JSON-escaped, percent-encoded and as HTML
    # character references, in errors of each kind and in a success's room_name (call_id).
    from tests.conftest import KEY_ENV, contact_rows

    project.write_sheet(contact_rows(5))
    project.write_campaign(fake.url, dispatch="concurrency = 1\nmax_attempts = 2")
    fake.script("echo:400", "echo:200", "echo:504", "echo:500", "echo:500", "echo:404")

    result = cli(["run", str(project.campaign), "--yes"], env=KEY_ENV)

    key = KEY_ENV["TABBLY_API_KEY"]
    assert len(fake.received) == 6 and result.code == 4
    rows = project.report_rows()
    assert any(r["call_id"] == "room-***" for r in rows)
    assert any("bad key *** *** ***" in r["reason"] for r in rows)
    files = [p for p in project.root.rglob("*") if p.is_file() and "data" not in p.parts]
    assert any(p.suffix == ".sqlite" for p in files) and any(p.suffix == ".json" for p in files)
    seen = {str(p): p.read_bytes().decode("utf-8", "replace") for p in files}
    seen |= {"stdout": result.out, "stderr": result.err}
    for where, text in seen.items():
        for form, encoded in _forms(key).items():
            if form != "mixed":
                assert encoded not in text, f"the key ({form}) is in {where}"
