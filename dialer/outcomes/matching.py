"""Which call of the state folder a log row speaks of (SPEC 10), and what a call's rows add up to.

    matcher = Matcher(dials, agent_id=33, others=other_dials)   # others: shared_agent
    for page in pages:
        for row in page:
            matcher.feed(row)             # the dial_id it matched, or None: someone else's
    matcher.results()[dial_id].best.outcome

A row belongs to at most one call: the campaign's own `dials` and `others`, the calls the
other campaigns of the folder placed with the same agent (a row of theirs is never this
campaign's, so a call whose only candidate row is another campaign's stays pending). First
rule that applies: `room_name` equal, or `participant_identity` equal when it names exactly
one call (Tabbly answers `sip_<number>`, the same for every call to a number; a call that
does not know its own is a candidate too); else
`custom_identifiers` and `called_to` equal (a call whose identifiers are not known, a killed
run's claim, is a candidate too); else `called_to` equal; of several calls, the one placed
nearest the row's time. Whatever the rule, a row is only ever matched to a call whose
time window holds it: from `skew` before the call was stamped (clocks disagree a little; a row
logged earlier than that is an earlier call's) to 6 hours after; and to a call of its number.
A room is no proof alone: an upstream that names one room for every call must not send every
row to one call, nor a row of yesterday to today's call. A row naming a room, identifiers or
a number that a candidate call does not have is another call's. Rows of another agent are
ignored.

Memory is O(dials): rows are folded into one `Resolved` per dial as they arrive. A kept row's
transcript can be long (up to `log_transcript_chars`): `Matcher(..., transcripts=False)` drops
them from the kept rows when they will not be stored (the outcome was already read from them).
What the person said (`call_outcome`, `call_sentiment`, `call_json_output`) is kept from the
best row, and from the latest row that says it where the best row does not (`Said`); no other
row's texts are kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from itertools import chain
from typing import TypeVar

from dialer.core.settings import DEFAULTS
from dialer.ledger.dials import Dial
from dialer.tabbly.log_rows import LogRow, better, kept_json

# How long after its call a row may be logged: a call is logged when it is dialled, not
# hours later. How far before: `Settings.logs_clock_skew_seconds` (the Matcher's `skew`).
AFTER_PLACED = timedelta(hours=6)
_SECOND = timedelta(seconds=1)
# Distinct raw statuses kept per dial: a hostile upstream cannot grow one without bound.
_MAX_STATUSES = 8
# Log ids remembered per dial to count a row repeated across pages once.
_MAX_IDS = 64
# Fewer digits than this in a differently written number cannot say it is the same number.
_MIN_DIGITS = 7
_K = TypeVar("_K")
# The campaign of a claim of the syncing campaign's own that a killed run left (not yet a
# dial: the next run adopts it as a maybe-call): to the Matcher, someone else's call.
OWN_CLAIM = "(this campaign's claim)"


@dataclass(slots=True)
class Said:
    """The latest non-empty `call_outcome`, `call_sentiment` and `call_json_output` of a
    dial's rows, each field on its own (each with its row's time): a disposition is often on
    another row than the one the outcome is read from."""

    disposition: str = ""
    disposition_at: datetime | None = None
    sentiment: str = ""
    sentiment_at: datetime | None = None
    json_output: str = ""
    json_output_at: datetime | None = None

    def hear(self, row: LogRow) -> None:
        """Take `row`'s non-empty fields where it is later than the row they came from (on a
        tie, or with no time, the first heard stays: pages come newest first)."""
        at = row.called_at
        if row.call_outcome and _later(at, self.disposition_at, self.disposition):
            self.disposition, self.disposition_at = row.call_outcome, at
        if row.call_sentiment and _later(at, self.sentiment_at, self.sentiment):
            self.sentiment, self.sentiment_at = row.call_sentiment, at
        if row.call_json_output and _later(at, self.json_output_at, self.json_output):
            self.json_output, self.json_output_at = row.call_json_output, at


def _says(row: LogRow) -> bool:
    return bool(row.call_outcome or row.call_sentiment or row.call_json_output)


def _later(at: datetime | None, than: datetime | None, held: str) -> bool:
    if not held:
        return True
    return at is not None and (than is None or at > than)


@dataclass(slots=True)
class Resolved:
    """What the log rows of one dial say, the best row first. What the person said is the
    best row's, field by field, else the latest row's that has it (`said`; None while no row
    said anything)."""

    best: LogRow
    raw_statuses: list[str]  # every distinct raw status seen, in arrival order
    rows: int
    said: Said | None = None

    @property
    def disposition(self) -> str:
        return self.best.call_outcome or (self.said.disposition if self.said else "")

    @property
    def sentiment(self) -> str:
        return self.best.call_sentiment or (self.said.sentiment if self.said else "")

    @property
    def json_output(self) -> str:
        return self.best.call_json_output or (self.said.json_output if self.said else "")


class Matcher:
    """Folds log rows into the dials they belong to; see the module docstring for the rules."""

    __slots__ = (
        "_agent_id",
        "_by_identity",
        "_by_key",
        "_by_number",
        "_by_room",
        "_ids",
        "_resolved",
        "_skew",
        "_transcripts",
        "last",
        "others_rows",
    )

    def __init__(
        self,
        dials: Iterable[Dial],
        agent_id: int,
        *,
        others: Iterable[Dial] = (),
        transcripts: bool = True,
        skew: timedelta = timedelta(seconds=DEFAULTS.logs_clock_skew_seconds),
    ) -> None:
        self._agent_id = agent_id
        self._transcripts = transcripts
        self._skew = skew
        self.others_rows = 0  # rows fed that are other campaigns' calls'
        self.last: Dial | None = None  # the call of the folder the last row fed speaks of
        # One Dial, or a list of them when several share the key: a list per dial would be
        # ~40 MB over 100,000 dials, most of them alone under their room, key and number.
        self._by_room: dict[str, _Listed] = {}
        self._by_identity: dict[str, Dial | None] = {}  # None: shared by several dials
        self._by_key: dict[tuple[str, str], _Listed] = {}
        self._by_number: dict[str, _Listed] = {}
        self._resolved: dict[int, Resolved] = {}
        # Log ids seen per dial, to count a row once: a tuple, as most calls have one or two.
        self._ids: dict[int, tuple[str, ...]] = {}
        for dial in chain(dials, others):
            if dial.room_name:
                _add(self._by_room, dial.room_name, dial)
            if dial.participant_identity:
                seen = dial.participant_identity in self._by_identity
                self._by_identity[dial.participant_identity] = None if seen else dial
            if dial.custom_identifiers:
                key = (dial.custom_identifiers, dial.called_to)
                _add(self._by_key, key, dial)
            _add(self._by_number, dial.called_to, dial)

    def feed(self, row: LogRow) -> int | None:
        """Fold `row` into its dial's result; the dial_id it matched, or None (someone else's)."""
        self.last = None
        if row.agent_id is not None and row.agent_id != self._agent_id:
            return None
        dial = self.last = self.match(row)
        if dial is None:
            return None
        if dial.campaign:
            self.others_rows += 1
            return None
        if row.log_id:
            ids = self._ids.get(dial.dial_id, ())
            if row.log_id in ids:
                return dial.dial_id  # the same row again: pages shift as new rows arrive
            if len(ids) < _MAX_IDS:
                self._ids[dial.dial_id] = (*ids, row.log_id)
        # Kept only for what a dial stores and `better` weighs: 100,000 dials' rows must fit
        # in a sync's memory bound, so the texts used for matching are let go, and the
        # extraction is kept as a dial keeps it (an object whole, anything else cut).
        row = replace(
            row,
            transcript=row.transcript if self._transcripts else "",
            called_to="",
            participant_identity="",
            room_name="",
            custom_identifiers="",
            call_json_output=kept_json(row.call_json_output),
        )
        resolved = self._resolved.get(dial.dial_id)
        if resolved is None:
            self._resolved[dial.dial_id] = Resolved(row, [row.raw_status], 1)
            return dial.dial_id
        if resolved.said is not None or _says(row) or _says(resolved.best):
            # The best row may change: what either said is kept, the latest per field.
            if resolved.said is None:
                resolved.said = Said()
                resolved.said.hear(resolved.best)
            resolved.said.hear(row)
        resolved.rows += 1
        resolved.best = better(resolved.best, row)
        statuses = resolved.raw_statuses
        if row.raw_status not in statuses and len(statuses) < _MAX_STATUSES:
            statuses.append(row.raw_status)
        return dial.dial_id

    def results(self) -> dict[int, Resolved]:
        """dial_id -> what its rows say; a dial no row matched is absent (still pending)."""
        return dict(self._resolved)

    def match(self, row: LogRow) -> Dial | None:
        """The dial `row` speaks of by the first rule that applies, else None."""
        if row.room_name:
            # The trigger's own answer named this room, if the number and the time agree.
            candidates = self._candidates(self._by_room.get(row.room_name), row)
            if candidates:
                return _nearest(candidates, row.called_at)
        if row.participant_identity:
            dial = self._by_identity.get(row.participant_identity)
            if dial is not None and self._compatible(dial, row):
                # Unique among the calls that know theirs: a call that does not (a killed
                # run's claim, a call restored from a report) may be this row's, the nearer.
                unnamed = [
                    d
                    for d in self._candidates(self._by_number.get(row.called_to), row)
                    if not d.participant_identity
                ]
                return _nearest([dial, *unnamed], row.called_at) if unnamed else dial
        if not row.called_to:
            return None
        if row.custom_identifiers:
            candidates = self._candidates(
                self._by_key.get((row.custom_identifiers, row.called_to)), row
            )
            if candidates:
                # A claim (a killed run's call) keeps no identifiers: it may be this row's too.
                unnamed = self._candidates(self._by_number.get(row.called_to), row)
                candidates += [d for d in unnamed if not d.custom_identifiers]
                return _nearest(candidates, row.called_at)
        if row.called_at is None:
            return None
        candidates = self._candidates(self._by_number.get(row.called_to), row)
        return _nearest(candidates, row.called_at) if candidates else None

    def _candidates(self, dials: _Listed | None, row: LogRow) -> list[Dial]:
        if dials is None:
            return []
        if isinstance(dials, Dial):
            return [dials] if self._compatible(dials, row) else []
        return [d for d in dials if self._compatible(d, row)]

    def _compatible(self, dial: Dial, row: LogRow) -> bool:
        """Whether `row` may be this dial's at all: a row naming another room, other
        identifiers or another number is another call's, and so is a row logged outside the
        dial's time window (`skew` before to 6 hours after), whatever it shares with this one:
        another campaign's call to the same person with the same agent, or an earlier call."""
        if row.room_name and dial.room_name and row.room_name != dial.room_name:
            return False
        if not _same_number(row.called_to, dial.called_to):
            return False
        ids = row.custom_identifiers
        if ids and dial.custom_identifiers and ids != dial.custom_identifiers:
            return False  # the row names another row of a sheet
        at = row.called_at
        return at is None or dial.placed_at - self._skew <= at <= dial.placed_at + AFTER_PLACED


