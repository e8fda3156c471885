"""A fake Hyperliquid (the tests' exchange, and ``quorum sandbox``'s): an ASGI app
(starlette) served by uvicorn on a loopback port, in a background thread, so async clients
talk real HTTP and WebSocket.

What it does like the exchange:
- ``/exchange`` recovers the signer from the L1 signature (network as configured) and
  acts for that address (or the ``vaultAddress``, or the account an agent key was
  approved for); it refuses a reused nonce, one not above the smallest of the signer's
  100 highest, or one outside (now - 2 days, now + 1 day);
- orders: tick rules (5 significant figures, ``6 - szDecimals`` decimals; integers
  always), lot rule (``szDecimals``), $10 minimum value unless reduce-only, reduce-only
  may not increase a position, ALO refused if it would cross, IOC's rest canceled (or
  refused when nothing matched), GTC rests; price-time matching against its own book;
  triggers (TP/SL) fire when ``set_mark`` crosses them and execute as the same order (oid,
  cloid; see ``_fire_triggers``); a market trigger's limit price may not be on the wrong
  side of its trigger; cancel by oid and by cloid;
  ``updateLeverage`` within the asset's maximum;
- ``/info``: meta, allMids, l2Book, candleSnapshot, clearinghouseState (positions, and
  ``marginSummary``: ``totalRawUsd`` is the account's USDC after every fill's notional,
  fee and funding, ``accountValue`` that plus each position marked at the mid),
  userFills, userFunding (by time, at most 500 a reply, oldest first), openOrders,
  orderStatus (by oid or cloid);
- funding: ``pay_funding(coin, rate)`` charges every open position on ``coin``
  size x mark x rate (longs pay a positive rate; rounded to USDC's 6 decimals) and
  books it as a ``userFunding`` entry;
- ``/ws``: subscribe to candle, trades, l2Book, userFills (with a snapshot first),
  orderUpdates; answers ping with pong.

- margin (cross, as at Hyperliquid: docs, "Margining"): a position's initial margin is
  size x mark / leverage, the leverage being the account's for the coin
  (``updateLeverage``) or, by default, 20x capped at the asset's maximum; a resting order
  that would add to a position reserves size x its price / leverage. An order that would
  add to the account's exposure (``|position after| > |position before|``, counting
  the order in full at its own price) is refused when its margin is more than the
  account value less the margin in use, with the venue's message "Insufficient margin to
  place order. asset=N"; orders that only reduce are never refused for margin.
  ``clearinghouseState`` reports ``totalMarginUsed`` and ``withdrawable`` accordingly.

Not modelled: liquidation, maintenance margin, margin of trigger orders (checked when
they fire at Hyperliquid; not at all here), isolated margin accounting, spot, the
address-based action budget, batched grouping semantics (normalTpsl).

Faults (``server.faults``): the next N requests answered 429 or 502 without being run;
the next N exchange actions run and then answered 502 or held past the client's timeout
(the reply is lost: ambiguous for the client); added latency on every request;
``drop_websockets()`` closes every stream; ``ws_refuse`` refuses new ones meanwhile.

Split off along their seams, as mixins of ``FakeHyperliquid``: the market, its orders,
accounts, book, matching, triggers and margin (``fake.book``), the ``/info`` answers
(``fake.info``), the ``/exchange`` actions with signatures and nonces (``fake.actions``),
and the WebSocket (``fake.stream``). This module keeps the server: its lifecycle, test
controls, and HTTP with its faults.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from live.hyperliquid.fake.actions import ExchangeActions, _wall_ms
from live.hyperliquid.fake.book import Account, FakeBook, Order, _s
from live.hyperliquid.fake.info import InfoAnswers
from live.hyperliquid.fake.stream import FakeStreams, _Conn
from live.hyperliquid.wire import AssetInfo

MAKER = "0x" + "00" * 19 + "99"  # the fake's own liquidity provider

DEFAULT_ASSETS = (AssetInfo("BTC", 0, 5, 40), AssetInfo("ETH", 1, 4, 25),
                  AssetInfo("SOL", 2, 2, 20))


@dataclass
class Faults:
    """Counters are consumed one request at a time (under the server's lock)."""

    http_429: int = 0  # next N requests (any path): 429, not run
    http_5xx: int = 0  # next N requests (any path): 502, not run
    exchange_5xx_after_run: int = 0  # next N actions: run, then 502 (reply lost)
    exchange_hold_after_run: int = 0  # next N actions: run, then held `hold_s` (timeout)
    hold_s: float = 1.0
    latency_s: float = 0.0  # added before every request (on `only_path`, if set)
    retry_after: str | None = "0.05"  # Retry-After header on 429s
    only_path: str | None = None  # "/info" or "/exchange": limit the two counters above
    ws_refuse: bool = False  # while set, WebSocket handshakes are refused (403)


class FakeHyperliquid(FakeBook, InfoAnswers, ExchangeActions, FakeStreams):
    def __init__(self, *, mainnet: bool = False, assets: tuple[AssetInfo, ...] = DEFAULT_ASSETS,
                 now_ms: Any = None, auto_fund: float | None = None,
                 sandbox: Callable[[], dict[str, Any]] | None = None) -> None:
        """``now_ms``: the exchange's time (fills, funding, book stamps, nonce window;
        default the wall clock). ``auto_fund``: an
        unknown signer gets an account with that much USDC (the sandbox: any throwaway
        key can trade). ``sandbox``: what ``/info {"type": "quorumSandbox"}`` answers
        (a callable giving the dict); without it that request is unknown, as at the
        real exchange. A sandbox checks nonces against the wall clock, which is what a
        client signs with, while its own time is a replay's."""
        self.mainnet = mainnet
        self.assets = {a.name: a for a in assets}
        self.by_index = {a.index: a for a in assets}
        self.faults = Faults()
        self.now_ms = now_ms or _wall_ms
        self.auto_fund = None if auto_fund is None else Decimal(repr(auto_fund))
        self.sandbox = sandbox
        self.lock = threading.RLock()
        self.orders: dict[int, Order] = {}
        self.accounts: dict[str, Account] = {}
        self.agents: dict[str, str] = {}  # agent address -> account it trades for
        self.pings = 0
        self.nonces: dict[str, list[int]] = {}
        self.marks: dict[str, Decimal] = {}
        self.candles: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.actions_run: list[tuple[str, dict[str, Any]]] = []  # (user, action) accepted
        self.order_log: list[tuple[int, str]] = []  # (oid, status) of every orderUpdates push
        self.requests = {"/info": 0, "/exchange": 0}
        self.info_kinds: dict[str, int] = {}  # /info requests answered, by type
        # monotonic clock stamps (system-wide on Linux: comparable across processes):
        # when each candle was pushed, and when each /exchange request arrived
        self.push_log: list[tuple[int, int]] = []  # (candle open time ms, ns)
        self.exchange_log: list[int] = []
        self.played = 0  # ``play`` sequences finished
        self._playing: set[asyncio.Task[None]] = set()
        self._oids = itertools.count(1_000)
        self._tids = itertools.count(1)
        self._conns: list[_Conn] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.app = Starlette(routes=[Route("/info", self._info, methods=["POST"]),
                                     Route("/exchange", self._exchange, methods=["POST"]),
                                     Route("/_control", self._control, methods=["POST"]),
                                     WebSocketRoute("/ws", self._ws)])

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self) -> FakeHyperliquid:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="critical", lifespan="off",
                                ws_ping_interval=None, timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        started = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            loop.call_soon(started.set)
            loop.run_until_complete(self._server.serve(sockets=[sock]))  # type: ignore[union-attr]
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-hyperliquid", daemon=True)
        self._thread.start()
        started.wait(5)
        deadline = time.monotonic() + 5
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._server.force_exit = True
        if self._thread is not None:
            self._thread.join(5)

    # -- test controls ---------------------------------------------------------------------

    def open_account(self, address: str, usdc: float = 0.0) -> None:
        """An account that may trade (actions from unknown signers are refused), with
        ``usdc`` deposited."""
        with self.lock:
            acct = self.accounts.setdefault(address.lower(), Account())
            acct.raw_usd += Decimal(repr(usdc))

    def pay_funding(self, coin: str, rate: float, time_ms: int | None = None) -> None:
        """A funding settlement on ``coin`` at ``rate`` (at ``time_ms``, default now):
        every open position pays size x mark x rate (a long pays a positive rate, a short
        receives it), rounded to 6 decimals, as Hyperliquid books it to the account."""
        with self.lock:
            t = self.now_ms() if time_ms is None else int(time_ms)
            d_rate = Decimal(repr(rate))
            for acct in self.accounts.values():
                szi, entry = acct.positions.get(coin, (Decimal(0), Decimal(0)))
                if szi == 0:
                    continue
                mark = self._mid(coin) or entry
                usdc = (-szi * mark * d_rate).quantize(Decimal("0.000001"))
                acct.raw_usd += usdc
                acct.funding.append({"time": t, "hash": "0x" + "00" * 32, "delta": {
                    "type": "funding", "coin": coin, "usdc": _s(usdc), "szi": _s(szi),
                    "fundingRate": _s(d_rate), "nSamples": None}})
                acct.funding.sort(key=lambda f: f["time"])

    def account_value(self, user: str) -> float:
        """``marginSummary.accountValue`` of ``user``."""
        with self.lock:
            return float(self._clearinghouse(user.lower())["marginSummary"]["accountValue"])

    def raw_usd(self, user: str) -> float:
        acct = self.accounts.get(user.lower())
        return float(acct.raw_usd) if acct else 0.0

    def approve_agent(self, agent: str, account: str) -> None:
        self.agents[agent.lower()] = account.lower()

    def seed_book(self, coin: str, bids: list[tuple[float, float]],
                  asks: list[tuple[float, float]]) -> None:
        """Resting liquidity from the fake's own maker, best prices first or not."""
        with self.lock:
            for is_buy, levels in ((True, bids), (False, asks)):
                for px, sz in levels:
                    d_sz = Decimal(repr(sz))
                    self._rest(Order(next(self._oids), MAKER, coin, is_buy, Decimal(repr(px)),
                                     d_sz, d_sz, None, False, "Gtc", timestamp=self.now_ms()))
            self._push_book(coin)

    def quote(self, coin: str, bid: float, ask: float, size: float = 1_000.0) -> None:
        """Replace the fake maker's liquidity on ``coin`` by one bid and one ask (a test
        makes the book follow the bars it pushes); the mark follows the mid."""
        with self.lock:
            for o in self.orders.values():
                if o.user == MAKER and o.coin == coin and o.status == "open":
                    o.status = "canceled"
            self.marks[coin] = (Decimal(repr(bid)) + Decimal(repr(ask))) / 2
        self.seed_book(coin, [(bid, size)], [(ask, size)])

    def set_mark(self, coin: str, px: float) -> None:
        """Move the mark price; trigger orders it crosses fire."""
        with self.lock:
            self.marks[coin] = Decimal(repr(px))
            self._fire_triggers(coin)

    def push_candle(self, coin: str, interval: str, candle: dict[str, Any]) -> None:
        self.push_log.append((candle["t"], time.monotonic_ns()))
        with self.lock:
            rows = self.candles.setdefault((coin, interval), [])
            rows[:] = [r for r in rows if r["t"] != candle["t"]] + [candle]
        self._broadcast("candle", candle, lambda s: s == {"type": "candle", "coin": coin,
                                                          "interval": interval})

    def push_bar(self, coin: str, interval: str, interval_ms: int, t_ms: int, o: float,
                 h: float, lo: float, c: float, v: float, trades: int = 1) -> None:
        """Push a candle as Hyperliquid shapes it (numbers as strings, close time
        ``T`` = open + interval - 1 ms)."""
        self.push_candle(coin, interval, {
            "t": t_ms, "T": t_ms + interval_ms - 1, "s": coin, "i": interval,
            "o": repr(o), "c": repr(c), "h": repr(h), "l": repr(lo), "v": repr(v),
            "n": trades})

    async def play(self, coin: str, interval: str, interval_ms: int,
                   bars: list[tuple[int, float]], gap_s: float) -> None:
        """Push flat candles ``(open time ms, price)`` one every ``gap_s``, each with the
        book quoted around its price first: a market that runs in the server's process
        alone, so a client measured against it shares its process with nothing else."""
        for t_ms, px in bars:
            self.quote(coin, px - 0.1, px + 0.1, 1e6)
            self.push_bar(coin, interval, interval_ms, t_ms, px, px + 1, px - 1, px, 1.0)
            await asyncio.sleep(gap_s)
        self.played += 1

    def subscribed(self, subscription: dict[str, Any]) -> int:
        """How many open streams hold ``subscription``."""
        return sum(subscription in conn.subs for conn in list(self._conns))

    def drop_websockets(self) -> None:
        for conn in list(self._conns):
            self._call(conn.close)

    def position(self, user: str, coin: str) -> float:
        acct = self.accounts.get(user.lower())
        return float(acct.positions.get(coin, (Decimal(0), Decimal(0)))[0]) if acct else 0.0

    def user_orders(self, user: str) -> list[Order]:
        return [o for o in self.orders.values() if o.user == user.lower()]

    def fills_of(self, user: str) -> list[dict[str, Any]]:
        acct = self.accounts.get(user.lower())
        return list(acct.fills) if acct else []

    @property
    def connections(self) -> int:
        return len(self._conns)

    # -- HTTP ------------------------------------------------------------------------------

    async def _pre_faults(self, path: str) -> Response | None:
        """Faults before a request runs (its body has been read: a request that was
        received runs even if the client has given up waiting)."""
        applies = self.faults.only_path in (None, path)
        with self.lock:
            self.requests[path] += 1
        if applies and self.faults.latency_s:
            await asyncio.sleep(self.faults.latency_s)
        with self.lock:
            f = self.faults
            if applies and f.http_429:
                f.http_429 -= 1
                headers = {"retry-after": f.retry_after} if f.retry_after else {}
                return Response("rate limited", status_code=429, headers=headers)
            if applies and f.http_5xx:
                f.http_5xx -= 1
                return Response("bad gateway", status_code=502)
        return None

    async def _info(self, request: Request) -> Response:
        body = await request.json()
        fault = await self._pre_faults("/info")
        if fault is not None:
            return fault
        with self.lock:
            try:
                result = self._answer_info(body)
            except (KeyError, ValueError, TypeError) as exc:
                return Response(f"Failed to deserialize the JSON body: {exc}", status_code=422)
        return JSONResponse(result)

    async def _exchange(self, request: Request) -> Response:
        self.exchange_log.append(time.monotonic_ns())
        body = await request.json()
        fault = await self._pre_faults("/exchange")
        if fault is not None:
            return fault
        with self.lock:
            result = self._run_action(body)
            f = self.faults
            after = None
            if f.exchange_5xx_after_run:
                f.exchange_5xx_after_run -= 1
                after = "5xx"
            elif f.exchange_hold_after_run:
                f.exchange_hold_after_run -= 1
                after = "hold"
        if after == "5xx":
            return Response("bad gateway", status_code=502)
        if after == "hold":
            await asyncio.sleep(self.faults.hold_s)
        return JSONResponse(result)

    async def _control(self, request: Request) -> Response:
        """Test controls over HTTP, for a fake running in its own process (``python -m
        live.hyperliquid.fake.exchange``): {"op": method name, "args": {...}}."""
        body = await request.json()
        op, args = body["op"], body.get("args", {})
        if op == "logs":
            return JSONResponse({"pushes": self.push_log, "exchange": self.exchange_log})
        if op == "play":  # runs on in the server's loop; "played" tells when it is done
            task = asyncio.get_running_loop().create_task(self.play(**args))
            self._playing.add(task)
            task.add_done_callback(self._playing.discard)
            return JSONResponse({"result": None})
        if op == "played":
            return JSONResponse({"result": self.played})
        if op not in ("open_account", "quote", "push_bar", "subscribed", "pay_funding"):
            return Response(f"unknown op {op!r}", status_code=400)
        return JSONResponse({"result": getattr(self, op)(**args)})


def main() -> None:
    """The fake in its own process: prints its port, runs until stdin ends."""
    import sys

    server = FakeHyperliquid(mainnet="--mainnet" in sys.argv).start()
    print(server.port, flush=True)
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
