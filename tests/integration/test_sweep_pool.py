"""``quorum sweep``'s worker pool, started before the sweep is loaded and planned
(``quorum.sweep_entry``, ``research.sweep_pool``): it makes the runs when there are some,
and is stopped, with no worker left behind, when the sweep fails to load, has nothing to
run, or is interrupted first. And the driver's last lot: near the end of a sweep made
concurrently, runs are inserted as soon as as many wait as are still to come, and
committed once, at the end."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import quorum.sweep_command as sweep_command
import research.sweep_driver as driver
from research.sweep import load_sweep
from research.sweep_driver import execute_sweep, opened, plan_sweep
from research.sweep_executors import run_serial
from research.sweep_pool import ProcessPool
from research.sweep_worker import RunOutcome, RunTask, execute_run
from sim.config_base import ConfigError
from tests._sweep_support import TINY, cli, fingerprint

REPO = Path(__file__).resolve().parents[2]


def sweep_workers() -> list[Any]:
    return [p for p in multiprocessing.active_children() if p.name.startswith("sweep-")]


@pytest.fixture
def pools(monkeypatch: pytest.MonkeyPatch) -> list[ProcessPool]:
    """Every pool the CLI starts, kept for the test to look at its workers."""
    started: list[ProcessPool] = []
    real = ProcessPool.start

    def start(self: ProcessPool) -> ProcessPool:
        if self not in started:
            started.append(self)
        return real(self)

    monkeypatch.setattr(ProcessPool, "start", start)
    return started


@pytest.fixture
def loading(monkeypatch: pytest.MonkeyPatch) -> list[list[Any]]:
    """The sweep's loading, noting the pool's workers alive when it began."""
    seen: list[list[Any]] = []
    real = sweep_command.load_sweep

    def load(path: Any) -> Any:
        seen.append(sweep_workers())
        return real(path)

    monkeypatch.setattr(sweep_command, "load_sweep", load)
    return seen


def test_the_pool_is_started_before_the_sweep_is_loaded_and_makes_its_runs(
        tmp_path: Path, pools: list[ProcessPool], loading: list[list[Any]]) -> None:
    serial = tmp_path / "serial.duckdb"
    code, _, err = cli("sweep", str(TINY), "--db", str(serial), "--workers", "1", "--quiet")
    assert code == 0, err
    assert not pools and loading == [[]]  # one worker: this process, no pool

    db = tmp_path / "pool.duckdb"
    code, out, err = cli("sweep", str(TINY), "--db", str(db), "--workers", "2", "--quiet")
    assert code == 0, err
    assert "16 to run" in out
    assert len(pools) == 1
    assert sorted(p.name for p in loading[1]) == ["sweep-0", "sweep-1"]
    assert [p.exitcode for p in pools[0].procs] == [0, 0]  # told to stop, and did
    assert not sweep_workers()
    assert fingerprint(db) == fingerprint(serial)


def test_a_sweep_that_fails_to_load_stops_the_pool(tmp_path: Path, pools: list[ProcessPool],
                                                    loading: list[list[Any]]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\nscenario = "missing.toml"\nseeds = [1]\n')
    code, _, err = cli("sweep", str(bad), "--db", str(tmp_path / "s.duckdb"),
                       "--workers", "2", "--quiet")
    assert code == 2, err
    assert err.startswith("quorum: error: ") and err.count("\n") == 1, err
    assert len(pools) == 1 and len(loading[0]) == 2  # the pool was up while loading
    assert all(p.exitcode is not None for p in pools[0].procs)
    assert not sweep_workers()


def test_a_sweep_with_nothing_to_run_lets_the_workers_go(
        tmp_path: Path, pools: list[ProcessPool]) -> None:
    db = tmp_path / "done.duckdb"
    code, _, err = cli("sweep", str(TINY), "--db", str(db), "--workers", "1", "--quiet")
    assert code == 0, err
    code, out, err = cli("sweep", str(TINY), "--db", str(db), "--workers", "2", "--quiet")
    assert code == 0, err
    assert "16 runs, 16 already stored, 0 to run" in out
    assert "sweep tiny: parameter sets ranked" in out  # the report as before
    assert len(pools) == 1
    assert [p.exitcode for p in pools[0].procs] == [0, 0]  # released: they left on their own
    assert not sweep_workers()


def test_an_interrupt_before_the_runs_stops_the_pool(
        tmp_path: Path, pools: list[ProcessPool], monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(path: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(sweep_command, "load_sweep", interrupted)
    code, _, err = cli("sweep", str(TINY), "--db", str(tmp_path / "s.duckdb"),
                       "--workers", "2", "--quiet")
    assert code == 130, err
    assert len(pools) == 1 and len(pools[0].procs) == 2
    assert all(p.exitcode is not None for p in pools[0].procs)
    assert not sweep_workers()


def test_bad_flags_start_no_pool(tmp_path: Path, pools: list[ProcessPool]) -> None:
    code, _, err = cli("sweep", str(TINY), "--db", str(tmp_path / "s.duckdb"),
                       "--workers", "2", "--top", "0")
    assert code == 2 and err == "quorum: error: --top must be >= 1, got 0\n"
    assert not pools


def test_a_sweep_file_that_fails_to_load_is_one_line_from_the_command(tmp_path: Path) -> None:
    """The command as users run it: exit 2, one line, whatever the workers were doing."""
    proc = subprocess.run(
        [sys.executable, "-m", "quorum.cli", "sweep", str(tmp_path / "missing.toml"),
         "--db", str(tmp_path / "s.duckdb"), "--workers", "2"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, text=True,
        capture_output=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("quorum: error: ") and proc.stderr.count("\n") == 1, (
        proc.stderr)


def test_a_pool_is_used_once_and_closed_unused() -> None:
    with ProcessPool(2) as pool:
        assert [p.is_alive() for p in pool.procs] == [True, True]
    assert all(p.exitcode is not None for p in pool.procs)
    with pytest.raises(RuntimeError, match="one sweep"):
        next(pool.run([]))

    released = ProcessPool(2).start()
    released.release()
    released.close()
    assert [p.exitcode for p in released.procs] == [0, 0]

    runs = load_sweep(TINY).unique_runs()[:3]
    with ProcessPool(2) as pool:
        got = [o for ready in pool.run([RunTask(r.run_id, r.config) for r in runs])
               for o in ready]
    assert sorted(o.run_id for o in got) == sorted(r.run_id for r in runs)
    assert [p.exitcode for p in pool.procs] == [0, 0]
    assert not sweep_workers()


def _in_fours(tasks: Sequence[RunTask], then: BaseException | None = None
              ) -> Iterator[list[RunOutcome]]:
    outcomes = [execute_run(t) for t in tasks]
    for i in range(0, len(outcomes), 4):
        if then is not None and i == 8:
            raise then
        yield outcomes[i:i + 4]


@pytest.fixture
def inserted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many runs each insert of the driver held."""
    sizes: list[int] = []
    real = driver.insert_outcomes

    def insert(store: Any, items: Sequence[Any]) -> None:
        sizes.append(len(items))
        real(store, items)

    monkeypatch.setattr(driver, "insert_outcomes", insert)
    return sizes


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("reference") / "s.duckdb"
    with opened(str(db)) as store:
        execute_sweep(store, plan_sweep(store, load_sweep(TINY)), run_serial)
    return db


