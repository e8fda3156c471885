"""Per-order cost of the pipeline: microseconds of CPU per order, every row stored.

Two runs on the same seeded one-minute GBM bars with the same agent code and the same
per-bar work differ only in how often they trade: SMA 2/3 (an order every few bars) and
SMA 10/50 (the issue 19 strategy). The SMA indicator costs the same per bar whatever its
windows, so the difference in CPU time over the difference in orders is what one more
order costs end to end: its signal, decision and votes rows, sizing, the risk check, the
route, the fill, the ledger, the order's lifecycle and its rows in the store. Best CPU
time of ``--repeat`` alternating rounds.

It imports only ``sim`` and the standard library, so the same file measures another tree
(``PYTHONPATH=TREE python tests/perf/order_cost.py``): a same-run A/B against main.
``--peak`` reports the peak resident memory of one run of SMA 10/50 instead (a fresh
process per tree), ``--opcodes`` the Python bytecodes and calls per order (deterministic:
use a few thousand bars), and ``--profile FILE`` writes a cProfile of one run of SMA 2/3.
``--per-bar`` measures the per-bar loop instead of the event-skipping fast path (a tree
without a fast path runs its per-bar loop either way). ``--memory`` hands the runs' batches
to a store that only counts their rows (``CountingStore``): the CPU per order of the
pipeline's own work (the order's lifecycle, its events, its rows built as Arrow batches)
without DuckDB's storage of those rows, which costs the same for the same rows in any tree.

``--stages`` splits the bytecodes into the order path proper (from the desk's
``submit_decision`` and the order's queued events on: risk, route, venue, fill, ledger,
lifecycle, the rows it appends), the sizing of a released decision, and the rest;
``--order-path`` times the main thread's CPU inside the engine's release of a decision
(sizing plus the order path: an immediate market order's whole life) per order.

Usage: ``python tests/perf/order_cost.py [--bars N] [--repeat R] [--per-bar]
[--memory] [--peak | --opcodes | --stages | --order-path | --run FAST,SLOW |
--profile FILE]``
"""

from __future__ import annotations

import argparse
import inspect
import json
import resource
import tempfile
from pathlib import Path
from typing import Any

from sim.config import parse_scenario
from sim.runner import run_scenario
from sim.store import DuckDBStore


def scenario(bars: int, fast: int, slow: int) -> dict[str, Any]:
    """One symbol, one long-only SMA crossover agent, all in, 10 bps fee, next-open fills."""
    return {
        "name": f"order_cost_{fast}_{slow}",
        "seed": 1,
        "data": [{"kind": "gbm", "symbol": "BTCUSD", "bars": bars, "interval": "1m"}],
        "agents": [{"name": f"sma_{fast}_{slow}", "kind": "sma_crossover",
                    "params": {"fast": fast, "slow": slow, "long_only": True}}],
        "venues": [{"name": "alpha", "symbols": ["BTCUSD"], "fee_bps": 10.0}],
    }


PATH: dict[str, Any] = {}
STORE: dict[str, Any] = {"memory": False}


