"""One side of ``quorum bench SCENARIO``, run in its own process.

Runs a scenario ``repeat`` times after ``warmup`` untimed runs, into a temporary DuckDB
store, and prints one JSON object: wall time per run, bars, decisions and orders, the
process's peak resident memory, and with ``stages`` the latency of every call into each
stage of the pipeline, taken from ``repeat`` further runs with timing wrappers installed.

It imports only ``sim`` and the standard library, so ``--against COMMIT`` runs this very
file on another commit's exported tree (``PYTHONPATH`` pointing there): both sides are
measured by the same code. A fresh process per side also makes the peak memory that
side's own. The timing wrappers are installed on one run's objects (never on classes),
after the engine is built, so a normal run pays nothing for them; the throughput figures
come from the runs without them.

Usage: ``python bench_driver.py SPEC_JSON`` (see ``BenchSpec`` keys in ``main``).
"""

from __future__ import annotations

import copy
import gc
import inspect
import json
import resource
import sys
import tempfile
import time
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sim.sql import one_row

_REPLICATED_SOURCE_KINDS = {"gbm", "regime", "calibrated"}


# -- replication (the --stress grid) -------------------------------------------------------
def replicate(raw: dict[str, Any], agents: int = 1, symbols: int = 1,
              bars: int | None = None) -> dict[str, Any]:
    """The scenario with every agent ``agents`` times and every symbol ``symbols`` times
    (copies named ``NAME_2``, ...; a copied symbol is a copy of its data source, so a
    generated one draws its own path), and generated sources cut or grown to ``bars``."""
    raw = copy.deepcopy(raw)
    sources = raw.get("data", [])
    if bars is not None:
        for src in sources:
            if "bars" in src or src.get("kind") in _REPLICATED_SOURCE_KINDS:
                src["bars"] = bars
    renamed: dict[str, list[str]] = {}
    if symbols > 1:
        grown = []
        for src in sources:
            grown.append(src)
            for i in range(2, symbols + 1):
                twin = copy.deepcopy(src)
                if "symbol" in twin:
                    twin["symbol"] = f"{src['symbol']}_{i}"
                elif twin.get("symbols"):
                    twin["symbols"] = [f"{s}_{i}" for s in src["symbols"]]
                else:
                    raise ValueError("--stress symbols: a data source names no symbols")
                grown.append(twin)
        raw["data"] = grown
        names = [s for src in sources for s in ([src["symbol"]] if "symbol" in src
                                                 else src.get("symbols", []))]
        renamed = {s: [s] + [f"{s}_{i}" for i in range(2, symbols + 1)] for s in names}

    def widen(listed: list[str] | None) -> list[str] | None:
        return None if listed is None else [t for s in listed for t in renamed.get(s, [s])]

    agent_rows = raw.get("agents", [])
    for agent in agent_rows:
        agent["symbols"] = widen(agent.get("symbols"))
        if agent["symbols"] is None:
            del agent["symbols"]
    raw["agents"] = [
        {**copy.deepcopy(a), "name": a["name"] if i == 1 else f"{a['name']}_{i}"}
        for a in agent_rows for i in range(1, agents + 1)]
    for venue in raw.get("venues", []):
        venue["symbols"] = widen(venue["symbols"])
        rules = venue.get("instruments")
        if rules:
            venue["instruments"] = {t: rules[s] for s in rules for t in renamed.get(s, [s])}
    risk = raw.get("risk", {})
    if risk.get("allowed_symbols") is not None:
        risk["allowed_symbols"] = widen(risk["allowed_symbols"])
    permissions = risk.get("agents")
    if permissions:
        risk["agents"] = {
            (name if i == 1 else f"{name}_{i}"): {**p, **({"allowed_symbols": widen(
                p["allowed_symbols"])} if p.get("allowed_symbols") is not None else {})}
            for name, p in permissions.items() for i in range(1, agents + 1)}
    return raw


# -- stage timing ----------------------------------------------------------------------------
def _timed(fn: Callable[..., Any], samples: array) -> Callable[..., Any]:
    clock = time.perf_counter_ns
    record = samples.append

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = clock()
        try:
            return fn(*args, **kwargs)
        finally:
            record(clock() - start)

    return wrapper


