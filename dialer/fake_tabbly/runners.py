"""Running a FakeTabbly beside the code under test: in a thread, or as its own process.

with FakeTabblyThread(balance=0.3) as fake:          # a FakeTabbly, its loop in a thread
    urllib.request.urlopen(request_to(fake.url))
with FakeTabblyProcess("--latency", "0.05") as fake:  # `dialer fake-tabbly` on a free port
    run_against(fake.url); fake.state()["received"]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import threading
import urllib.request
from types import TracebackType
from typing import Any

from dialer.fake_tabbly.command import LISTENING
from dialer.fake_tabbly.rules import TRIGGER_PATH
from dialer.fake_tabbly.server import STATE_PATH, FakeTabbly

_THREAD_BOUND = 10.0


class FakeTabblyThread:
    """Run a FakeTabbly on its own event loop in a daemon thread, for synchronous tests.

    with FakeTabblyThread(balance=0.3) as fake:
        urllib.request.urlopen(request_to(fake.url))
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, **fake_kwargs: Any) -> None:
        self.fake = FakeTabbly(**fake_kwargs)
        self._host = host
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> FakeTabbly:
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.fake.start(self._host, self._port))
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=serve, name="fake-tabbly", daemon=True)
        self._thread.start()
        if not ready.wait(_THREAD_BOUND):
            raise RuntimeError(f"fake-tabbly did not start within {_THREAD_BOUND} s")
        if failure:
            raise failure[0]
        return self.fake

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or loop.is_closed():
            return
        stopping = asyncio.run_coroutine_threadsafe(self.fake.stop(), loop)
        with contextlib.suppress(Exception):
            stopping.result(_THREAD_BOUND)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(_THREAD_BOUND)


class FakeTabblyProcess:
    """`dialer fake-tabbly` as its own process on a free port, for the demo, tests and bench:
    its receive times carry no jitter from the process under test.

        with FakeTabblyProcess("--latency", "0.05") as fake:
            run_against(fake.url); fake.state()["received"]
    """

    def __init__(self, *options: str) -> None:
        self.options = options
        self.url = ""
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> FakeTabblyProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dialer", "fake-tabbly", "--port", "0", *self.options],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline().strip()
        if not first.startswith(LISTENING):
            self.__exit__()
            raise RuntimeError(f"fake-tabbly did not start: {first!r}")
        self.url = first.removeprefix(LISTENING)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=_THREAD_BOUND)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=_THREAD_BOUND)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def state(self, timeout: float = 120.0) -> dict[str, Any]:
        base = self.url.split(TRIGGER_PATH)[0]
        with urllib.request.urlopen(f"{base}{STATE_PATH}", timeout=timeout) as answer:
            return json.load(answer)
