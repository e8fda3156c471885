"""Instruments: one venue's price and size rules for one symbol, and the fill band.

A venue-wide tick of 0.01 on a pair priced 0.0001 once filled buys at 100x the market.
So every (venue, symbol) has its own ``Instrument``, resolved once when a run is built
(``resolve``); the fill path only looks the prebuilt object up.

* Price grid: a fixed ``tick``, or a decimal rule: at most ``sig_figs`` significant
  figures (an integer price is always allowed) and at most ``price_decimals`` decimals.
* Size grid: a fixed ``lot``, or ``size_decimals`` decimals. Sizes round toward zero.
* ``min_size`` (units) and ``min_notional`` (quote currency; reduce-only orders are
  exempt, as at the venues) make an order too small for the venue; ``max_leverage`` caps
  the venue's ``max_leverage`` for this symbol (perpetuals).

Where a spec comes from, by precedence: the scenario's ``[venues.instruments.SYMBOL]``
entry, else the venue-wide ``tick_size``/``lot_size`` when set, else the preset's rule
(``RULES``), else no grid. A live session on a real venue replaces the spec with the
venue's own metadata (``live.instruments``, from the venue's adapter).

The decimal rule is implemented once, here: ``live.hyperliquid.wire`` rounds the prices
and sizes it sends with ``round_decimal_price`` and ``floor_decimals``.

Runtime invariant (``Instrument.check_taker``, once per taker fill): a taker fill lies in
the band the execution model allows around its reference price (the price it was filled
against: the observed price, or a stop's level on a bar's path, so a gap is the
reference itself): a buy in [ref, ref x (1 + slippage) + one price step], a sell in
[ref x (1 - slippage) - one price step, ref], and positive. Anything else is a bug: the
run stops (``FillOutsideBand``) and is stored as failed. Maker fills are at their limit
by construction.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import Any, Literal

Rounding = Literal["nearest", "down", "up"]
_MODES = {"nearest": ROUND_HALF_EVEN, "down": ROUND_FLOOR, "up": ROUND_CEILING}
MAX_TICK_SHARE = 0.01  # a price step this share of the first price or more: a config error

# Hyperliquid ("Tick and lot size", hyperliquid.gitbook.io/hyperliquid-docs/for-developers/
# api/tick-and-lot-size; min order value from the exchange's "Order must have minimum value
# of $10." reply; checked 2026-12-06 against the docs and the wire rules in
# live.hyperliquid.wire): prices at most 5 significant figures and at most
# 6 - szDecimals decimals (8 - szDecimals for spot), integer prices always allowed; sizes
# at szDecimals decimals; an order that is not reduce-only must be worth at least $10.
HL_SIG_FIGS = 5
HL_PERP_DECIMALS = 6
HL_SPOT_DECIMALS = 8
HL_MIN_NOTIONAL = 10.0

# Ostium (checked 2026-12-06): ostium-labs.gitbook.io/ostium-docs/ostium-trading-engine/
# opening-trades says prices come from oracles on demand (no order book, so no tick: the
# contracts store prices with 18 decimals), a position is USDC collateral x leverage
# (1x-200x "depending on the asset"; per-pair caps are shown in the app, not in the docs),
# and "the minimum [collateral] amount is as low as 7 USDC on some assets" (an older
# version of the page; the newer one states no figure). On chain, each pair's fee tier
# holds the minimum leveraged position (IOstiumPairsStorage.Fee.minLevPos, USDC) and the
# pair its max leverage; neither is published per pair in the docs. So the rule here:
# no price tick, no size lot, a 7 USDC minimum notional (the lowest figure the docs
# give), leverage as the venue's ``max_leverage`` unless the instruments table sets a
# pair's cap.
OSTIUM_MIN_NOTIONAL = 7.0


class FillOutsideBand(RuntimeError):
    """A fill outside the band its execution model allows: a bug, never a result."""


def round_decimal_price(px: float, sig_figs: int, decimals: int | None,
                        mode: Rounding = "nearest") -> float:
    """``px`` on the decimal grid: at most ``sig_figs`` significant figures (0: no such
    rule; integers are always allowed, so a price of 10^sig_figs or more rounds to a whole
    number) and at most ``decimals`` decimals (None: no cap). Never rounded to zero: the
    smallest step instead."""
    if not px > 0 or not math.isfinite(px):
        raise ValueError(f"price must be positive and finite, got {px!r}")
    d = Decimal(repr(px))
    exponent = _exponent(d.adjusted(), sig_figs, decimals)
    rounded = d.quantize(Decimal(1).scaleb(exponent), rounding=_MODES[mode])
    if rounded <= 0:
        rounded = Decimal(1).scaleb(exponent)
    return float(rounded)


def floor_decimals(size: float, decimals: int) -> float:
    """``size`` rounded toward zero to ``decimals`` decimals (never more than asked)."""
    return float(Decimal(repr(size)).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_DOWN))


def _exponent(adjusted: int, sig_figs: int, decimals: int | None) -> int:
    """Decimal exponent of the price step at a price whose leading digit is 10^adjusted."""
    if not sig_figs:
        return -decimals if decimals is not None else 0
    exponent = adjusted - (sig_figs - 1)
    if decimals is not None:
        exponent = max(exponent, -decimals)
    return min(exponent, 0)


def round_quantity(qty: float, lot: float) -> float:
    """Signed quantity rounded toward zero to a whole number of lots (``lot`` 0: as is)."""
    if lot <= 0.0:
        return qty
    size = abs(qty)
    lots = math.floor(size / lot + 1e-9)  # 0.3 / 0.1 is 2.9999999999999996
    rounded = lots * lot
    if rounded > size:  # on the grid already, up to float error: keep it exactly
        rounded = size
    return math.copysign(rounded, qty) if lots else 0.0


def round_price(price: float, tick: float) -> float:
    """Price rounded to the nearest tick (``tick`` 0: as is)."""
    if tick <= 0.0:
        return price
    return round(price / tick) * tick


@dataclass(frozen=True, slots=True)
class Instrument:
    """One symbol on one venue: its price and size grids and its minimums (module doc).
    ``source`` says where the spec came from (stored in messages, never used to decide)."""

    venue: str
    symbol: str
    tick: float = 0.0
    sig_figs: int = 0
    price_decimals: int | None = None
    lot: float = 0.0
    size_decimals: int | None = None
    min_size: float = 0.0
    min_notional: float = 0.0
    max_leverage: float | None = None
    source: str = "venue"
    decimal_price: bool = field(init=False, repr=False, compare=False)
    # A size grid or a minimum. Without one, every non-zero quantity is on the grid and big
    # enough (``round_size`` returns it as is, ``too_small`` says False): the router skips both.
    size_rules: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.tick > 0.0 and (self.sig_figs or self.price_decimals is not None):
            raise ValueError("an instrument has a fixed tick or a decimal price rule, not both")
        if self.size_decimals is not None:
            object.__setattr__(self, "lot", 10.0 ** -self.size_decimals)
        object.__setattr__(self, "decimal_price",
                           bool(self.sig_figs) or self.price_decimals is not None)
        object.__setattr__(self, "size_rules", not (
            self.size_decimals is None and self.lot <= 0.0 and not self.min_size > 0.0
            and not self.min_notional > 0.0))

    # -- grids -------------------------------------------------------------------------
    def step(self, price: float) -> float:
        """The price grid's step at ``price`` (0: no grid)."""
        if self.tick > 0.0:
            return self.tick
        if not self.decimal_price or not price > 0.0 or not math.isfinite(price):
            return 0.0
        return 10.0 ** _exponent(math.floor(math.log10(price)), self.sig_figs,
                                 self.price_decimals)

    def round_price(self, price: float, mode: Rounding = "nearest") -> float:
        if self.tick > 0.0:
            tick = self.tick
            if mode == "up":
                return math.ceil(price / tick - 1e-9) * tick
            if mode == "down":
                return math.floor(price / tick + 1e-9) * tick
            return round(price / tick) * tick
        if self.decimal_price and price > 0.0:
            return round_decimal_price(price, self.sig_figs, self.price_decimals, mode)
        return price

    def round_size(self, qty: float) -> float:
        """Signed quantity toward zero onto the size grid."""
        if self.size_decimals is not None:
            return floor_decimals(qty, self.size_decimals)
        return round_quantity(qty, self.lot)

    def floor_size(self, qty: float, tolerant: bool = False) -> float:
        """A non-negative quantity down to whole lots (``tolerant``: a quantity within
        1e-9 lot below a whole number of lots counts as that number)."""
        if self.size_decimals is not None:
            return floor_decimals(qty, self.size_decimals)
        lot = self.lot
        if lot <= 0.0:
            return qty
        return math.floor(qty / lot + (1e-9 if tolerant else 0.0)) * lot

    def too_small(self, qty: float, price: float, reduce_only: bool) -> bool:
        """Below the venue's minimum size, or (unless reduce-only) its minimum notional."""
        size = abs(qty)
        return size < self.min_size or (
            not reduce_only and self.min_notional > 0.0 and size * price < self.min_notional)

    # -- taker prices and their band ---------------------------------------------------
    def taker_price(self, buy: bool, market: float, slip: float) -> float:
        """``market`` moved ``slip`` against the taker, on the price grid: buys round up,
        sells down (never better than market +- slippage)."""
        tick = self.tick
        if buy:
            price = market * (1.0 + slip)
            if tick > 0.0:
                price = math.ceil(price / tick - 1e-9) * tick
            elif self.decimal_price and price > 0.0:
                price = round_decimal_price(price, self.sig_figs, self.price_decimals, "up")
            return price
        price = market * (1.0 - slip)
        if not price > 0.0:  # slippage of 100% or more: left as is, for check_taker to stop
            return price
        if tick > 0.0:
            price = max(math.floor(price / tick + 1e-9) * tick, tick)
        elif self.decimal_price:
            price = round_decimal_price(price, self.sig_figs, self.price_decimals, "down")
        return price

    def band(self, buy: bool, reference: float, slip: float) -> tuple[float, float]:
        """The prices a taker fill against ``reference`` with slippage ``slip`` may have."""
        if buy:
            top = reference * (1.0 + slip)
            return reference, top + self.step(top)
        return reference * (1.0 - slip) - self.step(reference), reference

    def check_taker(self, order_id: int, buy: bool, reference: float, slip: float,
                    price: float) -> None:
        """The runtime invariant: raise ``FillOutsideBand`` naming the order when a taker
        fill at ``price`` lies outside ``band`` (float tolerance: 1e-9 of a step or of
        the price) or is not a positive price."""
        # self.band(buy, reference, slip), without its calls (step: the tick, or 0 when
        # there is no grid; only a decimal price grid needs step's arithmetic)
        tick = self.tick
        if buy:
            top = reference * (1.0 + slip)
            lo, hi = reference, top + (tick if tick > 0.0 else
                                       self.step(top) if self.decimal_price else 0.0)
        else:
            lo = reference * (1.0 - slip) - (tick if tick > 0.0 else self.step(reference)
                                             if self.decimal_price else 0.0)
            hi = reference
        tol = 1e-9 * (abs(reference) + (hi - lo))
        if price > 0.0 and lo - tol <= price <= hi + tol:
            return
        side = "buy" if buy else "sell"
        if not price > 0.0:
            raise FillOutsideBand(
                f"fill at a price that is not positive: order {order_id} ({side} "
                f"{self.symbol} on {self.venue}) at {price:.10g} against a reference price "
                f"of {reference:.10g}: the slippage model charged {slip:.6g} (fixed + "
                "volatility + impact; a sell cannot pay 100% or more)")
        raise FillOutsideBand(
            f"fill outside the execution band: order {order_id} ({side} {self.symbol} on "
            f"{self.venue}) at {price:.10g} against a reference price of {reference:.10g}; "
            f"the model allows [{lo:.10g}, {hi:.10g}] (slippage {slip:.6g}, "
            f"{self.describe_price()})")

    # -- describing ----------------------------------------------------------------------
    def describe_price(self) -> str:
        if self.tick > 0.0:
            return f"tick {self.tick:g}"
        if not self.decimal_price:
            return "no price grid"
        parts = [f"{self.sig_figs} significant figures"] if self.sig_figs else []
        if self.price_decimals is not None:
            parts.append(f"at most {self.price_decimals} decimals")
        return ", ".join(parts)

    def spec(self) -> dict[str, Any]:
        """The spec as the scenario's instruments table would write it (set fields only)."""
        out: dict[str, Any] = {}
        if self.tick > 0.0:
            out["tick_size"] = self.tick
        if self.sig_figs:
            out["sig_figs"] = self.sig_figs
        if self.price_decimals is not None:
            out["price_decimals"] = self.price_decimals
        if self.size_decimals is not None:
            out["size_decimals"] = self.size_decimals
        elif self.lot > 0.0:
            out["lot_size"] = self.lot
        for name in ("min_size", "min_notional"):
            if getattr(self, name):
                out[name] = getattr(self, name)
        if self.max_leverage is not None:
            out["max_leverage"] = self.max_leverage
        return out


