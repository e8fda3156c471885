"""The fake Ostium's chain: its records (``Trade``, ``Limit``, keeper ``Order``,
``Wallet``), the trading contract's calls (openTrade, closeTradeMarket,
cancelOpenLimitOrder, refused with a revert reason), the keeper executing an order at
the ask for a buy and the bid for a sale (or cancelling it: slippage, market closed),
limits and stops executing when the oracle crosses them, fees, funding and rollover
settled on a close; and ``FakeChainTrader``, the adapter's ``Trader`` that makes those
calls over ``/chain``.

Split from ``live.ostium.fake.exchange`` along that seam: the server answers HTTP and
injects faults; here is how a call changes the fake's state.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from live.ostium.gateway import TradeRefused


@dataclass
class Trade:
    trader: str
    pair: int
    index: int
    is_long: bool
    collateral: float
    leverage: float
    open_price: float
    units: float
    ts: int
    funding: float = 0.0
    rollover: float = 0.0
    open: bool = True

@dataclass
class Limit:
    id: str
    trader: str
    pair: int
    index: int
    is_long: bool
    collateral: float
    leverage: float
    price: float
    kind: str
    ts: int
    active: bool = True

@dataclass
class Order:
    id: int
    trader: str
    pair: int
    is_long: bool
    action: str  # "Open" / "Close"
    kind: str  # "MARKET" / "LIMIT" / "STOP"
    collateral: float
    leverage: float
    at_price: float
    slippage_pct: float
    initiated: int
    trade_index: int | None = None  # a close's trade
    close_pct: float = 100.0
    limit_id: str | None = None
    pending: bool = True
    cancelled: bool = False
    reason: str | None = None
    price: float = 0.0
    units: float = 0.0
    fee: float = 0.0
    funding: float = 0.0
    rollover: float = 0.0
    executed: int | None = None

@dataclass
class Wallet:
    usdc: float = 0.0
    next_index: dict[int, int] = field(default_factory=dict)


class _Revert(Exception):
    pass


class FakeChain:
    """``FakeOstium``'s chain and keeper (a mixin: the state is the exchange's, declared
    below for the type checker only)."""

    if TYPE_CHECKING:
        pairs: dict[str, tuple[int, float, float]]
        coin_of: dict[int, str]
        opening_fee: float
        oracle_fee: float
        spread: float
        now_s: Callable[[], int]
        auto_fund: float
        faults: Any  # the exchange's ``Faults`` (not imported: no import circle)
        prices: dict[str, float]
        market_open: dict[str, bool]
        wallets: dict[str, Wallet]
        trades: list[Trade]
        limits: dict[str, Limit]
        orders: dict[int, Order]
        _order_ids: itertools.count[int]

    def _bid_ask(self, coin: str) -> tuple[float, float]:
        mid = self.prices[coin]
        return mid * (1 - self.spread), mid * (1 + self.spread)

    def _crossed(self, lim: Limit) -> bool:
        bid, ask = self._bid_ask(self.coin_of[lim.pair])
        if lim.kind == "LIMIT":
            return ask <= lim.price if lim.is_long else bid >= lim.price
        return ask >= lim.price if lim.is_long else bid <= lim.price

    def _execute_limit(self, lim: Limit) -> None:
        lim.active = False
        o = Order(next(self._order_ids), lim.trader, lim.pair, lim.is_long, "Open", lim.kind,
                  lim.collateral, lim.leverage, lim.price, 100.0, self.now_s(),
                  limit_id=lim.id)
        self.orders[o.id] = o
        self._keep(o, limit=True)

    def _keep(self, o: Order, *, limit: bool = False) -> None:
        """The keeper executes ``o`` at the oracle, or cancels it."""
        coin = self.coin_of[o.pair]
        bid, ask = self._bid_ask(coin)
        buys = o.is_long == (o.action == "Open")
        px = ask if buys else bid
        wallet = self.wallets[o.trader]
        o.pending = False
        bound = o.at_price * (1 + o.slippage_pct / 100 if buys else 1 - o.slippage_pct / 100)
        beyond = px > bound * (1 + 1e-12) if buys else px < bound * (1 - 1e-12)
        if not self.market_open.get(coin, True) or (beyond and not limit):
            o.cancelled = True
            o.reason = "MARKET_CLOSED" if not self.market_open.get(coin, True) else "SLIPPAGE"
            if o.action == "Open":
                wallet.usdc += o.collateral  # refunded
            return
        o.price, o.executed = px, self.now_s()
        if o.action == "Open":
            o.fee = o.collateral * o.leverage * self.opening_fee + self.oracle_fee
            o.units = o.collateral * o.leverage / px
            index = wallet.next_index.get(o.pair, 0)
            wallet.next_index[o.pair] = index + 1
            self.trades.append(Trade(o.trader, o.pair, index, o.is_long,
                                     o.collateral - o.fee, o.leverage, px, o.units,
                                     o.executed))
            return
        t = next(x for x in self.trades if x.open and x.trader == o.trader
                 and x.pair == o.pair and x.index == o.trade_index)
        f = o.close_pct / 100
        o.units, o.collateral = t.units * f, t.collateral * f
        o.funding, o.rollover, o.fee = t.funding * f, t.rollover * f, self.oracle_fee
        pnl = (px - t.open_price) * o.units * (1 if t.is_long else -1)
        wallet.usdc += o.collateral + pnl - o.funding - o.rollover - o.fee
        t.units -= o.units
        t.collateral -= o.collateral
        t.funding -= o.funding
        t.rollover -= o.rollover
        if f >= 1:
            t.open = False

    def _seen(self, address: str) -> Wallet | None:
        """The wallet of ``address``; a new one credited with ``auto_fund`` if set."""
        wallet = self.wallets.get(address)
        if wallet is None and self.auto_fund > 0:
            wallet = self.wallets[address] = Wallet(self.auto_fund)
        return wallet

    def _run_chain(self, fn: str, trader: str, a: dict[str, Any]) -> dict[str, Any]:
        wallet = self._seen(trader)
        if wallet is None:
            raise _Revert("execution reverted: no USDC allowance for this trader")
        if fn == "openTrade":
            coin = self.coin_of.get(int(a["pairIndex"]))
            if coin is None:
                raise _Revert("execution reverted: PAIR_NOT_LISTED")
            _, max_lev, min_pos = self.pairs[coin]
            collateral, leverage = a["collateral"] / 1e6, a["leverage"] / 100
            price = a["openPrice"] / 1e18
            if leverage > max_lev:
                raise _Revert("execution reverted: WRONG_LEVERAGE")
            if collateral * leverage < min_pos:
                raise _Revert("execution reverted: BELOW_MIN_POS")
            if collateral > wallet.usdc + 1e-9:
                raise _Revert("execution reverted: ERC20: transfer amount exceeds balance")
            wallet.usdc -= collateral
            kind = ("MARKET", "LIMIT", "STOP")[int(a["orderType"])]
            if kind == "MARKET":
                o = Order(next(self._order_ids), trader, int(a["pairIndex"]), bool(a["buy"]),
                          "Open", kind, collateral, leverage, price, a["slippage"] / 100,
                          self.now_s())
                self.orders[o.id] = o
                if not self.faults.keeper_hold:
                    self._keep(o)
                return {"order_id": o.id, "limit_index": None}
            index = sum(1 for x in self.limits.values() if x.trader == trader
                        and x.pair == int(a["pairIndex"]))
            lim = Limit(f"{trader}-{a['pairIndex']}-{index}", trader, int(a["pairIndex"]),
                        index, bool(a["buy"]), collateral, leverage, price, kind,
                        self.now_s())
            self.limits[lim.id] = lim
            return {"order_id": None, "limit_index": index}
        if fn == "closeTradeMarket":
            pair, index = int(a["pairIndex"]), int(a["index"])
            t = next((x for x in self.trades if x.open and x.trader == trader
                      and x.pair == pair and x.index == index), None)
            if t is None:
                raise _Revert("execution reverted: NO_TRADE")
            o = Order(next(self._order_ids), trader, pair, t.is_long, "Close", "MARKET",
                      0.0, t.leverage, a["marketPrice"] / 1e18, a["slippage"] / 100,
                      self.now_s(), trade_index=index, close_pct=a["closePercentage"] / 100)
            self.orders[o.id] = o
            if not self.faults.keeper_hold:
                self._keep(o)
            return {"order_id": o.id}
        if fn == "cancelOpenLimitOrder":
            rests = next((x for x in self.limits.values() if x.active and x.trader == trader
                          and x.pair == int(a["pairIndex"]) and x.index == int(a["index"])),
                         None)
            if rests is None:
                raise _Revert("execution reverted: NO_LIMIT")
            rests.active = False
            wallet.usdc += rests.collateral
            return {}
        raise _Revert(f"execution reverted: unknown function {fn}")


class FakeChainTrader:
    """``live.ostium.gateway.Trader`` against the fake's ``/chain``: what the SDK's
    signed transactions do, with the contract's fixed point (collateral 6 decimals,
    leverage 2, prices 18, slippage and close percentage 2)."""

    def __init__(self, base_url: str, address: str, timeout_s: float = 5.0) -> None:
        self.address = address
        self.url = base_url + "/chain"
        self.timeout_s = timeout_s

    def _send(self, fn: str, args: dict[str, Any]) -> dict[str, Any]:
        reply = httpx.post(self.url, json={"fn": fn, "trader": self.address, "args": args},
                           timeout=self.timeout_s)
        if reply.status_code == 400:
            raise TradeRefused(reply.json()["error"])
        if reply.status_code != 200:
            raise RuntimeError(f"RPC: HTTP {reply.status_code}")
        result: dict[str, Any] = reply.json()
        return result

    def open_trade(self, pair_id: int, is_long: bool, collateral: float, leverage: float,
                   kind: str, price: float, slippage_pct: float) -> dict[str, Any]:
        return self._send("openTrade", {
            "pairIndex": pair_id, "buy": is_long, "collateral": round(collateral * 1e6),
            "leverage": round(leverage * 100), "openPrice": round(price * 1e18),
            "orderType": ("MARKET", "LIMIT", "STOP").index(kind),
            "slippage": round(slippage_pct * 100)})

    def close_trade(self, pair_id: int, index: int, price: float, percentage: float,
                    slippage_pct: float) -> dict[str, Any]:
        return self._send("closeTradeMarket", {
            "pairIndex": pair_id, "index": index, "marketPrice": round(price * 1e18),
            "closePercentage": round(percentage * 100), "slippage": round(slippage_pct * 100)})

    def cancel_limit(self, pair_id: int, index: int) -> None:
        self._send("cancelOpenLimitOrder", {"pairIndex": pair_id, "index": index})
