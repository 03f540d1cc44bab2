"""Runs that start later: once at a chosen time, or every day at a time. Kept in
`state/schedules.toml`, started by `dialer serve` itself (a loop calling `tick`), shown on
/schedules with the equivalent cron line for servers that run no `dialer serve`.

    book = Schedules(root, jobs, campaigns, settings)
    await book.add(dry, form)         # made from a check: its sheet is kept beside the file
    await book.tick(now)              # starts what is due; the loop calls it, tests too

The rules:
- **At most once per due time.** The due time is written to the file (atomically) before the
  run starts, so a crash, a restart or a second tick never fires it again. Given back only
  when nothing started for a passing reason (every check slot taken, a launch holding the
  campaign), so the next tick tries again within the grace window.
- **Due while `dialer serve` was down**: fired when it is back, up to `schedule_grace` (1 hour)
  after the time; later than that it is marked missed, because a call hours late surprises
  the people called (and tomorrow's daily run comes anyway).
- **Never a second run**: a campaign running from this page, or holding its ledger's run lock
  anywhere (a cron run), is not started again; the schedule waits, tick after tick, within the
  grace window, then is marked missed.
- **"once" is bound to its check** like a launch: the campaign file, do-not-call lists and the
  sheet are fingerprinted at the check and passed as `--expect-*-sha256`; any change refuses it
  and the page says why. **"every day"** checks its sheet afresh each day (the campaign's own
  `[contacts] source`, newest file, or the sheet it was made from), then launches bound to that
  day's check, so the run page has its "x of N" too.
- **"every day" is bound to the campaign as confirmed**: the campaign file (and the schedule's
  copy of its sheet) are fingerprinted when it is made; any change pauses it (a greeting edited
  after scheduling is never sent to everyone unseen) until someone checks again and confirms.
  A paused schedule never fires, even if the file is changed back.
- **One copy per sheet**: the sheets schedules keep are named by their SHA-256, so a hundred
  schedules of one sheet keep one copy, deleted with the last schedule using it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shlex
import shutil
import sys
import tempfile
import tomllib
from dataclasses import asdict, fields
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web

from dialer.campaign.binding import file_sha256
from dialer.core.atomic import replace_text
from dialer.core.clock import Clock, parse_stamp, stamp, system_clock
from dialer.core.statuses import DialerError, Status
from dialer.sheets.sources import resolve_source
from dialer.team.audit import SCHEDULE_FIRED, SCHEDULE_MISSED
from dialer.team.people import SCHEDULE_ACTOR
from dialer.web import texts
from dialer.web.services.campaign_toml import toml_value
from dialer.web.services.campaigns import CampaignShelf
from dialer.web.services.jobs import (
    AlreadyRunning,
    ChecksBusy,
    CheckStale,
    DryRun,
    Jobs,
    fingerprint,
    ledger_held,
)
from dialer.web.services.page_audit import (
    AuditUnavailable,
    PageAudit,
    schedule_details,
)
from dialer.web.services.schedule_entry import (
    DAILY,
    FIRED,
    MISSED,
    ONCE,
    OWN_SOURCE,
    PAUSED,
    REFUSED,
    WAITING,
    Schedule,
    ScheduleForm,
)
from dialer.web.services.schedule_times import at_text, local_zone, time_of_day, wall_time
from dialer.web.settings import Settings


class Schedules:
    """The server's schedules, in memory and in `state/schedules.toml` (written atomically)."""

    def __init__(
        self,
        root: Path,
        jobs: Jobs,
        campaigns: CampaignShelf,
        settings: Settings,
        clock: Clock = system_clock,
        server_zone: tzinfo | None = None,
        audit: PageAudit | None = None,
    ) -> None:
        self.root = root
        self.path = root / "state" / "schedules.toml"
        self.sheets = root / "state" / "schedules"  # the sheets schedules keep
        self.jobs = jobs
        self.campaigns = campaigns
        self.settings = settings
        self.clock = clock
        self.server_zone = server_zone or local_zone()
        self.audit = audit  # firings and misses go into the team's audit trail
        self.problem = ""  # why the file could not be read: nothing fires, nothing is saved
        self._items: dict[str, Schedule] = self._read()
        self._lock = asyncio.Lock()  # one tick or edit at a time
        self._loop: asyncio.Task[None] | None = None

    def all(self) -> list[Schedule]:
        return list(self._items.values())

    def get(self, schedule_id: str) -> Schedule | None:
        return self._items.get(schedule_id)

    def validate(self, form: ScheduleForm, ready: int, now: datetime) -> str:
        """The first thing wrong with the form, naming its field ("" if none)."""
        if form.when not in (ONCE, DAILY):
            return texts.SCHEDULE_WHEN
        try:
            zone = ZoneInfo(form.zone)
        except (ZoneInfoNotFoundError, ValueError):
            return texts.SCHEDULE_BAD_ZONE.format(zone=form.zone)
        if form.when == ONCE:
            at = wall_time(form.at)
            if at is None:
                return texts.SCHEDULE_BAD_AT.format(value=form.at)
            if at.replace(tzinfo=zone) <= now:
                return texts.SCHEDULE_PAST.format(value=form.at.replace("T", " "), zone=form.zone)
            if at.replace(tzinfo=zone) - now > timedelta(seconds=self.settings.schedule_ahead):
                return texts.SCHEDULE_TOO_FAR.format(
                    value=form.at.replace("T", " "), zone=form.zone
                )
        elif time_of_day(form.time) is None:
            return texts.SCHEDULE_BAD_TIME.format(value=form.time)
        once = form.when == ONCE
        if once and ready == 0:
            return texts.SCHEDULE_NOBODY  # the form hides "once" then; a forged post does not
        if not form.confirm or (once and form.count != str(ready)):
            return texts.SCHEDULE_NEEDS_CONFIRM
        if self.problem:
            return self.problem
        replacing = int(bool(form.replaces) and form.replaces in self._items)
        if len(self._items) - replacing >= self.settings.schedules_max:
            return f"There are {len(self._items)} schedules already: remove some first."
        return ""

    async def add(self, dry: DryRun, form: ScheduleForm) -> Schedule:
        """A schedule made from a check; the form was validated. UsageError-like DialerError
        if the check's sheet can no longer be kept as it was checked. With `form.replaces`,
        the paused schedule it confirms again goes (its kept sheet too, unless shared)."""
        async with self._lock:
            schedule_id = secrets.token_hex(8)
            own = form.when == DAILY and form.sheet == OWN_SOURCE
            sheet = "" if own else str(await asyncio.to_thread(self._keep, dry))
            prints = {k: v for k, v in dry.fingerprint.items() if k != str(dry.upload)}
            if sheet:
                prints[sheet] = dry.fingerprint[str(dry.upload)]
            once = form.when == ONCE
            if not once:  # the campaign file and the kept sheet, as this check read them
                bound = {str(dry.campaign_path), sheet}
                prints = {k: v for k, v in prints.items() if k in bound}
            if once:
                at = (wall_time(form.at) or datetime.min).strftime("%Y-%m-%dT%H:%M")
            else:
                at = "{:02d}:{:02d}".format(*(time_of_day(form.time) or (0, 0)))
            schedule = Schedule(
                id=schedule_id,
                campaign=dry.campaign,
                campaign_path=str(dry.campaign_path),
                kind=form.when,
                at=at,
                zone=form.zone,
                sheet=sheet,
                sheet_name=dry.sheet_name,
                created=stamp(self.clock()),
                ready=int(dry.summary.get("counts", {}).get(Status.READY, 0)) if once else 0,
                report=str(dry.report) if once else "",
                fingerprint=prints,
                expect=list(dry.expect) if once else [],
            )
            self._items[schedule.id] = schedule
            old = self._items.get(form.replaces) if form.replaces else None
            replaced = self._items.pop(old.id) if old is not None and old.paused else None
            try:
                await asyncio.to_thread(self._save)
            except OSError:
                del self._items[schedule.id]
                if replaced is not None:
                    self._items[replaced.id] = replaced
                self._drop_sheet(schedule)
                raise
            if replaced is not None:
                self._drop_sheet(replaced)
            return schedule

    def _keep(self, dry: DryRun) -> Path:
        """The checked sheet, kept where upload pruning never deletes it, still as checked:
        named by its SHA-256, so schedules of one sheet share one copy."""
        digest = dry.fingerprint.get(str(dry.upload), "")
        if len(digest) != 64:
            raise SheetChanged(texts.SCHEDULE_SHEET_CHANGED)
        self.sheets.mkdir(parents=True, exist_ok=True)
        kept = self.sheets / f"{digest}{dry.upload.suffix.lower()}"
        if file_sha256(kept) == digest:
            return kept  # kept already, for another schedule (or this is that copy)
        fd, temp = tempfile.mkstemp(prefix=".sheet-", dir=self.sheets)
        os.close(fd)
        try:
            with contextlib.suppress(OSError):
                shutil.copyfile(dry.upload, temp)
            if file_sha256(Path(temp)) != digest:
                raise SheetChanged(texts.SCHEDULE_SHEET_CHANGED)
            os.replace(temp, kept)  # whole or not at all: another schedule may share it
        finally:
            Path(temp).unlink(missing_ok=True)
        return kept

    async def remove(self, schedule_id: str) -> None:
        async with self._lock:
            schedule = self._items.pop(schedule_id, None)
            if schedule is None:
                return
            await asyncio.to_thread(self._save)
            self._drop_sheet(schedule)

    def _drop_sheet(self, schedule: Schedule) -> None:
        """Its kept sheet goes with the last schedule using it (never under a run)."""
        shared = any(s.sheet == schedule.sheet for s in self._items.values())
        if (
            schedule.sheet
            and not shared
            and Path(schedule.sheet) not in self.jobs.running_uploads()
        ):
            Path(schedule.sheet).unlink(missing_ok=True)

    async def look_for_changes(self) -> None:
        """Pause each daily schedule whose campaign (or kept sheet) changed since it was
        confirmed; saved at once, so a restart keeps it paused. Skipped while a tick runs
        (it looks first itself, and may be checking a sheet for minutes)."""
        if self._lock.locked():
            return
        async with self._lock:
            if await self._pause_changed():
                with contextlib.suppress(OSError):  # said again at the next look
                    await asyncio.to_thread(self._save)

    async def _pause_changed(self) -> bool:
        daily = [s for s in self._items.values() if s.kind == DAILY and not s.paused]
        changed = False
        for schedule in daily:
            files = schedule.bound_files()
            now = await asyncio.to_thread(fingerprint, files)
            if any(schedule.fingerprint.get(str(f)) != now[str(f)] for f in files):
                self._pause(schedule)
                changed = True
        return changed

    @staticmethod
    def _pause(schedule: Schedule) -> None:
        schedule.state = PAUSED  # its state words say why and what to do
        schedule.note = ""

    async def tick(self, now: datetime | None = None) -> list[str]:
        """Start every schedule due at `now` (the clock's now by default); the ids of the runs
        started. Never raises for one schedule's trouble: its note says what happened."""
        now = now or self.clock()
        started: list[str] = []
        if self.problem:
            return started
        async with self._lock:
            await self._forget_old(now)
            if await self._pause_changed():
                with contextlib.suppress(OSError):
                    await asyncio.to_thread(self._save)
            for schedule in list(self._items.values()):
                due = schedule.due(now)
                if due is None:
                    continue
                with contextlib.suppress(OSError):  # a full disk: tried again next tick
                    if (now - due).total_seconds() > self.settings.schedule_grace:
                        self._handled(schedule, due, MISSED, _missed(due))
                        await asyncio.to_thread(self._tell_missed, schedule, due, now)
                        await self._record(SCHEDULE_MISSED, schedule, None, due)
                    elif run_id := await self._fire(schedule, due):
                        started.append(run_id)
                    await asyncio.to_thread(self._save)  # its note, whatever happened
        return started

    def _tell_missed(self, schedule: Schedule, due: datetime, now: datetime) -> None:
        """`schedule_missed` into the folder's outbox (`dialer.notify`; the server's loop
        delivers it); nothing for a campaign that no longer loads."""
        from dialer.notify.events import schedule_missed_event
        from dialer.notify.notices import enqueue

        try:
            campaign = self.campaigns.load(Path(schedule.campaign_path))
        except DialerError:
            return
        entry = schedule_missed_event(campaign, schedule.id, stamp(due), _MISSED_WHY, now)
        enqueue(self.root / "state", [entry])

    async def _fire(self, schedule: Schedule, due: datetime) -> str:
        try:
            campaign = self.campaigns.load(Path(schedule.campaign_path))
        except DialerError as exc:
            self._handled(schedule, due, REFUSED, f"not started: {exc}")
            return ""
        if self.jobs.busy(schedule.campaign) or await asyncio.to_thread(ledger_held, campaign):
            schedule.note = f"waiting: campaign {schedule.campaign} is running now"
            return ""  # tried again next tick, within the grace window
        once = schedule.kind == ONCE
        before = (schedule.last, schedule.state)
        # Written before the run starts: whatever happens next, this due time never fires again.
        self._handled(schedule, due, FIRED if once else WAITING, "starting")
        await asyncio.to_thread(self._save)
        try:
            if once:
                dry = self.jobs.restore_check(
                    campaign,
                    Path(schedule.sheet),
                    schedule.sheet_name,
                    Path(schedule.report),
                    schedule.ready,
                    schedule.fingerprint,
                    tuple(schedule.expect),
                )
            else:
                dry = await self.check_today(campaign, schedule)
                if any(schedule.fingerprint.get(k) != v for k, v in self._bound(dry).items()):
                    # Changed between the look above and today's check: that check (and the
                    # run bound to it) would say what nobody confirmed.
                    self._pause(schedule)
                    return ""
                if dry.summary.get("counts", {}).get(Status.READY, 0) == 0:
                    schedule.note = f"{at_text(due)}: checked, nobody to call"
                    return ""
            run = await self.jobs.launch(
                dry, lambda: self._record(SCHEDULE_FIRED, schedule, dry, due, must=True)
            )
        except (AlreadyRunning, ChecksBusy, AuditUnavailable) as exc:
            # Passing (two checks at once; a launch holding the campaign), raised before any
            # run started: the due time is given back, so the next tick tries again within the
            # grace window instead of losing the day (or refusing a "once" for good).
            schedule.last, schedule.state = before
            schedule.note = (
                f"waiting: campaign {schedule.campaign} is running now"
                if isinstance(exc, AlreadyRunning)
                else "waiting: other sheets are being checked now"
                if isinstance(exc, ChecksBusy)
                else f"waiting: {exc}"
            )
            return ""
        except (CheckStale, DialerError) as exc:
            schedule.state = REFUSED if once else WAITING
            schedule.note = f"{at_text(due)}: not started: {exc}"
            return ""
        schedule.run_id = run.id
        schedule.note = f"{at_text(due)}: started"
        return run.id

    async def _record(
        self, action: str, schedule: Schedule, dry: DryRun | None, due: datetime, must: bool = False
    ) -> None:
        """The audit entry of a firing (`must`: AuditUnavailable refuses the launch) or a miss,
        by "schedule": who made it is in the schedule's own "schedule_created" entry."""
        if self.audit is None:
            return
        details = {**schedule_details(schedule, dry), "due": stamp(due)}
        write = self.audit.must_record if must else self.audit.record
        await write(SCHEDULE_ACTOR, action, schedule.campaign, **details)

    @staticmethod
    def _bound(dry: DryRun) -> dict[str, str]:
        """Today's check's fingerprints of what a daily schedule is confirmed on."""
        return {str(dry.campaign_path): dry.fingerprint.get(str(dry.campaign_path), "")}

    async def check_today(self, campaign: Any, schedule: Schedule) -> DryRun:
        sheet = (
            Path(schedule.sheet)
            if schedule.sheet
            else resolve_source(campaign.contacts.source, campaign.path.parent)
        )
        name = schedule.sheet_name if schedule.sheet else sheet.name
        async with self.jobs.check_slot():
            return await self.jobs.check(campaign, sheet, name)

    async def _forget_old(self, now: datetime) -> None:
        """A "once" over for longer than uploads are kept goes, with its copy of the sheet:
        phone numbers are not kept longer by scheduling them."""
        keep = timedelta(seconds=self.settings.upload_keep_seconds)
        old = [s for s in self._items.values() if s.kind == ONCE and not s.waiting]
        old = [s for s in old if now - (parse_stamp(s.last) or now) > keep]
        if not old:
            return
        for schedule in old:
            del self._items[schedule.id]
        with contextlib.suppress(OSError):
            await asyncio.to_thread(self._save)
            for schedule in old:
                self._drop_sheet(schedule)

    def _handled(self, schedule: Schedule, due: datetime, state: str, note: str) -> None:
        """This due time is dealt with: it never fires again (once saved)."""
        schedule.last = stamp(due)
        schedule.state = state if schedule.kind == ONCE else WAITING
        schedule.note = note

    async def run_forever(self) -> None:
        """The loop inside `dialer serve`: a tick at start-up (what fell due while it was
        down), then one every `schedule_every` seconds."""
        while True:
            try:
                await self.tick(self.clock())
            except Exception as exc:  # a defect here must not end scheduling for good
                print(f"dialer serve: schedules: {type(exc).__name__}: {exc}", file=sys.stderr)
            await asyncio.sleep(self.settings.schedule_every)

    async def start(self, _app: web.Application) -> None:
        self._loop = asyncio.get_running_loop().create_task(self.run_forever())

    async def stop(self, _app: web.Application) -> None:
        """Server going down: after the tick under way (never half a launch), before the
        server stops its runs, so a run this tick starts is stopped cleanly too."""
        async with self._lock:
            if self._loop is not None:
                self._loop.cancel()

    def _read(self) -> dict[str, Schedule]:
        try:
            data = tomllib.loads(self.path.read_text("utf-8"))
            names = {f.name for f in fields(Schedule)}
            items = [
                Schedule(**{k: v for k, v in entry.items() if k in names})
                for entry in data.get("schedule", [])
            ]
            for item in items:
                ZoneInfo(item.zone)  # a zone this machine lacks is a broken file, said so
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, TypeError, KeyError, ZoneInfoNotFoundError) as exc:
            self.problem = (
                f"{self.path} cannot be read ({exc}): no schedule fires until it is fixed "
                "or removed"
            )
            return {}
        return {item.id: item for item in items}

    def _save(self) -> None:
        """The whole file, atomically: a crash leaves the old file or the new, never half."""
        text = "# Written by `dialer serve` (its /schedules page); edits here are overwritten.\n"
        for item in self._items.values():
            text += "\n[[schedule]]\n" + "".join(
                f"{key} = {toml_value(value)}\n" for key, value in asdict(item).items()
            )
        replace_text(self.path, text)

    def cron_line(self, schedule: Schedule, now: datetime) -> str:
        """The crontab line doing the same on a server without `dialer serve`, in the server's
        own time zone (cron's). Never raises: /schedules (and its Remove buttons) must show
        whatever the file holds, even a time beyond what the server's zone can express."""
        try:
            when = schedule.next_time(now) or schedule.due(now) or now
            when = when.astimezone(self.server_zone)
        except (OverflowError, ValueError):
            return texts.CRON_OUT_OF_RANGE
        if schedule.kind == ONCE:
            # cron has no year field: without the year test the line would run every year on
            # that date. `%` ends a cron command unless escaped; cron hands `date` a bare `%`.
            fields_ = f"{when.minute} {when.hour} {when.day} {when.month} *"
            fields_ += f' [ "$(date +\\%Y)" = {when.year} ] &&'
        else:
            fields_ = f"{when.minute} {when.hour} * * *"
        args = [sys.executable, "-m", "dialer", "run", schedule.campaign_path]
        if schedule.sheet:
            args += ["--contacts", schedule.sheet]
        args += [*schedule.expect, "--yes"]
        return f"{fields_} cd {shlex.quote(str(self.root))} && {shlex.join(args)}"

    def again_form(self, schedule_id: str) -> ScheduleForm | None:
        """The check page's schedule form filled in from the paused daily schedule
        `schedule_id` (None if there is none): confirming it replaces that schedule."""
        schedule = self._items.get(schedule_id)
        if schedule is None or not schedule.paused:
            return None
        return ScheduleForm(
            when=DAILY,
            time=schedule.at,
            zone=schedule.zone,
            sheet="check" if schedule.sheet else OWN_SOURCE,
            replaces=schedule.id,
        )


class SheetChanged(DialerError):
    """The checked sheet changed before a schedule could keep it."""


_MISSED_WHY = (
    "the page's server was not running then, or the campaign was still running, and it is "
    "past the grace window"
)


def _missed(due: datetime) -> str:
    return f"{at_text(due)}: missed: {_MISSED_WHY}"


SCHEDULES = web.AppKey("schedules", Schedules)
