"""Two farms with resting orders, latency, brackets, tick replay and volatility slippage,
worked out by hand through the whole pipeline (runner, farms, desk, matching, DuckDB).

As ``test_farms_hand_computed``: initial cash 10 000, farm ``a`` 6 000 and ``b`` the
rest unless said otherwise; one scripted agent per farm; one venue, taker fee 10 bps
(0.001), no slippage; decisions released at the next bar's open; bars one minute apart.
The engine checks on every step that the account is the sum of the farm ledgers; here the
stored fills, orders and ledgers are compared with the numbers derived in each docstring.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from sim.config import parse_scenario
from sim.data import bars_from_frame, merge
from sim.runner import run_scenario
from sim.store import DuckDBStore
from tests.unit.test_farms_hand_computed import AGENT, MINUTE_NS, T0, bar_ts

Bar = tuple[float, float, float, float]  # open, high, low, close


def _frame(bars: Sequence[Bar]) -> pd.DataFrame:
    return pd.DataFrame({
        "timestamp": pd.to_datetime([T0 + n * MINUTE_NS for n in range(len(bars))], utc=True),
        "open": [b[0] for b in bars], "high": [b[1] for b in bars],
        "low": [b[2] for b in bars], "close": [b[3] for b in bars],
        "volume": [1_000.0] * len(bars)})


def flat(price: float) -> Bar:
    return (price, price, price, price)


def scenario(scripts: dict[str, Sequence[Sequence[object]]], farms: list[dict[str, Any]],
             symbols: dict[str, str] | None = None, venue: dict[str, Any] | None = None,
             **extra: Any) -> dict[str, Any]:
    symbols = symbols or dict.fromkeys(scripts, "X")
    return {
        "name": "farm_orders_hand", "initial_cash": 10_000.0,
        "agents": [{"name": name, "kind": AGENT, "params": {"script": [list(s) for s in script]},
                    "symbols": [symbols[name]]} for name, script in scripts.items()],
        "policy": {"exposure": 0.5, "allow_short": True},
        "venues": [{"name": "v", "symbols": sorted(set(symbols.values())), "fee_bps": 10.0,
                    **(venue or {})}],
        "farms": farms, **extra}


AB = [{"name": "a", "agents": ["alpha"], "capital": 6000.0},
      {"name": "b", "agents": ["beta"]}]


def tables(store: DuckDBStore, run_id: str) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    for name, sql in {
        "fills": "SELECT epoch_ns(ts), farm, quantity, price, fee, liquidity "
                 "FROM fills_by_farm WHERE run_id = ? ORDER BY fill_id",
        "orders": "SELECT order_id, farm, role, order_type, quantity, limit_price, "
                  "stop_price, status, filled_quantity, reason, parent_id "
                  "FROM orders_by_farm WHERE run_id = ? ORDER BY order_id",
        "cash": "SELECT farm, list(cash ORDER BY ts) FROM farm_equity WHERE run_id = ? "
                "GROUP BY farm ORDER BY farm",
        "account": "SELECT cash, equity FROM equity WHERE run_id = ? ORDER BY ts",
        "farm_equity": "SELECT farm, list(equity ORDER BY ts) FROM farm_equity "
                       "WHERE run_id = ? GROUP BY farm ORDER BY farm",
        "risk": "SELECT farm, check_name FROM risk_events_by_farm WHERE run_id = ? "
                "ORDER BY order_id",
    }.items():
        out[name] = store.con.execute(sql, [run_id]).fetchall()
    return out


def run(tmp_path: Path, raw: dict[str, Any], bars: dict[str, Sequence[Bar]]
        ) -> dict[str, list[tuple[Any, ...]]]:
    data = merge([bars_from_frame(_frame(b), sym) for sym, b in bars.items()])
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        run_id = run_scenario(parse_scenario(raw, "hand"), store, data=data).run_id
        return tables(store, run_id)


def approx(values: Sequence[float]) -> Any:
    return pytest.approx(list(values), rel=1e-12, abs=1e-9)


def cash_of(got: dict[str, list[tuple[Any, ...]]], farm: str) -> list[float]:
    return next(c for f, c in got["cash"] if f == farm)


def check_sum(got: dict[str, list[tuple[Any, ...]]], reserve: float = 0.0) -> None:
    """The stored account rows are the reserve plus the farms' (as the engine checks)."""
    cash = [sum(col) for col in zip(*(c for _, c in got["cash"]), strict=True)]
    equity = [sum(col) for col in zip(*(e for _, e in got["farm_equity"]), strict=True)]
    assert [c for c, _ in got["account"]] == approx([reserve + c for c in cash])
    assert [e for _, e in got["account"]] == approx([reserve + e for e in equity])


