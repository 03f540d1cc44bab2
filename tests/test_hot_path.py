"""The per-request shortcuts of `dialer run` give exactly what the obvious code gives."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialer.campaign.model import Campaign
from dialer.campaign.parse import load_campaign
from dialer.core.statuses import Status
from dialer.engine.pacing import Pacer
from dialer.reports.writer import REPORT_COLUMNS, ReportWriter, RowResult, report_row
from dialer.sheets.contacts import Contact
from dialer.tabbly.client import BodyBuilder, Scrubber, Secret

TRICKY = [
    "",
    'say "hi"',
    "back\\slash \\u0041 \\n",
    "tab\there\nnew line\r\x00\x01\x1f\x7f",
    "Ünïcödé नमस्ते 你好 😀 \u2028\u2029 \ufeff",
    "</script> & ' / ",
    '}, "api_key": "stolen"',
]


def _campaign(tmp_path: Path) -> Campaign:
    (tmp_path / "c.toml").write_text(
        'name = "x"\norganization_id = 244\nagent_id = 33\ncall_from = "+14156801215"\n'
        'first_line = "Hi"\n[contacts]\nsource = "c.csv"\n'
    )
    return load_campaign(tmp_path / "c.toml")


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> Campaign:
    return _campaign(tmp_path_factory.mktemp("campaign"))


def _contact(called_to: str, first_line: str, instruction: str, ids: str) -> Contact:
    return Contact(1, ids, "x", called_to, Status.READY, "", first_line, instruction, ())


def _documented(campaign: Campaign, key: str, contact: Contact) -> bytes:
    """The body as SPEC documents it, serialised the obvious way."""
    body = {
        "organization_id": campaign.organization_id,
        "use_agent_id": campaign.agent_id,
        "call_from": campaign.call_from,
        "called_by_account": campaign.called_by_account,
        "api_key": key,
        "called_to": contact.called_to,
        "custom_first_line": contact.first_line,
        "custom_instruction": contact.instruction,
        "custom_identifiers": contact.custom_identifiers,
    }
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


@pytest.mark.parametrize("text", TRICKY)
def test_spliced_body_equals_json_dumps_of_the_documented_body(tmp_path: Path, text: str) -> None:
    campaign = _campaign(tmp_path)
    contact = _contact("+917359043943", text, text[::-1], text + "C1")
    for key in ("k", text or "k", 'k"e\\y\n\u00e9'):
        assert BodyBuilder(campaign, Secret(key)).build(contact) == _documented(
            campaign, key, contact
        )


def test_a_text_utf8_cannot_carry_fails_as_json_dumps_does(tmp_path: Path) -> None:
    campaign = _campaign(tmp_path)
    contact = _contact("+917359043943", "lone \ud800 surrogate", "", "C1")
    with pytest.raises(UnicodeEncodeError):
        _documented(campaign, "k", contact)
    with pytest.raises(UnicodeEncodeError):
        BodyBuilder(campaign, Secret("k")).build(contact)


@settings(max_examples=300, deadline=None)
@given(key=st.text(min_size=1), fields=st.lists(st.text(), min_size=4, max_size=4))
def test_spliced_body_equals_json_dumps_for_any_text(
    campaign: Campaign, key: str, fields: list[str]
) -> None:
    contact = _contact(*fields)
    assert BodyBuilder(campaign, Secret(key)).build(contact) == _documented(campaign, key, contact)


def test_the_body_builder_shows_no_key(tmp_path: Path) -> None:
    builder = BodyBuilder(_campaign(tmp_path), Secret("sk-very-secret-123"))
    assert "sk-very-secret" not in repr(builder)
    assert "sk-very-secret" not in str(builder)


_KEYS = ["sk-live/ABC+d é&1", "fake-key-0000", "k y", "a%b"]


def _pattern_scrub(key: str, text: str) -> str:
    """The full pattern over the whole text, then every run of 8 or more of the key's
    characters, found the obvious way: what the scrubber must always give."""
    from dialer.tabbly.client import key_pattern

    return _runs_scrub(key, key_pattern(key).sub("***", text))


def _runs_scrub(key: str, text: str) -> str:
    from dialer.tabbly.client import KEY_FRAGMENT_CHARS

    covered = [False] * len(text)
    for i in range(len(text)):
        for j in (j for j, c in enumerate(key) if c == text[i]):
            size = 0
            while i + size < len(text) and j + size < len(key) and text[i + size] == key[j + size]:
                size += 1
            if size >= KEY_FRAGMENT_CHARS:
                covered[i : i + size] = [True] * size
    out, i = [], 0
    while i < len(text):
        if covered[i]:
            while i < len(text) and covered[i]:
                i += 1
            out.append("***")
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _forms(char: str) -> list[str]:
    """Ways an upstream may send one character of the key back."""
    utf8 = char.encode()
    forms = [char, f"\\u{ord(char):04x}", f"\\\\u{ord(char):04X}", f"&#{ord(char)};"]
    forms += ["".join(f"%{b:02x}" for b in utf8), "".join(f"%25{b:02X}" for b in utf8)]
    forms += [f"&amp;#x{ord(char):x};", *(["+"] if char == " " else [])]
    return forms


@st.composite
def _near_keys(draw: st.DrawFn) -> tuple[str, str]:
    """A key, and text made of pieces of the key's forms, whole or cut, and noise."""
    key = draw(st.sampled_from(_KEYS))
    pieces = [form for char in key for form in _forms(char)]
    pieces += [key, key[:3], key[3:], "x", '"', "\\", " ", "&", "%", "+", "room-1"]
    return key, "".join(draw(st.lists(st.sampled_from(pieces), max_size=40)))


