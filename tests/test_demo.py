"""`make demo`'s ending: the person who said "do not call me" on the first call is found in the
redial run's report, and the demo fails if they were called again, or if the report judges
opt-outs (`opted_out`) but not theirs. The demo itself takes ~20 s (it waits on the fake's log
delay and the redial's minutes), so its ending is checked here on written reports."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from dialer.commands.demo import SAID, heard, said_line
from dialer.reports.writer import REPORT_COLUMNS


def _report(path: Path, lines: list[tuple[str, str, str]]) -> Path:
    """A run report with (called_to, status, reason) lines, the other cells blank."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(REPORT_COLUMNS)
        for called_to, status, reason in lines:
            cells = dict.fromkeys(REPORT_COLUMNS, "")
            cells.update(called_to=called_to, status=status, reason=reason)
            writer.writerow(cells.values())
    return path


OTHER = "+917359000001"


@pytest.mark.parametrize(
    ("lines", "ok"),
    [
        # The run judges the register: their line says opted_out (a duplicate row after it).
        ([(SAID, "opted_out", "asked not to be called"), (SAID, "duplicate", "of row 1")], True),
        # A build whose run does not judge the register yet: not called again is enough.
        (
            [(SAID, "already_called", "answered (1 of 3 calls made)"), (OTHER, "triggered", "")],
            True,
        ),
        # The report says opted_out, but not for them: the demo fails.
        ([(SAID, "already_called", "answered"), (OTHER, "opted_out", "import")], False),
    ],
)
def test_the_demo_checks_the_opt_out_only_where_the_report_judges_it(
    tmp_path: Path, lines: list[tuple[str, str, str]], ok: bool, capsys
) -> None:
    found = said_line(_report(tmp_path / "redial.csv", lines))

    assert found is not None and found[0] == lines[0][1]
    assert heard(found, redialed=False) is ok
    assert f"the redial run did not call them: {lines[0][1]}" in capsys.readouterr().out


def test_the_demo_fails_when_the_person_is_called_again(tmp_path: Path) -> None:
    found = said_line(_report(tmp_path / "redial.csv", [(SAID, "triggered", "call 2 of 3")]))

    assert heard(found, redialed=True) is False
    assert said_line(None) is None and heard(None, redialed=False) is True
