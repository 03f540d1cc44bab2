"""Results on the page (SPEC 11): who answered, read by `dialer sync` run as a child process,
shown as a chart drawn here (inline SVG: nothing loads from elsewhere), answer rate, cost and
calls per hour; the newest results sheet to download; the cost estimate a check shows.

    syncs = Syncs(server.jobs, server.settings)
    state = await syncs.sync(campaign)                  # one child per campaign at a time
    outcomes = read_outcomes(campaign, run.report)      # blocking: the ledger, read only
    svg = chart(outcomes, "Outcomes of this run")       # Markup, labels and numbers included
    estimate_cost(campaign, ready=49)                   # blocking: for the check page

A sync is never started while the campaign runs or a launch of it is starting, and no launch
starts while it syncs (the ledger lock would refuse either; the page says so in a sentence
instead). The API key stays in the server's environment, which the child inherits.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web
from markupsafe import Markup, escape

from dialer.campaign.model import Campaign
from dialer.core.clock import stamp
from dialer.core.currencies import money
from dialer.core.masking import mask_phone, mask_text
from dialer.core.paths import RESULTS_SUFFIX, ledger_path, reports_folder
from dialer.core.statuses import ERROR_PREFIX, CallOutcome, DialerError, Kind
from dialer.ledger import dials
from dialer.ledger.store import Ledger
from dialer.outcomes.sync import UPDATED_LINE
from dialer.web import texts
from dialer.web.auth import check_csrf, session_of
from dialer.web.services import reports
from dialer.web.services.jobs import Jobs, Line, WebRun, communicate_within, limited_python
from dialer.web.settings import Settings

if TYPE_CHECKING:
    from dialer.web.app import Server

# Okabe-Ito hues darkened to a contrast of at least 4.5:1 on white; `pending` is drawn as a
# dashed outline. Every bar also carries its label and number: the colour is never needed.
COLOURS = {
    CallOutcome.ANSWERED: "#00734f",
    CallOutcome.VOICEMAIL: "#0061a8",
    CallOutcome.NO_ANSWER: "#a84800",
    CallOutcome.BUSY: "#a3407a",
    CallOutcome.FAILED: "#333333",
    CallOutcome.PENDING: "#5c6670",
}
TEXT_COLOUR = "#1d2733"
_ROW, _LABEL, _BAR, _WIDTH = 30, 110, 360, 600  # chart geometry, in SVG units


@dataclass(frozen=True, slots=True)
class Outcomes:
    """What the ledger says of the people a run (or the whole campaign) called."""

    counts: dict[CallOutcome, int]  # each person's last call's outcome
    cost: float
    answer_rate: float | None
    calls_per_hour: float | None
    synced_at: str | None  # when a sync last stored an outcome of these calls

    @property
    def people(self) -> int:
        return sum(self.counts.values())

    @property
    def known(self) -> int:
        return self.people - self.counts.get(CallOutcome.PENDING, 0)


def _open(campaign: Campaign) -> Ledger | None:
    """The campaign's ledger, read only (no lock: a run may hold it); None if there is none."""
    path = ledger_path(campaign)
    if not path.is_file():
        return None
    with contextlib.suppress(DialerError, sqlite3.Error, OSError):
        return Ledger.open_readonly(path, campaign_file=campaign.path)
    return None


def read_outcomes(
    campaign: Campaign, report: Path | None = None, *, rate_after: float = 0.0
) -> Outcomes | None:
    """The outcomes of the run whose report is `report` (None: of everyone the campaign
    called); None when there is no ledger or it does not know that run. Calls per hour only
    once the runs lasted `rate_after` seconds. Blocking."""
    ledger = _open(campaign)
    if ledger is None:
        return None
    try:
        conn = ledger.connection
        run_id = None
        if report is not None:
            # The ledger keeps each run's report as an absolute path; names are unique.
            runs = dials.run_reports(conn).items()
            run_id = next((r for r, stored in runs if Path(stored).name == report.name), None)
            if run_id is None:
                return None
        counts = dials.last_outcomes(conn, run_id)
        return Outcomes(
            counts=counts,
            cost=dials.total_cost(conn, run_id),
            answer_rate=dials.answer_rate(counts),
            calls_per_hour=dials.calls_per_hour(conn, run_id, min_seconds=rate_after),
            synced_at=dials.last_synced_at(conn, run_id),
        )
    except sqlite3.Error:  # an old ledger without the dials table: nothing to show yet
        return None
    finally:
        with contextlib.suppress(DialerError, sqlite3.Error, OSError):
            ledger.close()


