"""Schedules (SPEC 11): once at a time or every day at a time, kept in `state/schedules.toml`,
fired by `dialer serve`'s own loop, never twice, never a second run of a running campaign.

Time is injected: each test calls the schedules' `tick(now)` with a `now` of its own (or gives
the server a clock before it starts), so nothing waits for the wall clock. The runs are real
`dialer run` children against the package's fake Tabbly.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import os
import re
import tomllib
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient, TestServer
from conftest import with_pythonpath
from test_web_hardening import READY, TOKEN, _check, _fake_env, _launch, _login, _project, _until

from dialer import web
from dialer.core.statuses import FINISHED_CODES
from dialer.fake_tabbly import FakeTabblyThread
from dialer.ledger.sqlite import take_lock
from dialer.web.services.schedule_book import SCHEDULES, Schedules

# The loop's own ticks (real clock) never fire these tests' schedules: they are due minutes
# from now, and only the tests' `tick(now)` calls move time.
SETTINGS = replace(web.DEFAULTS, schedule_every=3600.0)
Body = Callable[[TestClient, web.Server, Schedules], Awaitable[None]]


def _serve(
    root: Path,
    body: Body,
    env: dict[str, str],
    clock: Callable[[], datetime] | None = None,
) -> None:
    """A real Server on `root` (a new one each call: a restart), its schedules' clock set
    before it starts, so its start-up tick sees that time."""
    server = web.Server(root, TOKEN, with_pythonpath(env), settings=SETTINGS)
    app = server.app()
    book = app[SCHEDULES]
    if clock is not None:
        book.clock = clock

    async def go() -> None:
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            await body(client, server, book)

    asyncio.run(go())


def _form(csrf: str, **fields: str) -> dict[str, str]:
    form = {"csrf": csrf, "when": "once", "zone": "UTC", "confirm": "yes", "count": str(READY)}
    form.update(fields)
    return form


def _wall(when: datetime) -> str:
    """What a datetime-local field sends: wall time to the minute, no zone."""
    return when.strftime("%Y-%m-%dT%H:%M")


async def _schedule(client: TestClient, csrf: str, **fields: str) -> str:
    """Check the sample sheet, schedule it; the schedule's id."""
    dry_id = await _check(client, csrf)
    answer = await client.post(
        f"/dry-runs/{dry_id}/schedule", data=_form(csrf, **fields), allow_redirects=False
    )
    assert answer.status == 303, await answer.text()
    return answer.headers["Location"].rsplit("#schedule-", 1)[1]


def _soon() -> datetime:
    """Two minutes ahead, to the minute (what a person types)."""
    return (datetime.now(UTC) + timedelta(minutes=2)).replace(second=0, microsecond=0)


def _stored(root: Path) -> dict[str, Any]:
    data = tomllib.loads((root / "state" / "schedules.toml").read_text("utf-8"))
    return {s["id"]: s for s in data["schedule"]}


def _called(fake: Any) -> list[str]:
    return [r.body["called_to"] for r in fake.received]


async def _finished(server: web.Server, run_id: str) -> web.jobs.WebRun:
    run = server.jobs.runs[run_id]
    await _until(lambda: run.finished, "the scheduled run ended")
    return run


def test_a_schedule_due_fires_once_against_the_fake(tmp_path):
    at = _soon()
    with FakeTabblyThread(latency=0.01, balance=100) as fake:

        async def body(client: TestClient, server: web.Server, book: Schedules) -> None:
            csrf = await _login(client)
            schedule_id = await _schedule(client, csrf, at=_wall(at))
            assert await book.tick(at - timedelta(minutes=1)) == []  # not due yet
            assert fake.received == [] and server.jobs.runs == {}
            (run_id,) = await book.tick(at + timedelta(minutes=1))
            run = await _finished(server, run_id)
            assert run.exit_code in FINISHED_CODES, list(run.messages)
            assert run.view()["progress_text"] == f"{READY} of {READY} called"
            # Never twice: later ticks, and a tick at the very same time, start nothing.
            for later in (at + timedelta(minutes=1), at + timedelta(minutes=5), at + timedelta(1)):
                assert await book.tick(later) == []
            stored = _stored(server.root)[schedule_id]
            assert stored["state"] == "started" and stored["last"].startswith(_wall(at))
            page = await (await client.get("/schedules")).text()
            assert f'href="/runs/{run_id}"' in page

        _serve(_project(tmp_path), body, _fake_env(fake))
        assert len(_called(fake)) == READY == len(set(_called(fake)))


