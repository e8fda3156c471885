"""No look-ahead: what a run records up to time t depends only on bars up to t.

Two datasets agree on every bar with ts <= t and are arbitrarily different after t (other
prices, other timestamps, more or fewer bars). Every row stamped ts <= t must then be
identical: signals, decisions and their votes, orders, risk events, routing decisions
(less the measured ``elapsed_ns``), fills and equity. With ``fill_at = "next_open"`` a
decision made at t is executed at the next bar's open (ts > t), so its order may differ.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import event, given, settings
from hypothesis import strategies as st

from sim.config import parse_scenario
from sim.data import MarketData, merge
from sim.runner import run_scenario
from sim.schema import TABLES
from sim.store import DuckDBStore
from tests.property import _support as sup

STAMPED = [t for t, cols in TABLES.items() if any(name == "ts" for name, _ in cols)]


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    n_symbols = draw(st.integers(1, 3))
    symbols = sup.SYMBOLS[:n_symbols]
    raw = {
        "name": "lookahead",
        "seed": draw(st.integers(0, 2**32)),
        "initial_cash": 10_000.0,
        "agents": draw(sup.agents(symbols, min_size=2, both_kinds=True)),
        "consensus": draw(sup.consensus()),
        "policy": draw(sup.policy()),
        "risk": draw(st.one_of(st.just({}), sup.risk(symbols))),
        "venues": draw(sup.venues(symbols)),
        "execution": {"fill_at": draw(st.sampled_from(["next_open", "close"]))},
    }
    layout = [
        {
            "interval": draw(st.sampled_from(["1m", "5m"])),
            "offset": draw(st.integers(0, 30)),  # bars' start, in 1m steps
            "bars": draw(st.integers(200, 600)),
        }
        for _ in symbols
    ]
    return {
        "raw": raw,
        "symbols": symbols,
        "layout": layout,
        "data_seed": draw(st.integers(0, 2**32)),
        # where t falls within symbol 0's bars: mostly past the agents' warm-up
        "cut": draw(st.one_of(*[st.floats(0.5, 1.0)] * 4, st.just(0.0))),
        "after_seed": draw(st.integers(0, 2**32)),
        "after_bars": [draw(st.integers(0, 300)) for _ in symbols],
        "after_gapped": draw(st.booleans()),
    }


def datasets(case: dict[str, Any]) -> tuple[MarketData, MarketData, int]:
    """(original, same up to t and different after, t)."""
    rng = np.random.default_rng(case["data_seed"])
    other = np.random.default_rng(case["after_seed"])
    base: list[tuple[np.ndarray, tuple[np.ndarray, ...]]] = []
    for spec in case["layout"]:
        step = sup.INTERVALS[spec["interval"]]
        ts = sup.START_NS + spec["offset"] * sup.INTERVALS["1m"] + step * np.arange(
            spec["bars"], dtype=np.int64)
        price = float(np.exp(rng.uniform(np.log(0.01), np.log(50_000))))
        base.append((ts, sup.random_ohlc(rng, spec["bars"], price, rng.uniform(0.001, 0.03))))
    ts0 = base[0][0]
    t = int(ts0[min(len(ts0) - 1, int(case["cut"] * len(ts0)))])

    changed = []
    for (ts, ohlcv), spec, extra in zip(base, case["layout"], case["after_bars"], strict=True):
        keep = ts <= t
        m = extra if keep.any() else max(1, extra)  # every symbol needs at least one bar
        step = sup.INTERVALS[spec["interval"]]
        last = max(t, int(ts[keep][-1])) if keep.any() else t  # new bars all after t
        gaps = other.integers(1, 4, m) if case["after_gapped"] else np.ones(m, dtype=np.int64)
        new_ts = last + step * np.cumsum(gaps)
        price = float(np.exp(other.uniform(np.log(0.01), np.log(50_000))))
        new = sup.random_ohlc(other, m, price, other.uniform(0.0005, 0.3), gapped_opens=True)
        changed.append((
            np.concatenate([ts[keep], new_ts]),
            tuple(np.concatenate([col[keep], nc]) for col, nc in zip(ohlcv, new, strict=True)),
        ))
    symbols = case["symbols"]
    original = merge([sup.bars_of(s, ts, o) for s, (ts, o) in zip(symbols, base, strict=True)])
    altered = merge([sup.bars_of(s, ts, o) for s, (ts, o) in zip(symbols, changed, strict=True)])
    return original, altered, t


def upto(con: Any, table: str, run_id: str, t: int) -> list[tuple]:
    drop = sup.NON_DETERMINISTIC.get(table, ())
    return con.execute(
        f"SELECT {sup.select_list(table, drop)} FROM {table}"
        " WHERE run_id = ? AND epoch_ns(ts) <= ? ORDER BY ALL", [run_id, t]
    ).fetchall()


def votes_upto(con: Any, run_id: str, t: int) -> list[tuple]:
    return con.execute(
        f"SELECT {sup.select_list('votes', prefix='v.')} FROM votes v"
        " JOIN decisions d ON d.run_id = v.run_id AND d.decision_id = v.decision_id"
        " WHERE v.run_id = ? AND epoch_ns(d.ts) <= ? ORDER BY ALL", [run_id, t]
    ).fetchall()


@settings(deadline=None, max_examples=30)
@given(case=cases())
def test_rows_up_to_t_ignore_bars_after_t(case: dict[str, Any]) -> None:
    config = parse_scenario(case["raw"], "property")
    original, altered, t = datasets(case)
    for sym in range(len(case["symbols"])):  # the construction itself
        a, b = original.bars[sym], altered.bars[sym]
        k = int(np.searchsorted(a.ts, t, side="right"))
        assert k == int(np.searchsorted(b.ts, t, side="right"))
        for col in ("ts", "open", "high", "low", "close", "volume"):
            assert np.array_equal(a.column(col)[:k], b.column(col)[:k])

    with tempfile.TemporaryDirectory() as tmp, DuckDBStore(Path(tmp) / "r.duckdb") as store:
        run_a = run_scenario(config, store, data=original).run_id
        run_b = run_scenario(config, store, data=altered).run_id
        con = store.con
        for table in STAMPED:
            before_a, before_b = upto(con, table, run_a, t), upto(con, table, run_b, t)
            assert before_a == before_b, f"{table} rows at ts <= t differ"
        assert votes_upto(con, run_a, t) == votes_upto(con, run_b, t)
        n_orders = len(upto(con, "orders", run_a, t))
        n_signals = len(upto(con, "signals", run_a, t))
    event(f"fill_at={case['raw']['execution']['fill_at']}; orders by t: "
          f"{'some' if n_orders else 'none'}; signals by t: {'some' if n_signals else 'none'}")


@settings(deadline=None, max_examples=20)
@given(case=cases())
def test_orders_execute_at_the_configured_bar_and_price(case: dict[str, Any]) -> None:
    """next_open: a decision's order is priced at the open of the symbol's next bar, never
    on the bar that caused it. close: at that bar's close, at the decision's time."""
    config = parse_scenario(case["raw"], "property")
    data, _, _ = datasets(case)
    fill_at = case["raw"]["execution"]["fill_at"]
    with tempfile.TemporaryDirectory() as tmp, DuckDBStore(Path(tmp) / "r.duckdb") as store:
        run_id = run_scenario(config, store, data=data).run_id
        orders = sup.records(store.con, "orders", run_id)
        decisions = {d["decision_id"]: d for d in sup.records(store.con, "decisions", run_id)}
        fills = sup.records(store.con, "fills", run_id)
    bars = {b.symbol: b for b in data.bars}
    for order in orders:
        decision = decisions[order["decision_id"]]
        b = bars[order["symbol"]]
        assert decision["symbol"] == order["symbol"]
        i = int(np.searchsorted(b.ts, order["ts"]))
        assert b.ts[i] == order["ts"], "orders happen at a bar of their symbol"
        if fill_at == "next_open":
            j = int(np.searchsorted(b.ts, decision["ts"]))
            assert i == j + 1, "released at the symbol's next bar after the decision"
            assert order["ref_price"] == b.open[i]
        else:
            assert order["ts"] == decision["ts"]
            assert order["ref_price"] == b.close[i]
    by_order = {o["order_id"]: o for o in orders}
    for fill in fills:
        assert fill["ts"] == by_order[fill["order_id"]]["ts"]
        assert fill["ref_price"] == by_order[fill["order_id"]]["ref_price"]
    event(f"fill_at={fill_at}; orders: {'some' if orders else 'none'}")