def test_resting_limits_of_two_farms_one_filled_one_cancelled(tmp_path: Path) -> None:
    """Limit entries 1% inside the decision price, exposure 1, maker fee 5 bps.

    Both LONG after bar 2; bar 3 opens at 100: a buys 6000 / 100 = 60 and b 4000 / 100 =
    40, each a limit at 99, resting (100 is above it); bar 3's low 99.5 does not trade
    through. a reserves 60 x 99 x 1.001 = 5945.94 of its cash, b 40 x 99 x 1.001 =
    3963.96. b goes FLAT after bar 3: at bar 4's open its order is cancelled (replaced by
    that decision, which trades nothing: b is flat), its reservation freed; bar 4 trades
    down to 98 and a's limit fills at 99 as a maker: fee 60 x 99 x 0.0005 = 2.97, a's
    cash 6000 - 5940 - 2.97 = 57.03.
    b goes LONG again after bar 4: at bar 5's open (99) it buys 4000 / 99 = 40.40.. at a
    limit of 98.01, untrimmed (its whole 4000 is free again: had the cancelled order still
    held its 3963.96, the buy would have been trimmed to 36.04 / 98.108.. = 0.367); bar 6
    trades to 97: b's fills at 98.01, fee 40.40.. x 98.01 x 0.0005.
    """
    raw = scenario({"alpha": [(2, "LONG")], "beta": [(2, "LONG"), (3, "FLAT"), (4, "LONG")]},
                   AB, venue={"maker_fee_bps": 5.0},
                   execution={"order_type": "limit", "offset_bps": 100.0})
    raw["policy"]["exposure"] = 1.0
    got = run(tmp_path, raw, {"X": [flat(100), flat(100), (100, 100.5, 99.5, 100),
                                    (100, 100, 98, 99), flat(99), (99, 99, 97, 98)]})
    qb = 4000 / 99
    assert [row[:3] for row in got["orders"]] == [
        (1, "a", "entry"), (2, "b", "entry"), (3, "b", "entry")]
    assert [(r[5], r[7], r[8]) for r in got["orders"]] == [
        (pytest.approx(99.0), "filled", pytest.approx(60.0)),
        (pytest.approx(99.0), "cancelled", 0.0),
        (pytest.approx(98.01), "filled", pytest.approx(qb, rel=1e-12))]
    assert got["orders"][1][9] == "replaced by a newer decision's order"
    fills = got["fills"]
    assert [(ts, farm, liq) for ts, farm, *_, liq in fills] == [
        (bar_ts(4), "a", "maker"), (bar_ts(6), "b", "maker")]
    assert [f[2] for f in fills] == approx([60.0, qb])
    assert [f[3] for f in fills] == approx([99.0, 98.01])
    assert [f[4] for f in fills] == approx([2.97, qb * 98.01 * 0.0005])
    assert cash_of(got, "a") == approx([6000] * 3 + [57.03] * 3)
    assert cash_of(got, "b") == approx([4000] * 5 + [4000 - qb * 98.01 * 1.0005])
    assert got["risk"] == []
    check_sum(got)


