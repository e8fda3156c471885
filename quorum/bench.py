"""``quorum bench throughput``: bars per second through the whole pipeline, writes included.

Times ``run_scenario`` end to end (data generation, hashing, every component, the DuckDB
writes) on seeded one-minute GBM bars, best of ``repeat`` runs, and reports the peak
resident memory of the process.
"""

from __future__ import annotations

import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from sim.config import parse_scenario
from sim.runner import run_scenario
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


def throughput(bars: int, agents: int, db: str | None = None, repeat: int = 3) -> dict[str, Any]:
    config = parse_scenario(bench_scenario(bars, agents), "bench")
    best = float("inf")
    with tempfile.TemporaryDirectory() as tmp:
        path = db or str(Path(tmp) / "bench.duckdb")
        with DuckDBStore(path) as store:
            for _ in range(repeat):
                start = time.perf_counter()
                result = run_scenario(config, store)
                best = min(best, time.perf_counter() - start)
            counts = store.con.execute(
                "SELECT (SELECT count(*) FROM fills WHERE run_id = $r),"
                " (SELECT count(*) FROM decisions WHERE run_id = $r)",
                {"r": result.run_id},
            ).fetchone()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "bars": bars,
        "agents": agents,
        "best_seconds": round(best, 3),
        "bars_per_second": round(bars / best),
        "decisions": counts[1],
        "fills": counts[0],
        "peak_rss_mb": round(peak_mb, 1),
    }
