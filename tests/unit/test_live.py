"""Live building blocks: growing history, clocks, and the runner's ordering and failures."""

from __future__ import annotations

import asyncio
import sys
import time

import numpy as np
import pytest

from live.clock import AcceleratedClock, WallClock
from live.feeds import PacedReplayFeed
from live.history import BarHistory
from live.interpreter import SESSION_SWITCH_S, short_thread_switches
from live.runner import LiveRunner
from sim.config import parse_scenario
from sim.messages import Bar
from sim.store import DuckDBStore
from sim.view import MarketView

MIN = 60 * 10**9


def test_history_grows_and_views_stay_read_only_and_stable():
    hist = BarHistory("BTC", capacity=2)
    view = MarketView(hist)
    held = []
    for i in range(10):
        n = hist.append(i * MIN, 1.0 + i, 2.0 + i, 0.5 + i, 1.5 + i, 10.0)
        view.n = n
        held.append(view.history("close"))
    assert len(hist) == 10
    np.testing.assert_array_equal(view.history("close"), 1.5 + np.arange(10))
    np.testing.assert_array_equal(view.history("ts", 3), [7 * MIN, 8 * MIN, 9 * MIN])
    assert [len(h) for h in held] == list(range(1, 11))  # old slices never grew or moved
    np.testing.assert_array_equal(held[3], 1.5 + np.arange(4))
    with pytest.raises(ValueError):
        view.history("close")[0] = 0.0


def test_accelerated_clock_runs_fast_and_sleeps_until():
    clock = AcceleratedClock(start_ns=1_000 * MIN, speed=60_000.0)  # 1 minute per ms
    assert clock.now_ns() >= 1_000 * MIN
    started = time.monotonic()
    asyncio.run(clock.sleep_until(1_020 * MIN))
    assert clock.now_ns() >= 1_020 * MIN
    assert 0.019 <= time.monotonic() - started < 1.0
    assert abs(WallClock().now_ns() - time.time_ns()) < 10**9
    with pytest.raises(ValueError):
        AcceleratedClock(0, speed=0)


def _config():
    return parse_scenario({
        "name": "unit-live",
        "data": [{"kind": "gbm", "symbol": s, "bars": 1} for s in ("A", "B")],
        "agents": [{"name": "sma", "kind": "sma_crossover", "params": {"fast": 2, "slow": 3}}],
        "venues": [{"name": "v", "symbols": ["A", "B"]}],
    })


def _bar(sym: str, i: int) -> Bar:
    return Bar(sym, i * MIN, 100.0 + i, 101.0 + i, 99.0 + i, 100.5 + i, 1.0)


def test_runner_holds_bars_until_every_symbol_reaches_their_time(tmp_path):
    with DuckDBStore(tmp_path / "r.duckdb") as store:
        runner = LiveRunner(_config(), store)
        seen = []
        on_bar = runner.engine.on_bar
        runner.engine.on_bar = lambda s, n, ts, *ohlcv: (seen.append((s, n, ts)),
                                                         on_bar(s, n, ts, *ohlcv))
        runner.accept(_bar("B", 0))
        runner.accept(_bar("B", 1))
        assert seen == []  # A has not reported time 0 yet
        runner.accept(_bar("A", 0))
        assert seen == [(0, 1, 0), (1, 1, 0)]  # time 0 released, A first
        runner.accept(_bar("A", 2))  # A skips time 1: B's bar at 1 can go
        assert seen[-1] == (1, 2, MIN)
        with pytest.raises(ValueError, match="out of order"):
            runner.accept(_bar("A", 2))
        with pytest.raises(ValueError, match="unknown symbol"):
            runner.accept(_bar("C", 3))


def test_failing_feed_marks_the_run_failed(tmp_path):
    class Broken:
        async def __aiter__(self):
            yield _bar("A", 0)
            raise ConnectionError("exchange went away")

    clock = AcceleratedClock(0, speed=1e9)
    with DuckDBStore(tmp_path / "r.duckdb") as store:
        runner = LiveRunner(_config(), store)
        feeds = [Broken(), PacedReplayFeed([_bar("B", 0)], clock, MIN)]
        with pytest.raises(ConnectionError):
            asyncio.run(runner.run(feeds))
        status, error = store.con.execute("SELECT status, error FROM runs").fetchone()
        assert status == "failed" and "exchange went away" in error


def test_a_session_trades_with_short_thread_switches_and_restores_them(tmp_path):
    """While a session consumes its feeds another thread holds the interpreter at most
    0.5 ms at a time (with or without the API); the process's interval comes back after,
    also when the run fails."""
    seen: list[float] = []

    class Feed:
        def __init__(self, sym, fail=False):
            self.sym, self.fail = sym, fail

        async def __aiter__(self):
            seen.append(sys.getswitchinterval())
            yield _bar(self.sym, 0)
            if self.fail:
                raise ConnectionError("gone")

    process = sys.getswitchinterval()
    sys.setswitchinterval(before := 0.005)  # CPython's default
    try:
        with DuckDBStore(tmp_path / "r.duckdb") as store:
            asyncio.run(LiveRunner(_config(), store).run([Feed("A"), Feed("B")]))
            assert seen == [SESSION_SWITCH_S] * 2
            assert sys.getswitchinterval() == before
            with pytest.raises(ConnectionError):
                asyncio.run(LiveRunner(_config(), store).run([Feed("A", fail=True),
                                                              Feed("B")]))
            assert sys.getswitchinterval() == before
        with short_thread_switches(0.01):  # never longer than what the process has
            assert sys.getswitchinterval() == before
    finally:
        sys.setswitchinterval(process)


def test_collections_run_between_steps_on_the_trading_loop_never_inside_one(tmp_path):
    """While a session trades, no automatic collection starts inside a step, whichever
    thread allocates (another thread allocating hard included); what is due is collected
    between steps, on the trading loop's thread; collection is back on afterwards."""
    import gc
    import threading

    started: list[tuple[int, bool, str]] = []
    in_step = [False]

    def watch(phase, info):
        if phase == "start":
            started.append((info["generation"], in_step[0], threading.current_thread().name))

    stop = threading.Event()
    span: list[int] = []

    def allocate():  # another thread making cyclic garbage all along
        while not stop.is_set():
            for _ in range(1000):
                a: list[object] = []
                a.append(a)

    class Feed:
        def __init__(self, sym):
            self.sym = sym

        async def __aiter__(self):
            for i in range(40):
                await asyncio.sleep(0.01)
                yield _bar(self.sym, i)

    threshold = gc.get_threshold()
    other = threading.Thread(target=allocate, name="allocator")
    gc.callbacks.append(watch)
    try:
        with DuckDBStore(tmp_path / "r.duckdb") as store:
            runner = LiveRunner(_config(), store)
            handle = runner._handle

            def stepping(item):
                span.append(len(started))  # collections started before this step
                in_step[0] = True
                try:
                    handle(item)
                finally:
                    in_step[0] = False
                    span.append(len(started))

            runner._handle = stepping
            other.start()
            asyncio.run(runner.run([Feed("A"), Feed("B")]))
    finally:
        stop.set()
        other.join()
        gc.callbacks.remove(watch)
    during = started[span[0]:span[-1]]  # from the first step to the last
    assert len(during) >= 5  # the other thread made plenty to collect
    assert not [s for s in during if s[1]]  # none inside a step
    assert {name for _, _, name in during} == {"MainThread"}
    assert gc.isenabled() and gc.get_threshold() == threshold
