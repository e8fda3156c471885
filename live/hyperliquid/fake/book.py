"""The fake Hyperliquid's market: its orders and accounts (``Order``, ``Account``), the
book (price-time priority), matching and the fills it books (positions, entry prices,
fees, USDC), trigger orders firing when the mark crosses them, and cross margin (an
account's leverage per coin, the margin in use, whether an order adds exposure the
account cannot margin).

Split from ``live.hyperliquid.fake.exchange`` along that seam: the server (HTTP, /info,
/exchange, the WebSocket) answers and acts on this state; here is how it changes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from live.hyperliquid.wire import AssetInfo

TAKER_FEE = Decimal("0.00045")
MAKER_FEE = Decimal("0.00015")


@dataclass
class Order:
    oid: int
    user: str
    coin: str
    is_buy: bool
    px: Decimal
    sz: Decimal
    orig_sz: Decimal
    cloid: str | None
    reduce_only: bool
    tif: str
    status: str = "open"
    timestamp: int = 0
    trigger_px: Decimal | None = None
    trigger_is_market: bool = True
    tpsl: str | None = None
    triggered: bool = False  # a trigger order whose trigger fired: now an ordinary order

    def wire(self) -> dict[str, Any]:
        out = {"coin": self.coin, "side": "B" if self.is_buy else "A",
               "limitPx": _s(self.px), "sz": _s(self.sz), "oid": self.oid,
               "timestamp": self.timestamp, "origSz": _s(self.orig_sz)}
        if self.cloid:
            out["cloid"] = self.cloid
        if self.trigger_px is not None:
            out.update(isTrigger=True, triggerPx=_s(self.trigger_px), orderType=(
                f"{'Stop' if self.tpsl == 'sl' else 'Take Profit'} "
                f"{'Market' if self.trigger_is_market else 'Limit'}"))
        return out

@dataclass
class Account:
    positions: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)  # szi, entry
    leverage: dict[str, tuple[int, bool]] = field(default_factory=dict)
    fills: list[dict[str, Any]] = field(default_factory=list)
    raw_usd: Decimal = Decimal(0)  # USDC: deposits - bought + sold - fees + funding
    funding: list[dict[str, Any]] = field(default_factory=list)  # userFunding entries

def _s(d: Decimal | None) -> str:
    if d is None:
        return "0"
    text = f"{d.normalize():f}"
    return "0" if text in ("-0", "") else text


class FakeBook:
    """``FakeHyperliquid``'s book, matching and margin (a mixin: the state is the
    exchange's, declared below for the type checker only)."""

    if TYPE_CHECKING:
        assets: dict[str, AssetInfo]
        orders: dict[int, Order]
        accounts: dict[str, Account]
        marks: dict[str, Decimal]
        now_ms: Callable[[], int]
        _tids: itertools.count[int]

        def _broadcast(self, channel: str, data: Any, wants: Any) -> None: ...
        def _push_order(self, o: Order) -> None: ...
        def _push_book(self, coin: str) -> None: ...

    # -- margin ----------------------------------------------------------------------------

    def _leverage(self, acct: Account, coin: str) -> tuple[int, bool]:
        """The account's leverage for ``coin``: as set, else 20x (cross) or the asset's
        maximum if lower."""
        return acct.leverage.get(coin, (min(20, self.assets[coin].max_leverage), True))

    def _account_value(self, acct: Account) -> Decimal:
        value = acct.raw_usd
        for coin, (szi, entry) in acct.positions.items():
            if szi:
                value += szi * (self._mid(coin) or entry)
        return value

    def _margin_used(self, user: str) -> Decimal:
        """Initial margin of the positions at the mark, and of the resting orders that
        would add to them at their own price."""
        acct = self.accounts.get(user, Account())
        used = Decimal(0)
        for coin, (szi, entry) in acct.positions.items():
            if szi:
                used += abs(szi) * (self._mid(coin) or entry) / self._leverage(acct, coin)[0]
        for o in self.orders.values():
            if o.user != user or o.status != "open" or o.reduce_only or o.trigger_px is not None:
                continue
            szi = acct.positions.get(o.coin, (Decimal(0), Decimal(0)))[0]
            if szi == 0 or (szi > 0) == o.is_buy:
                used += o.sz * o.px / self._leverage(acct, o.coin)[0]
        return used

    def _short_of_margin(self, user: str, asset: AssetInfo, is_buy: bool, sz: Decimal,
                         px: Decimal) -> bool:
        """Would this order add exposure the account cannot margin?"""
        acct = self.accounts[user]
        szi = acct.positions.get(asset.name, (Decimal(0), Decimal(0)))[0]
        added = abs(szi + (sz if is_buy else -sz)) - abs(szi)
        if added <= 0:
            return False  # it only reduces (or flips to no more than it closes)
        needed = added * px / self._leverage(acct, asset.name)[0]
        return needed > self._account_value(acct) - self._margin_used(user)

    # -- the book --------------------------------------------------------------------------

    def _rest(self, order: Order) -> None:
        self.orders[order.oid] = order

    def _side(self, coin: str, is_buy: bool) -> list[Order]:
        side = [o for o in self.orders.values() if o.coin == coin and o.is_buy == is_buy
                and o.status == "open" and (o.trigger_px is None or o.triggered)]
        side.sort(key=lambda o: (-o.px if is_buy else o.px, o.oid))
        return side

    def _best(self, coin: str, is_buy: bool) -> Order | None:
        side = self._side(coin, is_buy)
        return side[0] if side else None

    def _mid(self, coin: str) -> Decimal | None:
        bid, ask = self._best(coin, True), self._best(coin, False)
        if bid and ask:
            return (bid.px + ask.px) / 2
        return self.marks.get(coin)

    def _crosses(self, order: Order) -> bool:
        best = self._best(order.coin, not order.is_buy)
        return best is not None and (order.px >= best.px if order.is_buy
                                     else order.px <= best.px)

    def _match(self, order: Order) -> tuple[Decimal, Decimal]:
        filled = notional = Decimal(0)
        if order.reduce_only:  # never more than the position
            szi = self.accounts[order.user].positions.get(order.coin, (Decimal(0),))[0]
            order.sz = min(order.sz, abs(szi))
        for maker in self._side(order.coin, not order.is_buy):
            if order.sz == 0 or not (order.px >= maker.px if order.is_buy
                                     else order.px <= maker.px):
                break
            qty = min(order.sz, maker.sz)
            order.sz -= qty
            maker.sz -= qty
            if maker.sz == 0:
                maker.status = "filled"
            filled += qty
            notional += qty * maker.px
            self._trade(order, maker, qty, maker.px)
            self._push_order(maker)
        return filled, notional

    def _trade(self, taker: Order, maker: Order, qty: Decimal, px: Decimal) -> None:
        now = self.now_ms()
        tid = next(self._tids)
        for o, crossed, fee in ((taker, True, TAKER_FEE), (maker, False, MAKER_FEE)):
            acct = self.accounts.setdefault(o.user, Account())
            signed = qty if o.is_buy else -qty
            szi, entry = acct.positions.get(o.coin, (Decimal(0), Decimal(0)))
            closed = Decimal(0)
            if szi != 0 and (szi > 0) != (signed > 0):  # reducing
                closing = min(abs(szi), qty)
                closed = (px - entry) * closing * (1 if szi > 0 else -1)
            new = szi + signed
            if new == 0:
                entry = Decimal(0)
            elif szi == 0 or (szi > 0) != (new > 0):
                entry = px
            elif (szi > 0) == (signed > 0):
                entry = (entry * abs(szi) + px * qty) / abs(new)
            acct.positions[o.coin] = (new, entry)
            fee_paid = qty * px * fee
            acct.raw_usd -= signed * px + fee_paid
            fill = {"coin": o.coin, "px": _s(px), "sz": _s(qty), "side": "B" if o.is_buy else "A",
                    "time": now, "startPosition": _s(szi), "dir": "Open Long" if signed > 0
                    else "Open Short", "closedPnl": _s(closed), "hash": "0x" + "00" * 32,
                    "oid": o.oid, "crossed": crossed, "fee": _s(fee_paid), "tid": tid,
                    "feeToken": "USDC"}
            if o.cloid:
                fill["cloid"] = o.cloid
            acct.fills.append(fill)
            user = o.user
            self._broadcast("userFills", {"isSnapshot": False, "user": user, "fills": [fill]},
                            lambda s, u=user: s == {"type": "userFills", "user": u})
        self._broadcast("trades", [{"coin": taker.coin, "side": "B" if taker.is_buy else "A",
                                    "px": _s(px), "sz": _s(qty), "time": now, "tid": tid}],
                        lambda s: s == {"type": "trades", "coin": taker.coin})

    def _fire_triggers(self, coin: str) -> None:
        """Trigger orders the mark has crossed fire. As at Hyperliquid, a fired trigger
        order stays the same order (same oid and cloid): its status goes "open" ->
        "triggered" (docs, Info endpoint, orderStatus: "triggered: Trigger order
        triggered"; nautilus_trader's Hyperliquid adapter maps it to a state of the same
        order), then it executes: a market trigger as an IOC bounded by its limit price
        (its unfilled rest canceled), a limit trigger as a GTC at its limit price. Its
        fills carry that oid and cloid. The mark decides, as at the venue (docs, "Take
        profit and stop loss orders": "The mark price is used to trigger TP/SL orders")."""
        mark = self.marks[coin]
        for o in list(self.orders.values()):
            if o.coin != coin or o.status != "open" or o.trigger_px is None or o.triggered:
                continue
            # a stop fires when the price moves against the position it protects; a take-
            # profit when it moves in favour (a sell closes a long, a buy a short)
            rising = (o.tpsl == "tp") != o.is_buy
            if not ((mark >= o.trigger_px) if rising else (mark <= o.trigger_px)):
                continue
            o.triggered = True
            o.status = "triggered"
            self._push_order(o)
            o.tif = "Ioc" if o.trigger_is_market else "Gtc"
            o.status = "open"
            self._match(o)
            if o.sz == 0:
                o.status = "filled"
            elif o.tif == "Ioc":
                o.status = "canceled"
            self._push_order(o)
        self._push_book(coin)

    def _book_wire(self, coin: str) -> dict[str, Any]:
        levels = []
        for is_buy in (True, False):
            agg: dict[Decimal, list[Any]] = {}
            for o in self._side(coin, is_buy):
                level = agg.setdefault(o.px, [Decimal(0), 0])
                level[0] += o.sz
                level[1] += 1
            levels.append([{"px": _s(p), "sz": _s(s), "n": n} for p, (s, n) in agg.items()])
        return {"coin": coin, "time": self.now_ms(), "levels": levels}
