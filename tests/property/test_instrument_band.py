"""Fills stay within the execution model's band at every price scale, under every preset
and instrument spec (``sim.instruments``).

Drawn: two symbols, each with its own price scale from 1e-8 to 1e6; a venue with no
preset, the Hyperliquid or the Ostium preset, spot or perpetual; venue-wide ticks and
per-symbol instruments tables (fixed ticks, significant-figure and decimal rules, lots,
size decimals, minimum notionals, leverage caps); accounts from 50 to 1e8; market, limit
and stop orders with slippage, volatility slippage, impact and brackets. Then either

* some symbol's spec cannot represent its first price (or cannot be traded with the
  account): the run is refused before anything is stored, with that one line; or
* the run completes, and read back from the store: every taker fill lies in
  [low x (1 - s) - step, high x (1 + s) + step] of its bar (s: the most slippage the
  model could charge that fill, step: the price grid's step there), every maker fill is
  at its limit, every liquidation inside its bar; and the cash is the initial cash minus
  every fill's quantity x price and fee (round trips conserve cash to fees).

A second property books round trips on one venue directly: buying and selling the same
quantity at one market price costs exactly the fees plus the grid's spread, and exactly
the fees when the price is on the grid.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sim.config import parse_scenario
from sim.config_base import ConfigError
from sim.data import bars_from_frame, merge
from sim.instruments import Instrument, hyperliquid_instrument, resolve, unrepresentable
from sim.messages import SubmitOrder
from sim.portfolio import Portfolio
from sim.runner import run_scenario
from sim.store import DuckDBStore
from sim.venue import SimVenue
from tests.unit.test_execution_hand_computed import AGENT, bar_ts

SYMBOLS = ("X", "Y")
scales = st.floats(-8.0, 6.0).map(lambda e: 10.0 ** e)


@st.composite
def market(draw: st.DrawFn, scale: float, n: int) -> pd.DataFrame:
    moves = np.array(draw(st.lists(st.integers(-40, 40), min_size=n, max_size=n))) / 1000.0
    close = scale * np.exp(np.cumsum(moves))
    open_ = np.concatenate(([scale], close[:-1]))
    wick = np.array(draw(st.lists(st.integers(0, 30), min_size=2 * n, max_size=2 * n)))
    high = np.maximum(open_, close) * np.exp(wick[:n] / 1000.0)
    low = np.minimum(open_, close) * np.exp(-wick[n:] / 1000.0)
    volume = np.array(draw(st.lists(st.sampled_from([0.0, 1e-3, 1.0, 1e6, 1e12]),
                                    min_size=n, max_size=n)))
    return pd.DataFrame({
        "timestamp": pd.to_datetime([bar_ts(i + 1) for i in range(n)], utc=True),
        "open": open_, "high": high, "low": low, "close": close, "volume": volume})


@st.composite
def spec(draw: st.DrawFn, scale: float, cash: float) -> dict[str, Any]:
    """An instruments-table entry, sized to the symbol's price scale (some too coarse)."""
    kind = draw(st.sampled_from(["tick", "rule", "lot", "size", "minimum", "leverage"]))
    if kind == "tick":
        return {"tick_size": scale * draw(st.sampled_from([1e-6, 1e-4, 3e-3, 0.02]))}
    if kind == "rule":
        out = {"sig_figs": draw(st.integers(2, 8))}
        if draw(st.booleans()):
            out["price_decimals"] = draw(st.integers(0, 12))
        return out
    if kind == "lot":
        return {"lot_size": cash / scale * draw(st.sampled_from([1e-6, 1e-3, 2.0]))}
    if kind == "size":
        return {"size_decimals": draw(st.integers(0, 12))}
    if kind == "minimum":
        return {"min_notional": cash * draw(st.sampled_from([0.0, 1e-3, 0.2, 2.0]))}
    return {"max_leverage": draw(st.sampled_from([1.0, 2.0]))}


