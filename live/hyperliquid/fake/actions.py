"""The fake Hyperliquid's ``/exchange``: an action's L1 signature recovered to its signer
(for that address, its ``vaultAddress``, or the account an agent key was approved for),
the nonce rules (no reuse, above the smallest of the signer's 100 highest, within (now -
2 days, now + 1 day)), and the actions: order (tick, lot, minimum value, reduce-only,
margin, ALO, IOC, GTC, triggers), cancel by oid or cloid, updateLeverage.

Split from ``live.hyperliquid.fake.exchange`` along that seam: the server answers the
request (and its faults); this runs the action against the book (``fake.book``).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from live.hyperliquid.fake.book import Account, Order, _s
from live.hyperliquid.signing import Signature, recover_l1_signer
from live.hyperliquid.wire import MIN_NOTIONAL, AssetInfo, price_error, size_error

DAY_MS = 86_400_000


class ExchangeActions:
    """``FakeHyperliquid``'s ``/exchange`` actions (a mixin: the state is the exchange's,
    declared below for the type checker only)."""

    if TYPE_CHECKING:
        mainnet: bool
        assets: dict[str, AssetInfo]
        by_index: dict[int, AssetInfo]
        orders: dict[int, Order]
        accounts: dict[str, Account]
        agents: dict[str, str]
        nonces: dict[str, list[int]]
        actions_run: list[tuple[str, dict[str, Any]]]
        auto_fund: Decimal | None
        sandbox: Callable[[], dict[str, Any]] | None
        now_ms: Callable[[], int]
        _oids: itertools.count[int]

        def _short_of_margin(self, user: str, asset: AssetInfo, is_buy: bool, sz: Decimal,
                             px: Decimal) -> bool: ...
        def _crosses(self, order: Order) -> bool: ...
        def _best(self, coin: str, is_buy: bool) -> Order | None: ...
        def _match(self, order: Order) -> tuple[Decimal, Decimal]: ...
        def _rest(self, order: Order) -> None: ...
        def _push_order(self, o: Order) -> None: ...
        def _push_book(self, coin: str) -> None: ...

    def _run_action(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            action, nonce = body["action"], int(body["nonce"])
            sig = Signature.from_wire(body["signature"])
            vault = body.get("vaultAddress")
            signer = recover_l1_signer(action, sig, nonce, mainnet=self.mainnet,
                                       vault_address=vault,
                                       expires_after=body.get("expiresAfter"))
        except (KeyError, ValueError, TypeError) as exc:
            return _err(f"Invalid signature or payload: {exc}")
        problem = self._use_nonce(signer, nonce)
        if problem:
            return _err(problem)
        user = (vault or self.agents.get(signer, signer)).lower()
        if user not in self.accounts and self.auto_fund is not None and not vault:
            self.accounts[user] = Account(raw_usd=self.auto_fund)
        if user not in self.accounts:
            return _err(f"User or API Wallet {signer} does not exist.")
        kind = action.get("type")
        if kind == "order":
            statuses = [self._place(user, o) for o in action["orders"]]
            result = _ok("order", statuses)
        elif kind == "cancel":
            result = _ok("cancel", [self._cancel(user, c["a"], oid=c["o"])
                                    for c in action["cancels"]])
        elif kind == "cancelByCloid":
            result = _ok("cancel", [self._cancel(user, c["asset"], cloid=c["cloid"])
                                    for c in action["cancels"]])
        elif kind == "updateLeverage":
            asset = self.by_index.get(action["asset"])
            if asset is None or not 1 <= action["leverage"] <= asset.max_leverage:
                return _err("Invalid leverage value")
            self.accounts[user].leverage[asset.name] = (action["leverage"], action["isCross"])
            result = {"status": "ok", "response": {"type": "default"}}
        else:
            return _err(f"Unsupported action {kind!r}")
        self.actions_run.append((user, action))
        return result

    def _use_nonce(self, signer: str, nonce: int) -> str | None:
        # A client signs with its wall clock: in a sandbox, whose own time is a replay's,
        # nonces are checked against the wall clock too.
        now = _wall_ms() if self.sandbox is not None else self.now_ms()
        if not now - 2 * DAY_MS < nonce < now + DAY_MS:
            return f"Invalid nonce: {nonce} is outside the allowed time window"
        kept = self.nonces.setdefault(signer, [])
        if nonce in kept:
            return "Invalid nonce: duplicate nonce"
        if len(kept) >= 100 and nonce <= kept[0]:
            return "Invalid nonce: nonce too small"
        kept.append(nonce)
        kept.sort()
        del kept[:-100]
        return None

    def _place(self, user: str, w: dict[str, Any]) -> Any:
        asset = self.by_index.get(w["a"])
        if asset is None:
            return {"error": "Invalid asset"}
        coin = asset.name
        problem = price_error(w["p"], asset) or size_error(w["s"], asset)
        trig = w["t"].get("trigger")
        if trig is not None and problem is None:
            problem = price_error(trig["triggerPx"], asset)
        px, sz = Decimal(w["p"]), Decimal(w["s"])
        if trig is not None and problem is None and trig["isMarket"] and (
                px > Decimal(trig["triggerPx"]) if not w["b"] else px < Decimal(trig["triggerPx"])):
            # a market trigger's limit price bounds its slippage: a sell's may not be above
            # its trigger, a buy's not below (nautilus_trader#3611: "Invalid TP/SL price")
            problem = "Invalid TP/SL price."
        if problem:
            return {"error": f"{problem} asset={asset.index}"}
        cloid = w.get("c")
        if cloid and any(o.user == user and o.cloid == cloid for o in self.orders.values()):
            return {"error": "Duplicate cloid"}
        if not w["r"] and px * sz < Decimal(str(MIN_NOTIONAL)):
            return {"error": f"Order must have minimum value of ${MIN_NOTIONAL:g}. "
                             f"asset={asset.index}"}
        if w["r"]:
            szi = self.accounts[user].positions.get(coin, (Decimal(0), Decimal(0)))[0]
            if szi == 0 or (szi > 0) == w["b"]:
                return {"error": "Reduce only order would increase position. "
                                 f"asset={asset.index}"}
        elif trig is None and self._short_of_margin(user, asset, w["b"], sz, px):
            return {"error": f"Insufficient margin to place order. asset={asset.index}"}
        order = Order(next(self._oids), user, coin, w["b"], px, sz, sz, cloid, w["r"],
                      w["t"].get("limit", {}).get("tif", "Gtc"), timestamp=self.now_ms())
        if trig is not None:
            order.trigger_px = Decimal(trig["triggerPx"])
            order.trigger_is_market = bool(trig["isMarket"])
            order.tpsl = trig["tpsl"]
            order.tif = "Trigger"
            self.orders[order.oid] = order
            self._push_order(order)
            return {"resting": {"oid": order.oid, **({"cloid": cloid} if cloid else {})}}
        if order.tif == "Alo" and self._crosses(order):
            bid, ask = self._best(coin, True), self._best(coin, False)
            return {"error": "Post only order would have immediately matched, bbo was "
                             f"{_s(bid.px) if bid else '-'}@{_s(ask.px) if ask else '-'}. "
                             f"asset={asset.index}"}
        filled, notional = self._match(order)
        if order.tif == "Ioc" and filled == 0:
            return {"error": "Order could not immediately match against any resting orders. "
                             f"asset={asset.index}"}
        extra = {"cloid": cloid} if cloid else {}
        if order.sz > 0 and order.tif == "Gtc":
            self._rest(order)
            self._push_order(order)
            self._push_book(coin)
            return {"resting": {"oid": order.oid, **extra}}
        order.status = "filled" if order.sz == 0 else "canceled"
        self.orders[order.oid] = order
        self._push_order(order)
        self._push_book(coin)
        return {"filled": {"totalSz": _s(filled), "avgPx": _s(notional / filled),
                           "oid": order.oid, **extra}}

    def _cancel(self, user: str, asset_index: int, *, oid: int | None = None,
                cloid: str | None = None) -> Any:
        for o in self.orders.values():
            if o.user == user and o.status == "open" and self.assets[o.coin].index == asset_index \
                    and (o.oid == oid if oid is not None else o.cloid == str(cloid).lower()):
                o.status = "canceled"
                self._push_order(o)
                self._push_book(o.coin)
                return "success"
        return {"error": "Order was never placed, already canceled, or filled. "
                         f"asset={asset_index}"}


def _ok(kind: str, statuses: list[Any]) -> dict[str, Any]:
    return {"status": "ok", "response": {"type": kind, "data": {"statuses": statuses}}}


def _err(message: str) -> dict[str, Any]:
    return {"status": "err", "response": message}


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000
