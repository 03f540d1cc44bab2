"""The quick paths of `dialer validate` do what the plain ones do.

Preparing uses the cores the process may run on, not the machine's count; the report's rows are
csv.writer's text, byte for byte; a plain template renders what Jinja2 renders.
"""

from __future__ import annotations

import csv
import io
import os
import random
from collections.abc import Iterator
from dataclasses import replace

import pytest
from conftest import Project, contact_rows
from jinja2 import TemplateSyntaxError

from dialer.campaign.parse import load_campaign
from dialer.core.settings import DEFAULTS
from dialer.reports.writer import csv_text
from dialer.sheets.contacts import JinjaTemplate, PlainTemplate
from dialer.sheets.pipeline import open_contacts
from dialer.templating.sandbox import BoundedEnvironment, compile_template


@pytest.fixture
def affinity() -> Iterator[set[int]]:
    """The cores this thread may use; restored after the test."""
    before = os.sched_getaffinity(0)
    yield before
    os.sched_setaffinity(0, before)


def _pool_started(project: Project) -> bool:
    project.write_sheet(contact_rows(20))
    project.write_campaign()
    # This small sheet counts as large.
    large_from_0 = replace(DEFAULTS, parallel_from_bytes=0)
    stream = open_contacts(load_campaign(project.campaign), settings=large_from_0)
    try:
        return stream.pool is not None
    finally:
        stream.close()


def test_a_process_pinned_to_one_core_prepares_in_one_process(
    project: Project, affinity: set[int]
) -> None:
    """`taskset -c 0 dialer validate`: workers on the same core would only add pickling."""
    os.sched_setaffinity(0, {min(affinity)})
    assert not _pool_started(project)


def test_a_process_with_two_cores_starts_workers(project: Project, affinity: set[int]) -> None:
    if len(affinity) < 2:
        pytest.skip("this machine gives the tests one core")
    assert _pool_started(project)


# --- the report's text ----------------------------------------------------------------------

_PIECES = ["", "a", "Diya", "+91 60000 15838", "0", ",", '"', "'", "\r", "\n", "\r\n", "\0", " ",
           "\t", ";", "=1+2", "\u00a0", "\u2028", "é", "x,y", 'say "hi"']  # fmt: skip


def _text(rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue()


def test_report_rows_are_csv_writers_text_for_any_cells() -> None:
    rng = random.Random(5)
    rows = [
        ["".join(rng.choices(_PIECES, k=rng.randint(0, 3))) for _ in range(rng.randint(0, 6))]
        for _ in range(5_000)
    ]
    buffer = io.StringIO()
    assert csv_text(rows, buffer, csv.writer(buffer)) == _text(rows)
    assert csv_text([], buffer, csv.writer(buffer)) == ""
    # Each kind of row was there: plain ones (joined) and ones the writer must quote.
    assert sum('"' in _text([row]) for row in rows) > 1_000
    assert sum('"' not in _text([row]) and len(row) > 1 for row in rows) > 500


# --- plain templates: Jinja2's answer without its runtime -----------------------------------

_NAMES = ["first_name", "order_id", "a", "x1", "_u", "名前"]
_TEXT = ["Hello ", ", ", " about order ", ".", "{", "}", " { x } ", "}}", "%s", "{0}", "  ", "\n"]
_VALUES = ["Asha", "", " ", "{0}", "{first_name}", "}{", "a  b", "%s", "O-1", "\t x \n"]


def test_plain_templates_render_as_jinja2_does() -> None:
    rng = random.Random(11)
    env = BoundedEnvironment()
    checked = 0
    for _ in range(3_000):
        pieces = [
            f"{{{{ {rng.choice(_NAMES)} }}}}" if rng.random() < 0.4 else rng.choice(_TEXT)
            for _ in range(rng.randint(1, 6))
        ]
        source = "".join(pieces)
        try:
            plain = PlainTemplate.maybe(env, source)
            jinja = JinjaTemplate(compile_template(env, source))
        except TemplateSyntaxError:
            continue
        if plain is None:
            continue  # "{{0}}" and the like: Jinja2 renders it itself
        context = {n: rng.choice(_VALUES) for n in _NAMES if rng.random() < 0.7}
        assert plain.render(context) == jinja.render(context), (source, context)
        checked += 1
    assert checked > 2_000
