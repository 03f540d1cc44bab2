"""The legal calling hours under every campaign (SPEC 12), as the dry run and the run judge a
row: the built-in floor with no `[window]` at all, `[window.legal]` tightening it (never
loosening), `[window] skip_dates` in the callee's own calendar. Every clock is injected; local
times are worked out in the comments (December: New York UTC-5, India UTC+5:30)."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime

import pytest
from conftest import KEY_ENV, Project

from dialer.campaign.parse import load_campaign
from dialer.commands.run import IOContext, Run, run
from dialer.commands.validate import validate
from dialer.core.legal_floor import FLOOR
from dialer.core.statuses import ExitCode, Status

pytestmark = pytest.mark.legal_floor

NEW_YORK = "+12125550123"
INDIA = "+917359043943"
EVERY_DAY = '["mon", "tue", "wed", "thu", "fri", "sat", "sun"]'


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def _project(project: Project, url: str, numbers: list[str], extra: str = "") -> None:
    project.write_sheet([[f"C{i}", f"N{i}", n, f"O{i}"] for i, n in enumerate(numbers)])
    project.write_campaign(url, extra=extra)


def _dry_run(project: Project, now: datetime) -> tuple[dict[str, tuple[str, str]], str]:
    out = io.StringIO()
    validate(load_campaign(project.campaign), clock=lambda: now, out=out)
    rows = project.report_rows()
    return {r["called_to"]: (r["status"], r["reason"]) for r in rows}, out.getvalue()


@pytest.mark.parametrize(
    ("number", "now", "allowed"),
    [
        (NEW_YORK, utc(2026, 12, 8, 1, 59), True),  # 20:59 Mon in New York
        (NEW_YORK, utc(2026, 12, 8, 2, 0), False),  # 21:00 Mon
        (NEW_YORK, utc(2026, 12, 7, 13, 0), True),  # 08:00 Mon
        (NEW_YORK, utc(2026, 12, 7, 12, 59), False),  # 07:59 Mon
        (INDIA, utc(2026, 12, 7, 3, 29), False),  # 08:59 in India
        (INDIA, utc(2026, 12, 7, 3, 30), True),  # 09:00
        (INDIA, utc(2026, 12, 7, 15, 29), True),  # 20:59
        (INDIA, utc(2026, 12, 7, 15, 30), False),  # 21:00
    ],
)
def test_the_floor_holds_under_a_campaign_without_a_window(
    project: Project, number: str, now: datetime, allowed: bool
) -> None:
    _project(project, "http://127.0.0.1:9/unused", [number])

    judged, said = _dry_run(project, now)

    status, reason = judged[number]
    if allowed:
        assert status == Status.READY, reason
        assert "legal calling hours" not in said
    else:
        assert status == Status.OUTSIDE_WINDOW
        country = "US: 08:00–21:00" if number == NEW_YORK else "IN: 09:00–21:00"
        assert reason.startswith(f"outside legal calling hours in {country} local")
        assert "1 held back by legal calling hours now" in said


def test_a_campaign_window_wider_than_the_floor_is_accepted_and_the_floor_still_holds(
    project: Project,
) -> None:
    _project(
        project,
        "http://127.0.0.1:9/unused",
        [NEW_YORK, INDIA],
        extra=f'[window]\nhours = "00:00-24:00"\ndays = {EVERY_DAY}\n',
    )

    judged, said = _dry_run(project, utc(2026, 12, 8, 2, 30))  # NY 21:30 Mon, India 08:00 Tue

    assert judged[NEW_YORK][0] == judged[INDIA][0] == Status.OUTSIDE_WINDOW
    assert "2 held back by legal calling hours now" in said


def test_window_legal_tightens_and_the_reason_names_the_tightened_hours(project: Project) -> None:
    _project(
        project,
        "http://127.0.0.1:9/unused",
        [NEW_YORK, INDIA],
        extra='[window.legal]\nUS = "09:00-20:00"\n',
    )

    judged, _ = _dry_run(project, utc(2026, 12, 8, 1, 30))  # NY 20:30 Mon (inside the floor)

    assert judged[NEW_YORK][0] == Status.OUTSIDE_WINDOW
    assert judged[NEW_YORK][1].startswith("outside legal calling hours in US: 09:00–20:00 local")
    campaign = load_campaign(project.campaign)
    assert campaign.window is None  # [window.legal] alone sets no campaign hours
    assert campaign.legal.hours["IN"] is FLOOR["IN"]  # the floor, untouched


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ('[window.legal]\nUS = "07:00-21:00"\n', "window.legal.US"),
        ('[window.legal]\nIN = "09:00-21:30"\n', "window.legal.IN"),
        ('[window.legal]\nXX = "09:00-20:00"\n', "window.legal.XX"),
        ('[window]\nskip_dates = ["2026-13-01"]\n', "window.skip_dates"),
    ],
)
def test_loosening_or_a_bad_value_is_one_line_exit_2_naming_the_key(
    project: Project, cli, table: str, key: str
) -> None:
    _project(project, "http://127.0.0.1:9/unused", [INDIA], extra=table)

    result = cli(["validate", str(project.campaign)])

    assert result.code == ExitCode.INPUT_ERROR
    assert f"'{key}'" in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert "Traceback" not in result.err


def test_skip_dates_are_the_callees_own_calendar(project: Project) -> None:
    _project(
        project,
        "http://127.0.0.1:9/unused",
        [NEW_YORK, INDIA],
        extra='[window]\nhours = "00:00-24:00"\nskip_dates = ["2026-12-25", 2027-01-01]\n',
    )
    # 2026-12-24 20:00 UTC: Thursday 15:00 in New York, already Friday the 25th 01:30 in India.
    judged, _ = _dry_run(project, utc(2026, 12, 24, 20, 0))

    assert judged[NEW_YORK][0] == Status.READY
    assert judged[INDIA] == (
        Status.OUTSIDE_WINDOW,
        "a date the campaign calls nobody: 2026-12-25 in Asia/Calcutta (window.skip_dates)",
    )
    campaign = load_campaign(project.campaign)
    assert campaign.legal.skip_dates == frozenset({date(2026, 12, 25), date(2027, 1, 1)})


@pytest.mark.parametrize(
    ("now", "sent"), [(utc(2026, 12, 8, 1, 59), 1), (utc(2026, 12, 8, 2, 0), 0)]
)
def test_the_run_sends_nothing_past_the_floor(
    project: Project, fake, now: datetime, sent: int
) -> None:
    _project(project, fake.url, [NEW_YORK])  # 20:59 / 21:00 Monday in New York

    code = run(
        Run(load_campaign(project.campaign), yes=True),
        IOContext(environ=KEY_ENV, clock=lambda: now, out=io.StringIO(), err=io.StringIO()),
    )

    assert code == ExitCode.OK
    assert len(fake.accepted()) == sent
    row = project.report_rows()[0]
    assert row["status"] == (Status.TRIGGERED if sent else Status.OUTSIDE_WINDOW)