# -- rules and resolution --------------------------------------------------------------
def default_size_decimals(price: float, most: int) -> int:
    """The fewest size decimals that keep one lot worth at most 2 units of the quote at
    ``price``, within 0..``most``: Hyperliquid's own choices at their prices (BTC 5 at
    100,000, ETH 4 at 3,000, SOL 2 at 150, HYPE 2 at 30, DOGE 0 at 0.12)."""
    return min(max(math.ceil(math.log10(price / 2.0) - 1e-12), 0), most)


def hyperliquid_instrument(venue: str, symbol: str, size_decimals: int, *, spot: bool = False,
                           max_leverage: float | None = None,
                           source: str = "preset hyperliquid") -> Instrument:
    """Hyperliquid's rule for one asset of ``size_decimals`` (its ``szDecimals``)."""
    most = HL_SPOT_DECIMALS if spot else HL_PERP_DECIMALS
    return Instrument(venue, symbol, sig_figs=HL_SIG_FIGS, price_decimals=most - size_decimals,
                      size_decimals=size_decimals, min_notional=HL_MIN_NOTIONAL,
                      max_leverage=max_leverage, source=source)


def _hyperliquid(spec: Mapping[str, Any], kind: str, price: float | None) -> dict[str, Any] | None:
    most = HL_SPOT_DECIMALS if kind == "spot" else HL_PERP_DECIMALS
    size_decimals = spec.get("size_decimals")
    if size_decimals is None:
        if price is None:
            return None  # resolved at the first order, from its price
        size_decimals = default_size_decimals(price, most)
    return {"sig_figs": HL_SIG_FIGS, "price_decimals": max(most - size_decimals, 0),
            "size_decimals": size_decimals, "min_notional": HL_MIN_NOTIONAL}


