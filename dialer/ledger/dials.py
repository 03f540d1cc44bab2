"""The ledger's `dials` table: one row per call placed, and what the call logs said of it.

    oldest = oldest_pending(conn)                      # where a sync's date range starts
    matcher = Matcher(dials_from(conn, since), agent_id)
    store(conn, matcher.results(), transcripts=False, synced_at=stamp(now))
    last_outcomes(conn)                                # {answered: 5, pending: 1, ...}
    dispositions(conn)                                 # [("appointment_set", 3), ...]
    for run_id, group in people_by_run(conn): ...      # the results file, a run at a time

`conn` is the campaign's `Ledger.connection` (autocommit): a sync's results are stored in one
transaction. A row is a `Dial`; what the logs said of it comes in as `Resolved` (the outcome
loop's matching, seen through a protocol: storage never imports the loop). A dial is
`pending` until a log row speaks of it; a resolved dial changes only when a later sync finds
a better row (answered > voicemail > busy > no_answer > failed), so a sync over a shorter
date range never makes an answered call look unanswered.

A person is a `called_to`; their last call is their dial with the highest id (dials are
written in the order they were placed).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from itertools import groupby
from pathlib import Path
from typing import Protocol

from dialer.core.clock import parse_stamp, stamp
from dialer.core.settings import DEFAULTS
from dialer.core.statuses import OUTCOME_RANK, CallOutcome, stored_outcome
from dialer.ledger.sqlite import readonly_uri, transaction


@dataclass(frozen=True, slots=True)
class Dial:
    """One call dialer placed, as a ledger's `dials` table holds it."""

    dial_id: int  # unique within its campaign's ledger only
    called_to: str
    custom_identifiers: str
    placed_at: datetime  # aware UTC
    room_name: str
    participant_identity: str
    campaign: str = ""  # another campaign's call (its name); "": the syncing campaign's


class BestRow(Protocol):
    """The log row a dial's outcome is read from (`dialer.tabbly.log_rows.LogRow`)."""

    @property
    def outcome(self) -> CallOutcome: ...
    @property
    def duration_s(self) -> int | None: ...
    @property
    def cost(self) -> float | None: ...
    @property
    def summary(self) -> str: ...
    @property
    def transcript(self) -> str: ...
    @property
    def recording_url(self) -> str: ...


class Resolved(Protocol):
    """What the call logs said of one dial (`dialer.outcomes.matching.Resolved`)."""

    @property
    def best(self) -> BestRow: ...
    @property
    def raw_statuses(self) -> Sequence[str]: ...
    @property
    def rows(self) -> int: ...
    @property
    def disposition(self) -> str: ...  # `call_outcome`, the best row's else the latest given
    @property
    def sentiment(self) -> str: ...  # `call_sentiment`, likewise
    @property
    def json_output(self) -> str: ...  # `call_json_output`: an object's JSON, or text cut


