"""The promotion gate: ``quorum validate`` records a validation; ``check_promotion``
refuses unvalidated, failed and changed configs (naming what), or changed suite data, and
accepts a passing one; an override is logged and stored."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from quorum.cli import main
from research.validate import run_validation
from research.validation import (
    RunMetrics,
    Thresholds,
    changed_fields,
    check_promotion,
    config_hash,
    evaluate,
    load_thresholds,
)
from sim.config import parse_scenario
from sim.store import DuckDBStore

REGIME = """
name = "regime_{name}"
seed = 5
[[data]]
kind = "regime"
regime = "{name}"
symbols = ["AAA", "BBB"]
bars = 400
interval = "1h"
params = {params}
[[agents]]
name = "ignored"
kind = "sma_crossover"
[[venues]]
name = "v"
symbols = ["AAA", "BBB"]
"""

LOOSE = Thresholds(max_drawdown=1.0, min_sharpe=-1e9, min_mean_sharpe=-1e9)


def scenario(exposure: float = 0.5, fast: int = 5, name: str = "candidate",
             validation: dict[str, str] | None = None):
    return parse_scenario({
        "name": name, "seed": 3, "initial_cash": 10_000.0,
        **({"validation": validation} if validation else {}),
        "data": [{"kind": "gbm", "symbol": "XYZ", "bars": 50}],
        "agents": [{"name": "sma", "kind": "sma_crossover",
                    "params": {"fast": fast, "slow": 20}, "symbols": ["XYZ"]}],
        "policy": {"exposure": exposure, "allow_short": True},
        "risk": {"allowed_symbols": ["XYZ"]},
        "venues": [{"name": "hl", "symbols": ["XYZ"], "fee_bps": 4.5}],
    })


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    (tmp_path / "trend_up.toml").write_text(
        REGIME.format(name="trend_up", params="{ drift = 2.0, volatility = 0.6 }"))
    (tmp_path / "ranging.toml").write_text(
        REGIME.format(name="ranging", params="{ half_life = 30, volatility = 0.5 }"))
    path = tmp_path / "suite.toml"
    path.write_text('name = "mini"\nscenarios = ["trend_up.toml", "ranging.toml"]\n'
                    'seeds = [1, 2]\n')
    return path


def loose_gate(suite: Path) -> dict[str, str]:
    """A scenario's [validation] naming ``suite`` and the LOOSE thresholds (a file)."""
    path = suite.parent / "loose.toml"
    path.write_text("max_drawdown = 1.0\nmin_sharpe = -1e9\nmin_mean_sharpe = -1e9\n")
    return {"suite": str(suite), "thresholds": str(path)}


def test_gate(tmp_path: Path, suite: Path, caplog) -> None:
    gate = loose_gate(suite)
    config = scenario(validation=gate)
    with DuckDBStore(tmp_path / "gate.duckdb") as store:
        refused = check_promotion(store, config)
        assert not refused.allowed and "has no validation" in refused.reason

        outcome = run_validation(config, store, suite_path=suite, thresholds=LOOSE)
        assert outcome.passed and len(outcome.metrics) == 4
        assert {(m.regime, m.seed) for m in outcome.metrics} == {
            ("trend_up", 1), ("trend_up", 2), ("ranging", 1), ("ranging", 2)}
        ok = check_promotion(store, config)
        assert ok.allowed and ok.validation_id == outcome.validation_id

        # the suite runs traded the candidate's config on the regime's symbols
        run_id = outcome.metrics[0].run_id
        symbols = {r[0] for r in store.con.execute(
            "SELECT DISTINCT symbol FROM fills WHERE run_id = ?", [run_id]).fetchall()}
        assert symbols <= {"AAA", "BBB"} and symbols
        stored = json.loads(store.con.execute(
            "SELECT config FROM runs WHERE run_id = ?", [run_id]).fetchone()[0])
        assert stored["policy"]["exposure"] == 0.5 and stored["seed"] == 1
        # stored metrics agree with a hand computation from the stored equity
        eq = np.array([r[0] for r in store.con.execute(
            "SELECT equity FROM equity WHERE run_id = ? ORDER BY ts", [run_id]).fetchall()])
        peak, worst = 10_000.0, 0.0
        for value in eq:
            peak = max(peak, value)
            worst = max(worst, 1 - value / peak)
        assert outcome.metrics[0].max_drawdown == pytest.approx(worst, rel=1e-12)
        assert outcome.metrics[0].total_return == pytest.approx(eq[-1] / 10_000 - 1, rel=1e-12)

        # changed after validation: refused, the field named
        changed = check_promotion(store, scenario(exposure=0.7))
        assert not changed.allowed and changed.changed == ("policy.exposure",)
        assert "policy.exposure" in changed.reason
        moved = check_promotion(store, scenario(fast=6))
        assert moved.changed == ("agents[sma].params.fast",)
        # the name, description and own data are not part of what was validated
        renamed = parse_scenario({**config.model_dump(mode="json"), "description": "x"})
        assert config_hash(renamed) == config_hash(config)

        # the suite's data changed since: refused, naming the regime and seed
        text = (suite.parent / "ranging.toml").read_text()
        (suite.parent / "ranging.toml").write_text(text.replace("half_life = 30",
                                                                "half_life = 31"))
        stale = check_promotion(store, config)
        assert not stale.allowed and set(stale.changed) == {"ranging@1", "ranging@2"}
        (suite.parent / "ranging.toml").write_text(text)
        assert check_promotion(store, config).allowed

        # a failing validation of a new config: refused, naming the failures
        other = scenario(exposure=0.9, validation=gate)
        failing = run_validation(other, store, suite_path=suite,
                                 thresholds=Thresholds(min_mean_sharpe=1e6))
        assert not failing.passed
        verdict = check_promotion(store, other)
        assert not verdict.allowed and "failed" in verdict.reason
        assert any("mean Sharpe" in f for f in verdict.failures)

        # an override lets it through, loudly, and is stored
        with pytest.raises(ValueError, match="reason"):
            check_promotion(store, other, override_reason="  ")
        caplog.set_level(logging.WARNING)
        forced = check_promotion(store, other, override_reason="operator: paper test")
        assert forced.allowed and forced.overridden
        assert "PROMOTION GATE OVERRIDDEN" in caplog.text
        row = store.con.execute(
            "SELECT kind, passed, reason, failures, config_hash FROM validations"
            " WHERE validation_id = ?", [forced.validation_id]).fetchone()
        assert row[0] == "override" and row[1] is False and row[2] == "operator: paper test"
        assert "failed" in json.loads(row[3])[0] and row[4] == config_hash(other)


