"""A line of children waiting for their turn: runs (`runs_at_once`, all campaigns) and syncs
(`syncs_at_once`), first come first served; the page says how many wait before each."""

from __future__ import annotations

import asyncio


class Line:
    """At most `size` children at once (runs, or syncs), first come first served; the rest
    wait in line and the page says how many are ahead of each.

        ticket = line.join(who)       # None: a place now; else wait for its turn:
        await line.turn(ticket)       # (`ahead(who)`: how many wait before it)
        ...
        line.leave()                  # the place goes to the first in line

    Joining takes no await, so the page says "queued" from the very request that queued.
    A ticket cancelled (`ticket.cancel()`) leaves the line without ever taking a place.
    """

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self.busy = 0
        self._waiting: list[tuple[object, asyncio.Future[None]]] = []  # in arrival order

    @property
    def free(self) -> bool:
        """One more would start at once."""
        return self.busy < self.size and not self._waiting

    def ahead(self, who: object) -> int | None:
        """How many wait before `who`; None when it is not waiting."""
        return next((i for i, (key, _) in enumerate(self._waiting) if key is who), None)

    def join(self, who: object) -> asyncio.Future[None] | None:
        """A place now (None), or a ticket done when `who`'s turn comes."""
        if self.free:
            self.busy += 1
            return None
        ticket: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((who, ticket))
        return ticket

    async def turn(self, ticket: asyncio.Future[None] | None) -> None:
        """Wait for the ticket's turn (handed over by `leave`); cancelled, out of line."""
        if ticket is None:
            return
        try:
            await ticket
        except asyncio.CancelledError:
            self._waiting = [w for w in self._waiting if w[1] is not ticket]
            if ticket.done() and not ticket.cancelled():
                self.leave()  # handed a place just as it was given up: pass it on
            raise

    def leave(self) -> None:
        while self._waiting:
            _, ticket = self._waiting.pop(0)
            if not ticket.done():
                ticket.set_result(None)  # the place passes on: `busy` unchanged
                return
        self.busy -= 1