@pytest.mark.parametrize("concurrent", [False, True])
def test_the_last_lot_is_inserted_as_it_comes_and_committed_once(
        tmp_path: Path, inserted: list[int], reference: Path, concurrent: bool) -> None:
    """16 runs arriving 4 at a time, commits otherwise far apart: from a concurrent
    executor, 8 are inserted once 8 wait and 8 are to come, then 4 (4 to come), then the
    last 4, and all are committed, and reported, after the last; from any other, all 16
    at the end. The store is the same."""
    reported: list[int] = []  # inserts made when each run was reported
    db = tmp_path / "s.duckdb"
    with opened(str(db)) as store:
        execute_sweep(store, plan_sweep(store, load_sweep(TINY)), _in_fours,
                      on_stored=lambda p: reported.append(len(inserted)),
                      commit_every=1e9, concurrent=concurrent)
    assert inserted == ([8, 4, 4] if concurrent else [16])
    assert reported == [len(inserted)] * 16
    assert fingerprint(db) == fingerprint(reference)


def test_an_interrupt_in_the_last_lot_commits_what_was_inserted(
        tmp_path: Path, inserted: list[int], reference: Path) -> None:
    reported: list[str] = []
    db = tmp_path / "s.duckdb"
    sweep = load_sweep(TINY)
    with opened(str(db)) as store:
        with pytest.raises(KeyboardInterrupt):
            execute_sweep(store, plan_sweep(store, sweep),
                          lambda tasks: _in_fours(tasks, KeyboardInterrupt()),
                          on_stored=lambda p: reported.append(p.outcome.run_id),
                          commit_every=1e9, concurrent=True)
        assert inserted == [8]
        stored = store.con.execute("SELECT run_id, status FROM runs").fetchall()
        assert sorted(reported) == sorted(r for r, _ in stored)
        assert len(stored) == 8 and {s for _, s in stored} == {"completed"}
        plan = plan_sweep(store, sweep)
        assert plan.already == 8
        execute_sweep(store, plan, run_serial)
    assert fingerprint(db) == fingerprint(reference)


def test_another_error_in_the_last_lot_leaves_it_out(tmp_path: Path,
                                                      inserted: list[int]) -> None:
    reported: list[str] = []
    with opened(str(tmp_path / "s.duckdb")) as store:
        with pytest.raises(RuntimeError, match="boom"):
            execute_sweep(store, plan_sweep(store, load_sweep(TINY)),
                          lambda tasks: _in_fours(tasks, RuntimeError("boom")),
                          on_stored=lambda p: reported.append(p.outcome.run_id),
                          commit_every=1e9, concurrent=True)
        assert inserted == [8]
        assert store.con.execute("SELECT count(*) FROM runs").fetchone() == (0,)
        assert not reported
        store.con.execute("SELECT 1")  # the store is usable: the transaction is over


def test_a_missing_scenario_is_bad_input_before_any_run(tmp_path: Path) -> None:
    """(What the bad sweep above fails on: a ConfigError, exit 2.)"""
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\nscenario = "missing.toml"\nseeds = [1]\n')
    with pytest.raises(ConfigError):
        load_sweep(bad)
