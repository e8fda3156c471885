"""``quorum sweep --out DIR`` writes one self-contained HTML page (issue 21): the ranking
with a column per swept parameter, the metric against each parameter and each pair, the
parameter set x generated regime heatmap, walk-forward stability and links to the runs'
reports; every pooled figure says how many runs it pools."""

from __future__ import annotations

import csv
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from reports.sweep import rank_param_sets, sweep_members
from reports.sweep_report import metric_lines, pair_grid, set_by_regime

REPO = Path(__file__).resolve().parents[2]
ENV = {k: v for k, v in os.environ.items() if k != "QUORUM_DB"}
SWEEP = f'''
name = "pairs"
description = "two SMA periods in an uptrend and a crash"
scenario = "{REPO / 'scenarios' / 'regimes' / 'trend_up.toml'}"
suite = "{REPO / 'scenarios' / 'regimes' / 'suite.toml'}"
regimes = ["trend_up", "crash"]
seeds = [1]
rank_by = ["sharpe"]

[grid]
"agents.sma.params.fast" = [4, 8]
"agents.sma.params.slow" = [30, 60]

[walk_forward]
train = "20d"
test = "10d"
'''


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("sweep_report")
    (where / "pairs.toml").write_text(SWEEP)
    done = subprocess.run([sys.executable, "-m", "quorum.cli", "sweep", "pairs.toml", "--db",
                           "s.duckdb", "--quiet", "--workers", "2", "--out", "out"],
                          cwd=where, env=ENV, capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "report: out/sweep_pairs.html" in done.stdout
    return where


def test_the_page_is_self_contained_and_has_every_section(swept: Path) -> None:
    text = (swept / "out" / "sweep_pairs.html").read_text()
    assert not re.search(r"(src|href)=\"(https?:)?//", text) and "<script" not in text
    for heading in ("Ranking", "sharpe against sma.fast", "sharpe against sma.slow",
                    "sharpe: sma.fast x sma.slow", "Parameter set x generated regime",
                    "Regime matrix by causal label", "Walk-forward stability", "Runs"):
        assert f"<h2>{heading}</h2>" in text, heading
    assert "<th>sma.fast</th>" in text and "<th>sma.slow</th>" in text  # params as columns
    assert text.count("data:image/png;base64,") >= 6
    assert "<td>2 runs</td>" in text  # each set's figure says what it pools


def test_runs_link_to_reports_that_exist(swept: Path) -> None:
    out = swept / "out"
    text = (out / "sweep_pairs.html").read_text()
    links = re.findall(r'<a href="([^"]+)">', text)
    assert len(links) == 2  # the best set's runs: 2 regimes x 1 seed
    for link in links:
        assert (out / link).is_file(), link
    with (out / "ranking.csv").open() as fh:
        best = next(csv.DictReader(fh))
    with duckdb.connect(str(swept / "s.duckdb"), read_only=True) as con:
        runs = {r[0] for r in con.execute("SELECT run_id FROM sweep_runs WHERE param_set = ?",
                                          [int(best["param_set"])]).fetchall()}
    assert {Path(link).parent.name for link in links} == runs


def test_the_figures_pool_what_they_say(swept: Path) -> None:
    with duckdb.connect(str(swept / "s.duckdb"), read_only=True) as con:
        (sweep_id,) = con.execute("SELECT sweep_id FROM sweeps").fetchone()
        members = sweep_members(con, sweep_id)
        stored = {(ps, regime): v for ps, regime, v in con.execute(
            "SELECT s.param_set, s.regime, m.value FROM sweep_runs s JOIN run_metrics m "
            "USING (run_id) WHERE m.metric = 'sharpe'").fetchall()}
    ranked = rank_param_sets(members, [("sharpe", "max")])
    _, cols, grid, counts = set_by_regime(ranked, members, "sharpe", "mean", "max")
    assert cols == ["trend_up", "crash"] and counts.sum() == 8
    for i, row in enumerate(ranked):  # one seed: each cell is that run's own figure
        for j, regime in enumerate(cols):
            assert math.isclose(grid[i, j], stored[row["param_set"], regime])
    lines = metric_lines(members, "agents.sma.params.fast", "sharpe", "mean", "max")
    assert set(lines) == {"all", "trend_up", "crash"}
    for value, mean, n in lines["all"]:
        want = [v for (ps, _), v in stored.items()
                if next(r for r in ranked if r["param_set"] == ps)["params"][
                    "agents.sma.params.fast"] == value]
        assert n == 4 and math.isclose(mean, sum(want) / len(want))
    va, vb, pair, pooled = pair_grid(members, "agents.sma.params.fast",
                                     "agents.sma.params.slow", "sharpe", "mean", "max")
    assert va == [4, 8] and vb == [30, 60] and (pooled == 2).all()
    for row in ranked:  # a cell: the mean over the set's two regimes
        p = row["params"]
        i, j = va.index(p["agents.sma.params.fast"]), vb.index(p["agents.sma.params.slow"])
        want = [v for (ps, _), v in stored.items() if ps == row["param_set"]]
        assert math.isclose(pair[i, j], sum(want) / len(want))


def test_without_out_it_says_how_to_get_the_page(swept: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "quorum.cli", "sweep", "pairs.toml", "--db",
                           "s.duckdb", "--quiet"], cwd=swept, env=ENV, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0 and "add --out DIR" in done.stdout
