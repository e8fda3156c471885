"""``quorum data strategy-check``: an agent's Sharpe ratio on recorded bars placed in its
distribution over calibrated paths of the same market."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quorum.cli import main
from research.strategy_check import AgentCheck, strategy_check
from sim.config import load_scenario, parse_scenario
from sim.config_base import ConfigError
from sim.runner import run_scenario
from sim.store import DuckDBStore

REGIMES = Path(__file__).resolve().parents[2] / "scenarios" / "regimes"
SCENARIO = REGIMES / "eth_btc_recorded.toml"
MODEL = REGIMES / "models" / "eth_btc_5m.toml"


def two_agents():
    raw = load_scenario(SCENARIO).model_dump(mode="json")
    raw["agents"] = [a for a in raw["agents"] if a["name"] in ("sma", "zscore")]
    return parse_scenario(raw, str(SCENARIO))


def test_percentile_counts_paths_below_the_source() -> None:
    check = AgentCheck("a", 1.0, np.array([0.0, 0.5, 1.0, 2.0, np.nan]))
    assert check.percentile == pytest.approx((2 + 0.5) / 4)
    assert np.isnan(AgentCheck("a", np.nan, np.array([1.0])).percentile)


def test_source_sharpe_is_the_stored_runs_and_paths_are_seeded(tmp_path: Path) -> None:
    config = two_agents()
    checks = strategy_check(config, str(MODEL), paths=12)
    assert [c.agent for c in checks] == ["sma", "zscore"]
    sma_alone = parse_scenario({**config.model_dump(mode="json"),
                                "agents": [config.agents[0].model_dump(mode="json")]}, "t")
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        run_scenario(sma_alone, store)
    from reports.metrics import periods_per_year, sharpe_ratio

    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        ts, eq = store.con.execute("SELECT list(epoch_ns(ts) ORDER BY ts), "
                                   "list(equity ORDER BY ts) FROM equity").fetchone()
    expected = sharpe_ratio(np.array(eq), config.initial_cash,
                            periods_per_year(np.array(ts, dtype=np.int64)))
    assert checks[0].source == pytest.approx(expected, rel=1e-9)
    again = strategy_check(config, str(MODEL), paths=12)
    for a, b in zip(checks, again, strict=True):
        np.testing.assert_array_equal(a.paths, b.paths)
    for c in checks:  # the calibrated market is one the source could have come from
        assert c.paths.min() < c.source < c.paths.max()


def test_cli_writes_the_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["data", "strategy-check", str(SCENARIO), "--model", str(MODEL),
                 "--paths", "3", "--out", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    table = pd.read_csv(tmp_path / "strategy_check.csv")
    assert list(table["agent"]) == [a.name for a in load_scenario(SCENARIO).agents]
    assert "source percentile" in table.columns and "Sharpe ratio" in out


def test_generated_data_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="recorded files"):
        strategy_check(load_scenario(REGIMES / "trend_up.toml"), str(MODEL), paths=1)
    code = main(["data", "strategy-check", str(REGIMES / "trend_up.toml"), "--model",
                 str(MODEL)])
    assert code == 2 and "recorded files" in capsys.readouterr().err
