"""An agent that trades and then raises on every bar from ``fail_from`` on (what a broken
strategy or a dead dependency looks like to the kernel)."""

from __future__ import annotations

from sim.messages import FLAT, LONG, Signal
from sim.view import MarketView


class FailsFrom:
    def __init__(self, fail_from: int = 50) -> None:
        self.fail_from = fail_from

    def on_bar(self, view: MarketView) -> Signal | None:
        if view.n >= self.fail_from:
            raise ZeroDivisionError(f"bar {view.n}: broken")
        if view.n % 10 == 0:
            return Signal(LONG if view.n % 20 == 10 else FLAT, 1.0)
        return None
