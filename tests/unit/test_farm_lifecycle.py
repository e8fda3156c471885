"""Lifecycle per farm, worked out by hand (sim.farm_lifecycle): moving an agent, pausing
and resuming a farm, a farm's kill switch with flatten; each stored in ``farm_events``
with its outcome, refusals with their reason. The whole pipeline runs (the harness of
tests/unit/test_farms_hand_computed.py): fee 10 bps, no slippage, policy exposure 0.5,
farm ``a`` 6 000 and ``b`` 4 000, one scripted agent each, fills at the next open.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from sim.agent_commands import AgentBatch, AgentCommand, parse_command
from sim.config import ConfigError, parse_scenario
from sim.data import bars_from_frame, merge
from sim.engine import PRIORITY_EVENT
from sim.runner import run_scenario
from sim.store import DuckDBStore
from tests.unit.test_farms_hand_computed import _frame, approx, bar_ts, farm_rows, scenario
from tests.unit.test_lifecycle import SMA, _raw, _run_with

EVENTS_SQL = ("SELECT seq, epoch_ns(ts) AS ts, farm, command, agent, state_before, "
              "state_after, flatten, actor, outcome FROM farm_events WHERE run_id = ? "
              "ORDER BY seq")


def at(n: int) -> str:
    return pd.Timestamp(bar_ts(n), tz="UTC").isoformat()


def two_farms(scripts: dict[str, Sequence[Sequence[object]]],
              events: list[dict[str, Any]]) -> dict[str, Any]:
    return scenario(scripts, dict.fromkeys(scripts, "X"),
                    [{"name": "a", "agents": ["alpha"], "capital": 6000.0},
                     {"name": "b", "agents": ["beta"]}], events=events)


def run(tmp_path: Path, raw: dict[str, Any], bars: Sequence[tuple[float, float]]
        ) -> dict[str, Any]:
    config = parse_scenario(raw, "hand")
    data = merge([bars_from_frame(_frame(bars), "X")])
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        run_id = run_scenario(config, store, data=data).run_id
        con = store.con
        out: dict[str, Any] = {}
        for name, sql in {
            "fills": "SELECT epoch_ns(ts) AS ts, farm, quantity, price, fee FROM "
                     "fills_by_farm WHERE run_id = ? ORDER BY fill_id",
            "farm_equity": "SELECT epoch_ns(ts) AS ts, farm, cash, equity FROM farm_equity "
                           "WHERE run_id = ? ORDER BY farm, ts",
            "decisions": "SELECT epoch_ns(ts) AS ts, farm, side FROM decisions_by_farm "
                         "WHERE run_id = ? ORDER BY decision_id",
            "cancelled": "SELECT farm, status FROM orders_by_farm WHERE run_id = ? "
                         "AND status = 'cancelled'",
        }.items():
            rows = con.execute(sql, [run_id]).fetchnumpy()
            out[name] = {k: np.asarray(v) for k, v in rows.items()}
        out["events"] = con.execute(EVENTS_SQL, [run_id]).fetchall()
        out["votes"] = con.execute(
            "SELECT d.farm, v.agent FROM votes v JOIN decisions_by_farm d USING "
            "(run_id, decision_id) WHERE run_id = ? ORDER BY decision_id, v.agent",
            [run_id]).fetchall()
        out["agent_events"] = con.execute(
            "SELECT command, outcome FROM agent_events WHERE run_id = ? ORDER BY seq",
            [run_id]).fetchall()
        out["trades"] = con.execute(
            "SELECT agent, farm, side FROM agent_trades WHERE run_id = ? ORDER BY order_id",
            [run_id]).fetchall()
    return out


MOVE_BARS = [(100, 100), (100, 100), (100, 110), (110, 110), (100, 100), (100, 100)]


@pytest.fixture(scope="module")
def moved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``alpha`` (farm a) LONG after bar 2; moved to b before bar 4; a second move to b
    before bar 5 is refused. ``beta`` (farm b) never signals.

    Bar 3's open (100): a buys 0.5 * 6000 / 100 = 30, fee 3 -> a cash 2997.
    Before bar 4 alpha moves: a has no agent on X any more, so it votes no more and keeps
        its 30 (its exposure stays with it); b (HOLD on beta's silence since bar 2) votes
        at bar 4's close on beta and alpha (LONG): LONG.
    Bar 5's open (100): b buys 0.5 * 4000 / 100 = 20, fee 2 -> b cash 1998.
    Equity at the end (close 100): a 2997 + 3000 = 5997; b 1998 + 2000 = 3998.
    """
    raw = two_farms({"alpha": [(2, "LONG")], "beta": []}, [
        {"at": at(4), "kind": "agent_move", "agent": "alpha", "farm": "b",
         "reason": "rebalance"},
        {"at": at(5), "kind": "agent_move", "agent": "alpha", "farm": "b"},
        # the agents' own commands still work in a farm run (beta is silent: no effect)
        {"at": at(3), "kind": "agent_pause", "agent": "beta"},
        {"at": at(6), "kind": "agent_resume", "agent": "beta"}])
    return run(tmp_path_factory.mktemp("moved"), raw, MOVE_BARS)


