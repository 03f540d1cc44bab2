"""A hostile or broken upstream for tests: a small aiohttp app on 127.0.0.1 in its own thread.

    async def answer(request: web.Request) -> web.StreamResponse:
        return web.Response(status=307, headers={"Location": sink.url})

    with Upstream(answer) as upstream:
        cli(["run", ...])               # endpoint = upstream.url
    assert upstream.received == [...]  # what it really got: method, path, body

The handler answers every request, whatever its method and path (a test may swap
`upstream.handler` between requests). A handler that streams
forever must end when the client goes (a write to a closed connection raises) or when
`upstream.stopping` is set; the server gives handlers a short grace on exit.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType

from aiohttp import web

TRIGGER_PATH = "/dashboard/agents/endpoints/trigger-call"
_BOUND = 10.0  # seconds to start or stop the server thread

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    query: str
    body: bytes


class Upstream:
    """A server that answers with `handler` and records every request it received."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.received: list[Received] = []
        self.stopping = asyncio.Event()
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.received.append(Received(request.method, request.path, request.query_string, body))
        return await self.handler(request)

    async def _start(self) -> int:
        self.stopping = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return self._runner.addresses[0][1]

    async def _stop(self) -> None:
        self.stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def __enter__(self) -> Upstream:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="upstream", daemon=True)
        self._thread.start()
        port = asyncio.run_coroutine_threadsafe(self._start(), loop).result(_BOUND)
        self.url = f"http://127.0.0.1:{port}{TRIGGER_PATH}"
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._stop(), loop).result(_BOUND)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(_BOUND)
        loop.close()


async def stream_forever(
    request: web.Request,
    upstream: Upstream,
    chunk: bytes,
    pause: float,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> web.StreamResponse:
    """Headers at once, then `chunk` every `pause` seconds until the client goes (or the
    server stops): an endless body, or a trickle of one byte at a time."""
    response = web.StreamResponse(status=status, headers=headers)
    await response.prepare(request)
    try:
        while not upstream.stopping.is_set():
            await response.write(chunk)
            await asyncio.sleep(pause)
    except (ConnectionError, RuntimeError):
        pass  # the client went: what these tests wait for
    return response
