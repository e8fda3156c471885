"""Ostium behind the engine's venue port: the live core's order manager plus what is
Ostium's own wire.

The order tracking, write-ahead, booking and settling are the core's
(``live.orders.OrderManager``). Ostium pushes nothing to a trader (no account stream:
its keeper executes on chain and the subgraph indexes it), so this port polls: every
``poll_s`` each leg that rests or whose outcome is unknown is looked up by cloid (state
and fills), the core's usual ``refresh``. Each order type is named in the
``venue_orders`` row by what it became at Ostium (market, limit, stop).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping

from live.journal import OrderJournal
from live.orders import OrderManager
from live.ostium.venue import OstiumVenue, PreparedOrder
from live.port import PreparedOrder as AnyPrepared
from sim.execution import ExecutionDesk


class OstiumPort(OrderManager):
    """One Ostium account as the external venue of one live run."""

    def __init__(self, venue: OstiumVenue, desk: ExecutionDesk, run_id: str,
                 coins: Mapping[str, str], *,
                 now_ns: Callable[[], int] = time.time_ns, refresh_s: float = 0.5,
                 journal: OrderJournal | None = None, poll_s: float = 1.0) -> None:
        super().__init__(venue, desk, run_id, coins, now_ns=now_ns, refresh_s=refresh_s,
                         journal=journal)
        if not poll_s > 0:
            raise ValueError(f"poll_s must be positive, got {poll_s}")
        self.venue: OstiumVenue = venue
        self.poll_s = poll_s
        self.polls = 0

    async def start(self, queue: asyncio.Queue[object]) -> None:
        await super().start(queue)
        self._spawn(self._poll())

    async def _poll(self) -> None:
        """Look up, every ``poll_s``, each leg that is not in flight already."""
        while not self._closed:
            await asyncio.sleep(self.poll_s)
            self.polls += 1
            for t in list(self.by_cloid.values()):
                if not t.placing and not t.refreshing:
                    self.refresh(t)

    def venue_type(self, prepared: AnyPrepared) -> str:
        if prepared.rejection is not None or not isinstance(prepared, PreparedOrder):
            return "none"
        return prepared.kind.lower()
