"""Feed port: where live bars come from. Anything that async-iterates closed ``Bar``s fits.

``PacedReplayFeed`` replays recorded bars the way an exchange publishes them: each bar is
released only once the clock has reached its close time (open time + interval).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Protocol

from live.clock import PacingClock
from sim.messages import Bar


class AsyncBarFeed(Protocol):
    """Yields closed bars; each symbol's bars in strictly increasing ``ts`` (open time)."""

    def __aiter__(self) -> AsyncIterator[Bar]: ...


class PacedReplayFeed:
    """Release ``bars`` in the order given, each when ``clock`` reaches ``bar.ts + interval_ns``."""

    def __init__(self, bars: Iterable[Bar], clock: PacingClock, interval_ns: int) -> None:
        if interval_ns <= 0:
            raise ValueError(f"interval_ns must be positive, got {interval_ns}")
        self.bars = list(bars)
        self.clock = clock
        self.interval_ns = interval_ns

    async def __aiter__(self) -> AsyncIterator[Bar]:
        for bar in self.bars:
            await self.clock.sleep_until(bar.ts + self.interval_ns)
            yield bar
