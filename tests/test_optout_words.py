"""outcomes.optout_words: which call-log rows say "do not call me", and the evidence kept."""

from __future__ import annotations

import json

import pytest

from dialer.outcomes.optout_words import (
    EVIDENCE_CHARS,
    OUTCOMES,
    PHRASES,
    OptOutHeard,
    detect_optout,
    fold,
    json_value,
    optout_detector,
    said_by_person,
)

DECOY = (
    "Agent: Hello, this is Priya from Acme about your order.\n"
    "Agent: If you want us to stop calling you, just say stop, or say do not call.\n"
    "User: No, that's fine, tell me more."
)


def heard(
    transcript: str = "", summary: str = "", call_outcome: str = "", json_output: object = None
) -> OptOutHeard | None:
    return detect_optout(call_outcome, json_output, transcript, summary)


@pytest.mark.parametrize(
    ("raw", "matched"),
    [
        ("do_not_call", "do_not_call"),
        ("Do Not Call", "do_not_call"),
        ("do-not-call", "do_not_call"),
        ("DNC", "dnc"),
        ("  Opted-Out ", "opted_out"),
        ("remove me", "remove_me"),
        ("STOP_CALLING", "stop_calling"),
    ],
)
def test_call_outcome_in_the_list_normalised_is_an_opt_out(raw: str, matched: str) -> None:
    found = heard(call_outcome=raw)
    assert found == OptOutHeard("outcome", matched, f"call_outcome: {raw.strip()}")


@pytest.mark.parametrize("raw", ["appointment_scheduled", "lead_qualified", "answered", "", "do"])
def test_other_call_outcomes_are_not(raw: str) -> None:
    assert heard(call_outcome=raw) is None


def test_the_campaign_outcomes_list_replaces_the_default() -> None:
    detector = optout_detector(outcomes=["not-interested-ever"], phrases=[])
    assert detector.detect("Not Interested Ever", None, "", "") is not None
    assert detector.detect("do_not_call", None, "", "") is None


def test_detection_switched_off_finds_nothing() -> None:
    detector = optout_detector(enabled=False)
    assert detector.detect("do_not_call", {"opt_out": "yes"}, "User: stop calling me", "") is None


@pytest.mark.parametrize(
    ("value", "matched", "evidence"),
    [
        ({"opt_out": "yes", "interested": "no"}, "opt_out", "opt_out: yes"),
        ({"Opt-Out": True}, "opt_out", "Opt-Out: true"),
        ({"do not call": 1}, "do_not_call", "do not call: 1"),
        ({"disposition": "Do-Not-Call"}, "do_not_call", "disposition: Do-Not-Call"),
        ({"tags": ["interested", "DNC"]}, "dnc", 'tags: ["interested", "DNC"]'),
        ('{"unsubscribe": "yes"}', "unsubscribe", "unsubscribe: yes"),  # JSON text (v2)
        (json.dumps(json.dumps({"opt_out": "y"})), "opt_out", "opt_out: y"),  # encoded twice
        ("remove_me", "remove_me", "remove_me"),  # plain text, not JSON
        (["stop calling"], "stop_calling", '["stop calling"]'),
    ],
)
def test_call_json_output_key_or_value_in_the_list(
    value: object, matched: str, evidence: str
) -> None:
    assert heard(json_output=value) == OptOutHeard("json", matched, f"call_json_output: {evidence}")


@pytest.mark.parametrize(
    "value",
    [
        {"opt_out": "no"},
        {"opt_out": "No"},
        {"opt_out": False},
        {"opt_out": None},
        {"opt_out": 0},
        {"opt_out": ""},
        {"opted_out": "N/A"},
        {"opt_out": "unknown"},
        {"dnc": "नहीं"},
        {"interested": "yes", "summary": "asked about do not call lists"},
        {"nested": {"opt_out": "yes"}},  # top-level keys only
        '{"opt_out": "no"}',
    ],
)
def test_a_key_whose_value_says_no_or_a_sentence_is_not_an_opt_out(value: object) -> None:
    assert heard(json_output=value) is None


@pytest.mark.parametrize(
    "garbage",
    ["{not json", "[1, 2", '{"a": ' * 5000, "null", "42", "", "   ", 3.5, object(), b"dnc"],
)
def test_garbage_json_is_no_opt_out_and_no_error(garbage: object) -> None:
    assert heard(json_output=garbage) is None


