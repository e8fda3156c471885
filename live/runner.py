"""Live runner: bars from async feeds go through the same single-threaded pipeline.

Feeds are pumped by asyncio tasks into one queue; a single consumer appends each bar to
its symbol's growing history and calls ``Engine.on_bar``, the one entry point a backtest
uses too. The engine keeps its event-time clock (bar timestamps), so the same bars give
the same signals, decisions, orders and fills as a simulated run.

Ordering: a backtest walks bars in (timestamp, symbol order). Live arrivals of one
timestamp across symbols (or across feeds) come in any order, so bars are held until
every symbol has reported that timestamp or a later one (a per-symbol watermark), then
released in (timestamp, symbol order). A symbol missing a bar holds the others back until
its next bar arrives; when all feeds end, whatever is held is released.

The run is stored with its ``mode`` ("paper": live data, simulated fills; "live": a real
venue). The bars the run saw go to the ``bars`` table as the recorder flushes (and on a
failure or interrupt), with the same causal regime labels as a backtest's. A
``KillSwitch`` (file or signal) is applied between bars, like any other message.
"""

from __future__ import annotations

import asyncio
import heapq
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from live.feeds import AsyncBarFeed
from live.history import BarHistory
from live.kill import KillRequested, KillSwitch
from sim.config import ScenarioConfig
from sim.data import MarketData
from sim.engine import Engine
from sim.messages import Bar, ScenarioEvent
from sim.recorder import Recorder
from sim.regimes.labels import LABELS, regime_codes
from sim.runner import (
    RandomStreams,
    RunResult,
    build_engine,
    check_agent_symbols,
    new_run_id,
    stored_run,
)
from sim.store import RunStore

_BEFORE_ALL = -(2**63)
_END = object()


