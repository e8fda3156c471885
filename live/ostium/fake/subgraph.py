"""The fake Ostium's subgraph (``POST /subgraph``): GraphQL requests answered by operation
name (``pairs``, ``trades``, ``limits``, ``orders``, ``ordersRecent``,
``ordersInitiated``, ``order``, ``ordersOfLimit``; their variables honoured), entities in
the subgraph's fixed point (USDC 6 decimals, leverage 2, prices and units 18, times in
seconds).

Split from ``live.ostium.fake.exchange`` along that seam: these read the chain's records
(``fake.chain``) as the real subgraph indexes them, and change nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from live.ostium.fake.chain import Limit, Order, Trade


class SubgraphAnswers:
    """``FakeOstium``'s subgraph answers (a mixin: the state is the exchange's, declared
    below for the type checker only)."""

    if TYPE_CHECKING:
        pairs: dict[str, tuple[int, float, float]]
        coin_of: dict[int, str]
        trades: list[Trade]
        limits: dict[str, Limit]
        orders: dict[int, Order]

    def _answer(self, op: str, v: dict[str, Any]) -> dict[str, Any]:
        if op == "pairs":
            return {"pairs": [{"id": str(pid), "from": coin, "to": "USD",
                               "maxLeverage": str(round(lev * 100)),
                               "fee": {"minLevPos": str(round(min_pos * 1e6))}}
                              for coin, (pid, lev, min_pos) in self.pairs.items()]}
        trader = str(v.get("trader", "")).lower()
        if op == "trades":
            return {"trades": [self._trade_wire(t) for t in self.trades
                               if t.open and t.trader == trader]}
        if op == "limits":
            return {"limits": [self._limit_wire(x) for x in self.limits.values()
                               if x.active and x.trader == trader]}
        if op == "orders":
            since, skip = int(v["since"]), int(v.get("skip", 0))
            rows = sorted((o for o in self.orders.values() if o.trader == trader
                           and not o.pending and not o.cancelled and (o.executed or 0) >= since),
                          key=lambda o: (o.executed or 0, o.id))
            return {"orders": [self._order_wire(o) for o in rows[skip:skip + 1000]]}
        if op == "ordersRecent":
            rows = sorted((o for o in self.orders.values() if o.trader == trader
                           and not o.pending and not o.cancelled),
                          key=lambda o: (o.executed or 0, o.id), reverse=True)
            return {"orders": [self._order_wire(o) for o in rows[:1000]]}
        if op == "ordersInitiated":
            since = int(v["since"])
            return {"orders": [self._order_wire(o) for o in self.orders.values()
                               if o.trader == trader and o.initiated >= since]}
        if op == "order":
            o = self.orders.get(int(v["id"]))
            return {"orders": [] if o is None else [self._order_wire(o)]}
        if op == "ordersOfLimit":
            return {"orders": [self._order_wire(o) for o in self.orders.values()
                               if o.limit_id == v["limit"]]}
        raise KeyError(op)

    def _pair_wire(self, pid: int) -> dict[str, Any]:
        return {"id": str(pid), "from": self.coin_of[pid], "to": "USD"}

    def _trade_wire(self, t: Trade) -> dict[str, Any]:
        return {"tradeID": f"{t.trader}-{t.pair}-{t.index}", "index": str(t.index),
                "collateral": str(round(t.collateral * 1e6)),
                "leverage": str(round(t.leverage * 100)), "openPrice": _e18(t.open_price),
                "tradeNotional": _e18(t.units), "funding": str(round(t.funding * 1e6)),
                "rollover": str(round(t.rollover * 1e6)), "isBuy": t.is_long,
                "timestamp": str(t.ts), "pair": self._pair_wire(t.pair)}

    def _limit_wire(self, x: Limit) -> dict[str, Any]:
        return {"id": x.id, "index": str(x.index), "collateral": str(round(x.collateral * 1e6)),
                "leverage": str(round(x.leverage * 100)), "openPrice": _e18(x.price),
                "isBuy": x.is_long, "limitType": x.kind, "initiatedAt": str(x.ts),
                "pair": self._pair_wire(x.pair)}

    def _order_wire(self, o: Order) -> dict[str, Any]:
        return {"id": str(o.id), "isBuy": o.is_long, "orderAction": o.action,
                "orderType": o.kind, "price": _e18(o.price),
                "collateral": str(round(o.collateral * 1e6)),
                "tradeNotional": _e18(o.units), "leverage": str(round(o.leverage * 100)),
                "isPending": o.pending, "isCancelled": o.cancelled, "cancelReason": o.reason,
                "devFee": str(round(o.fee * 1e6)), "vaultFee": "0", "oracleFee": "0",
                "fundingFee": str(round(o.funding * 1e6)),
                "rolloverFee": str(round(o.rollover * 1e6)), "limitID": o.limit_id,
                "initiatedAt": str(o.initiated),
                "executedAt": None if o.executed is None else str(o.executed),
                "pair": self._pair_wire(o.pair)}


def _e18(x: float) -> str:
    return str(round(x * 1e18))
