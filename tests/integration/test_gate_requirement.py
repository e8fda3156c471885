"""The promotion gate accepts only validations run with the suite and thresholds the
scenario names (``[validation]``, else the defaults). ``quorum validate`` with looser
thresholds or another suite stores an override, says so, and the gate refuses it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quorum.cli import main
from research.validation import check_promotion
from sim.config import load_scenario
from sim.store import DuckDBStore
from tests.integration.test_promotion_gate import REGIME

CANDIDATE = """
name = "candidate"
[[data]]
kind = "gbm"
symbol = "XYZ"
bars = 50
interval = "1m"
[[agents]]
name = "sma"
kind = "sma_crossover"
params = {{ fast = 5, slow = 20 }}
[[venues]]
name = "hl"
symbols = ["XYZ"]
{gate}
"""
# What the scenario requires: lenient enough for an SMA on two short regimes to pass.
REQUIRED = "max_drawdown = 1.0\nmin_sharpe = -1000.0\nmin_mean_sharpe = -1000.0\n"


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Path]:
    for name, params in (("trend_up", "{ drift = 2.0, volatility = 0.6 }"),
                         ("ranging", "{ half_life = 30, volatility = 0.5 }")):
        (tmp_path / f"{name}.toml").write_text(REGIME.format(name=name, params=params))
    suite = tmp_path / "suite.toml"
    suite.write_text('name = "mini"\nscenarios = ["trend_up.toml", "ranging.toml"]\n'
                     'seeds = [1]\n')
    other = tmp_path / "other_suite.toml"
    other.write_text('name = "other"\nscenarios = ["trend_up.toml"]\nseeds = [1]\n')
    (tmp_path / "gate.toml").write_text(REQUIRED)
    (tmp_path / "loose.toml").write_text("max_drawdown = 1.0\nmin_sharpe = -1e9\n"
                                         "min_mean_sharpe = -1000.0\n")
    (tmp_path / "strict.toml").write_text("max_drawdown = 0.99\nmin_sharpe = -100.0\n"
                                          "min_mean_sharpe = -100.0\n")
    scenario = tmp_path / "candidate.toml"
    scenario.write_text(CANDIDATE.format(
        gate='[validation]\nsuite = "suite.toml"\nthresholds = "gate.toml"'))
    return {"dir": tmp_path, "scenario": scenario, "suite": suite, "other": other,
            "db": tmp_path / "runs.duckdb"}


def validate(capsys, s: dict[str, Path], *flags: str) -> tuple[int, str, str]:
    code = main(["validate", str(s["scenario"]), "--db", str(s["db"]), *flags])
    out, err = capsys.readouterr()
    return code, out, err


def verdict(s: dict[str, Path], **kw: str):
    with DuckDBStore(s["db"]) as store:
        return check_promotion(store, load_scenario(s["scenario"]), **kw)


def last_validation(s: dict[str, Path]) -> tuple:
    with DuckDBStore(s["db"]) as store:
        return store.con.execute(
            "SELECT validation_id, kind, passed, suite, thresholds, reason FROM validations"
            " ORDER BY created_at DESC LIMIT 1").fetchone()


def test_loosened_thresholds_are_an_override_the_gate_does_not_accept(setup, capsys) -> None:
    code, out, _ = validate(capsys, setup, "--thresholds", str(setup["dir"] / "loose.toml"))
    assert code == 0  # it passed the thresholds it was given...
    vid, kind, passed, _, thresholds, reason = last_validation(setup)
    assert kind == "override" and passed  # ...and is stored as what it is
    assert "trend_up: min_sharpe -1e+09 < -1000" in reason
    assert json.loads(thresholds)["min_sharpe"] == -1e9
    assert f"PASSED, AS AN OVERRIDE: validation {vid}" in " ".join(out.split())
    refused = verdict(setup)
    assert not refused.allowed
    assert f"validation {vid} is an override" in refused.reason
    # an explicit override at live time still lets it through, loudly and stored
    forced = verdict(setup, override_reason="paper smoke test")
    assert forced.allowed and forced.overridden
    # and quorum live refuses it before connecting to anything
    assert main(["live", str(setup["scenario"]), "--paper", "--db", str(setup["db"]),
                 "--url", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert "promotion gate refused 'candidate'" in err and "is an override" in err


def test_another_suite_is_an_override(setup, capsys) -> None:
    validate(capsys, setup, "--suite", str(setup["other"]))
    _, kind, _, suite, _, reason = last_validation(setup)
    assert kind == "override" and suite == str(setup["other"])
    assert f"suite {setup['other']} instead of {setup['suite']}" in reason
    assert not verdict(setup).allowed


def test_the_scenario_s_suite_and_thresholds_are_what_validate_runs_and_the_gate_names(
        setup, capsys) -> None:
    code, out, err = validate(capsys, setup)
    assert code == 0, err
    vid, kind, passed, suite, thresholds, reason = last_validation(setup)
    assert (kind, passed, suite, reason) == ("suite", True, str(setup["suite"]), None)
    assert json.loads(thresholds)["min_sharpe"] == -1000.0
    ok = verdict(setup)
    assert ok.allowed and ok.validation_id == vid
    described = (f"suite {setup['suite']}, thresholds max_drawdown 1, min_sharpe -1000, "
                 "min_mean_sharpe -1000 (named by the scenario)")
    assert ok.reason == f"validation {vid} passed: {described}"
    assert described in " ".join(out.split())


def test_stricter_thresholds_count(setup, capsys) -> None:
    code, _, _ = validate(capsys, setup, "--thresholds", str(setup["dir"] / "strict.toml"))
    assert code == 0
    vid, kind, *_ = last_validation(setup)
    assert kind == "suite"
    assert verdict(setup).validation_id == vid and verdict(setup).allowed


def test_tightening_the_requirement_retires_a_looser_validation(setup, capsys) -> None:
    assert validate(capsys, setup)[0] == 0
    vid = last_validation(setup)[0]
    assert verdict(setup).allowed
    (setup["dir"] / "gate.toml").write_text(REQUIRED.replace("min_sharpe = -1000.0",
                                                             "min_sharpe = -10.0"))
    refused = verdict(setup)
    assert not refused.allowed
    assert f"validation {vid} passed with ranging: min_sharpe -1000 < -10" in refused.reason
    assert "validate again" in refused.reason


def test_without_a_validation_section_the_defaults_are_required(setup, capsys) -> None:
    setup["scenario"].write_text(CANDIDATE.format(gate=""))
    validate(capsys, setup, "--suite", str(setup["suite"]), "--thresholds",
             str(setup["dir"] / "gate.toml"))
    _, kind, _, _, _, reason = last_validation(setup)
    assert kind == "override"
    assert "suite" in reason and "max_drawdown 1 > 0.3" in reason
    refused = verdict(setup)
    assert not refused.allowed and "(the defaults)" in refused.reason


def test_a_missing_thresholds_file_named_by_the_scenario_is_bad_input(setup, capsys) -> None:
    (setup["dir"] / "gate.toml").unlink()
    code, _, err = validate(capsys, setup)
    assert code == 2
    assert "gate.toml: thresholds file not found" in err


def test_the_reported_case_min_sharpe_minus_1e9_on_the_default_suite(tmp_path: Path,
                                                                      capsys) -> None:
    """As observed: ``--thresholds`` with ``min_sharpe = -1e9`` and nothing else named; the
    gate then said "validation ... passed"."""
    scenario = tmp_path / "candidate.toml"
    scenario.write_text(CANDIDATE.format(gate=""))
    loose = tmp_path / "loose.toml"
    loose.write_text("max_drawdown = 1.0\nmin_sharpe = -1e9\nmin_mean_sharpe = -1e9\n")
    db = tmp_path / "runs.duckdb"
    main(["validate", str(scenario), "--thresholds", str(loose), "--db", str(db)])
    out = " ".join(capsys.readouterr().out.split())
    assert "AS AN OVERRIDE" in out and "min_sharpe -1e+09 < -1" in out
    with DuckDBStore(db) as store:
        refused = check_promotion(store, load_scenario(scenario))
    assert not refused.allowed and "is an override" in refused.reason
    assert "thresholds max_drawdown 0.3, min_sharpe -1, min_mean_sharpe 0 (the defaults)" \
        in refused.reason