@st.composite
def case(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(8, 24))
    scale = {s: draw(scales) for s in SYMBOLS}
    frames = {s: draw(market(scale[s], n)) for s in SYMBOLS}
    cash = draw(st.sampled_from([50.0, 10_000.0, 1e8]))
    venue: dict[str, Any] = {
        "name": "v", "symbols": list(SYMBOLS),
        "preset": draw(st.sampled_from([None, "hyperliquid", "ostium"])),
        "slippage_bps": float(draw(st.sampled_from([0, 1, 25]))),
        "volatility_slippage": draw(st.sampled_from([0.0, 0.0, 0.2])),
        "impact_bps": float(draw(st.sampled_from([0, 0, 30]))),
        "fee_bps": float(draw(st.sampled_from([0, 4.5, 10]))),
    }
    if venue["impact_bps"]:  # at most the bar's volume: impact stays under 30 bps (past
        venue["max_participation"] = 1.0  # 100% slippage a sell would be paid to sell)
    if draw(st.integers(0, 5)) == 0:  # one tick for both symbols: often refused
        venue["tick_size"] = scale["X"] * draw(st.sampled_from([1e-4, 3e-3]))
    perp = draw(st.booleans())
    if perp:
        venue.update(kind="perp", max_leverage=3.0, maintenance_margin=0.05)
    table = {s: draw(spec(scale[s], cash)) for s in SYMBOLS if draw(st.booleans())}
    if table:
        venue["instruments"] = table
    order_type = draw(st.sampled_from(["market", "market", "limit", "stop"]))
    execution: dict[str, Any] = {
        "order_type": order_type, "offset_bps": float(draw(st.sampled_from([0, 20, 150]))),
        "fill_at": draw(st.sampled_from(["next_open", "close"])),
        "intrabar": draw(st.sampled_from(["worst_case", "ohlc"])),
    }
    if draw(st.booleans()):
        execution.update(take_profit=0.02, stop_loss=0.02)
    script = sorted({draw(st.integers(1, n - 1)): draw(st.sampled_from(["LONG", "FLAT",
                                                                        "SHORT"]))
                     for _ in range(draw(st.integers(1, 6)))}.items())
    return {"frames": frames, "cash": cash, "scenario": {
        "name": "band", "initial_cash": cash,
        "agents": [{"name": "s", "kind": AGENT, "params": {"script": [[k, v]
                                                                      for k, v in script]}}],
        "policy": {"exposure": 2.0 if perp else 0.9, "allow_short": perp},
        "venues": [venue], "execution": execution}}


def instruments_of(config: Any, first: dict[str, float]) -> dict[str, Instrument]:
    v = config.venues[0]
    out = {}
    for sym in SYMBOLS:
        table = v.instruments.get(sym)
        inst = resolve(v.name, sym, rule=v.preset, kind=v.kind, tick_size=v.tick_size,
                       lot_size=v.lot_size, min_size=v.min_size,
                       spec=table.model_dump(exclude_none=True) if table else None,
                       price=first[sym])
        assert inst is not None
        out[sym] = inst
    return out


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(c=case())
def test_fills_stay_in_the_band_at_every_price_scale(c: dict[str, Any]) -> None:
    config = parse_scenario(c["scenario"], "band")
    data = merge([bars_from_frame(c["frames"][s], s) for s in SYMBOLS])
    first = {s: float(c["frames"][s]["open"].iloc[0]) for s in SYMBOLS}
    insts = instruments_of(config, first)
    refused = [p for s in SYMBOLS if (p := unrepresentable(insts[s], first[s], c["cash"]))]
    with DuckDBStore(":memory:") as store:
        if refused:
            with pytest.raises(ConfigError) as caught:
                run_scenario(config, store, data=data)
            assert str(caught.value) in refused
            assert store.con.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
            event("refused: a spec cannot represent the prices")
            return
        run_id = run_scenario(config, store, data=data).run_id  # FillOutsideBand: a bug
        q = lambda sql: store.con.execute(sql, [run_id]).df()  # noqa: E731
        fills = q("SELECT f.*, b.open, b.high, b.low, b.volume FROM fills f JOIN bars b ON "
                  "b.run_id = f.run_id AND b.symbol = f.symbol AND b.ts = f.ts "
                  "WHERE f.run_id = ? ORDER BY fill_id")
        orders = q("SELECT order_id, quantity AS ordered, limit_price FROM orders "
                   "WHERE run_id = ?")
        bars = q("SELECT symbol, ts, high, low, close FROM bars WHERE run_id = ? "
                 "ORDER BY symbol, ts")
        cash = store.con.execute("SELECT last(cash ORDER BY ts) FROM equity WHERE run_id = ?",
                                 [run_id]).fetchone()[0]
    n_fills = store_fills = len(fills)
    event(f"fills: {'some' if n_fills else 'none'}")
    venue = config.venues[0]
    ranges = {s: dict(zip(g["ts"], ((g["high"] - g["low"]) / g["close"]).shift(1).fillna(0.0),
                          strict=True)) for s, g in bars.groupby("symbol")}
    fills = fills.merge(orders, on="order_id", how="left")
    for f in fills.itertuples():
        assert math.isfinite(f.price) and f.price > 0, f
        if f.liquidity == "maker":
            assert f.price == f.limit_price, f
            continue
        if f.liquidity == "liquidation":
            assert f.low * (1 - 1e-12) <= f.price <= f.high * (1 + 1e-12), f
            continue
        participation = min(abs(f.ordered) / f.volume, 1.0) if f.volume > 0 else 0.0
        slip = (venue.slippage_bps / 1e4 + venue.volatility_slippage * ranges[f.symbol][f.ts]
                + venue.impact_bps / 1e4 * math.sqrt(participation))
        inst = insts[f.symbol]
        top = f.high * (1 + slip)
        lo = f.low * (1 - slip) - inst.step(f.high)
        hi = top + inst.step(top)
        tol = 1e-9 * (f.high + inst.step(top))
        assert lo - tol <= f.price <= hi + tol, (f, inst, slip, lo, hi)
    flows = [-qty * p - fee for qty, p, fee in zip(fills["quantity"], fills["price"],
                                                   fills["fee"], strict=True)]
    expected = math.fsum([c["cash"], *flows])
    scale = max([c["cash"], *(abs(x) for x in flows)])
    assert abs(cash - expected) <= 1e-9 * scale, (cash, expected)
    assert store_fills == n_fills


