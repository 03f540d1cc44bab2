"""Notifications after a sync (SPEC 13): who asked not to be called, and the people whose
outcome changed in batches of at most 500; `schedule_missed` from the page's schedules; and
`dialer serve` delivering what a command left."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

from aiohttp.test_utils import TestClient, TestServer
from conftest import KEY_ENV, Project, contact_rows, wait_for, with_pythonpath
from hostile import Upstream
from test_notify import HOOK_ENV, Receiver
from test_web_hardening import TOKEN, _login, _project
from test_web_schedules import SETTINGS, _schedule, _soon, _stored, _wall

from dialer import web
from dialer.campaign.model import LOGS_ENDPOINT_ENV, NotifyEvent
from dialer.campaign.parse import load_campaign
from dialer.core.statuses import CallOutcome, ExitCode
from dialer.fake_tabbly import FakeTabblyThread
from dialer.fake_tabbly.rules import LOGS_V2_PATH, TRIGGER_PATH
from dialer.ledger.dials import Person
from dialer.notify.events import outcomes_events, run_event
from dialer.notify.notices import enqueue
from dialer.web.services.schedule_book import SCHEDULES

PEOPLE = 6
NUMBERS = [row[2] for row in contact_rows(PEOPLE)]
SAID = {NUMBERS[0]: "phrase", NUMBERS[1]: "json"}  # two say "do not call me"


def test_a_sync_tells_who_opted_out_and_whose_outcome_changed(project: Project, cli):
    hook = Receiver()
    with FakeTabblyThread(balance=1000, said=SAID, seed=3) as fake, Upstream(hook.answer) as server:
        env = {
            **KEY_ENV,
            LOGS_ENDPOINT_ENV: fake.url.removesuffix(TRIGGER_PATH) + LOGS_V2_PATH,
            HOOK_ENV: server.url,
        }
        project.write_sheet(contact_rows(PEOPLE))
        project.write_campaign(
            fake.url,
            extra=f'[notify]\nurl_env = "{HOOK_ENV}"\nevents = ["opted_out"]\noutcomes = true\n',
        )
        ran = cli(["run", str(project.campaign), "--yes"], env)
        assert ran.code == ExitCode.OK and hook.heard == []  # run_finished is not asked for
        synced = cli(["sync", str(project.campaign)], env)
        again = cli(["sync", str(project.campaign), "--since", "2026-01-01"], env)
    assert synced.code == again.code == ExitCode.OK, synced.err
    events = {h.event["event"]: h.event for h in hook.heard}
    assert len(hook.heard) == 2  # the second sync changed nobody, and nobody new opted out
    opted = events["opted_out"]
    assert opted["count"] == 2 and set(opted["called_to"]) == set(SAID)
    assert NUMBERS[0] not in opted["text"] and "2 people asked not to be called" in opted["text"]
    outcomes = events["outcomes"]
    people = {p["called_to"]: p for p in outcomes["people"]}
    assert set(people) == set(NUMBERS) and outcomes["count"] == PEOPLE
    assert all(p["outcome"] != "pending" for p in people.values())
    assert {n for n, p in people.items() if p["opted_out"]} == set(SAID)
    assert people[NUMBERS[2]]["custom_identifiers"]
    assert all(n not in outcomes["text"] for n in NUMBERS)
    assert "notifications: 2 delivered" in synced.err


def test_outcomes_go_in_batches_of_at_most_500(project: Project) -> None:
    project.write_campaign(extra='[notify]\nurl_env = "H"\noutcomes = true\n')
    campaign = load_campaign(project.campaign)
    stamp = "2026-01-01T00:00:00.000Z"
    answered = CallOutcome.ANSWERED
    people = [
        Person(f"+9190000{i:05d}", f"C{i}", 1, stamp, answered, "", 30, 0.1, "", "", 1, i)
        for i in range(1201)
    ]
    entries = outcomes_events(campaign, people, set(), datetime.now(UTC), batch=500)
    bodies = [json.loads(e.body) for e in entries]
    assert [len(b["people"]) for b in bodies] == [500, 500, 201]
    assert [(b["part"], b["parts"]) for b in bodies] == [(1, 3), (2, 3), (3, 3)]
    assert len({b["event_id"] for b in bodies}) == 3
    sent = [p["called_to"] for b in bodies for p in b["people"]]
    assert sent == [p.called_to for p in people]


def test_a_missed_schedule_is_told(tmp_path) -> None:
    root = _project(tmp_path)
    (root / "campaigns" / "_notify.toml").write_text(f'[notify]\nurl_env = "{HOOK_ENV}"\n')
    at = _soon()
    server = web.Server(root, TOKEN, with_pythonpath({}), settings=SETTINGS)
    app = server.app()
    book = app[SCHEDULES]

    async def go() -> None:
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            schedule_id = await _schedule(client, await _login(client), at=_wall(at))
            assert await book.tick(at + timedelta(seconds=SETTINGS.schedule_grace + 60)) == []
            assert _stored(root)[schedule_id]["state"] == "missed"

    asyncio.run(go())
    [row] = _outbox_of(root)
    body = json.loads(row["body"])
    assert body["event"] == NotifyEvent.SCHEDULE_MISSED and body["campaign"] == "example"
    assert "did not start" in body["text"] and body["schedule"]


def test_serve_delivers_what_a_command_left(tmp_path) -> None:
    root = _project(tmp_path)
    (root / "campaigns" / "_notify.toml").write_text(f'[notify]\nurl_env = "{HOOK_ENV}"\n')
    campaign = load_campaign(root / "campaigns" / "example.toml")
    entry = run_event(campaign, code=1, summary=None, error=None, now=datetime.now(UTC))
    assert enqueue(root / "state", [entry])
    hook = Receiver()
    with Upstream(hook.answer) as receiver:
        server = web.Server(root, TOKEN, with_pythonpath({HOOK_ENV: receiver.url}))

        async def go() -> None:
            async with TestClient(TestServer(server.app(), host="127.0.0.1")):
                await asyncio.to_thread(wait_for, lambda: hook.heard, 10, "the event")

        asyncio.run(go())
    [heard] = hook.heard
    assert heard.event["event_id"] == entry.event_id and heard.event["event"] == "run_finished"


def _outbox_of(root):
    from dialer.notify.outbox import Outbox

    with Outbox.open(root / "state") as outbox:
        return outbox.rows()
