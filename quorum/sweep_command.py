"""``quorum sweep SWEEP.toml``: run what is missing, then rank, walk forward and draw.

Prints a progress bar with ETA on a terminal (one line per stored run otherwise, unless
``--quiet``), then the ranked parameter sets, the failures, and the walk-forward stability
summary; ``--out DIR`` also writes ranking.csv, walk_forward.csv, stability.csv and the
regime matrix (PNG + CSV). Running a finished sweep again only reports.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from quorum import signals
from quorum.sweep_entry import SweepUsageError, check_arguments
from reports.sweep import (
    EquityCurves,
    rank_param_sets,
    sweep_members,
    walk_forward,
    write_sweep_regime_matrix,
)
from research.sweep import RANK_METRICS, Sweep, describe_params, load_sweep
from research.sweep_driver import SweepProgress, execute_sweep, opened, plan_sweep, stored_status
from research.sweep_executors import (
    ClusterUnreachable,
    Executor,
    WorkerLost,
    default_workers,
    executor_for,
)
from research.sweep_pool import ProcessPool
from sim.config_base import parse_duration


@contextmanager
def _reporter(total: int, already: int, name: str, mode: str) -> Iterator[Any]:
    """A callback for each stored run: a rich progress bar on a terminal, plain lines
    otherwise, nothing when quiet."""
    if mode == "quiet":
        yield None
        return
    if mode == "lines":
        def line(p: SweepProgress) -> None:
            o, r = p.outcome, p.run
            where = f"{r.regime or 'base'} seed {r.seed}"
            err = f"  {o.error}" if o.error else ""
            print(f"[{p.done}/{p.total}] {o.run_id} {o.status} {where}  "
                  f"{describe_params(r.params)}  ({o.seconds:.1f}s){err}",
                  file=sys.stderr, flush=True)
        yield line
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("runs, {task.fields[failed]} failed"), TimeElapsedColumn(),
        TextColumn("ETA"), TimeRemainingColumn(), console=Console(file=sys.stderr),
        transient=True,
    )
    task = progress.add_task(f"sweep {name}", total=total, completed=already, failed=0)

    def advance(p: SweepProgress) -> None:
        progress.update(task, completed=p.done, failed=p.failed)

    with progress:
        yield advance


DEBUG_TRACEBACKS = 3  # --debug: the full traceback of the first failures, not of hundreds


def _with_tracebacks(report: Any) -> Any:
    """``report``, and on stderr the traceback of each of the first failed runs (a worker's
    traceback travels with its outcome; the store keeps the one-line error)."""
    shown: list[str] = []

    def on_stored(p: SweepProgress) -> None:
        if report is not None:
            report(p)
        trace = p.outcome.traceback
        if p.outcome.status == "failed" and trace:
            if len(shown) < DEBUG_TRACEBACKS:
                print(f"quorum: --debug: run {p.outcome.run_id} "
                      f"({describe_params(p.run.params)}, {p.run.regime or 'base'} seed "
                      f"{p.run.seed}) failed:\n{trace}", file=sys.stderr, flush=True)
            elif len(shown) == DEBUG_TRACEBACKS:
                print(f"quorum: --debug: only the first {DEBUG_TRACEBACKS} failures' "
                      "tracebacks are shown", file=sys.stderr, flush=True)
            shown.append(p.outcome.run_id)

    return on_stored


def _keeping(curves: EquityCurves, report: Any) -> Any:
    """``report`` (may be None), after keeping each completed run's equity curve in
    ``curves`` as it is stored (the walk-forward then reads none of them back)."""

    def on_stored(p: SweepProgress) -> None:
        got = p.outcome.store
        if p.outcome.status == "completed" and got.created is not None:
            curves.keep(p.outcome.run_id, float(got.created[1]["initial_cash"]),
                        got.table("equity"))
        if report is not None:
            report(p)

    return on_stored


def run_sweep_command(args: argparse.Namespace, print_table: Any, console: Any,
                      pool: ProcessPool | None = None) -> int:
    """The sweep: its runs made by ``pool`` (started by the caller, stopped unused when
    there is nothing to run) or else by ``executor_for``'s choice."""
    check_arguments(args)
    sweep = load_sweep(args.sweep)
    screened = None
    if getattr(args, "prescreen", None) is not None:  # vectorbt first, the top N to the engine
        from research.prescreen import prescreen

        start = time.perf_counter()
        ranking, screened, sweep = prescreen(sweep, args.prescreen)
        console.print(f"pre-screen: {len(screened)} runs by vectorbt in "
                      f"{time.perf_counter() - start:.1f} s; the top "
                      f"{min(args.prescreen, len(ranking))} of {len(ranking)} parameter sets "
                      "go to the engine")
    mode = "quiet" if args.quiet else ("bar" if sys.stderr.isatty() else "lines")
    with opened(args.db) as store:
        plan = plan_sweep(store, sweep, retry_failed=args.retry_failed,
                          reuse_stale=args.reuse_stale)
        kept = (f" ({plan.reused} made by other code, kept by --reuse-stale)"
                if plan.reused else "")
        console.print(f"sweep {sweep.config.name} ({sweep.sweep_id}): {plan.total} runs, "
                      f"{plan.already} already stored{kept}, {len(plan.todo)} to run"
                      + (f"; {len(sweep.skipped)} invalid combinations left out"
                         if sweep.skipped else ""))
        if plan.stale:
            console.print(f"{plan.stale} of the runs to make have a stored run made by "
                          "other code (an edited agent module or another Quorum): run "
                          "again; --reuse-stale keeps the old ones instead")
        curves = EquityCurves()  # the walk-forward's curves, as runs are stored
        executor: Executor = (executor_for(args.workers, args.cluster) if pool is None
                              else pool.run)
        if pool is not None and not plan.todo:
            pool.release()  # the workers leave while the report is made
        try:
            if plan.todo:
                start = time.perf_counter()
                with _reporter(plan.total, plan.already, sweep.config.name, mode) as report:
                    execute_sweep(store, plan, executor,
                                  commit_every=getattr(args, "commit_every", 2.0),
                                  concurrent=pool is not None or args.cluster is not None,
                                  on_stored=_keeping(curves, _with_tracebacks(report) if getattr(
                                      args, "debug", False) else report))
                seconds = time.perf_counter() - start
                where = (f"on {args.cluster}" if args.cluster else
                         f"with {args.workers or default_workers()} worker(s)")
                console.print(f"made {len(plan.todo)} runs in {seconds:.1f} s "
                              f"({len(plan.todo) / seconds * 60:.1f} runs/min) {where}")
        except (KeyboardInterrupt, WorkerLost) as exc:
            # SIGTERM sent to the whole process group can end a worker before the
            # driver's own handler runs: a lost worker after a stop signal is the stop.
            if isinstance(exc, WorkerLost) and signals.received() is None:
                print(f"quorum: sweep stopped: {exc}; the runs stored so far are kept, run "
                      "the same command again to resume", file=sys.stderr)
                return 1
            status = stored_status(store, [r.run_id for r in sweep.unique_runs()])
            print(f"quorum: sweep interrupted: {len(status)} of {plan.total} runs "
                  f"stored; run the same command again to resume", file=sys.stderr)
            return signals.interrupted_exit_code()
        except ClusterUnreachable as exc:
            raise SweepUsageError(str(exc)) from None
        if screened is not None:
            _prescreen_report(store.con, sweep, screened, args, print_table)
        return _report(store.con, sweep, args, print_table, console, curves)


