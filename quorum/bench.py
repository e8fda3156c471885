"""``quorum bench throughput``: bars per second through the whole pipeline, writes included.

Times ``run_scenario`` end to end (data generation, hashing, every component, the DuckDB
writes) on seeded one-minute GBM bars, best of ``repeat`` runs, and reports the peak
resident memory of the process. Beside wall time, the CPU time of the process (user +
sys, DuckDB's threads included): on a shared machine it says what wall time cannot.
"""

from __future__ import annotations

import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from sim.config import parse_scenario
from sim.runner import run_scenario
from sim.sql import one_row
from sim.store import DuckDBStore

_AGENTS = [
    {"name": "sma_10_50", "kind": "sma_crossover", "params": {"fast": 10, "slow": 50}},
    {"name": "zscore_50", "kind": "zscore_reversion", "params": {"window": 50}},
    {"name": "sma_20_100", "kind": "sma_crossover", "params": {"fast": 20, "slow": 100}},
    {"name": "zscore_200", "kind": "zscore_reversion", "params": {"window": 200}},
]


def bench_scenario(bars: int, agents: int) -> dict[str, Any]:
    return {
        "name": f"bench_{agents}_agents",
        "seed": 1,
        "data": [{"kind": "gbm", "symbol": "BTCUSD", "bars": bars, "interval": "1m"}],
        "agents": _AGENTS[:agents],
        "consensus": {"method": "confidence_weighted" if agents > 1 else "majority"},
        "venues": [
            {"name": "alpha", "symbols": ["BTCUSD"], "fee_bps": 10.0},
            {"name": "beta", "symbols": ["BTCUSD"], "fee_bps": 7.5, "slippage_bps": 1.0},
        ],
    }


def throughput(bars: int, agents: int, db: str | None = None, repeat: int = 3,
               fast_path: bool = True) -> dict[str, Any]:
    config = parse_scenario(bench_scenario(bars, agents), "bench")
    best = best_cpu = float("inf")
    with tempfile.TemporaryDirectory() as tmp:
        path = db or str(Path(tmp) / "bench.duckdb")
        with DuckDBStore(path) as store:
            for _ in range(repeat):
                start, cpu = time.perf_counter(), _cpu_seconds()
                result = run_scenario(config, store, fast_path=fast_path)
                best = min(best, time.perf_counter() - start)
                best_cpu = min(best_cpu, _cpu_seconds() - cpu)
            counts = one_row(
                store.con, "SELECT (SELECT count(*) FROM fills WHERE run_id = $r),"
                " (SELECT count(*) FROM decisions WHERE run_id = $r),"
                " (SELECT value FROM run_info WHERE run_id = $r AND key = 'engine_path')",
                {"r": result.run_id})
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "bars": bars,
        "agents": agents,
        "best_seconds": round(best, 3),
        "bars_per_second": round(bars / best),
        "bars_per_cpu_second": round(bars / best_cpu),
        "decisions": counts[1],
        "fills": counts[0],
        "peak_rss_mb": round(peak_mb, 1),
        "path": counts[2],
    }


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def sweep_scaling(sweep_path: str, workers: tuple[int, ...] = (1, 2)) -> list[dict[str, Any]]:
    """Runs per minute of a sweep against the number of local workers, each into a fresh
    temporary store: wall time of the run phase (pool start-up included), the same from the
    first run's start to the last run's end (steady state), and the CPU time
    of the driver and its workers per run, which on a shared machine says what the wall
    time cannot (a machine busy with other work stretches wall time, not CPU time). The
    1-minute load average is read before and after each measurement."""
    import os

    from research.sweep import load_sweep
    from research.sweep_driver import execute_sweep, opened, plan_sweep
    from research.sweep_executors import executor_for

    sweep = load_sweep(sweep_path)
    rows = []
    for n in workers:
        with tempfile.TemporaryDirectory() as tmp, opened(str(Path(tmp) / "s.duckdb")) as store:
            plan = plan_sweep(store, sweep)
            load_before = os.getloadavg()[0]
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = time.process_time()
            start = time.perf_counter()
            execute_sweep(store, plan, executor_for(n, None))
            wall = time.perf_counter() - start
            driver_cpu = time.process_time() - cpu
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            worker_cpu = (after.ru_utime + after.ru_stime) - (children.ru_utime
                                                              + children.ru_stime)
            runs = len(plan.todo)
            span = one_row(store.con, "SELECT epoch(max(finished_at)) - epoch(min(started_at))"
                                      " FROM runs")[0]
            rows.append({
                "workers": n, "runs": runs, "wall_s": round(wall, 1),
                "runs_per_min": round(runs / wall * 60, 1),
                # from the first run's start to the last one's end: no pool start-up
                "steady_runs_per_min": round(runs / span * 60, 1),
                "cpu_s_per_run": round((driver_cpu + worker_cpu) / runs, 3),
                "driver_cpu_s_per_run": round(driver_cpu / runs, 3),
                "load_before": round(load_before, 2),
                "load_after": round(os.getloadavg()[0], 2),
            })
    return rows


def regime_matrix_timing(sweep_path: str, db: str, top: int = 10,
                         repeat: int = 5) -> dict[str, Any]:
    """Seconds to compute the regime matrix of a stored sweep's ``top`` best parameter
    sets, as ``quorum sweep --out`` does (without drawing it): best and median of
    ``repeat``, and the 1-minute load average before. The store is opened read-only."""
    import os

    import duckdb

    from reports.regime_matrix import regime_matrix
    from reports.sweep import rank_param_sets, sweep_matrix_runs, sweep_members
    from research.sweep import RANK_METRICS, load_sweep

    sweep = load_sweep(sweep_path)
    load = os.getloadavg()[0]
    with duckdb.connect(db, read_only=True) as con:
        members = sweep_members(con, sweep.sweep_id)
        ranked = rank_param_sets(members, [(name, RANK_METRICS[name])
                                           for name in sweep.config.rank_by],
                                 sweep.config.aggregate)
        runs, labels = sweep_matrix_runs(ranked, members, top)
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            matrix = regime_matrix(con, runs, row_labels=labels)
            times.append(time.perf_counter() - start)
    times.sort()
    return {"runs": len(runs), "rows": len(matrix["rows"]), "best_s": round(times[0], 3),
            "median_s": round(times[len(times) // 2], 3),
            "ms_per_run": round(1e3 * times[0] / max(len(runs), 1), 2), "load_1min": load}
