"""Report rendering time under pytest-benchmark (disabled by default: one smoke round).

The target: the report of a 1,000,000-bar run renders in under 10 s (1 and 4 agents: the
benchmark scenario of ``quorum bench``). Measure it with

    QUORUM_REPORT_BARS=1000000 .venv/bin/python -m pytest \\
        tests/perf/test_report_render.py --benchmark-enable

(the run itself is generated first, untimed). No timed assertions.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from quorum.bench import bench_scenario
from reports.execution import execution_frame
from reports.report import write_report
from sim.config import parse_scenario
from sim.runner import run_scenario
from sim.store import DuckDBStore

BARS = int(os.environ.get("QUORUM_REPORT_BARS", "20000"))


@pytest.mark.parametrize("agents", [1, 4])
def test_report_render(benchmark, tmp_path: Path, agents: int) -> None:
    # 4 agents: 42% of bars make a decision and 515k signals per million bars, the
    # heaviest input for the agreement and per-agent (shadow) figures
    config = parse_scenario(bench_scenario(BARS, agents), "bench")
    with DuckDBStore(tmp_path / "bench.duckdb") as store:
        run_id = run_scenario(config, store).run_id
        report = benchmark.pedantic(lambda: write_report(store.con, run_id, tmp_path / "out"),
                                    rounds=3, iterations=1)
        with_execution = execution_frame(store.con, run_id) is not None
    # 7 figures, and the execution one when the store has its columns
    assert report.html.is_file() and len(report.pngs) == 7 + with_execution
