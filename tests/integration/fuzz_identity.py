"""A bug hunt, not a CI test (the name keeps it out of ``pytest tests``): the fast path
and the per-bar loop store the same tables over scenarios drawn far wider than
``test_fast_path``'s (every agent with a batch form and drawn parameters, drawn signals,
every consensus rule and sizing, two venues, faults and events at drawn times, price
scales, staggered symbols). Run it by name with ``-p tests.fuzz_profile``."""

from __future__ import annotations

import re
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

import sim.fast_path as fast_path_module
from sim.bus import BAR, CALL, COMPONENT, EQUITY, TOPICS, Envelope, EventBus
from sim.config import parse_scenario
from sim.data import FundingRates, MarketData, SymbolBars, bars_from_frame, merge
from sim.data_cache import DataCache
from sim.engine import Engine
from sim.runner import run_scenario
from sim.store import DuckDBStore
from tests.integration.test_fast_path import engine_path, table_hashes

DRAWN = "tests.integration._drawn_signals:DrawnSignals"
START = pd.Timestamp("2024-01-01T00:00:00Z")


@st.composite
def agent(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    kind = draw(st.sampled_from(["sma_crossover", "ema_crossover", "zscore_reversion",
                                 "donchian_breakout", "bollinger_reversion", "rsi",
                                 "momentum", DRAWN, DRAWN]))
    if kind in ("sma_crossover", "ema_crossover"):
        fast = draw(st.integers(1, 8))
        return kind, {"fast": fast, "slow": fast + draw(st.integers(1, 20)),
                      "long_only": draw(st.booleans())}
    if kind == "zscore_reversion":
        return kind, {"window": draw(st.integers(2, 30)),
                      "entry": draw(st.sampled_from([0.5, 1.0, 2.0])),
                      "exit": draw(st.sampled_from([0.0, 0.2, 0.5]))}
    if kind == "donchian_breakout":
        window = draw(st.integers(1, 20))
        return kind, {"window": window, "exit_window": draw(st.integers(0, window)),
                      "long_only": draw(st.booleans())}
    if kind == "bollinger_reversion":
        return kind, {"window": draw(st.integers(2, 25)),
                      "width": draw(st.sampled_from([0.5, 1.0, 2.0])),
                      "confidence_step": draw(st.sampled_from([0.1, 0.25, 1.0]))}
    if kind == "rsi":
        return kind, {"period": draw(st.integers(1, 15)),
                      "oversold": draw(st.sampled_from([20.0, 35.0, 49.0])),
                      "overbought": draw(st.sampled_from([51.0, 65.0, 80.0]))}
    if kind == "momentum":
        return kind, {"window": draw(st.integers(1, 20)),
                      "threshold": draw(st.sampled_from([0.0, 0.001, 0.01]))}
    return kind, {"seed": draw(st.integers(0, 50)), "every": draw(st.integers(1, 12)),
                  "targets": draw(st.booleans())}


def _at(draw: st.DrawFn, span_min: int) -> str:
    minute = draw(st.integers(-5, span_min + 30))
    second = draw(st.sampled_from([0, 0, 30]))
    return (START + pd.Timedelta(minutes=minute, seconds=second)).isoformat()


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    n_symbols = draw(st.integers(1, 3))
    symbols = ["AAA", "BBB", "CCC"][:n_symbols]
    price = 10 ** draw(st.sampled_from([-4, 0, 2, 5]))
    data = []
    span = 0
    for s in symbols:
        bars = draw(st.integers(20, 400))
        offset = draw(st.integers(0, 40))
        interval = draw(st.sampled_from(["1m", "1m", "5m"]))
        span = max(span, offset + bars * (5 if interval == "5m" else 1))
        data.append({"kind": "gbm", "symbol": s, "bars": bars, "interval": interval,
                     "price": price * draw(st.sampled_from([1.0, 3.7])),
                     "volatility": draw(st.sampled_from([0.3, 1.5, 4.0])),
                     "start": (START + pd.Timedelta(minutes=offset)).isoformat()})
    agents = []
    for i, (kind, params) in enumerate(draw(st.lists(agent(), min_size=1, max_size=4))):
        a: dict[str, Any] = {"name": f"a{i}", "kind": kind, "params": params}
        if n_symbols > 1 and draw(st.booleans()):
            a["symbols"] = draw(st.lists(st.sampled_from(symbols), min_size=1,
                                         max_size=n_symbols, unique=True))
        agents.append(a)
    consensus: dict[str, Any] = {
        "method": draw(st.sampled_from(["majority", "confidence_weighted", "unanimous",
                                        "performance_weighted"])),
        "conflict": draw(st.sampled_from(["hold", "highest_confidence", "conservative",
                                          "risk_override", "weighted_target"])),
        "quorum": draw(st.integers(0, 3)),
        "min_agreement": draw(st.sampled_from([0.0, 0.0, 0.5, 0.67, 1.0]))}
    if consensus["method"] == "performance_weighted":
        consensus["decay"] = draw(st.sampled_from([1.0, 0.9]))
    if draw(st.booleans()):
        consensus["max_signal_age"] = draw(st.sampled_from(["1m", "7m", "45m"]))
    policy: dict[str, Any] = {
        "sizing": draw(st.sampled_from(["fixed_fraction", "confidence_exponential",
                                        "volatility_target", "kelly"])),
        "allow_short": draw(st.booleans()),
        "exposure": draw(st.sampled_from([0.1, 0.5, 1.0, 2.0, 5.0])),
        "scale_by_confidence": draw(st.booleans()),
        "vol_lookback": draw(st.sampled_from([2, 10, 60]))}
    if draw(st.booleans()):
        policy["max_leverage"] = draw(st.sampled_from([0.3, 1.0, 3.0]))
    if draw(st.booleans()):
        policy["min_notional"] = draw(st.sampled_from([10.0, 500.0]))
    risk: dict[str, Any] = {}
    limits = draw(st.booleans())  # half the runs with no limit: no equity follower
    if limits and draw(st.booleans()):
        risk["max_drawdown"] = draw(st.sampled_from([0.005, 0.02, 0.1]))
        risk["flatten_on_trip"] = draw(st.booleans())
    if limits and draw(st.booleans()):
        risk["daily_loss_limit"] = draw(st.sampled_from([0.003, 0.02]))
    if limits and draw(st.booleans()):
        risk["max_position_notional"] = draw(st.sampled_from([3_000.0, 40_000.0]))
    if limits and draw(st.booleans()):
        risk["max_orders_per_day"] = draw(st.integers(1, 30))
    if limits and draw(st.booleans()):
        risk["max_order_notional"] = draw(st.sampled_from([2_000.0, 20_000.0]))
    if limits and draw(st.booleans()):
        risk["max_leverage"] = draw(st.sampled_from([0.5, 2.0]))
    if limits and draw(st.booleans()):
        risk["max_orders_per_window"] = draw(st.integers(1, 3))
        risk["order_window"] = draw(st.sampled_from(["1m", "10m"]))
    if limits and draw(st.booleans()):
        risk["price_band"] = draw(st.sampled_from([0.001, 0.05]))
    if limits and draw(st.booleans()):
        risk["agents"] = {a["name"]: {"max_trade_notional": draw(st.sampled_from([500.0,
                                                                                 5_000.0])),
                                      "max_trades_per_day": draw(st.integers(1, 20))}
                          for a in agents if draw(st.booleans())}
    if draw(st.booleans()):
        policy["preset"] = draw(st.sampled_from(["conservative", "balanced", "aggressive"]))
        policy.pop("sizing")
    order_type = draw(st.sampled_from(["market", "market", "limit", "stop"]))
    execution: dict[str, Any] = {
        "fill_at": draw(st.sampled_from(["next_open", "close"])),
        "order_type": order_type,
        "intrabar": draw(st.sampled_from(["worst_case", "ohlc", "olhc"])),
        "limit_fill": draw(st.sampled_from(["through", "touch"])),
        "time_in_force": draw(st.sampled_from(["gtc", "gtc", "ioc"]))}
    if order_type != "market":
        execution["offset_bps"] = draw(st.sampled_from([0.0, 5.0, 50.0]))
        execution["post_only"] = order_type == "limit" and draw(st.booleans())
    if draw(st.booleans()):
        execution["order_ttl"] = draw(st.sampled_from(["1m", "20m"]))
    if draw(st.booleans()):
        execution["take_profit"] = draw(st.sampled_from([0.002, 0.01]))
    if draw(st.booleans()):
        execution["stop_loss"] = draw(st.sampled_from([0.002, 0.01]))
    latency = draw(st.booleans())
    if latency:
        execution["latency"] = True
        if draw(st.booleans()):
            execution["processing"] = {"agent_ms": 500.0, "risk_ms": 30_000.0}
    perp = draw(st.booleans())
    venues = []
    for v in range(draw(st.integers(1, 2))):
        venue: dict[str, Any] = {
            "name": f"v{v}",
            "symbols": symbols if v == 0 or draw(st.booleans()) else symbols[:1],
            "health": draw(st.sampled_from(["up", "up", "degraded"])),
            "max_order_notional": draw(st.sampled_from([None, None, 3_000.0])),
            "fee_bps": draw(st.sampled_from([0.0, 5.0])),
            "maker_fee_bps": draw(st.sampled_from([0.0, -1.0, 2.0])),
            "slippage_bps": draw(st.sampled_from([0.0, 2.0])),
            "volatility_slippage": draw(st.sampled_from([0.0, 0.0, 0.5])),
            "impact_bps": draw(st.sampled_from([0.0, 0.0, 30.0])),
            "max_participation": draw(st.sampled_from([None, None, 0.1, 1.0])),
            "reject_rate": draw(st.sampled_from([0.0, 0.0, 0.2])),
            "min_size": draw(st.sampled_from([0.0, 0.0, 0.5])),
            "lot_size": draw(st.sampled_from([0.0, 0.0, 0.01])),
            "tick_size": draw(st.sampled_from([0.0, 0.0, 0.001])) * price}
        if latency:
            venue["latency_ms"] = draw(st.sampled_from([0.0, 20_000.0, 90_000.0]))
            venue["latency_dist"] = draw(st.sampled_from(["fixed", "exponential",
                                                          "lognormal"]))
            venue["latency_sigma"] = 0.5
            if draw(st.booleans()):
                venue["timeout_ms"] = 60_000.0
        if perp:
            venue.update(kind="perp", max_leverage=draw(st.sampled_from([1.0, 3.0, 10.0])),
                         maintenance_margin=draw(st.sampled_from([0.0, 0.05, 0.3])),
                         funding_rate=draw(st.sampled_from([None, 0.0001, -0.001])),
                         funding_interval=draw(st.sampled_from(["1h", "8h", "17m"])))
        venues.append({k: x for k, x in venue.items() if x is not None})
    router: dict[str, Any] = {"policy": draw(st.sampled_from(["cheapest", "preference",
                                                               "cost", "split"]))}
    if router["policy"] == "preference":
        router["preference"] = draw(st.permutations([v["name"] for v in venues]))
    events = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["kill_switch", "venue_down", "venue_up",
                                     "venue_degraded", "venue_latency",
                                     "venue_reject_rate"]))
        event: dict[str, Any] = {"at": _at(draw, span), "kind": kind}
        if kind != "kill_switch":
            event["venue"] = draw(st.sampled_from([v["name"] for v in venues]))
        if kind == "venue_latency":
            event["latency_ms"] = draw(st.sampled_from([0.0, 45_000.0]))
        if kind == "venue_reject_rate":
            event["rate"] = draw(st.sampled_from([0.0, 0.5, 1.0]))
        events.append(event)
    extra: dict[str, Any] = {}
    if draw(st.booleans()):  # watched runs (monitor=True) judge with these thresholds
        extra["monitor"] = {
            "heartbeat": draw(st.sampled_from(["1m", "7m", "1h"])),
            "stale_bars": draw(st.sampled_from([None, 1.0, 2.5])),
            "silent_after": draw(st.sampled_from([None, "5m", "7d"])),
            "flap_changes": draw(st.sampled_from([None, 1, 6])),
            "flap_window": draw(st.sampled_from(["10m", "1d"])),
            "burst_count": draw(st.sampled_from([None, 1, 5])),
            "burst_window": draw(st.sampled_from(["10m", "1h"])),
            "drawdown_velocity": draw(st.sampled_from([None, 0.001, 0.05])),
            "drawdown_window": draw(st.sampled_from(["5m", "1d"])),
            "slippage_factor": draw(st.sampled_from([None, 0.5, 3.0])),
            "slippage_min_bps": draw(st.sampled_from([0.0, 25.0])),
            "latency_ms": draw(st.sampled_from([None, 10.0, 2_000.0]))}
    return {**extra, "name": "fuzz", "seed": draw(st.integers(0, 2**16)),
            "initial_cash": draw(st.sampled_from([1_000.0, 10_000.0, 1e7])),
            "data": data, "agents": agents, "consensus": consensus, "policy": policy,
            "risk": risk, "execution": execution, "venues": venues, "router": router,
            "events": events}


