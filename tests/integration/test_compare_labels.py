"""``quorum compare`` names runs by what differs between them (issue 21): its table
columns, the equity legend's CSV row and the regime matrix rows (``--by run``)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import duckdb

ENV = {**{k: v for k, v in os.environ.items() if k != "QUORUM_DB"}, "COLUMNS": "250"}
SCENARIO = '''
name = "grid"
seed = 1

[[data]]
kind = "regime"
regime = "regime_switching"
symbols = ["SYN"]
bars = 300
interval = "1h"

[[agents]]
name = "sma"
kind = "sma_crossover"
params = { fast = 5, slow = 20 }

[[venues]]
name = "v"
symbols = ["SYN"]
'''
SWEEP = '''
name = "fastgrid"
scenario = "grid.toml"
seeds = [1]
rank_by = ["sharpe"]

[grid]
"agents.sma.params.fast" = [4, 8]
'''


def _quorum(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "quorum.cli", *argv, "--db", "runs.duckdb"],
                          cwd=cwd, env=ENV, capture_output=True, text=True, timeout=180,
                          check=False)


def test_sweep_members_are_compared_by_their_parameters(tmp_path: Path) -> None:
    (tmp_path / "grid.toml").write_text(SCENARIO)
    (tmp_path / "sweep.toml").write_text(SWEEP)
    assert _quorum("sweep", "sweep.toml", "--quiet", "--workers", "1",
                   cwd=tmp_path).returncode == 0
    with duckdb.connect(str(tmp_path / "runs.duckdb"), read_only=True) as con:
        runs = dict(con.execute("SELECT label, run_id FROM sweep_runs").fetchall())
    a, b = runs["sma.fast=4"], runs["sma.fast=8"]
    done = _quorum("compare", a, b, "--regimes", "--out", "cmp", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    header = next(ln for ln in done.stdout.splitlines() if ln.startswith("┃"))
    assert "sma.fast=4" in header and "sma.fast=8" in header, header
    assert a not in header and b not in header  # the ids are a row, not the names
    with (tmp_path / "cmp" / "compare_metrics.csv").open() as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["metric", a, b] and rows[1] == ["label", "sma.fast=4", "sma.fast=8"]
    with (tmp_path / "cmp" / "regime_matrix.csv").open() as fh:
        matrix_rows = {r["row"] for r in csv.DictReader(fh)}
    assert matrix_rows == {"sma.fast=4", "sma.fast=8"}, matrix_rows
