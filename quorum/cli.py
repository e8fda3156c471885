"""The ``quorum`` command: the composition root that wires sim, reports (and later live).

Exit codes: 0 done; 1 the run itself failed; 2 bad input (one line on stderr, no traceback);
130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, NoReturn

import duckdb
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from quorum import signals
from quorum.agent_path import agent_import_path
from quorum.outcomes import BAD_INPUT, Interrupted, RunFailed, run_error
from sim.agents.base import AgentError
from sim.config import load_scenario
from sim.runner import RunResult
from sim.sql import one_row
from sim.store import DuckDBStore, StoreError, is_interrupt, one_line

DEFAULT_DB = "runs.duckdb"  # the name; where it goes without --db: quorum.store_path
_DB_HELP = ("DuckDB run store (default: $QUORUM_DB, else the project's .quorum/runs.duckdb "
            "or a runs.duckdb found from here up, else ./runs.duckdb; printed on stderr)")
# Commands that make runs: SIGTERM stops them as Ctrl-C does (quorum.signals).
RUN_COMMANDS = ("run", "sweep", "validate", "live", "sandbox")


class UsageError(Exception):
    """Bad input found by the CLI itself."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2, like every other bad input
        self.exit(2, f"quorum: error: {message}\n")


def _positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1 (a bad one exits 2 naming the option)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _console(stream: Any = None) -> Console:
    stream = stream or sys.stdout
    width = None if stream.isatty() else 160  # pipes and CI logs: do not squeeze to 80
    return Console(file=stream, highlight=False, soft_wrap=True, width=width)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.6g}" if abs(value) < 1e6 else f"{value:,.2f}"
    return "" if value is None else str(value)


def _print_table(rows: Sequence[dict[str, Any]], title: str | None = None) -> None:
    table = Table(title=title, show_lines=False)
    if not rows:
        _console().print("(no rows)")
        return
    for name in rows[0]:
        table.add_column(str(name))
    for row in rows:
        table.add_row(*(_fmt(v) for v in row.values()))
    _console().print(table)


def interval_option(value: str | None) -> int | None:
    """An ``--interval`` option in nanoseconds (None: not given); bad input is one line."""
    from sim.config_base import parse_duration

    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise UsageError(f"--interval: {exc}") from None


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


def cmd_runs(args: argparse.Namespace) -> int:
    from reports.run_list import UnknownSweep, list_runs
    from sim.liveness import abandoned_runs, mark_abandoned

    where = _run_filter(args)
    with _open_existing(args.db, write=args.fix_abandoned) as store:
        if args.fix_abandoned:
            marked, live = mark_abandoned(store.con)
            _console().print(f"marked {len(marked)} run(s) abandoned"
                             + (f": {', '.join(marked)}" if marked else ""))
            if live:
                _console().print(f"left running for `quorum live --venue` to resume: "
                                 f"{', '.join(live)}")
        gone = abandoned_runs(store.con)
        try:
            rows = list_runs(store.con, args.limit, where, set(gone))
        except UnknownSweep as exc:
            raise UsageError(f"--sweep: {exc}") from None
        _print_table(rows, title=f"runs in {args.db}")
        if any(row["status"] == "abandoned" for row in rows):
            _console().print(f"{len(gone)} run(s) shown as abandoned: the process writing "
                             "it is gone; `quorum runs --fix-abandoned` stores that")
    return 0


def _run_filter(args: argparse.Namespace) -> Any:
    """``quorum runs``' filters; ``--since`` is a time (ISO 8601, UTC unless it says) or a
    duration back from now (``2h``, ``3d``)."""
    import time
    from datetime import UTC, datetime

    from reports.run_list import RunFilter
    from sim.config_base import parse_duration

    since = None
    if args.since is not None:
        try:
            since = (time.time_ns() - parse_duration(args.since)) // 1000
        except ValueError:
            try:
                stamp = datetime.fromisoformat(args.since)
            except ValueError:
                raise UsageError(f"--since {args.since!r}: expected a time such as "
                                 "2026-01-31 or 2026-01-31T12:00, or a duration back from "
                                 "now such as 2h or 3d") from None
            stamp = stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp
            since = round(stamp.timestamp() * 1_000_000)
    return RunFilter(scenario=args.scenario, status=args.status, mode=args.mode,
                     since_us=since, sweep=args.sweep, kind=args.kind)


