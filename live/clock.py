"""Wall clocks for live mode: the real one, and an accelerated one for tests and replays.

Both implement ``sim.clock.Clock`` (``now_ns``) and add ``sleep_until``, which a feed uses
to wait for a point in (possibly accelerated) time. Neither is ever given to the engine:
the engine keeps its own event-time ``SimClock``, moved by bar timestamps, in live mode as
in a backtest. A wall clock only decides *when* a bar is delivered, never what it says.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from sim.clock import Clock


class PacingClock(Clock, Protocol):
    async def sleep_until(self, ts_ns: int) -> None:
        """Return once ``now_ns() >= ts_ns`` (always yields to the event loop at least once)."""
        ...


class WallClock:
    """Real UTC time from the system clock."""

    __slots__ = ()

    def now_ns(self) -> int:
        return time.time_ns()

    async def sleep_until(self, ts_ns: int) -> None:
        await asyncio.sleep(0)
        while (remaining := ts_ns - time.time_ns()) > 0:
            await asyncio.sleep(remaining / 1e9)


class AcceleratedClock:
    """Simulated UTC time starting at ``start_ns`` and running ``speed`` times faster than real.

    Elapsed real time is read from the monotonic clock (immune to system clock steps), so
    ``now_ns() == start_ns + speed * (monotonic now - monotonic at construction)``.
    """

    __slots__ = ("_t0", "speed", "start_ns")

    def __init__(self, start_ns: int, speed: float = 1.0) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.start_ns = start_ns
        self.speed = speed
        self._t0 = time.monotonic_ns()

    def now_ns(self) -> int:
        return self.start_ns + int((time.monotonic_ns() - self._t0) * self.speed)

    async def sleep_until(self, ts_ns: int) -> None:
        await asyncio.sleep(0)
        # asyncio timers may fire a little early (loop clock resolution): re-check and top up.
        while (remaining := ts_ns - self.now_ns()) > 0:
            await asyncio.sleep(remaining / self.speed / 1e9)
