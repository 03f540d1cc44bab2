"""A sync's results file: one line per person the campaign called, with their last call's
outcome and that person's row of the sheet (SPEC 10).

    write_results(ledger.connection, campaign, Path("reports/x/....results.csv"))
    # 12                                           # people written

Columns: `RESULT_COLUMNS` (`opted_out` read from the folder's opt-out register), the `ai_`
columns of the extractions (`ai_columns`), then the sheet's columns of each person's last
row, read back from the report of the run that placed their last call (the ledger's `runs`
table names it; a CSV or XLSX report, or the `.partial.csv` journal a killed XLSX run left).
A report that is gone or unreadable leaves those cells blank: the outcomes matter more than
the copy of the sheet.
People come a run at a time (in sheet order within a run), so memory holds one run's people.

`TableWriter` is the one writer of both the results and `dialer.outcomes.writeback`'s sheet: CSV, or
XLSX for an `.xlsx` name, created new (never overwriting), every text cell formula-safe.
"""

from __future__ import annotations

import contextlib
import csv
import json
import secrets
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TextIO

from dialer.campaign.model import Campaign
from dialer.campaign.paths import reports_folder, state_folder, summary_path
from dialer.core.settings import DEFAULTS, Settings
from dialer.core.statuses import UsageError
from dialer.ledger import dials
from dialer.ledger.dials import Person
from dialer.ledger.evidence import records, report_of_run
from dialer.ledger.optouts import Register
from dialer.reports.writer import (
    REPORT_COLUMNS,
    ReportExists,
    cannot_write,
    check_report_path,
    defuse,
    undefuse,
    write_xlsx,
)
from dialer.sheets.cell_types import Kind, column_kind, kinds_of
from dialer.tabbly.log_rows import json_object

RESULT_COLUMNS = (
    "called_to",
    "custom_identifiers",
    "calls",
    "last_called_at",
    "outcome",
    "raw_status",
    "duration_s",
    "cost",
    "summary",
    "recording_url",
    "disposition",
    "sentiment",
    "opted_out",
)
# One column per key of the people's last calls' `call_json_output` (`ai_interested`, ...),
# first seen first, at most this many (SPEC 12); they come after `RESULT_COLUMNS`.
AI_PREFIX = "ai_"
AI_COLUMNS = 50
# An `opted_out` cell of a person in the folder's opt-out register (blank: not in it).
OPTED_OUT = "yes"
# The longest key an `ai_` column names (an extraction's keys are names, not texts).
_KEY_CHARS = 100
# Each outcome column's type in an XLSX (`cell_types`): counts, seconds and costs are numbers
# (cost is a decimal), the last call's time a UTC date-time; the rest text, never a formula.
OUTCOME_KINDS = {
    "calls": Kind.NUMBER,
    "duration_s": Kind.NUMBER,
    "cost": Kind.NUMBER,
    "last_called_at": Kind.UTC,
}


def outcome_kinds(columns: Sequence[str]) -> list[Kind]:
    return [OUTCOME_KINDS.get(c, Kind.TEXT) for c in columns]


SUFFIXES = (".csv", ".xlsx")


def check_output(path: Path, option: str) -> None:
    """Before any work: a `.csv` or `.xlsx` name that nothing holds yet, in a usable folder."""
    if path.suffix.lower() not in SUFFIXES:
        raise UsageError(f"{option} {path}: the name must end in .csv or .xlsx")
    check_report_path(path)


