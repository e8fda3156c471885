"""Stale results after a code change: a sweep whose agent module (or a module it imports)
was edited runs again instead of reporting "already stored"; ``--reuse-stale`` keeps the
old runs only when asked, and the ranking and ``quorum show`` mark them.

Observed on 9d04f14: an edited exit rule, ``48 runs, 48 already stored, 0 to run``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb

from sim.store import DuckDBStore

AGENT = '''
from helpers import EXIT_BAR
from sim.messages import FLAT, LONG, Signal


class Exits:
    """LONG at bar 5, FLAT at helpers.EXIT_BAR."""

    def on_bar(self, view):
        if view.n == 5:
            return Signal(LONG, 1.0)
        if view.n == EXIT_BAR:
            return Signal(FLAT, 1.0)
        return None
'''

SCENARIO = '''
name = "exits"
seed = 1
[[data]]
kind = "gbm"
symbol = "SYN"
bars = 200
interval = "1h"
[[agents]]
name = "exits"
kind = "my_exits:Exits"
[[venues]]
name = "v"
symbols = ["SYN"]
fee_bps = 5.0
'''

SWEEP = '''
name = "exits_sweep"
scenario = "base.toml"
seeds = [1, 2]
'''


def quorum(tmp: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(tmp / "agents"), os.environ.get("PYTHONPATH", "")) if p)}
    return subprocess.run([sys.executable, "-m", "quorum.cli", *argv], cwd=tmp, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def sweep(tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    proc = quorum(tmp, "sweep", "sweep.toml", "--db", "runs.duckdb", "--quiet", *extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def members(tmp: Path, proc: subprocess.CompletedProcess[str]) -> list[tuple[str, float]]:
    """(run id, final equity) of the combinations of the sweep ``proc`` ran, in order."""
    match = re.search(r"sweep exits_sweep \((\w+)\)", proc.stdout)
    assert match, proc.stdout
    con = duckdb.connect(str(tmp / "runs.duckdb"), read_only=True)
    try:
        return con.execute(
            "SELECT s.run_id, m.value FROM sweep_runs s JOIN run_metrics m USING (run_id)"
            " WHERE m.metric = 'final_equity' AND s.sweep_id = ? ORDER BY s.idx",
            [match.group(1)]).fetchall()
    finally:
        con.close()


def test_an_edited_agent_module_reruns_and_reuse_stale_keeps_old_runs(tmp_path: Path
                                                                        ) -> None:
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "my_exits.py").write_text(AGENT)
    helpers = agents / "helpers.py"
    helpers.write_text("EXIT_BAR = 60\n")
    (tmp_path / "base.toml").write_text(SCENARIO)
    (tmp_path / "sweep.toml").write_text(SWEEP)

    assert "2 runs, 0 already stored, 2 to run" in sweep(tmp_path).stdout
    again = sweep(tmp_path)
    assert "2 runs, 2 already stored, 0 to run" in again.stdout
    first = members(tmp_path, again)

    # The exit rule changes in a module the agent imports, not in the agent's own file.
    helpers.write_text("EXIT_BAR = 150\n")
    kept = sweep(tmp_path, "--reuse-stale")
    assert ("2 runs, 2 already stored (2 made by other code, kept by --reuse-stale), "
            "0 to run") in kept.stdout
    assert "2 runs in this ranking were made by other code" in kept.stdout
    assert members(tmp_path, kept) == first  # the old runs, marked, nothing made

    remade = sweep(tmp_path)
    assert "2 runs, 0 already stored, 2 to run" in remade.stdout, remade.stdout
    assert "2 of the runs to make have a stored run made by other code" in remade.stdout
    assert "made by other code than this" not in remade.stdout  # all fresh now
    second = members(tmp_path, remade)
    assert {r for r, _ in second}.isdisjoint(r for r, _ in first)
    assert [e for _, e in second] != [e for _, e in first]  # the edit changed the results

    # show tells the old runs from the new ones; the old ones are still in the store.
    old_show = quorum(tmp_path, "show", first[0][0], "--db", "runs.duckdb")
    assert old_show.returncode == 0, old_show.stderr
    assert re.search(r"code\s.*stale: module helpers differs", old_show.stdout), old_show.stdout
    new_show = quorum(tmp_path, "show", second[0][0], "--db", "runs.duckdb")
    assert re.search(r"code\s.*current", new_show.stdout), new_show.stdout

    # Undoing the edit is the old code again: its runs are recognised, nothing is made.
    helpers.write_text("EXIT_BAR = 60\n")
    undone = sweep(tmp_path)
    assert "2 runs, 2 already stored, 0 to run" in undone.stdout
    assert members(tmp_path, undone) == first


def test_a_run_stored_by_an_older_quorum_shows_as_code_unknown(tmp_path: Path) -> None:
    db = tmp_path / "runs.duckdb"
    with DuckDBStore(db) as store:  # what 9d04f14 wrote: a runs row, no code record
        store.create_run("0123456789abcdef", "old", {"initial_cash": 1000.0, "agents": []},
                         1, "0.1.0+9d04f14", "none")
        store.finish_run("0123456789abcdef", "completed", 0, None)
    proc = quorum(tmp_path, "show", "0123456789abcdef", "--db", str(db))
    assert proc.returncode == 0, proc.stderr
    assert "stale: code unknown (stored by an older Quorum)" in proc.stdout