# A `placed_at` that is not a stamp (never written so by dialer): long ago, so no row of the
# logs read falls in its time window and none is taken for it, even naming its room.
_LONG_AGO = datetime(1970, 1, 1, tzinfo=UTC)
# A dial's cost as sums take it: a sync keeps none outside 0 to log_max_call_cost, and one a
# ledger holds from before that rule (1e308) must not make every total "inf" either.
_COST = f"(CASE WHEN cost BETWEEN 0 AND {DEFAULTS.log_max_call_cost!r} THEN cost END)"
# The dispositions past the top ones, counted together.
OTHER = "other"
# Between the raw statuses of a call's log rows, in the order they arrived.
RAW_STATUS_JOIN = " | "
# The SQL text of an outcome's rank, best first (0), for a comparison inside one UPDATE.
_RANK_SQL = (
    "CASE outcome "
    + " ".join(f"WHEN '{o.value}' THEN {rank}" for o, rank in OUTCOME_RANK.items())
    + f" ELSE {len(OUTCOME_RANK)} END"
)
# A pending dial, or one whose stored outcome ranks below the new one, takes the new row whole
# (what the person said: where the new rows say it); an equal outcome only gains what it lacks:
# a transcript (a later `sync --transcripts`), a disposition, sentiment or extraction.
_STORE = f"""
UPDATE dials SET outcome = :outcome, raw_status = :raw_status, duration_s = :duration_s,
    cost = :cost, summary = :summary, recording_url = :recording_url,
    transcript = :transcript, log_rows = :log_rows, synced_at = :synced_at,
    disposition = CASE WHEN :disposition != '' THEN :disposition ELSE disposition END,
    sentiment = CASE WHEN :sentiment != '' THEN :sentiment ELSE sentiment END,
    json_output = CASE WHEN :json_output != '' THEN :json_output ELSE json_output END
WHERE id = :id AND (outcome IS NULL OR ({_RANK_SQL}) > :rank)
"""
_ADD_SAID = """
UPDATE dials SET synced_at = :synced_at,
    disposition = CASE WHEN disposition = '' THEN :disposition ELSE disposition END,
    sentiment = CASE WHEN sentiment = '' THEN :sentiment ELSE sentiment END,
    json_output = CASE WHEN json_output = '' THEN :json_output ELSE json_output END
WHERE id = :id AND outcome = :outcome AND ((disposition = '' AND :disposition != '')
    OR (sentiment = '' AND :sentiment != '') OR (json_output = '' AND :json_output != ''))
"""
_ADD_TRANSCRIPT = """
UPDATE dials SET transcript = :transcript, synced_at = :synced_at
WHERE id = :id AND outcome = :outcome AND transcript IS NULL AND :transcript IS NOT NULL
"""
# Each person once, with their last call's columns and the totals over their calls.
_PEOPLE = f"""
SELECT d.called_to, d.custom_identifiers, p.calls, d.placed_at, d.outcome, d.raw_status,
       d.duration_s, p.cost, d.summary, d.recording_url, d.run_id, d.row, d.disposition,
       d.sentiment, d.json_output
FROM (SELECT called_to, MAX(id) AS last, COUNT(*) AS calls, SUM{_COST} AS cost
      FROM dials {{where}} GROUP BY called_to) p
JOIN dials d ON d.id = p.last
"""


@dataclass(frozen=True, slots=True)
class Person:
    """One person the campaign called: their last call, and totals over all their calls."""

    called_to: str
    custom_identifiers: str
    calls: int
    last_called_at: str  # the last call's `placed_at` stamp (UTC)
    outcome: CallOutcome  # the last call's; `pending` until a log row speaks of it
    raw_status: str
    duration_s: int | None
    cost: float | None  # every call's known cost added up; None when no call's is known
    summary: str
    recording_url: str
    run_id: int | None  # the run that placed the last call, and its row in that run's sheet
    row: int | None
    disposition: str = ""  # the last call's `call_outcome`, `call_sentiment`, `call_json_output`
    sentiment: str = ""
    json_output: str = ""  # a JSON object's text, or other text cut (outcomes.log_rows)


def oldest_pending(conn: sqlite3.Connection) -> datetime | None:
    """When the oldest call without an outcome was placed; None when none is pending. A
    maybe-call does not count: its request may never have left, so no row may ever come, and
    it would hold every later sync to its day; it is matched whenever its days are read."""
    found = conn.execute(
        "SELECT MIN(placed_at) FROM dials WHERE outcome IS NULL AND NOT maybe"
    ).fetchone()[0]
    return parse_stamp(found) if found else None


def dials_from(conn: sqlite3.Connection, placed_from: datetime | None = None) -> Iterator[Dial]:
    """The dials placed at or after `placed_from` (every one when None), for the Matcher:
    resolved ones too, so a row of an answered call is never taken for a pending call's."""
    query = (
        "SELECT id, called_to, custom_identifiers, placed_at, room_name, participant_identity "
        "FROM dials"
    )
    params: tuple[str, ...] = ()
    if placed_from is not None:
        query += " WHERE placed_at >= ?"  # stamps sort as text
        params = (stamp(placed_from),)
    for dial_id, called_to, ids, placed_at, room, identity in conn.execute(query, params):
        placed = parse_stamp(placed_at) or _LONG_AGO
        yield Dial(dial_id, called_to, ids, placed, room, identity)


