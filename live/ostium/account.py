"""The Ostium account as the live core reads it: resting limits and stops with the market
orders pending at the keeper (``open_orders``), each executed keeper order as a fill, the
funding and rollover each close settled, and the account state: net positions over the
open trades and the account value (wallet, collateral, unrealized PnL at the mid;
``accrued`` has what open trades owe and have not settled).

Split from ``live.ostium.venue`` along that seam: these read the account for
reconciliation and booking, and send nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from live.ostium.wire import OstiumWireError, balance_of_call, parse_balance
from live.venue_types import AccountState, FundingPayment, OpenOrder, Position, VenueFill

if TYPE_CHECKING:
    from collections.abc import Callable

    from live.ostium.gateway import OstiumConfig, OstiumGateway
    from live.ostium.placements import _Placement
    from live.ostium.wire import OstiumLimit, OstiumOrder, OstiumPrice, OstiumTrade


class OstiumAccount:
    """``OstiumVenue``'s account reads (a mixin: the state is the venue's, declared below
    for the type checker only)."""

    if TYPE_CHECKING:
        gateway: OstiumGateway
        config: OstiumConfig
        now_ms: Callable[[], int]
        _placements: dict[str, _Placement]
        _cloid_of_order: dict[int, str]
        _cloid_of_limit: dict[tuple[int, int], str]
        _cloid_of_limit_id: dict[str, str]

        @property
        def account(self) -> str: ...
        async def prices(self) -> dict[str, OstiumPrice]: ...
        async def _trades(self) -> list[OstiumTrade]: ...
        async def _limits(self) -> list[OstiumLimit]: ...
        async def _executed(self, since_ms: int) -> list[OstiumOrder]: ...

    async def open_orders(self) -> list[OpenOrder]:
        """Resting limits and stops, and the market orders of this process last seen
        pending at the keeper (they work until it executes or cancels them; a lookup of
        their cloid tells which)."""
        limits = [OpenOrder(x.coin, x.oid, self._cloid_of_limit.get((x.pair_id, x.index)),
                            x.units if x.is_long else -x.units) for x in await self._limits()]
        pending = [OpenOrder(p.order.coin, p.oid, cloid,
                             p.order.size if p.order.is_buy else -p.order.size)
                   for cloid, p in self._placements.items()
                   if p.at_keeper and p.oid is not None]
        return limits + pending

    async def fills(self, since_ms: int = 0) -> list[VenueFill]:
        """Each executed keeper order is one fill (Ostium fills an order whole, at one
        price); its trade id is the order id. ``since_ms`` 0: the latest 1000."""
        out = []
        for o in await self._executed(since_ms):
            assert o.price is not None and o.executed_ms is not None
            cloid = self._cloid_of_order.get(o.order_id) or (
                self._cloid_of_limit_id.get(o.limit_id) if o.limit_id else None)
            p = self._placements.get(cloid) if cloid else None
            oid = p.oid if p is not None and p.oid is not None else o.order_id
            out.append(VenueFill(o.order_id, oid, o.coin, o.signed_units, o.price, o.fee,
                                 o.executed_ms, 0.0, cloid, True))
        return out

    async def funding(self, start_ms: int, end_ms: int | None = None) -> list[FundingPayment]:
        """Funding + rollover settled by each close from ``start_ms`` on (inclusive)."""
        out: dict[tuple[str, int], FundingPayment] = {}
        for o in await self._executed(start_ms):
            assert o.price is not None and o.executed_ms is not None
            charge = o.funding + o.rollover
            if o.action.lower() != "close" or charge == 0 or (
                    end_ms is not None and o.executed_ms > end_ms):
                continue
            szi = o.units if o.is_long else -o.units  # the position it was charged on
            key = (o.coin, o.executed_ms)
            before = out.get(key)
            usdc = -charge + (before.usdc if before else 0.0)
            size = szi + (before.szi if before else 0.0)
            rate = -usdc / (size * o.price) if size else 0.0
            out[key] = FundingPayment(o.executed_ms, o.coin, usdc, size, rate,
                                      f"ostium-order-{o.order_id}")
        return sorted(out.values(), key=lambda f: (f.time_ms, f.coin))

    async def positions(self) -> list[Position]:
        return list((await self.account_state()).positions)

    async def account_state(self) -> AccountState:
        """Net position per coin over its open trades (entry: size-weighted open price;
        leverage: notional over collateral), and the account value: the wallet's USDC,
        plus the collateral held by open limits, plus each open trade's collateral and
        unrealized PnL at the mid. The funding and rollover an open trade has accrued are
        left out: they are not settled (``funding`` reports them when a close settles
        them), so the value agrees with what the core has booked; ``accrued`` has them."""
        trades = await self._trades()
        limits = await self._limits()
        prices = await self.prices()
        wallet = parse_balance(await self.gateway.eth_call(
            balance_of_call(self.config.usdc, self.account)))
        value = wallet + sum(x.collateral for x in limits)
        rows: dict[str, list[float]] = {}  # coin -> net, gross, entry notional, upnl, margin
        marks = {}
        for t in trades:
            price = prices.get(t.coin)
            if price is None:
                raise OstiumWireError(f"Ostium price service: no price for {t.coin}, which "
                                      "the account holds")
            marks[t.coin] = price.mid
            upnl = (price.mid - t.open_price) * t.size
            value += t.collateral + upnl
            row = rows.setdefault(t.coin, [0.0, 0.0, 0.0, 0.0, 0.0])
            row[0] += t.size
            row[1] += t.units
            row[2] += t.units * t.open_price
            row[3] += upnl
            row[4] += t.collateral
        positions = tuple(
            Position(coin, net, notional / gross if gross else None, upnl,
                     notional / margin if margin else None, None)
            for coin, (net, gross, notional, upnl, margin) in rows.items())
        return AccountState(positions, value, marks, self.now_ms())

    async def account_value(self) -> float:
        return (await self.account_state()).account_value

    async def accrued(self) -> dict[str, float]:
        """Funding + rollover the open trades have accrued and not settled, per coin
        (USDC, > 0 owed): what closing them now would charge beyond the account value."""
        out: dict[str, float] = {}
        for t in await self._trades():
            out[t.coin] = out.get(t.coin, 0.0) + t.funding + t.rollover
        return out
