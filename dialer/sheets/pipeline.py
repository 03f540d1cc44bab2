"""Campaign + sheet -> a lazy stream of `Contact` chunks, in sheet order.

    stream = open_contacts(campaign)
    for chunk in stream.chunks():
        ...
    stream.close()

This is the one place that decides which file is read (`--contacts` or the newest match of
`source`) and checks that it holds contacts at all, so `validate` and `run` agree.

Per-row work (phone numbers, templates) runs in worker processes for large
sheets, a few chunks ahead of the consumer so memory stays bounded; the parent reads the sheet,
dedupes in order and writes. The pool is forked while the process is still single-threaded.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from dialer.campaign.model import Campaign
from dialer.core.settings import DEFAULTS, Settings
from dialer.core.statuses import SheetError
from dialer.sheets.cell_types import Kind, phones_as_text
from dialer.sheets.contacts import (
    Contact,
    ContactBuilder,
    build_contacts_packed,
    load_suppression,
    unpack_rows,
)
from dialer.sheets.reader import Sheet, iter_rows, open_sheet
from dialer.sheets.sources import resolve_source

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass(slots=True)
class ContactStream:
    sheet: Sheet
    preparer: ContactBuilder
    chunk_rows: int = DEFAULTS.chunk_rows
    pool: ProcessPoolExecutor | None = None
    workers: int = 0
    ahead_per_worker: int = DEFAULTS.chunks_ahead_per_worker
    _pending: deque[tuple[list[tuple[int, list[str]]], Future[list[tuple]]]] = field(
        default_factory=deque
    )

    def column_kinds(self) -> tuple[Kind, ...]:
        """The sheet columns' types for an XLSX report (`Sheet.column_kinds`), the phone
        columns text: a number dialer reads as a phone is an identifier, not a quantity."""
        return phones_as_text(self.sheet.column_kinds(), self.preparer.plan.phones.indexes)

    def chunks(self) -> Iterator[list[Contact]]:
        """Contact chunks; a sheet with a header and no data rows is an error."""
        empty = True
        # Phone cells come uncleaned so a removed invisible character is reported.
        raw_columns = frozenset(self.preparer.plan.phones.indexes)
        try:
            for built in self._built(iter_rows(self.sheet, self.chunk_rows, raw_columns)):
                empty = False
                yield list(self.preparer.deduper.apply(built))
        finally:
            self.close()
        if empty:
            raise SheetError(f"{self.sheet.path}: has a header but no data rows")

    def _built(self, raw_chunks: Iterator[list[tuple[int, list[str]]]]) -> Iterator[list[Contact]]:
        plan = self.preparer.plan
        if self.pool is None:
            for raw in raw_chunks:
                if raw:
                    yield self.preparer.build(raw)
            return
        ahead = self.workers * self.ahead_per_worker
        pending = self._pending
        for raw in raw_chunks:
            if not raw:
                continue
            pending.append((raw, self.pool.submit(build_contacts_packed, plan, raw)))
            if len(pending) > ahead:
                done, future = pending.popleft()
                yield unpack_rows(plan, done, future.result())
        while pending:
            done, future = pending.popleft()
            yield unpack_rows(plan, done, future.result())

    def close(self) -> None:
        if self.pool is not None:
            for _, future in self._pending:
                future.cancel()
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


def _die_with_parent() -> None:
    """Worker initializer: a parent killed with -9 must not leave workers blocked forever."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    # Ctrl-C reaches the whole process group: the parent decides how to stop, not the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _start_pool(workers: int) -> ProcessPoolExecutor:
    pool = ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("fork"), initializer=_die_with_parent
    )
    # Fork the workers now, while this process has one thread (an executor forks lazily,
    # which could otherwise happen later from a thread inside the event loop).
    for future in [pool.submit(os.getpid) for _ in range(workers)]:
        future.result()
    return pool


def sheet_path(campaign: Campaign, contacts: Path | None = None) -> Path:
    """The sheet a run reads: `--contacts`, else the newest match of the campaign's source."""
    path = Path(contacts) if contacts else resolve_source(campaign.contacts.source, campaign.folder)
    return path.resolve()


def open_contacts(
    campaign: Campaign,
    contacts: Path | None = None,
    *,
    parallel: bool | None = None,
    settings: Settings = DEFAULTS,
) -> ContactStream:
    """The campaign's sheet opened and its rows ready to stream, read and built under the
    bounds of `settings`; `parallel` None: worker processes when the sheet is large."""
    path = sheet_path(campaign, contacts)
    sheet = open_sheet(path, campaign.contacts.sheet, settings)
    builder = ContactBuilder.for_campaign(campaign, sheet, load_suppression(campaign), settings)
    # The cores this process may run on (`taskset`, a container's cpuset), not the machine's:
    # workers sharing one core only add pickling to the same work.
    cores = len(os.sched_getaffinity(0))
    if parallel is None:
        parallel = cores > 1 and path.stat().st_size >= settings.parallel_from_bytes
    if not parallel:
        return ContactStream(sheet, builder, settings.chunk_rows)
    workers = min(cores, settings.max_prepare_workers)
    return ContactStream(
        sheet,
        builder,
        settings.chunk_rows,
        pool=_start_pool(workers),
        workers=workers,
        ahead_per_worker=settings.chunks_ahead_per_worker,
    )