def test_a_farms_resting_buys_reserve_its_cash(tmp_path: Path) -> None:
    """Farm a trades X and Y (agents ax, ay), b trades Y; exposure 0.8, limits 1% inside.

    Bar 3 opens (X at 100, Y at 50), X first: a buys 0.8 x 6000 / 100 = 48 X at a limit of
    99 and reserves 48 x 99 x 1.001 = 4756.752. Then Y: a's 0.8 x 6000 / 50 = 96 Y at
    49.5 would cost 96 x 49.5495 = 4756.752 with the fee, but only 6000 - 4756.752 =
    1243.248 is free: trimmed to 1243.248 / 49.5495 = 25.0910.. . b buys
    0.8 x 4000 / 50 = 64 Y, untouched by a. Bar 3 trades through the Y limits (X's low,
    99.5, does not reach 99), bar 4 through X's: every order fills at its limit (maker,
    fee 0): a's cash 6000 - 4752 - 25.0910.. x 49.5 ends at 4.752 + 25.0910.. x 0.0495
    (what the reservation's fee margin left), never below 0.
    """
    raw = scenario({"ax": [(2, "LONG")], "ay": [(2, "LONG")], "by": [(2, "LONG")]},
                   [{"name": "a", "agents": ["ax", "ay"], "capital": 6000.0},
                    {"name": "b", "agents": ["by"]}],
                   symbols={"ax": "X", "ay": "Y", "by": "Y"},
                   execution={"order_type": "limit", "offset_bps": 100.0})
    raw["policy"]["exposure"] = 0.8
    got = run(tmp_path, raw, {"X": [flat(100), flat(100), (100, 100, 99.5, 100),
                                    (100, 100, 98, 99)],
                              "Y": [flat(50), flat(50), (50, 50, 49, 49.5), flat(49.5)]})
    qy = (6000 - 48 * 99 * 1.001) / (49.5 * 1.001)
    assert [(o[1], o[4]) for o in got["orders"]] == [
        ("a", pytest.approx(48.0)), ("a", pytest.approx(qy, rel=1e-12)),
        ("b", pytest.approx(64.0))]
    assert [o[7] for o in got["orders"]] == ["filled"] * 3
    assert [(f[0], f[1], f[2], f[3], f[4]) for f in got["fills"]] == [
        (bar_ts(3), "a", pytest.approx(qy, rel=1e-12), 49.5, 0.0),
        (bar_ts(3), "b", pytest.approx(64.0), 49.5, 0.0),
        (bar_ts(4), "a", pytest.approx(48.0), 99.0, 0.0)]
    assert cash_of(got, "a")[-1] == pytest.approx(6000 - 4752 - qy * 49.5, rel=1e-12)
    assert cash_of(got, "a")[-1] == pytest.approx(4.752 + qy * 0.0495, rel=1e-9)
    assert cash_of(got, "b")[-1] == pytest.approx(4000 - 64 * 49.5, rel=1e-12)
    check_sum(got)


