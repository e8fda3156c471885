"""Simulated venue: fills market orders against the market price it is given.

Buys pay ``slippage_bps`` above the market, sells receive that much below; the taker fee
is charged on the filled notional. With a ``tick_size`` the fill price is put on the tick
grid (buys up, sells down: never better than market +- slippage); the router has already
rounded the quantity down to whole lots (``round_quantity``). A cash account cannot spend
more than it holds, so a buy is trimmed to what the cash covers after slippage and fees
(whole lots when the venue has a lot size).
"""

from __future__ import annotations

import math
from typing import Protocol

from sim.messages import OrderFilled, SubmitOrder

UP, DEGRADED, DOWN = "up", "degraded", "down"
HEALTH = (UP, DEGRADED, DOWN)


class Venue(Protocol):
    name: str
    symbols: frozenset[str]
    fee_bps: float
    health: str

    def execute(
        self, order: SubmitOrder, fill_id: int, ts: int, market_price: float, cash: float
    ) -> OrderFilled | None: ...


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


# Simulated presets modelled on public venue documentation. Figures are the base (lowest
# volume) tier and were taken from the venues' public docs as summarised here; they change,
# so check them before relying on them:
# * Hyperliquid (crypto perpetuals), https://hyperliquid.gitbook.io/hyperliquid-docs/trading/fees
#   base tier perps: taker 0.045% (4.5 bps), maker 0.015% (1.5 bps); hourly funding (not
#   simulated here: the cost router carries a funding placeholder of 0). Tick/lot sizes are
#   per asset (szDecimals); 0.01 / 0.001 are representative for BTC/ETH-style contracts;
#   minimum order value about $10 (expressed here as a minimum size in units is venue-
#   and asset-specific: left 0). Latency: ~0.2 s block time on HyperCore.
# * Ostium (RWA and crypto perpetuals: FX, commodities, indices, stocks, crypto),
#   https://ostium-labs.gitbook.io/ostium-docs/fee-breakdown
#   crypto opening fee 3 bps ("maker": leverage <= 20x and the trade reduces the open-
#   interest imbalance) or 10 bps ("taker"); non-crypto flat opening fees of about 3 bps
#   (FX), 5 bps (indices), 10 bps (stocks) per third-party summaries; no closing fee on
#   non-liquidated trades (approximated here as the taker fee on every fill, conservative).
#   Oracle-priced on Arbitrum: latency ~1-2 s. Tick/lot are representative only.
PRESETS: dict[str, dict[str, float]] = {
    "hyperliquid": {"fee_bps": 4.5, "maker_fee_bps": 1.5, "slippage_bps": 1.0,
                    "tick_size": 0.01, "lot_size": 0.001, "min_size": 0.0,
                    "latency_ms": 200.0},
    "ostium": {"fee_bps": 10.0, "maker_fee_bps": 3.0, "slippage_bps": 2.0,
               "tick_size": 0.0001, "lot_size": 0.0001, "min_size": 0.0,
               "latency_ms": 1500.0},
}


def venue_preset(name: str) -> dict[str, float]:
    """Settings of a simulated venue modelled on a real one ("hyperliquid", "ostium").

    Sources and caveats are noted above ``PRESETS``: Hyperliquid fee schedule
    (hyperliquid.gitbook.io, trading/fees) and Ostium fee breakdown
    (ostium-labs.gitbook.io/ostium-docs/fee-breakdown). Check the figures before use."""
    try:
        return dict(PRESETS[name])
    except KeyError:
        raise ValueError(f"unknown venue preset {name!r} (known: {sorted(PRESETS)})") from None


class SimVenue:
    __slots__ = ("_fee", "_slip", "fee_bps", "health", "latency_ms", "lot_size",
                 "maker_fee_bps", "max_order_notional", "min_size", "name", "slippage_bps",
                 "symbols", "tick_size")

    def __init__(
        self, name: str, symbols: frozenset[str], fee_bps: float = 0.0, slippage_bps: float = 0.0,
        *, maker_fee_bps: float = 0.0, min_size: float = 0.0, tick_size: float = 0.0,
        lot_size: float = 0.0, latency_ms: float = 0.0, health: str = UP,
        max_order_notional: float | None = None,
    ) -> None:
        self.name = name
        self.symbols = frozenset(symbols)
        self.fee_bps = fee_bps
        self.maker_fee_bps = maker_fee_bps  # stored: every simulated fill is a taker fill
        self.slippage_bps = slippage_bps
        self.min_size = min_size
        self.tick_size = tick_size
        self.lot_size = lot_size
        self.latency_ms = latency_ms  # stored: latency is not simulated yet
        self.health = health
        self.max_order_notional = max_order_notional  # the split policy's cap per venue
        self._fee = fee_bps / 10_000.0
        self._slip = slippage_bps / 10_000.0

    def execute(
        self, order: SubmitOrder, fill_id: int, ts: int, market_price: float, cash: float
    ) -> OrderFilled | None:
        """Fill now, or return None when a buy cannot afford a single unit of anything."""
        qty = order.quantity
        if qty > 0:
            price = market_price * (1.0 + self._slip)
            if self.tick_size > 0.0:  # fills on the venue's price grid, never better
                price = math.ceil(price / self.tick_size - 1e-9) * self.tick_size
            affordable = cash / (price * (1.0 + self._fee))
            if affordable <= 0.0:
                return None
            if qty >= affordable:
                qty = self._spend_at_most(cash, affordable, price)
                if self.lot_size > 0.0:  # whole lots, still within the cash
                    lot = self.lot_size
                    qty = math.floor(qty / lot) * lot
                    while qty > 0.0 and qty * price + qty * price * self._fee > cash:
                        qty -= lot
                    if qty <= 0.0:
                        return None
        else:
            price = market_price * (1.0 - self._slip)
            if self.tick_size > 0.0:
                price = max(math.floor(price / self.tick_size + 1e-9) * self.tick_size,
                            self.tick_size)
        fee = abs(qty) * price * self._fee
        return OrderFilled(
            fill_id, order.order_id, ts, order.symbol, self.name, qty, price, fee,
            order.ref_price,
        )

    def _spend_at_most(self, cash: float, qty: float, price: float) -> float:
        """Largest quantity near ``qty`` whose cost plus fee, booked as the portfolio books
        it, does not exceed ``cash``: rounding must never overdraw a cash account."""
        while qty > 0.0 and qty * price + qty * price * self._fee > cash:
            qty = math.nextafter(qty, 0.0)
        return qty