def _valid(raw: dict[str, Any]) -> Any:
    try:
        return parse_scenario(raw, "fuzz")
    except ValueError:  # a combination the config refuses: not this hunt's subject
        assume(False)


def _keep(seen: list[Any], e: Envelope) -> None:
    """An event as seen, wall-clock durations (``elapsed*``) left out."""
    seen.append((e.topic, e.ts, re.sub(r"elapsed\w*=[0-9.e+-]+", "", repr(e.event))))


def _both(config: Any, where: Path, monitor: bool, chunk: int | None,
          flush_rows: int, market: MarketData | None = None, observe: bool = False,
          ) -> tuple[Any, Any]:
    """Per path: its tables and how it ended (a run may fail: then on both, alike). With
    ``chunk``, both loops end their chunks (and may flush) every ``chunk`` rows, not
    every 65,536: the walk's chunk ends are met on short runs."""
    out = []
    defaults = Engine.run.__defaults__
    with DuckDBStore(where / "runs.duckdb") as store:
        for fast_path in (True, False):
            before = store.con.execute("SELECT count(*) FROM runs").fetchone()
            seen: list[Any] = []
            bus = None
            if observe:  # a watcher of every topic the fast path takes
                bus = EventBus()
                bus.subscribe(partial(_keep, seen),
                              sorted(TOPICS - {BAR, EQUITY, COMPONENT, CALL}))
            try:
                if chunk is not None:
                    Engine.run.__defaults__ = (chunk, None)
                    fast_path_module.run_fast.__defaults__ = (chunk, None)
                run_scenario(config, store, fast_path=fast_path, monitor=monitor,
                             flush_rows=flush_rows, data=market, bus=bus)
                error = None
            except Exception as e:
                error = f"{type(e).__name__}: {e}"
            finally:
                Engine.run.__defaults__ = defaults
                fast_path_module.run_fast.__defaults__ = defaults
            rows = store.con.execute("SELECT run_id, status FROM runs ORDER BY started_at"
                                     ).fetchall()
            if (len(rows),) == before:  # refused before the run was stored
                out.append((None, None, error, seen, (None, None)))
                continue
            run_id, status = rows[-1]
            info = store.con.execute(  # what the run says of itself, but its path
                "SELECT key, value FROM run_info WHERE run_id = ? AND key NOT LIKE "
                "'engine_path%' ORDER BY ALL", [run_id]).fetchall()
            out.append((table_hashes(store, run_id), status, error, seen + info,
                        engine_path(store, run_id)))
    return out[0], out[1]


