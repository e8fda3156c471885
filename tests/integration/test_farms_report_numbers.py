"""Every per-farm number of the report (``quorum report``) and of ``quorum compare RUN
--farms`` against an independent computation from the store's base tables: three farms,
an allocator moving capital between them (so returns must be net of transfers) and an
agent moved from one farm to another (so it has figures in both)."""

from __future__ import annotations

import csv
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from quorum.cli import main
from reports.report import write_report
from sim.config import parse_scenario
from sim.runner import run_scenario
from sim.store import DuckDBStore

RAW: dict[str, Any] = {
    "name": "farm_numbers", "seed": 11, "initial_cash": 10_000.0,
    "data": [{"kind": "gbm", "symbol": "BTC", "bars": 400, "interval": "1h",
              "start": "2024-01-01T00:00:00Z", "price": 100.0, "volatility": 0.8},
             {"kind": "gbm", "symbol": "ETH", "bars": 400, "interval": "1h",
              "start": "2024-01-01T00:00:00Z", "price": 50.0, "volatility": 1.0}],
    "agents": [{"name": "sma", "kind": "sma_crossover", "params": {"fast": 5, "slow": 20}},
               {"name": "mom", "kind": "momentum", "params": {"window": 12}},
               {"name": "z", "kind": "zscore_reversion", "params": {"window": 24}},
               {"name": "ema", "kind": "ema_crossover", "symbols": ["BTC"]}],
    "policy": {"exposure": 0.4, "allow_short": True},
    "venues": [{"name": "v", "symbols": ["BTC", "ETH"], "fee_bps": 5.0}],
    "farms": [{"name": "trend", "agents": ["sma", "mom"], "share": 0.5},
              {"name": "revert", "agents": ["z"], "share": 0.3},
              {"name": "solo", "agents": ["ema"]}],
    "allocator": {"method": "inverse_volatility", "every": "3d", "lookback": 24,
                  "floor": 0.1},
    "events": [{"at": "2024-01-08T00:00:00Z", "kind": "agent_move", "agent": "mom",
                "farm": "revert"}],
}
YEAR_NS = 365 * 86_400e9


@pytest.fixture(scope="module")
def farm_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    where = tmp_path_factory.mktemp("farm_numbers")
    db = where / "runs.duckdb"
    with DuckDBStore(db) as store:
        run_id = run_scenario(parse_scenario(RAW), store).run_id
        report = write_report(store.con, run_id, where / "report")
        con = store.con
        frames = {name: con.execute(sql, [run_id]).df() for name, sql in {
            "equity": "SELECT epoch_ns(ts) AS ts, farm, equity FROM farm_equity "
                      "WHERE run_id = ? ORDER BY rowid",
            "account": "SELECT equity FROM equity WHERE run_id = ? ORDER BY ts",
            "transfers": "SELECT epoch_ns(ts) AS ts, from_farm, to_farm, amount, reason "
                         "FROM capital_transfers WHERE run_id = ?",
            "orders": "SELECT o.order_id, o.decision_id, o.status, o.fees, f.farm FROM "
                      "orders o JOIN farm_orders f USING (run_id, order_id) "
                      "WHERE o.run_id = ?",
            "decisions": "SELECT d.decision_id, d.side, f.farm FROM decisions d JOIN "
                         "farm_decisions f USING (run_id, decision_id) WHERE d.run_id = ?",
            "votes": "SELECT decision_id, agent, side FROM votes WHERE run_id = ?",
        }.items()}
    return {"db": db, "where": where, "run_id": run_id, "report": report, **frames}


