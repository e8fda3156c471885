"""Moving-average crossover: long while the fast mean is above the slow one."""

from __future__ import annotations

from pydantic import Field, model_validator

from sim.agents import batch_forms
from sim.agents import indicator_series as series
from sim.agents.base import AgentParams
from sim.agents.batch import SignalChanges
from sim.indicators import FastSlowMeans
from sim.messages import FLAT, LONG, SHORT, Side, Signal
from sim.view import BarSource, MarketView

_SIGNALS = {
    side: Signal(side, 1.0, reason=f"SMA cross: fast {'above' if side is LONG else 'below'} slow")
    for side in (LONG, SHORT, FLAT)
}


class SmaCrossoverParams(AgentParams):
    fast: int = Field(10, ge=1, description="bars in the fast mean")
    slow: int = Field(50, ge=2, description="bars in the slow mean")
    long_only: bool = Field(False, description="FLAT instead of SHORT below the cross")

    @model_validator(mode="after")
    def _ordered(self) -> SmaCrossoverParams:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be below slow ({self.slow})")
        return self


class SmaCrossover:
    """LONG when SMA(fast) > SMA(slow), otherwise SHORT (or FLAT if ``long_only``).

    Abstains (no signal) until the slow window is full. Signals only on a cross, with
    confidence 1: the cross is the event, its size carries no extra information here.
    """

    Params = SmaCrossoverParams
    indicators = staticmethod(series.sma_crossover)  # report time only (no per-bar cost)

    __slots__ = ("_down", "_last", "_means", "_slow")

    def __init__(self, fast: int = 10, slow: int = 50, long_only: bool = False) -> None:
        self._means = FastSlowMeans(fast, slow)
        self._slow = slow
        self._last: Side | None = None
        self._down = FLAT if long_only else SHORT

    def batch_signals(self, bars: BarSource) -> SignalChanges:
        """Every signal ``on_bar`` would return over ``bars``, at once (``sim.agents.batch``)."""
        return batch_forms.sma_crossover(self, bars, _SIGNALS)

    def on_bar(self, view: MarketView) -> Signal | None:
        fast, slow = self._means.update(view.close)
        if self._means.count < self._slow:
            return None
        side = LONG if fast > slow else self._down
        if side is self._last:
            return None
        self._last = side
        return _SIGNALS[side]
