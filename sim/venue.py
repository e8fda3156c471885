"""Simulated venue: fills market orders against the market price it is given.

Buys pay ``slippage_bps`` above the market, sells receive that much below; the taker fee
is charged on the filled notional. A cash account cannot spend more than it holds, so a
buy is trimmed to what the cash covers after slippage and fees.
"""

from __future__ import annotations

import math
from typing import Protocol

from sim.messages import OrderFilled, SubmitOrder


class Venue(Protocol):
    name: str
    symbols: frozenset[str]
    fee_bps: float

    def execute(
        self, order: SubmitOrder, fill_id: int, ts: int, market_price: float, cash: float
    ) -> OrderFilled | None: ...


class SimVenue:
    __slots__ = ("_fee", "_slip", "fee_bps", "name", "slippage_bps", "symbols")

    def __init__(
        self, name: str, symbols: frozenset[str], fee_bps: float = 0.0, slippage_bps: float = 0.0
    ) -> None:
        self.name = name
        self.symbols = frozenset(symbols)
        self.fee_bps = fee_bps
        self.slippage_bps = slippage_bps
        self._fee = fee_bps / 10_000.0
        self._slip = slippage_bps / 10_000.0

    def execute(
        self, order: SubmitOrder, fill_id: int, ts: int, market_price: float, cash: float
    ) -> OrderFilled | None:
        """Fill now, or return None when a buy cannot afford a single unit of anything."""
        qty = order.quantity
        if qty > 0:
            price = market_price * (1.0 + self._slip)
            affordable = cash / (price * (1.0 + self._fee))
            if affordable <= 0.0:
                return None
            if qty >= affordable:
                qty = self._spend_at_most(cash, affordable, price)
        else:
            price = market_price * (1.0 - self._slip)
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
