"""The commands that read the store: ``quorum runs``, ``show``, ``query``, ``report``,
``compare`` and ``parity``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb

from quorum.cli_common import (
    UsageError,
    _console,
    _open_existing,
    _print_table,
)
from sim.sql import one_row
from sim.store import DuckDBStore


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
        info.update(run_notes(store.con, run_id))
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


def run_notes(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, str]:
    """Which loop made the run and why (``sim.fast_path``; "" for runs stored before), and
    what the scenario scheduled after its data's end, not run (``Engine.finish``)."""
    rows = con.execute("SELECT key, value FROM run_info WHERE run_id = ? ORDER BY rowid",
                       [run_id]).fetchall()
    info = dict(rows)
    path = info.get("engine_path")
    notes = {"engine_path": f"{path} ({info.get('engine_path_reason', '')})" if path else ""}
    not_run = [value for key, value in rows if key == "not_run"]
    if not_run:
        notes["not_run"] = "; ".join(not_run)
    return notes


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
    agents = slices.agent_table(run)
    columns(agents,
            "per agent (shadow: own signals alone, a unit of notional per symbol, no fees)")
    columns(slices.venue_table(run), "per venue")
    _print_table([{k: fmt(v, k) for k, v in row.items()}
                  for row in slices.denials_table(run)], title="risk denials by check")
    from reports.farms import farm_agent_table, farm_correlation, farm_table

    farms = farm_table(con, run_id)  # only a run with [[farms]] has any
    if farms:
        columns(farms, "per farm (contribution: its share of the account's PnL)")
        _print_table([{k: fmt(v, k) for k, v in row.items()}
                      for row in farm_correlation(con, run_id)],
                     title="correlation of the farms' returns")
        _print_table([{k: fmt(v, k) for k, v in row.items()}
                      for row in farm_agent_table(con, run_id, agents)],
                     title="per agent inside each farm (votes in its decisions, orders "
                           "of those it backed)")


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
        if args.farms:
            if args.regimes:
                raise UsageError("--regimes compares runs, not the farms of a run: give "
                                 "one of --farms and --regimes")
            return _compare_farms(store.con, run_ids, out)
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


def _compare_farms(con: duckdb.DuckDBPyConnection, run_ids: list[str], out: Path) -> int:
    """``compare --farms``: the farms of the runs side by side (reports.farms)."""
    from reports.farms import compare_farms
    from reports.summary import fmt as fmt_metric

    try:
        rows, csv_path, png = compare_farms(con, run_ids, out)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    _print_table([{"metric": k, **{r["label"]: fmt_metric(r[k], k) for r in rows}}
                  for k in list(rows[0])[2:]], title="farms side by side")
    _console().print(f"equity overlay: {png} ({csv_path.name} alongside)")
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
