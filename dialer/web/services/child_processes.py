"""The page's child processes, seen from the server: how each is started (`limited_python`:
its data memory capped), waited for (`communicate_within`: killed with everything it started
past its time), spawned with the stop signals held (`stop_signals_held`), and said when it
fails (`child_failure`); the queue of the campaign form's
children (`ChildQueue`), and the two asks made of a child (`in_child`: a preview, a test
call's row, a save's template check; `probe_upload`: a sheet's tabs and headers).

    proc = await asyncio.create_subprocess_exec(*limited_python(cap), "validate", ...)
    out, err = await communicate_within(proc, seconds)
    async with queue:                                   # ChildrenBusy (503) when full
        answer = await in_child(settings, campaign, toml_text, upload, {"count": 5})
    probe = await probe_upload(settings, kept, "Contacts")

The children themselves are `dialer` (checks, runs, syncs) and the modules of
`dialer.web.children`. A preview or a probe sees neither the page's token nor the API key
(`CHILD_ENV`); checks, runs and syncs get the server's environment less the token
(`Jobs.child_env`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import unicodedata
from pathlib import Path
from typing import Any

from aiohttp import web

from dialer.campaign.model import Campaign
from dialer.core.interrupts import STOP_SIGNALS
from dialer.core.statuses import ERROR_PREFIX, Status, UsageError
from dialer.sheets.contacts import Contact
from dialer.web import texts
from dialer.web.children.sheet_probe import Probe
from dialer.web.services.uploads import Kept
from dialer.web.settings import Settings

# What a preview or a sheet probe may see of the server's environment: never the API key or
# the page's token.
CHILD_ENV = ("PATH", "PYTHONPATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV")


def limited_python(data_bytes: int, module: str = "dialer") -> list[str]:
    """`python -m dialer` (or `module`) with its data memory capped (RLIMIT_DATA, inherited by
    its workers): a sheet that needs more fails that one check, not the server. Set in the
    child itself, not by preexec_fn, which is unsafe in a process with threads. RLIMIT_DATA
    rather than RLIMIT_AS: shared libraries and reserved-but-unused address space do not
    count, real allocations do."""
    code = (
        "import resource, runpy, sys; n = int(sys.argv.pop(1)); "
        "resource.setrlimit(resource.RLIMIT_DATA, (n, n)); "
        f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True)"
    )
    return [sys.executable, "-c", code, str(data_bytes)]


class StopSignalsHeld:
    """Block the stop signals in this thread while runs are spawned: a child inherits the mask
    across exec, so a Stop (SIGINT) or SIGTERM reaching it during its interpreter's start-up
    waits until its handlers are installed (dialer/interrupts.py unblocks them), then ends it
    with exit 130 and one line instead of killing it with no word. Counted, because spawns
    overlap (each awaits): only the last one out unblocks, and only what it blocked. Signals
    to this server meanwhile are delivered then."""

    def __init__(self) -> None:
        self._depth = 0
        self._blocked: set[signal.Signals] = set()

    def __enter__(self) -> None:
        if self._depth == 0:
            before = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
            self._blocked = set(STOP_SIGNALS) - set(before)
        self._depth += 1

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0 and self._blocked:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, self._blocked)


stop_signals_held = StopSignalsHeld()  # one per process: the mask is the loop thread's


async def communicate_within(
    proc: asyncio.subprocess.Process, seconds: float, stdin: bytes | None = None
) -> tuple[bytes, bytes]:
    """A child's output; past `seconds` (TimeoutError), or when the caller is cancelled, the
    child and everything it started (its own session: a check's workers) are killed first."""
    try:
        return await asyncio.wait_for(proc.communicate(stdin), seconds)
    except (TimeoutError, asyncio.CancelledError):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        raise


def child_failure(stderr: str, returncode: int | None, settings: Settings) -> str:
    """The one line a failed child of the page (a check, a sheet probe, a preview) is shown
    as: its last line, or what its memory cap means when it ran out."""
    lines = stderr.strip().splitlines()
    message = lines[-1] if lines else f"the check ended with exit code {returncode}"
    if ran_out_of_memory(stderr, returncode):
        return texts.check_needs_memory(settings)
    return message.removeprefix(ERROR_PREFIX)


# How a capped child that ran out of memory ends, besides a signal: a MemoryError, a native
# library giving up ("failed to map", "Cannot allocate memory"), or CPython's own C code failing
# an allocation (mid-import: "SystemError: <function _find_and_load> returned NULL without
# setting an exception", "SystemError: error return without exception set"), which the child
# reports as an internal error. A SystemError is a defect of the interpreter, not of dialer:
# in a child that runs under a cap, running into that cap is what causes it.
_OUT_OF_MEMORY = ("memory", "failed to map", "systemerror")


def ran_out_of_memory(stderr: str, returncode: int | None) -> bool:
    """Whether a child of the page whose data memory is capped (`limited_python`) failed for
    want of memory, rather than saying a sentence of dialer's (`dialer: error: ...`)."""
    lines = stderr.strip().splitlines()
    if lines and lines[-1].startswith(ERROR_PREFIX):
        return False
    lowered = stderr.lower()
    return (returncode or 0) < 0 or any(sign in lowered for sign in _OUT_OF_MEMORY)


class ChildrenBusy(web.HTTPServiceUnavailable):
    """Every child slot taken and `previews_waiting` asks waiting already: 503, Retry-After."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(
            text=texts.PREVIEWS_BUSY,
            headers={"Retry-After": str(settings.previews_retry_after)},
        )


class ChildQueue:
    """The page's children for the campaign form (previews, saves' template checks, test
    calls, header probes): `previews_at_once` at a time, `previews_waiting` more waiting in
    turn; one more is refused at once (ChildrenBusy), so no ask queues without bound.

        async with queue:          # ChildrenBusy when full
            answer = await in_child(...)
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._running = asyncio.Semaphore(settings.previews_at_once)
        self.waiting = 0  # asks waiting for a place

    async def __aenter__(self) -> None:
        if self._running.locked() and self.waiting >= self.settings.previews_waiting:
            raise ChildrenBusy(self.settings)
        self.waiting += 1
        try:
            await self._running.acquire()
        finally:
            self.waiting -= 1

    async def __aexit__(self, *exc: object) -> None:
        self._running.release()


