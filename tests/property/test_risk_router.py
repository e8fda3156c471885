"""Account limits, agent permissions, the circuit breaker and routing hold on every run.

Random scenarios with the account-wide limits (daily loss, drawdown, leverage, price band,
order rate, a risk timezone), per-agent permissions, venues with lots, ticks, minimum
sizes and health, a random router policy and random scenario events (kill switch, venue
down/up/degraded). Read back from the store:

* every denial names a known check and, where the check has a number, stores a value
  that breaches its limit;
* no fill breaches an account notional limit or symbol list, nor the permissions of any
  agent the order is attributed to (the winning side's voters, from ``votes``); the
  orders that reached a venue per agent per day stay within its ``max_trades_per_day``;
* after the circuit breaker trips (first breaker denial) or the kill switch event, no
  position-increasing order reaches a venue (the daily-loss breaker: until its day ends);
* every routing leg goes to a venue that lists the symbol and is not down at that time;
  a degraded venue only when no venue that is up could take it; leg quantities are whole
  lots of the symbol's instrument on that venue, at least its minimum size and notional
  and never more than the order; fill prices lie on the instrument's price grid;
* a venue whose instrument cannot represent a symbol's prices (a tick of 1% of the first
  price or more, or a lot worth more than the account) is refused before the run, naming
  venue, symbol and field.
"""

from __future__ import annotations

import math
import tempfile
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from sim.config import parse_scenario
from sim.config_base import ConfigError
from sim.data import MarketData, gbm_bars, merge
from sim.instruments import Instrument, resolve, unrepresentable
from sim.risk import CHECK_NAMES, reduces
from sim.runner import run_scenario
from sim.store import DuckDBStore
from tests.property import _support as sup

GRID = 1e-9


@st.composite
def venues(draw: st.DrawFn, symbols: list[str]) -> list[dict[str, Any]]:
    out = []
    for i in range(draw(st.integers(1, 3))):
        listed = sorted(draw(st.sets(st.sampled_from(symbols), min_size=1)))
        if i == 0:
            listed = list(symbols)
        v: dict[str, Any] = {
            "name": f"v{i}", "symbols": listed,
            "fee_bps": draw(st.sampled_from([0.0, 2.5, 10.0])),
            "slippage_bps": draw(st.sampled_from([0.0, 2.0, 15.0])),
            "lot_size": draw(st.sampled_from([0.0, 0.001, 0.01, 0.1])),
            "tick_size": draw(st.sampled_from([0.0, 0.01, 0.5])),
            "min_size": draw(st.sampled_from([0.0, 0.0, 0.01])),
            "health": draw(st.sampled_from(["up", "up", "up", "degraded", "down"])),
        }
        if draw(st.booleans()):
            v["max_order_notional"] = draw(st.sampled_from([100.0, 1_000.0, 10_000.0]))
        if draw(st.integers(0, 4)) == 0:
            v["preset"] = draw(st.sampled_from(["hyperliquid", "ostium"]))
        out.append(v)
    return out