def test_a_bracket_closes_only_its_farms_position(tmp_path: Path) -> None:
    """Brackets: stop-loss 5%, take-profit 20%. a LONG, b SHORT after bar 2.

    Bar 3's open (100): a buys 30 (fee 3, cash 2997) with a stop-loss sell of 30 at 95
    and a take-profit sell of 30 at 120; b sells 20 (fee 2, cash 5998) with a stop-loss
    buy of 20 at 105 and a take-profit buy of 20 at 80. The account holds +10.
    Bar 4 rises to 106: b's stop triggers at 105 and buys back b's 20 (fee 2.1: b's cash
    5998 - 2100 - 2.1 = 3895.9), though the account is long (a reduce-only order reduces
    its farm's position, not the netted account's); its take-profit is cancelled (OCO).
    a is untouched, still long 30: the account +30. Bar 5 falls to 94: a's stop sells 30
    at 95 (fee 2.85: a's cash 2997 + 2850 - 2.85 = 5844.15), a's take-profit cancelled.
    """
    raw = scenario({"alpha": [(2, "LONG")], "beta": [(2, "SHORT")]}, AB,
                   execution={"stop_loss": 0.05, "take_profit": 0.2})
    got = run(tmp_path, raw, {"X": [flat(100), flat(100), flat(100), (100, 106, 100, 104),
                                    (104, 104, 94, 95), flat(95)]})
    assert [(f[0], f[1], f[2], f[3]) for f in got["fills"]] == [
        (bar_ts(3), "a", 30.0, 100.0), (bar_ts(3), "b", -20.0, 100.0),
        (bar_ts(4), "b", 20.0, 105.0), (bar_ts(5), "a", -30.0, 95.0)]
    assert [f[4] for f in got["fills"]] == approx([3.0, 2.0, 2.1, 2.85])
    orders = {o[0]: o for o in got["orders"]}
    brackets = sorted((o[1], o[2], o[7], o[10]) for o in orders.values() if o[2] != "entry")
    entry = {o[1]: o[0] for o in orders.values() if o[2] == "entry"}
    assert brackets == [("a", "stop_loss", "filled", entry["a"]),
                        ("a", "take_profit", "cancelled", entry["a"]),
                        ("b", "stop_loss", "filled", entry["b"]),
                        ("b", "take_profit", "cancelled", entry["b"])]
    levels = sorted((o[1], o[2], o[5] or o[6]) for o in orders.values() if o[2] != "entry")
    assert [lv[2] for lv in levels] == approx([95.0, 120.0, 105.0, 80.0])
    assert cash_of(got, "a")[-1] == pytest.approx(5844.15, rel=1e-12)
    assert cash_of(got, "b")[-1] == pytest.approx(3895.9, rel=1e-12)
    check_sum(got)


def test_orders_in_flight_carry_their_farm_and_fit_its_cash(tmp_path: Path) -> None:
    """Latency 30 s: orders released at bar 3's open (100) arrive mid-bar and fill at the
    next price seen, bar 4's open (110). a (1 000, its own policy: exposure 1) buys
    1000 / (100 x 1.001) = 9.99.. sized at 100; at 110 that would cost 1 100: the fill is
    trimmed to a's cash, 1000 / (110 x 1.001) = 9.0818.. (the account had 9 000 more).
    b (9 000, exposure 0.5) sells 45 at 110, fee 4.95: cash 9000 + 4950 - 4.95.
    """
    raw = scenario({"alpha": [(2, "LONG")], "beta": [(2, "SHORT")]},
                   [{"name": "a", "agents": ["alpha"], "capital": 1000.0,
                     "policy": {"exposure": 1.0}}, {"name": "b", "agents": ["beta"]}],
                   venue={"latency_ms": 30_000.0}, execution={"latency": True})
    got = run(tmp_path, raw, {"X": [flat(100), flat(100), flat(100), flat(110), flat(110)]})
    qa = 1000 / (100 * 1.001)
    assert [(o[1], o[7]) for o in got["orders"]] == [("a", "filled"), ("b", "filled")]
    assert got["orders"][0][4] == pytest.approx(qa, rel=1e-12)
    assert got["orders"][0][8] == pytest.approx(1000 / (110 * 1.001), rel=1e-9)
    assert got["orders"][0][9] == "trimmed to the cash or margin available"
    assert [(f[0], f[1], f[3]) for f in got["fills"]] == [
        (bar_ts(4), "a", 110.0), (bar_ts(4), "b", 110.0)]
    assert cash_of(got, "a")[-1] == pytest.approx(0.0, abs=1e-9)
    assert cash_of(got, "b")[-1] == pytest.approx(9000 + 4950 - 4.95, rel=1e-12)
    check_sum(got)


