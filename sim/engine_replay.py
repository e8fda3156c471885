"""Replay: the drivers that feed recorded data into the engine's one loop
(``Engine.on_bar``): a feed's bars (``run``), or one symbol's trades (``run_ticks``), each
trade a market event for working orders and the bars built from them on the fly; and the
garbage-collector setting a run uses (``fewer_gc_passes``).

Split from ``sim.engine`` along that seam: the engine is the loop and the decision path,
which live mode drives bar by bar itself; this is how a backtest drives it.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sim.engine_commands import _Revote
from sim.event_queue import PRIORITY_OPEN

if TYPE_CHECKING:
    from sim.clock import SimClock
    from sim.data import BarFeed
    from sim.engine_commands import Held
    from sim.event_queue import _Queued
    from sim.execution import ExecutionDesk
    from sim.orders import ExecutionSettings
    from sim.portfolio import Portfolio
    from sim.recorder import Recorder


class Replay:
    """``Engine``'s replay drivers (a mixin: the state is the engine's, declared below
    for the type checker only)."""

    if TYPE_CHECKING:
        execution: ExecutionSettings
        portfolio: Portfolio
        recorder: Recorder
        clock: SimClock
        desk: ExecutionDesk
        _last_ts: int | None
        _pending: list[Held | None]
        _queued: list[_Queued]
        _watch: list[bool]
        _tick_volume: list[float]

        def on_bar(self, s: int, n: int, ts: int, o: float, h: float, lo: float, c: float,
                   v: float) -> None: ...
        def finish(self) -> None: ...
        def _snapshot(self, ts: int) -> None: ...
        def _drain_before(self, ts: int | None, priority: int) -> None: ...
        def _release_held(self, s: int, ts: int, price: float, held: Any) -> None: ...

    def run(
        self, feed: BarFeed, chunk: int = 65_536,
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        """Replay a feed's bars (recorded or generated) through ``on_bar``, in its order."""
        on_bar = self.on_bar
        with fewer_gc_passes():
            for rows in feed.batches(chunk):
                for row in zip(*rows, strict=True):
                    on_bar(*row)
                self.recorder.maybe_flush()
                if on_progress is not None:
                    on_progress(len(rows[0]))
            self.finish()

    def run_ticks(
        self, s: int, ts: Sequence[int], price: Sequence[float], amount: Sequence[float],
        interval_ns: int, on_progress: Callable[[int], None] | None = None,
    ) -> None:
        """Tick replay of one symbol: every trade is a market event for working orders,
        and bars of ``interval_ns`` (labelled by open time, as ``sim.loaders`` builds them)
        are built on the fly and handed to ``on_bar`` when they complete, so agents see
        exactly the bars of bar replay. A decision is released at the first trade after
        the bar that caused it (that bar's successor's open, at the trade's own time)."""
        if not self.execution.ticks:
            raise ValueError("run_ticks needs ExecutionSettings(ticks=True)")
        with fewer_gc_passes():
            label = -1
            n = 0
            o = h = lo = c = v = 0.0
            on_tick = self._on_tick
            for i, (t, p, a) in enumerate(zip(ts, price, amount, strict=True)):
                start = t - t % interval_ns
                if start != label:
                    if n:
                        self._bar_done(s, n, label, o, h, lo, c, v)
                    n += 1
                    label = start
                    o = h = lo = c = p
                    v = 0.0
                    on_tick(s, t, p, a, True)
                else:
                    on_tick(s, t, p, a, False)
                if p > h:
                    h = p
                if p < lo:
                    lo = p
                c = p
                v += a
                if on_progress is not None and i % 65_536 == 65_535:
                    on_progress(65_536)
            if n:
                self._bar_done(s, n, label, o, h, lo, c, v)
            self.finish()

    def _bar_done(self, s: int, n: int, label: int, o: float, h: float, lo: float, c: float,
                  v: float) -> None:
        """A tick-built bar completed: agents see it through ``on_bar``; its equity row is
        booked now (after its last trade), as bar replay books it before the next bar."""
        self.on_bar(s, n, label, o, h, lo, c, v)
        self._snapshot(label)
        self._last_ts = None
        self.recorder.maybe_flush()

    def _on_tick(self, s: int, ts: int, price: float, amount: float, opens: bool) -> None:
        if self._queued:
            self._drain_before(ts, PRIORITY_OPEN)
        self.clock.advance_to(ts)
        portfolio = self.portfolio
        self._tick_volume[s] = amount
        if opens:  # the first trade of a bar: a pending decision meets it
            pending = self._pending[s]
            if pending is not None:
                if pending.__class__ is _Revote:
                    held = pending.held
                    self._pending[s] = _Revote(None)
                    pending = held
                else:
                    self._pending[s] = None
                if pending is not None:
                    self._release_held(s, ts, price, pending)
        if self._watch[s]:
            self.desk.trade(s, ts, price, amount)
        portfolio.price[s] = price


@contextmanager
def fewer_gc_passes(young: int = 100_000) -> Iterator[None]:
    """Run the cyclic garbage collector less often while a backtest runs.

    A run keeps hundreds of thousands of acyclic rows alive in the recorder's buffers; at
    CPython's default (a young-generation pass every 700 allocations) the collector keeps
    re-walking them and takes 40% of a multi-agent run. Cycles are still collected, just
    in larger batches. The previous thresholds are restored afterwards.
    """
    old = gc.get_threshold()
    gc.set_threshold(young, *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)