@st.composite
def risk(draw: st.DrawFn, symbols: list[str], agents: list[dict[str, Any]],
         cash: float) -> dict[str, Any]:
    # the older limits a third of the time: they deny enough to hide the routing
    out: dict[str, Any] = draw(sup.risk(symbols, cash)) if draw(st.integers(0, 2)) == 0 else {}
    maybe = draw(st.fixed_dictionaries({}, optional={
        "daily_loss_limit": st.sampled_from([0.005, 0.02, 0.05]),
        "max_drawdown": st.sampled_from([0.01, 0.04, 0.15]),
        "flatten_on_trip": st.booleans(),
        "max_leverage": st.sampled_from([1.0, 2.0, 5.0]),
        "price_band": st.sampled_from([0.01, 0.05, 0.2]),
        "max_orders_per_window": st.sampled_from([1, 3]),
        "order_window": st.sampled_from(["10m", "2h"]),
        "timezone": st.sampled_from(["UTC", "America/New_York", "Asia/Tokyo"]),
    }))
    out.update(maybe)
    perms: dict[str, Any] = {}
    for a in agents:
        if draw(st.integers(0, 2)) == 0:
            perms[a["name"]] = draw(st.fixed_dictionaries({}, optional={
                "max_trade_notional": st.sampled_from([cash * 0.1, cash * 0.5, cash * 2]),
                "max_position_notional": st.sampled_from([cash * 0.2, cash]),
                "max_trades_per_day": st.sampled_from([1, 5]),
                "allowed_symbols": st.sets(st.sampled_from(symbols)).map(sorted),
                "risk_level": st.sampled_from(["low", "medium", "high"]),
            }))
    if perms:
        out["agents"] = perms
    return out


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    symbols = list(sup.SYMBOLS[:draw(st.integers(1, 3))])
    cash = float(draw(st.sampled_from([1_000, 10_000, 100_000])))
    agents = draw(sup.agents(symbols))
    vs = draw(venues(symbols))
    n_bars = draw(st.integers(300, 1200))
    interval = draw(st.sampled_from(["1m", "15m", "1h"]))
    span = n_bars * sup.INTERVALS[interval]
    events = []
    for _ in range(draw(st.integers(0, 3))):
        at = sup.START_NS + int(draw(st.floats(0.0, 1.0)) * span)
        kind = draw(st.sampled_from(["venue_down", "venue_up", "venue_degraded", "venue_down",
                                     "venue_up", "kill_switch"]))
        ev = {"at": pd.Timestamp(at, tz="UTC").isoformat(), "kind": kind}
        if kind != "kill_switch":
            ev["venue"] = draw(st.sampled_from([v["name"] for v in vs]))
        events.append(ev)
    raw = {
        "name": "risk_router", "seed": draw(st.integers(0, 2**32)), "initial_cash": cash,
        "agents": agents, "consensus": draw(sup.consensus()),
        "policy": draw(sup.policy(max_exposure=3.0)),
        "risk": draw(risk(symbols, agents, cash)),
        "venues": vs,
        "router": {"policy": draw(st.sampled_from(["cheapest", "preference", "cost", "split"])),
                   "preference": draw(st.permutations([v["name"] for v in vs]))},
        "events": events,
        "execution": {"fill_at": draw(st.sampled_from(["next_open", "close"]))},
    }
    layout = [{"bars": n_bars, "price": draw(st.sampled_from([0.5, 100.0, 3_000.0])),
               "volatility": draw(st.sampled_from([0.5, 2.0, 4.0]))} for _ in symbols]
    return {"raw": raw, "symbols": symbols, "interval": interval, "layout": layout,
            "data_seed": draw(st.integers(0, 2**32))}


def market(case: dict[str, Any]) -> MarketData:
    rng = np.random.default_rng(case["data_seed"])
    return merge([gbm_bars(sym, spec["bars"], rng, start_ns=sup.START_NS,
                           interval_ns=sup.INTERVALS[case["interval"]], s0=spec["price"],
                           volatility=spec["volatility"])
                  for sym, spec in zip(case["symbols"], case["layout"], strict=True)])


def on_grid(x: float, step: float) -> bool:
    if step <= 0.0:
        return True
    k = x / step
    return abs(k - round(k)) <= 1e-6 * max(1.0, abs(k))


def on_price_grid(price: float, inst: Instrument) -> bool:
    if inst.tick > 0.0:
        return on_grid(price, inst.tick)
    return abs(inst.round_price(price) - price) <= 1e-12 * price


def instruments_of(cfg: Any, bars: MarketData) -> dict[tuple[str, str], Instrument]:
    """Every (venue, symbol)'s instrument as the run resolves it, before its checks."""
    first = {b.symbol: float(b.open[0]) for b in bars.bars}
    out = {}
    for v in cfg.venues:
        for sym in v.symbols:
            spec = v.instruments.get(sym)
            out[(v.name, sym)] = resolve(
                v.name, sym, rule=v.preset, kind=v.kind, tick_size=v.tick_size,
                lot_size=v.lot_size, min_size=v.min_size,
                spec=spec.model_dump(exclude_none=True) if spec else None, price=first[sym])
    return out


def day_of(ts: int, tz: ZoneInfo) -> Any:
    return datetime.fromtimestamp(ts / 1e9, tz).date()


