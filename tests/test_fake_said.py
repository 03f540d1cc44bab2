"""fake-tabbly --said / --said-share: what the called person said, in both call-log shapes, read
by the opt-out detector as the sync will read it."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from typing import Any

import pytest

from dialer.fake_tabbly import (
    DEFAULT_AGENT_ID,
    DEFAULT_API_KEY,
    DEFAULT_CALL_FROM,
    DEFAULT_ORGANIZATION_ID,
    SAID_KINDS,
    FakeTabbly,
    FakeTabblyProcess,
    FakeTabblyThread,
)
from dialer.outcomes.optout_words import detect_optout

BOUND = 10.0
SAID = {
    "+917359043901": "phrase",
    "+917359043902": "hindi",
    "+917359043903": "json",
    "+917359043904": "outcome",
    "+917359043905": "decoy",
}
QUIET = "+917359043906"  # says nothing of note
OPTED_OUT = {n: k for n, k in SAID.items() if k != "decoy"}


def trigger(url: str, called_to: str) -> None:
    body = {
        "organization_id": DEFAULT_ORGANIZATION_ID,
        "use_agent_id": DEFAULT_AGENT_ID,
        "called_to": called_to,
        "call_from": DEFAULT_CALL_FROM,
        "custom_first_line": "Hello, calling from Company XYZ",
        "custom_instruction": "",
        "called_by_account": "API",
        "api_key": DEFAULT_API_KEY,
        "custom_identifiers": f"row-{called_to[-2:]}",
    }
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=BOUND) as answer:
        assert answer.status == 200


def log_rows(fake: FakeTabbly) -> list[dict[str, Any]]:
    """Every row of the fake's agent, as the API serves them in its current shape."""
    query = urllib.parse.urlencode(
        {"api_key": DEFAULT_API_KEY, "organization_id": DEFAULT_ORGANIZATION_ID, "limit": 1000}
    )
    with urllib.request.urlopen(f"{fake.logs_url}?{query}", timeout=BOUND) as answer:
        envelope = json.load(answer)
    rows = envelope["data"] if fake.logs_shape == "v2" else envelope["calls"]
    return [r for r in rows if (r.get("use_agent_id") or r.get("agent_id")) == DEFAULT_AGENT_ID]


def heard_in(row: dict[str, Any]) -> tuple[str, str] | None:
    """(source, matched) the detector finds in a raw row, by either shape's field names."""
    found = detect_optout(
        row.get("call_outcome") or "",
        row.get("call_json_output"),
        row.get("call_transcript") or row.get("transcript") or "",
        row.get("call_summary") or "",
    )
    return None if found is None else (found.source, found.matched)


@pytest.mark.parametrize("shape", ["v2", "docs"])
def test_each_kind_reaches_the_detector_in_both_shapes(shape: str) -> None:
    # Nobody would answer; the people who say something do.
    with FakeTabblyThread(said=SAID, outcomes={"no_answer": 1.0}, logs_shape=shape, seed=3) as fake:
        for number in [*SAID, QUIET]:
            trigger(fake.url, number)
        rows = log_rows(fake)
        said = fake.logs.said()
    heard = {r["called_to"]: heard_in(r) for r in rows if heard_in(r) is not None}
    assert heard == {
        "+917359043901": ("phrase", "stop calling"),
        "+917359043902": ("phrase", "कॉल मत"),
        "+917359043903": ("json", "opt_out"),
        "+917359043904": ("outcome", "do_not_call"),
    }
    assert said == SAID
    ours = [r for r in rows if r["called_to"] in [*SAID, QUIET]]  # not the strangers' rows
    talked = {r["called_to"] for r in ours if int(r["call_duration"]) > 0}
    assert talked == set(SAID)  # answered: a duration; the quiet one was not answered
    real = {r["called_to"]: r for r in ours if int(r["call_duration"]) > 0}
    transcript = "call_transcript" if shape == "v2" else "transcript"
    assert "User: मुझे दोबारा कॉल मत करो।" in real["+917359043902"][transcript]
    assert "stop calling" in real["+917359043905"][transcript].split("\n")[1]  # the agent's
    json_output = real["+917359043903"]["call_json_output"]
    assert (json.loads(json_output) if shape == "v2" else json_output)["opt_out"] == "yes"
    assert real["+917359043903"]["call_sentiment"] == "negative"
    assert real["+917359043905"]["call_json_output"] is not None  # {"opt_out": "no"}: no


def test_a_share_of_answered_calls_opts_out_seeded_never_as_the_decoy() -> None:
    numbers = [f"+9173590440{i:02d}" for i in range(40)]

    def run(share: float) -> tuple[dict[str, str], list[str]]:
        with FakeTabblyThread(said_share=share, seed=11) as fake:
            for number in numbers:
                trigger(fake.url, number)
            heard = {r["called_to"] for r in log_rows(fake) if heard_in(r) is not None}
            said = fake.logs.said()
            assert set(said) == heard  # every drawn opt-out is one the detector finds
            return said, [c["outcome"] for c in fake.logs.calls()]

    said, outcomes = run(0.5)
    answered = {n for n, o in zip(numbers, outcomes, strict=True) if o == "answered"}
    assert set(said) <= answered and 0 < len(said) < len(answered)
    assert set(said.values()) <= set(SAID_KINDS) - {"decoy"}
    assert run(0.5) == (said, outcomes)  # seeded
    assert run(0.0) == ({}, outcomes)  # and the outcomes drawn are the same without it


def test_the_cli_option_and_the_state_endpoint() -> None:
    with FakeTabblyProcess("--said", "+917359043902=hindi", "--said-share", "0") as fake:
        trigger(fake.url, "+917359043902")
        state = fake.state()
    assert state["said"] == {"+917359043902": "hindi"}
    assert state["calls"][0]["said"] == "hindi"
    assert state["calls"][0]["outcome"] == "answered"


@pytest.mark.parametrize(
    ("said", "message"),
    [
        ("917359043901=phrase", "is not an E.164 number"),
        ("+91 73590 43901=phrase", "is not an E.164 number"),
        ("+917359043901=shout", "unknown kind 'shout'; expected one of phrase, hindi"),
        ("+917359043901", "expected E164=KIND"),
        ("+917359043901=", "unknown kind ''"),
    ],
)
def test_a_bad_said_is_a_clear_error_exit_2(cli: Any, said: str, message: str) -> None:
    result = cli(["fake-tabbly", "--port", "0", "--said", said])
    assert result.code == 2
    assert message in result.err
    assert "Traceback" not in result.err
    assert "7359043901" not in result.err  # the number shown masked


def test_one_number_named_with_two_kinds_is_exit_2(cli: Any) -> None:
    result = cli(
        [
            "fake-tabbly",
            "--port",
            "0",
            "--said",
            "+917359043901=json",
            "--said",
            "+917359043901=hindi",
        ]
    )
    assert result.code == 2
    assert "twice, as json and hindi" in result.err
    assert len(result.err.strip().splitlines()) == 1


@pytest.mark.parametrize("share", ["-0.1", "1.5", "lots"])
def test_a_share_outside_0_to_1_is_exit_2(cli: Any, share: str) -> None:
    assert cli(["fake-tabbly", "--port", "0", "--said-share", share]).code == 2


def test_the_fake_refuses_an_unknown_kind_given_in_code() -> None:
    with pytest.raises(ValueError, match="unknown said kind"):
        FakeTabbly(said={"+917359043901": "shout"})
    with pytest.raises(ValueError, match="said_share"):
        FakeTabbly(said_share=2.0)