def test_a_schedule_survives_a_restart_and_fires_once(tmp_path):
    """Scheduled on one server; that server goes down before the time; a new server on the same
    root, started after the time (within the grace window), fires it at start-up, once; a third
    start fires nothing."""
    root = _project(tmp_path)
    at = _soon()
    ids: list[str] = []
    with FakeTabblyThread(latency=0.01, balance=100) as fake:
        env = _fake_env(fake)

        async def schedule(client: TestClient, server: web.Server, book: Schedules) -> None:
            ids.append(await _schedule(client, await _login(client), at=_wall(at)))

        _serve(root, schedule, env)
        assert ids[0] in _stored(root) and fake.received == []

        async def back_up(client: TestClient, server: web.Server, book: Schedules) -> None:
            await _until(lambda: server.jobs.runs, "the start-up tick started the run")
            await book.tick(at + timedelta(minutes=4))  # a loop tick after it: nothing more
            (run,) = server.jobs.runs.values()
            await _finished(server, run.id)
            assert run.exit_code in FINISHED_CODES, list(run.messages)

        _serve(root, back_up, env, clock=lambda: at + timedelta(minutes=3))

        async def again(client: TestClient, server: web.Server, book: Schedules) -> None:
            assert await book.tick(at + timedelta(minutes=6)) == []
            assert server.jobs.runs == {}

        _serve(root, again, env, clock=lambda: at + timedelta(minutes=5))
        assert _stored(root)[ids[0]]["state"] == "started"
        assert len(_called(fake)) == READY == len(set(_called(fake)))


def test_a_running_campaign_is_not_started_twice(tmp_path):
    root = _project(tmp_path)
    at = _soon()
    # Slow answers keep the launched run going (49 rows, 8 at a time: 7 rounds of 0.5 s at
    # the least) while the schedule comes due; the rest then goes at the campaign's own pace.
    with FakeTabblyThread(latency=0.5, balance=100) as fake:

        async def body(client: TestClient, server: web.Server, book: Schedules) -> None:
            csrf = await _login(client)
            schedule_id = await _schedule(client, csrf, at=_wall(at))
            started = await _launch(client, csrf, await _check(client, csrf))
            running = server.jobs.runs[started.headers["Location"].rsplit("/", 1)[1]]
            await _until(lambda: fake.received, "the launched run called someone")
            assert await book.tick(at + timedelta(minutes=1)) == []
            assert list(server.jobs.runs) == [running.id]
            assert "is running now" in book.get(schedule_id).note
            assert _stored(server.root)[schedule_id]["state"] == "waiting"
            # Stopped (Stop asks first), then the next tick, still within the grace, fires it.
            stop = f"/runs/{running.id}/stop"
            await client.post(stop, data={"csrf": csrf, "confirm": "yes"}, allow_redirects=False)
            await _until(lambda: running.finished, "the launched run stopped")
            (run_id,) = await book.tick(at + timedelta(minutes=2))
            assert (await _finished(server, run_id)).exit_code in FINISHED_CODES

        _serve(root, body, _fake_env(fake))
        called = [r.body["called_to"] for r in fake.received]
        assert len(called) == len(set(called)) == READY  # the rest, nobody twice


def test_a_run_lock_held_elsewhere_makes_the_schedule_wait(tmp_path):
    """A cron `dialer run` of the campaign holds its ledger's lock: the schedule waits."""
    at = _soon()
    with FakeTabblyThread(latency=0.01, balance=100) as fake:

        async def body(client: TestClient, server: web.Server, book: Schedules) -> None:
            schedule_id = await _schedule(client, await _login(client), at=_wall(at))
            lock = take_lock(server.root / "state" / "example.sqlite", "example")
            try:
                assert await book.tick(at + timedelta(minutes=1)) == []
                assert "is running now" in book.get(schedule_id).note
            finally:
                os.close(lock)
            (run_id,) = await book.tick(at + timedelta(minutes=2))
            await _finished(server, run_id)

        _serve(_project(tmp_path), body, _fake_env(fake))
        assert len(fake.received) == READY