def check_run(con: Any, run_id: str, cfg: Any,
              instruments: dict[tuple[str, str], Instrument]) -> dict[str, int]:
    raw_risk = cfg.risk
    tz = ZoneInfo(raw_risk.timezone)
    venues = {v.name: v for v in cfg.venues}
    orders = sup.records(con, "orders", run_id)
    fills = sup.records(con, "fills", run_id)
    denials = sup.records(con, "risk_events", run_id)
    routes = sup.records(con, "routing_decisions", run_id)
    by_id = {o["order_id"]: o for o in orders}

    # attribution: votes on the decision's side
    sides = dict(con.execute("SELECT decision_id, side FROM decisions WHERE run_id = ?",
                             [run_id]).fetchall())
    voters: dict[int, list[str]] = defaultdict(list)
    for did, agent, side in con.execute(
            "SELECT decision_id, agent, side FROM votes WHERE run_id = ? ORDER BY rowid",
            [run_id]).fetchall():
        if side == sides.get(did):
            voters[did].append(agent)
    perms = raw_risk.agents

    # -- denials ------------------------------------------------------------------------
    for d in denials:
        assert d["check_name"] in CHECK_NAMES | {"route"}, d
        lim, val = d["limit_value"], d["actual_value"]
        if d["check_name"] in ("max_order_notional", "max_position_notional", "max_leverage",
                               "price_band", "agent_max_trade_notional",
                               "agent_max_position_notional", "agent_risk_level"):
            assert lim is not None and val is not None and val > lim, d
        if d["check_name"] in ("daily_loss_limit", "max_drawdown", "max_orders_per_day",
                               "order_rate", "agent_max_trades_per_day"):
            assert lim is not None and val is not None and val >= lim, d

    # -- fills against limits and permissions -----------------------------------------------
    position: dict[str, float] = defaultdict(float)
    fills_by_order: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for f in fills:
        fills_by_order[f["order_id"]].append(f)
    routed_ids = sorted({r["order_id"] for r in routes})
    increasing_at: list[tuple[int, str]] = []  # (ts, symbol) of routed increasing orders
    agent_day: Counter[tuple[str, Any]] = Counter()
    for oid in routed_ids:
        o = by_id[oid]
        sym, q, ref = o["symbol"], o["quantity"], o["ref_price"]
        pos = position[sym]
        if not reduces(pos, q):
            increasing_at.append((o["ts"], sym))
        if raw_risk.allowed_symbols is not None:
            assert sym in raw_risk.allowed_symbols
        if raw_risk.max_order_notional is not None:
            assert abs(q) * ref <= raw_risk.max_order_notional
        attributed = voters.get(o["decision_id"], []) if o["decision_id"] else []
        for name in attributed:
            agent_day[(name, day_of(o["ts"], tz))] += 1
            p = perms.get(name)
            if p is None:
                continue
            if p.allowed_symbols is not None:
                assert sym in p.allowed_symbols
            if p.max_trade_notional is not None:
                assert abs(q) * ref <= p.max_trade_notional
            if p.max_trades_per_day is not None:
                assert agent_day[(name, day_of(o["ts"], tz))] <= p.max_trades_per_day
        for f in fills_by_order.get(oid, []):
            before, after = position[sym], f["position_after"]
            if abs(after) > abs(before):
                if raw_risk.max_position_notional is not None:
                    assert abs(after) * ref <= raw_risk.max_position_notional * (1 + 1e-9)
                for name in attributed:
                    p = perms.get(name)
                    if p is not None and p.max_position_notional is not None:
                        assert abs(after) * ref <= p.max_position_notional * (1 + 1e-9)
            position[sym] = after

    # -- breaker and kill switch ----------------------------------------------------------
    trips = [d for d in denials if d["check_name"] in ("daily_loss_limit", "max_drawdown")]
    for d in trips:
        end = None
        if d["check_name"] == "daily_loss_limit":
            local = day_of(d["ts"], tz)
            end = min((ts for ts, _ in increasing_at if day_of(ts, tz) > local), default=None)
        later = [ts for ts, _ in increasing_at if ts > d["ts"] and (end is None or ts < end)]
        assert not later, f"position-increasing order after the breaker tripped: {d}"
    kills = [e for e in cfg.events if e.kind == "kill_switch"]
    if kills:
        first = min(pd.Timestamp(e.at).value for e in kills)
        assert not [ts for ts, _ in increasing_at if ts >= first], "order after kill switch"

    # -- routing ----------------------------------------------------------------------------
    timeline = sorted(((pd.Timestamp(e.at).value, i, e) for i, e in enumerate(cfg.events)
                       if e.venue is not None), key=lambda t: (t[0], t[1]))
    health_map = {"venue_down": "down", "venue_up": "up", "venue_degraded": "degraded"}

    def health(name: str, ts: int) -> str:
        h = venues[name].health
        for at, _, e in timeline:
            if at <= ts and e.venue == name:
                h = health_map[e.kind]
        return h

    legs: dict[int, float] = defaultdict(float)
    for r in routes:
        o = by_id[r["order_id"]]
        v = venues[r["venue"]]
        assert o["symbol"] in v.symbols, "routed to a venue that does not list the symbol"
        h = health(v.name, r["ts"])
        assert h != "down", f"routed to {v.name} while it was down"
        ref, reduce_only = o["ref_price"], o["reduce_only"]
        if h == "degraded":
            for other in cfg.venues:
                if o["symbol"] in other.symbols and health(other.name, r["ts"]) == "up":
                    other_inst = instruments[(other.name, o["symbol"])]
                    q = other_inst.round_size(r["quantity"] if cfg.router.policy == "split"
                                              else o["quantity"])
                    assert (q == 0.0 or other_inst.too_small(q, ref, reduce_only)
                            or cfg.router.policy == "split")
        inst = instruments[(v.name, o["symbol"])]
        q = r["quantity"]
        assert q != 0.0 and (q > 0) == (o["quantity"] > 0)
        assert on_grid(q, inst.lot), (q, inst)
        assert not inst.too_small(q, ref, reduce_only), (q, ref, inst)
        legs[r["order_id"]] += abs(q)
        assert legs[r["order_id"]] <= abs(o["quantity"]) * (1 + GRID)
    for f in fills:
        assert on_price_grid(f["price"], instruments[(f["venue"], f["symbol"])]), f
    for check in sorted({d["check_name"] for d in denials}):
        event(f"denied by {check}")
    event(f"router {cfg.router.policy}: {'some' if routes else 'no'} routes")
    return {"fills": len(fills), "denied": len(denials)}


