"""Agents changing inside farms, worked out by hand: an agent spawned as a farm of its
own (its capital from the reserve, its farm row, its transfer, its breaker stopping only
it) or joining a farm, an agent_update moving an agent to another symbol inside its
farm, and ``performance_weighted`` consensus weighing a farm's own agents.

As ``test_farms_hand_computed``: fee 10 bps, bars one minute apart, scripted agents
(``[n, side]``: the signal after bar n's close), decisions fill at the next open.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from reports.farms import farm_correlation
from sim.config import ConfigError, parse_scenario
from sim.data import bars_from_frame, merge
from sim.runner import run_scenario
from sim.store import DuckDBStore
from tests.unit.test_farms_hand_computed import AGENT, _frame, approx, bar_ts, scenario

SQL = {
    "fills": "SELECT epoch_ns(ts) AS ts, farm, symbol, quantity, price, fee "
             "FROM fills_by_farm WHERE run_id = ? ORDER BY fill_id",
    "farm_equity": "SELECT farm, list(epoch_ns(ts) ORDER BY ts) AS ts, "
                   "list(cash ORDER BY ts) AS cash FROM farm_equity WHERE run_id = ? "
                   "GROUP BY farm ORDER BY farm",
    "farms": "SELECT farm, agents, capital, risk FROM farms WHERE run_id = ? ORDER BY farm",
    "transfers": "SELECT epoch_ns(ts) AS ts, from_farm, to_farm, amount, reason "
                 "FROM capital_transfers WHERE run_id = ? ORDER BY ts, to_farm",
    "risk": "SELECT epoch_ns(ts) AS ts, farm, check_name FROM risk_events_by_farm "
            "WHERE run_id = ? ORDER BY order_id",
    "decisions": "SELECT epoch_ns(ts) AS ts, farm, symbol, side, confidence "
                 "FROM decisions_by_farm WHERE run_id = ? ORDER BY decision_id",
    "agent_events": "SELECT agent, command, outcome FROM agent_events WHERE run_id = ? "
                    "ORDER BY seq",
}


def run(tmp_path: Path, raw: dict[str, Any], bars: dict[str, Sequence[tuple[float, float]]]
        ) -> dict[str, dict[str, list[Any]]]:
    config = parse_scenario(raw, "agents")
    data = merge([bars_from_frame(_frame(b), sym) for sym, b in bars.items()])
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        run_id = run_scenario(config, store, data=data).run_id
        out = {}
        for name, sql in SQL.items():
            cursor = store.con.execute(sql, [run_id])
            rows = cursor.fetchall()
            columns = [d[0] for d in cursor.description]
            out[name] = {c: [row[i] for row in rows] for i, c in enumerate(columns)}
        correlation = farm_correlation(store.con, run_id)  # farms of unequal spans
        out["correlation"] = {"farm": [row["farm"] for row in correlation]}
        return out


def spawn(at_bar: int, agent: str, script: Sequence[Sequence[object]], farm: Any,
          **extra: Any) -> dict[str, Any]:
    at = f"2024-03-01T00:{at_bar - 1:02d}:00Z"
    return {"at": at, "kind": "agent_spawn", "agent": agent, "agent_kind": AGENT,
            "params": {"script": [list(s) for s in script]}, "farm": farm, **extra}


FALLING = [(100, 100), (100, 100), (100, 100), (100, 90), (90, 90), (90, 90), (90, 90)]


def test_a_spawned_agent_is_a_farm_of_its_own(tmp_path: Path) -> None:
    """``a`` (6000 of 10 000: the reserve is 4000). At bar 3's time ``solo`` spawns as a
    farm of its own with 2000 from the reserve and a daily loss limit of 50 (money).

    solo LONG after bar 3 -> buys 0.5 x 2000 / 100 = 10 at bar 4's open (fee 1, cash
        999); bar 4 closes at 90 (its equity 1899: lost 101 today). FLAT after bar 4 ->
        sells 10 at 90 at bar 5's open (the breaker trips on this order; a reduction
        goes; fee 0.9, cash 1898.1). LONG after bar 5: denied (farm.circuit_breaker).
    a LONG after bar 5 -> buys 0.5 x 6000 / 90 at bar 6's open: a's breaker is its own.
    """
    raw = scenario({"alpha": [(5, "LONG")]}, {"alpha": "X"},
                   [{"name": "a", "agents": ["alpha"], "capital": 6000.0}],
                   events=[spawn(3, "solo", [(3, "LONG"), (4, "FLAT"), (5, "LONG")],
                                 {"capital": 2000.0, "risk": {"daily_loss": 50.0}},
                                 symbols=["X"])])
    got = run(tmp_path, raw, {"X": FALLING})
    assert got["transfers"]["to_farm"] == ["a", "solo"]
    assert got["transfers"]["ts"] == [bar_ts(1), bar_ts(3)]
    assert got["transfers"]["amount"] == [6000.0, 2000.0]
    assert got["transfers"]["reason"] == ["initial allocation", "spawn: agent solo"]
    farms = got["farms"]
    assert farms["farm"] == ["a", "solo"]
    assert farms["agents"][1] == '["solo"]' and farms["capital"][1] == 2000.0
    assert '"daily_loss": 50.0' in farms["risk"][1]
    fills = got["fills"]
    assert list(zip(fills["ts"], fills["farm"], strict=True)) == [
        (bar_ts(4), "solo"), (bar_ts(5), "solo"), (bar_ts(6), "a")]
    assert fills["quantity"] == approx([10.0, -10.0, 0.5 * 6000 / 90])
    assert list(zip(got["risk"]["farm"], got["risk"]["check_name"], strict=True)) == [
        ("solo", "farm.circuit_breaker")]
    assert got["risk"]["ts"] == [bar_ts(6)]
    ledgers = {f: (ts, cash) for f, ts, cash in zip(*got["farm_equity"].values(),
                                                     strict=True)}
    assert ledgers["solo"][0] == [bar_ts(n) for n in range(3, 8)]  # from its spawn on
    assert ledgers["solo"][1] == approx([2000, 999, 1898.1, 1898.1, 1898.1])
    assert ledgers["a"][1][-1] == pytest.approx(6000 - 3000 - 3, rel=1e-12)
    assert got["correlation"]["farm"] == ["a", "solo"]  # over the steps both have


def test_a_spawned_agent_joins_a_farm(tmp_path: Path) -> None:
    """``helper`` joins farm ``a`` at bar 3's time (no capital moves): with ``alpha``
    LONG since bar 2 (a bought 30 at bar 3's open) and helper SHORT after bar 3, a's
    majority vote is a tie -> HOLD: no order; nothing goes to ``b``."""
    raw = scenario({"alpha": [(2, "LONG")], "beta": []}, {"alpha": "X", "beta": "X"},
                   [{"name": "a", "agents": ["alpha"], "capital": 6000.0},
                    {"name": "b", "agents": ["beta"]}],
                   events=[spawn(3, "helper", [(3, "SHORT")], "a", symbols=["X"])])
    got = run(tmp_path, raw, {"X": FALLING})
    assert got["transfers"]["to_farm"] == ["a", "b"]
    assert list(zip(got["fills"]["farm"], got["fills"]["quantity"], strict=True)) == [
        ("a", 30.0)]
    decisions = got["decisions"]
    assert list(zip(decisions["ts"], decisions["farm"], decisions["side"], strict=True)) == [
        (bar_ts(2), "a", "LONG"), (bar_ts(2), "b", "HOLD"), (bar_ts(3), "a", "HOLD")]


@pytest.mark.parametrize(("event", "message"), [
    ({"farm": None}, "events.0.farm: with [[farms]] a spawned agent joins a farm"),
    ({"farm": "nowhere"}, "events.0.farm: no farm is named 'nowhere'"),
    ({"farm": {"capital": 5000.0}},
     "events.0.farm.capital: the account's unallocated reserve (4000 after the farms and "
     "earlier spawns) cannot pay 5000"),
    ({"farm": {"capital": 100.0, "name": "a"}}, "events.0.farm.name: a farm is named 'a'"),
    ({"farm": {"capital": -1.0}}, "events.0.farm.SpawnFarmConfig.capital"),
    ({"farm": {"capital": 100.0, "wallet": ["w"]}}, "events.0.farm.wallet: 'w' is not a"),
])
def test_bad_spawns_are_refused_in_one_line_naming_the_field(
        event: dict[str, Any], message: str) -> None:
    raw = scenario({"alpha": []}, {"alpha": "X"},
                   [{"name": "a", "agents": ["alpha"], "capital": 6000.0}],
                   events=[{**spawn(3, "solo", [], None), **event}])
    if event["farm"] is None:
        raw["events"][0].pop("farm")
    with pytest.raises(ConfigError) as caught:
        parse_scenario(raw, "s.toml")
    text = str(caught.value)
    assert "\n" not in text
    assert message in text, text


def test_two_spawns_the_reserve_cannot_both_pay_are_refused() -> None:
    raw = scenario({"alpha": []}, {"alpha": "X"},
                   [{"name": "a", "agents": ["alpha"], "capital": 6000.0}],
                   events=[spawn(3, "one", [], {"capital": 3000.0}),
                           spawn(4, "two", [], {"capital": 1500.0})])
    with pytest.raises(ConfigError, match=r"events\.1\.farm\.capital: the account's "
                       r"unallocated reserve \(1000 after"):
        parse_scenario(raw, "s.toml")


def test_an_update_moves_an_agent_to_another_symbol_inside_its_farm(tmp_path: Path) -> None:
    """Exposure 0.25. ``alpha`` (farm a, 6000) LONG on X after bar 2: a buys
    0.25 x 6000 / 100 = 15 X at bar 3's open (fee 1.5, cash 4498.5). At bar 4's time an
    update moves alpha to Y: rebuilt there and warmed up on Y's bars, its script's LONG
    (after bar 2) stands; a votes on Y at bar 4's close and buys at bar 5's open:
    a's equity 4498.5 + 15 x 110 = 6148.5, 0.25 x 6148.5 / 50 = 30.7425 Y (fee 1.537125).
    On X alpha's vote is withdrawn: a votes HOLD there and keeps its 15. Farm b
    (``beta``, on Y, silent) is untouched."""
    raw = scenario({"alpha": [(2, "LONG")], "beta": []}, {"alpha": "X", "beta": "Y"},
                   [{"name": "a", "agents": ["alpha"], "capital": 6000.0},
                    {"name": "b", "agents": ["beta"]}],
                   events=[{"at": "2024-03-01T00:03:00Z", "kind": "agent_update",
                            "agent": "alpha", "symbols": ["Y"]}])
    raw["policy"] = {"exposure": 0.25}
    x = [(100, 100), (100, 100), (100, 110), (110, 110), (110, 110), (110, 110)]
    got = run(tmp_path, raw, {"X": x, "Y": [(50, 50)] * 6})
    fills = got["fills"]
    assert list(zip(fills["ts"], fills["farm"], fills["symbol"], strict=True)) == [
        (bar_ts(3), "a", "X"), (bar_ts(5), "a", "Y")]
    assert fills["quantity"] == approx([15.0, 30.7425])
    assert fills["fee"] == approx([1.5, 1.537125])
    decisions = got["decisions"]
    assert list(zip(decisions["ts"], decisions["farm"], decisions["symbol"],
                    decisions["side"], strict=True)) == [
        (bar_ts(2), "a", "X", "LONG"), (bar_ts(4), "a", "X", "HOLD"),
        (bar_ts(4), "a", "Y", "LONG"), (bar_ts(4), "b", "Y", "HOLD")]
    assert got["agent_events"]["outcome"][-1] == "applied"


def test_performance_weighted_inside_a_farm_weighs_its_own_agents(tmp_path: Path) -> None:
    """Farm a (``p1``, ``p2``, performance_weighted), farm b (``p3``, majority). X closes
    100, 100, 110. p1 LONG after bar 1, SHORT after bar 3: its LONG episode (100 -> 110)
    was a hit, weight (1 + 1) / (1 + 2) = 2/3. p2 SHORT after bar 1, LONG after bar 3: a
    miss, weight 1/3. At bar 1 both had the prior 0.5: LONG and SHORT tie -> HOLD. At
    bar 3: SHORT 2/3 against LONG 1/3 -> SHORT with confidence 2/3 (majority would tie)."""
    raw = scenario({"p1": [(1, "LONG"), (3, "SHORT")], "p2": [(1, "SHORT"), (3, "LONG")],
                    "p3": [(1, "LONG")]}, {"p1": "X", "p2": "X", "p3": "X"},
                   [{"name": "a", "agents": ["p1", "p2"], "capital": 5000.0,
                     "consensus": {"method": "performance_weighted"}},
                    {"name": "b", "agents": ["p3"]}])
    got = run(tmp_path, raw, {"X": [(100, 100), (100, 100), (100, 110), (110, 110)]})
    decisions = got["decisions"]
    rows = list(zip(decisions["ts"], decisions["farm"], decisions["side"], strict=True))
    assert rows == [(bar_ts(1), "a", "HOLD"), (bar_ts(1), "b", "LONG"),
                    (bar_ts(3), "a", "SHORT")]
    assert decisions["confidence"][-1] == pytest.approx(2 / 3, rel=1e-12)


def test_performance_weighted_farms_share_one_decay() -> None:
    raw = scenario({"p1": [], "p2": []}, {"p1": "X", "p2": "X"},
                   [{"name": "a", "agents": ["p1"],
                     "consensus": {"method": "performance_weighted", "decay": 0.9}},
                    {"name": "b", "agents": ["p2"],
                     "consensus": {"method": "performance_weighted", "decay": 0.5}}])
    with pytest.raises(ConfigError, match=r"farms\.b\.consensus\.decay: 0\.5, but "
                       r"farms\.a\.consensus weighs by performance with decay 0\.9"):
        parse_scenario(raw, "s.toml")


def test_a_spawn_joins_the_farm_an_earlier_spawn_made(tmp_path: Path) -> None:
    """``buddy`` (listed first, spawned at bar 4) joins ``solo``'s farm (spawned at bar
    3 with 2000): the farms are checked in time order. solo LONG after bar 3 buys 10 at
    bar 4's open; buddy SHORT after bar 4 ties solo's farm vote -> HOLD, no order."""
    raw = scenario({"alpha": []}, {"alpha": "X"},
                   [{"name": "a", "agents": ["alpha"], "capital": 6000.0}],
                   events=[spawn(4, "buddy", [(4, "SHORT")], "solo", symbols=["X"]),
                           spawn(3, "solo", [(3, "LONG")], {"capital": 2000.0},
                                 symbols=["X"])])
    got = run(tmp_path, raw, {"X": FALLING})
    assert got["farms"]["farm"] == ["a", "solo"]
    assert got["agent_events"]["outcome"][-2:] == ["applied", "applied"]
    assert list(zip(got["fills"]["farm"], got["fills"]["quantity"], strict=True)) == [
        ("solo", 10.0)]
    decisions = got["decisions"]
    assert [(f, s) for f, s in zip(decisions["farm"], decisions["side"], strict=True)
            if f == "solo"] == [("solo", "LONG"), ("solo", "HOLD")]