def _ostium(spec: Mapping[str, Any], kind: str, price: float | None) -> dict[str, Any]:
    return {"min_notional": OSTIUM_MIN_NOTIONAL}


RULES = {"hyperliquid": _hyperliquid, "ostium": _ostium}
_PRICE_FIELDS = ("tick", "sig_figs", "price_decimals")
_SIZE_FIELDS = ("lot", "size_decimals")


def resolve(venue: str, symbol: str, *, rule: str | None = None, kind: str = "spot",
            tick_size: float = 0.0, lot_size: float = 0.0, min_size: float = 0.0,
            spec: Mapping[str, Any] | None = None,
            price: float | None = None) -> Instrument | None:
    """The instrument of ``symbol`` on ``venue``: the ``rule`` (a preset name) under the
    venue-wide tick/lot/min size, under the scenario's ``spec`` (instruments-table fields,
    set ones only). None when the rule needs a price (``price`` None: resolve again at the
    first order)."""
    spec = dict(spec or {})
    fields: dict[str, Any] = {}
    source = "venue"
    if rule is not None:
        ruled = RULES[rule](spec, kind, price)
        if ruled is None:
            return None
        fields.update(ruled)
        source = f"preset {rule}"
    if tick_size > 0.0:
        fields.update(tick=tick_size, sig_figs=0, price_decimals=None)
    if lot_size > 0.0:
        fields.update(lot=lot_size, size_decimals=None)
    if min_size > 0.0:
        fields["min_size"] = min_size
    if spec:
        source = "scenario" if rule is None else f"scenario + preset {rule}"
        if "tick_size" in spec:
            fields.update(tick=spec["tick_size"], sig_figs=0, price_decimals=None)
        if "sig_figs" in spec or "price_decimals" in spec:
            fields["tick"] = 0.0
            for name in ("sig_figs", "price_decimals"):
                if name in spec:
                    fields[name] = spec[name]
        if "lot_size" in spec:
            fields.update(lot=spec["lot_size"], size_decimals=None)
        if "size_decimals" in spec:
            fields.update(size_decimals=spec["size_decimals"], lot=0.0)
        for name in ("min_size", "min_notional", "max_leverage"):
            if name in spec:
                fields[name] = spec[name]
    return Instrument(venue, symbol, source=source, **fields)