def cmd_show(args: argparse.Namespace) -> int:
    from quorum.code_status import code_status
    from reports.data import coverage
    from reports.summary import run_summary
    from sim.liveness import abandoned_runs

    with _open_existing(args.db) as store:
        run_id = store.resolve_run_id(args.run_id)
        if args.metrics:  # refuse an empty run before printing anything
            (run_id,) = _report_run_ids(store, [run_id])
        row = one_row(
            store.con, "SELECT scenario, status, seed, code_version, data_hash, started_at,"
            " finished_at, error, config FROM runs WHERE run_id = ?", [run_id])
        names = ("scenario", "status", "seed", "code_version", "data_hash", "started_at",
                 "finished_at", "error")
        info = dict(zip(names, row[:-1], strict=True))
        info["code"] = code_status(store.con, run_id, row[-1])  # made by the code here?
        info.update(engine_path(store.con, run_id))
        gone = abandoned_runs(store.con).get(run_id) if info["status"] == "running" else None
        if gone is not None:
            info.update(status="abandoned", error=gone[1] + " (not stored yet: "
                        "`quorum runs --fix-abandoned` stores it)")
        note = coverage(store.con, run_id).note()
        if note is not None:
            _console().print(note, markup=False)
        summary = run_summary(store.con, run_id)
        rows = [{"field": k, "value": v} for k, v in {**info, **summary}.items()
                if k not in ("scenario", "status", "seed")]
        _print_table([{"field": k, "value": info[k]} for k in ("scenario", "status", "seed")]
                     + rows, title=f"run {run_id}")
        if args.config:
            _console().print_json(row[-1])
        if args.routing:
            from reports.routing import routing_by_venue, routing_totals

            totals = routing_totals(store.con, run_id)
            _print_table([{"field": k, "value": v} for k, v in totals.items()],
                         title="routing")
            _print_table(routing_by_venue(store.con, run_id),
                         title="routing by venue and symbol")
        if args.metrics:
            _print_metrics(store.con, run_id)
        from quorum.observe import print_observed

        print_observed(store.con, run_id, args, _print_table)
    return 0


def engine_path(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, str]:
    """Which loop made the run and why (``sim.fast_path``); "" for runs stored before."""
    rows = dict(con.execute("SELECT key, value FROM run_info WHERE run_id = ?",
                            [run_id]).fetchall())
    path = rows.get("engine_path")
    return {"engine_path": f"{path} ({rows.get('engine_path_reason', '')})" if path else ""}


def _print_metrics(con: duckdb.DuckDBPyConnection, run_id: str) -> None:
    """Every run metric, then the per-regime, per-agent, per-venue and per-check tables:
    the numbers of ``quorum report`` without the pictures."""
    from reports import data, slices
    from reports.summary import METRIC_GROUPS, fmt, run_metrics

    run = data.RunData(con, run_id)
    metrics = run_metrics(run)
    _print_table([{"group": group, "metric": name, "value": fmt(metrics[name], name)}
                  for group, names in METRIC_GROUPS.items() for name in names
                  if name in metrics and group != "run"], title="metrics")

    def columns(rows: list[dict[str, Any]], title: str) -> None:
        """One column per row of ``rows`` (regimes, agents, venues are few; metrics many)."""
        if not rows:
            _print_table([], title=title)
            return
        key = next(iter(rows[0]))
        _print_table([{key: name, **{str(r[key]): fmt(r[name], name) for r in rows}}
                      for name in list(rows[0])[1:]], title=title)

    columns(slices.regime_table(run), f"per regime label (of {run.reference})")
    columns(slices.agent_table(run),
            "per agent (shadow: own signals alone, a unit of notional per symbol, no fees)")
    columns(slices.venue_table(run), "per venue")
    _print_table([{k: fmt(v, k) for k, v in row.items()}
                  for row in slices.denials_table(run)], title="risk denials by check")
    from reports.farms import farm_correlation, farm_table

    farms = farm_table(con, run_id)  # only a run with [[farms]] has any
    if farms:
        columns(farms, "per farm (contribution: its share of the account's PnL)")
        _print_table([{k: fmt(v, k) for k, v in row.items()}
                      for row in farm_correlation(con, run_id)],
                     title="correlation of the farms' returns")


