"""Risk limits are never breached by a fill, and the books balance.

Random limits, agents, policy (exposure up to 3x equity so the limits bind) and data. Read
back from the store:

* every fill: |qty| x ref_price <= max_order_notional; |position after| x ref_price <=
  max_position_notional unless the fill did not grow |position|; symbol allowed;
* orders that reached a venue per UTC day <= max_orders_per_day;
* every denied order has exactly one risk_events row, with a reason, and only those;
* cash: each fill's cash_after (and the final cash) equals initial cash - sum(qty x price)
  - sum(fee) over the fills so far (math.fsum, 1e-9 relative); equity rows equal cash +
  sum(position x latest close); whenever a symbol is flat its realized PnL is its net
  trading cash flow; with allow_short = false positions never go negative and cash not
  below zero, exactly (a trimmed buy never overdraws, even by rounding).
"""

from __future__ import annotations

import math
import tempfile
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from sim.config import parse_scenario
from sim.data import MarketData, gbm_bars, merge
from sim.runner import run_scenario
from sim.store import DuckDBStore
from tests.property import _support as sup

CHECKS = {"allowed_symbols", "max_orders_per_day", "max_order_notional",
          "max_position_notional", "route"}
REL = 1e-9


@st.composite
def cases(draw: st.DrawFn, slippage: bool) -> dict[str, Any]:
    n_symbols = draw(st.integers(1, 3))
    symbols = sup.SYMBOLS[:n_symbols]
    cash = float(draw(st.sampled_from([1_000, 10_000, 100_000])))
    raw = {
        "name": "risk",
        "seed": draw(st.integers(0, 2**32)),
        "initial_cash": cash,
        "agents": draw(sup.agents(symbols)),
        "consensus": draw(sup.consensus()),
        "policy": draw(sup.policy(max_exposure=3.0)),
        "risk": draw(sup.risk(symbols, cash)),
        "venues": draw(sup.venues(symbols, slippage=slippage)),
        "execution": {"fill_at": draw(st.sampled_from(["next_open", "close"]))},
    }
    layout = [
        {
            "interval": draw(st.sampled_from(["1m", "5m", "15m", "1h"])),
            "offset_min": draw(st.integers(0, 24 * 60)),  # days start mid-series
            "bars": draw(st.integers(300, 1500)),
            "price": draw(st.sampled_from([0.5, 20.0, 100.0, 3_000.0, 40_000.0])),
            "volatility": draw(st.sampled_from([0.5, 1.0, 2.0, 3.0])),
        }
        for _ in symbols
    ]
    return {"raw": raw, "symbols": symbols, "layout": layout,
            "data_seed": draw(st.integers(0, 2**32))}


def market(case: dict[str, Any]) -> MarketData:
    rng = np.random.default_rng(case["data_seed"])
    return merge([
        gbm_bars(symbol, spec["bars"], rng,
                 start_ns=sup.START_NS + spec["offset_min"] * sup.INTERVALS["1m"],
                 interval_ns=sup.INTERVALS[spec["interval"]], s0=spec["price"],
                 volatility=spec["volatility"])
        for symbol, spec in zip(case["symbols"], case["layout"], strict=True)
    ])


def _opens(before: float, after: float) -> bool:
    """The order opens exposure the position limit judges: it grows the position, or
    flips it (a flip opens a new position at today's price, even a smaller one)."""
    return abs(after) > abs(before) or before * after < 0.0