def test_a_moved_agent_votes_in_its_new_farm_and_its_exposure_stays(
        moved: dict[str, Any]) -> None:
    fills = moved["fills"]
    assert list(zip(fills["ts"], fills["farm"], strict=True)) == [(bar_ts(3), "a"),
                                                                 (bar_ts(5), "b")]
    assert fills["quantity"].tolist() == approx([30.0, 20.0])
    assert fills["fee"].tolist() == approx([3.0, 2.0])
    assert farm_rows(moved, "a", "cash") == approx([6000, 6000, 2997, 2997, 2997, 2997])
    assert farm_rows(moved, "a", "equity") == approx([6000, 6000, 6297, 6297, 5997, 5997])
    assert farm_rows(moved, "b", "cash") == approx([4000] * 4 + [1998, 1998])
    assert farm_rows(moved, "b", "equity") == approx([4000] * 4 + [3998, 3998])
    decisions = moved["decisions"]
    assert list(zip(decisions["ts"], decisions["farm"], decisions["side"], strict=True)) \
        == [(bar_ts(2), "a", "LONG"), (bar_ts(2), "b", "HOLD"), (bar_ts(4), "b", "LONG")]
    # b's decision at bar 4 counts alpha's vote beside beta's; a takes none after the move
    assert moved["votes"] == [("a", "alpha"), ("b", "beta"), ("b", "alpha"), ("b", "beta")]
    assert moved["trades"] == [("alpha", "a", "LONG"), ("alpha", "b", "LONG")]


def test_a_move_is_stored_and_a_second_one_refused(moved: dict[str, Any]) -> None:
    # agent_events and farm_events share one seq: 1, 2 start, 3 pause, 6 resume
    assert moved["agent_events"] == [("start", "applied"), ("start", "applied"),
                                     ("pause", "applied"), ("resume", "applied")]
    assert moved["events"] == [
        (4, bar_ts(4), "b", "move", "alpha", "a", "b", False, "scenario", "applied"),
        (5, bar_ts(5), "b", "move", "alpha", None, None, False, "scenario",
         "rejected: agent 'alpha' is in farm 'b' already")]


PAUSE_BARS = [(100, 100)] * 6 + [(120, 120), (120, 120)]


def test_a_paused_farm_stops_while_the_other_trades_and_resumes(tmp_path: Path) -> None:
    """Both agents LONG after bar 3; farm a is paused before bar 4, resumed before bar 6.

    Bar 4's open: a's decision of bar 3 is dropped (paused); b buys 0.5 * 4000 / 100 = 20
        at 100, fee 2.
    Bar 6: a votes again at the close (alpha still LONG): a decision at bar 6.
    Bar 7's open (120): a buys 0.5 * 6000 / 120 = 25 at 120, fee 3.
    A pause of a paused farm and a resume of an active one are refused.
    """
    raw = two_farms({"alpha": [(3, "LONG")], "beta": [(3, "LONG")]}, [
        {"at": at(4), "kind": "farm_pause", "farm": "a", "reason": "review"},
        {"at": at(5), "kind": "farm_pause", "farm": "a"},
        {"at": at(5), "kind": "farm_resume", "farm": "b"},
        {"at": at(6), "kind": "farm_resume", "farm": "a"}])
    got = run(tmp_path, raw, PAUSE_BARS)
    fills = got["fills"]
    assert list(zip(fills["ts"], fills["farm"], strict=True)) == [(bar_ts(4), "b"),
                                                                 (bar_ts(7), "a")]
    assert fills["quantity"].tolist() == approx([20.0, 25.0])
    assert fills["price"].tolist() == approx([100.0, 120.0])
    assert fills["fee"].tolist() == approx([2.0, 3.0])
    decisions = got["decisions"]
    assert list(zip(decisions["ts"], decisions["farm"], strict=True)) == [
        (bar_ts(3), "a"), (bar_ts(3), "b"), (bar_ts(6), "a")]
    assert farm_rows(got, "a", "cash")[-1] == pytest.approx(6000 - 3000 - 3, rel=1e-12)
    assert [e[2:] for e in got["events"]] == [
        ("a", "farm_pause", None, "active", "paused", False, "scenario", "applied"),
        ("a", "farm_pause", None, None, None, False, "scenario",
         "rejected: farm 'a' is paused, not active"),
        ("b", "farm_resume", None, None, None, False, "scenario",
         "rejected: farm 'b' is active already"),
        ("a", "farm_resume", None, "paused", "active", False, "scenario", "applied")]


