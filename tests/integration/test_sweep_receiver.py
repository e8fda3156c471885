"""The process pool's receiver thread (``research.sweep_executors.run_processes``): the
workers are fed and their results read while the caller is busy with what it was last
handed (storing it), and the CLI is not imported again by each spawned worker."""

from __future__ import annotations

import multiprocessing.spawn
import sys
import time
import types
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from research.sweep import load_sweep
from research.sweep_executors import _cli_main_hidden, run_processes
from research.sweep_worker import RunOutcome, RunTask

TINY = Path(__file__).resolve().parents[2] / "scenarios" / "sweeps" / "tiny.toml"


def test_workers_are_fed_while_the_caller_is_busy() -> None:
    """After the first outcomes, the caller stops asking: every task is still handed to
    the workers (before the receiver thread, at most ``2 * workers`` more were, and the
    workers then waited on the caller), and every outcome arrives, once."""
    runs = load_sweep(TINY).unique_runs()
    tasks = _Counted(RunTask(r.run_id, r.config) for r in runs)
    assert len(tasks) > 2 * 2 + 2
    got: list[RunOutcome] = []
    batches = run_processes(tasks, 2)
    try:
        while not got:
            got.extend(next(batches))
        deadline = time.monotonic() + 120  # a liveness bound, not a measurement
        while len(tasks.taken) < len(tasks) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(tasks.taken) == len(tasks)
        for ready in batches:
            got.extend(ready)
    finally:
        batches.close()
    assert sorted(o.run_id for o in got) == sorted(t.run_id for t in tasks)
    assert {o.status for o in got} == {"completed"}


def test_a_caller_that_falls_behind_holds_back_the_workers(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``HELD_MAX`` runs received and not taken (or still running), no task is
    handed out until the caller takes some: what a slow driver holds stays bounded, and
    every run still arrives once it goes on."""
    import research.sweep_executors as executors

    monkeypatch.setattr(executors, "HELD_MAX", 3)
    runs = load_sweep(TINY).unique_runs()
    tasks = _Counted(RunTask(r.run_id, r.config) for r in runs)
    got: list[RunOutcome] = []
    batches = run_processes(tasks, 2)
    try:
        while not got:
            got.extend(next(batches))
        time.sleep(3)  # the workers could make every run meanwhile, were they fed
        assert len(tasks.taken) <= len(got) + 3
        for ready in batches:
            got.extend(ready)
    finally:
        batches.close()
    assert len(tasks.taken) == len(tasks)
    assert sorted(o.run_id for o in got) == sorted(t.run_id for t in tasks)


class _Counted(list[RunTask]):
    """Tasks that note which were taken (``run_processes`` iterates them)."""

    def __init__(self, tasks: Iterable[RunTask]) -> None:
        super().__init__(tasks)
        self.taken: list[str] = []

    def __iter__(self) -> Iterator[RunTask]:
        for task in super().__iter__():
            self.taken.append(task.run_id)
            yield task


@pytest.mark.parametrize("as_module", [True, False])
def test_quorums_cli_is_not_named_to_spawned_workers(monkeypatch: pytest.MonkeyPatch,
                                                     as_module: bool) -> None:
    """``python -m quorum.cli`` and the ``quorum`` script: no main module for the
    workers to import while they are spawned, and ``__main__`` as it was after."""
    main = types.ModuleType("__main__")
    if as_module:
        main.__spec__ = types.SimpleNamespace(name="quorum.cli")  # type: ignore[assignment]
    else:
        from quorum import cli

        main.__spec__ = None  # type: ignore[assignment]
        main.main = cli.main  # type: ignore[attr-defined]
    main.__file__ = "/somewhere/quorum"
    monkeypatch.setitem(sys.modules, "__main__", main)
    before = multiprocessing.spawn.get_preparation_data("w")
    assert {"init_main_from_name", "init_main_from_path"} & before.keys()
    with _cli_main_hidden():
        during = multiprocessing.spawn.get_preparation_data("w")
    assert not {"init_main_from_name", "init_main_from_path"} & during.keys()
    assert main.__file__ == "/somewhere/quorum"
    assert multiprocessing.spawn.get_preparation_data("w") == before


def test_another_main_is_named_to_spawned_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """A script driving a sweep may define what its runs need: it stays their main."""
    main = types.ModuleType("__main__")
    main.__spec__ = None  # type: ignore[assignment]
    main.__file__ = "/somewhere/my_sweep.py"
    monkeypatch.setitem(sys.modules, "__main__", main)
    with _cli_main_hidden():
        during = multiprocessing.spawn.get_preparation_data("w")
    assert during["init_main_from_path"] == "/somewhere/my_sweep.py"