def test_a_daily_schedule_due_while_checks_are_busy_is_tried_again_not_lost(tmp_path):
    """Every check slot taken when the day's run comes due: nothing started, so the next tick,
    within the grace window, checks and fires it (the day is not lost)."""
    at = _soon()
    with FakeTabblyThread(latency=0.01, balance=100) as fake:

        async def body(client: TestClient, server: web.Server, book: Schedules) -> None:
            csrf = await _login(client)
            schedule_id = await _schedule(
                client, csrf, when="daily", time=at.strftime("%H:%M"), at="", sheet="check"
            )
            async with contextlib.AsyncExitStack() as slots:
                for _ in range(SETTINGS.max_checks):
                    await slots.enter_async_context(server.jobs.check_slot())
                assert await book.tick(at + timedelta(minutes=1)) == []
            stored = _stored(server.root)[schedule_id]
            assert "being checked" in stored["note"] and stored["last"] == ""
            (run_id,) = await book.tick(at + timedelta(minutes=2))
            assert (await _finished(server, run_id)).exit_code in FINISHED_CODES
            assert await book.tick(at + timedelta(minutes=3)) == []

        _serve(_project(tmp_path), body, _fake_env(fake))
        assert len(_called(fake)) == READY == len(set(_called(fake)))


def test_a_once_schedule_beaten_to_the_launch_waits_and_is_not_refused(tmp_path):
    """The page's Launch lands between the schedule's look at the campaign and its own launch
    (AlreadyRunning): nothing of the schedule started, so it waits, and fires once that run
    is over, within the grace window."""
    at = _soon()
    with FakeTabblyThread(latency=0.5, balance=100) as fake:

        async def body(client: TestClient, server: web.Server, book: Schedules) -> None:
            csrf = await _login(client)
            schedule_id = await _schedule(client, csrf, at=_wall(at))
            page_check = server.jobs.dry_runs[await _check(client, csrf)]
            launch = server.jobs.launch
            page_runs: list[web.jobs.WebRun] = []

            async def page_launch_first(
                dry: web.jobs.DryRun, before_start: Any = None
            ) -> web.jobs.WebRun:
                server.jobs.launch = launch  # the race happens once
                page_runs.append(await launch(page_check))
                return await launch(dry, before_start)

            server.jobs.launch = page_launch_first
            assert await book.tick(at + timedelta(minutes=1)) == []
            stored = _stored(server.root)[schedule_id]
            assert stored["state"] == "waiting" and "is running now" in stored["note"]
            (running,) = page_runs
            stop = f"/runs/{running.id}/stop"
            await client.post(stop, data={"csrf": csrf, "confirm": "yes"}, allow_redirects=False)
            await _until(lambda: running.finished, "the page's run stopped")
            (run_id,) = await book.tick(at + timedelta(minutes=2))
            assert (await _finished(server, run_id)).exit_code in FINISHED_CODES
            assert _stored(server.root)[schedule_id]["state"] == "started"

        _serve(_project(tmp_path), body, _fake_env(fake))
        assert len(_called(fake)) == READY == len(set(_called(fake)))


def test_a_schedule_is_refused_when_the_campaign_changed_after_its_check(tmp_path):
    at = _soon()
    with FakeTabblyThread(latency=0.01, balance=100) as fake:

        async def body(client: TestClient, server: web.Server, book: Schedules) -> None:
            schedule_id = await _schedule(client, await _login(client), at=_wall(at))
            path = server.root / "campaigns" / "example.toml"
            path.write_text(
                path.read_text("utf-8").replace("Company XYZ", "Company CHANGED"), "utf-8"
            )
            assert await book.tick(at + timedelta(minutes=1)) == []
            stored = _stored(server.root)[schedule_id]
            assert stored["state"] == "refused"
            assert "Changed since this check: example.toml" in stored["note"]
            page = await (await client.get("/schedules")).text()
            assert "refused" in page and "Changed since this check" in page
            assert await book.tick(at + timedelta(minutes=2)) == []

        _serve(_project(tmp_path), body, _fake_env(fake))
        assert fake.received == []


def test_every_day_checks_the_sheet_again_and_fires_once_a_day(tmp_path):
    at = _soon()
    with FakeTabblyThread(latency=0.01, balance=100) as fake:

        async def body(client: TestClient, server: web.Server, book: Schedules) -> None:
            csrf = await _login(client)
            schedule_id = await _schedule(
                client, csrf, when="daily", time=at.strftime("%H:%M"), at="", sheet="check"
            )
            (run_id,) = await book.tick(at + timedelta(minutes=1))
            run = await _finished(server, run_id)
            assert run.total == READY and run.exit_code in FINISHED_CODES
            assert await book.tick(at + timedelta(minutes=30)) == []
            # The next day: a fresh check finds nobody left (the ledger), so no run starts.
            assert await book.tick(at + timedelta(days=1, minutes=1)) == []
            assert "nobody to call" in _stored(server.root)[schedule_id]["note"]
            assert _stored(server.root)[schedule_id]["state"] == "waiting"

        _serve(_project(tmp_path), body, _fake_env(fake))
        assert len(fake.received) == READY


