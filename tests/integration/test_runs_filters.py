"""``quorum runs`` tells single runs, sweep members and validation runs apart, and filters
by scenario, status, mode, start time, sweep and kind (issue 21)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

ENV = {**{k: v for k, v in os.environ.items() if k != "QUORUM_DB"}, "COLUMNS": "250"}
SCENARIO = '''
name = "{name}"
seed = 1

[[data]]
kind = "gbm"
symbol = "SYN"
bars = 150
interval = "1h"

[[agents]]
name = "sma"
kind = "sma_crossover"
params = {{ fast = 5, slow = 20 }}

[[venues]]
name = "v"
symbols = ["SYN"]
'''
SWEEP = '''
name = "fastgrid"
scenario = "alpha.toml"
seeds = [1]
rank_by = ["sharpe"]

[grid]
"agents.sma.params.fast" = [4, 6]
'''
SUITE = '''
name = "mini"
scenarios = ["beta.toml"]
seeds = [5]
'''


def _quorum(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "quorum.cli", *argv], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=180, check=False)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("runs")
    for name in ("alpha", "beta"):
        (where / f"{name}.toml").write_text(SCENARIO.format(name=name))
    (where / "grid.toml").write_text(SWEEP)
    (where / "suite.toml").write_text(SUITE)
    for argv in (["run", "alpha.toml", "--quiet"], ["run", "beta.toml", "--quiet"],
                 ["sweep", "grid.toml", "--quiet", "--workers", "1"],
                 ["validate", "beta.toml", "--suite", "suite.toml"]):
        done = _quorum(*argv, "--db", "runs.duckdb", cwd=where)
        assert done.returncode in (0, 1), (argv, done.stderr)  # validate may fail the gate
    with duckdb.connect(str(where / "runs.duckdb")) as con:  # one failed run, as if
        con.execute("UPDATE runs SET status = 'failed' WHERE run_id = (SELECT run_id FROM "
                    "runs WHERE scenario = 'beta' ORDER BY started_at LIMIT 1)")
    return where


def _runs(project: Path, *argv: str) -> list[dict[str, str]]:
    done = _quorum("runs", "--db", "runs.duckdb", *argv, cwd=project)
    assert done.returncode == 0, done.stderr
    if "(no rows)" in done.stdout:
        return []
    (header,) = [ln for ln in done.stdout.splitlines() if ln.startswith("┃")]
    head = [c.strip() for c in header.strip("┃").split("┃")]
    return [dict(zip(head, (c.strip() for c in ln.strip("│").split("│")), strict=True))
            for ln in done.stdout.splitlines() if ln.startswith("│")]


def test_every_run_says_what_made_it(project: Path) -> None:
    rows = _runs(project)
    kinds = sorted(r["kind"] for r in rows)
    assert kinds == ["run", "run", "sweep fastgrid", "sweep fastgrid", "validation"], rows


@pytest.mark.parametrize(("argv", "want"), [
    (["--scenario", "alpha"], {("alpha", "run"), ("alpha", "sweep fastgrid")}),
    (["--scenario", "b*"], {("beta", "run")}),
    (["--scenario", "*beta*"], {("beta", "run"), ("validate:beta:beta", "validation")}),
    (["--sweep", "fastgrid"], {("alpha", "sweep fastgrid")}),
    (["--kind", "validation"], {("validate:beta:beta", "validation")}),
    (["--status", "failed"], {("beta", "run")}),
    (["--mode", "paper"], set()),
    (["--since", "1d"], {("alpha", "run"), ("beta", "run"), ("alpha", "sweep fastgrid"),
                         ("validate:beta:beta", "validation")}),
    (["--since", "2999-01-01"], set()),
])
def test_filters(project: Path, argv: list[str], want: set[tuple[str, str]]) -> None:
    rows = _runs(project, *argv)
    assert {(r["scenario"], r["kind"]) for r in rows} == want, rows


def test_sweep_filter_counts_members_and_accepts_an_id_prefix(project: Path) -> None:
    with duckdb.connect(str(project / "runs.duckdb"), read_only=True) as con:
        sweep_id = con.execute("SELECT sweep_id FROM sweeps").fetchone()[0]
    assert len(_runs(project, "--sweep", "fastgrid")) == 2
    assert len(_runs(project, "--sweep", sweep_id[:6])) == 2


@pytest.mark.parametrize("argv", [["--sweep", "nope"], ["--since", "yesterday-ish"],
                                  ["--status", "odd"]])
def test_bad_filters_are_one_line_exit_2(project: Path, argv: list[str]) -> None:
    done = _quorum("runs", "--db", "runs.duckdb", *argv, cwd=project)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