def _prescreen_report(con: Any, sweep: Sweep, screened: Mapping[str, Mapping[str, float]],
                      args: argparse.Namespace, print_table: Any) -> None:
    """How well the pre-screen's ranking predicted the engine's, per regime."""
    from research.prescreen import agreement, engine_metrics

    top_sets = sorted({r.param_set for r in sweep.runs})
    engine = engine_metrics(con, [r.run_id for r in sweep.unique_runs()])
    rows = agreement(sweep, top_sets, dict(screened), engine)  # type: ignore[arg-type]
    print_table([{k: _fmt(v) for k, v in row.items()} for row in rows],
                title="pre-screen (vectorbt) against the engine, top sets")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        _write_csv(out / "prescreen_agreement.csv", rows)


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.4g}"
    return v


def _report(con: Any, sweep: Sweep, args: argparse.Namespace, print_table: Any,
            console: Any, curves: EquityCurves | None = None) -> int:
    cfg = sweep.config
    members = sweep_members(con, sweep.sweep_id)
    own = {r.idx: r.run_id for r in sweep.runs}
    for member in members:  # a stale run kept in the combination's place
        member["stale"] = member["run_id"] != own.get(member["idx"], member["run_id"])
    rank_by = [(name, RANK_METRICS[name]) for name in cfg.rank_by]
    ranked = rank_param_sets(members, rank_by, cfg.aggregate)
    first = cfg.rank_by[0]
    table = []
    any_stale = any(row["stale"] for row in ranked)
    any_thin = any(row["thin"] for row in ranked)
    for row in ranked[:args.top]:
        table.append({
            "rank": "-" if row["rank"] is None else row["rank"], "set": row["param_set"],
            "parameters": row["label"],
            "runs": f"{row['completed']}/{row['runs']}", "failed": row["failed"],
            **({"stale": row["stale"]} if any_stale else {}),
            **{key: value for k, _ in rank_by for key, value in (
                (f"{k} ({cfg.aggregate})", _fmt(row[k])),
                (f"{k} from", f"{row[f'{k}_n']}/{row['runs']}"))},
            f"{first} std": _fmt(row[f"{first}_std"]),
            **({"worst regime": _worst_regime(row["by_regime"], RANK_METRICS[first])}
               if len(row["by_regime"]) > 1 else {}),
            **({"flag": f"{first} in {row[f'{first}_n']} of {row['runs']} runs: not ranked"
                if row["thin"] else ""} if any_thin else {}),
        })
    print_table(table, title=f"sweep {cfg.name}: parameter sets ranked by "
                             f"{', '.join(cfg.rank_by)} over regimes x seeds "
                             f"(top {min(args.top, len(ranked))} of {len(ranked)})")
    thin = [row for row in ranked if row["thin"]]
    if thin:
        console.print(f"note: {len(thin)} parameter sets not ranked: their {first} is "
                      f"missing in most of their runs (undefined, e.g. a run that never "
                      f"traded); '{first} from' says how many runs each figure rests on")
    stale = {m["run_id"] for m in members if m["stale"]}
    if stale:
        console.print(f"note: {len(stale)} runs in this ranking were made by other code "
                      "than this (kept by --reuse-stale; column 'stale'): run without "
                      "--reuse-stale to make them with this code")
    failures = {m["run_id"]: m for m in members if m["status"] == "failed"}
    if failures:
        console.print(f"{len(failures)} runs failed (stored with their error; quorum show "
                      "RUN_ID):")
        for m in list(failures.values())[:5]:
            console.print(f"  {m['run_id']} {m['label']} {m['regime'] or 'base'} seed "
                          f"{m['seed']}: {m['error']}")
    windows: list[dict[str, Any]] = []
    stability: list[dict[str, Any]] = []
    if cfg.walk_forward is not None:
        wf = cfg.walk_forward
        metric = cfg.window_metric
        windows, stability = walk_forward(
            con, members, metric, RANK_METRICS[metric], parse_duration(wf.train),
            parse_duration(wf.test), parse_duration(wf.step) if wf.step else None,
            wf.anchored, kept=curves)
        if not windows:
            console.print(f"walk-forward: no {wf.train} + {wf.test} window fits in the runs' "
                          "data")
        print_table([{"regime": s["regime"] or "base", "seed": s["seed"],
                      "windows": s["windows"], "changes": s["changes"],
                      "change rate": _fmt(s["change_rate"]), "distinct": s["distinct"],
                      "most chosen": "" if s["most_chosen_set"] is None
                      else f"#{s['most_chosen_set']}", "share": _fmt(s["share"]),
                      "train mean": _fmt(s["train_mean"]), "test mean": _fmt(s["test_mean"]),
                      "test std": _fmt(s["test_std"]), "test min": _fmt(s["test_min"]),
                      "test max": _fmt(s["test_max"])} for s in stability],
                    title=f"walk-forward on {metric}: train {wf.train}, test {wf.test}, "
                          f"step {wf.step or wf.test}{' (anchored)' if wf.anchored else ''}")
    if args.out:
        # imported here: the page's figures import matplotlib (2 s of CPU a sweep
        # printed without --out has no use for)
        from reports.sweep_report import SweepPage, write_sweep_report

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        _write_csv(out / "ranking.csv", [
            {"rank": r["rank"], "param_set": r["param_set"], "label": r["label"],
             **{f"param:{k}": v for k, v in r["params"].items()},
             **{k: r[k] for k in r
                if k not in ("rank", "param_set", "label", "params", "by_regime")},
             **{f"{first}@{regime}": v for regime, v in r["by_regime"].items()}}
            for r in ranked])
        written = ["ranking.csv"]
        if cfg.walk_forward is not None:
            _write_csv(out / "walk_forward.csv", [_stamped(w) for w in windows])
            _write_csv(out / "stability.csv", stability)
            written += ["walk_forward.csv", "stability.csv"]
        matrix = write_sweep_regime_matrix(con, ranked, members, out, top=args.top)
        if matrix is not None:
            written += [matrix[0].name, matrix[1].name]
        page = write_sweep_report(
            SweepPage(cfg.name, sweep.sweep_id, cfg.description or "", rank_by,
                      cfg.aggregate, cfg.window_metric if cfg.walk_forward else None),
            ranked, members, out, stability=stability, windows=windows,
            causal_matrix=None if matrix is None else matrix[0],
            run_reports=_run_reports(con, ranked, members, out,
                                     getattr(args, "run_reports", 1)))
        console.print(f"outputs: {out}/ ({', '.join(written)})")
        console.print(f"report: {page} (one self-contained HTML file, PNGs alongside)")
    else:
        console.print("the HTML report, the CSVs and the regime matrix: add --out DIR")
    return 1 if failures else 0