@settings(max_examples=1000, deadline=None)
@given(case=_near_keys())
def test_scrubber_shortcut_equals_the_full_pattern(case: tuple[str, str]) -> None:
    key, text = case
    every_form = [form + key[1:] for form in _forms(key[0])]
    for candidate in (text, text + key, *(f"{text}{form}{text}" for form in every_form)):
        assert Scrubber(Secret(key))(candidate) == _pattern_scrub(key, candidate)


@st.composite
def _key_runs(draw: st.DrawFn) -> tuple[str, str]:
    """A key (periodic ones too), and text made of stretches of it and noise."""
    key = draw(st.sampled_from([*_KEYS, "sk-live-ZZTOPSECRET1234abcd", "a" * 12, "ab" * 9]))
    ends = st.tuples(st.integers(0, len(key)), st.integers(0, len(key)))
    stretch = ends.map(lambda e: key[min(e) : max(e)])
    pieces = st.one_of(stretch, st.sampled_from(["x", " ", "a", "b", "-", "ab"]))
    return key, "".join(draw(st.lists(pieces, max_size=12)))


@settings(max_examples=500, deadline=None)
@given(case=_key_runs())
def test_scrubber_removes_runs_of_the_key_as_the_obvious_search_does(
    case: tuple[str, str],
) -> None:
    key, text = case
    assert Scrubber(Secret(key))(text) == _pattern_scrub(key, text)


def test_scrubber_shortcut_removes_the_plain_key_and_leaves_other_text() -> None:
    scrub = Scrubber(Secret("fake-key-0000"))
    assert scrub('{"room_name": "fake-key-0000fake-key-0000"}') == '{"room_name": "******"}'
    assert scrub('{"success": true, "room_name": "room-1"}') == (
        '{"success": true, "room_name": "room-1"}'
    )
    assert Scrubber(Secret("a b"))("x a+b y") == "x *** y"  # a space may come back as "+"


def test_report_rows_are_the_bytes_a_csv_writer_makes(tmp_path: Path) -> None:
    """Rows are encoded straight from `csv.writer`: quoting, line ends and UTF-8 as before."""
    headers = ["a", "b"]
    results = []
    for row, text in enumerate(TRICKY, start=1):
        contact = Contact(
            row, text, "=1+1", "+917359043943", Status.READY, text, "", "", (text, "@x")
        )
        results.append(RowResult(contact, Status.TRIGGERED, text, 200, 1, text, "s", "f"))
    with ReportWriter(tmp_path / "r.csv", headers) as report:
        for result in results:
            report.write(result)
    expected = io.StringIO()
    writer = csv.writer(expected)
    writer.writerow([*REPORT_COLUMNS, *headers])
    writer.writerows(report_row(r) for r in results)
    assert (tmp_path / "r.csv").read_bytes() == expected.getvalue().encode("utf-8")


@pytest.mark.parametrize("which", [0, 57, 199])
def test_a_grant_given_back_from_a_full_log_frees_exactly_one_slot(which: int) -> None:
    """The send log is searched by bisection: any one grant, oldest to newest, is found."""
    from tests.test_pacing import FakeTime

    t = FakeTime()
    pacer = Pacer(200, clock=t.clock, sleep=t.sleep)

    async def go() -> tuple[int, int]:
        grants = []
        for _ in range(200):  # a full second's budget, 1 ms apart
            grants.append(await pacer.wait())
            t.now += 0.001
        pacer.give_back(grants[which])
        pacer.give_back(t.now + 5)  # never granted: nothing to free
        await pacer.wait()
        after_freed = len(t.sleeps)
        await pacer.wait()  # the budget is full again: this one waits for the oldest
        return after_freed, len(t.sleeps)

    assert asyncio.run(go()) == (0, 1)  # the slot given back is used at once, and only one
