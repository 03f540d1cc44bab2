"""Templates cannot hang a run or eat its memory (SPEC 4.4, 7): a template that breaks a bound is
a campaign error at load (exit 2, naming the key) or an `invalid` row with the reason.

The bombs run `dialer validate` in a child process under a 1 GiB address-space limit and a
timeout, so that without the bounds the test fails instead of taking the machine down.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import pytest

from dialer.campaign.parse import load_campaign
from dialer.core.settings import DEFAULTS
from dialer.core.statuses import ExitCode
from dialer.sheets.pipeline import open_contacts
from tests.conftest import Project, contact_rows

_LIMIT_BYTES = 1 << 30
_TIMEOUT = 60


# `python -m dialer` with its address space limited first (not preexec_fn: unsafe with threads).
_LIMITED_DIALER = (
    "import resource, runpy, sys; "
    f"resource.setrlimit(resource.RLIMIT_AS, ({_LIMIT_BYTES}, {_LIMIT_BYTES})); "
    "sys.argv[0] = 'dialer'; runpy.run_module('dialer', run_name='__main__')"
)


def _validate_in_child(project: Project) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [sys.executable, "-c", _LIMITED_DIALER, "validate", str(project.campaign)],
            capture_output=True,
            text=True,
            timeout=_TIMEOUT,
            env={**os.environ, "DIALER_DEBUG": ""},
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"validate still running after {_TIMEOUT} s: the template is not bounded")


def _write(project: Project, first_line: str, rows: list[list[str]] | None = None) -> None:
    project.write_sheet(rows or contact_rows(3))
    # Written raw: TOML's literal multi-line string keeps braces, quotes and backslashes as is.
    project.write_campaign()
    text = project.campaign.read_text(encoding="utf-8")
    start = text.index("first_line = ")
    end = text.index("\n", start)
    text = text[:start] + f"first_line = '''{first_line}'''" + text[end:]
    project.campaign.write_text(text, encoding="utf-8")


def _nested_ifs(n: int) -> str:
    return "{% if 1 %}" * n + "x" + "{% endif %}" * n


def _nested_parens(n: int) -> str:
    return "{{ " + "(" * n + "1" + ")" * n + " }}"


@pytest.mark.parametrize(
    ("first_line", "says"),
    [
        ("{{ 'x' * 10**9 }}", "builds a text of 1,000,000,000 characters"),
        ("{{ '%0999999999d'|format(1) }}", "builds a text of"),
        ("{{ 9 ** (9 ** 10) }}", "builds a number of"),
        (
            "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
            "builds a list of 100,000 items",
        ),
        (
            "{% for a in range(1000) %}{% for b in range(1000) %}{% endfor %}{% endfor %}",
            "more than 10,000 steps",
        ),
        ("{{ first_name * 10**9 }}", "builds a text of"),
        ("{{ lipsum(100000) }}", "builds a text of"),
        ("{% macro m(n) %}{{ m(n) }}{% endmacro %}Hi {{ m(1) }}", "recursion"),
        (_nested_parens(1000), "nested too deeply"),
        (_nested_ifs(150), "nested too deeply"),
        ("{% for x in [1] %}" * 25 + "x" + "{% endfor %}" * 25, "nested too deeply"),
        (_nested_parens(5000), "is 10,007 characters long"),
        (_nested_ifs(500), "is 10,501 characters long"),
        ("{{ 'x'.ljust(10**9) }}", "builds a text of"),
        ("{{ (1).to_bytes(10**9, 'big') }}", "to_bytes() is not available"),
        ("{{ '{:>999999999}'.format(1) }}", "builds a text of"),
        (
            "{% set ns = namespace(s='ab') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}"
            "{% endfor %}{{ ns.s }}",
            "builds a text of",
        ),
        ("{{ ('x' * 10000)|replace('x', 'x' * 10000) }}", "builds a text of 100,000,000"),
    ],
)
def test_a_template_bomb_is_a_campaign_error_at_load(project: Project, first_line: str, says: str):
    _write(project, first_line)

    result = _validate_in_child(project)

    assert result.returncode == ExitCode.INPUT_ERROR, result.stderr[-500:]
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "key 'first_line'" in result.stderr and says in result.stderr
    assert not project.reports()


def test_a_template_too_long_to_be_a_greeting_is_refused_at_load(project: Project, cli):
    _write(project, "Hello {{ first_name }}. " + "Blah. " * 1000)

    result = cli(["validate", str(project.campaign)])

    assert result.code == ExitCode.INPUT_ERROR
    assert "key 'first_line' is 6,024 characters long" in result.err


def test_a_bound_only_some_rows_break_makes_those_rows_invalid(project: Project):
    rows = [["C0", "Asha", "+917359000000", "O0"], ["C1", "Big", "+917359000001", "O1"]]
    _write(
        project,
        "{% if first_name == 'Big' %}{{ 'x' * 10**9 }}{% else %}Hi {{ first_name }}{% endif %}",
        rows,
    )

    result = _validate_in_child(project)

    assert result.returncode == ExitCode.ROW_PROBLEMS, result.stderr[-500:]
    report = {r["customer_id"]: r for r in project.report_rows()}
    assert report["C0"]["status"] == "ready"
    assert report["C1"]["status"] == "invalid"
    assert report["C1"]["reason"].startswith("template too costly: builds a text of")


def test_a_greeting_longer_than_the_cap_is_an_invalid_row(project: Project, cli):
    # 200-character cells (the cell cap) repeated 11 times: 2,200 characters, over 2,000.
    rows = [["C0", "Asha", "+917359000000", "O0"], ["C1", "A" * 200, "+917359000001", "O1"]]
    _write(project, "{{ first_name * 11 }}", rows)

    result = cli(["validate", str(project.campaign)])

    assert result.code == ExitCode.ROW_PROBLEMS
    report = {r["customer_id"]: r for r in project.report_rows()}
    assert report["C0"]["status"] == "ready"
    assert report["C1"]["status"] == "invalid"
    assert report["C1"]["reason"] == "first line renders 2,200 characters; at most 2,000"


_SLOW_FOR_SOME = (
    "{% if first_name == 'Name1' %}{% for i in range(500) %}{{ i }}{% endfor %}{% endif %}"
    "Hi {{ first_name }}"
)


@pytest.mark.parametrize("parallel", [False, True], ids=["in-process", "worker-processes"])
def test_the_render_time_limit_holds_in_the_parent_and_in_worker_processes(
    project: Project, parallel: bool
):
    # No CPU time at all allowed: deterministic, whatever the machine's load. The clock is read
    # every 64 steps, so the 500-step loop trips it and the plain rows (a few steps) do not.
    no_time = replace(DEFAULTS, template_cpu_seconds=0.0)
    _write(project, _SLOW_FOR_SOME)
    stream = open_contacts(load_campaign(project.campaign), parallel=parallel, settings=no_time)
    assert (stream.pool is not None) == parallel

    contacts = [c for chunk in stream.chunks() for c in chunk]

    by_row = {c.row: c for c in contacts}
    assert by_row[2].status == "invalid"
    assert by_row[2].reason == "template too costly: took more than 0 s to render"
    assert by_row[1].status == by_row[3].status == "ready"


def test_ordinary_templates_still_render_the_same(project: Project, cli):
    _write(
        project,
        "Hello {{ first_name|title }}{% if order_id %}, order {{ '%s'|format(order_id) }}"
        "{% endif %} {{ '{:>3}'.format('ab') }} {{ 'a,b'.split(',')|join('-') }}"
        " {% for x in [1, 2] %}{{ x }}{% endfor %} {{ first_name ~ '!' }} {{ 2 ** 10 }}"
        "{% macro hi(n) %}<{{ n }}>{% endmacro %} {{ hi(first_name) }}"
        " {{ first_name|center(9)|trim }} {{ 'x' * 3 }}",
        [["C0", "asha", "+917359000000", "O7"]],
    )

    result = cli(["validate", str(project.campaign)])

    assert result.code == ExitCode.OK, result.err
    (row,) = project.report_rows()
    assert row["status"] == "ready"
    assert "Hello Asha, order O7 ab a-b 12 asha! 1024 <asha> asha xxx" in result.out
