"""The commands that make runs: ``quorum run``, ``bench``, ``validate`` and ``sweep``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from quorum.cli_common import (
    UsageError,
    _console,
    _print_table,
)
from quorum.outcomes import RunFailed, run_error
from sim.config import load_scenario
from sim.store import DuckDBStore

if TYPE_CHECKING:
    from research.sweep_pool import ProcessPool


@contextmanager
def _progress(enabled: bool) -> Iterator[tuple[Any, Any]]:
    """Yield (on_start, on_progress) callbacks that drive a progress bar on stderr."""
    if not enabled:
        yield None, None
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("bars"), TimeRemainingColumn(), console=Console(file=sys.stderr),
        transient=True,
    )
    task: list[Any] = []

    def on_start(run_id: str, total: int) -> None:
        task.append(progress.add_task(f"run {run_id}", total=total))

    def on_progress(n: int) -> None:
        progress.advance(task[0], n)

    with progress:
        yield on_start, on_progress


def cmd_run(args: argparse.Namespace) -> int:
    from reports.summary import run_summary
    from sim.runner import new_run_id, run_scenario

    config = load_scenario(args.scenario)
    if args.seed is not None:
        if args.seed < 0:
            raise UsageError(f"--seed must be >= 0, got {args.seed}")
        config = config.with_seed(args.seed)
    out = _output_dir(args.out) if args.out else None  # before the run, not after
    run_id = new_run_id()
    from quorum.api.server import watched

    with DuckDBStore(args.db) as store, watched(store.con, args.db, args, "run",
                                                         run_id) as watch:
        show_progress = sys.stderr.isatty() and not args.quiet
        try:
            with _progress(show_progress) as (on_start, on_progress):
                result = run_scenario(config, store, run_id=run_id, on_start=on_start,
                                      on_progress=on_progress, bus=watch.bus,
                                      monitor=not args.no_monitor,
                                      fast_path=not args.per_bar)
        except BaseException as exc:  # one line, by what the store holds (quorum.outcomes)
            raise run_error(store, run_id, args.db, exc) from exc
        summary = run_summary(store.con, result.run_id)
        rows = [{"metric": k, "value": v} for k, v in summary.items() if k != "run_id"]
        _print_table(rows, title=f"{config.name}: {config.description}".rstrip(": "))
        if not args.no_monitor:
            from quorum.observe import print_run_alerts

            print_run_alerts(store.con, result.run_id, _print_table)
        if out is not None:
            _write_outputs(store.con, result.run_id, summary, out)
            _console().print(f"outputs: {out}/ (summary.json, equity.csv, fills.csv, equity.png)")
    _console().print(f"run id: {result.run_id}  (store: {args.db})")
    return 0


def _output_dir(path: str) -> Path:
    """``--out DIR``, made now: a path naming a file, or one that cannot be made, is bad
    input found before the run rather than after it."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {path}: exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {path}: cannot make the directory: "
                         f"{exc.strerror or exc}") from None
    return out


def sql_string(text: str) -> str:
    """``text`` as an SQL string literal, for the statements that take no parameter where
    a file name goes (DuckDB's COPY ... TO)."""
    return "'" + text.replace("'", "''") + "'"


def _write_outputs(con: duckdb.DuckDBPyConnection, run_id: str, summary: dict[str, Any],
                   out: Path) -> None:
    from reports.plots import plot_equity

    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    for table in ("equity", "fills"):
        con.execute(
            f"COPY (SELECT * FROM {table} WHERE run_id = ? ORDER BY ts)"
            f" TO {sql_string(str(out / table) + '.csv')} (HEADER)", [run_id],
        )
    plot_equity(con, run_id, out / "equity.png")


def cmd_bench(args: argparse.Namespace) -> int:
    if args.which != "throughput":  # a scenario file, or "live"
        from quorum.bench_scenario import cli

        return cli(args, _print_table, _console().print)
    from quorum.bench import throughput

    result = throughput(bars=args.bars or 1_000_000, agents=args.agents, db=args.db,
                        repeat=args.repeat, fast_path=not args.per_bar)
    _print_table([result], title="throughput: whole pipeline incl. DuckDB writes")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """Exit 0 when the configuration passed the suite, 1 when it failed (both recorded).
    A suite or thresholds other than the gate requires make the validation an override,
    said loudly: the gate does not accept it."""
    from research.validate import SuiteRunError, run_validation
    from research.validation import gate_requirement, load_thresholds

    config = load_scenario(args.scenario)
    required = gate_requirement(config)
    thresholds = load_thresholds(args.thresholds) if args.thresholds else None
    with DuckDBStore(args.db) as store:
        try:
            outcome = run_validation(config, store, suite_path=args.suite,
                                     thresholds=thresholds)
        except SuiteRunError as exc:
            error = run_error(store, exc.run_id, args.db, exc.__cause__ or exc)
            raise (RunFailed(f"{exc.where} of the suite: {error}")
                   if isinstance(error, RunFailed) else error) from None
    _print_table([{"regime": m.regime, "seed": m.seed, "run": m.run_id,
                   "sharpe": m.sharpe, "max_drawdown": m.max_drawdown,
                   "total_return": m.total_return} for m in outcome.metrics],
                 title=f"validation of {config.name} (config {outcome.config_hash})")
    verdict = "PASSED" if outcome.passed else "FAILED"
    if outcome.overrides:
        _console().print(f"{verdict}, AS AN OVERRIDE: validation {outcome.validation_id} ran "
                         f"with {'; '.join(outcome.overrides)}. Stored as an override: the "
                         f"promotion gate does not accept it (it requires "
                         f"{required.describe()})", markup=False)
    else:
        _console().print(f"{verdict}: validation {outcome.validation_id} stored in {args.db} "
                         f"({required.describe()})", markup=False)
    for failure in outcome.failures:
        _console().print(f"  - {failure}", markup=False)
    return 0 if outcome.passed else 1


def cmd_sweep(args: argparse.Namespace, pool: ProcessPool | None = None) -> int:
    """The sweep, its runs made by ``pool`` when the CLI started one
    (``quorum.sweep_entry``)."""
    from quorum.sweep_command import SweepUsageError, run_sweep_command

    try:
        return run_sweep_command(args, _print_table, _console(), pool)
    except SweepUsageError as exc:
        raise UsageError(str(exc)) from None