def _independent(farm_run: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Each farm's figures from farm_equity and capital_transfers, with pandas."""
    eq, moves = farm_run["equity"], farm_run["transfers"]
    out = {}
    for farm in ("trend", "revert", "solo"):
        rows = eq[eq.farm == farm].reset_index(drop=True)
        initial = moves[(moves.to_farm == farm) & (moves.from_farm == "account")]
        capital = float(initial.amount.iloc[0])
        between = moves[moves.from_farm != "account"]
        net = pd.Series(0.0, index=rows.index)
        for t in between.itertuples():
            sign = 1.0 if t.to_farm == farm else -1.0 if t.from_farm == farm else 0.0
            later = rows.index[rows.ts >= t.ts]
            if sign and len(later):
                net[later[0]] += sign * t.amount
        prev = pd.concat([pd.Series([capital]), rows.equity[:-1]], ignore_index=True)
        returns = (rows.equity - net) / prev - 1.0
        path = (1.0 + returns).cumprod()
        drawdown = float((1.0 - path / np.maximum(path.cummax(), 1.0)).max())
        per_year = YEAR_NS / float(np.median(np.diff(rows.ts)))
        final = float(rows.equity.iloc[-1])
        out[farm] = {
            "capital": capital, "moved_in": float(net.sum()), "final_equity": final,
            "total_return": float(path.iloc[-1] - 1.0), "max_drawdown": drawdown,
            "sharpe": float(returns.mean() / returns.std(ddof=1) * math.sqrt(per_year)),
            "pnl": final - capital - float(net.sum()), "returns": returns.to_numpy()}
    return out


def test_farm_figures_match_an_independent_computation(farm_run: dict[str, Any]) -> None:
    mine = _independent(farm_run)
    assert any(f["moved_in"] != 0.0 for f in mine.values())  # the allocator moved capital
    rows = {r["farm"]: r for r in farm_run["report"].tables["farms"]}
    assert list(rows) == ["trend", "revert", "solo"]
    total = sum(f["pnl"] for f in mine.values())
    # the farms' PnL adds up to the account's (everything is allocated: no reserve)
    assert total == pytest.approx(farm_run["account"].equity.iloc[-1] - 10_000.0, rel=1e-9)
    orders = farm_run["orders"]
    for farm, want in mine.items():
        got = rows[farm]
        for key in ("capital", "moved_in", "final_equity", "total_return", "max_drawdown",
                    "sharpe", "pnl"):
            assert got[key] == pytest.approx(want[key], rel=1e-9, abs=1e-9), (farm, key)
        assert got["contribution"] == pytest.approx(want["pnl"] / total, rel=1e-9)
        own = orders[orders.farm == farm]
        assert got["orders"] == len(own)
        assert got["filled"] == int((own.status == "filled").sum())
        assert got["denied"] == int((own.status == "denied").sum())
        assert got["fees"] == pytest.approx(float(own.fees.fillna(0).sum()), rel=1e-9)
    corr = {r["farm"]: r for r in farm_run["report"].tables["farm_correlation"]}
    matrix = np.corrcoef([mine[f]["returns"] for f in ("trend", "revert", "solo")])
    for i, a in enumerate(("trend", "revert", "solo")):
        for j, b in enumerate(("trend", "revert", "solo")):
            assert corr[a][b] == pytest.approx(matrix[i, j], rel=1e-9, abs=1e-12)


def test_per_agent_figures_inside_each_farm(farm_run: dict[str, Any]) -> None:
    """Votes per (farm, agent) from votes x farm_decisions; orders from orders x
    farm_orders x the votes on the decided side; mom has rows in trend and revert."""
    votes = farm_run["votes"].merge(farm_run["decisions"], on="decision_id",
                                    suffixes=("", "_decided"))
    want: dict[tuple[str, str], dict[str, int]] = {}
    for v in votes.itertuples():
        row = want.setdefault((v.farm, v.agent), {"votes": 0, "with_decision": 0,
                                                  "orders": 0, "filled": 0})
        row["votes"] += 1
        row["with_decision"] += int(v.side == v.side_decided)
    backing = votes[votes.side == votes.side_decided]
    for o in farm_run["orders"].itertuples():
        for agent in backing[backing.decision_id == o.decision_id].agent:
            want[(o.farm, agent)]["orders"] += 1
            want[(o.farm, agent)]["filled"] += int(o.status == "filled")
    got = {(r["farm"], r["agent"]): r for r in farm_run["report"].tables["farm_agents"]}
    assert set(got) == set(want)
    assert ("trend", "mom") in got and ("revert", "mom") in got
    for key, counts in want.items():
        assert {k: got[key][k] for k in counts} == counts, key
    agents = {r["agent"]: r for r in farm_run["report"].tables["agents"]}
    for (_, agent), row in got.items():
        assert row["shadow_pnl"] == agents[agent]["shadow_pnl"]


def test_the_report_page_shows_the_per_farm_view(farm_run: dict[str, Any]) -> None:
    report = farm_run["report"]
    page = report.html.read_text()
    for title in ("Per farm", "Correlation of the farms&#x27; returns",
                  "Per agent inside each farm", "Equity per farm"):
        assert f"<h2>{title}</h2>" in page, title
    assert any(p.name == "farm_equity.png" for p in report.pngs)


def test_compare_puts_the_farms_of_a_run_side_by_side(
        farm_run: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    out = farm_run["where"] / "cmp"
    code = main(["compare", farm_run["run_id"], "--farms", "--db", str(farm_run["db"]),
                 "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "farms side by side" in printed
    with (out / "compare_farms.csv").open() as fh:
        table = list(csv.reader(fh))
    assert table[0] == ["metric", "trend", "revert", "solo"]
    by_metric = {row[0]: row[1:] for row in table[1:]}
    mine = _independent(farm_run)
    for k, farm in enumerate(("trend", "revert", "solo")):
        for key in ("capital", "final_equity", "total_return", "sharpe", "pnl"):
            assert float(by_metric[key][k]) == pytest.approx(mine[farm][key], rel=1e-9)
    assert (out / "compare_farms_equity.png").stat().st_size > 0
    assert main(["compare", farm_run["run_id"], "--farms", "--regimes", "--db",
                 str(farm_run["db"]), "--out", str(out)]) == 2


def test_show_metrics_prints_the_per_agent_figures_inside_each_farm(
        farm_run: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["show", farm_run["run_id"], "--metrics", "--db", str(farm_run["db"])])
    printed = capsys.readouterr().out
    assert code == 0
    assert "per agent inside each farm" in printed
    assert "per farm" in printed and "correlation of the farms' returns" in printed
