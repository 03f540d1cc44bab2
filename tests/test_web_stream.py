"""The run page's event stream: a browser that closes the page ends it without a traceback."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections import deque
from dataclasses import replace
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer
from conftest import with_pythonpath

from dialer import web
from dialer.web.services.job_records import WebRun
from dialer.web.views.runs import STREAM_CLOSED
from tests.test_web import TOKEN, _login, _project

BOUND = 30.0


def test_a_browser_closing_the_run_page_ends_its_event_stream_quietly(tmp_path: Path, caplog):
    settings = replace(web.DEFAULTS, events_every=0.02)
    server = web.Server(_project(tmp_path), TOKEN, with_pythonpath({}), settings=settings)
    caplog.set_level(logging.DEBUG)

    async def go() -> None:
        closed = asyncio.Event()

        class Noticed(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if record.getMessage() == STREAM_CLOSED:
                    closed.set()

        logging.getLogger("dialer.web.views.runs").addHandler(Noticed())
        # A run that never ends by itself: the stream keeps writing until the browser leaves.
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "import sys; sys.stdin.read()", stdin=asyncio.subprocess.PIPE
        )
        run = WebRun(
            id="r1",
            campaign="example",
            report=tmp_path / "r.csv",
            proc=proc,
            started="2026-01-01 00:00:00",
            upload=tmp_path / "u.csv",
            messages=deque(),
            total=5,
        )
        server.jobs.runs[run.id] = run
        try:
            async with TestClient(TestServer(server.app(), host="127.0.0.1")) as client:
                await _login(client)
                answer = await client.get("/runs/r1/events")
                assert b"event: progress" in await answer.content.readline()
                answer.close()  # the browser closes the page
                # Each change makes the stream write again, and find the browser gone.
                loop = asyncio.get_running_loop()
                end = loop.time() + BOUND
                while not closed.is_set():
                    assert loop.time() < end, "the stream never noticed the browser left"
                    run.changed.set()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(closed.wait(), 0.05)
        finally:
            proc.kill()
            await proc.wait()

    asyncio.run(go())
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert errors == [], [r.getMessage() for r in errors]