class CountingStore:
    """The run store port, keeping each table's row count only (``--memory``): the
    batches are built as for any store, then dropped."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], int] = {}

    def create_run(self, run_id: str, *args: Any, **kwargs: Any) -> None:
        pass

    def append(self, run_id: str, table: str, batch: Any) -> None:
        key = (run_id, table)
        self.rows[key] = self.rows.get(key, 0) + batch.num_rows

    def finish_run(self, run_id: str, status: str, n_bars: int, error: str | None) -> None:
        if status != "completed":
            raise RuntimeError(f"run {run_id} {status}: {error}")

    def __enter__(self) -> CountingStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


def _store(path: Path) -> Any:
    """The DuckDB store at ``path``, or a ``CountingStore`` with ``--memory``."""
    return CountingStore() if STORE["memory"] else DuckDBStore(path)


def _run(config: Any, store: DuckDBStore) -> Any:
    """``run_scenario`` on the path chosen (``--per-bar``), where the tree has a choice."""
    return run_scenario(config, store, **PATH)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _orders(store: Any, run_id: str) -> int:
    if isinstance(store, CountingStore):
        return store.rows.get((run_id, "orders"), 0)
    return store.con.execute("SELECT count(*) FROM orders WHERE run_id = ?",
                             [run_id]).fetchone()[0]


def measure(bars: int, repeat: int) -> dict[str, Any]:
    configs = {key: parse_scenario(scenario(bars, *key), "order_cost")
               for key in ((2, 3), (10, 50))}
    best = {key: float("inf") for key in configs}
    orders: dict[tuple[int, int], int] = {}
    with tempfile.TemporaryDirectory() as tmp, _store(Path(tmp) / "o.duckdb") as store:
        for _ in range(repeat):
            for key, config in configs.items():
                start = _cpu()
                result = _run(config, store)
                best[key] = min(best[key], _cpu() - start)
                orders[key] = _orders(store, result.run_id)
    many, few = (2, 3), (10, 50)
    per_order = (best[many] - best[few]) / (orders[many] - orders[few])
    return {
        "bars": bars,
        "orders_sma_2_3": orders[many], "orders_sma_10_50": orders[few],
        "cpu_s_sma_2_3": round(best[many], 3), "cpu_s_sma_10_50": round(best[few], 3),
        "us_per_order": round(per_order * 1e6, 2),
        "orders_per_cpu_s": round(1.0 / per_order),
    }


def peak(bars: int) -> dict[str, Any]:
    """Peak resident memory of this process over one run of SMA 10/50 (the issue 19
    strategy), with its CPU time: run it in a fresh process per tree."""
    config = parse_scenario(scenario(bars, 10, 50), "order_cost")
    with tempfile.TemporaryDirectory() as tmp, DuckDBStore(Path(tmp) / "o.duckdb") as store:
        start = _cpu()
        result = _run(config, store)
        cpu = _cpu() - start
        orders = _orders(store, result.run_id)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"bars": bars, "strategy": "sma_10_50", "orders": orders,
            "cpu_s": round(cpu, 3), "peak_rss_mb": round(rss, 1)}


def opcodes(bars: int) -> dict[str, Any]:
    """Python bytecodes and Python-level calls executed per order (``sys.settrace``
    opcode events), after an untraced warm-up run: a cost measure that no other process
    on the machine moves. C work
    (DuckDB, numpy, pyarrow) is not counted, so it complements the CPU-time figure."""
    import sys

    with tempfile.TemporaryDirectory() as tmp, DuckDBStore(Path(tmp) / "w.duckdb") as store:
        # untraced warm-up: a process's one-time costs (the code identity's hashing, lazy
        # imports) are not per order, and would land on whichever traced run came first
        _run(parse_scenario(scenario(min(bars, 500), 2, 3), "order_cost"), store)
    counts = {}
    for key in ((2, 3), (10, 50)):
        config = parse_scenario(scenario(bars, *key), "order_cost")
        ops = calls = 0

        def tracer(frame: Any, event: str, arg: Any) -> Any:
            nonlocal ops, calls
            frame.f_trace_opcodes = True
            if event == "opcode":
                ops += 1
            elif event == "call":
                calls += 1
            return tracer

        with tempfile.TemporaryDirectory() as tmp, \
                DuckDBStore(Path(tmp) / "o.duckdb") as store:
            sys.settrace(tracer)
            try:
                result = _run(config, store)
            finally:
                sys.settrace(None)
            counts[key] = (ops, calls, _orders(store, result.run_id))
    (a, ca, na), (b, cb, nb) = counts[(2, 3)], counts[(10, 50)]
    return {"bars": bars, "orders_sma_2_3": na, "orders_sma_10_50": nb,
            "opcodes_per_order": round((a - b) / (na - nb), 1),
            "python_calls_per_order": round((ca - cb) / (na - nb), 2)}


# Where an order's work starts, in this tree and in da22740's: a frame under one of these
# is the order path proper (risk, route, venue, fill, ledger, the order's lifecycle and
# the rows it appends); under ``SIZING`` only, the release of a decision (sizing it).
ORDER_PATH = frozenset(("submit_decision", "_arrive", "_expire_order", "_timed_out",
                        "replace_working", "venue_open", "venue_path"))
SIZING = frozenset(("_release", "_open", "_release_held"))


def _staged_run(config: Any) -> tuple[list[int], int]:
    """One traced run: bytecodes per stage (order path, sizing, rest) and its orders."""
    import sys

    ops = [0, 0, 0]

    def counter(i: int) -> Any:
        def local(frame: Any, event: str, arg: Any) -> Any:
            if event == "opcode":
                ops[i] += 1
            return local
        return local

    local_tracers = [counter(i) for i in range(3)]

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        stage, f = 2, frame
        while f is not None:
            name = f.f_code.co_name
            if name in ORDER_PATH:
                stage = 0
                break
            if name in SIZING:
                stage = 1
            f = f.f_back
        return local_tracers[stage]

    with tempfile.TemporaryDirectory() as tmp, DuckDBStore(Path(tmp) / "o.duckdb") as store:
        sys.settrace(tracer)
        try:
            result = _run(config, store)
        finally:
            sys.settrace(None)
        return ops, _orders(store, result.run_id)


def stages(bars: int) -> dict[str, Any]:
    """``opcodes`` split by where the bytecodes ran: the order path proper, the sizing of
    a released decision, and the rest (the loop, agents, consensus, decisions and every
    table's flush to columns: an order's rows are appended on its path, turned into
    columns with the others)."""
    with tempfile.TemporaryDirectory() as tmp, DuckDBStore(Path(tmp) / "w.duckdb") as store:
        _run(parse_scenario(scenario(min(bars, 500), 2, 3), "order_cost"), store)
    names = ("order_path", "sizing", "rest")
    counts = {key: _staged_run(parse_scenario(scenario(bars, *key), "order_cost"))
              for key in ((2, 3), (10, 50))}
    (a, na), (b, nb) = counts[(2, 3)], counts[(10, 50)]
    per = [(x - y) / (na - nb) for x, y in zip(a, b, strict=True)]
    return {"bars": bars, "orders_sma_2_3": na, "orders_sma_10_50": nb,
            "opcodes_per_order": round(sum(per), 1),
            **{f"{name}_opcodes": round(v, 1) for name, v in zip(names, per, strict=True)}}


def order_path_cpu(bars: int, repeat: int) -> dict[str, Any]:
    """CPU time of the main thread inside ``Engine._release`` (sizing and the order
    path proper: an immediate order's whole life, in this scenario), per order, on SMA
    10/50: best of ``repeat`` runs. The wrapper's two clock reads are in every tree's
    figure alike."""
    import time

    from sim.engine import Engine

    release = Engine._release
    spent = [0]
    clock = time.thread_time_ns

    def timed(self: Any, *args: Any) -> None:
        start = clock()
        release(self, *args)
        spent[0] += clock() - start

    config = parse_scenario(scenario(bars, 10, 50), "order_cost")
    best, orders = float("inf"), 0
    Engine._release = timed  # type: ignore[method-assign]
    try:
        with tempfile.TemporaryDirectory() as tmp, \
                DuckDBStore(Path(tmp) / "o.duckdb") as store:
            for _ in range(repeat):
                spent[0] = 0
                result = _run(config, store)
                orders = _orders(store, result.run_id)
                best = min(best, spent[0] / orders)
    finally:
        Engine._release = release  # type: ignore[method-assign]
    return {"bars": bars, "strategy": "sma_10_50", "orders": orders,
            "order_path_us_per_order": round(best / 1000, 2)}


def profile(bars: int, out: str) -> None:
    import cProfile

    config = parse_scenario(scenario(bars, 2, 3), "order_cost")
    with tempfile.TemporaryDirectory() as tmp, DuckDBStore(Path(tmp) / "o.duckdb") as store:
        cProfile.runctx("run(config, store)", globals(),
                        {"config": config, "store": store, "run": _run},
                        out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--peak", action="store_true")
    parser.add_argument("--profile", metavar="FILE")
    parser.add_argument("--opcodes", action="store_true")
    parser.add_argument("--stages", action="store_true",
                        help="--opcodes split into the order path, sizing and the rest")
    parser.add_argument("--order-path", action="store_true",
                        help="CPU per order inside the engine's release of a decision")
    parser.add_argument("--run", metavar="FAST,SLOW",
                        help="one run of SMA FAST/SLOW only, printing its orders (for "
                             "callgrind: two such processes differ by the extra orders)")
    parser.add_argument("--per-bar", action="store_true",
                        help="the per-bar loop, not the fast path")
    parser.add_argument("--memory", action="store_true",
                        help="batches built but not stored (CountingStore): no DuckDB")
    args = parser.parse_args()
    STORE["memory"] = args.memory
    if args.per_bar and "fast_path" in inspect.signature(run_scenario).parameters:
        PATH["fast_path"] = False
    if args.profile:
        profile(args.bars, args.profile)
        return
    if args.run:
        fast, slow = (int(x) for x in args.run.split(","))
        config = parse_scenario(scenario(args.bars, fast, slow), "order_cost")
        with tempfile.TemporaryDirectory() as tmp, _store(Path(tmp) / "o.duckdb") as store:
            result = {"bars": args.bars, "sma": [fast, slow],
                      "orders": _orders(store, _run(config, store).run_id)}
    elif args.opcodes or args.stages:
        result = stages(args.bars) if args.stages else opcodes(args.bars)
    elif args.order_path:
        result = order_path_cpu(args.bars, args.repeat)
    else:
        result = peak(args.bars) if args.peak else measure(args.bars, args.repeat)
    result["store"] = "counting (no DuckDB)" if args.memory else "duckdb"
    print(json.dumps(result))


if __name__ == "__main__":
    main()
