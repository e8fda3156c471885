"""A sweep varies farm capital and allocator parameters like any other field (issue 22):
grid keys address ``farms.<name>.capital`` and ``allocator.*``; each swept run stores the
farm with the capital it was given (its ``farms`` row, its initial transfer, its first
equity row) and the allocator with its floor."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

ENV = {k: v for k, v in os.environ.items() if k != "QUORUM_DB"}
SCENARIO = """
name = "farm_sweep"
seed = 3
initial_cash = 10_000.0

[[data]]
kind = "gbm"
symbol = "BTC"
bars = 240
interval = "1h"
start = "2024-01-01T00:00:00Z"
price = 100.0

[[agents]]
name = "sma"
kind = "sma_crossover"
params = { fast = 5, slow = 20 }

[[agents]]
name = "mom"
kind = "momentum"
params = { window = 12 }

[[venues]]
name = "alpha"
symbols = ["BTC"]

[[farms]]
name = "trend"
agents = ["sma"]
share = 0.5

[[farms]]
name = "fast"
agents = ["mom"]
capital = 1_000.0

[allocator]
method = "equal"
every = "2d"
"""
SWEEP = """
name = "farm_capital"
scenario = "farm.toml"
rank_by = ["sharpe"]

[grid]
"farms.fast.capital" = [1_000.0, 3_000.0]
"allocator.floor" = [0.0, 0.3]
"""


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("farm_sweep")
    (where / "farm.toml").write_text(SCENARIO)
    (where / "sweep.toml").write_text(SWEEP)
    done = subprocess.run([sys.executable, "-m", "quorum.cli", "sweep", "sweep.toml",
                           "--db", "s.duckdb", "--quiet", "--workers", "1"],
                          cwd=where, env=ENV, capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return where / "s.duckdb"


def test_each_swept_run_stores_the_farm_capital_and_floor_it_was_given(swept: Path
                                                                        ) -> None:
    con = duckdb.connect(str(swept), read_only=True)
    try:
        rows = con.execute(
            "SELECT s.run_id, s.params, r.config FROM sweep_runs s JOIN runs r USING "
            "(run_id) ORDER BY s.idx").fetchall()
        assert len(rows) == 4
        seen = set()
        for run_id, params, config in rows:
            params = json.loads(params)
            capital, floor = params["farms.fast.capital"], params["allocator.floor"]
            seen.add((capital, floor))
            stored = json.loads(config)
            fast = next(f for f in stored["farms"] if f["name"] == "fast")
            assert fast["capital"] == capital
            assert stored["allocator"]["floor"] == floor
            farms = dict(con.execute("SELECT farm, capital FROM farms WHERE run_id = ?",
                                     [run_id]).fetchall())
            # trend has its share of initial_cash; fast what the grid gave it
            assert farms == {"trend": 5_000.0, "fast": capital}
            (initial,) = con.execute(
                "SELECT amount FROM capital_transfers WHERE run_id = ? AND to_farm = 'fast' "
                "AND reason = 'initial allocation'", [run_id]).fetchone()
            assert initial == capital
            (first,) = con.execute(
                "SELECT equity FROM farm_equity WHERE run_id = ? AND farm = 'fast' "
                "ORDER BY ts LIMIT 1", [run_id]).fetchone()
            assert first == pytest.approx(capital, rel=1e-12)
            (n_metrics,) = con.execute("SELECT count(*) FROM run_metrics WHERE run_id = ?",
                                       [run_id]).fetchone()
            assert n_metrics > 0
        assert seen == {(1_000.0, 0.0), (1_000.0, 0.3), (3_000.0, 0.0), (3_000.0, 0.3)}
    finally:
        con.close()