def test_a_farm_kill_with_flatten_closes_only_that_farm(tmp_path: Path) -> None:
    """Both LONG after bar 2: at bar 3's open (100) a buys 30 (fee 3), b buys 20 (fee 2).
    a is killed with flatten before bar 5: its 30 are sold at bar 5's open (110), fee
    3.3 -> a cash 2997 + 3300 - 3.3 = 6293.7, flat; b keeps its 20. alpha's FLAT and
    LONG after bars 5 and 6 make no decision of a (it votes no more); a resume of a and a
    move into it are refused."""
    raw = two_farms({"alpha": [(2, "LONG"), (5, "FLAT"), (6, "SHORT")],
                     "beta": [(2, "LONG")]}, [
        {"at": at(5), "kind": "farm_kill", "farm": "a", "flatten": True},
        {"at": at(6), "kind": "farm_resume", "farm": "a"},
        {"at": at(6), "kind": "agent_move", "agent": "beta", "farm": "a"}])
    got = run(tmp_path, raw, [(100, 100), (100, 100), (100, 110), (110, 110), (110, 110),
                              (110, 110), (110, 110), (110, 110)])
    fills = got["fills"]
    assert list(zip(fills["ts"], fills["farm"], strict=True)) == [
        (bar_ts(3), "a"), (bar_ts(3), "b"), (bar_ts(5), "a")]
    assert fills["quantity"].tolist() == approx([30.0, 20.0, -30.0])
    assert fills["fee"].tolist() == approx([3.0, 2.0, 3.3])
    assert farm_rows(got, "a", "cash")[-1] == pytest.approx(6293.7, rel=1e-12)
    assert farm_rows(got, "a", "equity")[-1] == pytest.approx(6293.7, rel=1e-12)
    assert farm_rows(got, "b", "equity")[-1] == pytest.approx(4000 - 2 + 20 * 10, rel=1e-12)
    assert [d for d in got["decisions"]["farm"].tolist()] == ["a", "b"]
    assert [e[2:] for e in got["events"]] == [
        ("a", "farm_kill", None, "active", "killed", True, "scenario", "applied"),
        ("a", "farm_resume", None, None, None, False, "scenario",
         "rejected: farm 'a' is killed"),
        ("a", "move", "beta", None, None, False, "scenario",
         "rejected: farm 'a' is killed")]


def test_farm_events_are_checked_when_the_scenario_loads() -> None:
    raw = two_farms({"alpha": [], "beta": []}, [
        {"at": at(2), "kind": "farm_pause", "farm": "nope"}])
    with pytest.raises(ConfigError, match=r"events\.0\.farm: no farm is named 'nope'"):
        parse_scenario(raw, "hand")
    plain = {**raw, "farms": []}
    plain.pop("farms")
    with pytest.raises(ConfigError, match="this scenario has no \\[\\[farms\\]\\]"):
        parse_scenario(plain, "hand")
    raw["events"] = [{"at": at(2), "kind": "farm_pause", "farm": "a", "flatten": True}]
    with pytest.raises(ConfigError, match="flatten: only for a farm_kill event"):
        parse_scenario(raw, "hand")
    raw["events"] = [{"at": at(2), "kind": "agent_move", "agent": "alpha"}]
    with pytest.raises(ConfigError,
                       match="farm: a farm's name is required for an agent_move event"):
        parse_scenario(raw, "hand")


