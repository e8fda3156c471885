"""The fake Hyperliquid's ``/info``: meta, allMids, l2Book, candleSnapshot,
clearinghouseState (positions, and ``marginSummary``: ``totalRawUsd`` is the account's
USDC after every fill's notional, fee and funding, ``accountValue`` that plus each
position marked at the mid), userFills, userFunding (by time, at most 500 a reply, oldest
first), openOrders, orderStatus (by oid or cloid), and a sandbox's ``quorumSandbox``.

Split from ``live.hyperliquid.fake.exchange`` along that seam: these read the fake's
state (``fake.book``) and change nothing but the count of requests answered.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from live.hyperliquid.fake.book import Account, _s

if TYPE_CHECKING:
    from live.hyperliquid.fake.book import Order
    from live.hyperliquid.wire import AssetInfo


class InfoAnswers:
    """``FakeHyperliquid``'s ``/info`` answers (a mixin: the state is the exchange's,
    declared below for the type checker only)."""

    if TYPE_CHECKING:
        assets: dict[str, AssetInfo]
        orders: dict[int, Order]
        accounts: dict[str, Account]
        candles: dict[tuple[str, str], list[dict[str, Any]]]
        info_kinds: dict[str, int]
        auto_fund: Decimal | None
        sandbox: Callable[[], dict[str, Any]] | None
        now_ms: Callable[[], int]

        def _mid(self, coin: str) -> Decimal | None: ...
        def _leverage(self, acct: Account, coin: str) -> tuple[int, bool]: ...
        def _margin_used(self, user: str) -> Decimal: ...
        def _book_wire(self, coin: str) -> dict[str, Any]: ...

    def _answer_info(self, body: dict[str, Any]) -> Any:
        kind = body["type"]
        self.info_kinds[kind] = self.info_kinds.get(kind, 0) + 1
        if kind == "meta":
            return {"universe": [{"name": a.name, "szDecimals": a.sz_decimals,
                                  "maxLeverage": a.max_leverage}
                                 for a in sorted(self.assets.values(), key=lambda a: a.index)]}
        if kind == "allMids":
            return {c: _s(m) for c in self.assets if (m := self._mid(c)) is not None}
        if kind == "l2Book":
            return self._book_wire(body["coin"])
        if kind == "quorumSandbox" and self.sandbox is not None:
            return self.sandbox()
        if kind == "candleSnapshot":
            req = body["req"]
            rows = self.candles.get((req["coin"], req["interval"]), [])
            return [r for r in rows if req["startTime"] <= r["t"] <= req["endTime"]]
        user = str(body["user"]).lower()
        if self.auto_fund is not None and user not in self.accounts:  # a new sandbox key
            self.accounts[user] = Account(raw_usd=self.auto_fund)
        acct = self.accounts.get(user, Account())
        if kind == "clearinghouseState":
            return self._clearinghouse(user)
        if kind == "userFills":
            return list(reversed(acct.fills))[:2000]
        if kind == "userFunding":
            start = int(body["startTime"])
            end = body.get("endTime")
            end = self.now_ms() if end is None else int(end)
            return [f for f in acct.funding if start <= f["time"] <= end][:500]
        if kind == "openOrders":
            return [o.wire() for o in self.orders.values()
                    if o.user == user and o.status == "open"]
        if kind == "orderStatus":
            ref = body["oid"]
            for o in self.orders.values():
                if o.user == user and (o.oid == ref if isinstance(ref, int)
                                       else o.cloid == str(ref).lower()):
                    return {"status": "order", "order": {"order": o.wire(), "status": o.status,
                                                         "statusTimestamp": self.now_ms()}}
            return {"status": "unknownOid"}
        raise ValueError(f"unknown info type {kind!r}")

    def _clearinghouse(self, user: str) -> dict[str, Any]:
        acct = self.accounts.get(user, Account())
        positions = []
        value = acct.raw_usd
        notional = Decimal(0)
        for coin, (szi, entry) in acct.positions.items():
            if szi == 0:
                continue
            mark = self._mid(coin) or entry
            value += szi * mark
            notional += abs(szi) * mark
            lev, cross = self._leverage(acct, coin)
            positions.append({"type": "oneWay", "position": {
                "coin": coin, "szi": _s(szi), "entryPx": _s(entry),
                "unrealizedPnl": _s((mark - entry) * szi),
                "positionValue": _s(abs(szi) * mark), "liquidationPx": None,
                "marginUsed": _s(abs(szi) * mark / lev),
                "leverage": {"type": "cross" if cross else "isolated", "value": lev}}})
        used = self._margin_used(user)
        summary = {"accountValue": _s(value), "totalNtlPos": _s(notional),
                   "totalRawUsd": _s(acct.raw_usd), "totalMarginUsed": _s(used)}
        return {"assetPositions": positions, "time": self.now_ms(),
                "marginSummary": summary, "crossMarginSummary": dict(summary),
                "withdrawable": _s(max(value - used, Decimal(0)))}
