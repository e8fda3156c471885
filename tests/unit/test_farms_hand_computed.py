"""Two farms worked out by hand: the whole pipeline runs (runner, per-farm consensus,
policy and limits, the account's risk, router, SimVenue, ledgers, recorder, DuckDB), and
the stored fills, farm ledgers and risk events are compared with numbers derived below.

Venue: fee 10 bps (0.001), no slippage. Initial cash 10 000; farm ``a`` 6 000, farm
``b`` 4 000 unless said otherwise. Policy: exposure 0.5, shorts allowed. Each farm has
one scripted agent; decisions fill at the next bar's open. Bars one minute apart (one
day).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from reports.farms import farm_table
from sim.config import parse_scenario
from sim.config_base import ConfigError
from sim.data import bars_from_frame, merge
from sim.messages import Side, Signal
from sim.runner import run_scenario
from sim.store import DuckDBStore
from sim.view import MarketView

AGENT = f"{__name__}:ScriptedAgent"
MINUTE_NS = 60 * 10**9
T0 = pd.Timestamp("2024-03-01T00:00:00Z").value


class ScriptedAgent:
    """Emits ``side`` after the close of bar number ``n`` (1-based) for each [n, side]."""

    def __init__(self, script: Sequence[Sequence[object]]) -> None:
        self._script = {int(n): Signal(Side[str(side)], 1.0) for n, side in script}

    def on_bar(self, view: MarketView) -> Signal | None:
        return self._script.get(view.n)


def _frame(closes: Sequence[tuple[float, float]]) -> pd.DataFrame:
    """Bars from (open, close) pairs; high and low span them."""
    o = [b[0] for b in closes]
    c = [b[1] for b in closes]
    return pd.DataFrame({
        "timestamp": pd.to_datetime([T0 + n * MINUTE_NS for n in range(len(o))], utc=True),
        "open": o, "high": [max(x, y) for x, y in zip(o, c, strict=True)],
        "low": [min(x, y) for x, y in zip(o, c, strict=True)], "close": c,
        "volume": [1.0] * len(o)})


def bar_ts(n: int) -> int:
    return T0 + (n - 1) * MINUTE_NS


def scenario(scripts: dict[str, Sequence[Sequence[object]]], symbols: dict[str, str],
             farms: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "name": "farms_hand", "initial_cash": 10_000.0,
        "agents": [{"name": name, "kind": AGENT, "params": {"script": [list(s) for s in script]},
                    "symbols": [symbols[name]]} for name, script in scripts.items()],
        "policy": {"exposure": 0.5, "allow_short": True},
        "venues": [{"name": "v", "symbols": sorted(set(symbols.values())), "fee_bps": 10.0}],
        "farms": farms, **extra}


def run(tmp_path: Path, raw: dict[str, Any], bars: dict[str, Sequence[tuple[float, float]]]
        ) -> dict[str, dict[str, np.ndarray]]:
    config = parse_scenario(raw, "hand")
    data = merge([bars_from_frame(_frame(b), sym) for sym, b in bars.items()])
    out = {}
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        run_id = run_scenario(config, store, data=data).run_id
        for name, sql in {
            "fills": "SELECT epoch_ns(ts) AS ts, farm, symbol, quantity, price, fee, "
                     "position_after FROM fills_by_farm WHERE run_id = ? ORDER BY fill_id",
            "farm_equity": "SELECT epoch_ns(ts) AS ts, farm, cash, equity FROM farm_equity "
                           "WHERE run_id = ? ORDER BY farm, ts",
            "equity": "SELECT epoch_ns(ts) AS ts, cash, equity FROM equity WHERE run_id = ? "
                      "ORDER BY ts",
            "risk": "SELECT epoch_ns(ts) AS ts, farm, check_name FROM risk_events_by_farm "
                    "WHERE run_id = ? ORDER BY order_id",
            "trades": "SELECT agent, farm, order_id, side, status FROM agent_trades "
                      "WHERE run_id = ? ORDER BY order_id",
        }.items():
            rows = store.con.execute(sql, [run_id]).fetchnumpy()
            out[name] = {k: np.asarray(v) for k, v in rows.items()}
    return out


def approx(values: Sequence[float]) -> object:
    return pytest.approx(list(values), rel=1e-12, abs=1e-9)


def farm_rows(got: dict[str, dict[str, np.ndarray]], farm: str, column: str) -> list[float]:
    table = got["farm_equity"]
    return table[column][table["farm"] == farm].tolist()


OPPOSITE = [(100, 100), (100, 100), (100, 110), (110, 115), (120, 120), (120, 120)]


def test_same_symbol_opposite_views_both_sent_netted_at_the_venue(tmp_path: Path) -> None:
    """``a`` says LONG, ``b`` SHORT after bar 2; both FLAT after bar 4.

    Bar 3's open (100), ``a`` first (listed first):
        a buys  0.5 * 6000 / 100 = 30 at 100, fee 3   -> a cash 6000 - 3000 - 3 = 2997
        b sells 0.5 * 4000 / 100 = 20 at 100, fee 2   -> b cash 4000 + 2000 - 2 = 5998
        account: position 30 then 10 (netted), cash 8995, fees 5
    Close of bar 3 (110): a 2997 + 30 * 110 = 6297; b 5998 - 20 * 110 = 3798;
        account 8995 + 10 * 110 = 10 095 = 6297 + 3798.
    Bar 5's open (120): a sells 30, fee 3.6 -> 2997 + 3600 - 3.6 = 6593.4 (made 600);
        b buys 20, fee 2.4 -> 5998 - 2400 - 2.4 = 3595.6 (lost 400); account 10 189.
    """
    got = run(tmp_path, scenario(
        {"alpha": [(2, "LONG"), (4, "FLAT")], "beta": [(2, "SHORT"), (4, "FLAT")]},
        {"alpha": "X", "beta": "X"},
        [{"name": "a", "agents": ["alpha"], "capital": 6000.0},
         {"name": "b", "agents": ["beta"], "share": 0.4}]), {"X": OPPOSITE})
    fills = got["fills"]
    assert fills["ts"].tolist() == [bar_ts(3), bar_ts(3), bar_ts(5), bar_ts(5)]
    assert fills["farm"].tolist() == ["a", "b", "a", "b"]
    assert fills["quantity"].tolist() == approx([30.0, -20.0, -30.0, 20.0])
    assert fills["fee"].tolist() == approx([3.0, 2.0, 3.6, 2.4])
    assert fills["position_after"].tolist() == approx([30.0, 10.0, -20.0, 0.0])
    assert farm_rows(got, "a", "cash") == approx([6000, 6000, 2997, 2997, 6593.4, 6593.4])
    assert farm_rows(got, "a", "equity") == approx([6000, 6000, 6297, 6447, 6593.4, 6593.4])
    assert farm_rows(got, "b", "cash") == approx([4000, 4000, 5998, 5998, 3595.6, 3595.6])
    assert farm_rows(got, "b", "equity") == approx([4000, 4000, 3798, 3698, 3595.6, 3595.6])
    assert got["equity"]["equity"].tolist() == approx(
        [10_000, 10_000, 10_095, 10_145, 10_189, 10_189])
    assert got["risk"]["check_name"].tolist() == []
    trades = got["trades"]
    assert list(zip(trades["agent"], trades["farm"], trades["side"], strict=True)) == [
        ("alpha", "a", "LONG"), ("beta", "b", "SHORT"), ("alpha", "a", "FLAT"),
        ("beta", "b", "FLAT")]


def test_different_symbols_keep_to_their_own_ledgers(tmp_path: Path) -> None:
    """``a`` trades X, ``b`` trades Y; both LONG after bar 2 (fill at bar 3's open).

    a buys 0.5 * 6000 / 100 = 30 X at 100, fee 3 -> cash 2997; X closes at 110, 115
        -> equity 2997 + 3300 = 6297, then 2997 + 3450 = 6447.
    b buys 0.5 * 4000 / 50 = 40 Y at 50, fee 2 -> cash 1998; Y closes at 40, 45
        -> equity 1998 + 1600 = 3598, then 1998 + 1800 = 3798.
    Account: 10 000 - 3003 - 2002 = 4995 cash; equity 9895, then 10 245.
    """
    got = run(tmp_path, scenario(
        {"alpha": [(2, "LONG")], "beta": [(2, "LONG")]}, {"alpha": "X", "beta": "Y"},
        [{"name": "a", "agents": ["alpha"], "capital": 6000.0},
         {"name": "b", "agents": ["beta"]}]),  # b: what a leaves, 4000
        {"X": [(100, 100), (100, 100), (100, 110), (110, 115)],
         "Y": [(50, 50), (50, 50), (50, 40), (40, 45)]})
    fills = got["fills"]
    assert list(zip(fills["farm"], fills["symbol"], strict=True)) == [("a", "X"), ("b", "Y")]
    assert fills["quantity"].tolist() == approx([30.0, 40.0])
    assert farm_rows(got, "a", "equity") == approx([6000, 6000, 6297, 6447])
    assert farm_rows(got, "b", "equity") == approx([4000, 4000, 3598, 3798])
    assert got["equity"]["cash"].tolist() == approx([10_000, 10_000, 4995, 4995])
    assert got["equity"]["equity"].tolist() == approx([10_000, 10_000, 9895, 10_245])


def test_a_farm_breaching_its_daily_loss_stops_while_the_other_trades_on(
        tmp_path: Path) -> None:
    """``b`` (daily loss limit 100 in money) goes LONG after bar 2 and FLAT after bar 3;
    LONG again after bar 4; ``a`` goes LONG after bar 4.

    Bar 3's open (100): b buys 20 at 100, fee 2 -> cash 1998; bar 3 closes at 90.
    Bar 4's open (90): b sells 20 (its equity 1998 + 20 * 90 = 3798: lost 202 >= 100
        today, the breaker trips; a reduction still goes): fee 1.8 -> cash 3796.2.
    Bar 5's open (90): b's LONG is denied (farm.circuit_breaker); a buys
        0.5 * 6000 / 90 = 33.33.. at 90, fee 3 -> cash 2997.
    """
    got = run(tmp_path, scenario(
        {"alpha": [(4, "LONG")], "beta": [(2, "LONG"), (3, "FLAT"), (4, "LONG")]},
        {"alpha": "X", "beta": "X"},
        [{"name": "a", "agents": ["alpha"], "capital": 6000.0},
         {"name": "b", "agents": ["beta"], "capital": 4000.0,
          "risk": {"daily_loss": 100.0}}]),
        {"X": [(100, 100), (100, 100), (100, 90), (90, 90), (90, 90), (90, 90)]})
    fills = got["fills"]
    assert list(zip(fills["ts"], fills["farm"], strict=True)) == [
        (bar_ts(3), "b"), (bar_ts(4), "b"), (bar_ts(5), "a")]
    assert fills["quantity"].tolist() == approx([20.0, -20.0, 6000 * 0.5 / 90])
    assert got["risk"]["farm"].tolist() == ["b"]
    assert got["risk"]["check_name"].tolist() == ["farm.circuit_breaker"]
    assert got["risk"]["ts"].tolist() == [bar_ts(5)]
    assert farm_rows(got, "b", "cash")[-1] == pytest.approx(3796.2, rel=1e-12)
    assert farm_rows(got, "a", "cash")[-1] == pytest.approx(2997.0, rel=1e-12)


def test_a_farm_spends_only_the_cash_it_has(tmp_path: Path) -> None:
    """Exposure 1 on a 1000 farm (the account has 10 000): 10 at 100 would cost 1001 with
    the fee, more than the farm's cash; the buy is trimmed to what its cash pays for:
        quantity = 1000 / (100 * 1.001) = 9.99000999..., fee = quantity * 0.1,
        cash after = 1000 - quantity * 100.1 = 0 (to rounding)."""
    raw = scenario({"alpha": [(2, "LONG")]}, {"alpha": "X"},
                   [{"name": "a", "agents": ["alpha"], "capital": 1000.0}])
    raw["policy"] = {"exposure": 1.0}
    got = run(tmp_path, raw, {"X": OPPOSITE[:4]})
    q = 1000.0 / (100.0 * 1.001)
    assert got["fills"]["quantity"].tolist() == approx([q])
    assert got["fills"]["fee"].tolist() == approx([q * 0.1])
    assert got["risk"]["check_name"].tolist() == []
    assert farm_rows(got, "a", "cash")[-1] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(("farms", "extra", "message"), [
    ([{"name": "a", "agents": ["alpha"]}, {"name": "b", "agents": ["alpha", "beta"]}], {},
     "farms.b.agents: 'alpha' is in farm 'a' already"),
    ([{"name": "a", "agents": ["alpha"], "share": 0.7},
      {"name": "b", "agents": ["beta"], "share": 0.5}], {},
     "farms: capital shares add up to 1.2, over 1"),
    ([{"name": "a", "agents": ["alpha", "gamma"]}], {},
     "farms.a.agents: no agent is named 'gamma'"),
    ([{"name": "a", "agents": ["alpha"]}], {}, "farms: agent 'beta' is in no farm"),
    ([{"name": "a", "agents": ["alpha"], "capital": 9000.0},
      {"name": "b", "agents": ["beta"], "capital": 2000.0}], {},
     "farms: farm capital adds up to 11000, over initial_cash 10000"),
    ([{"name": "a", "agents": ["alpha"], "capital": 1.0, "share": 0.5},
      {"name": "b", "agents": ["beta"]}], {}, "farms.0: capital: give capital"),
    ([{"name": "a", "agents": ["alpha"], "wallet": ["w"]}, {"name": "b", "agents": ["beta"]}],
     {}, "farms.a.wallet: 'w' is not a venue"),
    ([{"name": "a", "agents": ["alpha"], "risk": {"daily_loss": -1}},
      {"name": "b", "agents": ["beta"]}], {}, "farms.0.risk.daily_loss:"),
])
def test_bad_farms_are_refused_in_one_line_naming_the_field(
        farms: list[dict[str, Any]], extra: dict[str, Any], message: str) -> None:
    raw = scenario({"alpha": [], "beta": []}, {"alpha": "X", "beta": "X"}, farms, **extra)
    with pytest.raises(ConfigError) as caught:
        parse_scenario(raw, "s.toml")
    text = str(caught.value)
    assert "\n" not in text
    assert message in text, text


def test_equal_weight_allocator_moves_cash_between_farms(tmp_path: Path) -> None:
    """No trades; ``[allocator]`` equal weight every 2 minutes, from the first bar (T0):
    at bar 3 (T0 + 2m, before its bars) a holds 6000 and b 4000 of 10 000, targets
    5000 each: a gives 1000 of its cash to b. At bar 5 both are at target: nothing."""
    raw = scenario({"alpha": [], "beta": []}, {"alpha": "X", "beta": "X"},
                   [{"name": "a", "agents": ["alpha"], "capital": 6000.0},
                    {"name": "b", "agents": ["beta"]}],
                   allocator={"method": "equal", "every": "2m"})
    config = parse_scenario(raw, "hand")
    data = merge([bars_from_frame(_frame(OPPOSITE), "X")])
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        run_id = run_scenario(config, store, data=data).run_id
        transfers = store.con.execute(
            "SELECT epoch_ns(ts), from_farm, to_farm, amount, reason FROM capital_transfers"
            " WHERE run_id = ? ORDER BY ts, from_farm, to_farm", [run_id]).fetchall()
        cash = store.con.execute(
            "SELECT farm, list(cash ORDER BY ts) FROM farm_equity WHERE run_id = ?"
            " GROUP BY farm ORDER BY farm", [run_id]).fetchall()
        report = {row["farm"]: row for row in farm_table(store.con, run_id)}
    assert transfers == [(bar_ts(1), "account", "a", 6000.0, "initial allocation"),
                         (bar_ts(1), "account", "b", 4000.0, "initial allocation"),
                         (bar_ts(3), "a", "b", 1000.0, "rebalance: equal")]
    assert cash == [("a", [6000.0, 6000.0, 5000.0, 5000.0, 5000.0, 5000.0]),
                    ("b", [4000.0, 4000.0, 5000.0, 5000.0, 5000.0, 5000.0])]
    # The per-farm report nets the transfer out: a moved 1000 away, it neither lost it
    # nor b gained it.
    assert [report[f]["moved_in"] for f in "ab"] == [-1000.0, 1000.0]
    assert [report[f]["pnl"] for f in "ab"] == [0.0, 0.0]
    assert [report[f]["total_return"] for f in "ab"] == [0.0, 0.0]
    assert [report[f]["max_drawdown"] for f in "ab"] == [0.0, 0.0]


def test_allocator_weights_by_hand() -> None:
    """inverse volatility: a's returns 10%, -10%, 10% (sample sd 0.11547), b's 1%, -0.99%,
    1% (sd 0.011490...): raw weights 1/sd; floor 0.2 of each, the rest 0.6 by raw.
    performance: a +8.9%, b +1% over the window -> raw 0.089 : 0.01."""
    from itertools import pairwise
    from statistics import stdev

    from sim.allocator import Allocator

    a = [100.0, 110.0, 99.0, 108.9]
    b = [100.0, 101.0, 100.0, 101.0]
    farms: Any = [object(), object()]
    inv = Allocator(farms, "inverse_volatility", 0.2, 3, lambda *row: None)
    perf = Allocator(farms, "performance", 0.2, 3, lambda *row: None)
    for allocator in (inv, perf):
        for x, y in zip(a, b, strict=True):
            allocator.observe([x, y])
    sd = [stdev([q / p - 1 for p, q in pairwise(s)]) for s in (a, b)]
    raw = [1 / sd[0], 1 / sd[1]]
    assert inv.weights() == pytest.approx([0.2 + 0.6 * r / sum(raw) for r in raw], rel=1e-12)
    gains = [108.9 / 100 - 1, 101 / 100 - 1]
    assert perf.weights() == pytest.approx([0.2 + 0.6 * g / sum(gains) for g in gains],
                                           rel=1e-12)


def test_sweeps_can_vary_farm_capital_and_allocator_fields() -> None:
    """A sweep addresses farms by name like agents (``sim.config_paths``)."""
    from sim.config import ScenarioConfig, load_scenario
    from sim.config_paths import resolve_path, set_value

    config = load_scenario(Path(__file__).resolve().parents[2] / "scenarios/farms.toml")
    keys = resolve_path(config, "farms.smc.capital")
    assert keys == ("farms", 2, "capital")
    raw = config.model_dump(mode="json")
    set_value(raw, keys, 1500.0)
    set_value(raw, ("allocator",), {"method": "equal", "every": "7d", "floor": 0.1})
    changed = ScenarioConfig.model_validate(raw)
    assert changed.farms[2].capital == 1500.0
    assert resolve_path(changed, "allocator.floor") == ("allocator", "floor")


def test_the_account_kill_switch_flattens_each_farm_with_its_own_orders(
        tmp_path: Path) -> None:
    """As the opposite-views case (a long 30, b short 20 from bar 3's open at 100); a kill
    switch at bar 4 with ``flatten_on_trip``: before bar 4's bars, at the latest mark (bar
    3's close, 110), a sells 30 (fee 3.3) and b buys 20 back (fee 2.2), each an order of
    its farm; the account ends flat and the FLAT decisions after bar 4 make no orders."""
    raw = scenario(
        {"alpha": [(2, "LONG"), (4, "FLAT")], "beta": [(2, "SHORT"), (4, "FLAT")]},
        {"alpha": "X", "beta": "X"},
        [{"name": "a", "agents": ["alpha"], "capital": 6000.0},
         {"name": "b", "agents": ["beta"]}],
        risk={"flatten_on_trip": True},
        events=[{"at": "2024-03-01T00:03:00Z", "kind": "kill_switch"}])
    got = run(tmp_path, raw, {"X": OPPOSITE})
    fills = got["fills"]
    assert list(zip(fills["ts"], fills["farm"], strict=True)) == [
        (bar_ts(3), "a"), (bar_ts(3), "b"), (bar_ts(4), "a"), (bar_ts(4), "b")]
    assert fills["quantity"].tolist() == approx([30.0, -20.0, -30.0, 20.0])
    assert fills["fee"].tolist() == approx([3.0, 2.0, 3.3, 2.2])
    assert fills["position_after"].tolist()[-1] == 0.0
    # a: 2997 + 3300 - 3.3; b: 5998 - 2200 - 2.2
    assert farm_rows(got, "a", "cash")[-1] == pytest.approx(6293.7, rel=1e-12)
    assert farm_rows(got, "b", "cash")[-1] == pytest.approx(3795.8, rel=1e-12)