def test_volatility_slippage_is_in_a_farms_price_bound(tmp_path: Path) -> None:
    """volatility_slippage 0.5 x the previous bar's range: bar 2 spans 90..110 around a
    close of 100, so fills at bar 3's open (100) slip 0.5 x 0.2 = 10%. a (1 000, exposure
    1) buys at most 1000 / (100 x 1.1 x 1.001) = 9.0818.. (its bound: the fill price 110
    and the fee), fills that at 110 and keeps nothing; b sells 0.5 x 9000 / 100 = 45 at
    90, fee 4.05."""
    raw = scenario({"alpha": [(2, "LONG")], "beta": [(2, "SHORT")]},
                   [{"name": "a", "agents": ["alpha"], "capital": 1000.0,
                     "policy": {"exposure": 1.0}}, {"name": "b", "agents": ["beta"]}],
                   venue={"volatility_slippage": 0.5})
    got = run(tmp_path, raw, {"X": [flat(100), (100, 110, 90, 100), flat(100), flat(100)]})
    qa = 1000 / (100 * 1.1 * 1.001)
    assert [(o[1], o[7]) for o in got["orders"]] == [("a", "filled"), ("b", "filled")]
    assert got["orders"][0][4] == pytest.approx(qa, rel=1e-12)
    assert got["orders"][0][8] == pytest.approx(qa, rel=1e-12)  # sized right: no trim
    assert [(f[1], f[2], f[3], f[4]) for f in got["fills"]] == [
        ("a", pytest.approx(qa, rel=1e-12), pytest.approx(110.0), pytest.approx(qa * 0.11)),
        ("b", -45.0, pytest.approx(90.0), pytest.approx(4.05))]
    assert cash_of(got, "a")[-1] == pytest.approx(0.0, abs=1e-9)
    check_sum(got)


def test_tick_replay_two_farms_resting_limits(tmp_path: Path) -> None:
    """Trades (price, amount) build 1-minute bars; a LONG and b SHORT after bar 2, limit
    orders 1% inside. Bar 3's first trade (100, at 2m 0s) releases both: a buys
    0.5 x 6000 / 100 = 30 at a limit of 99, b sells 20 at 101; both rest. The trade at
    98.9 (2m 20s) fills a's at 99 (maker, fee 0); the trade at 101.5 (2m 40s) fills b's
    at 101. Cash: a 6000 - 2970, b 4000 + 2020."""
    path = tmp_path / "trades.csv"
    rows = [(0, 100.0), (20, 100.0), (60, 100.0), (80, 100.0),  # bars 1 and 2
            (120, 100.0), (140, 98.9), (160, 101.5), (180, 100.0), (200, 100.0)]
    pd.DataFrame({
        "timestamp_ms": [(T0 + s * 10**9) // 10**6 for s, _ in rows],
        "trade_id": np.arange(len(rows)), "side": ["buy"] * len(rows),
        "price": [p for _, p in rows], "amount": [1.0] * len(rows)}).to_csv(path, index=False)
    raw = scenario({"alpha": [(2, "LONG")], "beta": [(2, "SHORT")]}, AB,
                   execution={"replay": "ticks", "order_type": "limit", "offset_bps": 100.0})
    raw["data"] = [{"symbol": "X", "path": str(path), "format": "trades", "interval": "1m"}]
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        run_id = run_scenario(parse_scenario(raw, "hand"), store).run_id
        got = tables(store, run_id)
    assert [(f[0], f[1], f[2], f[3], f[5]) for f in got["fills"]] == [
        (T0 + 140 * 10**9, "a", 30.0, 99.0, "maker"),
        (T0 + 160 * 10**9, "b", -20.0, 101.0, "maker")]
    assert cash_of(got, "a")[-1] == pytest.approx(3030.0, rel=1e-12)
    assert cash_of(got, "b")[-1] == pytest.approx(6020.0, rel=1e-12)
    check_sum(got)