@dataclass(frozen=True, slots=True)
class TestCallLine:
    """One test call as the campaign's page lists it: the number masked, its cost if known
    (the campaign's cost per call, from synced calls or its file: "≈")."""

    __test__ = False

    at: str  # UTC, to the second
    number: str
    said: str
    cost: str


def read_test_calls(
    campaign: Campaign, count: int, since: str
) -> tuple[list[TestCallLine], int, str]:
    """The newest `count` test calls, how many were placed since `since` (a stamp), and
    about what those cost ("" when no cost per call is known). Blocking."""
    estimate = estimate_cost(campaign, 1)
    each = money(estimate.per_call, campaign.currency) if estimate.per_call is not None else ""
    ledger = _open(campaign)
    if ledger is None:
        return [], 0, ""
    try:
        found = ledger.recent_test_calls(count)
    except sqlite3.Error:  # a ledger from before test calls
        return [], 0, ""
    finally:
        with contextlib.suppress(DialerError, sqlite3.Error, OSError):
            ledger.close()
    lines = [
        TestCallLine(
            at.replace("T", " ")[:19],
            mask_phone(number),
            texts.test_call_words(status, mask_text(reason)),
            f"≈ {each}" if each and status == Kind.TRIGGERED.value else "",
        )
        for at, number, status, reason in found
    ]
    placed = sum(1 for at, _, status, _ in found if at >= since and status == Kind.TRIGGERED.value)
    total = money(placed * estimate.per_call, campaign.currency) if each else ""
    return lines, placed, total


@dataclass(frozen=True, slots=True)
class CostEstimate:
    ready: int
    per_call: float | None  # None: unknown
    source: str  # "synced" (the ledger's average), "campaign" (cost_per_call) or ""
    calls: int = 0  # the calls the average is over
    currency: str | None = None  # the campaign's, said after each amount

    @property
    def total(self) -> float | None:
        return None if self.per_call is None else self.ready * self.per_call

    @property
    def total_text(self) -> str:
        return "" if self.total is None else money(self.total, self.currency)

    @property
    def text(self) -> str:
        return texts.cost_estimate_text(
            self.ready, self.per_call, self.source, self.calls, self.currency
        )


def estimate_cost(campaign: Campaign | None, ready: int) -> CostEstimate:
    """Ready rows × the campaign's average cost per call from synced outcomes, else its
    `cost_per_call`, else unknown. Blocking (reads the ledger)."""
    if campaign is None:
        return CostEstimate(ready, None, "")
    ledger = _open(campaign)
    if ledger is not None:
        try:
            average = dials.average_cost(ledger.connection)
        except sqlite3.Error:
            average = None
        finally:
            with contextlib.suppress(DialerError, sqlite3.Error, OSError):
                ledger.close()
        if average is not None:
            return CostEstimate(ready, average[0], "synced", average[1], campaign.currency)
    if campaign.cost_per_call is not None:
        return CostEstimate(ready, campaign.cost_per_call, "campaign", 0, campaign.currency)
    return CostEstimate(ready, None, "", 0, campaign.currency)