def claims_in_flight(
    conn: sqlite3.Connection, placed_from: datetime | None, campaign: str
) -> Iterator[Dial]:
    """The claims a ledger holds (`sending`: a run going, or one killed and not yet opened
    again) as calls of `campaign` (never ""): a log row of such a call is that call's, and is
    never taken for an earlier call of the same person."""
    query = "SELECT called_to, row, started_at FROM sending"
    params: tuple[str, ...] = ()
    if placed_from is not None:
        query += " WHERE started_at >= ?"
        params = (stamp(placed_from),)
    for n, (called_to, _row, started_at) in enumerate(conn.execute(query, params), 1):
        placed = parse_stamp(started_at) or _LONG_AGO
        yield Dial(-n, called_to, "", placed, "", "", campaign=campaign)


def other_ledger_dials(
    path: Path, placed_from: datetime | None, wanted: Callable[[str], bool]
) -> list[Dial]:
    """Another campaign's ledger at `path`, read without writing: its dials placed at or after
    `placed_from` and its claims in flight (a run going, or killed: calls of its own too),
    each naming that ledger's campaign (the file's stem when it names none), if
    `wanted(campaign)`. Nothing for a file that cannot be read, is no ledger, or is one from
    before `dials`: it has no call to match."""
    try:
        conn = sqlite3.connect(readonly_uri(path), uri=True, isolation_level=None)
    except sqlite3.Error:
        return []
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not {"meta", "dials"} <= tables:
            return []
        named = conn.execute("SELECT value FROM meta WHERE key = 'campaign'").fetchone()
        name = (named[0] if named else "") or path.stem
        if not wanted(name):
            return []
        placed = [replace(d, campaign=name) for d in dials_from(conn, placed_from)]
        if "sending" in tables:
            placed += claims_in_flight(conn, placed_from, name)
        return placed
    except sqlite3.Error:
        return []
    finally:
        conn.close()


def store(
    conn: sqlite3.Connection,
    results: Mapping[int, Resolved],
    *,
    transcripts: bool,
    synced_at: str,
    scrub: Callable[[str], str] = str,
) -> int:
    """Each dial's resolved log rows into the ledger, in one transaction; how many dials
    changed. A dial already resolved changes only for a better outcome; `transcripts`: keep
    the best row's transcript too (else none is stored). `scrub` takes the key out of every
    text once more before it is stored (the call-logs reader has, already)."""

    def params() -> Iterator[dict[str, object]]:
        # One dial's at a time: 100,000 dials' parameters at once would be ~45 MB.
        for dial_id, resolved in results.items():
            best = resolved.best
            transcript = scrub(best.transcript) if transcripts and best.transcript else None
            yield {
                "id": dial_id,
                "outcome": best.outcome.value,
                "rank": OUTCOME_RANK[best.outcome],
                "raw_status": scrub(RAW_STATUS_JOIN.join(resolved.raw_statuses)),
                "duration_s": best.duration_s,
                "cost": best.cost,
                "summary": scrub(best.summary),
                "recording_url": scrub(best.recording_url),
                "transcript": transcript,
                "log_rows": resolved.rows,
                "synced_at": synced_at,
                "disposition": scrub(resolved.disposition),
                "sentiment": scrub(resolved.sentiment),
                "json_output": scrub(resolved.json_output),
            }

    with transaction(conn):
        before = conn.total_changes
        conn.executemany(_STORE, params())
        conn.executemany(_ADD_SAID, params())
        changed = conn.total_changes - before
        if transcripts:
            conn.executemany(_ADD_TRANSCRIPT, params())
    return changed


def last_outcomes(conn: sqlite3.Connection, run_id: int | None = None) -> dict[CallOutcome, int]:
    """How many people's last call ended each way, every outcome present (zeros included);
    with `run_id`, the people that run called, by their last call in that run."""
    counts = dict.fromkeys(CallOutcome, 0)
    where, params = ("WHERE run_id = ?", (run_id,)) if run_id is not None else ("", ())
    found = conn.execute(
        "SELECT d.outcome, COUNT(*) FROM dials d "
        f"JOIN (SELECT MAX(id) AS last FROM dials {where} GROUP BY called_to) p ON d.id = p.last "
        "GROUP BY d.outcome",
        params,
    )
    for outcome, n in found:
        counts[stored_outcome(outcome)] += n
    return counts


