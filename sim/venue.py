"""Simulated venue: prices, fees, latency and faults of one venue, and its book of working
orders (matched against market events by ``sim.matching``).

Buys pay ``slippage_bps`` above the market, sells receive that much below; the taker fee
is charged on the filled notional. Each symbol has its own price and size rules
(``instruments``: ``sim.instruments.Instrument``, prebuilt per symbol): the fill price is
put on the symbol's price grid (buys up, sells down: never better than market +-
slippage) and checked against the model's band; the router has already rounded the
quantity down to the symbol's lots. A cash account cannot spend more than it holds, so a
buy is trimmed to what the cash covers after slippage and fees (whole lots when the
symbol has a lot).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np

from sim.instruments import Instrument, round_price, round_quantity
from sim.messages import OrderFilled, SubmitOrder

__all__ = ["DOWN", "PRESETS", "SimVenue", "Venue", "round_price", "round_quantity",
           "venue_preset"]

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


# Simulated presets modelled on public venue documentation. Figures are the base (lowest
# volume) tier and were taken from the venues' public docs as summarised here; they change,
# so check them before relying on them:
# * Hyperliquid (crypto perpetuals), https://hyperliquid.gitbook.io/hyperliquid-docs/trading/fees
#   base tier perps: taker 0.045% (4.5 bps), maker 0.015% (1.5 bps). Checked on
#   2026-11-21 against a live ``userFees`` answer of a base-tier account quoted in a
#   public SDK's tests (userCrossRate 0.00045, userAddRate 0.00015, mainnet,
#   2026-09-12); some third-party summaries give 1 bp maker, which that answer does not
#   bear out. Hourly funding (simulated for kind = "perp" venues, and scored by the
#   cost router).
#   Price and size rules are per asset (szDecimals), so the preset carries the rule, not
#   one tick: ``sim.instruments`` (5 significant figures, 6 - szDecimals decimals, 8 for
#   spot, sizes at szDecimals, $10 minimum notional). Latency: ~0.2 s block time on
#   HyperCore.
# * Ostium (RWA and crypto perpetuals: FX, commodities, indices, stocks, crypto),
#   https://ostium-labs.gitbook.io/ostium-docs/fee-breakdown
#   crypto opening fee 3 bps ("maker": leverage <= 20x and the trade reduces the open-
#   interest imbalance) or 10 bps ("taker"); non-crypto flat opening fees of about 3 bps
#   (FX), 5 bps (indices), 10 bps (stocks) per third-party summaries (the official page
#   gives "e.g. 4 bps" for non-crypto); no closing fee on non-liquidated trades
#   (approximated here as the taker fee on every fill: conservative, about twice the
#   real round-trip cost). Crypto figures checked on 2026-11-21 against the official
#   page and two independent summaries (3 / 10 bps).
#   Oracle-priced on Arbitrum: latency ~1-2 s. Pair rules (no tick, minimum position):
#   ``sim.instruments``, with their source.
PRESETS: dict[str, dict[str, float]] = {
    "hyperliquid": {"fee_bps": 4.5, "maker_fee_bps": 1.5, "slippage_bps": 1.0,
                    "latency_ms": 200.0},
    "ostium": {"fee_bps": 10.0, "maker_fee_bps": 3.0, "slippage_bps": 2.0,
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
    """A simulated venue: its fee schedule and price rules, the orders working on it
    (``book``: symbol index -> legs, matched by ``sim.matching``), its latency and its
    faults. Every setting beyond fees, slippage and the symbols' rules is off by default.

    ``instruments``: symbol -> its rules, prebuilt; a symbol not given gets the venue-wide
    ``tick_size``/``lot_size``/``min_size``, or with a ``resolver`` is resolved by it at
    its first order (a rule that needs a price not known at build time)."""

    __slots__ = ("_fee", "_maker", "_resolver", "_slip", "added_latency_ms", "book",
                 "fee_bps", "funding_interval_ns", "funding_rate", "health", "impact_bps",
                 "instruments", "kind", "latency_dist", "latency_ms", "latency_sigma",
                 "leverage", "lot_size", "maintenance_margin", "maker_fee_bps",
                 "max_leverage", "max_order_notional", "max_participation", "min_size",
                 "name", "reject_rate", "rng", "slippage_bps", "symbols", "tick_size",
                 "timeout_ms", "volatility_slippage")

    def __init__(
        self, name: str, symbols: frozenset[str], fee_bps: float = 0.0, slippage_bps: float = 0.0,
        *, maker_fee_bps: float = 0.0, min_size: float = 0.0, tick_size: float = 0.0,
        lot_size: float = 0.0, latency_ms: float = 0.0, health: str = UP,
        max_order_notional: float | None = None, volatility_slippage: float = 0.0,
        impact_bps: float = 0.0, max_participation: float | None = None, kind: str = "spot",
        max_leverage: float = 1.0, maintenance_margin: float = 0.0,
        funding_rate: float | None = None, funding_interval_ns: int = 8 * 3600 * 10**9,
        latency_dist: str = "fixed", latency_sigma: float = 0.0, reject_rate: float = 0.0,
        timeout_ms: float | None = None, rng: np.random.Generator | None = None,
        instruments: Mapping[str, Instrument] | None = None,
        resolver: Callable[[str, float], Instrument] | None = None,
    ) -> None:
        self.name = name
        self.symbols = frozenset(symbols)
        self.fee_bps = fee_bps  # taker
        self.maker_fee_bps = maker_fee_bps  # negative: a rebate
        self.slippage_bps = slippage_bps
        self.volatility_slippage = volatility_slippage  # x the previous bar's range
        self.impact_bps = impact_bps  # square-root impact at 100% participation
        self.max_participation = max_participation  # of a bar's (or trade's) volume
        self.min_size = min_size  # venue-wide defaults of the symbols' rules (instruments)
        self.tick_size = tick_size
        self.lot_size = lot_size
        self.latency_ms = latency_ms  # network, one way; used when execution.latency is on
        self.latency_dist = latency_dist
        self.latency_sigma = latency_sigma
        self.added_latency_ms = 0.0  # a scenario fault adds this (venue_latency event)
        self.timeout_ms = timeout_ms
        self.reject_rate = reject_rate
        self.health = health
        self.max_order_notional = max_order_notional  # the split policy's cap per venue
        self.kind = kind  # "spot" (cash account) or "perp" (margin, funding, liquidation)
        self.max_leverage = max_leverage
        self.maintenance_margin = maintenance_margin
        self.funding_rate = funding_rate  # generated funding: this rate every interval
        self.funding_interval_ns = funding_interval_ns
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.book: dict[int, list[Any]] = {}
        self._fee = fee_bps / 10_000.0
        self._maker = maker_fee_bps / 10_000.0
        self._slip = slippage_bps / 10_000.0
        self.instruments: dict[str, Instrument] = {}
        self.leverage: dict[str, float] = {}  # per symbol: min(max_leverage, its cap)
        self._resolver = resolver
        given = instruments or {}
        for symbol in sorted(self.symbols):
            inst = given.get(symbol)
            if inst is None and resolver is None:
                inst = Instrument(name, symbol, tick=tick_size, lot=lot_size, min_size=min_size)
            if inst is not None:
                self.set_instrument(inst)

    # -- prices and fees -------------------------------------------------------------
    def fee_rate(self, maker: bool) -> float:
        return self._maker if maker else self._fee

    def slippage(self, participation: float, bar_range: float) -> float:
        """Fraction a taker pays away from the market: fixed, plus volatility-scaled
        (``volatility_slippage`` x the previous bar's (high - low) / close), plus square-root
        impact ``impact_bps`` x sqrt(fill quantity / volume)."""
        slip = self._slip
        if self.volatility_slippage:
            slip += self.volatility_slippage * bar_range
        if self.impact_bps and participation > 0.0:
            slip += self.impact_bps / 10_000.0 * math.sqrt(participation)
        return slip

    def instrument(self, symbol: str, price: float) -> Instrument:
        """The symbol's rules; resolved here, once, from ``price`` (an order's) when the
        venue's rule needs a price that was not known when the run was built (live)."""
        inst = self.instruments.get(symbol)
        if inst is None:
            if self._resolver is None:
                raise KeyError(f"venue {self.name!r} has no instrument {symbol!r}")
            inst = self._resolver(symbol, price)
            self.set_instrument(inst)
        return inst

    def set_instrument(self, inst: Instrument) -> None:
        """Use ``inst`` for its symbol from now on (a live venue's metadata replaces the
        scenario's before the first order)."""
        self.instruments[inst.symbol] = inst
        cap = inst.max_leverage
        self.leverage[inst.symbol] = (self.max_leverage if cap is None
                                      else min(self.max_leverage, cap))

    def affordable(self, qty: float, price: float, fee_rate: float, cash: float,
                   inst: Instrument) -> float:
        """A buy of ``qty`` trimmed to what ``cash`` covers with the fee (whole lots when
        the symbol has a lot); 0 when not one unit is affordable. Rounding never
        overdraws: the cost is checked as the portfolio books it."""
        affordable = cash / (price * (1.0 + fee_rate))
        if affordable <= 0.0:
            return 0.0
        if qty >= affordable:
            qty = affordable
            while qty > 0.0 and qty * price + qty * price * fee_rate > cash:
                qty = math.nextafter(qty, 0.0)
            lot = inst.lot
            if lot > 0.0:
                qty = inst.floor_size(qty)
                while qty > 0.0 and qty * price + qty * price * fee_rate > cash:
                    qty = qty - lot if inst.size_decimals is None else inst.floor_size(qty - lot)
                if qty <= 0.0:
                    return 0.0
        return qty

    def execute(
        self, order: SubmitOrder, fill_id: int, ts: int, market_price: float, cash: float
    ) -> OrderFilled | None:
        """A market order filled at once against ``market_price`` (the immediate case of
        the matching in ``sim.matching``): None when a buy cannot afford a single unit."""
        taken = self.take(order.order_id, order.symbol, order.quantity, market_price, cash)
        if taken is None:
            return None
        qty, price, fee = taken
        return OrderFilled(
            fill_id, order.order_id, ts, order.symbol, self.name, qty, price, fee,
            order.ref_price,
        )

    def take(self, order_id: int, symbol: str, qty: float, market_price: float,
             cash: float) -> tuple[float, float, float] | None:
        """``execute``'s fill as (signed quantity, price, fee), without the message (the
        desk books it from these): None when a buy cannot afford a single unit."""
        inst = self.instruments[symbol]
        buy = qty > 0
        slip = self._slip
        price = inst.taker_price(buy, market_price, slip)
        inst.check_taker(order_id, buy, market_price, slip, price)
        if buy:
            qty = self.affordable(qty, price, self._fee, cash, inst)
            if qty <= 0.0:
                return None
        return qty, price, abs(qty) * price * self._fee

    # -- latency and faults ----------------------------------------------------------
    def network_latency_ns(self) -> int:
        """One-way latency of an order to this venue: ``latency_ms`` fixed, or drawn from
        the venue's seeded stream (``exponential`` with that mean, ``lognormal`` with that
        mean and log-sd ``latency_sigma``), plus any latency a fault added."""
        ms = self.latency_ms
        if ms > 0.0 and self.latency_dist == "exponential":
            ms = float(self.rng.exponential(ms))
        elif ms > 0.0 and self.latency_dist == "lognormal":
            sigma = self.latency_sigma
            ms = ms * math.exp(sigma * float(self.rng.standard_normal()) - 0.5 * sigma * sigma)
        return round((ms + self.added_latency_ms) * 1_000_000)

    def rejects(self) -> bool:
        """A random reject (``reject_rate``), drawn only when the rate is set."""
        return self.reject_rate > 0.0 and float(self.rng.random()) < self.reject_rate
