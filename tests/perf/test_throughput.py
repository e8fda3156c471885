"""Pipeline throughput under pytest-benchmark.

Disabled by default (``--benchmark-disable`` in pyproject: each runs once as a smoke test).
Measure with ``pytest tests/perf --benchmark-enable``; the headline figures come from
``quorum bench throughput`` and are recorded in BENCHMARKS.md. No timed assertions.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from quorum.bench import bench_scenario
from sim.config import parse_scenario
from sim.runner import run_scenario
from sim.store import DuckDBStore

BARS = 100_000


@pytest.mark.parametrize("agents", [1, 4])
def test_pipeline_throughput(benchmark, tmp_path: Path, agents: int) -> None:
    config = parse_scenario(bench_scenario(BARS, agents), "bench")
    with DuckDBStore(tmp_path / "bench.duckdb") as store:
        result = benchmark.pedantic(lambda: run_scenario(config, store), rounds=3, iterations=1)
        assert result.bars == BARS
        rows = store.con.execute(
            "SELECT count(*) FROM equity WHERE run_id = ?", [result.run_id]
        ).fetchone()[0]
        assert rows == BARS  # one equity row per bar: every bar went through and was stored