class LiveRunner:
    """One live run of ``config`` over ``symbols`` (default: the symbols of ``config.data``)."""

    def __init__(
        self,
        config: ScenarioConfig,
        store: RunStore,
        *,
        symbols: Sequence[str] | None = None,
        run_id: str | None = None,
        data_hash: str = "live",
        flush_rows: int = 10_000,
        capacity: int = 1024,
        mode: str = "paper",
    ) -> None:
        symbols = tuple(symbols if symbols is not None else (d.symbol for d in config.data))
        if not symbols:
            raise ValueError(f"scenario {config.name!r}: no symbols to trade")
        self.config = config
        self.store = store
        self.run_id = run_id or new_run_id()
        self.data_hash = data_hash
        self.mode = mode
        self.symbols = symbols
        self.histories = [BarHistory(sym, capacity) for sym in symbols]
        # A MarketData whose bars grow: build_engine wires views over them exactly as a
        # backtest does. The walk order is empty: bars come from feeds, not from here.
        data = MarketData(tuple(self.histories), np.empty(0, np.int32), np.empty(0, np.int64))
        check_agent_symbols(config, data)
        streams = RandomStreams.spawn(config.seed, len(config.data), len(config.agents))
        self.recorder = Recorder(store, self.run_id, symbols, [a.name for a in config.agents],
                                 config.consensus.method, flush_rows=flush_rows)
        self.engine: Engine = build_engine(config, data, self.recorder, streams.agents)
        self._index = {sym: s for s, sym in enumerate(symbols)}
        self._watermark = [_BEFORE_ALL] * len(symbols)
        self._held: list[tuple[int, int, Bar]] = []  # heap keyed (ts, symbol index)
        self._bars_written = [0] * len(symbols)
        self.recorder.before_flush.append(self._write_bars)
        self.killed_by: str | None = None

    @property
    def bars_seen(self) -> int:
        return self.engine.bars_seen

    async def run(
        self, feeds: Sequence[AsyncBarFeed], kill_switch: KillSwitch | None = None
    ) -> RunResult:
        """Consume ``feeds`` until all end; the run is stored as completed, failed or
        interrupted (cancelled or Ctrl-C), like a backtest."""
        with stored_run(self.store, self.run_id, self.config, self.data_hash, self.recorder,
                        self.engine, self.mode):
            await self._consume(feeds, kill_switch)
            self._release(None)
            self.engine.finish()
        return RunResult(self.run_id, "completed", self.bars_seen)

    async def _consume(
        self, feeds: Sequence[AsyncBarFeed], kill_switch: KillSwitch | None = None
    ) -> None:
        queue: asyncio.Queue[object] = asyncio.Queue()
        pumps = [asyncio.create_task(_pump(feed, queue)) for feed in feeds]
        # The watcher does not count as a feed: the session ends when the feeds do.
        watchers = ([asyncio.create_task(kill_switch.watch(queue))]
                    if kill_switch is not None else [])
        try:
            active = len(pumps)
            while active:
                item = await queue.get()
                if item is _END:
                    active -= 1
                elif isinstance(item, KillRequested):
                    self.kill(item.source)
                elif isinstance(item, BaseException):
                    raise item
                else:
                    self.accept(item)  # type: ignore[arg-type]
        finally:
            for task in pumps + watchers:
                task.cancel()
            await asyncio.gather(*pumps, *watchers, return_exceptions=True)

    def kill(self, source: str) -> None:
        """Pull the scenario's kill switch now: it takes effect before the next bar (only
        position-reducing orders pass; with ``flatten_on_trip`` positions are closed)."""
        if self.killed_by is not None:
            return
        self.killed_by = source
        now = self.engine.clock.now_ns()
        print(f"quorum live: KILL SWITCH pulled by {source} (run {self.run_id})",
              file=sys.stderr, flush=True)
        self.engine.schedule_events([ScenarioEvent(now, "kill_switch")])

    def accept(self, bar: Bar) -> None:
        """Take one closed bar; pass on every held bar all symbols have now got past."""
        s = self._index.get(bar.symbol)
        if s is None:
            raise ValueError(f"bar for unknown symbol {bar.symbol!r} (trading {self.symbols})")
        if bar.ts <= self._watermark[s]:
            raise ValueError(f"{bar.symbol}: bar at {bar.ts} does not follow the bar at "
                             f"{self._watermark[s]}: feed out of order or repeated")
        self._watermark[s] = bar.ts
        heapq.heappush(self._held, (bar.ts, s, bar))
        self._release(min(self._watermark))

    def _release(self, upto: int | None) -> None:
        """Send held bars with ts <= ``upto`` (all if None) into the engine, in sim order."""
        held = self._held
        if not held or (upto is not None and held[0][0] > upto):
            return
        on_bar = self.engine.on_bar
        histories = self.histories
        while held and (upto is None or held[0][0] <= upto):
            ts, s, bar = heapq.heappop(held)
            ts = int(ts)
            o, h, lo, c, v = (float(bar.open), float(bar.high), float(bar.low),
                              float(bar.close), float(bar.volume))
            n = histories[s].append(ts, o, h, lo, c, v)
            on_bar(s, n, ts, o, h, lo, c, v)
        self.recorder.maybe_flush()


    def _write_bars(self) -> None:
        """Append the bars accepted since the last write (a ``before_flush`` hook), with
        causal regime labels: a label depends on past closes only, so labelling the whole
        history and keeping the new tail gives what a backtest of these bars stores."""
        parts = []
        for s, history in enumerate(self.histories):
            start, n = self._bars_written[s], len(history)
            if start == n:
                continue
            ts, close = history.column("ts"), history.column("close")
            codes = regime_codes(ts, close)[start:]
            cols = {"ts": pa.array(ts[start:], pa.timestamp("ns")),
                    "symbol": pa.array([history.symbol] * (n - start), pa.string())}
            for name in ("open", "high", "low", "close", "volume"):
                cols[name] = history.column(name)[start:]
            cols["regime"] = pa.array([LABELS[c] for c in codes], pa.string())
            cols["source_regime"] = pa.nulls(n - start, pa.string())
            cols["filled"] = np.zeros(n - start, dtype=bool)
            parts.append(pa.table(cols))
            self._bars_written[s] = n
        if parts:
            self.store.append(self.run_id, "bars", pa.concat_tables(parts))


async def _pump(feed: AsyncBarFeed, queue: asyncio.Queue[object]) -> None:
    """Deliver one feed's bars to the queue; an error is delivered too, then the feed ends."""
    try:
        async for bar in feed:
            queue.put_nowait(bar)
    except Exception as exc:
        queue.put_nowait(exc)
        return
    queue.put_nowait(_END)


async def run_live(
    config: ScenarioConfig, store: RunStore, feeds: Sequence[AsyncBarFeed], **kwargs: Any
) -> RunResult:
    """Build a ``LiveRunner`` (keyword arguments go to it) and run it over ``feeds``."""
    return await LiveRunner(config, store, **kwargs).run(feeds)
