"""Z-score mean reversion: fade moves that stretch far from the rolling mean."""

from __future__ import annotations

from sim.indicators import RollingZScore
from sim.messages import FLAT, LONG, SHORT, Side, Signal
from sim.view import MarketView


class ZScoreReversion:
    """SHORT above +entry, LONG below -entry, FLAT once |z| falls under ``exit``.

    Between ``exit`` and ``entry`` the position is kept (hysteresis), so the agent does not
    flip on noise. Confidence grows with |z| and saturates at ``entry * 2``; it is rounded to
    ``confidence_step`` so a signal is re-issued only when the view moved materially.
    """

    __slots__ = ("_entry", "_exit", "_last", "_step", "_z", "cap")

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
        self._step = confidence_step
        self.cap = 2 * entry
        self._last: tuple[Side, float] | None = None

    def on_bar(self, view: MarketView) -> Signal | None:
        z = self._z.update(view.close)
        if not self._z.ready:
            return None
        last = self._last
        if z >= self._entry:
            side = SHORT
        elif z <= -self._entry:
            side = LONG
        elif abs(z) <= self._exit or last is None:
            side = FLAT
        else:
            side = last[0]
        if side is FLAT:
            confidence = 1.0
        else:
            step = self._step
            confidence = min(1.0, max(step, round(abs(z) / self.cap / step) * step))
        if last is not None and last[0] is side and last[1] == confidence:
            return None
        self._last = (side, confidence)
        return Signal(side, confidence)
