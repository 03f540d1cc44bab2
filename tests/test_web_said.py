"""The results page's "What they said" (SPEC 12): a chart by disposition, the ten most
frequent and the rest as "other", read from the ledger's dispositions (the logs' `call_outcome`;
no chart on a ledger from before them); and the people called who are on the opt-out register,
masked, with the row's reason. The real page, a real ledger and register."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from aiohttp.test_utils import TestClient
from test_web import _login, _project, _serve_on
from test_web_words import assert_plain

from dialer import web
from dialer.ledger.optouts import Ask, Register, Source
from dialer.ledger.store import Ledger
from dialer.web.views.chart import said_chart, top_dispositions

NOW = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
SAID = [
    *["appointment_scheduled"] * 5,
    "Do Not Call",
    "do-not-call",
    "do_not_call",
    *(f"topic_{i:02}" for i in range(10)),
    None,  # pending, or the agent gave none: not counted
]
NUMBERS = [f"+1512555{1000 + i}" for i in range(len(SAID))]


def _ledger(root: Path, *, with_said: bool) -> None:
    """The example campaign's ledger with one call per number, its disposition as SAID (the
    column dropped for `with_said=False`: a ledger from before dispositions were kept)."""
    path = root / "state" / "example.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    Ledger.open(path, "example").close()
    conn = sqlite3.connect(path)
    try:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(dials)")}
        if not with_said and "disposition" in columns:
            conn.execute("ALTER TABLE dials DROP COLUMN disposition")
        for number, said in zip(NUMBERS, SAID, strict=True):
            conn.execute(
                "INSERT INTO dials (called_to, placed_at, outcome) VALUES (?, ?, ?)",
                (number, "2026-12-04T09:00:00+00:00", "answered" if said else None),
            )
            if with_said:
                conn.execute(
                    "UPDATE dials SET disposition = ? WHERE called_to = ?", (said or "", number)
                )
        conn.commit()
    finally:
        conn.close()


def _register(root: Path) -> None:
    with Register.open(root / "state") as register:
        register.add(
            [
                Ask(NUMBERS[5], Source.CALL, "sync", "call_outcome do_not_call", "example", "c5"),
                Ask(NUMBERS[0], Source.PAGE, "page, session 0a1b2c3d", "asked by email"),
                Ask("+15125559999", Source.PAGE, "page", "never called by this campaign"),
            ],
            NOW,
        )


def _bars(page: str) -> dict[str, int]:
    return {m[1]: int(m[2]) for m in re.finditer(r'data-said="([^"]+)" data-count="(\d+)"', page)}


def test_results_show_what_they_said_and_the_opt_outs_of_those_called(tmp_path):
    root = _project(tmp_path)
    _ledger(root, with_said=True)
    _register(root)

    async def body(client: TestClient, server: web.Server) -> None:
        await _login(client)
        answer = await client.get("/campaigns/example/results")
        page = await answer.text()
        assert answer.status == 200, page
        assert 'id="said-chart"' in page and "What they said" in page
        bars = _bars(page)
        # Folded into one disposition; the ten most frequent, then the rest as "other".
        assert bars["appointment_scheduled"] == 5 and bars["do_not_call"] == 3
        assert len(bars) == 11 and bars["other"] == 2
        assert sum(bars.values()) == len(SAID) - 1
        assert ">do not call<" in page  # labelled in words
        # The people called who are on the register, masked, with the row's reason.
        table = re.search(r'<table id="run-optouts">(.*?)</table>', page, re.S).group(1)
        rows = re.findall(r'<tr class="run-optout"><td>([^<]*)</td><td>([^<]*)</td>', table)
        assert rows == [
            ("+15******000", "opted out 2026-12-04 (page: asked by email)"),
            ("+15******005", "asked not to be called, call of 2026-12-04 (example)"),
        ]
        assert not any(n in page for n in NUMBERS) and "+15125559999" not in page
        assert "2 people this campaign called" in page
        assert_plain(page, "the results page")

    _serve_on(root, body)


def test_no_said_chart_on_a_ledger_without_dispositions(tmp_path):
    root = _project(tmp_path)
    _ledger(root, with_said=False)

    async def body(client: TestClient, server: web.Server) -> None:
        await _login(client)
        page = await (await client.get("/campaigns/example/results")).text()
        assert 'id="outcome-chart"' in page
        assert 'id="said-chart"' not in page and "What they said" not in page
        assert 'id="run-optouts"' not in page

    _serve_on(root, body)


def test_the_said_chart_escapes_what_the_agent_said():
    svg = str(said_chart({"<b>x</b>": 2, "yes": 1}, "What they said", 10))
    assert "<b>" not in svg and "&lt;b&gt;x&lt;/b&gt;" in svg
    assert top_dispositions({"a": 3, "b": 2, "c": 1, "other": 4}, 1) == [("a", 3), ("other", 7)]