def test_farm_commands_parse_from_json_and_round_trip() -> None:
    command = parse_command({"command": "farm_kill", "farm": "a", "flatten": True})
    assert command == AgentCommand("farm_kill", "*", flatten=True, farm="a")
    assert command.describe() == "farm_kill 'a'"
    moved = parse_command({"command": "move", "agent": "alpha", "farm": "b"})
    assert isinstance(moved, AgentCommand) and moved.describe() == "move 'alpha' to 'b'"


def test_a_farm_command_in_a_run_without_farms_is_refused_and_stored() -> None:
    """Sent to a farmless pipeline (as a live session's channel may): a stored refusal,
    and the run goes on."""
    store = _run_with(parse_scenario(_raw([SMA])), [
        (10, AgentCommand("farm_pause", "*", farm="a")),
        (11, AgentCommand("move", "sma", farm="a"))])
    rows = [(r["command"], r["farm"], r["agent"], r["outcome"])
            for r in store.table("farm_events").to_pylist()]
    assert rows == [("farm_pause", "a", None, "rejected: farm_pause: this run has no "
                     "[[farms]]"),
                    ("move", "a", "sma", "rejected: move: this run has no [[farms]]")]
    assert [r["command"] for r in store.table("agent_events").to_pylist()] == ["start"]


def test_a_batch_of_farm_and_agent_commands_is_all_or_none(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    """A batch pausing b and moving alpha there is applied whole; one that also pauses b
    again is refused whole, naming the bad command."""
    from sim import runner as runner_module

    built = runner_module.build_engine
    good = AgentBatch((AgentCommand("farm_pause", "*", farm="b"),
                       AgentCommand("move", "alpha", farm="b")), "ops", "regroup")
    bad = AgentBatch((AgentCommand("farm_resume", "*", farm="b"),
                      AgentCommand("farm_pause", "*", farm="a"),
                      AgentCommand("pause", "alpha"),
                      AgentCommand("farm_pause", "*", farm="a")), "ops")

    def capture(*args: Any, **kwargs: Any) -> Any:
        engine = built(*args, **kwargs)
        engine.queue.push(bar_ts(2), PRIORITY_EVENT, engine.lifecycle.apply, good)
        engine.queue.push(bar_ts(3), PRIORITY_EVENT, engine.lifecycle.apply, bad)
        return engine

    monkeypatch.setattr(runner_module, "build_engine", capture)
    got = run(tmp_path, two_farms({"alpha": [], "beta": []}, []), MOVE_BARS)
    assert [(e[3], e[5], e[6], e[9]) for e in got["events"]] == [
        ("farm_pause", "active", "paused", "applied"),
        ("move", "a", "b", "applied"),
        ("farm_resume", None, None, "rejected: batch rejected: batch command 4 "
         "(farm_pause 'a'): farm 'a' is paused, not active"),
        ("farm_pause", None, None, "rejected: batch rejected: batch command 4 "
         "(farm_pause 'a'): farm 'a' is paused, not active"),
        ("farm_pause", None, None, "rejected: farm 'a' is paused, not active")]
    assert got["agent_events"][-1][0] == "pause"  # rejected with the batch
    assert got["agent_events"][-1][1].startswith("rejected: batch rejected")


def test_a_paused_farms_resting_orders_are_cancelled_and_the_others_stay(
        tmp_path: Path) -> None:
    """Limit orders 50% away never fill: both farms' buys rest from bar 3's open; pausing
    a before bar 5 cancels a's ("farm paused"), b's keeps resting."""
    raw = two_farms({"alpha": [(2, "LONG")], "beta": [(2, "LONG")]}, [
        {"at": at(5), "kind": "farm_pause", "farm": "a"}])
    raw["execution"] = {"order_type": "limit", "offset_bps": 5000.0}
    config = parse_scenario(raw, "hand")
    data = merge([bars_from_frame(_frame([(100, 100)] * 7), "X")])
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        run_id = run_scenario(config, store, data=data).run_id
        cancelled = store.con.execute(
            "SELECT f.farm, epoch_ns(e.ts), e.reason FROM order_events e JOIN farm_orders f "
            "USING (run_id, order_id) WHERE e.run_id = ? AND e.event = 'cancelled'",
            [run_id]).fetchall()
    # b's buy rests until the run ends (cancelled then, as every working order is)
    assert sorted(cancelled)[0] == ("a", bar_ts(5), "farm paused")
    assert [(farm, why) for farm, _, why in sorted(cancelled)[1:]] == [("b", "run ended")]
