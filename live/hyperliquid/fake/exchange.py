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
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from live.hyperliquid.signing import Signature, recover_l1_signer
from live.hyperliquid.wire import MIN_NOTIONAL, AssetInfo, price_error, size_error

MAKER = "0x" + "00" * 19 + "99"  # the fake's own liquidity provider
TAKER_FEE = Decimal("0.00045")
MAKER_FEE = Decimal("0.00015")
DAY_MS = 86_400_000

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


class FakeHyperliquid:
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

    # -- /info -----------------------------------------------------------------------------

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

    # -- /exchange -------------------------------------------------------------------------

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

    # -- WebSocket -------------------------------------------------------------------------

    async def _ws(self, ws: WebSocket) -> None:
        if self.faults.ws_refuse:
            await ws.close(code=1013)  # before accept: the handshake is refused
            return
        await ws.accept()
        conn = _Conn(ws, asyncio.get_running_loop())
        self._conns.append(conn)
        sender = asyncio.create_task(conn.pump())
        try:
            while True:
                msg = json.loads(await ws.receive_text())
                method = msg.get("method")
                if method == "ping":
                    self.pings += 1
                    conn.put({"channel": "pong"})
                elif method == "subscribe":
                    sub = msg["subscription"]
                    if "user" in sub:
                        sub = {**sub, "user": sub["user"].lower()}
                    conn.subs.append(sub)
                    conn.put({"channel": "subscriptionResponse", "data": msg})
                    if sub["type"] == "userFills":
                        with self.lock:
                            fills = self.fills_of(sub["user"])
                        conn.put({"channel": "userFills", "data": {
                            "isSnapshot": True, "user": sub["user"], "fills": fills}})
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            sender.cancel()
            with contextlib.suppress(ValueError):
                self._conns.remove(conn)

    def _broadcast(self, channel: str, data: Any, wants: Any) -> None:
        for conn in list(self._conns):
            if any(wants(s) for s in conn.subs):
                conn.put({"channel": channel, "data": data})

    def _push_order(self, o: Order) -> None:
        user = o.user
        self.order_log.append((o.oid, o.status))
        self._broadcast("orderUpdates", [{"order": o.wire(), "status": o.status,
                                          "statusTimestamp": self.now_ms()}],
                        lambda s: s == {"type": "orderUpdates", "user": user})

    def _push_book(self, coin: str) -> None:
        if any(s == {"type": "l2Book", "coin": coin} for c in self._conns for s in c.subs):
            self._broadcast("l2Book", self._book_wire(coin),
                            lambda s: s == {"type": "l2Book", "coin": coin})

    def _call(self, fn: Any) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(lambda: asyncio.ensure_future(fn()))


class _Conn:
    """One WebSocket: messages are queued from any thread and sent by its own task."""

    def __init__(self, ws: WebSocket, loop: asyncio.AbstractEventLoop) -> None:
        self.ws = ws
        self.loop = loop
        self.subs: list[dict[str, Any]] = []
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def put(self, msg: dict[str, Any]) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, msg)

    async def pump(self) -> None:
        with contextlib.suppress(Exception):
            while True:
                await self.ws.send_text(json.dumps(await self.queue.get()))

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close(code=1011)


def _s(d: Decimal | None) -> str:
    if d is None:
        return "0"
    text = f"{d.normalize():f}"
    return "0" if text in ("-0", "") else text


def _ok(kind: str, statuses: list[Any]) -> dict[str, Any]:
    return {"status": "ok", "response": {"type": kind, "data": {"statuses": statuses}}}


def _err(message: str) -> dict[str, Any]:
    return {"status": "err", "response": message}


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def main() -> None:
    """The fake in its own process: prints its port, runs until stdin ends."""
    import sys

    server = FakeHyperliquid(mainnet="--mainnet" in sys.argv).start()
    print(server.port, flush=True)
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