def chart(outcomes: Outcomes, title: str) -> Markup:
    """A horizontal bar per outcome, in SPEC 10's order, each with its label on the left and
    its number and share on the right; the title is the chart's accessible name and the
    description reads every number out."""
    people = outcomes.people
    most = max(outcomes.counts.values(), default=0) or 1
    rows, said = [], []
    for i, outcome in enumerate(COLOURS):
        n = outcomes.counts.get(outcome, 0)
        share = f"{n / people:.0%}" if people else "0%"
        label = texts.OUTCOME_LABELS[outcome.value]
        said.append(f"{label} {n} ({share})")
        y = i * _ROW
        width = round(_BAR * n / most, 1)
        colour = COLOURS[outcome]
        if outcome is CallOutcome.PENDING:
            paint = f'fill="#ffffff" stroke="{colour}" stroke-width="2" stroke-dasharray="4 3"'
        else:
            paint = f'fill="{colour}"'
        rows.append(
            f'<g class="bar" data-outcome="{outcome.value}" data-count="{n}">'
            f'<text x="{_LABEL - 8}" y="{y + 19}" text-anchor="end">{label}</text>'
            f'<rect x="{_LABEL}" y="{y + 5}" width="{max(width, 1) if n else 0}" height="20" '
            f"{paint}/>"
            f'<text x="{_LABEL + width + 8}" y="{y + 19}">{n} ({share})</text></g>'
        )
    height = len(COLOURS) * _ROW + 4
    name = escape(title)
    return Markup(
        f'<svg id="outcome-chart" role="img" aria-label="{name}" '
        f'aria-describedby="outcome-chart-desc" viewBox="0 0 {_WIDTH} {height}" '
        f'width="100%" preserveAspectRatio="xMinYMin meet" font-size="14" '
        f'font-family="system-ui, sans-serif" fill="{TEXT_COLOUR}">'
        f'<title id="outcome-chart-title">{name}</title>'
        f'<desc id="outcome-chart-desc">{escape(", ".join(said))}</desc>'
        f"{''.join(rows)}</svg>"
    )


@dataclass(slots=True)
class SyncState:
    """A campaign's syncs from this page: the one under way, and what the last one said."""

    task: asyncio.Task[None] | None = None
    ended: float | None = None  # the loop's time when the last sync ended
    ok: bool = True
    message: str = ""

    @property
    def running(self) -> bool:
        return self.task is not None