@settings(deadline=None, max_examples=60)
@given(case=cases())
def test_limits_breaker_and_routing_hold(case: dict[str, Any]) -> None:
    bars = market(case)
    config = parse_scenario(case["raw"], "property")
    instruments = instruments_of(config, bars)
    first = {b.symbol: float(b.open[0]) for b in bars.bars}
    refused = [unrepresentable(inst, first[sym], config.initial_cash)
               for (_, sym), inst in instruments.items()]
    refused = [r for r in refused if r is not None]
    with tempfile.TemporaryDirectory() as tmp, DuckDBStore(Path(tmp) / "r.duckdb") as store:
        if refused:
            with pytest.raises(ConfigError) as caught:
                run_scenario(config, store, data=bars)
            assert str(caught.value) in refused
            assert not store.con.execute("SELECT count(*) FROM runs").fetchone()[0]
            event("refused: an instrument cannot represent the prices")
            return
        run_id = run_scenario(config, store, data=bars).run_id
        counts = check_run(store.con, run_id, config, instruments)
    event(f"fills: {'some' if counts['fills'] else 'none'}")


def test_a_venue_going_down_mid_run_sends_orders_to_the_other() -> None:
    """Integration: "alpha" (preferred) goes down half-way and comes back at 3/4: orders
    fall back to "beta" in between, with the reason stored, and return afterwards."""
    n = 2_000
    bars = merge([gbm_bars("SYN", n, np.random.default_rng(5), start_ns=sup.START_NS,
                           interval_ns=sup.INTERVALS["1m"], volatility=1.5)])
    minute = sup.INTERVALS["1m"]
    down_at, up_at = sup.START_NS + n // 2 * minute, sup.START_NS + 3 * n // 4 * minute
    iso = lambda ts: pd.Timestamp(ts, tz="UTC").isoformat()  # noqa: E731
    config = parse_scenario({
        "name": "venue_down", "agents": [
            {"name": "sma", "kind": "sma_crossover", "params": {"fast": 3, "slow": 8}}],
        "venues": [{"name": "alpha", "symbols": ["SYN"], "preset": "hyperliquid"},
                   {"name": "beta", "symbols": ["SYN"], "preset": "ostium"}],
        "router": {"policy": "preference", "preference": ["alpha", "beta"]},
        "events": [{"at": iso(down_at), "kind": "venue_down", "venue": "alpha"},
                   {"at": iso(up_at), "kind": "venue_up", "venue": "alpha"}],
    })
    with DuckDBStore(":memory:") as store:
        run_id = run_scenario(config, store, data=bars).run_id
        rows = store.con.execute(
            "SELECT epoch_ns(ts), venue, reason, candidates, candidate_scores"
            " FROM routing_decisions WHERE run_id = ? ORDER BY rowid", [run_id]).fetchall()
        filled = store.con.execute(
            "SELECT count(*) FROM fills WHERE run_id = ?", [run_id]).fetchone()[0]
    before = [r for r in rows if r[0] < down_at]
    during = [r for r in rows if down_at <= r[0] < up_at]
    after = [r for r in rows if r[0] >= up_at]
    assert before and during and after and filled == len(rows)
    assert {r[1] for r in before} == {"alpha"} == {r[1] for r in after}
    assert {r[1] for r in during} == {"beta"}
    for r in during:
        assert "skipped down: alpha" in r[2] and "fallback" in r[2]
        assert r[3] == ["beta"] and r[4] == [1.0]
    assert before[0][3] == ["alpha", "beta"] and before[0][4] == [0.0, 1.0]


