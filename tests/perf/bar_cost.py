"""Cost per bar of the throughput bench's scenario (``quorum bench throughput``), in
counts no other process on the machine moves.

``--opcodes``: Python bytecodes and calls per bar (``sys.settrace``; the second run of the
process, so imports and first-call set-up are not counted; C work is not counted either).
Without it: one run, for a whole-process instruction count under callgrind, taken at two
bar counts so that start-up cancels::

    cd TREE && PYTHONPATH=TREE PY tests/perf/bar_cost.py --bars 20000 --agents 4 --opcodes
    cd TREE && PYTHONPATH=TREE valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        PY tests/perf/bar_cost.py --bars 20000 --agents 4      # and --bars 2000

It imports only ``sim`` and ``quorum.bench``, so the same file measures another tree.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from quorum.bench import bench_scenario
from sim.config import parse_scenario
from sim.runner import run_scenario
from sim.store import DuckDBStore


def opcodes(bars: int, agents: int) -> dict[str, Any]:
    config = parse_scenario(bench_scenario(bars, agents), "bench")
    ops = calls = 0

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        nonlocal ops, calls
        frame.f_trace_opcodes = True
        if event == "opcode":
            ops += 1
        elif event == "call":
            calls += 1
        return tracer

    with tempfile.TemporaryDirectory() as tmp, DuckDBStore(Path(tmp) / "b.duckdb") as store:
        run_scenario(config, store)
        sys.settrace(tracer)
        try:
            run_scenario(config, store)
        finally:
            sys.settrace(None)
    return {"bars": bars, "agents": agents, "bytecodes_per_bar": round(ops / bars, 1),
            "python_calls_per_bar": round(calls / bars, 2)}


def once(bars: int, agents: int) -> None:
    config = parse_scenario(bench_scenario(bars, agents), "bench")
    with tempfile.TemporaryDirectory() as tmp, DuckDBStore(Path(tmp) / "b.duckdb") as store:
        run_scenario(config, store)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=20_000)
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--opcodes", action="store_true")
    args = parser.parse_args()
    if args.opcodes:
        print(json.dumps(opcodes(args.bars, args.agents)))
    else:
        once(args.bars, args.agents)


if __name__ == "__main__":
    main()
