"""Risk manager: an agent with no view of direction that vetoes or caps exposure.

It watches two measures of one symbol's bars, both computed from closes up to now:

* **Value at risk** of one bar, as a positive fraction of a long position's value, at
  confidence ``level`` over the last ``window`` simple returns ``close_t / close_{t-1} - 1``:

  - historical: ``-quantile(returns, 1 - level)``, linear interpolation between order
    statistics (numpy's default ``method="linear"``);
  - gaussian: ``-(mean + sd * Phi^-1(1 - level))``, sample deviation (ddof = 1);
  - worst: the larger of the two.

  Checked once ``window`` returns are in (``window + 1`` bars).
* **Drawdown**: ``1 - close / peak``, the peak being the highest close since the first bar
  (or over the last ``drawdown_window`` bars). This is also the drawdown of a notional
  unlevered long position held from the peak. Checked from the first bar.

The signal contract (what a consensus must honour; ``is_veto`` / ``is_reduce`` test for it):

* **veto** -- ``Signal(FLAT, signal_confidence, target=0.0, reason="veto: ...")``: the
  symbol's exposure must be zero whatever the other agents say. Sent while the drawdown is
  at or past ``max_drawdown`` (until it recovers below ``release_drawdown``), or when VaR
  breaches ``max_var`` and ``var_action = "veto"`` (or the cap rounds down to 0).
* **reduce** -- ``Signal(HOLD, signal_confidence, target=cap, reason="reduce: ...")``, with
  ``0 < cap < 1``: keep the side the others decide, but at most ``cap`` of equity. Sent
  while VaR > ``max_var``; ``cap = max_var / VaR`` (the exposure whose one-bar VaR equals
  ``max_var`` of equity) rounded down to a multiple of ``target_step``, so it changes only
  in steps. The side is HOLD so that a consensus unaware of the contract counts it as an
  abstention rather than a directional vote.
* **all clear** -- ``Signal(HOLD, 0.0, reason="risk: within limits")``: withdraws a standing
  veto or reduce (a signal stands until replaced, so silence would not lift it).
* None otherwise: nothing breached and nothing to withdraw. The agent never votes LONG or
  SHORT.

Under today's consensus methods a veto counts as one FLAT vote of its confidence and a
reduce as an abstention; a consensus that honours the contract must check ``is_veto`` /
``is_reduce`` first. Veto wins over reduce. Every signal is built once and cached.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import deque
from statistics import NormalDist
from typing import Literal

from pydantic import Field, model_validator

from sim.agents.base import AgentParams
from sim.messages import FLAT, HOLD, Signal
from sim.view import MarketView

VETO_PREFIX = "veto: "
REDUCE_PREFIX = "reduce: "

_fsum = math.fsum
_sqrt = math.sqrt
_nan = math.nan


def is_veto(signal: Signal | None) -> bool:
    """A risk veto: exposure on the symbol must be zero."""
    return (signal is not None and signal.side is FLAT and signal.target == 0.0
            and (signal.reason or "").startswith(VETO_PREFIX))


def is_reduce(signal: Signal | None) -> bool:
    """A risk cap: exposure on the symbol at most ``signal.target`` of equity."""
    return (signal is not None and signal.side is HOLD and signal.target is not None
            and (signal.reason or "").startswith(REDUCE_PREFIX))


def quantile_linear(sorted_values: list[float], q: float) -> float:
    """numpy.quantile(values, q) (method "linear") of already sorted values."""
    h = (len(sorted_values) - 1) * q
    lo = math.floor(h)
    t = h - lo
    a = sorted_values[lo]
    if t == 0.0:
        return a
    b = sorted_values[lo + 1]
    # numpy's lerp: from the nearer end, so the result stays within [a, b]
    return b - (b - a) * (1.0 - t) if t >= 0.5 else a + (b - a) * t


class RiskManagerParams(AgentParams):
    window: int = Field(250, ge=10, description="one-bar returns in the VaR window")
    level: float = Field(0.99, gt=0.5, lt=1.0, description="VaR confidence level")
    method: Literal["historical", "gaussian", "worst"] = Field(
        "historical", description="historical, gaussian, or the worst of the two")
    max_var: float | None = Field(0.05, gt=0, le=1,
                                  description="largest one-bar VaR, fraction of equity")
    var_action: Literal["reduce", "veto"] = Field("reduce", description="on a VaR breach")
    target_step: float = Field(0.05, ge=0.001, le=1, description="reduce caps round down to this")
    max_drawdown: float | None = Field(0.2, gt=0, lt=1, description="veto at this drawdown")
    release_drawdown: float | None = Field(None, ge=0, lt=1,
                                           description="lift the veto below this drawdown")
    drawdown_window: int | None = Field(None, ge=2,
                                        description="bars the peak is taken over (None: all)")
    signal_confidence: float = Field(1.0, gt=0, le=1, description="confidence of veto/reduce")

    @model_validator(mode="after")
    def _consistent(self) -> RiskManagerParams:
        if self.max_var is None and self.max_drawdown is None:
            raise ValueError("set max_var, max_drawdown or both")
        if self.release_drawdown is not None and (
            self.max_drawdown is None or self.release_drawdown > self.max_drawdown
        ):
            raise ValueError("release_drawdown needs max_drawdown and must not exceed it")
        return self


class RiskManager:
    """Veto / reduce / all-clear signals from rolling VaR and drawdown (module docstring)."""

    Params = RiskManagerParams
    __slots__ = (
        "_action_veto", "_clear", "_count", "_i", "_k", "_last", "_level", "_max_dd",
        "_max_var", "_method", "_peak", "_peaks", "_prev", "_q", "_reasons", "_reduce",
        "_release", "_ring", "_s", "_s2", "_sorted", "_step", "_veto_dd", "_veto_var",
        "_vetoing", "_window", "_z", "drawdown", "var_gaussian", "var_historical",
    )

    def __init__(
        self,
        window: int = 250,
        level: float = 0.99,
        method: str = "historical",
        max_var: float | None = 0.05,
        var_action: str = "reduce",
        target_step: float = 0.05,
        max_drawdown: float | None = 0.2,
        release_drawdown: float | None = None,
        drawdown_window: int | None = None,
        signal_confidence: float = 1.0,
    ) -> None:
        if window < 2 or not 0.5 < level < 1.0 or method not in ("historical", "gaussian",
                                                                  "worst"):
            raise ValueError("need window >= 2, 0.5 < level < 1, a known method")
        self._window = window
        self._level = level
        self._method = method
        self._q = 1.0 - level
        self._z = NormalDist().inv_cdf(level)
        self._max_var = max_var
        self._action_veto = var_action == "veto"
        self._step = target_step
        self._max_dd = max_drawdown
        # read only when ``max_drawdown`` is set
        self._release = (max_drawdown or 0.0) if release_drawdown is None else release_drawdown
        self._ring = [0.0] * window
        self._i = 0
        self._count = 0  # returns seen
        self._s = self._s2 = 0.0
        self._sorted: list[float] = []
        self._prev = _nan
        self._peak = -math.inf
        self._peaks: deque[tuple[int, float]] | None = (
            None if drawdown_window is None else deque())
        self._k = 0 if drawdown_window is None else drawdown_window
        self._vetoing = False
        self.var_historical = _nan
        self.var_gaussian = _nan
        self.drawdown = _nan
        name = {"historical": "historical", "gaussian": "Gaussian", "worst": "worst-case"}[method]
        var = f"{name} VaR({level:g})"
        self._veto_dd = Signal(FLAT, signal_confidence, 0.0,
                               f"{VETO_PREFIX}drawdown reached {max_drawdown:g} from the peak")
        self._veto_var = Signal(FLAT, signal_confidence, 0.0,
                                f"{VETO_PREFIX}{var} above {max_var:g}")
        self._reasons = (signal_confidence, f"{REDUCE_PREFIX}{var} above {max_var:g}")
        self._reduce: dict[int, Signal] = {}
        self._clear = Signal(HOLD, 0.0, reason="risk: within limits")
        self._last: Signal | None = None

    def on_bar(self, view: MarketView) -> Signal | None:
        close = view.close
        # drawdown from the peak close
        peaks = self._peaks
        if peaks is None:
            peak = self._peak
            if close > peak:
                peak = self._peak = close
        else:
            n = view.n
            while peaks and peaks[-1][1] <= close:
                peaks.pop()
            peaks.append((n, close))
            if peaks[0][0] <= n - self._k:
                peaks.popleft()
            peak = peaks[0][1]
        dd = self.drawdown = 1.0 - close / peak

        # the return window: ring, running sums, sorted copy
        prev = self._prev
        self._prev = close
        var = _nan
        if prev == prev:  # not the first bar
            r = close / prev - 1.0
            ring, i, w = self._ring, self._i, self._window
            srt = self._sorted
            if self._count >= w:
                old = ring[i]
                del srt[bisect_left(srt, old)]
                self._s += r - old
                self._s2 += r * r - old * old
            else:
                self._count += 1
                self._s += r
                self._s2 += r * r
            insort(srt, r)
            ring[i] = r
            i += 1
            if i == w:
                i = 0
                self._s = _fsum(ring)
                self._s2 = _fsum([v * v for v in ring])
            self._i = i
            if self._count >= w:
                method = self._method
                if method != "gaussian":
                    var = self.var_historical = -quantile_linear(srt, self._q)
                if method != "historical":
                    mean = self._s / w
                    ss = self._s2 - self._s * mean
                    sd = _sqrt(ss / (w - 1)) if ss > 0.0 else 0.0
                    g = self.var_gaussian = self._z * sd - mean
                    var = g if method == "gaussian" or g > var else var

        # decide
        max_dd = self._max_dd
        if max_dd is not None:
            if self._vetoing:
                self._vetoing = dd >= self._release and dd > 0.0
            else:
                self._vetoing = dd >= max_dd
        max_var = self._max_var
        if self._vetoing:
            signal = self._veto_dd
        elif max_var is not None and var > max_var:
            k = int(max_var / var / self._step + 1e-9)
            if k <= 0 or self._action_veto:
                signal = self._veto_var
            else:
                signal = self._reduce.get(k) or self._reduce_signal(k)
        elif self._last is None:
            return None
        else:
            signal = self._clear
        if signal is self._last:
            return None
        self._last = signal
        return signal

    def _reduce_signal(self, k: int) -> Signal:
        confidence, reason = self._reasons
        target = round(k * self._step, 12)
        signal = self._reduce[k] = Signal(HOLD, confidence, target,
                                          f"{reason}: exposure capped at {target:g}")
        return signal