def cmd_query(args: argparse.Namespace) -> int:
    with _open_existing(args.db) as store:
        try:
            rel = store.con.execute(args.sql)
        except duckdb.Error as exc:
            raise UsageError(f"query failed: {str(exc).splitlines()[0]}") from None
        if rel.description is None:
            return 0
        names = [d[0] for d in rel.description]
        rows = [dict(zip(names, r, strict=True)) for r in rel.fetchall()]
        if args.csv:
            import csv

            writer = csv.DictWriter(sys.stdout, fieldnames=names, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        else:
            _print_table(rows)
    return 0


def _report_run_ids(store: DuckDBStore, run_ids: Sequence[str]) -> list[str]:
    """Resolve prefixes (unknown: StoreError, exit 2); refuse runs with nothing stored."""
    from reports.report import ReportError, check_run

    resolved = list(dict.fromkeys(store.resolve_run_id(r) for r in run_ids))
    for run_id in resolved:
        try:
            check_run(store.con, run_id)
        except ReportError as exc:
            raise UsageError(str(exc)) from None
    return resolved


def cmd_report(args: argparse.Namespace) -> int:
    from reports.data import coverage
    from reports.report import write_report

    with _open_existing(args.db) as store:
        (run_id,) = _report_run_ids(store, [args.run_id])
        note = coverage(store.con, run_id).note()
        report = write_report(store.con, run_id, Path(args.out or f"report_{run_id}"))
    if note is not None:
        _console().print(note, markup=False)
    _console().print(f"report: {report.html} ({len(report.pngs)} figures, PNGs alongside)")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from reports.data import coverage
    from reports.report import compare_runs
    from reports.run_labels import run_labels
    from reports.summary import fmt as fmt_metric

    with _open_existing(args.db) as store:
        run_ids = _report_run_ids(store, args.run_ids)
        for run_id in run_ids:
            note = coverage(store.con, run_id).note()
            if note is not None:
                _console().print(f"run {run_id}: {note}", markup=False)
        out = Path(args.out or "compare_" + "_".join(r[:6] for r in run_ids[:6]))
        labels = run_labels(store.con, run_ids)  # what differs between them, not ids
        rows, png = compare_runs(store.con, run_ids, out, labels)
        names = [k for k in rows[0] if k != "run_id"]
        table = [{"metric": k, **{labels[r["run_id"]]: fmt_metric(r.get(k), k)
                                  for r in rows}} for k in ["run_id", *names]]
        _print_table(table, title="compare")
        _console().print(f"equity overlay: {png} (compare_metrics.csv alongside)")
        if args.regimes:
            from reports.regime_matrix import write_regime_matrix

            matrix, csv_path = write_regime_matrix(
                store.con, run_ids, out, by=args.by,
                row_labels=labels if args.by == "run" else None)
            _console().print(f"regime matrix: {matrix} ({csv_path.name} alongside)")
    return 0


def cmd_parity(args: argparse.Namespace) -> int:
    from quorum.parity import latest_session, run_parity
    from reports.parity_html import summary_lines

    if args.latency_tolerance < 0:
        raise UsageError(f"--latency-tolerance must be >= 0, got {args.latency_tolerance:g}")
    with _open_existing(args.db) as store:
        run_id = (store.resolve_run_id(args.run_id) if args.run_id
                  else latest_session(store.con))
        result, page = run_parity(store.con, run_id, Path(args.out or f"parity_{run_id}"),
                                  args.latency_tolerance)
    for line in summary_lines(result):
        print(line)
    print(f"report: {page.html} ({len(page.pngs)} figures, PNGs alongside)")
    return 0


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


def cmd_live(args: argparse.Namespace) -> int:
    """A paper or real-venue session; exit 2 before connecting when the gate or the input
    refuses. SIGTERM stops it as Ctrl-C does (``quorum.signals``)."""
    from live.capital import describe
    from live.venues import kind_of
    from quorum.live import (
        check_live_config,
        check_real_venue_config,
        default_kill_file,
        open_venue_session,
        paper_session,
        run_to_resume,
        without_log,
    )
    from quorum.live_accounts import plan_session
    from quorum.signals import run_interruptible
    from research.validation import check_promotion

    real = not args.paper
    if args.feed is not None and real:
        raise UsageError("--feed chooses a paper session's market data: use it with --paper "
                         "(--venue NAME trades on NAME's)")
    if args.venues and (args.url or args.testnet):
        raise UsageError("--venues: each venue's url and testnet are set in the scenario's "
                         "[live.venues.NAME] (or $QUORUM_HL_URL, $QUORUM_OSTIUM_URL)")
    if args.max_bars is not None and args.max_bars < 1:
        raise UsageError(f"--max-bars must be >= 1, got {args.max_bars}")
    if args.resume is not None and not real:
        raise UsageError("--resume continues a run on a real venue: use it with --venue")
    if args.capital_from_account and not real:
        raise UsageError("--capital-from-account sizes from a real account: use it with "
                         "--venue")
    rehearse_every_s = _rehearse_every(args)
    config = load_scenario(args.scenario)
    try:
        plan = plan_session(config, paper=args.paper, venue=args.venue or args.feed,
                            venues=args.venues, testnet=args.testnet, url=args.url)
    except ValueError as exc:  # a key missing from the environment
        raise UsageError(str(exc)) from None
    hl = plan.feed
    check_live_config(config, kind_of(hl))
    if real:
        check_real_venue_config(config)
    clock = None
    if args.url or hl.rest_url.startswith("http://"):  # a local venue: a sandbox?
        # a ``quorum sandbox`` plays its market on its own clock: run on it
        from live.hyperliquid.fake.sandbox import probe_clock

        clock = probe_clock(hl.rest_url)
    kill_file = Path(args.kill_file) if args.kill_file else default_kill_file(args.db)
    if kill_file.exists():
        raise UsageError(f"kill file {kill_file} exists (the kill switch was pulled); "
                         "remove it to start a session")
    if args.override_gate is not None and not args.override_gate.strip():
        raise UsageError("--override-gate needs a reason")
    api = None
    if args.api is not None:  # address and keys checked before anything connects
        from quorum.api.server import SessionApi

        api = SessionApi(args)
    with DuckDBStore(args.db) as store, _closing(api):
        resume_run = run_to_resume(store, config, args.resume) if real else None
        with without_log("research.validation"):  # the override is printed below, once
            verdict = check_promotion(store, config, override_reason=args.override_gate)
        if not verdict.allowed:
            raise UsageError(f"promotion gate refused {config.name!r}: {verdict.reason}")
        if not verdict.overridden:  # which suite and thresholds it passed
            print(f"quorum live: gate: {verdict.reason}", file=sys.stderr, flush=True)
        for warning in verdict.warnings:
            print(f"quorum live: warning: {warning}", file=sys.stderr)
        if verdict.overridden:
            print(f"quorum live: PROMOTION GATE OVERRIDDEN for {config.name!r} "
                  f"(config {verdict.config_hash}): {verdict.reason.removeprefix('OVERRIDDEN: ')}"
                  f" -- reason given: {args.override_gate.strip()} (stored as validation "
                  f"{verdict.validation_id})", file=sys.stderr, flush=True)
        mode = "live" if real else "paper"
        run_ids: list[str] = []  # the session's run, once it has one

        def announce(run_id: str, resumed: bool = False, recovered: int = 0) -> None:
            what = (f"RESUMING live run {run_id} ({recovered} order(s) to resolve at the "
                    "venue)" if resumed else f"{mode} session {run_id}")
            print(f"quorum live: {what} on {plan.title} "
                  f"({hl.rest_url}); gate: {verdict.reason}; kill switch: "
                  f"`quorum kill --kill-file {kill_file}` or kill -USR1 {os.getpid()}",
                  file=sys.stderr, flush=True)

        async def trade() -> RunResult:
            first = plan.accounts[0]
            session = await open_venue_session(
                config, store, hl, verdict, override_reason=args.override_gate,
                kill_file=kill_file, credentials=first.credentials, max_bars=args.max_bars,
                resume_run=resume_run, rehearse_every_s=rehearse_every_s,
                capital_from_account=args.capital_from_account, on_run=run_ids.append,
                clock=clock, on_runner=api.attach if api is not None else None,
                bus=api.bus if api is not None else None,
                accounts=plan.accounts if len(plan.accounts) > 1 else None)
            if session.capital is not None:
                names = "+".join(kind_of(a.settings).name for a in plan.accounts)
                print(describe(session.capital, names), file=sys.stderr, flush=True)
            announce(session.runner.run_id, resume_run is not None, session.recovered)
            return await session.run()

        try:
            if not real:
                result = run_interruptible(paper_session(
                    config, store, hl, verdict, override_reason=args.override_gate,
                    kill_file=kill_file, max_bars=args.max_bars, on_start=announce,
                    on_run=run_ids.append, clock=clock,
                    on_runner=api.attach if api is not None else None,
                    bus=api.bus if api is not None else None))
            else:
                result = run_interruptible(trade())
        except (*BAD_INPUT, KeyboardInterrupt):
            raise
        except Exception as exc:  # one line; "stored as failed" only if it is
            raise RunFailed(_failed_session(store, run_ids, exc, args.db)) from exc
    _console().print(f"run id: {result.run_id}  ({result.bars} bars, mode {mode}, "
                     f"store: {args.db})")
    return 0


@contextmanager
def _closing(api: Any) -> Iterator[None]:
    """Stop a session's API server (if any) when the session's block ends."""
    try:
        yield
    finally:
        if api is not None:
            api.close()


def _failed_session(store: DuckDBStore, run_ids: list[str], exc: Exception, db: str) -> str:
    """What ``quorum live`` says when its session failed: why, and where the run is."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    what = f"{type(exc).__name__}: {first}"
    status = None
    if run_ids:
        row = store.con.execute("SELECT status FROM runs WHERE run_id = ?",
                                [run_ids[-1]]).fetchone()
        status = None if row is None else row[0]
    if status is None:
        return f"{what} (nothing stored)"
    return f"{what} (run {run_ids[-1]}, stored as {status}; quorum show {run_ids[-1]} --db {db})"


def _rehearse_every(args: argparse.Namespace) -> float | None:
    """``--rehearse-every`` in seconds (None: off), checked: 100us..1s, real venue only."""
    from sim.config_base import parse_duration

    if args.rehearse_every is None:
        return None
    if args.paper:
        raise UsageError("--rehearse-every keeps a real venue's order path warm: use it "
                         "with --venue")
    try:
        ns = parse_duration(args.rehearse_every)
    except ValueError as exc:
        raise UsageError(f"--rehearse-every: {exc}") from None
    if not 100_000 <= ns <= 1_000_000_000:
        raise UsageError(f"--rehearse-every must be between 100us and 1s, got "
                         f"{args.rehearse_every!r}")
    return ns / 1e9


def cmd_kill(args: argparse.Namespace) -> int:
    from live.kill import pull
    from quorum.live import default_kill_file

    path = pull(Path(args.kill_file) if args.kill_file else default_kill_file(args.db))
    _console().print(f"kill switch pulled: {path} (a session watching it stops adding "
                     "exposure; remove the file before the next session)")
    return 0
def cmd_agent(args: argparse.Namespace) -> int:
    from quorum.agent_command import send_agent_command

    return send_agent_command(args, _console(), UsageError)


def cmd_sweep(args: argparse.Namespace) -> int:
    from quorum.sweep_command import SweepUsageError, run_sweep_command

    try:
        return run_sweep_command(args, _print_table, _console())
    except SweepUsageError as exc:
        raise UsageError(str(exc)) from None


def cmd_data_inspect(args: argparse.Namespace) -> int:
    from quorum.inspect_data import chart_path, inspect_bars
    from sim.data import load_bars

    interval = interval_option(args.interval)
    path = Path(args.file)
    symbol = args.symbol or path.stem
    bars = load_bars(path, symbol)  # gaps are reported below, not refused
    found = inspect_bars(bars, interval)
    _print_table([{"statistic": k, "value": v} for k, v in found.stats.items()],
                 title=f"{symbol}: {path.name}")
    total = sum(found.regimes.values())
    _print_table([{"regime": name, "bars": n, "share": f"{n / total:.1%}"}
                  for name, n in found.regimes.items()], title="regimes (causal labels)")
    _console().print(f"gaps: {found.gaps}")
    if args.out:
        from reports.plots import plot_regimes

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        chart = plot_regimes(bars.ts, bars.close, found.labels, chart_path(out, symbol),
                             title=f"{symbol}: close with regimes shaded ({path.name})")
        _console().print(f"chart: {chart}")
    return 0


def cmd_agents_list(args: argparse.Namespace) -> int:
    from sim.agents.base import describe_agent, registered_agents, resolve_agent

    for kind, target in sorted(registered_agents().items()):
        try:
            params = describe_agent(kind)
            factory_doc = (resolve_agent(kind).__doc__ or "").strip().splitlines()[0]
        except (AgentError, IndexError) as exc:  # listed, not fatal
            params, factory_doc = [], f"(cannot describe: {exc})"
        rows = [{"parameter": p["name"], "type": p["type"],
                 "default": "(required)" if p["required"] else repr(p["default"]),
                 "description": p["description"]} for p in params]
        _console().print(f"[bold]{kind}[/bold]  ({target})  {factory_doc}")
        if rows:
            _print_table(rows)
    return 0


def cmd_data_generate(args: argparse.Namespace) -> int:
    """Same regime, seed and settings as a one-source scenario gives the same bytes."""
    from quorum.generate_data import write_generated
    from sim.config import parse_scenario

    params: dict[str, Any] = {}
    for item in args.param:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--param {item!r}: expected NAME=VALUE")
        try:
            params[name.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            params[name.strip()] = value  # a bare word, e.g. a state name
    symbols = [s.strip() for s in (args.symbols or "SYN").split(",") if s.strip()]
    source: dict[str, Any] = {
        "kind": "regime", "regime": args.regime, "bars": args.bars, "symbols": symbols,
        "interval": args.interval or "1m", "start": args.start,
        "price": 100.0 if args.price is None else args.price,
        "params": params}
    if args.generator_version is not None:
        source["generator_version"] = args.generator_version
    if args.regime == "calibrated":
        from quorum.data_model import calibrated_source

        source = calibrated_source(args, symbols if args.symbols else None)
        symbols = source["symbols"]
    elif args.model is not None:
        raise UsageError("--model: only with the regime 'calibrated'")
    config = parse_scenario(
        {"name": f"generate_{args.regime}", "seed": args.seed, "data": [source],
         "agents": [{"name": "none", "kind": "sma_crossover"}],
         "venues": [{"name": "none", "symbols": symbols}]},
        "arguments",
    )
    for path, rows in write_generated(config, Path(args.out)):
        _console().print(f"wrote {path} ({rows} bars)")
    return 0


@contextmanager
def _open_existing(db: str, *, write: bool = False) -> Iterator[DuckDBStore]:
    """The store, read-only unless ``write``: a store the user may not write can be read,
    and so can one another reader has open. A damaged file often opens and fails on the
    first block read: one line naming the store (exit 2), not DuckDB's traceback."""
    if not Path(db).is_file():
        raise UsageError(f"no run store at {db} (run a scenario first, or pass --db PATH)")
    with DuckDBStore(db, read_only=not write) as store:
        try:
            yield store
        except duckdb.Error as exc:
            raise StoreError(f"cannot read run store {db}: {one_line(exc)}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="quorum", description="Backtest and audit multi-agent trading systems.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def db_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--db", default=None, metavar="PATH", help=_DB_HELP)

    p = sub.add_parser("run", help="run a scenario and store every step")
    p.add_argument("scenario", help="scenario TOML file, e.g. scenarios/demo.toml")
    db_option(p)
    p.add_argument("--seed", type=int, help="override the scenario's seed")
    p.add_argument("--out", metavar="DIR", help="also write summary, CSVs and an equity plot")
    p.add_argument("--api", metavar="[HOST:]PORT", help="serve the API and the live stream "
                   "while it runs (e.g. 127.0.0.1:8765; port 0 picks one)")
    p.add_argument("--keys", metavar="FILE", help="API key file (default $QUORUM_KEYS, else "
                   ".quorum/keys.toml)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--no-monitor", action="store_true",
                   help="do not watch the run (health, alerts, logs: on by default)")
    p.add_argument("--per-bar", action="store_true",
                   help="walk every bar (no event-skipping fast path; same stored rows)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("runs", help="list stored runs, newest first")
    db_option(p)
    p.add_argument("--limit", type=_positive_int, default=50, help="at most this many (>= 1)")
    p.add_argument("--fix-abandoned", action="store_true",
                   help="store runs whose process died while they ran as abandoned")
    p.add_argument("--scenario", metavar="NAME", help="only this scenario (a glob: 'rsi*')")
    p.add_argument("--status", choices=["completed", "failed", "interrupted", "running",
                                        "abandoned"])
    p.add_argument("--mode", choices=["backtest", "paper", "live"])
    p.add_argument("--kind", choices=["run", "sweep", "validation", "paper", "live"],
                   help="what made it: a single run, a sweep, a validation, a session")
    p.add_argument("--since", metavar="WHEN", help="started at or after WHEN: a time "
                   "(2026-01-31, 2026-01-31T12:00; UTC unless it says) or a duration back "
                   "from now (2h, 3d)")
    p.add_argument("--sweep", metavar="NAME", help="only the runs of this sweep (its name, "
                   "or its id or a prefix of it)")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("show", help="provenance and summary of one run")
    p.add_argument("run_id", help="run id or a unique prefix of it")
    db_option(p)
    p.add_argument("--config", action="store_true", help="also print the resolved config")
    p.add_argument("--routing", action="store_true",
                   help="also print routing by venue and symbol, success rate, routing time")
    p.add_argument("--metrics", action="store_true",
                   help="also print every metric and the per-regime, per-agent, per-venue "
                        "and per-risk-check tables (the numbers of `quorum report`)")
    p.add_argument("--health", action="store_true", help="also print the health timeline")
    p.add_argument("--alerts", action="store_true", help="also print the alerts raised")
    p.add_argument("--tools", action="store_true",
                   help="also print tool feedback: calls, success, latency per service/venue")
    p.set_defaults(func=cmd_show)
    from quorum.observe import add_parsers as add_observe_parsers

    add_observe_parsers(sub, db_option)

    p = sub.add_parser("query", help="run SQL against the store")
    p.add_argument("sql")
    db_option(p)
    p.add_argument("--csv", action="store_true", help="CSV instead of a table")
    p.set_defaults(func=cmd_query)

    p = sub.add_parser("report", help="self-contained HTML report of one run, with PNGs")
    p.add_argument("run_id", help="run id or a unique prefix of it")
    db_option(p)
    p.add_argument("--out", metavar="DIR", help="output directory (default: report_RUN_ID)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("compare", help="metrics side by side and overlaid equity of runs")
    p.add_argument("run_ids", nargs="+", metavar="RUN_ID", help="run ids or unique prefixes")
    db_option(p)
    p.add_argument("--out", metavar="DIR", help="output directory (default: compare_IDS)")
    p.add_argument("--regimes", action="store_true",
                   help="also write the regime matrix (Sharpe, return, max drawdown per "
                        "regime label)")
    p.add_argument("--by", choices=["scenario", "config", "run"], default="run",
                   help="regime matrix rows: each run apart (the default), or runs pooled "
                        "by scenario or by config (agents and their params, consensus, "
                        "policy, risk)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("parity", help="replay a paper or live session through the backtest "
                       "and explain every difference, stage by stage (HTML report)")
    p.add_argument("run_id", nargs="?", metavar="LIVE_RUN",
                   help="the session's run id or a unique prefix (default: the latest "
                        "paper or live session)")
    db_option(p)
    p.add_argument("--out", metavar="DIR", help="output directory (default: parity_RUN_ID)")
    p.add_argument("--latency-tolerance", type=float, default=100.0, metavar="MS",
                   help="a fill's venue latency beyond the model's by more than this is a "
                        "divergence (default 100)")
    p.set_defaults(func=cmd_parity)

    p = sub.add_parser("bench", help="benchmarks: throughput, a scenario's stages, live")
    p.add_argument("which", metavar="throughput|live|SCENARIO",
                   help="the built-in throughput bench, the live path (with --fake), or "
                        "a scenario file: latency per stage, throughput, peak memory")
    p.add_argument("--bars", type=int, default=None,
                   help="bars (throughput: 1,000,000; a scenario: its generated sources)")
    p.add_argument("--agents", type=int, default=1, choices=[1, 4])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--db", default=None, metavar="PATH",
                   help="store to write to (default: a temporary file)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs first (scenario)")
    p.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    p.add_argument("--stress", nargs="+", metavar="KEY=N,N",
                   help="agents=1,2,4 symbols=1,4: replicate agents and symbols on a grid")
    p.add_argument("--out", default="bench_out", metavar="DIR",
                   help="where --stress writes bench_stress.png and .csv")
    p.add_argument("--against", metavar="REF",
                   help="a commit (exported to a temporary tree) or another scenario "
                        "file: the same bench in the same run, and the ratios")
    p.add_argument("--fake", action="store_true", help="bench live: the fake exchange")
    p.add_argument("--per-bar", action="store_true",
                   help="bench throughput: the per-bar loop (A/B against the fast path)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("validate", help="run the regime suite with a scenario's trading "
                       "config and record the promotion-gate verdict (exit 1 if it fails)")
    p.add_argument("scenario", help="scenario TOML file")
    db_option(p)
    p.add_argument("--suite", metavar="FILE",
                   help="suite TOML (default: scenarios/regimes/suite.toml)")
    p.add_argument("--thresholds", metavar="FILE",
                   help="thresholds TOML (default: max_drawdown 0.30, min_sharpe -1.0 per "
                        "regime, min_mean_sharpe 0.0)")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("live", help="trade a validated scenario on live market data "
                       "(--paper: fills simulated by the scenario's venues; --venue NAME: "
                       "a real account there; --venues: one per scenario venue)")
    p.add_argument("scenario", help="scenario TOML file")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--paper", action="store_true",
                     help="live data (of --feed), simulated fills (the scenario's venue "
                          "model)")
    how.add_argument("--venue", metavar="NAME",
                     help="trade a real account at venue NAME: hyperliquid or ostium (keys "
                          "from the environment, e.g. $QUORUM_HL_SECRET_KEY, never from a "
                          "file or the command line)")
    how.add_argument("--venues", action="store_true",
                     help="trade the account each scenario venue is bound to in its "
                          "[live.venues.NAME] tables, in one session (orders fall back to "
                          "another venue when one cannot be reached)")
    p.add_argument("--feed", metavar="NAME",
                   help="with --paper: the venue whose market data it trades on "
                        "(hyperliquid, ostium; default: hyperliquid, or the first of the "
                        "scenario's [live.venues] when it has them)")
    p.add_argument("--resume", metavar="RUN_ID",
                   help="continue this live run (default: the scenario's last live run "
                        "when it is unfinished)")
    p.add_argument("--testnet", action="store_true",
                   help="the venue's test network (default: mainnet)")
    db_option(p)
    p.add_argument("--kill-file", metavar="PATH",
                   help="the file that pulls the kill switch (default: the store's name "
                        "with .kill, e.g. runs.kill)")
    p.add_argument("--override-gate", metavar="REASON",
                   help="start although the promotion gate refuses (logged and stored)")
    p.add_argument("--max-bars", type=int, metavar="N",
                   help="end after N live bars per symbol (default: run until Ctrl-C)")
    p.add_argument("--capital-from-account", action="store_true",
                   help="with --venue: trade an account holding less than the scenario's "
                        "initial_cash, sized from what it holds (stored with the session)")
    p.add_argument("--url", metavar="URL",
                   help="the venue's base URL (Hyperliquid: REST, its /ws the stream; "
                        "default $QUORUM_HL_URL, $QUORUM_OSTIUM_URL, else the network's "
                        "public API)")
    p.add_argument("--api", metavar="[HOST:]PORT",
                   help="serve the control API, the live stream and the dashboard in the "
                        "session's process (e.g. 127.0.0.1:8765; beyond loopback needs keys)")
    p.add_argument("--keys", metavar="FILE", help="API key file (default $QUORUM_KEYS, else "
                   ".quorum/keys.toml)")
    p.add_argument("--api-rate", metavar="RATE[:BURST]",
                   help="control calls per second per key, and the burst (default 5:20)")
    p.add_argument("--rehearse-every", metavar="DURATION",
                   help="with --venue: a dry run of the order path (prepare, sign, encode; "
                        "nothing sent) this often, e.g. 1ms, so it runs warm when a market "
                        "event comes; costs CPU (default: off; see BENCHMARKS.md)")
    p.set_defaults(func=cmd_live)

    p = sub.add_parser("kill", help="pull the kill switch of a running live session")
    db_option(p)
    p.add_argument("--kill-file", metavar="PATH",
                   help="the session's kill file (default: the store's name with .kill)")
    p.set_defaults(func=cmd_kill)
    p = sub.add_parser("agent", help="steer the agents of a running live session: spawn, "
                                     "pause, resume, stop, update, kill")
    from quorum.agent_command import add_agent_arguments

    add_agent_arguments(p)
    db_option(p)
    p.set_defaults(func=cmd_agent)
    p = sub.add_parser("sweep", help="run a sweep over parameters, regimes and seeds; rank, "
                                     "walk forward, regime matrix")
    p.add_argument("sweep", help="sweep TOML file, e.g. scenarios/sweeps/regimes_grid.toml")
    p.add_argument("--db", "--store", dest="db", default=None, metavar="PATH",
                   help=_DB_HELP + "; runs already in it are not made again")
    p.add_argument("--workers", type=int, metavar="N",
                   help="local worker processes (default: every core; 1 runs in this process)")
    p.add_argument("--cluster", metavar="tcp://HOST:PORT",
                   help="run on a dask.distributed cluster (its scheduler address) instead")
    p.add_argument("--out", metavar="DIR", help="also write the sweep's HTML report, "
                   "ranking.csv, the regime matrix and, with walk_forward, walk_forward.csv "
                   "and stability.csv")
    p.add_argument("--top", type=int, default=10, metavar="N",
                   help="parameter sets shown in the table and the regime matrix (default 10)")
    p.add_argument("--run-reports", type=int, default=1, metavar="N",
                   help="with --out: also write the report of every run of the N best "
                        "sets, linked from the sweep's HTML page (default 1; 0: none)")
    p.add_argument("--retry-failed", action="store_true",
                   help="run failed runs again (by default a stored failure is final)")
    p.add_argument("--reuse-stale", action="store_true",
                   help="keep stored runs made by other code (an edited agent, another "
                        "Quorum) instead of running them again; the ranking marks them")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--prescreen", type=_positive_int, metavar="N",
                   help="rank every parameter set with vectorbt on the agents' batch "
                        "signals first, run only the top N sets through the engine, and "
                        "report the rank agreement per regime")
    p.set_defaults(func=cmd_sweep)

    agents = sub.add_parser("agents", help="the agent library")
    agents_sub = agents.add_subparsers(dest="agents_command", metavar="COMMAND", required=True,
                                       parser_class=_Parser)
    p = agents_sub.add_parser("list", help="every agent type with its parameters and defaults")
    p.set_defaults(func=cmd_agents_list)

    data = sub.add_parser("data", help="market data files: generate, inspect, calibrate, "
                                       "compare")
    data_sub = data.add_subparsers(dest="data_command", metavar="COMMAND", required=True,
                                   parser_class=_Parser)
    p = data_sub.add_parser("inspect", help="statistics, gaps and regimes of a bar file")
    p.add_argument("file", help="OHLCV bars, CSV or Parquet")
    p.add_argument("--symbol", help="symbol name (default: the file name without suffix)")
    p.add_argument("--interval", metavar="DURATION",
                   help="expected bar spacing for the gap report, e.g. 5m (default: the "
                        "median spacing)")
    p.add_argument("--out", metavar="DIR", help="also write a price chart with regimes shaded")
    p.set_defaults(func=cmd_data_inspect)

    p = data_sub.add_parser("generate", help="write a seeded regime series to a file")
    p.add_argument("regime", help="trend_up, trend_down, ranging, high_volatility, crash, "
                                  "regime_switching, or calibrated (with --model)")
    p.add_argument("--model", metavar="MODEL.toml",
                   help="with calibrated: the model from quorum data calibrate")
    p.add_argument("--bars", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, metavar="FILE", help=".csv or .parquet; with "
                   "several symbols one file each, named FILE_SYMBOL.ext")
    p.add_argument("--symbols", help="comma-separated (default SYN; calibrated: the "
                                     "model's symbols)")
    p.add_argument("--interval", help="bar spacing (default 1m; calibrated: the model's)")
    p.add_argument("--start", default="2024-01-01T00:00:00Z")
    p.add_argument("--price", type=float,
                   help="start price (default 100; calibrated: each source's first close)")
    p.add_argument("--generator-version", type=int, choices=[1, 2],
                   help="default 2: with stylized facts (fat tails, clustering, reversal; "
                        "--param stylized={...}); 1: the textbook models of older runs")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="regime parameter, value in TOML syntax (repeatable)")
    p.set_defaults(func=cmd_data_generate)
    from quorum.data_model import add_parsers as add_model_parsers

    add_model_parsers(data_sub)
    from quorum.sandbox import add_parser as add_sandbox_parser

    add_sandbox_parser(sub)
    from quorum.api.serve import add_parsers as add_api_parsers

    add_api_parsers(sub)
    _add_debug(parser)
    return parser


