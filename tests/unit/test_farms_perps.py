"""Two farms on a perpetual, worked out by hand: funding split by each farm's own
position, each farm's margin (its own leverage limit), the venue's liquidation of the
account shared by the farms, and a farm's own margin call.

As ``test_farms_hand_computed``: bars one minute apart, scripted agents, decisions fill
at the next bar's open. The venue ``p`` is a perpetual (maintenance margin 5%); funding
0.001 every minute, at each bar's time before its bars, at the last close.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sim.config import parse_scenario
from sim.data import bars_from_frame, merge
from sim.runner import run_scenario
from sim.store import DuckDBStore
from tests.unit.test_farms_hand_computed import OPPOSITE, _frame, approx, bar_ts, scenario

SQL = {
    "fills": "SELECT epoch_ns(ts) AS ts, farm, quantity, price, fee, liquidity "
             "FROM fills_by_farm WHERE run_id = ? ORDER BY fill_id",
    "farm_equity": "SELECT farm, list(cash ORDER BY ts) AS cash, "
                   "list(equity ORDER BY ts) AS equity FROM farm_equity WHERE run_id = ? "
                   "GROUP BY farm ORDER BY farm",
    "equity": "SELECT cash, equity FROM equity WHERE run_id = ? ORDER BY ts",
    "funding": "SELECT epoch_ns(ts) AS ts, position, mark, payment FROM funding "
               "WHERE run_id = ? ORDER BY ts",
    "farm_funding": "SELECT epoch_ns(ts) AS ts, farm, position, mark, payment "
                    "FROM farm_funding WHERE run_id = ? ORDER BY ts, farm",
    "liquidations": "SELECT epoch_ns(ts) AS ts, position, price FROM liquidations "
                    "WHERE run_id = ? ORDER BY ts",
    "farm_liquidations": "SELECT epoch_ns(ts) AS ts, farm, order_id, position, price, fee, "
                         "fee IS NULL AS no_fee, cause FROM farm_liquidations "
                         "WHERE run_id = ? ORDER BY ts, farm",
    "risk": "SELECT farm, check_name FROM risk_events_by_farm WHERE run_id = ? "
            "ORDER BY order_id",
}


def perp(raw: dict[str, Any], fee_bps: float = 10.0, **venue: Any) -> dict[str, Any]:
    raw["venues"] = [{"name": "p", "symbols": ["X"], "kind": "perp", "max_leverage": 10.0,
                      "maintenance_margin": 0.05, "fee_bps": fee_bps, **venue}]
    return raw


def run(tmp_path: Path, raw: dict[str, Any], bars: Sequence[tuple[float, ...]]
        ) -> dict[str, dict[str, list[Any]]]:
    config = parse_scenario(raw, "perp")
    frame = _frame([(b[0], b[-1]) for b in bars])
    frame["high"] = [max(b) for b in bars]
    frame["low"] = [min(b) for b in bars]
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        run_id = run_scenario(config, store, data=merge([bars_from_frame(frame, "X")])).run_id
        return {name: {k: np.asarray(v).tolist() for k, v in
                       store.con.execute(sql, [run_id]).fetchnumpy().items()}
                for name, sql in SQL.items()}


def test_funding_is_split_between_two_farms_with_opposite_positions(tmp_path: Path) -> None:
    """``a`` (6000) LONG and ``b`` (4000) SHORT after bar 2, both FLAT after bar 4.

    Bar 3's open (100): a buys 30 (fee 3, cash 2997), b sells 20 (fee 2, cash 5998);
        the account holds 10.
    Funding at bar 4's time, mark 110 (bar 3's close): a pays 0.001 x 30 x 110 = 3.3,
        b receives 0.001 x 20 x 110 = 2.2; the account pays 0.001 x 10 x 110 = 1.1.
    At bar 5's time, mark 115: a pays 3.45, b receives 2.3, the account pays 1.15.
    Bar 5's open (120): a sells 30 (fee 3.6), b buys 20 (fee 2.4); no funding after.
        a: 2997 - 3.3 - 3.45 + 3600 - 3.6 = 6586.65; b: 5998 + 2.2 + 2.3 - 2402.4 = 3600.1
    """
    raw = perp(scenario(
        {"alpha": [(2, "LONG"), (4, "FLAT")], "beta": [(2, "SHORT"), (4, "FLAT")]},
        {"alpha": "X", "beta": "X"},
        [{"name": "a", "agents": ["alpha"], "capital": 6000.0},
         {"name": "b", "agents": ["beta"]}]), funding_rate=0.001, funding_interval="1m")
    got = run(tmp_path, raw, OPPOSITE)
    assert got["fills"]["quantity"] == approx([30.0, -20.0, -30.0, 20.0])
    ff = got["farm_funding"]
    assert list(zip(ff["ts"], ff["farm"], strict=True)) == [
        (bar_ts(4), "a"), (bar_ts(4), "b"), (bar_ts(5), "a"), (bar_ts(5), "b")]
    assert ff["position"] == approx([30.0, -20.0, 30.0, -20.0])
    assert ff["mark"] == approx([110.0, 110.0, 115.0, 115.0])
    assert ff["payment"] == approx([-3.3, 2.2, -3.45, 2.3])
    account = got["funding"]
    assert account["ts"] == [bar_ts(4), bar_ts(5)]
    assert account["position"] == approx([10.0, 10.0])
    assert account["payment"] == approx([-1.1, -1.15])
    # the invariant: the farms' funding adds up to the account's at every funding time
    for ts, paid in zip(account["ts"], account["payment"], strict=True):
        farms = [p for t, p in zip(ff["ts"], ff["payment"], strict=True) if t == ts]
        assert sum(farms) == pytest.approx(paid, rel=1e-12)
    cash = dict(zip(got["farm_equity"]["farm"], got["farm_equity"]["cash"], strict=True))
    assert cash["a"] == approx([6000, 6000, 2997, 2993.7, 6586.65, 6586.65])
    assert cash["b"] == approx([4000, 4000, 5998, 6000.2, 3600.1, 3600.1])
    assert got["equity"]["cash"] == approx(
        [10_000, 10_000, 8995, 8993.9, 10_186.75, 10_186.75])


def test_a_farm_opens_within_its_own_margin_and_leverage(tmp_path: Path) -> None:
    """``a`` (6000, max_leverage 2 on a 10x venue) targets exposure 3: 180 units at 100
    would need 9000 of margin; trimmed to what its collateral pays margin (1/2) and costs
    (0.001) for: 6000 / (100 x 0.501) = 119.76...; its gross leverage is then below 2.
    ``b`` (4000, the venue's 10x) takes its full 3 x 4000 / 100 = 120 short."""
    raw = perp(scenario(
        {"alpha": [(2, "LONG")], "beta": [(2, "SHORT")]}, {"alpha": "X", "beta": "X"},
        [{"name": "a", "agents": ["alpha"], "capital": 6000.0,
          "risk": {"max_leverage": 2.0}},
         {"name": "b", "agents": ["beta"]}]))
    raw["policy"] = {"exposure": 3.0, "allow_short": True}
    got = run(tmp_path, raw, [(100, 100)] * 4)
    q = 6000.0 / (100.0 * 0.501)
    assert got["fills"]["farm"] == ["a", "b"]
    assert got["fills"]["quantity"] == approx([q, -120.0])
    assert got["risk"]["check_name"] == []
    equity = dict(zip(got["farm_equity"]["farm"], got["farm_equity"]["equity"], strict=True))
    assert equity["a"][-1] == pytest.approx(6000.0 - q * 0.1, rel=1e-12)
    assert q * 100.0 / equity["a"][-1] == pytest.approx(2.0, rel=1e-12)  # at its limit


def _levered(capital_a: float = 1000.0) -> dict[str, Any]:
    """``a`` (1000) LONG at exposure 10 (its own policy), ``b`` (1000) SHORT at 0.2; no
    fees: a buys 1000 / (100 x 0.1) = 100, b sells 0.2 x 1000 / 100 = 2 at bar 3's
    open (100). Cash: a -9000, b 1200, the account -7800 holding 98."""
    return perp(scenario(
        {"alpha": [(2, "LONG")], "beta": [(2, "SHORT")]}, {"alpha": "X", "beta": "X"},
        [{"name": "a", "agents": ["alpha"], "capital": capital_a,
          "policy": {"exposure": 10.0}},
         {"name": "b", "agents": ["beta"], "policy": {"exposure": 0.2,
                                                       "allow_short": True}}],
        initial_cash=2000.0), fee_bps=0.0)


def test_the_venue_liquidating_the_account_closes_every_farms_position(
        tmp_path: Path) -> None:
    """The account's equity -7800 + 98 P meets its maintenance 0.05 x 98 P at
    P = 7800 / (98 x 0.95) = 83.78...; bar 4 trades down to 80 (a's own margin call
    would come at its close, 96, too late): the venue liquidates the account's 98 at P.
    Each farm loses its position at P: a sells 100 (cash -9000 + 100 P), b buys 2
    (1200 - 2 P); the fee is 0. The account ends flat, and so does each farm."""
    got = run(tmp_path, _levered(), [(100, 100)] * 3 + [(99, 99, 80, 96), (96, 96)])
    price = 7800.0 / (98 * 0.95)
    assert got["liquidations"]["position"] == [98.0]
    assert got["liquidations"]["price"] == approx([price])
    fills = got["fills"]
    assert fills["quantity"] == approx([100.0, -2.0, -98.0])
    assert fills["farm"] == ["a", "b", None]  # the liquidation order is the account's
    fl = got["farm_liquidations"]
    assert fl["farm"] == ["a", "b"]
    assert fl["position"] == approx([100.0, -2.0])
    assert fl["price"] == approx([price, price])
    assert fl["fee"] == approx([0.0, 0.0])
    assert fl["order_id"][0] == fl["order_id"][1]
    cash = dict(zip(got["farm_equity"]["farm"], got["farm_equity"]["cash"], strict=True))
    assert cash["a"][-1] == pytest.approx(-9000 + 100 * price, rel=1e-12)
    assert cash["b"][-1] == pytest.approx(1200 - 2 * price, rel=1e-12)
    assert got["equity"]["cash"][-1] == pytest.approx(-7800 + 98 * price, rel=1e-12)


def test_the_liquidation_fee_is_shared_by_the_size_each_farm_loses(tmp_path: Path) -> None:
    """As above with fee 10 bps: a buys 1000 / (100 x 0.101) = 99.0099..., b sells 2
    (fee 0.2); the venue's fee on the 97.0099... it sells is shared 99.0099... : 2."""
    raw = _levered()
    raw["venues"][0]["fee_bps"] = 10.0
    got = run(tmp_path, raw, [(100, 100)] * 3 + [(99, 99, 70, 96), (96, 96)])
    q = 1000.0 / (100.0 * 0.101)
    assert got["fills"]["quantity"] == approx([q, -2.0, -(q - 2.0)])
    fee = got["fills"]["fee"][-1]
    assert fee > 0.0
    assert got["farm_liquidations"]["position"] == approx([q, -2.0])
    assert got["farm_liquidations"]["fee"] == approx([fee * q / (q + 2), fee * 2 / (q + 2)])


def test_a_farm_below_its_own_maintenance_margin_is_closed_alone(tmp_path: Path) -> None:
    """a's equity -9000 + 100 P meets its own maintenance 0.05 x 100 P at 94.74; bar 4
    closes at 94 (low 93: the account, at 83.78, is safe). At that close (stamped with
    bar 4's time) a's margin call sells its 100 at the mark 94 with an order of farm a:
    cash -9000 + 9400 = 400.
    b keeps its short of 2; the account holds -2."""
    got = run(tmp_path, _levered(), [(100, 100)] * 3 + [(99, 99, 93, 94), (94, 94)])
    assert got["liquidations"]["position"] == []
    fills = got["fills"]
    assert list(zip(fills["ts"], fills["farm"], strict=True)) == [
        (bar_ts(3), "a"), (bar_ts(3), "b"), (bar_ts(4), "a")]
    assert fills["quantity"] == approx([100.0, -2.0, -100.0])
    assert fills["price"][-1] == 94.0
    fl = got["farm_liquidations"]
    assert fl["farm"] == ["a"]
    assert fl["position"] == approx([100.0])
    assert fl["no_fee"] == [True]  # its fill (the farm's order) has the fee
    assert fl["cause"][0].startswith("farm margin: equity")
    cash = dict(zip(got["farm_equity"]["farm"], got["farm_equity"]["cash"], strict=True))
    assert cash["a"][-1] == pytest.approx(400.0, rel=1e-12)
    assert cash["b"][-1] == pytest.approx(1200.0, rel=1e-12)
