"""``quorum sweep``'s worker pool, started before the sweep is loaded and planned
(``quorum.sweep_entry``, ``research.sweep_pool``): it makes the runs when there are some,
and is stopped, with no worker left behind, when the sweep fails to load, has nothing to
run, or is interrupted first. And the driver's last stores: near the end of a sweep made
concurrently, runs are stored as soon as as many wait as are still to come."""

from __future__ import annotations

import contextlib
import io
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
from quorum.cli import main
from research.sweep import load_sweep
from research.sweep_driver import execute_sweep, opened, plan_sweep
from research.sweep_executors import run_serial
from research.sweep_pool import ProcessPool
from research.sweep_worker import RunOutcome, RunTask, execute_run
from sim.config_base import ConfigError
from tests._sweep_support import fingerprint

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "scenarios" / "sweeps" / "tiny.toml"


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


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


def _in_fours(tasks: Sequence[RunTask]) -> Iterator[list[RunOutcome]]:
    outcomes = [execute_run(t) for t in tasks]
    for i in range(0, len(outcomes), 4):
        yield outcomes[i:i + 4]


@pytest.mark.parametrize("concurrent", [False, True])
def test_near_the_end_runs_are_stored_once_as_many_wait_as_are_to_come(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, concurrent: bool) -> None:
    """16 runs arriving 4 at a time, with commits otherwise far apart: a concurrent
    executor's runs are stored 8 (8 to come), then 4 (4 to come), then the last 4; any
    other's in one lot at the end. The store is the same."""
    merged: list[int] = []
    real = driver.merge_outcomes

    def merge(store: Any, items: Sequence[Any]) -> None:
        merged.append(len(items))
        real(store, items)

    monkeypatch.setattr(driver, "merge_outcomes", merge)
    sweep = load_sweep(TINY)
    db = tmp_path / "s.duckdb"
    with opened(str(db)) as store:
        execute_sweep(store, plan_sweep(store, sweep), _in_fours, commit_every=1e9,
                      concurrent=concurrent)
    assert merged == ([8, 4, 4] if concurrent else [16])
    reference = tmp_path / "reference.duckdb"
    with opened(str(reference)) as store:
        execute_sweep(store, plan_sweep(store, sweep), run_serial)
    assert fingerprint(db) == fingerprint(reference)


def test_a_missing_scenario_is_bad_input_before_any_run(tmp_path: Path) -> None:
    """(What the bad sweep above fails on: a ConfigError, exit 2.)"""
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\nscenario = "missing.toml"\nseeds = [1]\n')
    with pytest.raises(ConfigError):
        load_sweep(bad)
