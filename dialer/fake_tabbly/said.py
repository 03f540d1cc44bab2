"""What the called person said, as the fake's call logs tell it (SPEC 12): opt-outs to rehearse.

    kinds = said_numbers(map(parse_said, ["+917359043943=hindi", "+14155550100=decoy"]))
    words(kind, "order-17", shape)   # the answered row's transcript, summary, sentiment, ...

The kinds, each on the call's answered row in both log shapes:

    phrase   the person's line "User: Please stop calling me, remove my number."
    hindi    the person's line in Devanagari Hindi, "User: मुझे दोबारा कॉल मत करो।"
    json     `call_json_output` {"opt_out": "yes", "interested": "no"} (JSON text in the v2
             shape, as Tabbly's call-logs-v2 page shows it; an object in the docs shape) and
             `call_sentiment` "negative"
    outcome  `call_outcome` "do_not_call" (the docs shape's field; the v2 row carries it too)
    decoy    no opt-out: only the agent's line says "stop calling", and `call_json_output` is
             {"opt_out": "no", "interested": "yes"}

A call whose person says something is answered (it has a duration and a transcript). A share
of the other answered calls (`--said-share`) says one of the four opt-out kinds, drawn from a
generator of its own, so the outcomes drawn for every call stay what the seed gives without
it; decoys are only ever named with `--said`, so that the share is the share that opts out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from dialer.core.masking import mask_text
from dialer.fake_tabbly.rules import is_e164

SAID_KINDS = ("phrase", "hindi", "json", "outcome", "decoy")
OPT_OUT_KINDS = ("phrase", "hindi", "json", "outcome")  # what --said-share draws from

_GREETING = "Agent: Hello, this is about {0}."
# Per kind: the transcript after the greeting, the summary, the sentiment.
_WORDS = {
    "": ("User: Yes, speaking.", "Spoke about {0}.", "positive"),
    "phrase": (
        "User: Please stop calling me, remove my number.",
        "The person asked not to be called again.",
        "negative",
    ),
    "hindi": (
        "User: मुझे दोबारा कॉल मत करो।",
        "The person asked, in Hindi, not to be called again.",
        "negative",
    ),
    "json": ("User: Not now, thanks.", "The person declined.", "negative"),
    "outcome": ("User: I told you people before. No.", "The person declined.", "negative"),
    "decoy": (
        "User: No, that's fine, tell me more.",
        "The person asked for more details.",
        "positive",
    ),
}
_DECOY_AGENT = "Agent: If you want us to stop calling you, just say stop."
_JSON_OUTPUT = {
    "json": {"opt_out": "yes", "interested": "no"},
    "decoy": {"opt_out": "no", "interested": "yes"},
}


def said_numbers(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """{E.164: kind} from `parse_said`'s pairs; ValueError when a number is named twice with
    two different kinds."""
    said: dict[str, str] = {}
    for number, kind in pairs:
        if said.get(number, kind) != kind:
            shown = mask_text(number)
            raise ValueError(f"--said names {shown} twice, as {said[number]} and {kind}")
        said[number] = kind
    return said


def parse_said(spec: str) -> tuple[str, str]:
    """("+917359043943", "hindi") from "+917359043943=hindi"; ValueError when the number is
    not E.164 or the kind is not one of SAID_KINDS."""
    number, sep, kind = spec.strip().partition("=")
    number, kind = number.strip(), kind.strip().lower()
    if not sep:
        raise ValueError(f"expected E164=KIND, got {mask_text(spec)!r}")
    if not is_e164(number):
        raise ValueError(f"{mask_text(number)!r} is not an E.164 number (+ and digits)")
    if kind not in SAID_KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(SAID_KINDS)}")
    return number, kind


def describe_said(said: dict[str, str], share: float) -> str:
    """The start-up line: how many numbers say what (counted, never listed), and the share."""
    counts = {kind: sum(1 for k in said.values() if k == kind) for kind in SAID_KINDS}
    named = ", ".join(f"{kind} {n}" for kind, n in counts.items() if n)
    parts = [f"{len(said)} numbers ({named})"] if said else []
    if share:
        parts.append(f"{share:g} of the other answered calls opt out")
    return "; ".join(parts)


def words(kind: str, custom_identifiers: str, shape: str) -> dict[str, Any]:
    """An answered row's fields for what the person said ('' for nothing special): the
    transcript, summary and the fields the shape carries for this kind."""
    said, summary, sentiment = _WORDS[kind]
    lines = [_GREETING, _DECOY_AGENT, said] if kind == "decoy" else [_GREETING, said]
    fields: dict[str, Any] = {
        "transcript": "\n".join(lines).format(custom_identifiers),
        "summary": summary.format(custom_identifiers),
    }
    output = _JSON_OUTPUT.get(kind)
    if shape == "v2":
        fields["call_sentiment"] = sentiment
        fields["call_json_output"] = None if output is None else json.dumps(output)
    elif output is not None:
        fields["call_sentiment"] = sentiment
        fields["call_json_output"] = output
    if kind == "outcome":
        fields["call_outcome"] = "do_not_call"
    return fields
