"""Aggregates over missing values: the ranking says how many runs each figure rests on,
and a parameter set whose metric is missing in most of its runs is flagged, not ranked.

Observed on 9d04f14: "12/12 completed" and a mean Sharpe of -2.595 from 1 run (the other
11 never traded), ranked like the others."""

from __future__ import annotations

import contextlib
import csv
import io
from pathlib import Path

from quorum.cli import main

SCENARIO = '''
name = "thin"
seed = 1
[[data]]
kind = "gbm"
symbol = "SYN"
bars = 300
interval = "1h"
volatility = 0.8
[[agents]]
name = "sma"
kind = "sma_crossover"
params = { fast = 5, slow = 20 }
[[venues]]
name = "v"
symbols = ["SYN"]
fee_bps = 5.0
'''

# slow = 400 > 300 bars: that set never trades, its Sharpe is undefined in every run
SWEEP = '''
name = "thin_sweep"
scenario = "base.toml"
seeds = [1, 2, 3]
[grid]
"agents.sma.params.slow" = [20, 400]
'''


def test_a_set_that_never_trades_is_flagged_with_its_counts(tmp_path: Path) -> None:
    (tmp_path / "base.toml").write_text(SCENARIO)
    (tmp_path / "sweep.toml").write_text(SWEEP)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["sweep", str(tmp_path / "sweep.toml"), "--db",
                     str(tmp_path / "runs.duckdb"), "--workers", "1", "--quiet",
                     "--out", str(tmp_path / "out")])
    text = out.getvalue()
    assert code == 0, err.getvalue()
    assert "1 parameter sets not ranked: their sharpe is missing in most of their runs" in text
    assert "sharpe in 0 of 3 runs: not ranked" in text
    with (tmp_path / "out" / "ranking.csv").open() as fh:
        rows = {r["param_set"]: r for r in csv.DictReader(fh)}
    assert rows["0"]["rank"] == "1" and rows["0"]["sharpe_n"] == "3"
    assert rows["0"]["thin"] == "False"
    assert rows["1"]["rank"] == "" and rows["1"]["sharpe_n"] == "0"
    assert rows["1"]["thin"] == "True" and rows["1"]["completed"] == "3"
