"""`dialer sync` over 100,000 calls' log rows (issue 11: under 30 s and 300 MB), against a
bare loop that only pages through the same logs and parses each page's JSON.

The fake starts with the calls already in its logs (`--seed-calls`, pages of 1,000, several
rows for some calls and rows of strangers, as Tabbly writes them); the bench writes the same
calls into a campaign's ledger as `dials`, as runs would have, then times `dialer sync`
(wall time and the peak RSS of its process) and the bare loop (in this process, wall only).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.measure import API_KEY, dialer, project
from bench.results import Line, line
from dialer.core.clock import parse_stamp, stamp, system_clock
from dialer.fake_tabbly import DEFAULT_AGENT_ID, DEFAULT_ORGANIZATION_ID, FakeTabblyProcess

LOGS_PATH = "/dashboard/agents/endpoints/call-logs-v2"
PAGE = 1000
BOUND_SECONDS = 30.0
BOUND_MB = 300.0


def _ledger_with_dials(campaign: Path, calls: list[dict]) -> None:
    """The ledger a run of these calls leaves: one `calls` and one `dials` row per call,
    in a ledger made by the product's own code (as a run opens it)."""
    from dialer.campaign.parse import load_campaign
    from dialer.ledger.rebuild import open_for_run

    with open_for_run(load_campaign(campaign), system_clock) as ledger:
        conn = ledger.connection
        now = stamp(system_clock())
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO calls (called_to, status, attempts, call_id, custom_identifiers, "
            "updated_at) VALUES (?, 'triggered', 1, ?, ?, ?)",
            [(c["called_to"], c["room_name"], c["custom_identifiers"], now) for c in calls],
        )
        conn.executemany(
            "INSERT INTO dials (called_to, custom_identifiers, placed_at, room_name, "
            "participant_identity) VALUES (?, ?, ?, ?, ?)",
            [
                (
                    c["called_to"],
                    c["custom_identifiers"],
                    stamp(parse_stamp(c["called_at"]) or system_clock()),
                    c["room_name"],
                    f"sip_{c['called_to']}",
                )
                for c in calls
            ],
        )
        conn.execute("COMMIT")


async def _bare_pages(url: str) -> tuple[int, int]:
    """Every page of the logs, each parsed: the least any sync must do. (pages, rows)"""
    today = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 86400))
    start = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 2 * 86400))
    pages = rows = offset = 0
    async with aiohttp.ClientSession() as session:
        while True:
            query = {
                "organization_id": DEFAULT_ORGANIZATION_ID,
                "api_key": API_KEY,
                "use_agent_id": DEFAULT_AGENT_ID,
                "date_from": start,
                "date_to": today,
                "limit": PAGE,
                "offset": offset,
            }
            async with session.get(url, params=query) as answer:
                payload = json.loads(await answer.read())
            data = payload.get("data") or []
            pages, rows, offset = pages + 1, rows + len(data), offset + len(data)
            if len(data) < PAGE:
                return pages, rows


def sync(n: int) -> list[Line]:
    print(f"\n== sync: {n:,} calls in the call logs, pages of {PAGE:,} ==", flush=True)
    with (
        tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp,
        FakeTabblyProcess("--seed-calls", str(n), "--latency", "0") as fake,
    ):
        root = Path(tmp)
        sheet = root / "one.csv"
        sheet.write_text("customer_id,first_name,phone,order_id\nC0,A,+917359000000,O0\n")
        base = fake.url.split("/dashboard/")[0]
        campaign = project(root, sheet, endpoint=fake.url)
        # A top-level key: before the first table.
        text = campaign.read_text()
        campaign.write_text(
            text.replace("[contacts]", f'logs_endpoint = "{base}{LOGS_PATH}"\n\n[contacts]')
        )
        calls = fake.state()["calls"]
        _ledger_with_dials(campaign, calls)
        t0 = time.monotonic()
        pages, rows = asyncio.run(_bare_pages(f"{base}{LOGS_PATH}"))
        bare = time.monotonic() - t0
        run = dialer("sync", campaign, "--since", time.strftime("%Y-%m-%d"), cwd=root)
        out = (root / "out.log").read_text()
    print(out.strip().splitlines()[0], flush=True)
    measure = f"`dialer sync`, {n:,} calls, {rows:,} log rows in {pages} pages"
    return [
        line(
            "sync time",
            measure,
            f"{run.wall:.1f} s",
            f"bare paging + JSON {bare:.1f} s",
            run.wall / bare,
            "",
        ),
        line(
            "sync bound",
            measure,
            f"{run.wall:.1f} s",
            f"bound {BOUND_SECONDS:.0f} s",
            run.wall / BOUND_SECONDS,
        ),
        line(
            "sync memory",
            measure,
            f"{run.peak_mb:,.0f} MB",
            f"bound {BOUND_MB:.0f} MB",
            run.peak_mb / BOUND_MB,
        ),
    ]
