"""What a scenario schedules after its data's last bar (an ``[[events]]`` row, a lifecycle
command) never comes due: it is not run, and the run says so (``run_info`` key
``not_run``, shown by ``quorum show``). Before, ``Engine.finish`` ran it after the last
equity row: a spawned farm was funded from the reserve with no ledger row of its own, so
the account was no longer the reserve plus its farms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from quorum.cli import main
from sim.config import parse_scenario
from sim.runner import run_scenario
from sim.store import DuckDBStore

AFTER = "2024-01-03T00:00:00Z"  # 100 one-minute bars from 2024-01-01 end long before


def _raw(events: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "name": "after_end", "seed": 3, "initial_cash": 10_000.0,
        "data": [{"kind": "gbm", "symbol": "BTC", "bars": 100, "interval": "1m",
                  "start": "2024-01-01T00:00:00Z", "price": 100.0, "volatility": 1.0}],
        "agents": [{"name": "a0", "kind": "sma_crossover", "params": {"fast": 2, "slow": 5}},
                   {"name": "a1", "kind": "momentum", "params": {"window": 3}}],
        "venues": [{"name": "v0", "symbols": ["BTC"]}],
        "events": events, **extra}


def _run(raw: dict[str, Any], path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with DuckDBStore(path) as store:
        run_id = run_scenario(parse_scenario(raw, "t"), store).run_id
        con = store.con
        queries = {
            "not_run": "SELECT value FROM run_info WHERE run_id = ? AND key = 'not_run' "
                       "ORDER BY rowid",
            "agent_events": "SELECT agent, command FROM agent_events WHERE run_id = ? ORDER BY seq",
            "transfers": "SELECT from_farm, to_farm, amount FROM capital_transfers "
                         "WHERE run_id = ? ORDER BY rowid",
            "farms_last": "SELECT farm, cash FROM farm_equity WHERE run_id = ? AND ts = "
                          "(SELECT max(ts) FROM farm_equity WHERE run_id = ?) ORDER BY farm",
            "equity_last": "SELECT cash FROM equity WHERE run_id = ? ORDER BY ts DESC "
                           "LIMIT 1",
            "run": "SELECT run_id, status FROM runs WHERE run_id = ?"}
        got = {name: con.execute(sql, [run_id] * sql.count("?")).fetchall()
               for name, sql in queries.items()}
    got["not_run"] = [value for (value,) in got["not_run"]]
    return got


def test_a_spawn_with_a_farm_after_the_end_funds_no_farm(tmp_path: Path) -> None:
    raw = _raw([{"at": AFTER, "kind": "agent_spawn", "agent": "late",
                 "agent_kind": "sma_crossover", "params": {"fast": 2, "slow": 3},
                 "farm": {"capital": 1000.0}}],
               farms=[{"name": "f0", "agents": ["a0"], "share": 0.2},
                      {"name": "f1", "agents": ["a1"], "share": 0.3}])
    got = _run(raw, tmp_path / "a.duckdb")
    assert got["not_run"] == [f"agent_spawn late at {AFTER}: after the data's end"]
    assert {row[1] for row in got["transfers"]} == {"f0", "f1"}  # only the opening ones
    assert [farm for farm, _ in got["farms_last"]] == ["f0", "f1"]
    reserve = 10_000.0 - sum(amount for _, _, amount in got["transfers"])
    account = reserve + sum(cash for _, cash in got["farms_last"])
    assert account == pytest.approx(got["equity_last"][0][0], rel=1e-12)


def test_events_and_commands_after_the_end_are_named_not_run(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]
                                                            ) -> None:
    within = "2024-01-01T00:30:00Z"
    raw = _raw([{"at": within, "kind": "agent_pause", "agent": "a1"},
                {"at": AFTER, "kind": "agent_resume", "agent": "a1"},
                {"at": AFTER, "kind": "venue_down", "venue": "v0"},
                {"at": "2024-01-04T00:00:00Z", "kind": "kill_switch"}])
    path = tmp_path / "b.duckdb"
    got = _run(raw, path)
    assert got["not_run"] == [f"venue_down v0 at {AFTER}: after the data's end",  # queue order
                              f"agent_resume a1 at {AFTER}: after the data's end",
                              "kill_switch at 2024-01-04T00:00:00Z: after the data's end"]
    assert [command for agent, command in got["agent_events"] if agent == "a1"][-1:] == [
        "pause"]
    run_id, status = got["run"][0]
    assert status == "completed"
    assert main(["show", run_id, "--db", str(path)]) == 0
    out = capsys.readouterr().out
    assert "not_run" in out and "kill_switch at" in out and "venue_down v0" in out


def test_a_run_whose_events_all_fall_within_has_no_note(tmp_path: Path) -> None:
    got = _run(_raw([{"at": "2024-01-01T00:10:00Z", "kind": "venue_down", "venue": "v0"},
                     {"at": "2024-01-01T01:39:00Z", "kind": "venue_up", "venue": "v0"}]),
               tmp_path / "c.duckdb")  # the second at the last bar: it runs before it
    assert got["not_run"] == []
