"""A fake Ostium (for tests, and for `quorum live --url` offline): an ASGI app (starlette)
served by uvicorn on a loopback port, in a background thread, so the adapter talks real HTTP.

What it serves, shaped as Ostium's (``live.ostium.wire``):
- ``POST /subgraph``: GraphQL requests answered by operation name (``pairs``, ``trades``,
  ``limits``, ``orders``, ``ordersRecent``, ``ordersInitiated``, ``order``,
  ``ordersOfLimit``; their
  variables honoured), entities in the subgraph's fixed point (USDC 6 decimals, leverage
  2, prices and units 18, times in seconds);
- ``GET /PricePublish/latest-prices``: the price service's list (bid, mid, ask,
  isMarketOpen, timestampSeconds);
- ``POST /rpc``: JSON-RPC ``eth_call`` of USDC's ``balanceOf`` (the wallet);
- ``POST /chain``: the trading contract's calls as a ``Trader`` sends them
  (``FakeChainTrader``): openTrade, closeTradeMarket, cancelOpenLimitOrder; a refusal
  is HTTP 400 with the revert reason.

Its order/trade model, as Ostium's: a market open or close is a keeper order, executed at
once (or, with ``faults.keeper_hold``, when ``run_keeper`` is called) at the ask for a
buy and the bid for a sale, or cancelled by the keeper when that is beyond the order's
slippage bound ("SLIPPAGE") or the market is closed ("MARKET_CLOSED"), its collateral
refunded. Opening charges ``opening_fee_bps`` of the notional (collateral x leverage)
plus the flat ``oracle_fee`` from the collateral; a close charges the oracle fee. A trade
has units = collateral x leverage / execution price. A limit (or stop) takes its
collateral from the wallet and rests until ``set_price`` crosses it (a long limit when the
ask is at or below it, a long stop when at or above; shorts mirrored), then executes as a
keeper order naming it. ``accrue(coin, funding_rate, rollover_rate)`` adds to every open
trade on ``coin`` units x mid x rate of funding (longs pay a positive rate) and of
rollover; a close settles its share of both.

Faults (``server.faults``): ``latency_s`` before every request (or only those to
``latency_only``: "chain", "subgraph", "prices", "rpc"); ``down`` answers every
request 503; the next ``reject`` chain calls revert with ``reject_reason``; the next
``lost_reply`` chain calls run and answer 502 (the outcome is unknown to the client);
the next ``garbage`` subgraph requests get a reply that is not JSON;
``keeper_hold`` leaves keeper orders pending.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from live.ostium.gateway import OstiumConfig, OstiumGateway, TradeRefused
from live.ostium.venue import OstiumVenue

USDC = "0xe73B11Fb1e3eeEe8AF2a23079A4410Fe1B370548"  # testnet USDC, as the adapter's config
DEFAULT_PAIRS = (("BTC", 0, 50.0, 5.0), ("ETH", 1, 50.0, 5.0), ("EUR", 2, 100.0, 5.0))


@dataclass
class Faults:
    latency_s: float = 0.0
    latency_only: str | None = None  # "chain", "subgraph", "prices" or "rpc": latency there
    down: bool = False
    reject: int = 0
    reject_reason: str = "execution reverted: BELOW_MIN_POS"
    lost_reply: int = 0
    garbage: int = 0
    keeper_hold: bool = False


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


class FakeOstium:
    def __init__(self, *, pairs: tuple[tuple[str, int, float, float], ...] = DEFAULT_PAIRS,
                 opening_fee_bps: float = 10.0, oracle_fee: float = 0.1,
                 spread: float = 0.0, now_s: Any = None, auto_fund: float = 0.0) -> None:
        self.pairs = {coin: (pid, lev, min_pos) for coin, pid, lev, min_pos in pairs}
        self.coin_of = {pid: coin for coin, (pid, _, _) in self.pairs.items()}
        self.opening_fee = opening_fee_bps / 1e4
        self.oracle_fee = oracle_fee
        self.spread = spread  # half the bid-ask spread, as a share of the mid
        self.now_s = now_s or (lambda: int(time.time()))
        self.auto_fund = auto_fund  # USDC credited to an address the first time it is seen
        self.faults = Faults()
        self.lock = threading.RLock()
        self.prices: dict[str, float] = {}
        self.market_open: dict[str, bool] = {}
        self.wallets: dict[str, Wallet] = {}
        self.trades: list[Trade] = []
        self.limits: dict[str, Limit] = {}
        self.orders: dict[int, Order] = {}
        self.requests: dict[str, int] = {}
        self._order_ids = itertools.count(7_000)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.app = Starlette(routes=[
            Route("/subgraph", self._subgraph, methods=["POST"]),
            Route("/PricePublish/latest-prices", self._prices, methods=["GET"]),
            Route("/rpc", self._rpc, methods=["POST"]),
            Route("/chain", self._chain, methods=["POST"])])

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeOstium:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="critical", lifespan="off",
                                timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)

        def run() -> None:
            loop = asyncio.new_event_loop()
            loop.run_until_complete(self._server.serve(sockets=[sock]))  # type: ignore[union-attr]
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-ostium", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 5
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.005)
        if not self._server.started:
            raise RuntimeError("the fake Ostium did not start within 5 s")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._server.force_exit = True
        if self._thread is not None:
            self._thread.join(5)

    def venue(self, address: str, *, leverage: float = 5.0, slippage_pct: float = 2.0,
              timeout_s: float = 5.0) -> OstiumVenue:
        """The real adapter on this fake, trading for ``address``."""
        config = OstiumConfig.for_network("testnet", base_url=self.base_url,
                                          leverage=leverage, slippage_pct=slippage_pct,
                                          timeout_s=timeout_s)
        trader = FakeChainTrader(self.base_url, address, timeout_s)
        return OstiumVenue(OstiumGateway(config, address, trader))

    # -- test controls ---------------------------------------------------------------------

    def open_account(self, address: str, usdc: float) -> None:
        with self.lock:
            self.wallets.setdefault(address.lower(), Wallet()).usdc += usdc

    def set_price(self, coin: str, mid: float, *, market_open: bool = True) -> None:
        """Move the oracle; limits and stops it crosses execute."""
        with self.lock:
            self.prices[coin] = mid
            self.market_open[coin] = market_open
            for lim in [x for x in self.limits.values() if x.active
                        and self.coin_of[x.pair] == coin]:
                if self._crossed(lim):
                    self._execute_limit(lim)

    def accrue(self, coin: str, funding_rate: float, rollover_rate: float = 0.0) -> None:
        with self.lock:
            pid = self.pairs[coin][0]
            mid = self.prices[coin]
            for t in self.trades:
                if t.open and t.pair == pid:
                    t.funding += t.units * mid * funding_rate * (1 if t.is_long else -1)
                    t.rollover += t.units * mid * rollover_rate

    def run_keeper(self) -> None:
        """Execute every pending keeper order."""
        with self.lock:
            for o in list(self.orders.values()):
                if o.pending:
                    self._keep(o)

    def wallet(self, address: str) -> float:
        return self.wallets[address.lower()].usdc

    def account_value(self, address: str, *, settled: bool = True) -> float:
        """What the account is worth, computed from the fake's own state: the wallet,
        the limits' collateral, the trades at the mid (``settled=False``: less the
        funding and rollover they accrued, what closing everything now would leave)."""
        with self.lock:
            a = address.lower()
            value = self.wallets[a].usdc + sum(x.collateral for x in self.limits.values()
                                               if x.active and x.trader == a)
            for t in self.trades:
                if t.open and t.trader == a:
                    mid = self.prices[self.coin_of[t.pair]]
                    pnl = (mid - t.open_price) * t.units * (1 if t.is_long else -1)
                    value += t.collateral + pnl
                    if not settled:
                        value -= t.funding + t.rollover
            return value

    def position(self, address: str, coin: str) -> float:
        pid = self.pairs[coin][0]
        return sum(t.units if t.is_long else -t.units for t in self.trades
                   if t.open and t.trader == address.lower() and t.pair == pid)

    # -- the model -------------------------------------------------------------------------

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

    # -- HTTP ------------------------------------------------------------------------------

    async def _pre(self, path: str) -> Response | None:
        with self.lock:
            self.requests[path] = self.requests.get(path, 0) + 1
        if self.faults.latency_s and self.faults.latency_only in (None, path):
            await asyncio.sleep(self.faults.latency_s)
        if self.faults.down:
            return Response("service unavailable", status_code=503)
        return None

    async def _prices(self, request: Request) -> Response:
        fault = await self._pre("prices")
        if fault is not None:
            return fault
        with self.lock:
            rows = []
            for coin, mid in self.prices.items():
                bid, ask = self._bid_ask(coin)
                rows.append({"feed_id": "0x" + "00" * 32, "bid": bid, "mid": mid, "ask": ask,
                             "isMarketOpen": self.market_open.get(coin, True),
                             "isDayTradingClosed": False, "from": coin, "to": "USD",
                             "timestampSeconds": self.now_s()})
        return JSONResponse(rows)

    async def _rpc(self, request: Request) -> Response:
        body = await request.json()
        fault = await self._pre("rpc")
        if fault is not None:
            return fault
        call = body["params"][0]
        if body.get("method") != "eth_call" or call["to"].lower() != USDC.lower() or not \
                call["data"].startswith("0x70a08231"):
            return JSONResponse({"jsonrpc": "2.0", "id": body.get("id"),
                                 "error": {"code": -32000, "message": "execution reverted"}})
        holder = "0x" + call["data"][-40:]
        with self.lock:
            wallet = self._seen(holder.lower())
            usdc = 0.0 if wallet is None else wallet.usdc
        return JSONResponse({"jsonrpc": "2.0", "id": body.get("id"),
                             "result": hex(round(usdc * 1e6))})

    async def _chain(self, request: Request) -> Response:
        body = await request.json()
        fault = await self._pre("chain")
        if fault is not None:
            return fault
        with self.lock:
            if self.faults.reject:
                self.faults.reject -= 1
                return JSONResponse({"error": self.faults.reject_reason}, status_code=400)
            try:
                result = self._run_chain(body["fn"], body["trader"].lower(), body["args"])
            except _Revert as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            if self.faults.lost_reply:
                self.faults.lost_reply -= 1
                return Response("bad gateway", status_code=502)
        return JSONResponse(result)

    async def _subgraph(self, request: Request) -> Response:
        body = await request.json()
        fault = await self._pre("subgraph")
        if fault is not None:
            return fault
        with self.lock:
            if self.faults.garbage:
                self.faults.garbage -= 1
                return Response("<html>502 upstream</html>", status_code=200)
            op, v = body.get("operationName"), body.get("variables") or {}
            try:
                data = self._answer(op, v)
            except KeyError as exc:
                return JSONResponse({"errors": [{"message": f"unknown query {exc}"}]})
        return JSONResponse({"data": data})

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


class _Revert(Exception):
    pass


def _e18(x: float) -> str:
    return str(round(x * 1e18))


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
