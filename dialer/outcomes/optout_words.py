"""Whether a call-log row says "do not call me again" (SPEC 12): pure functions, no I/O.

    detector = optout_detector(enabled=True, outcomes=OUTCOMES, phrases=PHRASES)  # cached
    heard = detector.detect(row.call_outcome, call_json_output, row.transcript, row.summary)
    heard.source, heard.matched, heard.evidence   # "phrase", "stop calling", "User: please ..."

Three sources, tried in this order; the first that speaks wins:

    outcome  `call_outcome` (docs shape), normalised, is one of `[optout] outcomes`
    json     a top-level key of `call_json_output` (v2 shape; a dict, or JSON text) is one of
             them and its value does not say no (`{"opt_out": "yes"}`, not `{"opt_out": "no"}`),
             or a top-level string value (or a string in a top-level list) is one of them
             (`{"disposition": "do_not_call"}`)
    phrase   a phrase of `[optout] phrases` is in what the person said: their turns of a
             speaker-marked transcript (`User:`, `Customer:`, `Human:`, `Caller:`, `Callee:`
             against `Agent:`, `AI:`, `Assistant:`, `Bot:`, one turn per line or several on one
             line, or a JSON list of `{"role", "content"}` turns); else the whole transcript,
             and the summary

Outcomes and keys are compared with case, spaces and every separator removed ("Do-Not Call"
is `do_not_call`). Phrases are compared on folded text (`fold`): NFKC, casefold, apostrophes
dropped (don't, dont and don’t are one word), the Devanagari nukta dropped (फ़ोन is फोन), every
other punctuation or symbol (the danda । too) a space, spaces collapsed; a phrase matches whole
words only, so "stop calling" is not in "nonstop callings" but is in "Stop. Calling!" and in
"stop calling me". Evidence is at most `EVIDENCE_CHARS` of the person's own words around the
match, every phone number in it masked before it is cut, never starting with a character a
spreadsheet reads as a formula.

Cost per row (timeit, best of 7, on the loaded 2-core CI box): about 15 µs for an unanswered
row (no transcript; a JSON output and a summary), 40 µs for a 500-character speaker-marked
transcript, 100 to 150 µs for a 3,000-character one, 75 µs for 800 characters of Devanagari;
a sync of 100,000 rows spends a few seconds here. The phrases are compiled once per settings
(`optout_detector` caches), and only phrases whose first word is in the text are searched.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from dialer.core.masking import mask_text

Source = Literal["outcome", "json", "phrase"]

# SPEC 12's default `[optout] outcomes`.
OUTCOMES: tuple[str, ...] = (
    "do_not_call",
    "dnc",
    "opt_out",
    "opted_out",
    "unsubscribe",
    "remove_me",
    "stop_calling",
)

# The default `[optout] phrases`. Chosen so that a person who asks not to be called in the
# ways people (and speech-to-text) put it in English, in Hindi typed in Latin script
# (Hinglish) and in Hindi in Devanagari is heard, while ordinary talk is not: each entry is
# a request about calls or the number, never a mood ("not interested", "busy right now",
# "leave me alone" are answers, not opt-outs). Hindi entries are stems where the verb's
# endings vary ("call mat" covers karo, karna, kijiye, karein); whole-word matching keeps a
# stem from matching inside another word. "dnd" is India's Do-Not-Disturb register, which
# callers there name to mean exactly this. Where a phrase could be a false alarm ("do not
# call me before ten"), the list errs on the side of not calling: an opt-out can be undone
# by a person (`dialer optout remove`), a call cannot.
PHRASES: tuple[str, ...] = (
    # English
    "do not call",
    "don't call me",
    "don't call again",
    "don't call this number",
    "never call me",
    "stop calling",
    "quit calling",
    "no more calls",
    "don't contact me",
    "do not contact me",
    "stop contacting me",
    "don't ring me",
    "stop ringing me",
    "remove my number",
    "remove me from your list",
    "delete my number",
    "take me off your list",
    "take my number off",
    "put me on your do not call list",
    "opt out",
    "unsubscribe",
    "dnd",
    # Hindi, Latin script
    "call mat",
    "phone mat",
    "call na karein",
    "call na kare",
    "call nahi karna",
    "dobara call na",
    "call karna band",
    "phone karna band",
    "number hata do",
    "number hatao",
    "list se hata do",
    # Hindi, Devanagari
    "कॉल मत",
    "फोन मत",
    "कॉल न करें",
    "कॉल नहीं करना",
    "कॉल करना बंद",
    "फोन करना बंद",
    "नंबर हटा दो",
    "नंबर हटाओ",
    "नंबर हटा दीजिए",
)

EVIDENCE_CHARS = 200
# `call_json_output` text longer than this is not parsed (the sync keeps 64 KB of it).
JSON_TEXT_CHARS = 65_536

# A key's value that says no: `{"opt_out": "no"}` is an extraction that found no opt-out.
_SAYS_NO_WORDS = ("", "no", "n", "false", "f", "0", "none", "null", "nil", "n/a",
                  "not applicable", "unknown", "off", "nahi", "nahin", "नहीं")  # fmt: skip

_PERSON = ("user", "customer", "human", "caller", "callee")
_AGENT = ("agent", "ai", "assistant", "bot")
_LABELS = {label: "person" for label in _PERSON} | {label: "agent" for label in _AGENT}
# What may stand before a speaker label: a line's start, a space, a sentence's end
# ("Agent: hello. User: stop calling"), a [time] stamp's bracket.
_BEFORE_LABEL = frozenset(" \t\n\r\v\f.!?,;।|])>")
_LONGEST_LABEL = max(map(len, _LABELS))
_APOSTROPHES = "'’‘ʼ`´′"
# Invisible characters that sit inside words (joiners, soft hyphen, BOM) and the nukta.
_DROPPED = "\u00ad\u200b\u200c\u200d\u2060\ufeff\u093c" + _APOSTROPHES
_DROP = str.maketrans("", "", _DROPPED)
# `fold` of ASCII text: punctuation and symbols (and '_') a space, apostrophes gone.
_ASCII_FOLD = str.maketrans(
    {
        c: "" if c in _APOSTROPHES else " "
        for c in map(chr, range(128))
        if unicodedata.category(c)[0] in "PS"
    }
)
_FORMULA_START = "=+-@\t\r "


@dataclass(frozen=True, slots=True)
class OptOutHeard:
    """One opt-out found in a log row: what source spoke, what it matched, the words."""

    source: Source
    matched: str  # the outcome or phrase as configured
    evidence: str  # at most EVIDENCE_CHARS, numbers masked, no formula start


@lru_cache(maxsize=4096)  # a sync meets the same few outcomes and keys on every row
def outcome_key(text: str) -> str:
    """An outcome, key or value compared as SPEC 12 says: case, spaces and separators gone."""
    return "".join(c for c in unicodedata.normalize("NFKC", text).casefold() if c.isalnum())


_SAYS_NO = frozenset(map(outcome_key, _SAYS_NO_WORDS))


def fold(text: str) -> str:
    """Text as phrases are compared: NFKC, casefold, apostrophes and the nukta dropped, every
    other punctuation or symbol a space, one space between words."""
    text = unicodedata.normalize("NFKC", text).casefold()
    if text.isascii():  # str.translate's fast path: a fifth of the regex's cost
        return " ".join(text.translate(_ASCII_FOLD).split())
    return " ".join(_punctuation().sub(" ", text.translate(_DROP)).split())


class OptOutDetector:
    """The `[optout]` settings of a campaign, compiled once: `detect` runs per log row."""

    __slots__ = ("_by_first_word", "_locators", "_outcomes", "enabled")

    def __init__(self, *, enabled: bool, outcomes: Iterable[str], phrases: Iterable[str]) -> None:
        self.enabled = enabled
        self._outcomes = {outcome_key(o): o for o in outcomes if outcome_key(o)}
        # Phrases by their first word: a row's words pick the few worth a search.
        by_first: dict[str, list[tuple[str, str]]] = {}
        for folded, phrase in {fold(p): p for p in phrases if fold(p)}.items():
            by_first.setdefault(folded.split()[0], []).append((f" {folded} ", phrase))
        self._by_first_word = {word: tuple(found) for word, found in by_first.items()}
        self._locators: dict[str, re.Pattern[str]] = {}

    def detect(
        self, call_outcome: str, call_json_output: object, transcript: str, summary: str
    ) -> OptOutHeard | None:
        """The first source of the three that says the person opted out, or None."""
        if not self.enabled:
            return None
        return (
            self._from_outcome(call_outcome)
            or self._from_json(call_json_output)
            or self._from_words(transcript, summary)
        )

    def _from_outcome(self, call_outcome: object) -> OptOutHeard | None:
        if not isinstance(call_outcome, str) or not call_outcome:
            return None
        matched = self._outcomes.get(outcome_key(call_outcome))
        if matched is None:
            return None
        return OptOutHeard("outcome", matched, evidence_of(f"call_outcome: {call_outcome}"))

    def _from_json(self, call_json_output: object) -> OptOutHeard | None:
        value = json_value(call_json_output)
        if isinstance(value, dict):
            for key, item in value.items():
                matched = self._outcomes.get(outcome_key(str(key)))
                if matched is not None and not _says_no(item):
                    return self._json_heard(matched, f"{key}: {_shown(item)}")
                matched = self._matching_value(item)
                if matched is not None:
                    return self._json_heard(matched, f"{key}: {_shown(item)}")
            return None
        matched = self._matching_value(value)
        return None if matched is None else self._json_heard(matched, _shown(value))

    def _matching_value(self, value: object) -> str | None:
        """The configured outcome a string, or a string of a list, is; else None."""
        if isinstance(value, str):
            return self._outcomes.get(outcome_key(value)) if len(value) <= 200 else None
        if isinstance(value, list):
            for item in value:
                if isinstance(item, str) and (found := self._matching_value(item)):
                    return found
        return None

    @staticmethod
    def _json_heard(matched: str, shown: str) -> OptOutHeard:
        return OptOutHeard("json", matched, evidence_of(f"call_json_output: {shown}"))

    def _from_words(self, transcript: str, summary: str) -> OptOutHeard | None:
        if not self._by_first_word:
            return None
        passages = [p.replace("\0", " ") for p in said_by_person(transcript, summary)]
        if not passages:
            return None
        # One fold and one search over all passages; the NUL between them stays a word of
        # its own, so no phrase spans two of them.
        folded = fold("\n\0\n".join(passages))
        found = self._find(folded)
        if found is None:
            return None
        at, needle, phrase = found
        passage = passages[folded.count("\0", 0, at)]
        return OptOutHeard("phrase", phrase, self._evidence(passage, needle.strip()))

    def _find(self, folded_text: str) -> tuple[int, str, str] | None:
        """(where, needle, phrase) of the phrase found earliest in folded text, the longest of
        those starting there; None when none is."""
        padded = f" {folded_text} "
        best: tuple[int, str, str] | None = None
        for word in self._by_first_word.keys() & folded_text.split(" "):
            for needle, phrase in self._by_first_word[word]:
                at = padded.find(needle)
                if at >= 0 and (best is None or (at, -len(needle)) < (best[0], -len(best[1]))):
                    best = (at, needle, phrase)
        return best

    def _evidence(self, passage: str, folded_phrase: str) -> str:
        """The words around the phrase in the passage as written; the folded passage where
        the phrase cannot be placed in it (a folding the locator does not mirror)."""
        text = unicodedata.normalize("NFKC", passage)
        locator = self._locators.get(folded_phrase)
        if locator is None:
            locator = self._locators[folded_phrase] = _locator(folded_phrase)
        found = locator.search(text)
        if found is None:
            text = fold(passage)
            at = f" {text} ".find(f" {folded_phrase} ")
            return evidence_of(text, (at, at + len(folded_phrase)))
        return evidence_of(text, found.span())


@lru_cache(maxsize=64)
def _compiled(enabled: bool, outcomes: tuple[str, ...], phrases: tuple[str, ...]) -> OptOutDetector:
    return OptOutDetector(enabled=enabled, outcomes=outcomes, phrases=phrases)


def optout_detector(
    *, enabled: bool = True, outcomes: Sequence[str] = OUTCOMES, phrases: Sequence[str] = PHRASES
) -> OptOutDetector:
    """The detector for these `[optout]` settings, compiled once per distinct settings."""
    return _compiled(enabled, tuple(outcomes), tuple(phrases))


def detect_optout(
    call_outcome: str,
    call_json_output: object,
    transcript: str,
    summary: str,
    *,
    enabled: bool = True,
    outcomes: Sequence[str] = OUTCOMES,
    phrases: Sequence[str] = PHRASES,
) -> OptOutHeard | None:
    """`optout_detector(...).detect(...)` in one call."""
    detector = optout_detector(enabled=enabled, outcomes=outcomes, phrases=phrases)
    return detector.detect(call_outcome, call_json_output, transcript, summary)


def json_value(call_json_output: object) -> object:
    """`call_json_output` as a value: a dict or list as given, JSON text decoded (twice where
    it was encoded twice), any other text as itself, anything unreadable as None."""
    value = call_json_output
    for _ in range(2):
        if not isinstance(value, str):
            break
        text = value.strip()
        if not text or text[0] not in '{["' or len(text) > JSON_TEXT_CHARS:
            return text or None
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            return text
    return value if isinstance(value, dict | list | str) else None


def said_by_person(transcript: str, summary: str) -> list[str]:
    """The passages whose words count: the person's turns where the transcript marks speakers
    (text before the first label counts too: nobody can say it was the agent's); else the
    transcript and the summary."""
    turns = _json_turns(transcript)
    if turns is None:
        turns = _text_turns(transcript.replace("：", ":"))  # a full-width colon: one character
    if turns is None:
        return [text for text in (transcript, summary) if text]
    return [text for speaker, text in turns if speaker != "agent" and text.strip()]


def evidence_of(text: str, span: tuple[int, int] | None = None) -> str:
    """At most EVIDENCE_CHARS of `text` around `span` (all of it from the start if None), its
    phone numbers masked before it is cut, on one line, never opening with a formula sign."""
    masked = mask_text(text)
    if len(masked) != len(text):  # masking keeps lengths; were it not to, cut the masked text
        span = None
    text = masked
    start, end = span or (0, 0)
    room = EVIDENCE_CHARS - 2  # two "…" where both sides are cut
    if end - start >= room:
        first, last = start, start + room
    else:
        first = max(0, start - (room - (end - start)) // 2)
        last = min(len(text), first + room)
        first = max(0, last - room)
    body = " ".join(text[first:last].split()).lstrip(_FORMULA_START)
    return ("…" if first > 0 else "") + body + ("…" if last < len(text) else "")


def _says_no(value: object) -> bool:
    if value is None or value is False or value == 0:
        return True
    if isinstance(value, str):
        return outcome_key(value) in _SAYS_NO
    return isinstance(value, list | dict) and not value


def _shown(value: object) -> str:
    if isinstance(value, str):
        return value[:EVIDENCE_CHARS]
    try:
        return json.dumps(value, ensure_ascii=False)[:EVIDENCE_CHARS]
    except (TypeError, ValueError, RecursionError):
        return ""


def _text_turns(transcript: str) -> list[tuple[str, str]] | None:
    """(speaker, text) per turn of a speaker-marked transcript; None when it has no label.
    Labels are found from their colons backwards: colons are few, a scan for labels at every
    position costs four times as much."""
    labels = []  # (where the label starts, speaker)
    at = transcript.find(":")
    while at >= 0:
        label = _label_before(transcript, at)
        if label is not None:
            labels.append(label)
        at = transcript.find(":", at + 1)
    if not labels:
        return None
    turns = [("unknown", transcript[: labels[0][0]])]
    for (start, speaker), after in zip(labels, [*labels[1:], None], strict=True):
        stop = after[0] if after is not None else len(transcript)
        turns.append((speaker, transcript[start:stop]))
    return turns


def _label_before(text: str, colon: int) -> tuple[int, str] | None:
    """(start, speaker) of the label `**User** :` ending at this colon, if one does."""
    end = colon
    while end > 0 and text[end - 1] in " \t":
        end -= 1
    while end > 0 and text[end - 1] == "*":
        end -= 1
    start = end
    while start > 0 and end - start <= _LONGEST_LABEL and text[start - 1].isascii():
        if not text[start - 1].isalpha():
            break
        start -= 1
    speaker = _LABELS.get(text[start:end].casefold())
    while start > 0 and text[start - 1] == "*":
        start -= 1
    if speaker is None or (start > 0 and text[start - 1] not in _BEFORE_LABEL):
        return None
    return start, speaker


_ROLE_KEYS = ("role", "speaker", "from")
_TEXT_KEYS = ("content", "text", "message", "transcript")


def _json_turns(transcript: str) -> list[tuple[str, str]] | None:
    """(speaker, text) per turn of a transcript written as a JSON list of turn objects; None
    when it is not one."""
    if not transcript.startswith("[") or len(transcript) > 4 * JSON_TEXT_CHARS:
        return None
    try:
        turns = json.loads(transcript)
    except (ValueError, RecursionError):
        return None
    if not isinstance(turns, list) or not turns or not all(isinstance(t, dict) for t in turns):
        return None
    found = []
    for turn in turns:
        role = next((str(turn[k]) for k in _ROLE_KEYS if isinstance(turn.get(k), str)), "")
        text = next((turn[k] for k in _TEXT_KEYS if isinstance(turn.get(k), str)), "")
        speaker = _LABELS.get(role.casefold(), "unknown")
        found.append((speaker, f"{role}: {text}" if role else text))
    return found


@lru_cache(maxsize=1)
def _marks() -> str:
    """The combining marks of the Basic Multilingual Plane, as character-class ranges: `\\w`
    leaves out the vowel signs of Devanagari, yet they are letters of their word."""
    return _class_ranges(lambda c: unicodedata.category(c)[0] == "M")


@lru_cache(maxsize=1)
def _punctuation() -> re.Pattern[str]:
    """Runs of punctuation and symbols (Unicode P* and S*, the danda among them) and '_'."""
    return re.compile(f"[{_class_ranges(lambda c: unicodedata.category(c)[0] in 'PS')}_]+")


def _class_ranges(wanted: Callable[[str], bool]) -> str:
    """The BMP characters `wanted` accepts as character-class ranges (a class of ranges is
    a bitmap to the regex engine; a class of a thousand single characters is a list)."""
    ranges: list[list[int]] = []
    for code in range(0x10000):
        if wanted(chr(code)):
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1][1] = code
            else:
                ranges.append([code, code])
    return "".join(
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
        for a, b in ranges
    )


def _locator(folded_phrase: str) -> re.Pattern[str]:
    """A pattern finding a folded phrase in NFKC text as written: any case, apostrophes and
    invisible characters inside words, any punctuation or spaces between them."""
    inside = f"[{re.escape(_DROPPED)}]*"
    words = [inside.join(re.escape(c) for c in word) for word in folded_phrase.split()]
    edge = f"[\\w{_marks()}]"
    pattern = f"(?<!{edge})" + r"(?:[\W_])+".join(words) + f"(?!{edge})"
    return re.compile(pattern, re.IGNORECASE)
