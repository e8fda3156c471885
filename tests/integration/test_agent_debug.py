"""An agent that raises: the one-line error names the agent, the symbol and the bar, in
the terminal and in the store; ``--debug`` prints the full traceback first, down to the
file and line of the user's code, for a run and for a sweep's worker (issue 21)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

ENV = {k: v for k, v in os.environ.items() if k not in ("QUORUM_DB", "QUORUM_TRACEBACK")}
AGENT = '''
class Boom:
    def __init__(self, at: int = 40) -> None:
        self.at = at

    def on_bar(self, view):
        if view.n == self.at:
            return self.explode(view)
        return None

    def explode(self, view):
        return view.close / 0.0  # line 11: the user's bug
'''
SCENARIO = '''
name = "boom"
seed = 1

[[data]]
kind = "regime"
regime = "ranging"
symbols = ["AAA", "BBB"]
bars = 80
interval = "1h"
start = "2024-01-01T00:00:00Z"

[[agents]]
name = "quiet"
kind = "sma_crossover"
params = { fast = 3, slow = 9 }

[[agents]]
name = "boomer"
kind = "my_bad_agents:Boom"
params = { at = 40 }

[[venues]]
name = "v"
symbols = ["AAA", "BBB"]
'''
SWEEP = '''
name = "booms"
scenario = "boom.toml"
seeds = [1]
rank_by = ["sharpe"]

[grid]
"agents.boomer.params.at" = [30, 1000]
'''
WHERE = "agent 'boomer' raised on AAA at bar 40 (2024-01-02 15:00:00 UTC): ZeroDivisionError"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "my_bad_agents.py").write_text(AGENT.lstrip("\n"))
    (tmp_path / "boom.toml").write_text(SCENARIO)
    (tmp_path / "sweep.toml").write_text(SWEEP)
    return tmp_path


def _quorum(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "quorum.cli", *argv, "--db", "runs.duckdb"],
                          cwd=cwd, env=ENV, capture_output=True, text=True, timeout=180,
                          check=False)


def test_the_one_line_error_names_agent_symbol_and_bar(project: Path) -> None:
    done = _quorum("run", "boom.toml", "--quiet", cwd=project)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert WHERE in done.stderr, done.stderr
    with duckdb.connect(str(project / "runs.duckdb"), read_only=True) as con:
        (error,) = con.execute("SELECT error FROM runs").fetchone()
    assert error.startswith(WHERE), error


def test_debug_prints_the_users_file_and_line(project: Path) -> None:
    done = _quorum("run", "boom.toml", "--quiet", "--debug", cwd=project)
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stderr
    assert f'File "{project / "my_bad_agents.py"}", line 11, in explode' in done.stderr
    assert done.stderr.rstrip().splitlines()[-1].startswith("quorum: run failed: agent "
                                                             "'boomer'")


def test_sweep_debug_prints_the_workers_traceback(project: Path) -> None:
    plain = _quorum("sweep", "sweep.toml", "--quiet", "--workers", "1", cwd=project)
    assert plain.returncode == 1 and "Traceback" not in plain.stderr
    assert "agent 'boomer' raised on AAA at bar 30" in plain.stdout + plain.stderr
    again = _quorum("sweep", "sweep.toml", "--quiet", "--workers", "2", "--retry-failed",
                    "--debug", cwd=project)
    assert again.returncode == 1
    assert f'File "{project / "my_bad_agents.py"}", line 11, in explode' in again.stderr


@pytest.mark.parametrize("argv", [["runs"], ["agents", "list"], ["data", "inspect", "x.csv"],
                                  ["show", "abc"], ["report", "abc"], ["validate", "x.toml"]])
def test_every_command_takes_debug(project: Path, argv: list[str]) -> None:
    done = subprocess.run([sys.executable, "-m", "quorum.cli", *argv, "--debug"],
                          cwd=project, env=ENV, capture_output=True, text=True, timeout=120,
                          check=False)
    assert "unrecognized arguments" not in done.stderr, done.stderr