_Listed = Dial | list[Dial]


def _add(index: dict[_K, _Listed], key: _K, dial: Dial) -> None:
    """`dial` under `key`: alone, or appended to the dials already there."""
    found = index.get(key)
    if found is None:
        index[key] = dial
    elif isinstance(found, Dial):
        index[key] = [found, dial]
    else:
        found.append(dial)


def _same_number(logged: str, called: str) -> bool:
    """Whether a row's `called_to` may be the number a call was placed to: equal, or the
    same national digits when the row writes it another way ("07359043943" for
    "+917359043943"); a row or call without a number does not disagree."""
    if not logged or not called or logged == called:
        return True
    mine, theirs = _digits(logged), _digits(called)
    if len(mine) < _MIN_DIGITS or len(theirs) < _MIN_DIGITS:
        return False
    return mine.endswith(theirs) or theirs.endswith(mine)


def _digits(number: str) -> str:
    """A number's ASCII digits, without the trunk prefix's leading zeros."""
    return "".join(c for c in number if c in "0123456789").lstrip("0")


def _nearest(dials: list[Dial], called_at: datetime | None) -> Dial:
    """Of the calls a row may be, the one placed nearest its time (a row is logged when its
    call is dialled; the window already kept out calls placed well after it); with no time,
    the latest."""
    if called_at is None or len(dials) == 1:
        return max(dials, key=lambda d: d.placed_at)
    return min(dials, key=lambda d: _distance(d.placed_at, called_at))


def _distance(placed_at: datetime, called_at: datetime) -> tuple[timedelta, timedelta]:
    """How far a call's stamp is from a row's time, nearest first. A time cut to the second
    (Tabbly's `called_time`) means somewhere in that second: a stamp inside it is at 0, so a
    call placed a second or more before or after is never nearer than the row's own."""
    within = _SECOND if called_at.microsecond == 0 else timedelta(0)
    gap = max(called_at - placed_at, placed_at - (called_at + within), timedelta(0))
    return gap, abs(placed_at - called_at)
