"""Where finished rows go: the report (on disk as they finish, SPEC 9) and the progress view.

    sink = ResultSink(report, progress, halt)
    sink.put(result)          # written now, handed to the OS at the end of this loop turn

Rows finished in one event-loop turn reach the OS together, with one flush. A report that can
no longer be written stops the run at once (`halt.fail`): no call is placed that no file
records (SPEC 6.3).
"""

from __future__ import annotations

import asyncio

from dialer.core.statuses import DialerError
from dialer.engine.halt import Halt
from dialer.engine.progress import Progress
from dialer.reports.writer import ReportWriter, RowResult


class ResultSink:
    __slots__ = ("_flush_due", "_halt", "_progress", "_report")

    def __init__(self, report: ReportWriter, progress: Progress | None, halt: Halt) -> None:
        self._report = report
        self._progress = progress
        self._halt = halt
        self._flush_due = False

    def put(self, result: RowResult) -> None:
        try:
            self._report.write(result, flush=False)
        except DialerError as exc:  # the report's disk is full: stop sending at once
            self._halt.fail(exc)
        if not self._flush_due:
            self._flush_due = True
            asyncio.get_running_loop().call_soon(self.flush)
        if self._progress is not None:
            self._progress.row_done(result)

    def flush(self) -> None:
        self._flush_due = False
        try:
            self._report.flush()
        except DialerError as exc:
            self._halt.fail(exc)