def check_run(con: Any, run_id: str, raw: dict[str, Any], data: MarketData) -> dict[str, int]:
    limits = raw["risk"]
    max_order = limits.get("max_order_notional")
    max_position = limits.get("max_position_notional")
    per_day = limits.get("max_orders_per_day")
    allowed = limits.get("allowed_symbols")
    allow_short = raw["policy"]["allow_short"]
    venues = {v["name"]: v for v in raw["venues"]}
    listed = {s for v in raw["venues"] for s in v["symbols"]}
    initial = raw["initial_cash"]

    orders = sup.records(con, "orders", run_id)
    fills = sup.records(con, "fills", run_id)
    events = sup.records(con, "risk_events", run_id)
    routes = sup.records(con, "routing_decisions", run_id)
    equity = sup.records(con, "equity", run_id)

    # -- orders, denials, routes: one story per order ----------------------------------
    by_id = {o["order_id"]: o for o in orders}
    assert len(by_id) == len(orders), "an order id appears twice"
    status = Counter(o["status"] for o in orders)
    assert set(status) <= {"denied", "filled", "rejected"}
    for o in orders:
        assert o["notional"] == abs(o["quantity"]) * o["ref_price"]
        assert o["quantity"] != 0.0
    denied = {o["order_id"] for o in orders if o["status"] == "denied"}
    per_order = Counter(e["order_id"] for e in events)
    assert set(per_order) == denied, "risk_events rows must be exactly the denied orders"
    assert all(n == 1 for n in per_order.values()), "a denied order has one risk_events row"
    for e in events:
        o = by_id[e["order_id"]]
        assert (e["ts"], e["symbol"]) == (o["ts"], o["symbol"])
        assert e["check_name"] in CHECKS
        assert isinstance(e["reason"], str) and e["reason"].strip()
        check = e["check_name"]
        if check == "allowed_symbols":
            assert allowed is not None and o["symbol"] not in allowed
        elif check == "max_order_notional":
            assert max_order is not None and o["notional"] > max_order
        elif check == "max_position_notional":
            assert max_position is not None
        elif check == "max_orders_per_day":
            assert per_day is not None
        else:
            assert o["symbol"] not in listed
    routed = {r["order_id"]: r for r in routes}
    assert len(routed) == len(routes)
    assert set(routed) == {o["order_id"] for o in orders if o["status"] != "denied"}
    for r in routes:
        o = by_id[r["order_id"]]
        assert (r["ts"], r["symbol"]) == (o["ts"], o["symbol"])
        listing = [v for v in raw["venues"] if o["symbol"] in v["symbols"]]
        assert r["candidates"] == [v["name"] for v in listing]
        cheapest = min(listing, key=lambda v: v["fee_bps"])  # first of equals
        assert r["venue"] == cheapest["name"]
        if allowed is not None:
            assert r["symbol"] in allowed
    if per_day is not None:
        days = Counter(r["ts"] // sup.NS_PER_DAY for r in routes)
        assert max(days.values(), default=0) <= per_day, "too many orders reached a venue"

    # -- fills: limits and the ledger ----------------------------------------------------
    filled = {o["order_id"] for o in orders if o["status"] == "filled"}
    assert [f["order_id"] for f in fills if f["order_id"] in filled] == [
        f["order_id"] for f in fills]
    assert sorted(f["order_id"] for f in fills) == sorted(filled)
    assert [f["fill_id"] for f in fills] == list(range(1, len(fills) + 1))
    scale = max([initial] + [abs(f["cash_after"]) for f in fills]
                + [abs(x) for row in equity for x in (row["cash"], row["equity"])])
    flows = [initial]
    positions: dict[str, list[float]] = defaultdict(list)
    last_position: dict[str, float] = defaultdict(float)
    trade_flows: dict[str, list[float]] = defaultdict(list)
    for f in fills:
        o = by_id[f["order_id"]]
        q, ref, sym = f["quantity"], f["ref_price"], f["symbol"]
        venue = venues[f["venue"]]
        assert (f["ts"], sym, f["venue"]) == (o["ts"], o["symbol"], routed[o["order_id"]]["venue"])
        assert ref == o["ref_price"]
        assert q != 0.0 and (q > 0) == (o["quantity"] > 0)
        assert abs(q) <= abs(o["quantity"]), "a fill is never larger than its order"
        if q < 0:
            assert q == o["quantity"], "only buys are trimmed (to the cash available)"
        slip = venue["slippage_bps"] / 10_000
        if slip == 0.0:
            assert f["price"] == ref
        else:
            assert f["price"] == ref * (1.0 + slip) if q > 0 else f["price"] == ref * (1.0 - slip)
        assert math.isclose(f["fee"], abs(q) * f["price"] * venue["fee_bps"] / 10_000,
                            rel_tol=1e-12, abs_tol=1e-12 * scale)
        # limits, at the reference price the order was sized and checked at
        if allowed is not None:
            assert sym in allowed
        if max_order is not None:
            assert abs(q) * ref <= max_order, "fill breaches max_order_notional"
        before, after = last_position[sym], f["position_after"]
        if max_position is not None and _opens(before, after):
            assert abs(after) * ref <= max_position, "fill breaches max_position_notional"
        last_position[sym] = after
        # the ledger, recomputed exactly
        flows += [-q * f["price"], -f["fee"]]
        positions[sym].append(q)
        assert math.isclose(f["cash_after"], math.fsum(flows), rel_tol=REL, abs_tol=REL * scale)
        assert math.isclose(after, math.fsum(positions[sym]), rel_tol=REL,
                            abs_tol=REL * abs(math.fsum(abs(x) for x in positions[sym])))
        trade_flows[sym].append(-q * f["price"])
        if after == 0.0:  # flat: realized PnL is all the symbol's trading cash flow (no fees)
            assert math.isclose(f["realized_pnl"], math.fsum(trade_flows[sym]), rel_tol=REL,
                                abs_tol=REL * math.fsum(abs(x) for x in trade_flows[sym]))
        if not allow_short:
            assert after >= 0.0, "a long-only book went short"
            assert f["cash_after"] >= 0.0, f"cash went negative: {f['cash_after']!r}"

    # -- every order's verdict, replayed: the first failing check denies, else it passes --
    fill_of = {f["order_id"]: f for f in fills}
    verdict = {e["order_id"]: e["check_name"] for e in events}
    position: dict[str, float] = defaultdict(float)
    accepted: Counter[int] = Counter()  # orders that reached a venue, per UTC day
    for o in sorted(orders, key=lambda o: o["order_id"]):
        sym, q, ref = o["symbol"], o["quantity"], o["ref_price"]
        day = o["ts"] // sup.NS_PER_DAY
        pos = position[sym]
        failing = []
        if allowed is not None and sym not in allowed:
            failing.append("allowed_symbols")
        if per_day is not None and accepted[day] >= per_day:
            failing.append("max_orders_per_day")
        if max_order is not None and abs(q) * ref > max_order:
            failing.append("max_order_notional")
        if (max_position is not None and _opens(pos, pos + q)
                and abs(pos + q) * ref > max_position):
            failing.append("max_position_notional")
        if failing:
            assert verdict.get(o["order_id"]) == failing[0], (o, failing)
            continue
        if sym not in listed:  # unroutable: denied, and it uses up no daily slot
            assert verdict.get(o["order_id"]) == "route"
        else:
            accepted[day] += 1
            assert o["order_id"] not in verdict
        if o["order_id"] in fill_of:
            position[sym] = fill_of[o["order_id"]]["position_after"]

    # -- equity rows: cash + positions at their latest close --------------------------------
    all_ts = np.unique(np.concatenate([b.ts for b in data.bars]))
    assert [row["ts"] for row in equity] == all_ts.tolist()
    fill_ts = np.array([f["ts"] for f in fills], dtype=np.int64)
    for row in equity:
        k = int(np.searchsorted(fill_ts, row["ts"], side="right"))  # fills at ts <= row
        cash = fills[k - 1]["cash_after"] if k else initial
        assert row["cash"] == cash
        held: dict[str, float] = {}
        for f in fills[:k]:
            held[f["symbol"]] = f["position_after"]
        value = [cash]
        for b in data.bars:
            if held.get(b.symbol, 0.0) != 0.0:
                i = int(np.searchsorted(b.ts, row["ts"], side="right")) - 1
                value.append(held[b.symbol] * float(b.close[i]))
        assert math.isclose(row["equity"], math.fsum(value), rel_tol=REL, abs_tol=REL * scale)
        if not allow_short:
            assert row["cash"] >= -REL * scale
    final = [initial] + [-f["quantity"] * f["price"] for f in fills] + [-f["fee"] for f in fills]
    assert math.isclose(equity[-1]["cash"], math.fsum(final), rel_tol=REL, abs_tol=REL * scale)
    for check in sorted({e["check_name"] for e in events}):
        event(f"denied by {check}")
    return {"fills": len(fills), "denied": len(denied), "rejected": status["rejected"]}


@pytest.mark.parametrize("slippage", [False, True], ids=["no_slippage", "slippage"])
@settings(deadline=None, max_examples=50)
@given(data=st.data())
def test_fills_respect_limits_and_books_balance(slippage: bool, data: st.DataObject) -> None:
    case = data.draw(cases(slippage=slippage))
    bars = market(case)
    config = parse_scenario(case["raw"], "property")
    with tempfile.TemporaryDirectory() as tmp, DuckDBStore(Path(tmp) / "r.duckdb") as store:
        run_id = run_scenario(config, store, data=bars).run_id
        counts = check_run(store.con, run_id, case["raw"], bars)
    event(f"fills: {'some' if counts['fills'] else 'none'}; "
          f"denied: {'some' if counts['denied'] else 'none'}; "
          f"rejected: {'some' if counts['rejected'] else 'none'}")


def test_long_only_buy_never_overdraws_cash() -> None:
    """A cash account cannot spend more than it holds: cash stays >= 0, exactly."""
    bars = sup.bars_of(
        "X", sup.START_NS + sup.INTERVALS["1m"] * np.arange(3, dtype=np.int64),
        tuple(np.array(col) for col in (
            [50.0, 50.0, 54.03], [50.0, 60.0, 54.03], [50.0, 50.0, 54.03],  # open high low
            [50.0, 60.0, 54.03], [1.0, 1.0, 1.0],  # close volume
        )),
    )
    config = parse_scenario({
        "name": "overdraft",
        "initial_cash": 1000.0,
        "agents": [{"name": "sma", "kind": "sma_crossover", "params": {"fast": 1, "slow": 2}}],
        "policy": {"exposure": 2.0},  # wants 2000 of X: the buy is trimmed to the cash
        "venues": [{"name": "v", "symbols": ["X"]}],
    })
    with DuckDBStore(":memory:") as store:
        run_id = run_scenario(config, store, data=merge([bars])).run_id
        cash = store.con.execute(
            "SELECT cash_after FROM fills WHERE run_id = ?", [run_id]).fetchall()
    assert len(cash) == 1  # LONG at bar 2's close, bought at bar 3's open, 54.03
    assert cash[0][0] >= 0.0, f"cash after the buy is {cash[0][0]!r}"
