"""The built wheel, installed into a fresh virtual environment outside the repository,
works as a new user's project would use it: the distribution is ``quorum-harness`` (the
PyPI project ``quorum`` is an unrelated Flask extension), the command is ``quorum``, a
``module:Class`` agent written beside the scenario runs in a scenario and in a sweep, and
the bundled validated configuration passes ``quorum validate`` with the bundled suite.

Offline: the wheel is built without build isolation and installed with ``--no-index
--no-deps``; the fresh environment sees this environment's dependencies through a ``.pth``
line (a path added that way has its own ``.pth`` files ignored, so the checkout's editable
install does not leak in, which the test checks). About 20 s.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import tomllib
import venv
import zipfile
from pathlib import Path

import duckdb
import pytest

REPO = Path(__file__).resolve().parents[2]
DISTRIBUTION = "quorum-harness"
pytestmark = pytest.mark.slow  # about 20-30 s: run by CI (no marker is deselected there)

ENV = {k: v for k, v in os.environ.items()
       if k not in ("PYTHONPATH", "QUORUM_DB", "VIRTUAL_ENV")}

AGENT = '''
from sim.messages import FLAT, LONG, Signal


class Pullback:
    """LONG after a fall of ``drop`` over five bars, FLAT after a rise as large."""

    def __init__(self, drop: float = 0.01) -> None:
        self.drop = drop
        self.last = None

    def on_bar(self, view):
        if view.n <= 5:
            return None
        closes = view.history("close", 6)
        move = closes[-1] / closes[0] - 1.0
        side = LONG if move < -self.drop else FLAT if move > self.drop else self.last
        if side is None or side is self.last:
            return None
        self.last = side
        return Signal(side, 0.8)
'''
SCENARIO = '''
name = "pullback"
seed = 3

[[data]]
kind = "gbm"
symbol = "SYN"
bars = 500
interval = "1h"
volatility = 0.8

[[agents]]
name = "pb"
kind = "my_agents:Pullback"
params = { drop = 0.01 }

[[venues]]
name = "v"
symbols = ["SYN"]
fee_bps = 5.0
'''
SWEEP = '''
name = "pullback_drop"
scenario = "pullback.toml"
seeds = [1, 2]
rank_by = ["sharpe"]

[grid]
"agents.pb.params.drop" = [0.005, 0.02]
'''


def _run(argv: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv (outside the repository) with the wheel built from this checkout."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"  # a copy, so the build leaves nothing in the checkout
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("sim", "research", "live", "reports", "quorum", "scenarios"):
        shutil.copytree(REPO / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    dist = root / "dist"
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                  "--no-index", "-q", "-w", str(dist), str(src)], root, timeout=300)
    assert built.returncode == 0, built.stderr
    (wheel,) = dist.glob("*.whl")
    env = root / "env"
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    done = _run([str(python), "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                 str(wheel)], root, timeout=300)
    assert done.returncode == 0, done.stderr
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                      "['purelib'])"], root).stdout.strip())
    (site / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return env


def test_wheel_is_named_and_ships_the_scenarios(installed: Path) -> None:
    wheels = list(installed.parent.glob("dist/*.whl"))
    assert wheels and wheels[0].name.startswith("quorum_harness-"), wheels
    with zipfile.ZipFile(wheels[0]) as zf:
        names = set(zf.namelist())
        meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
        assert f"Name: {DISTRIBUTION}" in zf.read(meta).decode()
        entry = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "quorum = quorum.cli:main" in zf.read(entry).decode()
    for needed in ("scenarios/validated.toml", "scenarios/regimes/suite.toml",
                   "scenarios/regimes/crash.toml", "sim/engine.py", "quorum/cli.py"):
        assert needed in names, needed
    name = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["name"]
    assert name == DISTRIBUTION


def test_installed_quorum_runs_a_user_agent_in_a_run_and_a_sweep(
        installed: Path, tmp_path: Path) -> None:
    python, quorum = installed / "bin" / "python", installed / "bin" / "quorum"
    where = _run([str(python), "-c", "import quorum, sim; print(quorum.__file__);"
                  "print(sim.__file__)"], tmp_path)
    assert where.returncode == 0, where.stderr
    for path in where.stdout.split():  # the wheel's copy, not the checkout's
        assert Path(path).is_relative_to(installed), where.stdout
    project = tmp_path / "research"
    project.mkdir()
    (project / "my_agents.py").write_text(textwrap.dedent(AGENT))
    (project / "pullback.toml").write_text(SCENARIO)
    (project / "pullback_sweep.toml").write_text(SWEEP)
    db = tmp_path / "runs.duckdb"
    run = _run([str(quorum), "run", "pullback.toml", "--db", str(db), "--quiet"], project)
    assert run.returncode == 0, run.stderr
    sweep = _run([str(quorum), "sweep", "pullback_sweep.toml", "--db", str(db), "--quiet",
                  "--workers", "2"], project)
    assert sweep.returncode == 0, sweep.stdout + sweep.stderr
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(
            "SELECT status, count(*), sum((SELECT count(*) FROM signals s"
            " WHERE s.run_id = r.run_id)) FROM runs r GROUP BY status").fetchall()
    assert [r[:2] for r in rows] == [("completed", 5)], rows  # the run + 2 sets x 2 seeds
    assert rows[0][2] > 0  # the user's agent spoke


def test_bundled_validated_configuration_passes_from_the_install(
        installed: Path, tmp_path: Path) -> None:
    python, quorum = installed / "bin" / "python", installed / "bin" / "quorum"
    found = _run([str(python), "-c", "import scenarios; print(list(scenarios.__path__)[0])"],
                 tmp_path)
    bundled = Path(found.stdout.strip()) / "validated.toml"
    assert bundled.is_relative_to(installed) and bundled.is_file(), found.stdout + found.stderr
    done = _run([str(quorum), "validate", str(bundled), "--db", str(tmp_path / "v.duckdb")],
                tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASSED" in done.stdout and str(installed) in done.stdout  # the installed suite
