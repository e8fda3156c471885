"""Policy: the "how much". A decision becomes a target exposure, then an order quantity.

Target exposure is a signed fraction of equity (1.0 = a position worth the whole equity).
The policy acts on a decision only when its target differs from the last target it acted
on, so a standing decision does not churn the book as prices drift, and HOLD keeps
whatever is held.

Sizing methods (``sizing``), each giving a size >= 0 for the decided side:

* ``fixed_fraction`` -- ``exposure``; times the decision's confidence when
  ``scale_by_confidence``.
* ``confidence_exponential`` -- the exponential normalisation of confidence ``c`` in [0, 1]
  into a fund percentage: ``exposure * (exp(k c) - 1) / (exp(k) - 1)`` with
  ``k = exp_k``. Convex: weak agreement buys little, strong agreement approaches
  ``exposure``; ``k -> 0`` is linear in ``c``.
* ``volatility_target`` -- ``target_volatility / realised volatility``: the realised
  volatility is the sample standard deviation (ddof 1) of the last ``vol_lookback``
  close-to-close log returns, annualised with the bar interval the view has seen
  (``sqrt(365 days / interval)``: crypto trades every day of the year). It reads only
  bars up to the decision's close (no lookahead). With fewer than ``vol_lookback``
  returns, or zero volatility, there is nothing to size on: the decision is left alone
  (None), as HOLD would be.
* ``kelly`` -- the Kelly fraction for a bet won with probability ``p`` = the decision's
  confidence and paying ``payoff_ratio`` (b) per unit risked: ``f* = p - (1 - p) / b``,
  scaled by ``kelly_fraction`` (half-Kelly is 0.5) and capped at ``kelly_cap``. An edge
  that is not positive sizes to 0 (flat).

Then a decision's own ``target`` (from an agent or the risk manager's reduce) caps the
size (under ``fixed_fraction`` it caps ``exposure``, before the confidence scaling);
``max_leverage`` caps ``|exposure|``; a SHORT without ``allow_short`` is flat. At order
time, a trade worth ``min_notional`` or less, or of fewer than ``min_quantity`` units, is
not made.

Sizing never turns a decision into a position on the other side: the position an order
aims at is ``target x equity / price``, and at equity <= 0 (an account that lost more
than it had: fees, a perpetual gapping through its liquidation price) there is nothing
to size from, so it aims at flat: an order can then only reduce. ``inverted`` is the
invariant the engine holds every decision's order to (``InvertedOrderError`` stops the
run if it ever fails).

Presets (``PRESETS``) fill every setting a scenario does not give explicitly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from sim.messages import FLAT, HOLD, LONG, SHORT, Side
from sim.view import MarketView

SIZINGS = ("fixed_fraction", "confidence_exponential", "volatility_target", "kelly")
YEAR_NS = 365 * 86_400 * 10**9  # crypto trades 365 days a year

# Named starting points; a scenario's explicit settings override them.
PRESETS: dict[str, dict[str, object]] = {
    "conservative": {"sizing": "fixed_fraction", "exposure": 0.25,
                     "scale_by_confidence": True, "max_leverage": 1.0},
    "balanced": {"sizing": "volatility_target", "target_volatility": 0.15,
                 "vol_lookback": 60, "exposure": 1.0, "max_leverage": 1.5},
    "aggressive": {"sizing": "kelly", "kelly_fraction": 0.5, "kelly_cap": 2.0,
                   "payoff_ratio": 1.0, "exposure": 2.0, "max_leverage": 3.0},
}


def exponential_fraction(confidence: float, k: float) -> float:
    """``(exp(k c) - 1) / (exp(k) - 1)``: 0 at c = 0, 1 at c = 1; c itself as k -> 0."""
    if abs(k) < 1e-12:
        return confidence
    return math.expm1(k * confidence) / math.expm1(k)


def kelly_size(p: float, payoff_ratio: float, fraction: float, cap: float) -> float:
    """Fractional Kelly for win probability ``p`` and payoff ``b``, in [0, cap]."""
    edge = p - (1.0 - p) / payoff_ratio
    return min(max(edge, 0.0) * fraction, cap)


def annualised_volatility(view: MarketView, lookback: int) -> float | None:
    """Realised volatility of the last ``lookback`` log returns, annualised by the bar
    interval seen so far; None without enough bars or a usable interval."""
    if view.n < lookback + 1:
        return None
    closes = view.history("close", lookback + 1)
    ts = view.history("ts", lookback + 1)
    interval = (int(ts[-1]) - int(ts[0])) / lookback
    if not interval > 0:
        return None
    vol = float(np.std(np.diff(np.log(closes)), ddof=1))
    return vol * math.sqrt(YEAR_NS / interval)


class InvertedOrderError(RuntimeError):
    """An order that would put a position on the side opposite to its decision (or is not
    a finite quantity): a bug, never a result. The run stops as failed, naming it."""


def inverted(target: float, position: float, quantity: float) -> bool:
    """True when an order of ``quantity`` made for the signed target exposure ``target``
    is impossible: it leaves the position on the other side of the decision (LONG: below
    zero; SHORT: above zero), a flat target (FLAT, or SHORT without shorting) anywhere but
    flat, or the quantity is not finite. A LONG decision may still sell down to a smaller
    long (a lower target), and a SHORT buy back part of a short."""
    if not -math.inf < quantity < math.inf:  # NaN fails both comparisons
        return True
    after = position + quantity
    if target > 0.0:
        return after < 0.0
    if target < 0.0:
        return after > 0.0
    return after != 0.0


class TargetExposurePolicy:
    __slots__ = ("allow_short", "exp_k", "exposure", "kelly_cap", "kelly_fraction",
                 "max_leverage", "min_notional", "min_quantity", "payoff_ratio",
                 "scale_by_confidence", "sizing", "target_volatility", "views",
                 "vol_lookback")

    def __init__(
        self,
        exposure: float = 1.0,
        allow_short: bool = False,
        scale_by_confidence: bool = False,
        min_notional: float = 0.0,
        *,
        sizing: str = "fixed_fraction",
        max_leverage: float | None = None,
        min_quantity: float = 0.0,
        exp_k: float = 3.0,
        target_volatility: float = 0.15,
        vol_lookback: int = 60,
        kelly_fraction: float = 0.5,
        kelly_cap: float = 1.0,
        payoff_ratio: float = 1.0,
        views: Sequence[MarketView] = (),
    ) -> None:
        if sizing not in SIZINGS:
            raise ValueError(f"unknown sizing {sizing!r}; one of {SIZINGS}")
        if sizing == "volatility_target" and not views:
            raise ValueError("volatility_target sizing needs the market views")
        self.sizing = sizing
        self.exposure = exposure
        self.allow_short = allow_short
        self.scale_by_confidence = scale_by_confidence
        self.min_notional = min_notional
        self.min_quantity = min_quantity
        self.max_leverage = max_leverage
        self.exp_k = exp_k
        self.target_volatility = target_volatility
        self.vol_lookback = vol_lookback
        self.kelly_fraction = kelly_fraction
        self.kelly_cap = kelly_cap
        self.payoff_ratio = payoff_ratio
        self.views = tuple(views)

    def size(self, confidence: float, symbol: int) -> float | None:
        """Unsigned size of a directional decision by one of the sizings other than
        ``fixed_fraction`` (which ``target_exposure`` does inline); None: cannot size yet."""
        sizing = self.sizing
        if sizing == "confidence_exponential":
            return self.exposure * exponential_fraction(confidence, self.exp_k)
        if sizing == "kelly":
            return kelly_size(confidence, self.payoff_ratio, self.kelly_fraction,
                              self.kelly_cap)
        vol = annualised_volatility(self.views[symbol], self.vol_lookback)
        if vol is None or vol <= 0.0:
            return None
        return self.target_volatility / vol

    def target_exposure(
        self, side: Side, confidence: float, target: float | None, symbol: int = 0
    ) -> float | None:
        """Signed fraction of equity a decision asks for, or None to leave the position be.

        Takes the decision's fields rather than a ``Decision``: it runs on every change of
        consensus, most of which never become an order.
        """
        if side is HOLD:
            return None
        if side is FLAT or (side is SHORT and not self.allow_short):
            return 0.0
        if self.sizing == "fixed_fraction":  # the default, on the hot path: no call
            size = self.exposure if target is None else min(target, self.exposure)
            if self.scale_by_confidence:
                size *= confidence
        else:
            size = self.size(confidence, symbol)  # type: ignore[assignment]
            if size is None:
                return None
            if target is not None:
                size = min(size, target)
        if self.max_leverage is not None and size > self.max_leverage:
            size = self.max_leverage
        return size if side is LONG else -size

    def order_quantity(
        self, target: float, position: float, equity: float, price: float
    ) -> float:
        """Signed quantity that moves ``position`` to ``target`` x equity at ``price``.

        Zero when the trade would be worth ``min_notional`` or less, or is smaller than
        ``min_quantity`` units. Fees are left to the venue's fill, which trims buys to
        the cash available (as a cash account must). At equity <= 0 the position aimed
        at is flat (no equity to size from): a negative equity would otherwise turn the
        target around (a LONG decision selling). A NaN equity stays NaN, for the
        engine's invariant to stop the run rather than trade on it.
        """
        wanted = target * equity / price if target and not equity <= 0.0 else 0.0
        delta = wanted - position
        if abs(delta) * price <= self.min_notional or abs(delta) < self.min_quantity:
            return 0.0
        return delta
