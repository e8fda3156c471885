"""A researcher's commands from anywhere in the project reach one store, and say which
(issue 21: ``cd research && quorum run`` silently made a second ``runs.duckdb``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[2]
ENV = {k: v for k, v in os.environ.items() if k != "QUORUM_DB"}
SCENARIO = '''
name = "tiny"
seed = 1

[[data]]
kind = "gbm"
symbol = "SYN"
bars = 200
interval = "1h"

[[agents]]
name = "sma"
kind = "sma_crossover"
params = { fast = 5, slow = 20 }

[[venues]]
name = "v"
symbols = ["SYN"]
'''


def _quorum(*argv: str, cwd: Path, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "quorum.cli", *argv], cwd=cwd,
                          env=env or ENV, capture_output=True, text=True, timeout=120,
                          check=False)


def test_runs_from_the_root_and_a_subdirectory_share_the_project_store(tmp_path: Path) -> None:
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "tiny.toml").write_text(SCENARIO)
    research = tmp_path / "research"
    research.mkdir()
    (research / "mine.toml").write_text(SCENARIO.replace('"tiny"', '"mine"'))
    first = _quorum("run", "scenarios/tiny.toml", "--quiet", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    store = tmp_path / ".quorum" / "runs.duckdb"
    assert store.is_file()
    assert f"quorum: store {Path('.quorum') / 'runs.duckdb'} (" in first.stderr
    second = _quorum("run", "mine.toml", "--quiet", cwd=research)
    assert second.returncode == 0, second.stderr
    assert str(store) in second.stderr  # printed, absolute: it is not below here
    assert not list(tmp_path.rglob("runs.duckdb"))[1:]  # no second store anywhere
    listed = _quorum("runs", cwd=research)
    assert listed.returncode == 0 and "tiny" in listed.stdout and "mine" in listed.stdout
    with duckdb.connect(str(store), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 2


def test_quorum_db_names_the_store(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(SCENARIO)
    db = tmp_path / "elsewhere" / "mine.duckdb"
    db.parent.mkdir()
    done = _quorum("run", "s.toml", "--quiet", cwd=tmp_path,
                   env={**ENV, "QUORUM_DB": str(db)})
    assert done.returncode == 0, done.stderr
    assert db.is_file() and not (tmp_path / "runs.duckdb").exists()
    assert "$QUORUM_DB" in done.stderr


def test_an_explicit_db_is_not_announced(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(SCENARIO)
    done = _quorum("run", "s.toml", "--quiet", "--db", str(tmp_path / "a.duckdb"),
                   cwd=tmp_path)
    assert done.returncode == 0 and "quorum: store" not in done.stderr
