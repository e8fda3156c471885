"""The documented path "validate, then ``live --paper``" works as bundled: one bundled
configuration passes the promotion gate's defaults (the default suite and thresholds, not
its own), the live gate then accepts it, and the default thresholds the docs give
("The promotion gate") are the code's."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from research.suite import load_suite
from research.sweep import load_sweep
from research.validation import (
    DEFAULT_SUITE,
    Thresholds,
    check_promotion,
    gate_requirement,
    trading_config,
)
from sim.config import load_scenario
from sim.store import DuckDBStore
from tests._readme import DOCS, REPO, fenced_blocks, readme_text

VALIDATED = REPO / "scenarios" / "validated.toml"
GATE_PAGE = DOCS / "concepts" / "promotion-gate.md"


def test_the_tour_validates_a_bundled_configuration_that_passes(tmp_path: Path) -> None:
    tour = re.findall(r"^[ \t]*\.venv/bin/quorum validate (scenarios/\S+\.toml)\s+#.*pass",
                      readme_text(), re.MULTILINE)
    assert set(tour) == {"scenarios/validated.toml"}
    config = load_scenario(REPO / tour[0])
    assert config.validation is None  # the default gate, not thresholds of its own
    assert gate_requirement(config).thresholds == Thresholds()
    done = subprocess.run([sys.executable, "-m", "quorum.cli", "validate", str(REPO / tour[0])],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^PASSED: validation \w+ stored in runs\.duckdb .*\(the defaults\)\)$",
                     done.stdout, re.MULTILINE), done.stdout
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        verdict = check_promotion(store, config)
    assert verdict.allowed and not verdict.overridden, verdict.reason


def test_documented_default_thresholds_are_the_codes() -> None:
    blocks = [b for b in fenced_blocks(GATE_PAGE.read_text(encoding="utf-8"), "toml")
              if "min_mean_sharpe" in b.text and "[validation]" not in b.text]
    assert len(blocks) == 1
    assert Thresholds.model_validate(tomllib.loads(blocks[0].text)) == Thresholds()


def test_the_gate_search_ran_the_bundled_configuration() -> None:
    """The sweep the scenario says it was found by holds it: one of its parameter sets,
    in every regime of the default suite with the suite's seeds, is its trading config."""
    sweep = load_sweep(REPO / "scenarios" / "sweeps" / "gate_search.toml")
    want = trading_config(load_scenario(VALIDATED))
    mine = {r.param_set for r in sweep.runs if trading_config(r.config) == want}
    assert len(mine) == 1
    cells = {(r.regime, r.seed) for r in sweep.runs if r.param_set in mine}
    suite = load_suite(DEFAULT_SUITE)
    assert cells == {(Path(p).stem, s) for p in suite.scenarios for s in suite.seeds}