def test_json_text_longer_than_the_kept_size_is_not_parsed() -> None:
    huge = json.dumps({"opt_out": "yes", "pad": "x" * 70_000})
    assert json_value(huge) == huge
    assert heard(json_output=huge) is None
    assert heard(json_output=json.loads(huge)) is not None  # a dict as given still counts


def test_outcome_is_tried_before_json_and_json_before_words() -> None:
    row = ("dnc", {"opt_out": "yes"}, "User: stop calling me", "")
    assert detect_optout(*row).source == "outcome"
    assert detect_optout("", *row[1:]).source == "json"
    assert detect_optout("", None, *row[2:]).source == "phrase"


@pytest.mark.parametrize(
    ("said", "matched"),
    [
        ("Please stop calling me.", "stop calling"),
        ("I said DON'T call me again", "don't call me"),
        ("dont call me", "don't call me"),
        ("don’t   call\tme", "don't call me"),  # typographic apostrophe, spaces
        ("Do-not-call, please", "do not call"),
        ("Take me off your list!", "take me off your list"),
        ("can you remove my number", "remove my number"),
        ("I want to opt out", "opt out"),
        ("mera number DND pe hai", "dnd"),
        ("Mujhe dobara CALL MAT karo", "call mat"),
        ("bhai phone mat karna", "phone mat"),
        ("mera number hata do please", "number hata do"),
        ("मुझे दोबारा कॉल मत करो।", "कॉल मत"),
        ("कृपया फ़ोन मत करना॥", "फोन मत"),  # nukta and double danda
        ("मेरा नंबर हटा दो", "नंबर हटा दो"),
        ("ＳＴＯＰ ＣＡＬＬＩＮＧ", "stop calling"),  # full-width, NFKC
        ("stop—calling", "stop calling"),
    ],
)
def test_a_phrase_the_person_says_is_an_opt_out(said: str, matched: str) -> None:
    found = heard(f"Agent: Hello, how are you?\nUser: {said}")
    assert found is not None
    assert (found.source, found.matched) == ("phrase", matched)
    assert found.evidence.startswith("User: ")


@pytest.mark.parametrize(
    "said",
    [
        "nonstop callings are annoying",  # whole words only
        "I do nothing, call later",
        "not interested",
        "leave it, I am busy",
        "calling mattress company",  # "call mat" is not inside other words
        "dndx",
        "हाँ बोलिए, क्या बात है?",
    ],
)
def test_words_that_only_look_like_a_phrase_are_not(said: str) -> None:
    assert heard(f"Agent: Hello\nUser: {said}") is None


def test_the_agent_offering_an_opt_out_is_not_the_person_opting_out() -> None:
    assert heard(DECOY, summary="The agent said how to stop calls.") is None


def test_only_the_persons_lines_count_in_each_labelling() -> None:
    for person in ("User", "Customer", "Human", "Caller", "callee"):
        for agent in ("Agent", "AI", "Assistant", "Bot"):
            decoy = f"{agent}: say stop calling to stop.\n{person}: hmm, ok"
            said = f"{agent}: hello\n{person}: please stop calling"
            assert heard(decoy) is None, (agent, person)
            assert heard(said) is not None, (agent, person)


def test_turns_written_on_one_line() -> None:
    assert heard("Agent: If you want, say stop calling. User: no, go on.") is None
    found = heard("Agent: Hello there. User: stop calling me. Agent: Sorry.")
    assert found is not None
    assert found.evidence == "User: stop calling me."


def test_time_stamped_and_markdown_labels() -> None:
    transcript = "[10:02:14] **Agent:** say stop calling to stop\n[10:02:20] **Customer:** ok"
    assert heard(transcript) is None
    assert heard(transcript.replace("ok", "take me off your list")) is not None


def test_a_transcript_as_json_turns() -> None:
    turns = [
        {"role": "assistant", "content": "to stop calling you, say stop"},
        {"role": "user", "content": "fine"},
    ]
    assert heard(json.dumps(turns)) is None
    turns[1]["content"] = "please stop calling me"
    found = heard(json.dumps(turns))
    assert found is not None and found.evidence == "user: please stop calling me"