def test_a_schedule_past_the_grace_window_is_missed_not_fired(tmp_path):
    at = _soon()

    async def body(client: TestClient, server: web.Server, book: Schedules) -> None:
        schedule_id = await _schedule(client, await _login(client), at=_wall(at))
        late = at + timedelta(seconds=SETTINGS.schedule_grace + 60)
        assert await book.tick(late) == []
        stored = _stored(server.root)[schedule_id]
        assert stored["state"] == "missed" and "grace" in stored["note"]
        assert server.jobs.runs == {}
        # Over for longer than uploads are kept: the schedule and its copy of the sheet go.
        kept = Path(book.get(schedule_id).sheet)
        assert kept.is_file()
        await book.tick(late + timedelta(seconds=SETTINGS.upload_keep_seconds + 60))
        assert book.get(schedule_id) is None and not kept.exists()
        assert _stored_ids(server.root) == set()

    _serve(_project(tmp_path), body, {})


def test_the_cron_line_does_the_same_in_the_servers_zone(tmp_path):
    async def body(client: TestClient, server: web.Server, book: Schedules) -> None:
        book.server_zone = ZoneInfo("UTC")
        csrf = await _login(client)
        daily = await _schedule(
            client, csrf, when="daily", time="13:00", zone="Asia/Kolkata", sheet="source"
        )
        at = _soon()
        once = await _schedule(client, csrf, at=_wall(at))
        page = await (await client.get("/schedules")).text()
        line = re.search(rf'id="cron-{daily}" value="([^"]+)"', page).group(1)
        assert line.startswith("30 7 * * * cd ")  # 13:00 in Kolkata is 07:30 UTC
        assert line.endswith("-m dialer run " + f"{server.root}/campaigns/example.toml --yes")
        once_line = html.unescape(re.search(rf'id="cron-{once}" value="([^"]+)"', page).group(1))
        assert "--contacts" in once_line and "--expect-campaign-sha256" in once_line
        # Cron has no year: the line tests it (`%` escaped for cron), else it runs every year.
        fields = f"{at.minute} {at.hour} {at.day} {at.month} *"
        assert once_line.startswith(f'{fields} [ "$(date +\\%Y)" = {at.year} ] && cd ')
        assert "every year on that date" in page  # said next to the lines too
        assert "every day at 13:00 (Asia/Kolkata)" in page
        assert "the campaign&#39;s own sheet" in page

    _serve(_project(tmp_path), body, {})


@pytest.mark.parametrize(
    ("fields", "message", "kept"),
    [
        ({"at": "2026-13-01T09:00"}, "Date and time: &#39;2026-13-01T09:00&#39; is not", None),
        ({"at": "2020-01-01T09:00"}, "Date and time: 2020-01-01 09:00 in UTC has passed", None),
        ({"at": "", "when": "daily", "time": "7pm"}, "Time of day: &#39;7pm&#39; is not", "7pm"),
        (
            {"at": "9999-12-31T23:59", "zone": "Etc/GMT+12"},
            "Date and time: 9999-12-31 23:59 in Etc/GMT+12 is more than a year ahead",
            "9999-12-31T23:59",
        ),
        ({"zone": "Mars/Olympus"}, "Time zone: &#39;Mars/Olympus&#39; is not", "Mars/Olympus"),
        ({"when": "weekly"}, "When: choose", None),
        ({"confirm": ""}, "Tick the box to confirm", None),
        ({"count": "48"}, "Tick the box to confirm", None),
    ],
)
def test_bad_schedules_are_refused_with_the_field_named_and_values_kept(
    tmp_path, fields, message, kept
):
    async def body(client: TestClient, server: web.Server, book: Schedules) -> None:
        csrf = await _login(client)
        dry_id = await _check(client, csrf)
        form = _form(csrf, at=_wall(_soon()))
        form.update(fields)
        answer = await client.post(f"/dry-runs/{dry_id}/schedule", data=form)
        page = await answer.text()
        assert answer.status == 400 and message in page, page
        if kept:
            assert f'value="{kept}"' in page  # what the user typed is still there
        assert 'id="schedule-form"' in page and 'id="launch-form"' in page
        assert not (server.root / "state" / "schedules.toml").exists()
        assert book.all() == []

    _serve(_project(tmp_path), body, {})