def test_kill_switch_with_flatten_closes_and_blocks() -> None:
    n = 1_500
    bars = merge([gbm_bars("SYN", n, np.random.default_rng(2), start_ns=sup.START_NS,
                           interval_ns=sup.INTERVALS["1m"], volatility=1.5)])
    kill_at = sup.START_NS + n // 2 * sup.INTERVALS["1m"]
    config = parse_scenario({
        "name": "kill", "agents": [
            {"name": "sma", "kind": "sma_crossover", "params": {"fast": 2, "slow": 5}}],
        "risk": {"flatten_on_trip": True},
        "venues": [{"name": "v", "symbols": ["SYN"]}],
        "events": [{"at": pd.Timestamp(kill_at, tz="UTC").isoformat(),
                    "kind": "kill_switch"}],
    })
    with DuckDBStore(":memory:") as store:
        run_id = run_scenario(config, store, data=bars).run_id
        fills = store.con.execute(
            "SELECT epoch_ns(ts), quantity, position_after FROM fills WHERE run_id = ?"
            " ORDER BY fill_id", [run_id]).fetchall()
        denied = store.con.execute(
            "SELECT count(*) FROM risk_events WHERE run_id = ? AND check_name = 'kill_switch'",
            [run_id]).fetchone()[0]
    after = [f for f in fills if f[0] >= kill_at]
    assert all(f[2] == 0.0 for f in after) and len(after) <= 1
    assert denied > 0


@pytest.mark.parametrize("policy", ["cheapest", "cost", "split"])
def test_risk_and_routing_cost_per_order(benchmark: Any, policy: str) -> None:
    """Benchmark (disabled by default): every risk check with all limits on, then routing
    across 3 venues, per order. ``extra_info['p99_us']`` is the 99th percentile."""
    import time

    from sim.messages import SubmitOrder
    from sim.risk import AgentPermissions, RiskEngine, RiskLimits
    from sim.router import VenueRouter
    from sim.venue import SimVenue

    limits = RiskLimits(
        max_order_notional=1e6, max_position_notional=1e6, max_orders_per_day=10**9,
        allowed_symbols=frozenset({"X"}), daily_loss_limit=0.5, max_drawdown=0.5,
        max_leverage=10.0, price_band=0.5, max_orders_per_window=10**9, order_window_ns=60,
        agents={"a": AgentPermissions(1e6, 1e6, 10**9, frozenset({"X"}), "high")},
    )
    risk = RiskEngine(limits=limits, initial_equity=1e5)
    router = VenueRouter([SimVenue(f"v{i}", frozenset({"X"}), 1.0 + i, 1.0, lot_size=0.001,
                                   max_order_notional=500.0) for i in range(3)], policy)
    orders = [SubmitOrder(i, i, i * 10**9, "X", 1.0 + (i % 7) / 10, 100.0 + i % 5)
              for i in range(2_000)]
    times: list[int] = []

    def one_pass() -> None:
        times.clear()
        for o in orders:
            t0 = time.perf_counter_ns()
            if risk.check(o, 1.0, equity=1e5, gross_exposure=100.0, last_close=100.0,
                          agents=("a",)) is None:
                router.route_legs(o)
                risk.on_order_sent(o, ("a",))
            times.append(time.perf_counter_ns() - t0)

    benchmark(one_pass)
    p99 = float(np.percentile(times, 99)) / 1e3
    benchmark.extra_info["p99_us"] = p99
    benchmark.extra_info["median_us"] = float(np.median(times)) / 1e3
    assert math.isfinite(p99)