def _run_reports(con: Any, ranked: Sequence[Mapping[str, Any]],
                 members: Sequence[Mapping[str, Any]], out: Path, best: int
                 ) -> dict[str, Path]:
    """``quorum report`` of each run of the ``best`` best ranked sets, under
    ``out/runs/``, for the sweep page to link to (a run with nothing to report is left
    out)."""
    from reports.report import ReportError, write_report

    chosen = {r["param_set"] for r in ranked[:max(best, 0)]}
    pages: dict[str, Path] = {}
    for mem in members:
        run_id = mem["run_id"]
        if mem["param_set"] not in chosen or run_id in pages or mem["status"] is None:
            continue
        try:
            pages[run_id] = write_report(con, run_id, out / "runs" / run_id).html
        except ReportError:
            continue
    return pages


def _worst_regime(by_regime: Mapping[str, float], direction: str) -> str:
    known = {k: v for k, v in by_regime.items() if not math.isnan(v)}
    if not known:
        return ""
    pick = min if direction == "max" else max
    name = pick(known, key=lambda k: (known[k], k))
    return f"{name} ({known[name]:.3g})"


def _stamped(row: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for key in ("train_start", "train_end", "test_end"):
        out[key] = pd.Timestamp(row[key], unit="ns", tz="UTC").isoformat()
    return out


def _write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    names: list[str] = []
    for row in rows:
        names.extend(k for k in row if k not in names)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=names, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
