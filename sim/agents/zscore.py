"""Z-score mean reversion: fade moves that stretch far from the rolling mean."""

from __future__ import annotations

from pydantic import Field, model_validator

from sim.agents import batch_forms
from sim.agents import indicator_series as series
from sim.agents.base import AgentParams
from sim.agents.batch import SignalChanges
from sim.indicators import RollingZScore
from sim.messages import FLAT, LONG, SHORT, Side, Signal
from sim.view import BarSource, MarketView


class ZScoreReversionParams(AgentParams):
    window: int = Field(50, ge=2, description="bars in the rolling mean and deviation")
    entry: float = Field(2.0, gt=0, description="|z| at which to fade the move")
    exit: float = Field(0.5, ge=0, description="|z| under which to go flat")
    confidence_step: float = Field(0.1, gt=0, le=1, description="confidence resolution")

    @model_validator(mode="after")
    def _ordered(self) -> ZScoreReversionParams:
        if self.exit >= self.entry:
            raise ValueError(f"exit ({self.exit}) must be below entry ({self.entry})")
        return self


class ZScoreReversion:
    """SHORT above +entry, LONG below -entry, FLAT once |z| falls under ``exit``.

    Between ``exit`` and ``entry`` the position is kept (hysteresis), so the agent does not
    flip on noise. Confidence grows with |z| and saturates at ``2 * entry``; it moves in
    ``confidence_step`` increments so a signal is re-issued only when the view moved
    materially. A FLAT view is held with full confidence.
    """

    Params = ZScoreReversionParams
    indicators = staticmethod(series.zscore_reversion)  # report time only (no per-bar cost)
    __slots__ = ("_cache", "_entry", "_exit", "_flat", "_last", "_scale", "_steps", "_z")

    def __init__(
        self,
        window: int = 50,
        entry: float = 2.0,
        exit: float = 0.5,
        confidence_step: float = 0.1,
    ) -> None:
        if not 0 <= exit < entry:
            raise ValueError(f"need 0 <= exit < entry, got exit={exit}, entry={entry}")
        if not 0 < confidence_step <= 1:
            raise ValueError(f"confidence_step must be in (0, 1], got {confidence_step}")
        self._z = RollingZScore(window)
        self._entry = entry
        self._exit = exit
        steps = round(1 / confidence_step)
        self._steps = steps
        self._scale = steps / (2 * entry)  # |z| -> confidence in steps
        # Every signal this agent can give, built once: the hot path allocates nothing.
        self._cache = {
            (side, k): Signal(side, min(1.0, k / steps),
                              reason=f"z-score {'below -' if side is LONG else 'above +'}entry")
            for side in (LONG, SHORT) for k in range(1, steps + 1)
        }
        self._flat = Signal(FLAT, 1.0, reason="z-score back near the mean")
        self._last: Signal | None = None

    def batch_signals(self, bars: BarSource) -> SignalChanges:
        """Every signal ``on_bar`` would return over ``bars``, at once (``sim.agents.batch``)."""
        return batch_forms.zscore_reversion(self, bars)

    def on_bar(self, view: MarketView) -> Signal | None:
        zscore = self._z
        z = zscore.update(view.close)
        if not zscore.ready:
            return None
        last = self._last
        entry = self._entry
        side: Side
        if z >= entry:
            side = SHORT
        elif z <= -entry:
            side = LONG
        elif last is None or -self._exit <= z <= self._exit:
            side = FLAT
        else:
            side = last.side
        if side is FLAT:
            signal = self._flat
        else:
            steps = self._steps
            k = round((z if z > 0.0 else -z) * self._scale)
            signal = self._cache[side, steps if k > steps else (k or 1)]
        if signal is last:
            return None
        self._last = signal
        return signal