class _Proxy:
    """Stands in for an object whose class has ``__slots__`` (no instance attributes to
    patch): timed methods are its own, everything else is forwarded."""

    def __init__(self, target: Any, methods: dict[str, Callable[..., Any]]) -> None:
        object.__setattr__(self, "_target", target)
        for name, fn in methods.items():
            object.__setattr__(self, name, fn)

    def __getattr__(self, name: str) -> Any:
        return getattr(object.__getattribute__(self, "_target"), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(object.__getattribute__(self, "_target"), name, value)


def _patch(obj: Any, names: tuple[str, ...], samples: array) -> Any:
    """``obj`` with ``names`` timed into ``samples``: patched on the instance, or a proxy."""
    timed = {n: _timed(getattr(obj, n), samples) for n in names if hasattr(obj, n)}
    try:
        for name, fn in timed.items():
            setattr(obj, name, fn)
        return obj
    except AttributeError:
        return _Proxy(obj, timed)


# The stages and what is timed in each (a method missing on an older commit is skipped).
STAGE_METHODS: dict[str, tuple[str, ...]] = {
    "consensus": ("resolve",),
    "policy": ("target_exposure", "order_quantity"),
    "risk": ("check",),
    # legs: what the desk routes with; commits before it had only route_legs (timed
    # instead, never both: route_legs calls legs)
    "router": ("legs",),
    # _reach: a leg reaching its venue, queued (_arrive calls it) or delivered directly;
    # commits before it had only _arrive (timed instead, never both: one is in the other)
    "venue/matching": ("_reach", "venue_open", "venue_path", "trade"),
    # the inserts, wherever they run (a backtest's appends run behind it on a thread of
    # their own, where ``append`` only hands a batch over); ``append`` on older commits
    "store": ("insert_batch",),
}


def instrument(engine: Any, store: Any, stages: dict[str, array]) -> None:
    """Install timing wrappers on one built engine's components and on the store. A
    component this engine does not have where expected (another commit's layout) is left
    alone: its stage is missing from the report rather than timed wrongly."""
    def samples(name: str) -> array:
        return stages.setdefault(name, array("q"))

    calls = getattr(engine, "_agent_calls", None)
    agents = getattr(engine, "agents", ())
    if isinstance(calls, list) and len(calls) == len(agents):
        engine._agent_calls = [tuple(
            (pos, _timed(slot.agent.on_bar, samples(f"agent {slot.name}")))
            for pos, slot in enumerate(slots)) for slots in agents]
    desk = getattr(engine, "desk", None)
    for owner, attr, stage in ((engine, "consensus", "consensus"), (engine, "policy", "policy"),
                               (desk, "risk", "risk"), (desk, "router", "router")):
        part = getattr(owner, attr, None)
        if part is not None:
            names = STAGE_METHODS[stage]
            if stage == "router" and not hasattr(part, "legs"):
                names = ("route_legs",)
            setattr(owner, attr, _patch(part, names, samples(stage)))
    for farm in getattr(engine, "farms", ()):  # a farm run: each farm's own consensus and
        for attr in ("consensus", "policy"):  # policy count in the same stages
            setattr(farm, attr, _patch(getattr(farm, attr), STAGE_METHODS[attr],
                                       samples(attr)))
    if desk is not None:
        names = STAGE_METHODS["venue/matching"]
        if not hasattr(desk, "_reach"):
            names = ("_arrive", *names[1:])
        _patch(desk, names, samples("venue/matching"))
    _time_store(store, samples("store"))


def _time_store(store: Any, samples: array) -> None:
    """The store stage: its inserts (``insert_batch``, or ``append`` on an older commit),
    timed once per store: ``instrument`` runs at each engine build, and a second wrapper
    around the first would count every insert twice."""
    names = STAGE_METHODS["store"] if hasattr(store, "insert_batch") else ("append",)
    if not any(name in vars(store) for name in names):
        _patch(store, names, samples)


def untime_store(store: Any) -> None:
    """The store's own methods again, after ``instrument``."""
    for name in (*STAGE_METHODS["store"], "append"):
        vars(store).pop(name, None)


def percentiles(values: array) -> dict[str, float]:
    import numpy as np

    v = np.frombuffer(values, dtype=np.int64) / 1e3  # microseconds
    if not len(v):
        return {"calls": 0}
    p50, p90, p99 = np.percentile(v, [50, 90, 99])
    return {"calls": len(v), "p50_us": round(float(p50), 3), "p90_us": round(float(p90), 3),
            "p99_us": round(float(p99), 3), "max_us": round(float(v.max()), 3),
            "total_s": round(float(v.sum()) / 1e6, 4)}


# -- the bench -------------------------------------------------------------------------------
def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench(spec: dict[str, Any]) -> dict[str, Any]:
    import sim.runner as runner
    from sim.config import load_scenario, parse_scenario
    from sim.store import DuckDBStore

    path = Path(spec["scenario"])
    config = load_scenario(path)
    if spec.get("agents", 1) > 1 or spec.get("symbols", 1) > 1 or spec.get("bars"):
        raw = config.model_dump(mode="json", exclude_unset=True)
        config = parse_scenario(replicate(raw, spec.get("agents", 1), spec.get("symbols", 1),
                                          spec.get("bars")), str(path))
    repeat, warmup = spec.get("repeat", 3), spec.get("warmup", 1)
    walls: list[float] = []
    cpus: list[float] = []
    stages: dict[str, array] = {}
    # The timed stages are per call, so the instrumented runs walk every bar: the fast
    # path (sim.fast_path, where this tree has it) calls no agent's on_bar.
    per_bar = ({"fast_path": False} if "fast_path" in inspect.signature(
        runner.run_scenario).parameters else {})
    with tempfile.TemporaryDirectory() as tmp, DuckDBStore(str(Path(tmp) / "b.duckdb")) as store:
        def one(**kwargs: Any) -> tuple[Any, float, float]:
            gc.collect()
            cpu, start = time.process_time(), time.perf_counter()
            result = runner.run_scenario(config, store, **kwargs)
            return result, time.perf_counter() - start, time.process_time() - cpu

        for _ in range(warmup):
            one()
        for _ in range(repeat):
            result, wall, cpu = one()
            if result.status != "completed":
                raise RuntimeError(f"run {result.run_id} ended {result.status}")
            walls.append(wall)
            cpus.append(cpu)
        peak = _peak_rss_mb()  # before the instrumented runs keep their samples
        decisions, orders, fills = one_row(
            store.con, "SELECT (SELECT count(*) FROM decisions WHERE run_id = $r),"
            " (SELECT count(*) FROM orders WHERE run_id = $r),"
            " (SELECT count(*) FROM fills WHERE run_id = $r)",
            {"r": result.run_id})
        if spec.get("stages", True):
            build = runner.build_engine

            def built(*args: Any, **kwargs: Any) -> Any:
                engine = build(*args, **kwargs)
                instrument(engine, store, stages)
                return engine

            runner.build_engine = built
            try:
                for _ in range(repeat):
                    one(**per_bar)
            finally:
                runner.build_engine = build
                untime_store(store)
    best = min(walls)
    bars = result.bars
    return {
        "scenario": str(path), "name": config.name, "repeat": repeat, "warmup": warmup,
        "agents": len(config.agents), "symbols": sum(1 for _ in _symbols(config)),
        "bars": bars, "decisions": decisions, "orders": orders, "fills": fills,
        "best_s": round(best, 4), "median_s": round(sorted(walls)[len(walls) // 2], 4),
        "cpu_s": round(min(cpus), 4),
        "bars_per_s": round(bars / best, 1), "decisions_per_s": round(decisions / best, 1),
        "orders_per_s": round(orders / best, 1), "peak_rss_mb": round(peak, 1),
        "stages": {name: percentiles(v) for name, v in stages.items()},
    }


def _symbols(config: Any) -> list[str]:
    out: list[str] = []
    for src in config.data:
        out.extend(getattr(src, "symbols", None) or [getattr(src, "symbol", "")])
    return out


def main(argv: list[str]) -> int:
    """``argv[1]``: a JSON spec with ``scenario`` (a path) and optionally ``repeat``,
    ``warmup``, ``stages`` (bool), ``agents``, ``symbols`` (replication), ``bars``."""
    try:
        report = bench(json.loads(argv[1]))
    except Exception as exc:  # one line for the parent to show, never a traceback
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 1
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