def dispositions(
    conn: sqlite3.Connection, run_id: int | None = None, *, top: int = 10
) -> list[tuple[str, int]]:
    """How many people's last call ended with each disposition (`call_outcome`), most first,
    the `top` ones and the rest as "other" (SPEC 12); people whose last call has none are not
    counted. With `run_id`, the people that run called. Nothing for a ledger from before
    dispositions were kept (read without bringing it up to date)."""
    where, params = ("WHERE run_id = ?", (run_id,)) if run_id is not None else ("", ())
    try:
        found = conn.execute(
            "SELECT d.disposition, COUNT(*) AS n FROM dials d "
            f"JOIN (SELECT MAX(id) AS last FROM dials {where} GROUP BY called_to) p "
            "ON d.id = p.last WHERE d.disposition != '' GROUP BY d.disposition "
            "ORDER BY n DESC, d.disposition",
            params,
        ).fetchall()
    except sqlite3.OperationalError:  # no such column: an older ledger, read only
        return []
    if len(found) <= top + 1:
        return found
    return [*found[:top], (OTHER, sum(n for _, n in found[top:]))]


def keeps_dispositions(conn: sqlite3.Connection) -> bool:
    """Whether this ledger keeps what people said (a ledger from before that, read without
    bringing it up to date, does not)."""
    return "disposition" in {row[1] for row in conn.execute("PRAGMA table_info(dials)")}


def called_numbers(conn: sqlite3.Connection, run_id: int | None = None) -> tuple[str, ...]:
    """Everyone the run (or, without `run_id`, the campaign) called, once each."""
    where, params = ("WHERE run_id = ?", (run_id,)) if run_id is not None else ("", ())
    rows = conn.execute(f"SELECT DISTINCT called_to FROM dials {where}", params)
    return tuple(row[0] for row in rows)


def last_json_outputs(conn: sqlite3.Connection) -> Iterator[str]:
    """Each person's last call's `call_json_output` (those that have one), in call order."""
    found = conn.execute(
        "SELECT d.json_output FROM dials d "
        "JOIN (SELECT MAX(id) AS last FROM dials GROUP BY called_to) p ON d.id = p.last "
        "WHERE d.json_output != '' ORDER BY d.id"
    )
    for (text,) in found:
        yield text


def answer_rate(counts: Mapping[CallOutcome, int]) -> float | None:
    """Answered over the people whose last call has a known outcome; None when nobody's has."""
    known = sum(n for outcome, n in counts.items() if outcome is not CallOutcome.PENDING)
    return counts.get(CallOutcome.ANSWERED, 0) / known if known else None


def total_cost(conn: sqlite3.Connection, run_id: int | None = None) -> float:
    """What every call the logs priced cost, added up (with `run_id`: that run's calls)."""
    if run_id is None:
        return conn.execute(f"SELECT COALESCE(SUM{_COST}, 0) FROM dials").fetchone()[0]
    query = f"SELECT COALESCE(SUM{_COST}, 0) FROM dials WHERE run_id = ?"
    return conn.execute(query, (run_id,)).fetchone()[0]


def last_synced_at(conn: sqlite3.Connection, run_id: int | None = None) -> str | None:
    """When a sync last stored an outcome (of that run's calls, with `run_id`); None: never."""
    if run_id is None:
        return conn.execute("SELECT MAX(synced_at) FROM dials").fetchone()[0]
    query = "SELECT MAX(synced_at) FROM dials WHERE run_id = ?"
    return conn.execute(query, (run_id,)).fetchone()[0]


def average_cost(conn: sqlite3.Connection) -> tuple[float, int] | None:
    """What a call whose outcome is known cost on average, and over how many calls; None when
    the logs priced none. A call with an outcome but no price counts as free (Tabbly prices
    the calls it bills)."""
    known, priced, cost = conn.execute(
        f"SELECT COUNT(*), COUNT{_COST}, COALESCE(SUM{_COST}, 0) FROM dials "
        "WHERE outcome IS NOT NULL"
    ).fetchone()
    return (cost / known, known) if priced else None