@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(raw=scenarios(), monitor=st.booleans(),
       chunk=st.sampled_from([None, None, 5, 64, 333]),
       flush_rows=st.sampled_from([500_000, 1, 100]), observe=st.booleans())
def test_drawn_wide_scenarios_store_the_same_tables_on_both_paths(
    raw: dict[str, Any], monitor: bool, chunk: int | None, flush_rows: int, observe: bool,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    config = _valid(raw)
    fast, slow = _both(config, tmp_path_factory.mktemp("fuzz"), monitor, chunk, flush_rows,
                       observe=observe)
    event(f"path {fast[4][0]}: {(fast[4][1] or '')[:40]}")
    event(f"status {fast[1]}")
    event(f"error {(fast[2] or '')[:60]}")
    assert slow[4][0] in ("per-bar", None)
    assert fast[:4] == slow[:4]


@st.composite
def gappy_bars(draw: st.DrawFn, symbol: str, perp: bool) -> SymbolBars:
    """A random walk with bars missing (gaps of drawn lengths), zero volumes, repeated
    closes, and a perpetual's funding at drawn times (between bars and on them)."""
    n = draw(st.integers(5, 300))
    keep = np.array(draw(st.lists(st.sampled_from([True, True, True, False]), min_size=n,
                                  max_size=n)))
    keep[0] = True
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    price = 10 ** draw(st.sampled_from([-3, 0, 2, 4]))
    steps = rng.normal(0, draw(st.sampled_from([0.001, 0.01, 0.05])), n)
    steps[rng.random(n) < 0.2] = 0.0  # flat runs: equal closes
    close = price * np.exp(np.cumsum(steps))
    open_ = np.concatenate(([price], close[:-1])) * np.exp(rng.normal(0, 0.002, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.003, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.003, n)))
    volume = np.where(rng.random(n) < 0.1, 0.0, rng.integers(1, 1000, n).astype(float))
    offset = draw(st.integers(0, 20))
    minutes = offset + np.arange(n) * draw(st.sampled_from([1, 1, 3]))
    frame = pd.DataFrame({
        "timestamp": [START + pd.Timedelta(minutes=int(m)) for m in minutes],
        "open": open_, "high": high, "low": low, "close": close, "volume": volume})[keep]
    bars = bars_from_frame(frame.reset_index(drop=True), symbol)
    if perp and draw(st.booleans()):
        first, last = int(bars.ts[0]), int(bars.ts[-1])
        k = draw(st.integers(1, 12))
        times = np.unique(rng.integers(first - 60 * 10**9, last + 120 * 10**9, k))
        times = times - times % (30 * 10**9) if draw(st.booleans()) else times
        times = np.unique(times).astype(np.int64)
        rates = rng.choice([0.001, -0.0005, 0.0], len(times))
        bars = replace(bars, funding=FundingRates("drawn", times, rates))
    return bars


