"""Closed candles from Hyperliquid as a live bar feed (``live.feeds.AsyncBarFeed``).

Hyperliquid pushes the candle of the current interval over and over as trades happen
(``candle`` subscription; each push is the whole aggregate so far). A bar may enter the
pipeline only once it is final, so this feed decides when a candle has *closed*:

1. **A later candle arrived** on the stream for the same coin and interval. Pushes of one
   subscription come in order on one socket, so the last push of the earlier candle is
   its final state. This is the normal path: no extra request, no added delay.
2. **The wall clock passed its close time by ``close_grace``** (default 2 s) and nothing
   later came (a quiet market pushes nothing). The feed then asks the REST history
   (``candleSnapshot``) and takes the candles whose close + grace has passed. If the
   venue has none yet, it asks again one interval later.

What is yielded, per symbol, is strictly increasing in open time, each bar once:

- anything at or before the last bar yielded is dropped (repeats after a reconnect);
- a gap (a candle closes but the previous expected one was never seen, e.g. after a
  dropped WebSocket) is filled first from ``candleSnapshot``: those candles are closed,
  since a later one exists;
- after a reconnect the candle that was open is not trusted (pushes were missed), the
  REST history is asked for what closed meanwhile (rule 2), and the open candle is
  taken again from the next pushes (each push carries the full aggregate).

Warm-up: ``warmup_bars`` closed candles per symbol are fetched from ``candleSnapshot`` at
start (closed by rule 2 at that moment, so never the open candle: no lookahead) and
yielded first, as ordinary bars. The stream is subscribed before the history is fetched,
so nothing falls between the two. A venue whose history cannot give that many (a new
listing, quiet intervals without candles) is an error naming ``live.warmup_bars``, never a
silently shorter warm-up: ``check_warmup`` before a session starts (bad input: nothing
is stored yet), and the warm-up itself refuses a short history.

Bars are labelled by open time (ns), the convention every backtest bar follows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from live.clock import PacingClock, WallClock
from live.hyperliquid.config import HyperliquidConfig
from live.hyperliquid.stream import HyperliquidStream, candle
from live.hyperliquid.venue import HyperliquidVenue
from sim.config_base import ConfigError
from sim.messages import Bar

log = logging.getLogger(__name__)

# The candle intervals Hyperliquid serves, in nanoseconds ("1M", a calendar month, is not
# a fixed duration and is not offered).
INTERVALS = {
    "1m": 60, "3m": 180, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600, "2h": 7200,
    "4h": 14_400, "8h": 28_800, "12h": 43_200, "1d": 86_400, "3d": 259_200, "1w": 604_800,
}
_NS = 1_000_000_000
_MS = 1_000_000


def hyperliquid_interval(interval_ns: int) -> str:
    """The Hyperliquid name of a candle interval given in ns; ValueError if it has none."""
    for name, seconds in INTERVALS.items():
        if seconds * _NS == interval_ns:
            return name
    offered = ", ".join(INTERVALS)
    raise ValueError(f"Hyperliquid has no {interval_ns / _NS:g}s candles (offered: {offered})")


@dataclass(slots=True)
class _Coin:
    symbol: str
    coin: str
    next_ts: int | None = None  # open time of the next bar owed (None: nothing seen yet)
    open: Bar | None = None  # the latest push of the candle still open
    retry_at: int | None = None  # after a REST check that found nothing closed
    live_bars: int = 0  # bars yielded after the warm-up


class HyperliquidCandleFeed:
    """Closed candles of ``coins`` (symbol -> coin) at ``interval_ns``.

    ``max_bars``: end after that many bars per symbol past the warm-up (None: run until
    cancelled). ``clock`` decides when a candle is closed by time (rule 2); it is the wall
    clock except in tests and replays (a sandbox's accelerated clock: ``close_grace_ns``
    stays real time, see below). ``venue`` (for REST) and ``stream`` may be given;
    by default both are built from ``config``.
    """

    def __init__(self, config: HyperliquidConfig, coins: Mapping[str, str], interval_ns: int,
                 *, warmup_bars: int = 0, close_grace_ns: int = 2 * _NS,
                 max_bars: int | None = None, clock: PacingClock | None = None,
                 venue: HyperliquidVenue | None = None,
                 stream: HyperliquidStream | None = None,
                 on_event: Callable[[str, Bar], None] | None = None) -> None:
        if not coins:
            raise ValueError("no coins to subscribe to")
        self.interval = hyperliquid_interval(interval_ns)
        self.interval_ns = interval_ns
        self.warmup_bars = warmup_bars
        self.max_bars = max_bars
        self.clock = clock or WallClock()
        self.grace_ns = close_grace_ns
        # How long past a close to wait for the push that closes it before asking REST
        # (rule 2). The wait is for the transport (a push on its way), so it is real
        # time: on a clock running ``speed`` times faster (a sandbox replay) it spans as
        # much more clock time, or every few milliseconds of jitter would send the feed
        # to REST. What counts as closed (``_closed_by``) stays ``close_grace_ns``.
        self.push_wait_ns = int(close_grace_ns * getattr(self.clock, "speed", 1.0))
        self._own_venue = venue is None
        self.venue = venue or HyperliquidVenue(config)
        self.coins = {coin: _Coin(symbol, coin) for symbol, coin in coins.items()}
        self.stream = stream or HyperliquidStream(
            config.stream_url, [candle(c, self.interval) for c in self.coins],
            ping_s=config.ws_ping_s, backoff_s=min(0.5, config.backoff_s),
            max_backoff_s=config.max_backoff_s, give_up_s=config.ws_give_up_s)
        self.on_event = on_event  # (how the bar closed, bar): "push", "rest", "warmup"
        self.rest_checks = 0  # candleSnapshot requests made (warm-up, gaps, timers)
        self._changed = asyncio.Event()

    # -- the feed --------------------------------------------------------------------------

    async def __aiter__(self) -> AsyncIterator[Bar]:
        inbox: asyncio.Queue[Any] = asyncio.Queue()
        reader = asyncio.create_task(self._read(inbox))
        ticker = asyncio.create_task(self._tick(inbox))
        try:
            for bar in await self._warmup():
                yield bar
            while not self._done():
                item = await inbox.get()
                if isinstance(item, BaseException):
                    raise item
                for bar in await self._handle(item):  # _emit stops at max_bars itself
                    yield bar
                self._changed.set()
        finally:
            reader.cancel()
            ticker.cancel()
            await asyncio.gather(reader, ticker, return_exceptions=True)
            await self.stream.close()
            if self._own_venue:
                await self.venue.aclose()

    def _done(self) -> bool:
        return self.max_bars is not None and all(
            c.live_bars >= self.max_bars for c in self.coins.values())

    async def _read(self, inbox: asyncio.Queue[Any]) -> None:
        try:
            async for msg in self.stream:
                inbox.put_nowait(msg)
        except Exception as exc:  # the stream gave up: the feed fails with its error
            inbox.put_nowait(exc)

    async def _tick(self, inbox: asyncio.Queue[Any]) -> None:
        """Wake the feed when a candle is due by time (rule 2), or when state changed."""
        while True:
            self._changed.clear()
            due = [d for c in self.coins.values() if (d := self._deadline(c)) is not None]
            waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._changed.wait())]
            if due:
                waits.append(asyncio.ensure_future(self.clock.sleep_until(min(due))))
            done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            if due and waits[1] in done:
                inbox.put_nowait({"channel": "_due"})
                await self._changed.wait()  # until the feed has acted on it

    def _deadline(self, c: _Coin) -> int | None:
        if c.retry_at is not None:
            return c.retry_at
        if c.open is not None:
            return c.open.ts + self.interval_ns + self.push_wait_ns
        if c.next_ts is not None:
            return c.next_ts + self.interval_ns + self.push_wait_ns
        return None

    # -- events ----------------------------------------------------------------------------

    async def _handle(self, msg: dict[str, Any]) -> list[Bar]:
        channel = msg.get("channel")
        if channel == "candle":
            return await self._on_push(msg["data"])
        if channel == "reconnected":
            log.warning("candle stream reconnected: backfilling from candleSnapshot")
            out = []
            for c in self.coins.values():
                c.open = None  # pushes were missed: take it again from the next push
                out += await self._rest_closed(c)
            return out
        if channel == "_due":
            now = self.clock.now_ns()
            out = []
            for c in self.coins.values():
                deadline = self._deadline(c)
                if deadline is not None and deadline <= now:
                    out += await self._rest_closed(c)
            return out
        return []

    async def _on_push(self, data: dict[str, Any]) -> list[Bar]:
        c = self.coins.get(data.get("s", ""))
        if c is None or data.get("i") != self.interval:
            return []
        bar = Bar(c.symbol, int(data["t"]) * _MS, float(data["o"]), float(data["h"]),
                  float(data["l"]), float(data["c"]), float(data["v"]))
        if c.next_ts is not None and bar.ts < c.next_ts:
            return []  # yielded already (a repeat, or REST got there first)
        if c.open is None or bar.ts == c.open.ts:
            if c.open is None and c.next_ts is not None and bar.ts > c.next_ts:
                # candles were missed before this one (a reconnect): they are closed now
                out = await self._rest_between(c, c.next_ts, bar.ts)
                c.open = bar
                return out
            c.open = bar
            return []
        if bar.ts < c.open.ts:
            log.warning("%s: candle %d pushed after %d; ignored", c.coin, bar.ts, c.open.ts)
            return []
        closed, c.open = c.open, bar  # rule 1: a later candle closes the open one
        out = []
        if c.next_ts is not None and closed.ts > c.next_ts:
            out = await self._rest_between(c, c.next_ts, closed.ts)
        return [*out, *self._emit(c, [closed], "push")]

    # -- REST ------------------------------------------------------------------------------

    async def check_warmup(self) -> None:
        """ConfigError (``live.warmup_bars``) unless the venue has ``warmup_bars`` closed
        candles of every coin now: asked before a session starts, so a short history is
        bad input, not a run that warms up on less than it was told."""
        if not self.warmup_bars:
            return
        try:
            now = self.clock.now_ns()
            for c in self.coins.values():
                rows = await self._history(c, now)
                if len(rows) < self.warmup_bars:
                    raise ConfigError(self._short(c, len(rows)))
        except BaseException:
            if self._own_venue:
                await self.venue.aclose()
            raise

    def _short(self, c: _Coin, found: int) -> str:
        return (f"live.warmup_bars = {self.warmup_bars}: Hyperliquid has {found} closed "
                f"{self.interval} candle(s) of {c.coin} in the last {self.warmup_bars} "
                "intervals; lower live.warmup_bars (a warm-up shorter than asked would "
                "leave the agents colder than their backtest)")

    async def _history(self, c: _Coin, now: int) -> list[Bar]:
        """The closed candles of the last ``warmup_bars`` intervals (at most that many)."""
        start = now - (self.warmup_bars + 2) * self.interval_ns - self.grace_ns
        rows = [b for b in await self._snapshot(c, start, now) if self._closed_by(b, now)]
        return rows[-self.warmup_bars:]

    async def _warmup(self) -> list[Bar]:
        if not self.warmup_bars:
            return []
        now = self.clock.now_ns()
        out = []
        for c in self.coins.values():
            rows = await self._history(c, now)
            if len(rows) < self.warmup_bars:  # checked up front too (``check_warmup``)
                raise ValueError(self._short(c, len(rows)))
            out += self._emit(c, rows, "warmup", warmup=True)
        return out

    async def _rest_closed(self, c: _Coin) -> list[Bar]:
        """Rule 2: candles closed by the clock since the last bar yielded."""
        now = self.clock.now_ns()
        start = c.next_ts if c.next_ts is not None else (
            c.open.ts if c.open is not None else now - 2 * self.interval_ns)
        rows = [b for b in await self._snapshot(c, start, now) if self._closed_by(b, now)]
        out = self._emit(c, rows, "rest")
        if c.open is not None and c.next_ts is not None and c.open.ts < c.next_ts:
            c.open = None  # REST gave its final state
        c.retry_at = None if out else now + self.interval_ns
        return out

    async def _rest_between(self, c: _Coin, start: int, end: int) -> list[Bar]:
        """Candles opening in [start, end): closed, since a candle at ``end`` exists."""
        rows = [b for b in await self._snapshot(c, start, end - 1) if start <= b.ts < end]
        return self._emit(c, rows, "rest")

    async def _snapshot(self, c: _Coin, start_ns: int, end_ns: int) -> list[Bar]:
        self.rest_checks += 1
        bars = await self.venue.candles(c.coin, self.interval, max(0, start_ns) // _MS,
                                        end_ns // _MS)
        return sorted((Bar(c.symbol, b.ts, b.open, b.high, b.low, b.close, b.volume)
                       for b in bars), key=lambda b: b.ts)

    def _closed_by(self, bar: Bar, now: int) -> bool:
        return bar.ts + self.interval_ns + self.grace_ns <= now

    def _emit(self, c: _Coin, bars: list[Bar], how: str, warmup: bool = False) -> list[Bar]:
        """Pass bars newer than the last one yielded, in order; advance the watermark."""
        out = []
        for bar in bars:
            if c.next_ts is not None and bar.ts < c.next_ts:
                continue
            if not warmup:
                if self.max_bars is not None and c.live_bars >= self.max_bars:
                    break
                c.live_bars += 1
            c.next_ts = bar.ts + self.interval_ns
            c.retry_at = None
            out.append(bar)
            if self.on_event is not None:
                self.on_event(how, bar)
        return out