def test_without_speaker_marks_the_transcript_and_the_summary_count() -> None:
    assert heard("hello, please stop calling me") is not None
    assert heard("hello, how are you", summary="The customer said: do not call again.") is not None
    assert heard("", summary="Customer asked to be removed: remove my number") is not None


def test_with_speaker_marks_the_summary_does_not_count() -> None:
    assert heard("Agent: hello\nUser: fine", summary="Customer said do not call") is None


def test_text_before_the_first_label_counts() -> None:
    assert heard("stop calling me\nAgent: sorry, bye") is not None


def test_a_phrase_never_spans_two_turns() -> None:
    assert heard("Agent: hi\nUser: I will not stop\nAgent: ok\nUser: calling is fine") is None


def test_the_campaign_phrases_replace_the_default() -> None:
    detector = optout_detector(phrases=["Not Again!"])
    assert detector.detect("", None, "User: not again", "") is not None
    assert detector.detect("", None, "User: stop calling", "") is None


def test_fold() -> None:
    assert fold("  Don’t   CALL\nme!!!  ") == "dont call me"
    assert fold("stop_calling") == "stop calling"
    assert fold("कॉल मत करो।") == "कॉल मत करो"  # vowel signs stay in their word
    assert fold("फ़ोन") == fold("फोन")
    assert fold("ZWJ\u200dinside") == "zwjinside"


def test_evidence_masks_every_number_and_stays_short() -> None:
    long_line = (
        "User: my numbers are +91 98765 43210 and 917359043943 and (415) 680-1215, "
        + "blah " * 60
        + "stop calling me "
        + "blah " * 60
        + "call +14156801215"
    )
    found = heard(long_line)
    assert found is not None
    assert len(found.evidence) <= EVIDENCE_CHARS
    assert "stop calling me" in found.evidence
    assert found.evidence.startswith("…") and found.evidence.endswith("…")
    short = heard("User: call me at +91 98765 43210, no wait, stop calling")
    assert short is not None
    assert "98765" not in short.evidence and "+91*********210" in short.evidence


def test_a_number_cut_by_the_window_is_masked_before_the_cut() -> None:
    for pad in range(0, 40, 3):
        line = "User: " + "x" * pad + " +917359043943 " + "y " * 90 + "stop calling"
        found = heard(line)
        assert found is not None
        assert "7359043" not in found.evidence and "735904" not in found.evidence


def test_evidence_from_json_and_outcome_is_masked_and_cut() -> None:
    found = heard(json_output={"opt_out": "yes, call +917359043943 never" + "!" * 300})
    assert found is not None
    assert "7359043" not in found.evidence
    assert len(found.evidence) <= EVIDENCE_CHARS


@pytest.mark.parametrize("sign", ["=", "+", "-", "@"])
def test_evidence_never_starts_a_formula(sign: str) -> None:
    found = heard(f"{sign}HYPERLINK(1) stop calling me")
    assert found is not None and found.evidence[0] not in "=+-@"
    found = heard("", summary=f"{sign}{sign} do not call")
    assert found is not None and found.evidence == "do not call"


def test_evidence_is_one_line() -> None:
    found = heard("User: please\n\nstop   calling\tme")
    assert found is not None and found.evidence == "User: please stop calling me"


def test_the_default_lists() -> None:
    assert OUTCOMES == (
        "do_not_call",
        "dnc",
        "opt_out",
        "opted_out",
        "unsubscribe",
        "remove_me",
        "stop_calling",
    )
    assert 20 <= len(PHRASES) <= 45
    assert len({fold(p) for p in PHRASES}) == len(PHRASES)  # no entry repeats another
    scripts = {"latin": any(p.isascii() for p in PHRASES)}
    scripts["devanagari"] = any("\u0900" <= c <= "\u097f" for p in PHRASES for c in p)
    assert all(scripts.values())
    for phrase in PHRASES:  # each default phrase, said by the person, is heard
        assert heard(f"Agent: hi\nUser: {phrase}") is not None, phrase
        assert heard(f"Agent: {phrase}\nUser: ok") is None, phrase


def test_said_by_person() -> None:
    assert said_by_person("Agent: a\nUser: b\nBot: c\nCustomer: d", "s") == [
        "User: b\n",
        "Customer: d",
    ]
    assert said_by_person("no labels here", "the summary") == ["no labels here", "the summary"]
    assert said_by_person("", "") == []
