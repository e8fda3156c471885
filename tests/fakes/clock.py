"""A clock the test moves by hand (``sim.clock.Clock`` plus ``sleep_until``)."""

from __future__ import annotations

import asyncio


class ManualClock:
    """``now_ns`` only changes when ``set`` is called; sleepers wake when it passes them.
    Used from one event loop."""

    def __init__(self, now_ns: int) -> None:
        self._now = now_ns
        self._sleepers: list[tuple[int, asyncio.Future[None]]] = []

    def now_ns(self) -> int:
        return self._now

    def set(self, ts_ns: int) -> None:
        """Move time forward to ``ts_ns`` (never back)."""
        self._now = max(self._now, ts_ns)
        keep = []
        for ts, fut in self._sleepers:
            if fut.done():
                continue
            if ts <= self._now:
                fut.set_result(None)
            else:
                keep.append((ts, fut))
        self._sleepers = keep

    async def sleep_until(self, ts_ns: int) -> None:
        await asyncio.sleep(0)
        if ts_ns <= self._now:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((ts_ns, fut))
        await fut