def unrepresentable(inst: Instrument, price: float, cash: float) -> str | None:
    """Why ``inst`` cannot trade a symbol whose first price is ``price`` with an account
    of ``cash`` (one line naming venue, symbol and field), or None. A price step of 1% of
    the price or more cannot represent its prices; a lot, minimum size or minimum
    notional worth more than the account can never be traded."""
    where = f"venues.{inst.venue}.instruments.{inst.symbol}"
    step = inst.step(price)
    if step >= MAX_TICK_SHARE * price:
        if inst.tick > 0.0:
            name = "tick_size"
        elif inst.price_decimals is not None and step == 10.0 ** -inst.price_decimals:
            name = "price_decimals"
        else:
            name = "sig_figs"
        return (f"{where}.{name}: venue {inst.venue!r} cannot represent {inst.symbol}'s "
                f"prices: its price step {step:.6g} ({inst.describe_price()}) is "
                f"{step / price:.3g} of the first price {price:.6g}; it must be under "
                f"{MAX_TICK_SHARE:g}")
    checks = (("size_decimals" if inst.size_decimals is not None else "lot_size",
               inst.lot * price, f"one lot of {inst.lot:g}"),
              ("min_size", inst.min_size * price, f"the minimum size {inst.min_size:g}"),
              ("min_notional", inst.min_notional, "the minimum notional"))
    for name, worth, what in checks:
        if worth > cash:
            return (f"{where}.{name}: venue {inst.venue!r} cannot trade {inst.symbol}: "
                    f"{what} is worth {worth:.6g} at the first price {price:.6g}, more than "
                    f"the account's {cash:.6g}")
    return None
