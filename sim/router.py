"""Router: the "where". Sends each order to the cheapest venue that lists its symbol."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from sim.messages import OrderRouted, RouteCandidate, SubmitOrder
from sim.venue import Venue


class CheapestVenueRouter:
    """Lowest taker fee wins; equal fees go to the venue listed first (stable, deterministic).

    ``timer`` measures how long routing took (a wall-time measurement stored for latency
    analysis; it never influences a result).
    """

    def __init__(
        self, venues: Sequence[Venue], timer: Callable[[], int] = time.perf_counter_ns
    ) -> None:
        self.venues = tuple(venues)
        self._timer = timer
        self._candidates: dict[str, tuple[RouteCandidate, ...]] = {}
        for venue in self.venues:
            for symbol in venue.symbols:
                self._candidates.setdefault(symbol, ())
        for symbol in self._candidates:
            self._candidates[symbol] = tuple(
                RouteCandidate(v.name, v.fee_bps) for v in self.venues if symbol in v.symbols
            )
        self._by_name = {v.name: v for v in self.venues}

    def venue(self, name: str) -> Venue:
        return self._by_name[name]

    def route(self, order: SubmitOrder) -> OrderRouted | None:
        """Pick a venue, or None when no venue lists the symbol."""
        start = self._timer()
        candidates = self._candidates.get(order.symbol, ())
        if not candidates:
            return None
        best = min(candidates, key=lambda c: c.fee_bps)  # min keeps the first of equals
        if len(candidates) == 1:
            reason = "only venue listing the symbol"
        else:
            reason = f"lowest taker fee ({best.fee_bps:g} bps) of {len(candidates)} venues"
        elapsed = self._timer() - start
        return OrderRouted(order, order.ts, best.venue, candidates, reason, elapsed)
