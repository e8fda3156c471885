"""Pre-trade risk: every order passes these checks before it may be routed.

Notional is quantity x the order's reference price (the market price it was sized at,
before slippage), as exposure limits are usually marked. A breach denies the order with
its reason; nothing is trimmed silently.
"""

from __future__ import annotations

from collections.abc import Iterable

from sim.clock import NS_PER_DAY
from sim.messages import OrderDenied, SubmitOrder


class RiskEngine:
    __slots__ = (
        "_day",
        "_orders_today",
        "allowed_symbols",
        "max_order_notional",
        "max_orders_per_day",
        "max_position_notional",
    )

    def __init__(
        self,
        max_order_notional: float | None = None,
        max_position_notional: float | None = None,
        max_orders_per_day: int | None = None,
        allowed_symbols: Iterable[str] | None = None,
    ) -> None:
        self.max_order_notional = max_order_notional
        self.max_position_notional = max_position_notional
        self.max_orders_per_day = max_orders_per_day
        self.allowed_symbols = None if allowed_symbols is None else frozenset(allowed_symbols)
        self._day = -1
        self._orders_today = 0

    def check(self, order: SubmitOrder, position: float) -> OrderDenied | None:
        """Deny with the first failed check, or return None if the order may go."""
        denial = self._first_breach(order, position)
        if denial is not None:
            return OrderDenied(order.order_id, order.ts, order.symbol, *denial)
        return None

    def on_order_sent(self, order: SubmitOrder) -> None:
        """Count an order against today's limit once it has actually reached a venue."""
        self._orders_today += 1

    def _first_breach(self, order: SubmitOrder, position: float) -> tuple[str, str] | None:
        if self.allowed_symbols is not None and order.symbol not in self.allowed_symbols:
            return "allowed_symbols", f"{order.symbol} is not an allowed symbol"
        day = order.ts // NS_PER_DAY
        if day != self._day:
            self._day = day
            self._orders_today = 0
        if self.max_orders_per_day is not None and self._orders_today >= self.max_orders_per_day:
            return (
                "max_orders_per_day",
                f"{self._orders_today} orders already today (limit {self.max_orders_per_day})",
            )
        notional = order.notional
        if self.max_order_notional is not None and notional > self.max_order_notional:
            return (
                "max_order_notional",
                f"order notional {notional:.6g} exceeds {self.max_order_notional:.6g}",
            )
        if self.max_position_notional is not None:
            after = abs(position + order.quantity) * order.ref_price
            grows = abs(position + order.quantity) > abs(position)
            if grows and after > self.max_position_notional:
                return (
                    "max_position_notional",
                    f"position notional after the order {after:.6g} exceeds "
                    f"{self.max_position_notional:.6g}",
                )
        return None
