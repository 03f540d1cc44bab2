"""Writing a rebuilt ledger: the old ledger's rows, then what the reports show that it lacks.

    done = write_rebuilt(path, campaign, old=old, entries=entries, reports=read, dials=dials)

`dialer.ledger.rebuild` gathers the evidence (reports, the claims journal) and decides when a
rebuild is needed; this module only writes the new file, whole, in one transaction.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dialer.core.clock import Clock, stamp, system_clock
from dialer.ledger.entries import Entry, PastDial
from dialer.ledger.schema import INSERT_DIAL_ONCE, UPSERT_UNLESS_NEWER, create_schema
from dialer.ledger.sqlite import cannot_write, transaction
from dialer.ledger.store import Ledger


@dataclass(frozen=True, slots=True)
class Rebuilt:
    """What a rebuild wrote: how many people and calls came from where."""

    kept: int  # people copied from the old ledger
    from_reports: int  # people only the reports knew, or whose newest record is a report's
    dials: int = 0  # calls restored from the reports that the old ledger did not hold


def write_rebuilt(
    path: Path,
    campaign: str,
    *,
    old: Ledger | None,
    entries: list[Entry],
    reports: dict[str, int],
    dials: Sequence[PastDial] = (),
    clock: Clock = system_clock,
) -> Rebuilt:
    """A new ledger at `path` (a fresh file): the old ledger's rows if it can be read, then
    every entry whose person it does not hold as `triggered` or `unknown`, or holds by an
    older record than the entry's (`Entry.at`: the newest evidence wins, and a record never
    makes `dials` forget a call), every call of `dials` it does not hold (one row per call,
    in the order placed: the redial history whole), and the names of the reports read, so
    the loss check accounts for them. Synced to disk before returning."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = FULL")
        now = stamp(clock())
        with transaction(conn):
            create_schema(conn, campaign, now)
            kept = old.copy_into(conn) if old is not None else 0
            before = conn.total_changes
            conn.executemany(UPSERT_UNLESS_NEWER, [e.params(None, now) for e in entries])
            from_reports = conn.total_changes - before
            before = conn.total_changes
            conn.executemany(INSERT_DIAL_ONCE, [d.params() for d in dials])
            restored = conn.total_changes - before
            if restored:
                order_dials(conn)
            conn.executemany(
                "INSERT OR REPLACE INTO rebuilt_from (report, people, read_at) VALUES (?, ?, ?)",
                [(name, people, now) for name, people in reports.items()],
            )
            conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [
                    ("rebuilt_at", now),
                    ("rebuilt_from_ledger", (old.ledger_id or "") if old is not None else ""),
                ],
            )
    except sqlite3.Error as exc:
        raise cannot_write(path, exc) from None
    finally:
        conn.close()
    with open(path, "rb") as f:
        os.fsync(f.fileno())
    return Rebuilt(kept, from_reports, restored)


def order_dials(conn: sqlite3.Connection) -> None:
    """Renumber `dials` in the order the calls were placed: a person's last call is their
    dial with the highest id, and restored calls may be older than those copied."""
    columns = ", ".join(r[1] for r in conn.execute("PRAGMA table_info(dials)") if r[1] != "id")
    conn.execute("CREATE TEMP TABLE placed AS SELECT * FROM dials")
    conn.execute("DELETE FROM dials")
    conn.execute(
        f"INSERT INTO dials ({columns}) SELECT {columns} FROM temp.placed ORDER BY placed_at, id"
    )
    conn.execute("DROP TABLE temp.placed")
