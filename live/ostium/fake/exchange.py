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

Split off along their seams, as mixins of ``FakeOstium``: the chain, its records, the
contract's calls, the keeper, with ``FakeChainTrader`` (``fake.chain``), and the subgraph's
answers (``fake.subgraph``). This module keeps the server: lifecycle, test controls, HTTP
with its faults, prices and the USDC balance.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from live.ostium.fake.chain import FakeChain, FakeChainTrader, Limit, Order, Trade, Wallet, _Revert
from live.ostium.fake.subgraph import SubgraphAnswers
from live.ostium.gateway import OstiumConfig, OstiumGateway
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


class FakeOstium(FakeChain, SubgraphAnswers):
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