def number(value: int | float | None) -> str:
    """A number's cell text: blank when unknown, no `.0` on a whole cost."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


class TableWriter:
    """Writes a new CSV (or XLSX, by the name) a line at a time; `close()` finishes it.

    Cells are written formula-safe (`defuse`) except `plain` columns (dialer's own E.164
    numbers). An XLSX is made at `close()` from a private CSV beside it, each column typed by
    `kinds()` (asked then: a sheet's types are known once it is read), its tab named `title`.
    A file that cannot be finished is removed, never left half made."""

    def __init__(
        self,
        path: Path,
        header: Sequence[str],
        *,
        kinds: Callable[[], Sequence[Kind]] = tuple,
        title: str = "results",
        plain: Sequence[int] = (),
        what: str = "the results",
    ) -> None:
        self.path = path
        self.what = what
        self._kinds = kinds
        self._title = title
        self._plain = frozenset(plain)
        self._xlsx = path.suffix.lower() == ".xlsx"
        self.rows = 0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise cannot_write(path, exc, what) from None
        # An XLSX is made whole at the end: its lines wait in a private CSV beside it.
        self._file_path = (
            path.with_name(f"{path.name}.{secrets.token_hex(4)}.tmp") if self._xlsx else path
        )
        try:
            # O_EXCL: never overwrites, never follows a symlink planted at the name.
            self._file: TextIO = open(self._file_path, "x", encoding="utf-8", newline="")  # noqa: SIM115
        except FileExistsError:
            raise ReportExists(f"{path}: already exists; it is never overwritten") from None
        except OSError as exc:
            raise cannot_write(path, exc, what) from None
        self._csv = csv.writer(self._file)
        self._write([defuse(h) for h in header])

    def _write(self, cells: list[str]) -> None:
        try:
            self._csv.writerow(cells)
        except OSError as exc:
            self._abandon()
            raise cannot_write(self.path, exc, self.what) from None

    def write(self, cells: Sequence[str]) -> None:
        """One line of text cells, defused here (but for the `plain` columns)."""
        plain = self._plain
        self._write([c if i in plain else defuse(c) for i, c in enumerate(cells)])
        self.rows += 1

    def close(self) -> Path:
        try:
            self._file.close()
            if self._xlsx:
                write_xlsx(
                    self._file_path,
                    self.path,
                    replace=False,
                    kinds=self._kinds(),
                    title=self._title,
                )
        except OSError as exc:
            self._abandon()
            raise cannot_write(self.path, exc, self.what) from None
        finally:
            if self._xlsx:
                self._file_path.unlink(missing_ok=True)
        return self.path

    def _abandon(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        self._file_path.unlink(missing_ok=True)

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abandon()


def person_cells(p: Person | None, *, opted_out: bool = False) -> dict[str, str]:
    """A person's outcome columns by name (blank for somebody never called); `opted_out`:
    the number is in the folder's opt-out register."""
    if p is None:
        return {**dict.fromkeys(RESULT_COLUMNS, ""), "opted_out": OPTED_OUT if opted_out else ""}
    return {
        "called_to": p.called_to,
        "custom_identifiers": p.custom_identifiers,
        "calls": str(p.calls),
        "last_called_at": p.last_called_at,
        "outcome": p.outcome.value,
        "raw_status": p.raw_status,
        "duration_s": number(p.duration_s),
        "cost": number(p.cost),
        "summary": p.summary,
        "recording_url": p.recording_url,
        "disposition": p.disposition,
        "sentiment": p.sentiment,
        "opted_out": OPTED_OUT if opted_out else "",
    }


def ai_name(key: str) -> str:
    """The column of a key of `call_json_output`: `ai_` and the key, its blanks made one."""
    return AI_PREFIX + " ".join(key.split())[:_KEY_CHARS]


def ai_columns(conn: sqlite3.Connection, settings: Settings = DEFAULTS) -> list[str]:
    """The `ai_` columns of the campaign: the keys of its people's last calls' extractions
    (each a JSON object kept whole), in the order first seen, at most `AI_COLUMNS`."""
    names: dict[str, None] = {}
    for text in dials.last_json_outputs(conn):
        for key in json_object(text, settings) or ():
            names.setdefault(ai_name(key))
            if len(names) == AI_COLUMNS:
                return list(names)
    return list(names)


def ai_cells(p: Person | None, columns: Sequence[str], settings: Settings = DEFAULTS) -> list[str]:
    """A person's `ai_` cells in `columns`' order: each value as text (a string as it is,
    anything else as its JSON), cut to `log_text_chars`; blank where the last call's
    extraction has no such key or is no JSON object."""
    found = json_object(p.json_output, settings) if p is not None else None
    if not found:
        return [""] * len(columns)
    values: dict[str, str] = {}
    for key, value in found.items():
        values.setdefault(ai_name(key), _cell_text(value)[: settings.log_text_chars])
    return [values.get(c, "") for c in columns]


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


class OptOuts:
    """Who of a batch of numbers is in the folder's opt-out register, one query a batch;
    nobody when the folder has no register."""

    def __init__(self, campaign: Campaign) -> None:
        self._register = Register.reading(state_folder(campaign))

    def of(self, numbers: Iterable[str]) -> set[str]:
        if self._register is None:
            return set()
        return set(self._register.entries(numbers))

    def close(self) -> None:
        if self._register is not None:
            self._register.close()

    def __enter__(self) -> OptOuts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _RunSheet:
    """The sheet columns of one run's report, read back (nothing when it is gone)."""

    def __init__(self, campaign: Campaign, stored: str | None) -> None:
        found = report_of_run(stored or "", reports_folder(campaign))
        self.path = found.path if found is not None else None
        self.headers: list[str] = []
        # A CSV report's cells are defused; an XLSX report's are the text itself.
        self._csv = self.path is not None and not self.path.name.lower().endswith(".xlsx")
        if self.path is not None:
            with contextlib.suppress(Exception):  # unreadable: blank columns, not a failed sync
                header = next(iter(self._records()), None) or []
                if tuple(header[: len(REPORT_COLUMNS)]) == REPORT_COLUMNS:
                    self.headers = [self._text(h) for h in header[len(REPORT_COLUMNS) :]]
        self.kinds = dict(zip(self.headers, self._kinds(), strict=True))

    def _kinds(self) -> list[Kind]:
        """The sheet columns' types, as the run's summary keeps them (text if it is gone)."""
        typed = None
        if self.path is not None:
            with contextlib.suppress(OSError, ValueError):
                typed = json.loads(summary_path(self.path).read_text("utf-8")).get("column_types")
        return kinds_of(self.headers, typed)

    def _text(self, cell: str) -> str:
        return undefuse(cell) if self._csv else cell

    def _records(self) -> Iterator[list[str]]:
        return records(self.path) if self.path is not None else iter(())

    def rows(self, wanted: dict[int | str, Person]) -> Iterator[tuple[Person, list[str]]]:
        """The people of `wanted` (keyed by their sheet row, or number when it is unknown)
        whose row the report holds, in report order, each with its sheet cells; an unreadable
        report ends early (the caller writes the rest with blank cells)."""
        if not self.headers or not wanted:
            return
        width = len(REPORT_COLUMNS)
        at_row, at_to = REPORT_COLUMNS.index("row"), REPORT_COLUMNS.index("called_to")
        with contextlib.suppress(Exception):  # csv, zip, openpyxl errors: the rest stay blank
            lines = self._records()
            next(lines, None)
            for record in lines:
                if len(record) <= at_to:
                    continue  # a killed run's last line may be cut short
                called_to = self._text(record[at_to]).strip()
                row = record[at_row].strip()
                person = wanted.get(int(row)) if row.isdigit() else None
                if person is None or person.called_to != called_to:
                    person = wanted.get(called_to)
                    if person is None or person.row is not None:
                        continue
                del wanted[person.row if person.row is not None else person.called_to]
                yield person, [self._text(c) for c in record[width:]]


def write_results(
    conn: sqlite3.Connection, campaign: Campaign, path: Path, settings: Settings = DEFAULTS
) -> int:
    """The results file at `path` (new; CSV or XLSX by its name); how many people it lists."""
    reports = dials.run_reports(conn)
    sheets = {run: _RunSheet(campaign, reports.get(run)) for run in dials.last_call_runs(conn)}
    columns: list[str] = []  # every run's sheet columns, by name, in the order first seen
    for sheet in sheets.values():
        columns += [h for h in sheet.headers if h not in columns]
    ai = ai_columns(conn, settings)
    header = [*RESULT_COLUMNS, *ai, *columns]
    kinds = [*outcome_kinds(RESULT_COLUMNS), *[Kind.TEXT] * len(ai)]
    for column in columns:  # a number in one run's sheet and text in another's is text
        found = [s.kinds[column] for s in sheets.values() if column in s.kinds]
        kinds.append(column_kind(found))
    with (
        OptOuts(campaign) as optouts,
        TableWriter(
            path,
            header,
            kinds=lambda: kinds,
            title=campaign.name,
            plain=(RESULT_COLUMNS.index("called_to"),),
        ) as table,
    ):
        for run_id, people in dials.people_by_run(conn):
            opted_out = optouts.of(p.called_to for p in people)

            def write(person: Person, extra: list[str], out: set[str] = opted_out) -> None:
                cells = person_cells(person, opted_out=person.called_to in out)
                table.write([*cells.values(), *ai_cells(person, ai, settings), *extra])

            sheet = sheets.get(run_id) if run_id is not None else None
            wanted: dict[int | str, Person] = {
                p.row if p.row is not None else p.called_to: p for p in people
            }
            if sheet is not None:
                place = [columns.index(h) for h in sheet.headers]
                for person, cells in sheet.rows(wanted):
                    extra = [""] * len(columns)
                    for i, cell in zip(place, cells, strict=False):
                        extra[i] = cell
                    write(person, extra)
            for person in wanted.values():  # rows the report does not hold (or no report)
                write(person, [""] * len(columns))
        return table.rows
