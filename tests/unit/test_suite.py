"""Scenario suites (``research.suite``): paths resolved against the suite file, every scenario
must exist, bad input is one line naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from research.suite import SuiteConfig, load_suite
from sim.config_base import ConfigError


@pytest.fixture
def suite_dir(tmp_path: Path) -> Path:
    regimes = tmp_path / "regimes"
    regimes.mkdir()
    for name in ("trend_up", "crash"):
        (regimes / f"{name}.toml").write_text(f'name = "{name}"\n')
    return regimes


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_load_resolves_scenarios_against_the_suite_file(
        suite_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = write(suite_dir / "suite.toml", 'name = "regimes"\ndescription = "all of them"\n'
                 'scenarios = ["trend_up.toml", "crash.toml"]\nseeds = [1, 2, 3]\n')
    monkeypatch.chdir(tmp_path)  # not the suite's directory
    suite = load_suite(path)
    assert suite.name == "regimes" and suite.description == "all of them"
    assert suite.scenarios == [str(suite_dir / "trend_up.toml"), str(suite_dir / "crash.toml")]
    assert suite.seeds == [1, 2, 3]
    assert load_suite(write(suite_dir / "s2.toml",
                            'name = "x"\nscenarios = ["crash.toml"]\n')).seeds is None


def test_absolute_paths_are_kept(suite_dir: Path, tmp_path: Path) -> None:
    target = suite_dir / "crash.toml"
    path = write(tmp_path / "suite.toml", f'name = "x"\nscenarios = ["{target}"]\n')
    assert load_suite(path).scenarios == [str(target)]


@pytest.mark.parametrize(("body", "message"), [
    ('name = "x"\nscenarios = ["missing.toml"]\n', "scenarios: scenario file not found: "),
    ('name = "x"\nscenarios = ["crash.toml", "./crash.toml"]\n',
     "scenarios: scenario listed twice: "),
    ('name = "x"\nscenarios = []\n', "scenarios: List should have at least 1 item"),
    ('name = "x"\n', "scenarios: required field is missing"),
    ('scenarios = ["crash.toml"]\n', "name: required field is missing"),
    ('name = ""\nscenarios = ["crash.toml"]\n', "name: String should have at least 1"),
    ('name = "x"\nscenarios = ["crash.toml"]\nseeds = [1, 1]\n', "seeds: seed listed twice: 1"),
    ('name = "x"\nscenarios = ["crash.toml"]\nseeds = [-1]\n', "seeds.0: Input should be"),
    ('name = "x"\nscenarios = ["crash.toml"]\nseeds = []\n', "seeds: List should have at least"),
    ('name = "x"\nscenarios = ["crash.toml"]\nsed = [1]\n', "sed: unknown field"),
    ('name = "x"\nscenarios = "crash.toml"\n', "scenarios: Input should be a valid list"),
    ('name = "x"\nscenarios = [\n', "malformed TOML"),
])
def test_bad_suites_are_one_line(suite_dir: Path, body: str, message: str) -> None:
    path = write(suite_dir / "suite.toml", body)
    with pytest.raises(ConfigError) as info:
        load_suite(path)
    text = str(info.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text


def test_missing_suite_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="suite file not found"):
        load_suite(tmp_path / "nope.toml")


def test_model_is_frozen(suite_dir: Path) -> None:
    suite = SuiteConfig(name="x", scenarios=[str(suite_dir / "crash.toml")])
    with pytest.raises(ValueError):
        suite.name = "y"  # type: ignore[misc]
