"""Smart Money Concepts (SMC): market structure, order blocks, fair value gaps, sweeps.

``SmcDetector`` finds the patterns below, bar by bar and causally; ``detect`` runs it over
arrays and returns every detection; ``SmcAgent`` turns detections into signals.

Definitions
-----------
Bars are numbered from 0 in the order they arrive; ``o, h, l, c`` are a bar's open, high,
low and close. A detection is reported *at* the bar whose close makes it known (its
``index``) and may be anchored on an earlier bar (its ``ref``). Nothing uses a bar after
``index``.

Swing high / swing low (``swing_high``, ``swing_low``), with ``n = swing_length``:
    bar ``j`` is a swing high if ``h[j] > h[k]`` for the ``n`` bars before it and
    ``h[j] >= h[k]`` for the ``n`` bars after it (of a run of equal highs, the first is
    the swing). It is confirmed, hence reported, at bar ``j + n`` (``ref = j``, level
    ``h[j]``) and never before. A swing low mirrors it on the lows (``l[j] < `` the ``n``
    before, ``<=`` the ``n`` after). Bar ``j`` needs ``n`` bars before it: ``j >= n``.

Armed swings:
    the most recently confirmed swing high is the one watched for breaks and sweeps (a
    newer swing high replaces it, whatever its level); likewise for swing lows. A swing
    can be broken once and swept once; once broken it can no longer be swept.

Structure (``trend``): 0 (none yet), +1 (bullish) or -1 (bearish).

Bullish break (``bos_bull`` or ``choch_bull``):
    bar ``i`` closes above the armed swing high, ``c[i] > h[j]``, which had not been broken
    yet (``ref = j``, level ``h[j]``). It is a change of character, ``choch_bull``, when the
    structure was bearish (the first break against it), otherwise (bullish or none yet)
    a break of structure, ``bos_bull``. The structure becomes bullish. A bearish break
    (``bos_bear``/``choch_bear``) mirrors it: ``c[i] < l[j]`` of the armed swing low.

Order block (``ob_bull``, ``ob_bear``):
    at a bullish break at bar ``i`` of the swing high at ``j``, the bullish order block is
    the last bearish candle (``c < o``) ``k`` with ``j <= k < i``, the last opposite-colour
    candle before the move that broke structure. It is reported at ``i`` with ``ref = k``
    and zone ``[l[k], h[k]]``. If there is no such candle, no order block forms. The
    bearish order block mirrors it (last bullish candle ``c > o`` since the broken swing
    low). Only the latest order block of each side is active: a new break on the same
    side replaces it (or clears it when it finds no candle), and a change of character
    clears the other side's block. An order block is *with FVG* when a bullish
    (bearish) fair value gap whose first candle is at or after ``k`` formed by bar ``i``.

Order-block retest and failure (``ob_bull_retest``, ``ob_bull_broken``, mirrored ``ob_bear_*``):
    the first bar after ``i`` that trades into an active bullish block, ``l <= h[k]``, ends
    it: ``ob_bull_broken`` if it closes below the zone (``c < l[k]``), else
    ``ob_bull_retest``. A bearish block is entered when ``h >= l[k]``; broken if
    ``c > h[k]``. Reported with ``ref = k`` and the zone.

Fair value gap (``fvg_bull``, ``fvg_bear``):
    three candles ``i-2, i-1, i`` with ``l[i] > h[i-2]`` form a bullish gap, zone
    ``[h[i-2], l[i]]``; with ``h[i] < l[i-2]`` a bearish gap, zone ``[h[i], l[i-2]]``.
    Reported at ``i`` with ``ref = i - 2``. With ``min_gap > 0`` the zone must also be
    wider than ``min_gap * c[i]``.

Fair value gap filled (``fvg_bull_filled``, ``fvg_bear_filled``):
    the first bar after ``i`` that trades through the whole zone: ``l <= h[i-2]`` for a
    bullish gap, ``h >= l[i-2]`` for a bearish one. Same ``ref`` and zone as the gap. Only
    the ``max_open_gaps`` most recent unfilled gaps of each side are followed; an older
    one is forgotten and never reported filled (this keeps the per-bar cost bounded).

Liquidity sweep (``sweep_high``, ``sweep_low``):
    a wick beyond the armed swing that closes back inside: ``h[i] > h[j]`` and
    ``c[i] <= h[j]`` for the armed swing high (buy-side liquidity taken: bearish), and
    ``l[i] < l[j]``, ``c[i] >= l[j]`` for the armed swing low (sell-side taken: bullish).
    ``ref = j``, level as the swing's. A swing that is broken instead is not swept.

Order within one bar (the order of ``detect``'s output): swings (high, low), order-block
retests/failures (bullish, bearish), gap fills (bullish, bearish), new gaps (bullish,
bearish), the bullish break with its order block or the sweep of the swing high, the
bearish break with its order block or the sweep of the swing low.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from pydantic import Field

from sim.agents.base import AgentParams
from sim.messages import FLAT, LONG, SHORT, Signal
from sim.view import MarketView

_INF = math.inf

# Event bits returned by ``SmcDetector.update`` (plain ints: cheap to test per bar).
SWING_HIGH = 1 << 0
SWING_LOW = 1 << 1
BOS_BULL = 1 << 2
BOS_BEAR = 1 << 3
CHOCH_BULL = 1 << 4
CHOCH_BEAR = 1 << 5
OB_BULL = 1 << 6
OB_BEAR = 1 << 7
OB_BULL_RETEST = 1 << 8
OB_BEAR_RETEST = 1 << 9
OB_BULL_BROKEN = 1 << 10
OB_BEAR_BROKEN = 1 << 11
FVG_BULL = 1 << 12
FVG_BEAR = 1 << 13
FVG_BULL_FILLED = 1 << 14
FVG_BEAR_FILLED = 1 << 15
SWEEP_HIGH = 1 << 16
SWEEP_LOW = 1 << 17

KINDS: dict[int, str] = {
    SWING_HIGH: "swing_high", SWING_LOW: "swing_low",
    BOS_BULL: "bos_bull", BOS_BEAR: "bos_bear",
    CHOCH_BULL: "choch_bull", CHOCH_BEAR: "choch_bear",
    OB_BULL: "ob_bull", OB_BEAR: "ob_bear",
    OB_BULL_RETEST: "ob_bull_retest", OB_BEAR_RETEST: "ob_bear_retest",
    OB_BULL_BROKEN: "ob_bull_broken", OB_BEAR_BROKEN: "ob_bear_broken",
    FVG_BULL: "fvg_bull", FVG_BEAR: "fvg_bear",
    FVG_BULL_FILLED: "fvg_bull_filled", FVG_BEAR_FILLED: "fvg_bear_filled",
    SWEEP_HIGH: "sweep_high", SWEEP_LOW: "sweep_low",
}

# Order-block origin, as set in ``SmcDetector.bull_retest`` / ``bear_retest``: bit 1 the block
# was formed by a change of character (else a break of structure), bit 0 it is with FVG.
ORIGIN_CHOCH = 2
ORIGIN_FVG = 1


class Detection(NamedTuple):
    """One detected pattern: known at bar ``index``, anchored on bar ``ref``.

    ``low``/``high`` are the zone (order block, gap) or, for swings, breaks and sweeps,
    both the swing's level.
    """

    index: int  # type: ignore[assignment]  # a field named like tuple.index, by design
    kind: str
    ref: int
    low: float
    high: float


class SmcDetector:
    """The patterns of this module's docstring, found one bar at a time.

    ``update`` returns the bitwise OR of the event bits found at that bar (0 for none).
    Per bar the work is O(``swing_length``) for the swing test plus O(1) for the rest,
    except O(``max_open_gaps``) on a bar that fills a gap or pushes out the gap that set
    the fill level. When ``log`` is a list, every detection is appended to it as a
    ``Detection``.

    After an ``OB_BULL_RETEST`` (``OB_BEAR_RETEST``), ``bull_retest`` (``bear_retest``)
    holds the retested block's origin bits (``ORIGIN_CHOCH | ORIGIN_FVG``). ``trend`` is
    the structure: +1, -1 or 0.
    """

    __slots__ = (
        "_bear_break", "_bear_fill", "_bear_gaps", "_bear_high", "_bear_idx", "_bear_low",
        "_bull_break", "_bull_fill", "_bull_gaps", "_bull_high", "_bull_idx", "_bull_low",
        "_first_swing_bar", "_hs", "_i", "_last_bear_fvg", "_last_bull_fvg", "_ls",
        "_max_gaps", "_min_gap", "_n", "_ob_bear_bottom", "_ob_bear_origin", "_ob_bear_ref",
        "_ob_bear_top", "_ob_bull_bottom", "_ob_bull_origin", "_ob_bull_ref", "_ob_bull_top",
        "_sh_idx", "_sl_idx", "_sweep_high", "_sweep_low", "bear_retest", "bull_retest",
        "log", "trend",
    )

    def __init__(
        self,
        swing_length: int = 3,
        min_gap: float = 0.0,
        max_open_gaps: int = 16,
        log: list[Detection] | None = None,
    ) -> None:
        if swing_length < 1:
            raise ValueError(f"swing_length must be >= 1, got {swing_length}")
        if not min_gap >= 0:
            raise ValueError(f"min_gap must be >= 0, got {min_gap}")
        if max_open_gaps < 1:
            raise ValueError(f"max_open_gaps must be >= 1, got {max_open_gaps}")
        n = swing_length
        self._n = n
        self._min_gap = float(min_gap)
        self._max_gaps = max_open_gaps
        self.log = log
        self._i = -1
        self._first_swing_bar = 2 * n
        self._hs = [0.0] * (2 * n + 1)  # the last 2n + 1 highs and lows, oldest first
        self._ls = [0.0] * (2 * n + 1)
        self.trend = 0
        # armed swings: levels a close must pass to break them, a wick to sweep them
        self._sh_idx = -1
        self._sl_idx = -1
        self._bull_break = _INF
        self._sweep_high = _INF
        self._bear_break = -_INF
        self._sweep_low = -_INF
        # the last bearish / bullish candle (order-block candidates)
        self._bear_idx = self._bull_idx = -1
        self._bear_low = self._bear_high = self._bull_low = self._bull_high = math.nan
        # active order blocks; none: top = -inf (bullish), bottom = +inf (bearish)
        self._ob_bull_top = -_INF
        self._ob_bull_bottom = _INF
        self._ob_bull_ref = -1
        self._ob_bull_origin = 0
        self._ob_bear_top = -_INF
        self._ob_bear_bottom = _INF
        self._ob_bear_ref = -1
        self._ob_bear_origin = 0
        self.bull_retest = 0
        self.bear_retest = 0
        # open gaps as (bottom, top, ref); fill levels: highest bullish bottom, lowest
        # bearish top (-inf / +inf when none)
        self._bull_gaps: list[tuple[float, float, int]] = []
        self._bear_gaps: list[tuple[float, float, int]] = []
        self._bull_fill = -_INF
        self._bear_fill = _INF
        self._last_bull_fvg = -3  # ref (first candle) of the latest gap of each side
        self._last_bear_fvg = -3

    def update(self, open_: float, high: float, low: float, close: float) -> int:
        """Take the bar that just closed; return the event bits found at it."""
        i = self._i + 1
        self._i = i
        hs, ls = self._hs, self._ls
        hs.append(high)
        del hs[0]
        ls.append(low)
        del ls[0]
        log = self.log
        events = 0

        # 1. swings: is bar i - n a fractal now that n bars follow it?
        if i >= self._first_swing_bar:
            n = self._n
            x = hs[n]
            if x >= hs[n + 1] and x >= max(hs[n + 1:]) and x > max(hs[:n]):
                events = SWING_HIGH
                self._sh_idx = i - n
                self._bull_break = self._sweep_high = x
                if log is not None:
                    log.append(Detection(i, "swing_high", i - n, x, x))
            x = ls[n]
            if x <= ls[n + 1] and x <= min(ls[n + 1:]) and x < min(ls[:n]):
                events |= SWING_LOW
                self._sl_idx = i - n
                self._bear_break = self._sweep_low = x
                if log is not None:
                    log.append(Detection(i, "swing_low", i - n, x, x))

        # 2. order-block retests and failures (blocks formed before this bar)
        if low <= self._ob_bull_top:
            bottom, top = self._ob_bull_bottom, self._ob_bull_top
            self._ob_bull_top = -_INF
            if close < bottom:
                events |= OB_BULL_BROKEN
                kind = "ob_bull_broken"
            else:
                events |= OB_BULL_RETEST
                self.bull_retest = self._ob_bull_origin
                kind = "ob_bull_retest"
            if log is not None:
                log.append(Detection(i, kind, self._ob_bull_ref, bottom, top))
        if high >= self._ob_bear_bottom:
            bottom, top = self._ob_bear_bottom, self._ob_bear_top
            self._ob_bear_bottom = _INF
            if close > top:
                events |= OB_BEAR_BROKEN
                kind = "ob_bear_broken"
            else:
                events |= OB_BEAR_RETEST
                self.bear_retest = self._ob_bear_origin
                kind = "ob_bear_retest"
            if log is not None:
                log.append(Detection(i, kind, self._ob_bear_ref, bottom, top))

        # 3. fills of open gaps
        if low <= self._bull_fill:
            events |= FVG_BULL_FILLED
            self._bull_fill = self._fill(self._bull_gaps, True, low, i)
        if high >= self._bear_fill:
            events |= FVG_BEAR_FILLED
            self._bear_fill = self._fill(self._bear_gaps, False, high, i)

        # 4. new gaps, candles i-2 .. i
        if i >= 2:
            h2 = hs[-3]
            if low - h2 > self._min_gap * close:
                events |= FVG_BULL
                gaps = self._bull_gaps
                gaps.append((h2, low, i - 2))
                if h2 > self._bull_fill:
                    self._bull_fill = h2
                if len(gaps) > self._max_gaps and gaps.pop(0)[0] == self._bull_fill:
                    self._bull_fill = max(g[0] for g in gaps)
                self._last_bull_fvg = i - 2
                if log is not None:
                    log.append(Detection(i, "fvg_bull", i - 2, h2, low))
            l2 = ls[-3]
            if l2 - high > self._min_gap * close:
                events |= FVG_BEAR
                gaps = self._bear_gaps
                gaps.append((high, l2, i - 2))
                if l2 < self._bear_fill:
                    self._bear_fill = l2
                if len(gaps) > self._max_gaps and gaps.pop(0)[1] == self._bear_fill:
                    self._bear_fill = min(g[1] for g in gaps)
                self._last_bear_fvg = i - 2
                if log is not None:
                    log.append(Detection(i, "fvg_bear", i - 2, high, l2))

        # 5. structure: breaks (with their order blocks) and sweeps
        if close > self._bull_break:
            level, j = self._bull_break, self._sh_idx
            self._bull_break = self._sweep_high = _INF
            choch = self.trend == -1
            self.trend = 1
            events |= CHOCH_BULL if choch else BOS_BULL
            if log is not None:
                log.append(Detection(i, "choch_bull" if choch else "bos_bull", j, level, level))
            k = self._bear_idx
            if k >= j:
                events |= OB_BULL
                self._ob_bull_bottom = self._bear_low
                self._ob_bull_top = self._bear_high
                self._ob_bull_ref = k
                self._ob_bull_origin = ((ORIGIN_CHOCH if choch else 0)
                                        | (ORIGIN_FVG if self._last_bull_fvg >= k else 0))
                if log is not None:
                    log.append(Detection(i, "ob_bull", k, self._bear_low, self._bear_high))
            else:
                self._ob_bull_top = -_INF
            if choch:
                self._ob_bear_bottom = _INF
        elif high > self._sweep_high:
            level = self._sweep_high
            self._sweep_high = _INF
            events |= SWEEP_HIGH
            if log is not None:
                log.append(Detection(i, "sweep_high", self._sh_idx, level, level))
        if close < self._bear_break:
            level, j = self._bear_break, self._sl_idx
            self._bear_break = self._sweep_low = -_INF
            choch = self.trend == 1
            self.trend = -1
            events |= CHOCH_BEAR if choch else BOS_BEAR
            if log is not None:
                log.append(Detection(i, "choch_bear" if choch else "bos_bear", j, level, level))
            k = self._bull_idx
            if k >= j:
                events |= OB_BEAR
                self._ob_bear_bottom = self._bull_low
                self._ob_bear_top = self._bull_high
                self._ob_bear_ref = k
                self._ob_bear_origin = ((ORIGIN_CHOCH if choch else 0)
                                        | (ORIGIN_FVG if self._last_bear_fvg >= k else 0))
                if log is not None:
                    log.append(Detection(i, "ob_bear", k, self._bull_low, self._bull_high))
            else:
                self._ob_bear_bottom = _INF
            if choch:
                self._ob_bull_top = -_INF
        elif low < self._sweep_low:
            level = self._sweep_low
            self._sweep_low = -_INF
            events |= SWEEP_LOW
            if log is not None:
                log.append(Detection(i, "sweep_low", self._sl_idx, level, level))

        # 6. candle colour: order-block candidates for later breaks
        if close < open_:
            self._bear_idx = i
            self._bear_low = low
            self._bear_high = high
        elif close > open_:
            self._bull_idx = i
            self._bull_low = low
            self._bull_high = high
        return events

    def _fill(
        self, gaps: list[tuple[float, float, int]], bullish: bool, price: float, i: int
    ) -> float:
        """Drop the gaps ``price`` trades through (logging them); return the new fill level."""
        log = self.log
        kept = []
        for gap in gaps:
            if (price <= gap[0]) if bullish else (price >= gap[1]):
                if log is not None:
                    kind = "fvg_bull_filled" if bullish else "fvg_bear_filled"
                    log.append(Detection(i, kind, gap[2], gap[0], gap[1]))
            else:
                kept.append(gap)
        gaps[:] = kept
        if bullish:
            return max(g[0] for g in kept) if kept else -_INF
        return min(g[1] for g in kept) if kept else _INF


def detect(
    open_: np.ndarray | list[float],
    high: np.ndarray | list[float],
    low: np.ndarray | list[float],
    close: np.ndarray | list[float],
    *,
    swing_length: int = 3,
    min_gap: float = 0.0,
    max_open_gaps: int = 16,
) -> list[Detection]:
    """Every detection over a whole series, in the order the bars reveal them."""
    log: list[Detection] = []
    detector = SmcDetector(swing_length, min_gap, max_open_gaps, log=log)
    update = detector.update
    for o, h, lo, c in zip(
        np.asarray(open_, float).tolist(), np.asarray(high, float).tolist(),
        np.asarray(low, float).tolist(), np.asarray(close, float).tolist(), strict=True,
    ):
        update(o, h, lo, c)
    return log


# -- the agent ---------------------------------------------------------------------------------
_BREAKS = BOS_BULL | BOS_BEAR | CHOCH_BULL | CHOCH_BEAR
_RETESTS = OB_BULL_RETEST | OB_BEAR_RETEST
_FAILURES = OB_BULL_BROKEN | OB_BEAR_BROKEN
_SWEEPS = SWEEP_HIGH | SWEEP_LOW
_SIGNALLING = _BREAKS | _RETESTS | _FAILURES | _SWEEPS


def _retest_signals(side: str) -> list[Signal]:
    """Indexed by order-block origin bits (ORIGIN_CHOCH | ORIGIN_FVG)."""
    s = LONG if side == "bullish" else SHORT
    out = []
    for origin in range(4):
        base, name = (0.8, "CHoCH") if origin & ORIGIN_CHOCH else (0.7, "BOS")
        fvg = origin & ORIGIN_FVG
        out.append(Signal(s, round(base + (0.1 if fvg else 0.0), 10),
                          reason=f"{side} {name} + order-block retest" + (" + FVG" if fvg else "")))
    return out


class SmcParams(AgentParams):
    swing_length: int = Field(
        3, ge=1, le=50, description="bars each side of a swing (fractal); confirmed that late"
    )
    min_gap: float = Field(
        0.0, ge=0, description="least fair-value-gap width, as a fraction of the close"
    )
    max_open_gaps: int = Field(
        16, ge=1, le=1000, description="unfilled gaps followed per side (older ones dropped)"
    )


class SmcAgent:
    """Signals from the Smart Money Concepts patterns of ``SmcDetector``.

    At each bar, the highest-priority pattern detected at that bar sets the signal; a bar
    with none leaves the last signal standing. Bullish patterns map to LONG, bearish to
    SHORT (mirror images, same confidence):

    ============================================================  ======  ==========
    pattern at the bar (priority, highest first)                  side    confidence
    ============================================================  ======  ==========
    1. change of character, ``choch_bull``                        LONG    0.6
    2. break of structure, ``bos_bull``                           LONG    0.5
    3. retest of the bullish order block formed by a CHoCH        LONG    0.8
       ... formed by a BOS                                        LONG    0.7
       ... either, with FVG (the impulse left a bullish gap)      LONG    +0.1
    4. bullish order block broken (close below its zone)          FLAT    0.5
    5. sweep of the swing low with bullish structure              LONG    0.6
       ... with bearish or no structure yet                       LONG    0.4
    ============================================================  ======  ==========

    Within one priority, a bullish and a bearish pattern at the same bar resolve to the
    structure's side (retests), or to no signal (sweeps on both sides: an outside bar).
    Within the breaks, CHoCH outranks BOS, and bullish is checked before bearish (the two
    cannot both happen at one bar). Fair value gaps and their fills signal nothing on
    their own: they are the order blocks' FVG confluence. Each signal's ``reason`` names
    the pattern. Signals are built once; one is returned only when it differs from the
    last. The agent abstains until the first pattern.
    """

    Params = SmcParams
    __slots__ = ("_bear_retest", "_bos_bear", "_bos_bull", "_broken_bear", "_broken_bull",
                 "_bull_retest", "_choch_bear", "_choch_bull", "_last", "_sweep_high",
                 "_sweep_low", "detector")

    def __init__(self, swing_length: int = 3, min_gap: float = 0.0,
                 max_open_gaps: int = 16) -> None:
        self.detector = SmcDetector(swing_length, min_gap, max_open_gaps)
        self._choch_bull = Signal(LONG, 0.6, reason="bullish CHoCH")
        self._choch_bear = Signal(SHORT, 0.6, reason="bearish CHoCH")
        self._bos_bull = Signal(LONG, 0.5, reason="bullish BOS")
        self._bos_bear = Signal(SHORT, 0.5, reason="bearish BOS")
        self._bull_retest = _retest_signals("bullish")
        self._bear_retest = _retest_signals("bearish")
        self._broken_bull = Signal(FLAT, 0.5, reason="bullish order block broken")
        self._broken_bear = Signal(FLAT, 0.5, reason="bearish order block broken")
        # indexed by the structure, trend + 1: bearish, none, bullish
        self._sweep_low = (
            Signal(LONG, 0.4, reason="sell-side liquidity sweep against bearish structure"),
            Signal(LONG, 0.4, reason="sell-side liquidity sweep"),
            Signal(LONG, 0.6, reason="sell-side liquidity sweep with bullish structure"),
        )
        self._sweep_high = (
            Signal(SHORT, 0.6, reason="buy-side liquidity sweep with bearish structure"),
            Signal(SHORT, 0.4, reason="buy-side liquidity sweep"),
            Signal(SHORT, 0.4, reason="buy-side liquidity sweep against bullish structure"),
        )
        self._last: Signal | None = None

    def on_bar(self, view: MarketView) -> Signal | None:
        det = self.detector
        ev = det.update(view.open, view.high, view.low, view.close)
        if not ev & _SIGNALLING:
            return None
        signal: Signal
        if ev & _BREAKS:
            if ev & CHOCH_BULL:
                signal = self._choch_bull
            elif ev & CHOCH_BEAR:
                signal = self._choch_bear
            elif ev & BOS_BULL:
                signal = self._bos_bull
            else:
                signal = self._bos_bear
        elif ev & _RETESTS:
            retests = ev & _RETESTS
            # both blocks at one bar: the structure's side
            bullish = det.trend == 1 if retests == _RETESTS else retests == OB_BULL_RETEST
            if bullish:
                signal = self._bull_retest[det.bull_retest]
            else:
                signal = self._bear_retest[det.bear_retest]
        elif ev & _FAILURES:
            signal = self._broken_bull if ev & OB_BULL_BROKEN else self._broken_bear
        else:
            sweeps = ev & _SWEEPS
            if sweeps == SWEEP_LOW:
                signal = self._sweep_low[det.trend + 1]
            elif sweeps == SWEEP_HIGH:
                signal = self._sweep_high[det.trend + 1]
            else:
                return None  # both sides swept: an outside bar says nothing
        if signal is self._last:
            return None
        self._last = signal
        return signal
