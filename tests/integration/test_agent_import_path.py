"""``module:Class`` agents load from the scenario's directory, then the current directory,
whichever way ``quorum`` is started: the console script puts neither on the import path by
itself (``python -m`` adds only the current directory). Every command runs in a temporary
directory outside the repository, as a new project would."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

SCRIPT = Path(sys.executable).with_name("quorum")  # the console script pip installed
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

AGENT = '''
from helpers import pullback  # a second user module beside it: part of the run's code


from sim.messages import FLAT, LONG, Signal


class RsiPullback:
    """LONG after a {drop} fall over 5 bars, FLAT after a rise as large."""

    def __init__(self, drop: float = 0.01) -> None:
        self.drop = drop
        self.last = None

    def on_bar(self, view):
        if view.n <= 5:
            return None
        move = pullback(view.history("close", 6))
        side = LONG if move < -self.drop else FLAT if move > self.drop else self.last
        if side is None or side is self.last:
            return None
        self.last = side
        return Signal(side, 0.8)
'''
HELPERS = '''
def pullback(closes):
    return closes[-1] / closes[0] - 1.0
'''
BROKEN = '''
class RsiPullback:
    def __init__(self, **params):
        raise RuntimeError("the copy in the current directory was used")

    def on_bar(self, view):
        return None
'''
SCENARIO = '''
name = "rsi_pullback"
seed = 3

[[data]]
kind = "gbm"
symbol = "SYN"
bars = 600
interval = "1h"
volatility = 0.8

[[agents]]
name = "rsi"
kind = "my_agents:RsiPullback"
params = { drop = 0.01 }

[[venues]]
name = "v"
symbols = ["SYN"]
fee_bps = 5.0
'''
SWEEP = '''
name = "rsi_sweep"
scenario = "rsi.toml"
seeds = [1, 2]
[grid]
"agents.rsi.params.drop" = [0.01, 0.02]
'''


def _project(root: Path) -> Path:
    """``root/research`` with the agent module, its helper, a scenario and a sweep."""
    research = root / "research"
    research.mkdir(parents=True)
    (research / "my_agents.py").write_text(textwrap.dedent(AGENT))
    (research / "helpers.py").write_text(HELPERS)
    (research / "rsi.toml").write_text(SCENARIO)
    (research / "sweep.toml").write_text(SWEEP)
    return research


def _quorum(how: str) -> list[str]:
    if how == "script":
        if not SCRIPT.exists():
            pytest.skip(f"no console script at {SCRIPT}")
        return [str(SCRIPT)]
    return [sys.executable, "-m", "quorum.cli"]


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=ENV, timeout=600)


def _modules(db: Path) -> list[dict[str, str]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return [json.loads(m) for (m,) in con.execute("SELECT modules FROM run_code").fetchall()]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("how", ["script", "module"])
def test_run_from_the_scenarios_directory(tmp_path: Path, how: str) -> None:
    """``cd research && quorum run rsi.toml``: the documented way."""
    research = _project(tmp_path)
    done = _run([*_quorum(how), "run", "rsi.toml", "--db", "../runs.duckdb"], research)
    assert done.returncode == 0, done.stderr
    (modules,) = _modules(tmp_path / "runs.duckdb")
    assert modules == {"helpers": _sha(research / "helpers.py"),
                       "my_agents": _sha(research / "my_agents.py")}
    # `quorum show` there finds the same modules: the run's code is current
    run_id = re.search(r"run id: ([0-9a-f]{12})", done.stdout)
    assert run_id is not None
    show = _run([*_quorum(how), "show", run_id.group(1), "--db", "../runs.duckdb"], research)
    assert show.returncode == 0, show.stderr
    assert re.search(r"code\s.*current", show.stdout), show.stdout


@pytest.mark.parametrize("how", ["script", "module"])
def test_run_from_elsewhere_finds_the_module_beside_the_scenario(tmp_path: Path,
                                                                 how: str) -> None:
    research = _project(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = _run([*_quorum(how), "run", str(research / "rsi.toml")], elsewhere)
    assert done.returncode == 0, done.stderr
    (modules,) = _modules(elsewhere / "runs.duckdb")
    assert modules["my_agents"] == _sha(research / "my_agents.py")


def test_the_scenarios_directory_comes_before_the_current_one(tmp_path: Path) -> None:
    research = _project(tmp_path)
    (tmp_path / "my_agents.py").write_text(BROKEN)  # another module of the same name, here
    done = _run([*_quorum("script"), "run", "research/rsi.toml"], tmp_path)
    assert done.returncode == 0, done.stderr
    (modules,) = _modules(tmp_path / "runs.duckdb")
    assert modules["my_agents"] == _sha(research / "my_agents.py")


def test_the_current_directory_when_the_scenario_is_elsewhere(tmp_path: Path) -> None:
    """Agents in the project root, scenarios in a subdirectory, run from the root."""
    research = _project(tmp_path)
    for name in ("my_agents.py", "helpers.py"):
        (research / name).rename(tmp_path / name)
    done = _run([*_quorum("script"), "run", "research/rsi.toml"], tmp_path)
    assert done.returncode == 0, done.stderr
    (modules,) = _modules(tmp_path / "runs.duckdb")
    assert modules["my_agents"] == _sha(tmp_path / "my_agents.py")


def test_sweep_and_validate_from_the_scenarios_directory(tmp_path: Path) -> None:
    """Sweep workers are spawned processes: they import the agent the same way."""
    research = _project(tmp_path)
    sweep = _run([*_quorum("script"), "sweep", "sweep.toml", "--workers", "2", "--quiet"],
                 research)
    assert sweep.returncode == 0, sweep.stderr
    assert len(_modules(research / "runs.duckdb")) == 4
    validate = _run([*_quorum("script"), "validate", "rsi.toml"], research)
    assert validate.returncode in (0, 1), validate.stderr  # passed or failed, never exit 2
    assert "validation" in validate.stdout
