"""Bars from Ostium's price feed, for paper sessions (``live.feeds.AsyncBarFeed``).

Ostium is priced by oracles: it publishes prices, not candles or trades. So a paper session
on Ostium samples the price service every ``poll_s`` and builds each symbol's bar of an
interval from the mids sampled in it (open: the first, close: the last; volume: how many
samples, since an oracle has no traded volume). A bar is yielded at the first poll at or
after its close time, before that poll's sample is added, so a bar never holds a price
from after its close (no lookahead). Bars are labelled by open time (ns).

What is not sampled: a pair whose market is closed (``isMarketOpen`` false: its price is
stale and the keeper executes nothing), and anything while the service does not answer;
an interval with no sample yields no bar. A service that does not answer for
``give_up_s`` in a row ends the feed with its error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass

import httpx

from live.clock import PacingClock
from live.ostium.wire import OstiumPrice, OstiumWireError
from sim.messages import Bar

_NS = 1_000_000_000


@dataclass(slots=True)
class _Building:
    ts: int
    open: float
    high: float
    low: float
    close: float
    samples: int


class OstiumPriceFeed:
    """Closed bars of ``coins`` (symbol -> Ostium coin) from ``prices`` (e.g.
    ``OstiumVenue.prices``), paced by ``clock``."""

    def __init__(self, prices: Callable[[], Awaitable[Mapping[str, OstiumPrice]]],
                 coins: Mapping[str, str], interval_ns: int, clock: PacingClock, *,
                 poll_s: float = 1.0, give_up_s: float = 60.0) -> None:
        if interval_ns <= 0 or poll_s <= 0:
            raise ValueError("interval and poll period must be positive")
        if poll_s * _NS > interval_ns:
            raise ValueError(f"poll_s {poll_s} is longer than the interval: a bar would "
                             "hold at most one sample")
        self.prices = prices
        self.coins = dict(coins)
        self.interval_ns = interval_ns
        self.clock = clock
        self.poll_ns = int(poll_s * _NS)
        self.give_up_ns = int(give_up_s * _NS)
        self.polls = 0  # polls answered (or failed)
        self.failures = 0

    async def __aiter__(self) -> AsyncIterator[Bar]:
        building: dict[str, _Building] = {}
        next_poll = self.clock.now_ns()
        last_ok = next_poll
        while True:
            await self.clock.sleep_until(next_poll)
            now = self.clock.now_ns()
            closed = sorted((b.ts, s) for s, b in building.items()
                            if b.ts + self.interval_ns <= now)
            for ts, symbol in closed:
                b = building.pop(symbol)
                yield Bar(symbol, ts, b.open, b.high, b.low, b.close, float(b.samples))
            try:
                quotes = await self.prices()
            except (OstiumWireError, httpx.HTTPError) as exc:
                self.failures += 1
                self.polls += 1
                if now - last_ok >= self.give_up_ns:
                    raise OstiumWireError(f"no answer for {(now - last_ok) / _NS:g} s: "
                                          f"{exc}") from None
                quotes = {}
            else:
                self.polls += 1
                last_ok = now
            start = now - now % self.interval_ns
            for symbol, coin in self.coins.items():
                q = quotes.get(coin)
                if q is None or not q.open:
                    continue
                bar = building.get(symbol)
                if bar is None:
                    building[symbol] = _Building(start, q.mid, q.mid, q.mid, q.mid, 1)
                else:
                    bar.high, bar.low = max(bar.high, q.mid), min(bar.low, q.mid)
                    bar.close = q.mid
                    bar.samples += 1
            next_poll += self.poll_ns
            if next_poll <= now:  # fell behind (a slow answer): poll again at once
                next_poll = now + 1