def _add_debug(parser: argparse.ArgumentParser) -> None:
    """``--debug`` on every command: a failure's full traceback (the file and line of an
    agent's own code), then the usual one line."""
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not actions:
        if not any("--debug" in a.option_strings for a in parser._actions):
            parser.add_argument("--debug", action="store_true",
                                help="on failure, print the full traceback first")
        return
    for action in actions:
        for child in dict.fromkeys(action.choices.values()):
            _add_debug(child)


def _print_traceback(args: argparse.Namespace, exc: BaseException) -> None:
    """With ``--debug``: the traceback of what failed (a wrapped run error's cause)."""
    if not getattr(args, "debug", False):
        return
    import traceback

    shown = exc.__cause__ if isinstance(exc, RunFailed) and exc.__cause__ else exc
    traceback.print_exception(shown, file=sys.stderr)


def _choose_store(args: argparse.Namespace) -> None:
    """``args.db`` when ``--db`` was not given: the project's store (``quorum.store_path``),
    said on stderr; a command that writes makes its ``.quorum/`` folder."""
    from quorum.store_path import default_store, shown

    if getattr(args, "db", "") is not None or args.command == "bench":
        return
    chosen = default_store()
    args.db = shown(chosen.path)
    if args.command in RUN_COMMANDS:
        chosen.path.parent.mkdir(parents=True, exist_ok=True)
    print(f"quorum: store {args.db} ({chosen.why})", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stoppable = args.command in RUN_COMMANDS
    try:
        _choose_store(args)
        with (agent_import_path(args),  # module:Class agents beside the scenario, then here
              signals.interrupts_as_keyboard_interrupt() if stoppable else nullcontext()):
            return args.func(args)
    except (*BAD_INPUT, UsageError) as exc:
        _print_traceback(args, exc)
        print(f"quorum: error: {exc}", file=sys.stderr)
        return 2
    except RunFailed as exc:
        _print_traceback(args, exc)
        print(f"quorum: run failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        print(f"quorum: {exc}" if isinstance(exc, Interrupted) else
              "quorum: interrupted; what was computed is stored, run marked interrupted",
              file=sys.stderr)
        return signals.interrupted_exit_code()
    except Exception as exc:
        if is_interrupt(exc) or (stoppable and signals.received()):
            print(f"quorum: interrupted ({type(exc).__name__}: {one_line(exc)})",
                  file=sys.stderr)
            return signals.interrupted_exit_code()
        if os.environ.get("QUORUM_TRACEBACK"):
            raise
        _print_traceback(args, exc)
        print(f"quorum: {args.command} failed: {type(exc).__name__}: {one_line(exc)} "
              "(a bug: --debug shows where)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
