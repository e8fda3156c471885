"""The engine's event queue: everything scheduled for a later time (scenario events, orders
on their way to a venue, time-in-force expiries, funding, stale signals) waits here and is
dispatched by the engine, one event at a time, in a total and reproducible order."""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Priorities order events that share a timestamp (lower runs first): a scenario event
# (kill switch, venue health) comes before the bar's open, which comes before anything
# delivered to a venue at that time.
PRIORITY_EVENT = -1
PRIORITY_OPEN = 0
PRIORITY_VENUE = 10
# An order reaching a venue at a time (latency): after that time's scenario events, before
# its bars' opens, so it meets the first open at or after its arrival.
PRIORITY_ARRIVAL = -0.5
# A standing signal going stale (consensus.max_signal_age): before the open at that time.
# It only marks the symbol; the re-vote happens at the close of the symbol's next bar.
PRIORITY_EXPIRY = -1


@dataclass(order=True, slots=True)
class _Queued:
    ts: int
    priority: float  # fractional where an event sits between two others
    seq: int
    handler: Callable[[Any], None] = field(compare=False)
    message: Any = field(compare=False)


class EventQueue:
    """Min-heap keyed by (timestamp, priority, sequence): a total, reproducible order."""

    __slots__ = ("_seq", "heap")

    def __init__(self) -> None:
        self.heap: list[_Queued] = []
        self._seq = 0

    def __len__(self) -> int:
        return len(self.heap)

    def push(self, ts: int, priority: float, handler: Callable[[Any], None], message: Any) -> None:
        self._seq += 1
        heapq.heappush(self.heap, _Queued(ts, priority, self._seq, handler, message))

    def next_key(self) -> tuple[int, float] | None:
        return (self.heap[0].ts, self.heap[0].priority) if self.heap else None

    def pop(self) -> _Queued:
        return heapq.heappop(self.heap)