class Syncs:
    """`dialer sync` children, one at a time per campaign (a second request joins the first)
    and `syncs_at_once` in all (the rest wait in line, and the page says so), each with its
    data memory capped like a check's."""

    def __init__(self, jobs: Jobs, settings: Settings) -> None:
        self.jobs = jobs
        self.settings = settings
        self.states: dict[str, SyncState] = {}
        self.line = Line(settings.syncs_at_once)

    def said(self, campaign: str) -> tuple[bool, str]:
        """What the section says of the campaign's sync: waiting in line, or how it went."""
        state = self.state(campaign)
        ahead = self.line.ahead(state)
        if state.running and ahead is not None:
            return True, texts.sync_queued(ahead)
        return state.ok, state.message

    def state(self, campaign: str) -> SyncState:
        return self.states.setdefault(campaign, SyncState())

    def due(self, campaign: str) -> bool:
        """An automatic sync may start: none under way, the last one `auto_sync_every` ago."""
        state = self.state(campaign)
        if state.running or state.ended is None:
            return not state.running
        now = asyncio.get_running_loop().time()
        return now - state.ended >= self.settings.auto_sync_every

    async def sync(self, campaign: Campaign) -> SyncState:
        """Sync `campaign` (or wait for the sync under way); its state says how it went."""
        state = self.state(campaign.name)
        if state.task is None:
            if self.jobs.busy(campaign.name):
                state.ok, state.message = False, texts.sync_refused_running(campaign.name)
                return state
            # Held before any await, let go when the task ends however it ends (even cancelled
            # before it began): a launch meanwhile is refused, not left to fail on the lock.
            hold = contextlib.ExitStack()
            hold.enter_context(self.jobs.holding(campaign.name))
            ticket = self.line.join(state)  # in line from now: the page says so at once
            queued = ticket is not None
            state.task = asyncio.get_running_loop().create_task(self._sync(campaign, state, ticket))
            state.task.add_done_callback(lambda _task: hold.close())
        else:
            queued = self.line.ahead(state) is not None
        if not queued:  # one in line is not waited for: the page says how many are ahead
            # Shielded: a visitor who leaves does not stop the sync others wait for.
            await asyncio.shield(state.task)
        return state

    async def _sync(
        self, campaign: Campaign, state: SyncState, ticket: asyncio.Future[None] | None
    ) -> None:
        try:
            await self.line.turn(ticket)
            try:
                state.ok, state.message = await self._child(campaign)
            finally:
                self.line.leave()
        except OSError as exc:
            state.ok, state.message = False, texts.sync_failed(exc.strerror or str(exc))
        finally:
            state.task = None
            state.ended = asyncio.get_running_loop().time()

    async def _child(self, campaign: Campaign) -> tuple[bool, str]:
        proc = await asyncio.create_subprocess_exec(
            *limited_python(self.settings.sync_memory),
            "sync",
            str(campaign.path),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.jobs.child_env(),  # the server's environment, the API key included
            start_new_session=True,
        )
        try:
            out, err = await communicate_within(proc, self.settings.sync_timeout)
        except TimeoutError:
            return False, texts.SYNC_TOO_SLOW
        if proc.returncode == 0:
            said = out.decode("utf-8", "replace")
            if "never run" in said:
                return True, texts.SYNC_NEVER_RUN
            updated = UPDATED_LINE.search(said)
            return True, texts.synced(int(updated[1]) if updated else 0)
        lines = err.decode("utf-8", "replace").strip().splitlines()
        reason = lines[-1].removeprefix(ERROR_PREFIX) if lines else f"exit code {proc.returncode}"
        if "another run of campaign" in reason:  # the ledger lock: a run from elsewhere
            return False, texts.sync_refused_locked(campaign.name)
        ours = bool(lines) and lines[-1].startswith(ERROR_PREFIX)  # a sentence of dialer's
        if not ours and ("memory" in reason.lower() or (proc.returncode or 0) < 0):
            return False, texts.sync_needs_memory(self.settings)  # over sync_memory
        key = self.jobs.environ.get(campaign.api_key_env, "")
        if len(key) >= 8:  # the CLI never prints it; a second guard costs nothing
            reason = reason.replace(key, "[API key]")
        return False, texts.sync_failed(reason)

    async def stop_all(self, _app: web.Application | None = None) -> None:
        """Server going down: stop the syncs (a sync stores all or nothing)."""
        tasks = [s.task for s in self.states.values() if s.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=self.settings.stop_wait)


