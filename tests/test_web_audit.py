"""The page's audit trail: every action through the page lands in the trail with its details
(no whole number anywhere), a launch is refused when the trail cannot be written, and the
admin's /audit page lists, filters, verifies and exports it."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import sqlite3
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from aiohttp.test_utils import TestClient

from dialer import web
from dialer.campaign.model import LOGS_ENDPOINT_ENV
from dialer.fake_tabbly import DEFAULT_API_KEY, FakeTabblyThread
from dialer.team.audit import CSV_COLUMNS, AuditEntry, AuditTrail, safe_text
from dialer.team.people import People
from dialer.team.roles import Role
from dialer.web.services.schedule_book import Schedules
from tests.test_web import ROOT, _checked, _login, _run, _upload_form, _wait_finished
from tests.test_web_editor import NEW, ROWS, _form, _test_call_fields, _value
from tests.test_web_hardening import READY, _fake_env, _project
from tests.test_web_roles import PASSWORD, _login_as
from tests.test_web_schedules import SETTINGS, _schedule, _serve, _soon, _wall

SHEET = ROOT / "sample_data" / "contacts.csv"
OPTED_OUT = "+919845012399"


def _trail(server: web.Server) -> list[AuditEntry]:
    return AuditTrail(server.root / "state").entries()


def _one(entries: list[AuditEntry], action: str) -> AuditEntry:
    found = [e for e in entries if e.action == action]
    assert len(found) == 1, (action, [e.action for e in entries])
    return found[0]


def _ready(server: web.Server, dry_id: str) -> int:
    return int(server.jobs.dry_runs[dry_id].summary["counts"]["ready"])


def _sheet_numbers() -> list[str]:
    """Every phone number of the sample sheet, as its digits (the last 10 of them)."""
    with SHEET.open(encoding="utf-8") as f:
        numbers = [re.sub(r"\D", "", row["Phone"]) for row in csv.DictReader(f)]
    return [n[-10:] for n in numbers if len(n) >= 9]


def test_every_action_on_the_page_is_in_the_trail_with_its_details_and_no_number(tmp_path):
    sheet = SHEET.read_bytes()
    with FakeTabblyThread(latency=0.05, balance=100) as fake:
        env = {
            "TABBLY_API_KEY": DEFAULT_API_KEY,
            "TABBLY_API_URL": fake.url,
            LOGS_ENDPOINT_ENV: fake.logs_url,
        }

        async def body(client: TestClient, server: web.Server) -> None:
            csrf, dry_id = await _checked(client, sheet)
            page = await (await client.get(f"/dry-runs/{dry_id}")).text()
            assert 'id="ready-count">49<' in page
            launched = await client.post(
                f"/dry-runs/{dry_id}/launch",
                data={"csrf": csrf, "confirm": "yes", "count": "49"},
                allow_redirects=False,
            )
            assert launched.status == 303, await launched.text()
            run_url = launched.headers["Location"]
            await _wait_finished(server, run_url.rsplit("/", 1)[1])()
            assert (await client.get(f"{run_url}/report.csv")).status == 200
            synced = await client.post(
                "/campaigns/example/sync", data={"csrf": csrf}, allow_redirects=False
            )
            assert synced.status == 303
            added = {"csrf": csrf, "numbers": OPTED_OUT, "reason": "asked by mail"}
            assert (await client.post("/optouts/add", data=added)).status == 200
            removed = {"csrf": csrf, "number": OPTED_OUT, "reason": "typo", "confirm": "yes"}
            assert (await client.post("/optouts/remove", data=removed)).status == 200

            entries = _trail(server)
            upload = _one(entries, "upload")
            assert upload.campaign == "example"
            assert upload.details == {
                "file": "c.csv",
                "size": len(sheet),
                "sha256": hashlib.sha256(sheet).hexdigest(),
            }
            check, launch = _one(entries, "check"), _one(entries, "launch")
            campaign_file = (server.root / "campaigns" / "example.toml").read_bytes()
            dnc = (ROOT / "sample_data" / "dnc.csv").read_bytes()
            assert check.details["fingerprints"] == {
                "campaign": hashlib.sha256(campaign_file).hexdigest(),
                "sheet": hashlib.sha256(sheet).hexdigest(),
                "do_not_call dnc.csv": hashlib.sha256(dnc).hexdigest(),
            }
            assert check.details["counts"]["ready"] == 49
            assert launch.details["fingerprints"] == check.details["fingerprints"]
            assert launch.details["people"] == 49
            assert set(launch.details["cost"]) >= {"per_call", "total", "currency"}
            run = server.jobs.runs[run_url.rsplit("/", 1)[1]]
            downloaded = {"file": safe_text(run.report.name), "kind": "csv"}  # its time masked
            assert _one(entries, "download").details == downloaded
            sync = _one(entries, "sync").details
            assert sync["ok"] is True and sync["updated"] == 49
            opted = _one(entries, "optout_added").details
            assert opted["count"] == 1 and opted["numbers"] == ["+91*******399"]
            assert opted["reason"] == "asked by mail"
            assert _one(entries, "optout_removed").details == {
                "number": "+91*******399",
                "reason": "typo",
            }
            (who,) = {e.who for e in entries}  # the session's person, every time
            assert who and who != "page"
            everything = json.dumps([e.__repr__() for e in entries])
            for number in [*_sheet_numbers(), OPTED_OUT[-10:]]:
                assert number not in everything
            assert AuditTrail(server.root / "state").verify() is None

        _run(tmp_path, body, env)


def test_a_launch_is_refused_when_the_trail_cannot_be_written_and_an_upload_goes_on(
    tmp_path, capsys
):
    with FakeTabblyThread(latency=0.01, balance=100) as fake:
        env = {"TABBLY_API_KEY": DEFAULT_API_KEY, "TABBLY_API_URL": fake.url}

        async def body(client: TestClient, server: web.Server) -> None:
            csrf = await _login(client)
            _refuse_appends(server.root)  # as a full disk would: the file reads, takes nothing
            form = _upload_form(csrf, "example", "c.csv", SHEET.read_bytes())
            checked = await client.post("/dry-runs", data=form, allow_redirects=False)
            assert checked.status == 303  # an upload and a check go on: only logged
            dry_id = checked.headers["Location"].rsplit("/", 1)[1]
            refused = await client.post(
                f"/dry-runs/{dry_id}/launch",
                data={"csrf": csrf, "confirm": "yes", "count": "49"},
                allow_redirects=False,
            )
            assert refused.status == 503
            assert "audit trail cannot be written" in await refused.text()
            assert server.jobs.runs == {}

        _run(tmp_path, body, env)
        assert fake.received == []
        # The upload's, the check's and the launch's entry failed: said once on stderr.
        assert capsys.readouterr().err.count("the audit trail cannot be written") == 1


def test_a_test_call_is_not_placed_when_the_trail_cannot_be_written(tmp_path, capsys):
    with FakeTabblyThread(latency=0.01, balance=100) as fake:
        env = {"TABBLY_API_KEY": DEFAULT_API_KEY, "TABBLY_API_URL": fake.url}

        async def body(client: TestClient, server: web.Server) -> None:
            csrf, dry_id = await _checked(client, ROWS)
            _refuse_appends(server.root)
            called = await client.post("/test-call", data=_form(csrf, _test_call_fields(dry_id)))
            assert called.status == 503
            assert "audit trail cannot be written" in await called.text()

        _run(tmp_path, body, env)
        assert fake.received == []  # nobody called
    assert "the audit trail cannot be written" in capsys.readouterr().err


def _refuse_appends(root: Path) -> None:
    AuditTrail(root / "state").append("tester", "sync")  # the trail's tables exist
    with sqlite3.connect(root / "state" / "team.sqlite") as db:
        db.execute(
            "CREATE TRIGGER full_disk BEFORE INSERT ON audit "
            "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )


def _seeded(root: Path) -> AuditTrail:
    trail = AuditTrail(root / "state")
    trail.append("alice", "upload", "spring", file="a.csv")
    trail.append("bob", "launch", "spring", people=3)
    trail.append("alice", "launch", "autumn", people=5)
    trail.append("=cmd|' /C calc'!A0", "stop", "autumn")
    return trail


def test_the_audit_page_lists_newest_first_filters_verifies_and_exports(tmp_path):
    async def body(client: TestClient, server: web.Server) -> None:
        trail = _seeded(server.root)
        await _login(client)
        page = await (await client.get("/audit")).text()
        seqs = [int(n) for n in re.findall(r'class="audit-entry" data-seq="(\d+)"', page)]
        assert seqs[-4:] == [4, 3, 2, 1]  # after them, the login's own entry (if any)
        assert "The chain verifies" in page
        page = await (await client.get("/audit?who=alice&action=launch")).text()
        assert re.findall(r'data-seq="(\d+)"', page) == ["3"]
        page = await (await client.get("/audit?campaign=spring")).text()
        assert re.findall(r'data-seq="(\d+)"', page) == ["2", "1"]
        page = await (await client.get("/audit?since=2999-01-01")).text()
        assert "data-seq" not in page
        bad = await client.get("/audit?since=yesterday")
        assert bad.status == 400 and "not a date" in await bad.text()

        exported = await client.get("/audit.csv?campaign=autumn")
        assert exported.status == 200
        assert "attachment" in exported.headers["Content-Disposition"]
        rows = list(csv.reader(io.StringIO(await exported.text())))
        assert tuple(rows[0]) == CSV_COLUMNS  # the CLI's `dialer audit --out` columns
        assert [r[0] for r in rows[1:]] == ["3", "4"]  # oldest first, as the CLI writes
        assert rows[2][2].startswith("'=")  # never a formula in a spreadsheet
        assert json.loads(rows[1][5]) == {"people": 5}
        assert rows[2][7] == trail.entries()[3].digest

        with sqlite3.connect(server.root / "state" / "team.sqlite") as db:
            db.execute("DROP TRIGGER audit_append_only_update")
            db.execute("UPDATE audit SET who = 'mallory' WHERE seq = 2")
        page = await (await client.get("/audit")).text()
        assert "does not verify: entry 2" in page

    _run(tmp_path, body)


def test_the_audit_page_is_paged(tmp_path):
    async def body(client: TestClient, server: web.Server) -> None:
        trail = AuditTrail(server.root / "state")
        for n in range(5):
            trail.append("alice", "sync", "spring", n=n)
        await _login(client)
        page = await (await client.get("/audit?who=alice")).text()
        assert re.findall(r'data-seq="(\d+)"', page) == ["5", "4"]
        older = re.search(r'href="/audit\?([^"]+)" id="audit-older"', page).group(1)
        page = await (await client.get(f"/audit?{older.replace('&amp;', '&')}")).text()
        assert re.findall(r'data-seq="(\d+)"', page) == ["3", "2"]
        assert 'id="audit-newer"' in page

    settings = replace(web.DEFAULTS, audit_page_entries=2)
    _run(tmp_path, body, settings=settings)


def test_schedules_made_fired_missed_and_deleted_are_in_the_trail(tmp_path):
    at = _soon()
    with FakeTabblyThread(latency=0.01, balance=100) as fake:

        async def body(client: TestClient, server: web.Server, book: Schedules) -> None:
            csrf = await _login(client)
            missed_id = await _schedule(client, csrf, at=_wall(at))
            fired_id = await _schedule(client, csrf, at=_wall(at + timedelta(minutes=1)))
            # The first is past its grace window, the second just within it.
            assert await book.tick(at + timedelta(seconds=SETTINGS.schedule_grace + 30)) != []
            removed = await client.post(
                f"/schedules/{missed_id}/remove", data={"csrf": csrf}, allow_redirects=False
            )
            assert removed.status == 303
            entries = _trail(server)
            made = [e for e in entries if e.action == "schedule_created"]
            # An id is masked like a number where it holds 7 digits in a row.
            missed_id, fired_id = safe_text(missed_id), safe_text(fired_id)
            assert [e.details["schedule"] for e in made] == [missed_id, fired_id]
            person = made[0].who
            assert person not in ("", "schedule") and made[0].details["people"] == READY
            fired, missed = _one(entries, "schedule_fired"), _one(entries, "schedule_missed")
            assert (fired.who, fired.details["schedule"]) == ("schedule", fired_id)
            assert fired.details["people"] == READY
            assert (
                fired.details["fingerprints"]["campaign"]
                == made[0].details["fingerprints"]["campaign"]
            )
            assert (missed.who, missed.details["schedule"]) == ("schedule", missed_id)
            deleted = _one(entries, "schedule_deleted")
            assert (deleted.who, deleted.details) == (person, {"schedule": missed_id})
            assert "launch" not in [e.action for e in entries]  # the firing is the launch

        _serve(_project(tmp_path / "p"), body, _fake_env(fake))


def test_campaigns_created_and_edited_on_the_page_carry_the_files_sha256(tmp_path):
    async def body(client: TestClient, server: web.Server) -> None:
        csrf = await _login(client)
        created = await client.post("/campaigns/new", data=_form(csrf, NEW), allow_redirects=False)
        assert created.status == 303, await created.text()
        path = server.root / "campaigns" / "spring.toml"
        first = hashlib.sha256(path.read_bytes()).hexdigest()
        page = await (await client.get("/campaigns/spring/edit")).text()
        edited = NEW | {"first_line": "Hello {{ first_name }}.", "opened": _value(page, "opened")}
        saved = await client.post(
            "/campaigns/spring/edit", data=_form(csrf, edited), allow_redirects=False
        )
        assert saved.status == 303, await saved.text()
        entries = _trail(server)
        made, changed = _one(entries, "campaign_created"), _one(entries, "campaign_edited")
        assert made.campaign == changed.campaign == "spring"
        assert (made.details["sha256_before"], made.details["sha256_after"]) == ("", first)
        assert changed.details["sha256_before"] == first
        assert changed.details["sha256_after"] == hashlib.sha256(path.read_bytes()).hexdigest()

    _run(tmp_path, body)


def test_an_opt_out_import_names_the_file_and_counts_never_the_numbers(tmp_path):
    numbers = b"phone\n+919845012301\n+919845012302\n"

    async def body(client: TestClient, server: web.Server) -> None:
        csrf = await _login(client)
        form = _upload_form(csrf, "", "dnc.csv", numbers)
        form.add_field("reason", "complaints list")
        answer = await client.post("/optouts/import", data=form)
        assert answer.status == 200, await answer.text()
        imported = _one(_trail(server), "optout_imported")
        assert imported.details["file"] == "dnc.csv"
        assert imported.details["sha256"] == hashlib.sha256(numbers).hexdigest()
        assert (imported.details["added"], imported.details["reason"]) == (2, "complaints list")
        assert "9845012301" not in repr(imported) and "9845012302" not in repr(imported)

    _run(tmp_path, body)


def test_a_test_call_stop_and_resume_are_in_the_trail_with_the_number_masked(tmp_path):
    with FakeTabblyThread(latency=0.05, balance=100) as fake:
        env = {"TABBLY_API_KEY": DEFAULT_API_KEY, "TABBLY_API_URL": fake.url}

        async def body(client: TestClient, server: web.Server) -> None:
            csrf, dry_id = await _checked(client, ROWS)
            called = await client.post("/test-call", data=_form(csrf, _test_call_fields(dry_id)))
            assert called.status == 200 and "Test call placed" in await called.text()
            launched = await client.post(
                f"/dry-runs/{dry_id}/launch",
                data={"csrf": csrf, "confirm": "yes", "count": str(_ready(server, dry_id))},
                allow_redirects=False,
            )
            run_url = launched.headers["Location"]
            run_id = run_url.rsplit("/", 1)[1]
            stop = {"csrf": csrf, "confirm": "yes"}
            assert (await client.post(f"{run_url}/stop", data=stop)).status == 200
            await _wait_finished(server, run_id)()
            resumed = await client.post(
                f"{run_url}/resume", data={"csrf": csrf}, allow_redirects=False
            )
            assert resumed.status == 303, await resumed.text()
            entries = _trail(server)
            test_call = _one(entries, "test_call")
            assert test_call.campaign == "example"
            assert test_call.details["number"] == "07******999"
            assert test_call.details["row"] == "2"
            assert "7359099999" not in repr(test_call)
            assert _one(entries, "stop").details["run"] == safe_text(run_id)
            assert _one(entries, "resume").details == {"run": safe_text(run_id)}
            assert [e.action for e in entries].count("check") == 2  # the resume checks again

        _run(tmp_path, body, env)


def test_only_an_admin_reads_the_trail_and_entries_name_the_person(tmp_path):
    async def body(client: TestClient, server: web.Server) -> None:
        people = People(server.root / "state")
        people.add("alice", Role.ADMIN, PASSWORD)
        people.add("eddie", Role.EDITOR, PASSWORD)
        csrf = await _login_as(client, "eddie")
        added = {"csrf": csrf, "numbers": OPTED_OUT, "reason": "asked by mail"}
        assert (await client.post("/optouts/add", data=added)).status == 200
        for path in ("/audit", "/audit.csv"):
            assert (await client.get(path)).status == 403
        await client.post("/logout", data={"csrf": csrf})
        await _login_as(client, "alice")
        page = await (await client.get("/audit?action=optout_added")).text()
        assert re.findall(r'data-action="([a-z_]+)"', page) == ["optout_added"]
        assert ">eddie<" in page and 'id="menu-audit"' in page
        assert (await client.get("/audit.csv")).status == 200

    _run(tmp_path, body)