@settings(max_examples=200, deadline=None)
@given(price=st.floats(1e-8, 1e6), rule=st.sampled_from(["tick", "hl", "hl-spot", "none"]),
       tick_share=st.sampled_from([1e-6, 1e-4, 5e-3]), sz_decimals=st.integers(0, 8),
       size=st.floats(1e-3, 1e3), fee_bps=st.sampled_from([0.0, 4.5, 30.0]),
       on_grid=st.booleans())
def test_round_trips_conserve_cash_to_fees(price: float, rule: str, tick_share: float,
                                           sz_decimals: int, size: float, fee_bps: float,
                                           on_grid: bool) -> None:
    if rule == "tick":
        inst = Instrument("v", "X", tick=price * tick_share)
    elif rule == "none":
        inst = Instrument("v", "X")
    else:
        spot = rule == "hl-spot"
        inst = hyperliquid_instrument("v", "X", min(sz_decimals, 8 if spot else 6), spot=spot)
    if unrepresentable(inst, price, math.inf) is not None:
        return
    if on_grid:
        price = inst.round_price(price)
    venue = SimVenue("v", frozenset({"X"}), fee_bps, instruments={"X": inst})
    qty = inst.round_size(size / price)
    if qty <= 0.0:
        return
    cash = 10.0 * qty * price
    book = Portfolio(["X"], cash)
    buy = venue.execute(SubmitOrder(1, 1, 0, "X", qty, price), 1, 0, price, cash)
    assert buy is not None and buy.quantity == qty
    book.apply(0, buy)
    sell = venue.execute(SubmitOrder(2, 2, 0, "X", -qty, price), 2, 0, price, book.cash)
    assert sell is not None
    book.apply(0, sell)
    assert book.qty[0] == 0.0
    spread = qty * (buy.price - sell.price)
    assert 0.0 <= spread <= 2 * qty * inst.step(price) * (1 + 1e-9) + 1e-12 * qty * price
    lost = cash - book.cash
    fees = buy.fee + sell.fee
    assert math.isclose(lost, fees + spread, rel_tol=1e-9, abs_tol=1e-12 * cash)
    if on_grid:
        assert buy.price == pytest.approx(sell.price, rel=1e-12)
        assert math.isclose(lost, fees, rel_tol=1e-9, abs_tol=1e-12 * cash)