class ResultPages:
    """The routes of results: the sync button, the results section, the results sheet."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.jobs = server.jobs
        self.settings = server.settings
        self.syncs = Syncs(server.jobs, server.settings)

    def _campaign(self, name: str) -> Campaign:
        campaign = self.server.campaigns.get(name)
        if campaign is None:
            raise web.HTTPNotFound(text="no such campaign")
        return campaign

    async def section(self, campaign: Campaign | None, run: WebRun | None = None) -> dict[str, Any]:
        """What the results section shows: a run's calls (or the whole campaign's)."""
        name = campaign.name if campaign is not None else run.campaign if run else ""
        state = self.syncs.state(name)
        ok, said = self.syncs.said(name)
        finished = run is None or run.finished
        outcomes = None
        if campaign is not None and finished:
            outcomes = await asyncio.to_thread(
                read_outcomes,
                campaign,
                run.report if run is not None else None,
                rate_after=self.settings.calls_per_hour_after,
            )
        called = texts.people(outcomes.people if outcomes else 0)
        title = f"Outcomes of the {called} {'this run' if run is not None else name} called"
        folder = reports_folder(campaign) if campaign is not None else None
        sheet = await asyncio.to_thread(reports.newest_results, folder) if folder else None
        answered = outcomes.counts.get(CallOutcome.ANSWERED, 0) if outcomes else 0
        return {
            "campaign": name,
            "run_id": run.id if run is not None else "",
            "finished": finished,
            "usable": campaign is not None,
            "outcomes": outcomes if outcomes and outcomes.people else None,
            "title": title,
            "chart": chart(outcomes, title) if outcomes and outcomes.people else "",
            "answer_rate": texts.answer_rate_text(
                outcomes.answer_rate if outcomes else None,
                answered,
                outcomes.known if outcomes else 0,
            ),
            "cost": money(outcomes.cost, campaign.currency if campaign else None)
            if outcomes
            else "",
            "calls_per_hour": (
                f"{outcomes.calls_per_hour:,.0f}"
                if outcomes and outcomes.calls_per_hour is not None
                else ""
            ),
            "calls_per_hour_later": texts.calls_per_hour_later(self.settings.calls_per_hour_after),
            "synced_at": (outcomes.synced_at if outcomes else None) or "",
            "syncing": state.running,
            "message": said,
            "ok": ok,
            "auto_every": int(self.settings.auto_sync_every),
            "has_sheet": sheet is not None,
            "pending_hint": texts.PENDING_HINT,
            "later": texts.RESULTS_AFTER_RUN,
            "no_outcomes": texts.NO_OUTCOMES,
        }

    def _render(self, request: web.Request, template: str, res: dict[str, Any]) -> web.Response:
        session = session_of(request)
        html = self.server.templates.get_template(template).render(
            csrf=session.csrf if session else "", res=res
        )
        return web.Response(text=html, content_type="text/html")

    async def results_page(self, request: web.Request) -> web.Response:
        """Everyone the campaign called: reachable when the run that called them is gone
        from memory (a restart of `dialer serve`), from the history on the start page."""
        campaign = self._campaign(request.match_info["campaign"])
        res = await self.section(campaign)
        since = stamp(self.server.test_calls.clock() - timedelta(days=1))
        lines, placed, total = await asyncio.to_thread(
            read_test_calls, campaign, self.settings.test_calls_shown, since
        )
        res["test_calls"] = lines
        res["test_calls_spent"] = texts.test_calls_spent(placed, total)
        return self._render(request, "results.html", res)

    async def sync(self, request: web.Request) -> web.Response:
        """The Sync button (a form: back to the page), or app.js's automatic sync (`auto`, at
        most every `auto_sync_every`; `reply=fragment`: the section's HTML back)."""
        form = await request.post()
        check_csrf(request, str(form.get("csrf", "")))
        campaign = self._campaign(request.match_info["campaign"])
        run = self.jobs.runs.get(str(form.get("run", "")))
        if run is not None and run.campaign != campaign.name:
            run = None
        auto = form.get("auto") == "1"
        if not auto or (self.syncs.due(campaign.name) and (run is None or run.finished)):
            await self.syncs.sync(campaign)
        if form.get("reply") == "fragment":
            return self._render(request, "results_part.html", await self.section(campaign, run))
        where = f"/runs/{run.id}" if run is not None else f"/campaigns/{campaign.name}/results"
        raise web.HTTPSeeOther(f"{where}#results")

    async def results_sheet(self, request: web.Request) -> web.StreamResponse:
        """The newest results sheet a sync wrote for the campaign (XLSX made on request)."""
        campaign = self._campaign(request.match_info["campaign"])
        if self.syncs.state(campaign.name).running:
            response = web.HTTPConflict(text=texts.SYNC_UNDER_WAY)
            response.headers["Retry-After"] = "5"
            raise response
        path = await asyncio.to_thread(reports.newest_results, reports_folder(campaign))
        if path is None:
            raise web.HTTPNotFound(text=texts.NO_RESULTS_SHEET)
        when = path.name.removesuffix(f"{RESULTS_SUFFIX}.csv")
        kind = request.match_info["kind"]
        return await reports.download(path, kind, f"{campaign.name}_results_{when}")


def add_routes(app: web.Application, server: Server) -> None:
    pages = ResultPages(server)
    app[RESULTS] = pages
    app.router.add_get("/campaigns/{campaign}/results", pages.results_page)
    app.router.add_post("/campaigns/{campaign}/sync", pages.sync)
    app.router.add_get(r"/campaigns/{campaign}/results.{kind:csv|xlsx}", pages.results_sheet)
    app.on_shutdown.append(pages.syncs.stop_all)


RESULTS = web.AppKey("results", ResultPages)