def test_evaluate_thresholds_by_hand() -> None:
    runs = [RunMetrics("crash", 1, "a", "h", -2.0, 0.35, -0.2),
            RunMetrics("crash", 2, "b", "h", 0.0, 0.10, 0.0),
            RunMetrics("trend_up", 1, "c", "h", 1.5, 0.05, 0.3),
            RunMetrics("flat", 1, "d", "h", float("nan"), 0.0, 0.0)]
    assert evaluate(runs, Thresholds()) == [
        "crash@1: max drawdown 35.0% > 30.0%",
        "flat: no Sharpe ratio (no return variation: never traded?)",
        # crash mean -1.0 is not below -1.0; overall mean (-1.0 + 1.5) / 2 = 0.25 >= 0
    ]
    lenient = Thresholds(regimes={"crash": {"max_drawdown": 0.4, "min_sharpe": -0.5}})
    assert evaluate(runs[:3], lenient) == ["crash: mean Sharpe -1.00 < -0.50"]


def test_changed_fields_names_paths() -> None:
    old = {"a": 1, "b": {"c": [1, 2]}, "agents": [{"name": "x", "p": 1}, {"name": "y"}]}
    new = {"a": 1, "b": {"c": [1, 3]}, "agents": [{"name": "x", "p": 2}, {"name": "z"}],
           "d": 0}
    assert changed_fields(old, new) == ["agents[x].p", "agents[y]", "agents[z]", "b.c", "d"]


def test_thresholds_file(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text("max_drawdown = 0.2\n[regimes.crash]\nmax_drawdown = 0.5\n")
    t = load_thresholds(path)
    assert t.for_regime("crash") == (0.5, -1.0) and t.for_regime("ranging") == (0.2, -1.0)
    path.write_text("max_drawdwn = 0.2\n")
    with pytest.raises(Exception, match="max_drawdwn: unknown field"):
        load_thresholds(path)


def test_cli_validate(tmp_path: Path, suite: Path, capsys) -> None:
    scen = tmp_path / "candidate.toml"
    scen.write_text("""
name = "candidate"
[[data]]
kind = "gbm"
symbol = "XYZ"
bars = 50
[[agents]]
name = "sma"
kind = "sma_crossover"
params = { fast = 5, slow = 20 }
[[venues]]
name = "hl"
symbols = ["XYZ"]
""")
    loose = tmp_path / "loose.toml"
    loose.write_text("max_drawdown = 1.0\nmin_sharpe = -1e9\nmin_mean_sharpe = -1e9\n")
    db = str(tmp_path / "cli.duckdb")
    assert main(["validate", str(scen), "--suite", str(suite), "--thresholds", str(loose),
                 "--db", db]) == 0
    assert "PASSED" in capsys.readouterr().out
    strict = tmp_path / "strict.toml"
    strict.write_text("min_mean_sharpe = 1e6\n")
    assert main(["validate", str(scen), "--suite", str(suite), "--thresholds", str(strict),
                 "--db", db]) == 1
    assert "FAILED" in capsys.readouterr().out
    assert main(["validate", str(scen), "--thresholds", str(tmp_path / "none.toml"),
                 "--db", db]) == 2
    with DuckDBStore(db) as store:
        kinds = store.con.execute("SELECT passed FROM validations ORDER BY created_at").fetchall()
    assert [k[0] for k in kinds] == [True, False]
