"""``quorum sweep FILE --prescreen N``: vectorbt on the agents' batch signals, then the top
N parameter sets through the engine, with the rank agreement per regime."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from research.prescreen import engine_metrics, prescreen, screen_run
from research.sweep import load_sweep
from research.sweep_driver import execute_sweep, opened, plan_sweep
from research.sweep_executors import executor_for

REPO = Path(__file__).resolve().parents[2]
EXACT_SCENARIO = """
name = "prescreen_exact"
seed = 3
initial_cash = 10_000.0
[[data]]
kind = "gbm"
symbol = "SYN"
bars = 3000
interval = "5m"
volatility = 0.8
[[agents]]
name = "sma"
kind = "sma_crossover"
params = { fast = 10, slow = 50, long_only = true }
[policy]
exposure = 1.0
[[venues]]
name = "only"
symbols = ["SYN"]
fee_bps = 10.0
"""
EXACT_SWEEP = """
name = "prescreen_exact"
scenario = "base.toml"
seeds = [1, 2]
rank_by = ["sharpe"]
[grid]
"agents.sma.params.fast" = [5, 10, 20]
"agents.sma.params.slow" = [40, 80]
"""
# Two agents under confidence-weighted consensus, shorts, risk limits: the pre-screen
# knows nothing of the limits, so it can only be judged by its rank agreement.
MIXED_SCENARIO = """
name = "prescreen_mixed"
seed = 4
initial_cash = 10_000.0
[[data]]
kind = "regime"
regime = "ranging"
symbols = ["SYN"]
bars = 2000
interval = "1h"
[[agents]]
name = "sma"
kind = "sma_crossover"
params = { fast = 8, slow = 40 }
[[agents]]
name = "z"
kind = "zscore_reversion"
params = { window = 30, entry = 1.5, exit = 0.3 }
[consensus]
method = "confidence_weighted"
[policy]
exposure = 0.5
allow_short = true
[risk]
max_drawdown = 0.15
max_orders_per_day = 6
[[venues]]
name = "v"
symbols = ["SYN"]
fee_bps = 5.0
slippage_bps = 1.0
"""


def write_sweep(tmp_path: Path, scenario: str, sweep: str) -> Path:
    (tmp_path / "base.toml").write_text(scenario)
    path = tmp_path / "sweep.toml"
    path.write_text(sweep)
    return path


@pytest.mark.parametrize("fill_at", ["next_open", "close"])
def test_single_sma_without_limits_gives_the_engines_metrics(tmp_path: Path,
                                                             fill_at: str) -> None:
    """Where both are exact, vectorbt's metrics are the engine's for every run, to 1e-9."""
    scenario = EXACT_SCENARIO + f'[execution]\nfill_at = "{fill_at}"\n'
    sweep = load_sweep(write_sweep(tmp_path, scenario, EXACT_SWEEP))
    ranking, screened, top = prescreen(sweep, 6)
    assert len(ranking) == 6 and len(top.runs) == len(sweep.runs)
    with opened(str(tmp_path / "runs.duckdb")) as store:
        execute_sweep(store, plan_sweep(store, top), executor_for(1, None))
        engine = engine_metrics(store.con, [r.run_id for r in sweep.runs])
    assert len(engine) == 12
    for run in sweep.runs:
        ours, theirs = screened[run.run_id], engine[run.run_id]
        assert theirs["trades"] >= 5
        for name in ("total_return", "cagr", "sharpe", "sortino", "calmar", "max_drawdown",
                     "volatility", "win_rate", "profit_factor", "trades", "fills", "fees",
                     "final_equity"):
            if math.isnan(theirs[name]):
                assert math.isnan(ours[name]), (run.params, name)
            else:
                assert ours[name] == pytest.approx(theirs[name], rel=1e-9, abs=1e-12), (
                    run.params, name)


def test_top_n_cuts_the_sweep_to_the_best_sets(tmp_path: Path) -> None:
    sweep = load_sweep(write_sweep(tmp_path, EXACT_SCENARIO, EXACT_SWEEP))
    ranking, _, top = prescreen(sweep, 2)
    best = {row["param_set"] for row in ranking[:2]}
    assert {r.param_set for r in top.runs} == best
    assert len(top.runs) == 4  # two sets x two seeds
    assert ranking[0]["sharpe"] >= ranking[1]["sharpe"] >= ranking[2]["sharpe"]


def test_cli_prescreen_with_consensus_and_risk_limits_reports_agreement(
    tmp_path: Path,
) -> None:
    sweep_text = """
name = "prescreen_mixed"
scenario = "base.toml"
suite = "suite.toml"
seeds = [1, 2]
rank_by = ["total_return"]
[grid]
"agents.sma.params.fast" = [4, 8, 16]
"agents.z.params.window" = [20, 60]
"""
    path = write_sweep(tmp_path, MIXED_SCENARIO, sweep_text)
    regimes = tmp_path / "regimes"
    regimes.mkdir()
    for regime in ("ranging", "trend_up"):
        (regimes / f"{regime}.toml").write_text(MIXED_SCENARIO.replace(
            'regime = "ranging"', f'regime = "{regime}"').replace(
            'name = "prescreen_mixed"', f'name = "{regime}"'))
    (tmp_path / "suite.toml").write_text(
        'name = "s"\nscenarios = ["regimes/ranging.toml", "regimes/trend_up.toml"]\n')
    done = subprocess.run(
        [sys.executable, "-m", "quorum.cli", "sweep", str(path), "--prescreen", "4",
         "--workers", "1", "--quiet", "--out", str(tmp_path / "out"), "--db",
         str(tmp_path / "runs.duckdb")],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "pre-screen: 24 runs by vectorbt" in done.stdout
    with (tmp_path / "out" / "prescreen_agreement.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["regime"] for r in rows] == ["ranging", "trend_up", "all"]
    for row in rows:
        assert row["sets"] == "4" and row["top_k"] == "2"
        assert 0 <= int(row["top_k_kept"]) <= 2
        rho = float(row["spearman"])
        assert math.isnan(rho) or -1.0 <= rho <= 1.0
    with duckdb.connect(str(tmp_path / "runs.duckdb"), read_only=True) as con:
        stored = con.execute("SELECT count(DISTINCT param_set), count(*) FROM sweep_runs"
                             ).fetchone()
    assert stored == (4, 16)  # only the top 4 sets went to the engine


def test_prescreen_refuses_what_it_cannot_replay(tmp_path: Path) -> None:
    scenario = EXACT_SCENARIO.replace('kind = "sma_crossover"', 'kind = "smc"').replace(
        "params = { fast = 10, slow = 50, long_only = true }", "")
    sweep = load_sweep(write_sweep(tmp_path, scenario, EXACT_SWEEP.replace(
        '"agents.sma.params.fast" = [5, 10, 20]\n"agents.sma.params.slow" = [40, 80]',
        '"policy.exposure" = [0.5, 1.0]')))
    with pytest.raises(Exception, match="no batch form"):
        screen_run(sweep.runs[0])