async def in_child(
    settings: Settings,
    campaign: Campaign,
    toml_text: str,
    upload: Path,
    ask: dict[str, Any],
) -> dict[str, Any]:
    """`preview_rows` ({"count": n} -> {"rows": [...]}) or `test_contact` ({"row", "number",
    "max_row"} -> {"contact": {...}}) run by a child with a check's memory cap, stopped after
    `preview_timeout`; a UsageError says why not, in the line `child_failure` makes of its stderr.
    {"check": True} -> {"ok": True}: the form's templates compiled and trial-rendered."""
    request = {"path": str(campaign.path), "toml": toml_text, "upload": str(upload), **ask}
    module = "dialer.web.children.preview"
    return await ask_child(
        module, request, settings, settings.preview_timeout, texts.PREVIEW_TOO_SLOW
    )


async def ask_child(
    module: str,
    request: dict[str, Any],
    settings: Settings,
    timeout: float,
    too_slow: str,
    shown: tuple[str, str] = ("", ""),
) -> dict[str, Any]:
    """`request` as JSON to a child `python -m module` with a check's memory cap, stopped after
    `timeout` (UsageError `too_slow`); its JSON answer. A child that fails is a UsageError in
    the line `child_failure` makes of its stderr, `shown[0]` there written as `shown[1]` (a
    temporary file's path as the name the user gave it)."""
    env = {k: v for k, v in os.environ.items() if k in CHILD_ENV}
    proc = await asyncio.create_subprocess_exec(
        *limited_python(settings.check_memory, module),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**env, "PYTHONUNBUFFERED": "1", "OPENBLAS_NUM_THREADS": "1"},
        start_new_session=True,
    )
    try:
        out, err = await communicate_within(proc, timeout, json.dumps(request).encode())
    except TimeoutError:
        raise UsageError(too_slow) from None
    if proc.returncode != 0:
        message = child_failure(err.decode("utf-8", "replace"), proc.returncode, settings)
        raise UsageError(message.replace(*shown) if shown[0] else message)
    try:
        answer = json.loads(out)
    except ValueError:
        raise UsageError(texts.UNREADABLE_UPLOAD) from None
    return answer if isinstance(answer, dict) else {}


def contact_of(found: dict[str, Any]) -> Contact:
    """The test call's contact as the child described it."""
    return Contact(
        row=int(found["row"]),
        custom_identifiers=str(found["custom_identifiers"]),
        phone_raw=str(found["called_to"]),
        called_to=str(found["called_to"]),
        status=Status.READY,
        reason="",
        first_line=str(found["first_line"]),
        instruction=str(found["instruction"]),
        cells=(),
    )


async def probe_upload(settings: Settings, kept: Kept, tab: str | None) -> Probe:
    """The upload's tabs, headers and example cells, read by a memory-capped child; a
    UsageError says (in one line, with the uploader's file name) why it cannot be read."""
    if tab and not _plain_tab(tab, settings.tab_name_chars):
        raise UsageError(texts.BAD_TAB.format(n=settings.tab_name_chars))
    args = [str(kept.path), *([tab] if tab else [])]
    env = {k: v for k, v in os.environ.items() if k in CHILD_ENV}
    proc = await asyncio.create_subprocess_exec(
        *limited_python(settings.check_memory, "dialer.web.children.sheet_probe"),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**env, "PYTHONUNBUFFERED": "1", "OPENBLAS_NUM_THREADS": "1"},
        start_new_session=True,
    )
    try:
        out, err = await communicate_within(proc, settings.check_timeout)
    except TimeoutError:
        raise UsageError(texts.CHECK_TOO_SLOW) from None
    if proc.returncode != 0:
        message = child_failure(err.decode("utf-8", "replace"), proc.returncode, settings)
        raise UsageError(message.replace(str(kept.path), kept.name))
    try:
        return Probe.from_json(out.decode("utf-8"))
    except (ValueError, KeyError, TypeError):
        raise UsageError(texts.UNREADABLE_UPLOAD) from None


def _plain_tab(tab: str, limit: int) -> bool:
    """A tab name the child's arguments can carry (no NUL, no lone surrogate) and a workbook
    could hold: no control characters, not absurdly long."""
    return len(tab) <= limit and not any(unicodedata.category(c) in ("Cc", "Cs") for c in tab)
