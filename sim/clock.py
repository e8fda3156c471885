"""Clocks. Sim time only moves when the engine moves it."""

from __future__ import annotations

from typing import Protocol

NS_PER_DAY = 86_400 * 1_000_000_000


class Clock(Protocol):
    def now_ns(self) -> int:
        """Current time, integer nanoseconds since the Unix epoch, UTC."""
        ...


class SimClock:
    """Event time, moved only by the engine (which checks that it never goes back).

    ``now`` is a plain attribute because the engine sets it on every bar.
    """

    __slots__ = ("now",)

    def __init__(self, start_ns: int = 0) -> None:
        self.now = start_ns

    def now_ns(self) -> int:
        return self.now

    def advance_to(self, ts: int) -> None:
        if ts < self.now:
            raise ValueError(f"clock cannot go back from {self.now} to {ts}")
        self.now = ts