def test_a_stored_schedule_beyond_the_servers_zone_still_shows_and_can_be_removed(tmp_path):
    """A "once" at 9999-12-31 23:59 (Etc/GMT+12) in the file (an older server accepted it):
    its cron line cannot be written in UTC, but /schedules still answers, after a restart
    too, and its Remove button works."""
    root = _project(tmp_path)
    ids: list[str] = []

    async def far(client: TestClient, server: web.Server, book: Schedules) -> None:
        ids.append(await _schedule(client, await _login(client), at=_wall(_soon())))

    _serve(root, far, {})
    # The file as an older server wrote it: that time, in that zone.
    path = root / "state" / "schedules.toml"
    text = re.sub(r'(?m)^at = ".*"$', 'at = "9999-12-31T23:59"', path.read_text("utf-8"))
    path.write_text(re.sub(r'(?m)^zone = ".*"$', 'zone = "Etc/GMT+12"', text), "utf-8")
    assert _stored(root)[ids[0]]["zone"] == "Etc/GMT+12"

    async def later(client: TestClient, server: web.Server, book: Schedules) -> None:
        book.server_zone = ZoneInfo("UTC")
        assert await book.tick(datetime.now(UTC)) == []
        csrf = await _login(client)
        answer = await client.get("/schedules")
        page = await answer.text()
        assert answer.status == 200 and f'id="remove-{ids[0]}"' in page
        assert "no cron line" in page and "9999-12-31 at 23:59 (Etc/GMT+12)" in page
        removed = await client.post(
            f"/schedules/{ids[0]}/remove", data={"csrf": csrf}, allow_redirects=False
        )
        assert removed.status == 303 and _stored_ids(server.root) == set()

    _serve(root, later, {})


def test_a_check_with_nobody_to_call_cannot_be_scheduled_once(tmp_path):
    """The form hides "once" for a check with 0 ready; a post that sends it anyway is refused
    with the field named. "Every day" checks afresh each day, so it may still be chosen."""
    nobody = (
        b"Customer ID,First Name,Last Name,Phone,Order ID,Order Date,Email,tz\n"
        b"00101,Aarav,Sharma,12,ORD-1,2024-03-02,a@example.com,Asia/Kolkata\n"
    )

    async def body(client: TestClient, server: web.Server, book: Schedules) -> None:
        csrf = await _login(client)
        dry_id = await _check(client, csrf, nobody)
        assert server.jobs.dry_runs[dry_id].summary["counts"].get("ready", 0) == 0
        once = _form(csrf, at=_wall(_soon()), count="0")
        answer = await client.post(f"/dry-runs/{dry_id}/schedule", data=once)
        assert answer.status == 400 and "When: this check found nobody" in await answer.text()
        assert book.all() == []
        daily = _form(csrf, when="daily", time="09:00", count="0")
        answer = await client.post(
            f"/dry-runs/{dry_id}/schedule", data=daily, allow_redirects=False
        )
        assert answer.status == 303, await answer.text()

    _serve(_project(tmp_path), body, {})


def test_an_unreadable_schedules_file_is_said_and_never_overwritten(tmp_path):
    root = _project(tmp_path)
    (root / "state").mkdir()
    broken = root / "state" / "schedules.toml"
    broken.write_text("[[schedule]\nid = ", "utf-8")

    async def body(client: TestClient, server: web.Server, book: Schedules) -> None:
        csrf = await _login(client)
        page = await (await client.get("/schedules")).text()
        assert "cannot be read" in page and "no schedule fires" in page
        dry_id = await _check(client, csrf)
        answer = await client.post(
            f"/dry-runs/{dry_id}/schedule", data=_form(csrf, at=_wall(_soon()))
        )
        assert answer.status == 400 and "cannot be read" in await answer.text()

    _serve(root, body, {})
    assert broken.read_text("utf-8") == "[[schedule]\nid = "


def test_a_removed_schedule_never_fires_and_its_sheet_is_deleted(tmp_path):
    at = _soon()

    async def body(client: TestClient, server: web.Server, book: Schedules) -> None:
        csrf = await _login(client)
        schedule_id = await _schedule(client, csrf, at=_wall(at))
        kept = Path(book.get(schedule_id).sheet)
        assert kept.is_file() and kept.parent == server.root / "state" / "schedules"
        answer = await client.post(
            f"/schedules/{schedule_id}/remove", data={"csrf": csrf}, allow_redirects=False
        )
        assert answer.status == 303
        assert not kept.exists() and _stored_ids(server.root) == set()
        assert await book.tick(at + timedelta(minutes=1)) == []
        forged = await client.post(f"/schedules/{schedule_id}/remove", data={"csrf": "x"})
        assert forged.status == 403

    _serve(_project(tmp_path), body, {})


def _stored_ids(root: Path) -> set[str]:
    data = tomllib.loads((root / "state" / "schedules.toml").read_text("utf-8"))
    return {s["id"] for s in data.get("schedule", [])}
