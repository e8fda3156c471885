"""The sandbox: the fake Hyperliquid playing a market, for trying live mode offline.

``quorum sandbox`` serves ``FakeHyperliquid`` on loopback and replays bars (a scenario's
data, recorded files, or a generated regime) as Hyperliquid candles: the first
``history`` bars are already history when it starts (``candleSnapshot`` serves them, so a
session can warm up), the rest are played on the **sandbox clock**, which starts at the
first played bar's open and runs ``speed`` times faster than real time.

At each bar's open the sandbox pushes the previous candle's final state, then the new
candle as it opens (open = high = low = close, no volume), as Hyperliquid pushes the
current interval's aggregate; it quotes the book around the open (the fake's own maker,
``spread_bps`` wide) so market orders of a venue session fill there. The last candle's
final state is pushed at its close.

A session must run on the same clock, or every candle would look long closed on arrival
(and be fetched over REST, slower each time, until the feed falls behind). The sandbox
answers ``/info {"type": "quorumSandbox"}`` with its clock (``probe_clock``), which
``quorum live --url`` asks for: a real exchange does not know the request, and the session
keeps the wall clock.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np

from live.clock import AcceleratedClock
from live.hyperliquid.candles import hyperliquid_interval
from live.hyperliquid.fake.exchange import FakeHyperliquid
from live.hyperliquid.wire import AssetInfo
from sim.data import SymbolBars

_MS = 1_000_000
_NS = 1_000_000_000


def size_decimals(price: float) -> int:
    """Hyperliquid-like ``szDecimals`` for an asset at ``price``: 5 for a price in the
    tens of thousands (BTC), fewer as the price falls, 0 below 1 (prices keep their 5
    significant figures within the ``6 - szDecimals`` decimals the venue allows)."""
    if not price > 0:
        return 0
    return max(0, min(5, math.floor(math.log10(price)) + 1))


@dataclass(frozen=True, slots=True)
class _Candle:
    coin: str
    t_ms: int
    o: float
    h: float
    lo: float
    c: float
    v: float


class Sandbox:
    """A fake Hyperliquid replaying ``bars`` (one ``SymbolBars`` per coin, the coin named
    by its symbol) at ``speed`` times real time after ``history`` bars of history."""

    def __init__(self, bars: Sequence[SymbolBars], *, speed: float = 1.0, history: int = 500,
                 fund: float = 100_000.0, spread_bps: float = 1.0) -> None:
        if not bars:
            raise ValueError("the sandbox needs at least one symbol's bars")
        if not speed > 0:
            raise ValueError(f"--speed must be positive, got {speed}")
        self.interval_ns = _interval(bars)
        self.interval = hyperliquid_interval(self.interval_ns)
        starts = sorted({int(b.ts[0]) for b in bars})
        times = np.unique(np.concatenate([b.ts for b in bars]))
        if history < 0 or history >= len(times):
            raise ValueError(f"--history {history}: the data has {len(times)} bar times; "
                             "history must leave at least one bar to play")
        self.bars = list(bars)
        self.speed = speed
        self.history = history
        self.spread = spread_bps / 10_000
        self.first_ts = starts[0]
        self.start_ns = int(times[history])  # the first played bar's open
        self.end_ns = int(times[-1]) + self.interval_ns
        self.clock = AcceleratedClock(self.start_ns, speed)  # restarted by ``start``
        assets = tuple(AssetInfo(b.symbol, i, size_decimals(float(b.close[0])), 50)
                       for i, b in enumerate(bars))
        self.exchange = FakeHyperliquid(assets=assets, now_ms=self._now_ms, auto_fund=fund,
                                        sandbox=self.describe)
        # Told every price the book is quoted around (coin, price), the history's last
        # close and each bar's open: another fake venue can follow the same market.
        self.on_quote: list[Callable[[str, float], None]] = []
        self.played = 0  # bar times played so far
        self.finished = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._schedule = _schedule(self.bars, times)

    # -- running -----------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.exchange.base_url

    def start(self) -> Sandbox:
        """Serve, load the history, start the clock and the replay."""
        self.exchange.start()
        for candles in self._schedule[: self.history]:
            for candle in candles:
                self._store(candle)
        for b in self.bars:  # the book at the last close of the history
            before = np.searchsorted(b.ts, self.start_ns) - 1
            if before >= 0:
                self._quote(b.symbol, float(b.close[before]))
        self.clock = AcceleratedClock(self.start_ns, self.speed)
        self._thread = threading.Thread(target=self._play, name="sandbox-replay", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.exchange.stop()

    def describe(self) -> dict[str, Any]:
        """What ``/info {"type": "quorumSandbox"}`` answers: the clock and the replay."""
        return {"nowNs": self.clock.now_ns(), "speed": self.speed, "interval": self.interval,
                "coins": [b.symbol for b in self.bars], "startNs": self.start_ns,
                "endNs": self.end_ns, "played": self.played,
                "toPlay": len(self._schedule) - self.history,
                "finished": self.finished.is_set()}

    def _now_ms(self) -> int:
        return self.clock.now_ns() // _MS

    def _play(self) -> None:
        previous: dict[str, _Candle] = {}
        for k in range(self.history, len(self._schedule)):
            candles = self._schedule[k]
            if not self._sleep_until(candles[0].t_ms * _MS):
                return
            for candle in candles:
                last = previous.get(candle.coin)
                if last is not None:
                    self._push(last)
                self._push(_Candle(candle.coin, candle.t_ms, candle.o, candle.o, candle.o,
                                   candle.o, 0.0))
                self._quote(candle.coin, candle.o)
                previous[candle.coin] = candle
            self.played += 1
        if self._sleep_until(self.end_ns):
            for last in previous.values():
                self._push(last)
            self.finished.set()

    def _sleep_until(self, ts_ns: int) -> bool:
        """Wait (in real time) until the sandbox clock reaches ``ts_ns``; False if stopped."""
        while (remaining := ts_ns - self.clock.now_ns()) > 0:
            if self._stop.wait(remaining / self.speed / _NS):
                return False
        return not self._stop.is_set()

    # -- the exchange ------------------------------------------------------------------
    def _push(self, candle: _Candle) -> None:
        self.exchange.push_bar(candle.coin, self.interval, self.interval_ns // _MS,
                               candle.t_ms, candle.o, candle.h, candle.lo, candle.c,
                               candle.v)

    def _store(self, candle: _Candle) -> None:
        """A closed candle of the history: served by ``candleSnapshot``, never pushed."""
        with self.exchange.lock:
            self.exchange.candles.setdefault((candle.coin, self.interval), []).append({
                "t": candle.t_ms, "T": candle.t_ms + self.interval_ns // _MS - 1,
                "s": candle.coin, "i": self.interval, "o": repr(candle.o),
                "c": repr(candle.c), "h": repr(candle.h), "l": repr(candle.lo),
                "v": repr(candle.v), "n": 1})

    def _quote(self, coin: str, price: float) -> None:
        half = price * self.spread / 2
        self.exchange.quote(coin, price - half, price + half, size=1e9 / price)
        for follow in self.on_quote:
            follow(coin, price)


def _interval(bars: Sequence[SymbolBars]) -> int:
    steps = [int(np.min(np.diff(b.ts))) for b in bars if len(b) > 1]
    if not steps:
        raise ValueError("the sandbox needs at least two bars to know their interval")
    return min(steps)


def _schedule(bars: Sequence[SymbolBars], times: np.ndarray) -> list[list[_Candle]]:
    """The candles opening at each bar time, in symbol order."""
    out: list[list[_Candle]] = [[] for _ in times]
    for b in bars:
        at = np.searchsorted(times, b.ts)
        for i, k in enumerate(at):
            out[int(k)].append(_Candle(
                b.symbol, int(b.ts[i]) // _MS, float(b.open[i]), float(b.high[i]),
                float(b.low[i]), float(b.close[i]), float(b.volume[i])))
    return out


def probe_clock(base_url: str, timeout_s: float = 2.0) -> AcceleratedClock | None:
    """The sandbox clock of the exchange at ``base_url`` (an ``AcceleratedClock`` running
    as the sandbox's does), or None when it is not a sandbox (any other answer)."""
    try:
        reply = httpx.post(base_url.rstrip("/") + "/info", json={"type": "quorumSandbox"},
                           timeout=timeout_s)
        if reply.status_code != 200:
            return None
        body = reply.json()
        return AcceleratedClock(int(body["nowNs"]), float(body["speed"]))
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None


def wall_seconds(sandbox: Sandbox) -> float:
    """Real seconds the replay takes from its start."""
    return (sandbox.end_ns - sandbox.start_ns) / sandbox.speed / _NS


