"""Stale results after a code change: a sweep whose agent module (or a module it imports)
was edited runs again instead of reporting "already stored"; ``--reuse-stale`` keeps the
old runs only when asked, and the ranking and ``quorum show`` mark them.

Observed on 9d04f14: an edited exit rule, ``48 runs, 48 already stored, 0 to run``."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb

from sim.schema import TABLES
from sim.store import DuckDBStore

REPO = Path(__file__).resolve().parents[2]

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


def members(tmp: Path, proc: subprocess.CompletedProcess[str], name: str = "exits_sweep"
            ) -> list[tuple[str, float]]:
    """(run id, final equity) of the combinations of the sweep ``proc`` ran, in order."""
    match = re.search(rf"sweep {name} \((\w+)\)", proc.stdout)
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


def _id_before_code_counted(stored: dict) -> str:
    """9d04f14's run id (sim/run_identity.py, quorum-run/2), copied: the stored config
    with each file by the sha256 of its content."""
    dump = json.loads(json.dumps(stored))
    for raw in dump["data"]:
        if raw.get("kind") == "file":
            raw["path"] = "sha256:" + hashlib.sha256(Path(raw["path"]).read_bytes()).hexdigest()
    payload = json.dumps({"v": "quorum-run/2", "config": dump}, sort_keys=True,
                         separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def test_runs_of_a_store_from_before_code_counted_are_stale_and_reusable(tmp_path: Path
                                                                          ) -> None:
    """A store written before runs recorded their code: its sweep runs are kept (never
    deleted), made again by default and reused with --reuse-stale; its files by content
    still decide whether an old run is the same combination."""
    data = tmp_path / "bars.csv"
    shutil.copy(REPO / "data" / "binance_ETH_BTC_5m_2018-01.csv", data)
    (tmp_path / "base.toml").write_text(f'''
name = "old"
seed = 1
[[data]]
kind = "file"
symbol = "ETHBTC"
path = "{data}"
interval = "5m"
[[agents]]
name = "sma"
kind = "sma_crossover"
params = {{ fast = 5, slow = 20 }}
[[venues]]
name = "v"
symbols = ["ETHBTC"]
''')
    (tmp_path / "sweep.toml").write_text('name = "old_sweep"\nscenario = "base.toml"\n'
                                         '[grid]\n"agents.sma.params.fast" = [3, 5]\n')
    db = str(tmp_path / "runs.duckdb")
    assert "2 runs, 0 already stored, 2 to run" in sweep(tmp_path).stdout
    with DuckDBStore(db) as store:  # turn it into what the older Quorum left
        con = store.con
        for run_id, config in con.execute("SELECT run_id, config FROM runs").fetchall():
            old = _id_before_code_counted(json.loads(config))
            for table in (*TABLES, "run_metrics", "runs"):
                con.execute(f"UPDATE {table} SET run_id = ? WHERE run_id = ?", [old, run_id])
        for table in ("run_code", "sweeps", "sweep_runs"):
            con.execute(f"DELETE FROM {table}")
        old_ids = sorted(r for (r,) in con.execute("SELECT run_id FROM runs").fetchall())

    kept = sweep(tmp_path, "--reuse-stale")
    assert "2 runs, 2 already stored (2 made by other code, kept by --reuse-stale)" in (
        kept.stdout)
    assert sorted(r for r, _ in members(tmp_path, kept, "old_sweep")) == old_ids
    show = quorum(tmp_path, "show", old_ids[0], "--db", "runs.duckdb")
    assert "stale: code unknown (stored by an older Quorum)" in show.stdout

    shutil.copy(data, tmp_path / "copy.csv")  # rewritten with the same bytes: still found
    shutil.copy(tmp_path / "copy.csv", data)
    assert "2 runs, 2 already stored" in sweep(tmp_path, "--reuse-stale").stdout
    lines = data.read_text().splitlines(keepends=True)
    data.write_text("".join(lines[:-1]))  # the data changed: not the same combination
    changed = sweep(tmp_path, "--reuse-stale")
    assert "2 runs, 0 already stored, 2 to run" in changed.stdout, changed.stdout
    with DuckDBStore(db) as store:  # the old runs are still there
        assert store.con.execute("SELECT count(*) FROM runs WHERE list_contains(?, run_id)",
                                 [old_ids]).fetchone()[0] == 2
