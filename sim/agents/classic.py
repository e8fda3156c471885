"""Classic technical agents: EMA crossover, Donchian breakout, Bollinger-band reversion, RSI
and momentum (rate of change).

Shared conventions, as in ``sim.agents.sma`` and ``sim.agents.zscore``:

- An agent sees the bar that just closed and nothing later. Every indicator is updated
  in O(1) (amortised) per bar by the classes in ``sim.indicators``.
- An agent abstains (returns None) until its indicators are warm. From then on it
  returns a ``Signal`` only when its view changes, and None while the last one stands.
- Every signal it can give is built once, at construction. Where confidence varies it is
  discretised to ``confidence_step`` (rounded to the nearest step, never below one
  step), so a signal is re-issued only when the view moved by at least a step.
- FLAT views are held with confidence 1.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from sim.agents import batch_forms
from sim.agents import indicator_series as series
from sim.agents.base import AgentParams
from sim.agents.batch import SignalChanges
from sim.indicators import (
    EMA,
    RateOfChange,
    RollingMax,
    RollingMeanStd,
    RollingMin,
    WilderRSI,
)
from sim.messages import FLAT, LONG, SHORT, Side, Signal
from sim.view import BarSource, MarketView


def _steps(confidence_step: float) -> int:
    if not 0 < confidence_step <= 1:
        raise ValueError(f"confidence_step must be in (0, 1], got {confidence_step}")
    return round(1 / confidence_step)


def _ladder(side: Side, steps: int, reason: str) -> list[Signal]:
    """``ladder[k]`` is ``Signal(side, k / steps)`` for k in 1..steps; ``ladder[0]`` is
    ``ladder[1]`` (the same object: confidence never falls below one step)."""
    ladder = [Signal(side, min(1.0, k / steps), reason=reason) for k in range(1, steps + 1)]
    return [ladder[0], *ladder]


# -- EMA crossover ---------------------------------------------------------------------------
class EmaCrossoverParams(AgentParams):
    fast: int = Field(12, ge=1, description="span of the fast EMA in bars (alpha = 2/(span+1))")
    slow: int = Field(26, ge=2, description="span of the slow EMA in bars")
    long_only: bool = Field(False, description="FLAT instead of SHORT below the cross")

    @model_validator(mode="after")
    def _ordered(self) -> EmaCrossoverParams:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be below slow ({self.slow})")
        return self


class EmaCrossover:
    """LONG while EMA(fast) > EMA(slow) of the closes, otherwise SHORT (FLAT if ``long_only``).

    Both averages are ``sim.indicators.EMA``: seeded with the first close, smoothing
    ``2 / (span + 1)``. The agent abstains until ``slow`` bars have been seen. It signals on
    a cross only, with confidence 1.
    """

    Params = EmaCrossoverParams
    indicators = staticmethod(series.ema_crossover)  # report time only (no per-bar cost)
    __slots__ = ("_down", "_fast", "_last", "_signals", "_slow")

    def __init__(self, fast: int = 12, slow: int = 26, long_only: bool = False) -> None:
        if not 1 <= fast < slow:
            raise ValueError(f"need 1 <= fast < slow, got fast={fast}, slow={slow}")
        self._fast = EMA(fast)
        self._slow = EMA(slow)
        self._down = FLAT if long_only else SHORT
        self._signals = {
            LONG: Signal(LONG, 1.0, reason=f"EMA cross: EMA({fast}) above EMA({slow})"),
            self._down: Signal(self._down, 1.0,
                               reason=f"EMA cross: EMA({fast}) at or below EMA({slow})"),
        }
        self._last: Side | None = None

    def batch_signals(self, bars: BarSource) -> SignalChanges:
        """Every signal ``on_bar`` would return over ``bars``, at once (``sim.agents.batch``)."""
        return batch_forms.ema_crossover(self, bars)

    def on_bar(self, view: MarketView) -> Signal | None:
        close = view.close
        fast = self._fast.update(close)
        slow_ema = self._slow
        slow = slow_ema.update(close)
        if not slow_ema.ready:
            return None
        side = LONG if fast > slow else self._down
        if side is self._last:
            return None
        self._last = side
        return self._signals[side]


# -- Donchian breakout -----------------------------------------------------------------------
class DonchianBreakoutParams(AgentParams):
    window: int = Field(20, ge=1, description="bars in the entry channel (before the current)")
    exit_window: int = Field(
        10, ge=0,
        description="bars in the exit channel; 0: hold until the opposite breakout",
    )
    long_only: bool = Field(False, description="FLAT instead of SHORT on a downside breakout")

    @model_validator(mode="after")
    def _ordered(self) -> DonchianBreakoutParams:
        if self.exit_window > self.window:
            raise ValueError(
                f"exit_window ({self.exit_window}) must not exceed window ({self.window})"
            )
        return self


class DonchianBreakout:
    """Trade breakouts of the Donchian channel of the *previous* bars (the current excluded).

    With ``upper`` the highest high and ``lower`` the lowest low of the ``window`` bars
    before the current one:

    - close > upper: LONG; close < lower: SHORT (FLAT if ``long_only``);
    - otherwise, with ``exit_window`` > 0, a LONG turns FLAT when the close falls below the
      lowest low of the previous ``exit_window`` bars, and a SHORT when it rises above their
      highest high (turtle-style exits); with ``exit_window`` = 0 a position stands until
      the opposite breakout;
    - otherwise the last signal stands. The first view, when nothing has broken out yet,
      is FLAT.

    The channel extremes are monotonic-deque rolling max/min (amortised O(1)). The agent
    abstains until ``window`` bars precede the current one. Confidence is always 1.
    """

    Params = DonchianBreakoutParams
    indicators = staticmethod(series.donchian_breakout)  # report time only (no per-bar cost)
    __slots__ = ("_count", "_down", "_exit_hi", "_exit_lo", "_flat", "_hi", "_last", "_lo",
                 "_long", "_short", "_window", "_x_long", "_x_short")

    def __init__(self, window: int = 20, exit_window: int = 10, long_only: bool = False) -> None:
        if window < 1 or not 0 <= exit_window <= window:
            raise ValueError(
                f"need window >= 1 and 0 <= exit_window <= window, got {window}, {exit_window}"
            )
        self._window = window
        self._hi = RollingMax(window)
        self._lo = RollingMin(window)
        self._exit_hi = RollingMax(exit_window) if exit_window else None
        self._exit_lo = RollingMin(exit_window) if exit_window else None
        self._count = 0
        self._down = FLAT if long_only else SHORT
        self._long = Signal(LONG, 1.0,
                            reason=f"Donchian breakout: close above the {window}-bar high")
        self._short = Signal(self._down, 1.0,
                             reason=f"Donchian breakout: close below the {window}-bar low")
        self._flat = Signal(FLAT, 1.0, reason="Donchian: inside the channel, no breakout yet")
        self._x_long = Signal(FLAT, 1.0,
                              reason=f"Donchian exit: close below the {exit_window}-bar low")
        self._x_short = Signal(FLAT, 1.0,
                               reason=f"Donchian exit: close above the {exit_window}-bar high")
        self._last: Signal | None = None

    def batch_signals(self, bars: BarSource) -> SignalChanges:
        """Every signal ``on_bar`` would return over ``bars``, at once (``sim.agents.batch``)."""
        return batch_forms.donchian_breakout(self, bars)

    def on_bar(self, view: MarketView) -> Signal | None:
        high, low, close = view.high, view.low, view.close
        hi, lo, exit_hi, exit_lo = self._hi, self._lo, self._exit_hi, self._exit_lo
        signal: Signal | None = None
        if self._count >= self._window:  # the channels hold the previous bars only
            last = self._last
            if close > hi.value:
                signal = self._long
            elif close < lo.value:
                signal = self._short
            elif last is None:
                signal = self._flat
            elif exit_lo is not None and last is self._long and close < exit_lo.value:
                signal = self._x_long
            elif exit_hi is not None and last is self._short and close > exit_hi.value:
                signal = self._x_short
            if signal is last:
                signal = None
            elif signal is not None:
                self._last = signal
        else:
            self._count += 1
        hi.update(high)
        lo.update(low)
        if exit_hi is not None:
            exit_hi.update(high)
            exit_lo.update(low)  # type: ignore[union-attr]
        return signal


# -- Bollinger-band mean reversion -------------------------------------------------------------
class BollingerReversionParams(AgentParams):
    window: int = Field(20, ge=2, description="bars in the middle band (SMA) and deviation")
    width: float = Field(2.0, gt=0, description="band half-width in standard deviations (k)")
    confidence_step: float = Field(0.1, gt=0, le=1, description="confidence resolution")


class BollingerReversion:
    """Fade closes outside the Bollinger bands; exit at the middle band.

    Over the last ``window`` closes (the current included): ``mid`` is their mean, ``sd``
    their population standard deviation, and the bands are ``mid ± width * sd``.

    - close < lower band: LONG; close > upper band: SHORT;
    - a LONG turns FLAT once the close is at or above ``mid``; a SHORT once at or below;
    - otherwise the last signal stands. The first view, inside the bands, is FLAT.

    Confidence outside the bands is ``min(1, depth / 2)`` where
    ``depth = |close - mid| / (width * sd)`` (1 at a band): 0.5 just outside a band, 1 at
    twice the band's distance from ``mid``; discretised to ``confidence_step``. It is
    updated only while the close is outside the band; back inside, the last signal stands
    until the exit. A window with ``sd = 0`` has no bands: no entry. The agent abstains
    until ``window`` closes have been seen.
    """

    Params = BollingerReversionParams
    indicators = staticmethod(series.bollinger_reversion)  # report time only (no per-bar cost)
    __slots__ = ("_bands", "_flat", "_inside", "_last", "_long", "_scale", "_short", "_steps",
                 "_width")

    def __init__(self, window: int = 20, width: float = 2.0, confidence_step: float = 0.1) -> None:
        if not width > 0:
            raise ValueError(f"width must be > 0, got {width}")
        self._bands = RollingMeanStd(window)
        self._width = width
        steps = _steps(confidence_step)
        self._steps = steps
        self._scale = steps / 2.0  # depth -> confidence in steps
        self._long = _ladder(LONG, steps, f"Bollinger: close below the lower band ({width} sd)")
        self._short = _ladder(SHORT, steps, f"Bollinger: close above the upper band ({width} sd)")
        self._flat = Signal(FLAT, 1.0, reason="Bollinger: back at the middle band")
        self._inside = Signal(FLAT, 1.0, reason="Bollinger: inside the bands")
        self._last: Signal | None = None

    def batch_signals(self, bars: BarSource) -> SignalChanges:
        """Every signal ``on_bar`` would return over ``bars``, at once (``sim.agents.batch``)."""
        return batch_forms.bollinger_reversion(self, bars)

    def on_bar(self, view: MarketView) -> Signal | None:
        close = view.close
        bands = self._bands
        bands.update(close)
        if not bands.ready:
            return None
        mid = bands.mean
        band = self._width * bands.std
        dev = close - mid
        last = self._last
        if band > 0.0 and (dev > band or -dev > band):
            steps = self._steps
            k = round((dev if dev > 0.0 else -dev) / band * self._scale)
            if k > steps:
                k = steps
            signal = self._short[k] if dev > 0.0 else self._long[k]
        elif last is None:
            signal = self._inside
        else:
            held = last.side
            if held is FLAT or (held is LONG and dev < 0.0) or (held is SHORT and dev > 0.0):
                return None  # flat already, or not back to the middle band yet
            signal = self._flat
        if signal is last:
            return None
        self._last = signal
        return signal


# -- RSI ---------------------------------------------------------------------------------------
class RsiParams(AgentParams):
    period: int = Field(14, ge=1, description="price changes in Wilder's smoothing")
    oversold: float = Field(30.0, gt=0, lt=100, description="RSI below which to go LONG")
    overbought: float = Field(70.0, gt=0, lt=100, description="RSI above which to go SHORT")
    exit: float = Field(50.0, gt=0, lt=100, description="RSI at which a position goes FLAT")
    confidence_step: float = Field(0.1, gt=0, le=1, description="confidence resolution")

    @model_validator(mode="after")
    def _ordered(self) -> RsiParams:
        if not self.oversold < self.exit < self.overbought:
            raise ValueError(
                f"need oversold ({self.oversold}) < exit ({self.exit}) < "
                f"overbought ({self.overbought})"
            )
        return self


class Rsi:
    """RSI mean reversion, with Wilder's smoothing (``sim.indicators.WilderRSI``).

    - RSI < oversold: LONG; RSI > overbought: SHORT;
    - a LONG turns FLAT once RSI >= ``exit``; a SHORT once RSI <= ``exit``;
    - otherwise the last signal stands. The first view, between the thresholds, is FLAT.

    Confidence beyond a threshold grows linearly from 0.5 at the threshold to 1 at the
    extreme: LONG ``0.5 + 0.5 * (oversold - RSI) / oversold``, SHORT
    ``0.5 + 0.5 * (RSI - overbought) / (100 - overbought)``, discretised to
    ``confidence_step``. It is updated only while beyond the threshold. The agent abstains
    until ``period`` changes (``period + 1`` closes) have been seen.
    """

    Params = RsiParams
    indicators = staticmethod(series.rsi)  # report time only (no per-bar cost)
    __slots__ = ("_exit", "_flat", "_inside", "_last", "_long", "_long_scale", "_overbought",
                 "_oversold", "_rsi", "_short", "_short_scale", "_steps")

    def __init__(
        self,
        period: int = 14,
        oversold: float = 30.0,
        overbought: float = 70.0,
        exit: float = 50.0,
        confidence_step: float = 0.1,
    ) -> None:
        if not 0 < oversold < exit < overbought < 100:
            raise ValueError(
                "need 0 < oversold < exit < overbought < 100, got "
                f"{oversold}, {exit}, {overbought}"
            )
        self._rsi = WilderRSI(period)
        self._oversold = oversold
        self._overbought = overbought
        self._exit = exit
        steps = _steps(confidence_step)
        self._steps = steps
        self._long_scale = 0.5 * steps / oversold
        self._short_scale = 0.5 * steps / (100.0 - overbought)
        self._long = _ladder(LONG, steps, f"RSI({period}) below {oversold:g}: oversold")
        self._short = _ladder(SHORT, steps, f"RSI({period}) above {overbought:g}: overbought")
        self._flat = Signal(FLAT, 1.0, reason=f"RSI({period}) back to {exit:g}")
        self._inside = Signal(FLAT, 1.0, reason=f"RSI({period}) between the thresholds")
        self._last: Signal | None = None

    def batch_signals(self, bars: BarSource) -> SignalChanges:
        """Every signal ``on_bar`` would return over ``bars``, at once (``sim.agents.batch``)."""
        return batch_forms.rsi(self, bars)

    def on_bar(self, view: MarketView) -> Signal | None:
        rsi_ind = self._rsi
        rsi = rsi_ind.update(view.close)
        if not rsi_ind.ready:
            return None
        last = self._last
        if rsi < self._oversold:
            steps = self._steps
            k = round(0.5 * steps + (self._oversold - rsi) * self._long_scale)
            signal = self._long[steps if k > steps else k]
        elif rsi > self._overbought:
            steps = self._steps
            k = round(0.5 * steps + (rsi - self._overbought) * self._short_scale)
            signal = self._short[steps if k > steps else k]
        elif last is None:
            signal = self._inside
        else:
            held = last.side
            if held is FLAT or (held is LONG and rsi < self._exit) or (
                held is SHORT and rsi > self._exit
            ):
                return None  # flat already, or not back to the exit level yet
            signal = self._flat
        if signal is last:
            return None
        self._last = signal
        return signal


# -- Momentum (rate of change) -----------------------------------------------------------------
class MomentumParams(AgentParams):
    window: int = Field(20, ge=1, description="bars back the rate of change looks")
    threshold: float = Field(
        0.0, ge=0, description="|ROC| (a fraction: 0.01 = 1%) needed to take a side"
    )
    saturation: float = Field(0.05, gt=0, description="|ROC| at which confidence reaches 1")
    confidence_step: float = Field(0.1, gt=0, le=1, description="confidence resolution")
    long_only: bool = Field(False, description="FLAT instead of SHORT on negative momentum")

    @model_validator(mode="after")
    def _ordered(self) -> MomentumParams:
        if self.threshold >= self.saturation:
            raise ValueError(
                f"threshold ({self.threshold}) must be below saturation ({self.saturation})"
            )
        return self


class Momentum:
    """Follow the rate of change ``ROC = close_t / close_{t-window} - 1``.

    ROC > threshold: LONG; ROC < -threshold: SHORT (FLAT if ``long_only``); otherwise
    FLAT. Confidence is ``min(1, |ROC| / saturation)``, discretised to ``confidence_step``
    (at least one step). The agent abstains until ``window + 1`` closes have been seen.
    """

    Params = MomentumParams
    indicators = staticmethod(series.momentum)  # report time only (no per-bar cost)
    __slots__ = ("_down", "_flat", "_last", "_long", "_roc", "_scale", "_steps", "_threshold")

    def __init__(
        self,
        window: int = 20,
        threshold: float = 0.0,
        saturation: float = 0.05,
        confidence_step: float = 0.1,
        long_only: bool = False,
    ) -> None:
        if not 0 <= threshold < saturation:
            raise ValueError(
                f"need 0 <= threshold < saturation, got {threshold}, {saturation}"
            )
        self._roc = RateOfChange(window)
        self._threshold = threshold
        steps = _steps(confidence_step)
        self._steps = steps
        self._scale = steps / saturation
        self._long = _ladder(LONG, steps, f"momentum: {window}-bar rate of change up")
        if long_only:
            self._down = [Signal(FLAT, 1.0, reason=f"momentum: {window}-bar rate of change down")
                          ] * (steps + 1)
        else:
            self._down = _ladder(SHORT, steps, f"momentum: {window}-bar rate of change down")
        self._flat = Signal(FLAT, 1.0, reason=f"momentum: {window}-bar rate of change flat")
        self._last: Signal | None = None

    def batch_signals(self, bars: BarSource) -> SignalChanges:
        """Every signal ``on_bar`` would return over ``bars``, at once (``sim.agents.batch``)."""
        return batch_forms.momentum(self, bars)

    def on_bar(self, view: MarketView) -> Signal | None:
        roc_ind = self._roc
        roc = roc_ind.update(view.close)
        if not roc_ind.ready:
            return None
        threshold = self._threshold
        if roc > threshold:
            steps = self._steps
            k = round(roc * self._scale)
            signal = self._long[steps if k > steps else k]
        elif roc < -threshold:
            steps = self._steps
            k = round(-roc * self._scale)
            signal = self._down[steps if k > steps else k]
        else:
            signal = self._flat
        if signal is self._last:
            return None
        self._last = signal
        return signal