def calls_per_hour(
    conn: sqlite3.Connection, run_id: int | None = None, *, min_seconds: float = 0.0
) -> float | None:
    """Calls placed per hour of the finished runs' wall time (with `run_id`: that run's);
    None when no finished run placed a call over a measurable time, or over less than
    `min_seconds` of it."""
    query = (
        "SELECT r.started_at, r.finished_at, (SELECT COUNT(*) FROM dials d WHERE d.run_id = r.id) "
        "FROM runs r WHERE r.finished_at IS NOT NULL"
    )
    params: tuple[int, ...] = ()
    if run_id is not None:
        query += " AND r.id = ?"
        params = (run_id,)
    calls, seconds = 0, 0.0
    for started, finished, placed in conn.execute(query, params):
        begun, ended = parse_stamp(started or ""), parse_stamp(finished or "")
        if begun is not None and ended is not None and placed:
            calls += placed
            seconds += max((ended - begun).total_seconds(), 0.0)
    if not calls or seconds <= 0 or seconds < min_seconds:
        return None
    return calls * 3600 / seconds


def person(conn: sqlite3.Connection, called_to: str) -> Person | None:
    """One person's record (None: never called by this campaign)."""
    found = conn.execute(_PEOPLE.format(where="WHERE called_to = ?"), (called_to,)).fetchone()
    return _person(found) if found else None


def people_of(conn: sqlite3.Connection, dial_ids: Iterable[int]) -> dict[str, Person]:
    """The people these dials called, each as the ledger holds them now (what a sync's
    `outcomes` notification compares before and after it stores)."""
    ids, numbers = list(dial_ids), set()
    for i in range(0, len(ids), _IN_CHUNK):
        part = ids[i : i + _IN_CHUNK]
        marks = ", ".join("?" * len(part))
        found = conn.execute(f"SELECT called_to FROM dials WHERE id IN ({marks})", part)
        numbers.update(r[0] for r in found)
    ordered, people = sorted(numbers), {}
    for i in range(0, len(ordered), _IN_CHUNK):
        part = ordered[i : i + _IN_CHUNK]
        marks = ", ".join("?" * len(part))
        where = f"WHERE called_to IN ({marks})"
        for row in conn.execute(_PEOPLE.format(where=where), part):
            people[row[0]] = _person(row)
    return people


# Values bound in one `IN (...)`: well under SQLite's limit on host parameters.
_IN_CHUNK = 500


def people_by_run(conn: sqlite3.Connection) -> Iterator[tuple[int | None, list[Person]]]:
    """Every person, grouped by the run that placed their last call (in run order, each
    group in sheet-row order; None first: calls no run recorded, e.g. a rebuilt ledger's).
    One group is in memory at a time."""
    rows = conn.execute(_PEOPLE.format(where="") + " ORDER BY d.run_id, d.row, d.id")
    for run_id, group in groupby(map(_person, rows), key=lambda p: p.run_id):
        yield run_id, list(group)


def last_call_runs(conn: sqlite3.Connection) -> list[int]:
    """The runs that placed someone's last call, in run order."""
    found = conn.execute(
        "SELECT DISTINCT d.run_id FROM dials d "
        "JOIN (SELECT MAX(id) AS last FROM dials GROUP BY called_to) p ON d.id = p.last "
        "WHERE d.run_id IS NOT NULL ORDER BY d.run_id"
    )
    return [r[0] for r in found]


def run_reports(conn: sqlite3.Connection) -> dict[int, str]:
    """The report each run named (as the `runs` table holds it)."""
    return {
        run_id: report
        for run_id, report in conn.execute("SELECT id, report FROM runs WHERE report IS NOT NULL")
    }


def _person(row: tuple) -> Person:
    called_to, ids, calls, placed_at, outcome, *rest = row
    return Person(called_to, ids, calls, placed_at, stored_outcome(outcome), *rest)