@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(raw=scenarios(), data=st.data(), monitor=st.booleans(),
       chunk=st.sampled_from([None, 5, 64]), flush_rows=st.sampled_from([500_000, 1, 100]))
def test_drawn_gappy_bars_store_the_same_tables_on_both_paths(
    raw: dict[str, Any], data: st.DataObject, monitor: bool, chunk: int | None,
    flush_rows: int, tmp_path_factory: pytest.TempPathFactory,
) -> None:
    config = _valid(raw)
    perp = any(v.get("kind") == "perp" for v in raw["venues"])
    market = merge([data.draw(gappy_bars(d["symbol"], perp)) for d in raw["data"]])
    fast, slow = _both(config, tmp_path_factory.mktemp("gappy"), monitor, chunk,
                       flush_rows, market)
    event(f"path {fast[4][0]}: {(fast[4][1] or '')[:40]}")
    event(f"error {(fast[2] or '')[:60]}")
    assert slow[4][0] in ("per-bar", None)
    assert fast[:4] == slow[:4]


@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(raw=scenarios(), other=st.lists(agent(), min_size=1, max_size=3))
def test_a_run_on_cached_data_stores_the_per_bar_rows(
    raw: dict[str, Any], other: list[tuple[str, dict[str, Any]]],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """As a sweep worker runs: another parameter set on the same data first (the data
    generated into the cache), then this one from the cache, on the fast path; its rows
    are the per-bar run's without a cache."""
    config = _valid(raw)
    sibling = _valid({**raw, "agents": [{"name": f"o{i}", "kind": k, "params": p}
                                        for i, (k, p) in enumerate(other)],
                      "risk": {k: v for k, v in raw["risk"].items() if k != "agents"}})
    cache = DataCache()
    with DuckDBStore(tmp_path_factory.mktemp("cached") / "runs.duckdb") as store:
        ids: list[tuple[str, str]] = []
        for cfg, kwargs in ((sibling, {"data_cache": cache}), (config, {"data_cache": cache}),
                            (config, {"fast_path": False})):
            try:
                ids.append(("ran", run_scenario(cfg, store, **kwargs).run_id))
            except Exception as e:
                ids.append(("failed", f"{type(e).__name__}: {e}"))
        (how, cached), (how_plain, plain) = ids[1], ids[2]
        assert how == how_plain
        if how == "ran":
            assert table_hashes(store, cached) == table_hashes(store, plain)
        else:
            assert cached == plain
