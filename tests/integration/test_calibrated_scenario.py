"""The bundled calibrated scenario: it runs reproducibly to the byte, its bars carry the
model's state labels, and the promotion gate's regime suite can include it."""

from __future__ import annotations

from pathlib import Path

from research.suite import load_suite
from research.validate import run_validation
from research.validation import suite_run_config
from sim.config import load_scenario, parse_scenario
from sim.runner import run_scenario
from sim.store import DuckDBStore

REGIMES = Path(__file__).resolve().parents[2] / "scenarios" / "regimes"
SCENARIO = REGIMES / "calibrated.toml"


def short(bars: int = 600):
    raw = load_scenario(SCENARIO).model_dump(mode="json")
    raw["data"][0]["bars"] = bars
    return parse_scenario(raw, str(SCENARIO))


def test_calibrated_scenario_runs_reproducibly_with_state_labels(tmp_path: Path) -> None:
    config = short()
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        first = run_scenario(config, store).run_id
        second = run_scenario(config, store).run_id
        hashes = store.con.execute(
            "SELECT data_hash FROM runs WHERE run_id IN (?, ?)", [first, second]).fetchall()
        labels = {r[0] for r in store.con.execute(
            "SELECT DISTINCT source_regime FROM bars WHERE run_id = ?", [first]).fetchall()}
        symbols = {r[0] for r in store.con.execute(
            "SELECT DISTINCT symbol FROM bars WHERE run_id = ?", [first]).fetchall()}
    assert hashes[0] == hashes[1]
    assert labels <= {"calm", "turbulent"} and labels
    assert symbols == {"ETHBTC", "LTCBTC"}


def test_the_calibrated_suite_lists_every_named_regime_and_the_calibrated_one() -> None:
    suite = load_suite(REGIMES / "suite_calibrated.toml")
    assert {Path(p).name for p in load_suite(REGIMES / "suite.toml").scenarios} < {
        Path(p).name for p in suite.scenarios}
    assert str(SCENARIO.resolve()) in {str(Path(p).resolve()) for p in suite.scenarios}


def test_validation_runs_a_config_on_the_calibrated_regime(tmp_path: Path) -> None:
    """``suite_run_config`` takes the calibrated source's symbols from the model (the
    source names none), so the gate can run any configuration on it."""
    mine = parse_scenario({
        "name": "mine", "agents": [{"name": "sma", "kind": "sma_crossover"}],
        "venues": [{"name": "v", "symbols": ["X"]}]}, "test")
    run_cfg = suite_run_config(mine, short())
    assert run_cfg.venues[0].symbols == ["ETHBTC", "LTCBTC"]
    suite = tmp_path / "suite.toml"
    suite.write_text(f'name = "cal"\nscenarios = ["{SCENARIO}"]\nseeds = [11]\n',
                     encoding="utf-8")
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        outcome = run_validation(mine, store, suite_path=suite)
    assert [m.regime for m in outcome.metrics] == ["calibrated"]
