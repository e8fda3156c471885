"""``quorum bench SCENARIO``: latency per stage and throughput of the user's own pipeline.

Every measurement runs ``quorum/bench_driver.py`` in a fresh process (see its docstring):
the same code measures this tree, another commit's exported tree (``--against COMMIT``)
or another scenario (``--against FILE``), and each side's peak memory is its own. The
``--stress`` grid replicates the scenario's agents and symbols and charts how the cost
per bar grows.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from quorum.outcomes import RunFailed
from sim.config import load_scenario
from sim.config_base import ConfigError

ROOT = Path(__file__).resolve().parents[1]
DRIVER = Path(__file__).with_name("bench_driver.py")
# Run the driver file with the measured tree first on sys.path (cwd and PYTHONPATH), so
# that tree's ``sim`` is the one imported.
_BOOT = ("import runpy, sys; sys.argv = sys.argv[1:]; "
         "runpy.run_path(sys.argv[0], run_name='__main__')")
RATIO_KEYS = ("bars_per_s", "decisions_per_s", "orders_per_s", "best_s", "peak_rss_mb")


def measure(scenario: str | Path, *, repeat: int = 3, warmup: int = 1, stages: bool = True,
            agents: int = 1, symbols: int = 1, bars: int | None = None,
            tree: Path | None = None) -> dict[str, Any]:
    """One bench of ``scenario`` by the code in ``tree`` (this checkout by default)."""
    spec = {"scenario": str(Path(scenario).resolve()), "repeat": repeat, "warmup": warmup,
            "stages": stages, "agents": agents, "symbols": symbols, "bars": bars}
    root = tree or ROOT
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.run([sys.executable, "-c", _BOOT, str(DRIVER), json.dumps(spec)],
                          cwd=root, env=env, capture_output=True, text=True, check=False)
    lines = proc.stdout.strip().splitlines()
    try:
        report = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        report = {}
    if proc.returncode or "error" in report or not report:
        why = report.get("error") or (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RunFailed(f"bench of {scenario} on {root}: {why}")
    return report


def check_scenario(path: str | Path) -> None:
    """Bad input is found here, in this process, as one line (exit 2)."""
    load_scenario(path)


def export_commit(ref: str, into: Path) -> tuple[str, Path]:
    """``ref`` of this repository exported (``git archive``) into ``into``: the commit's
    full hash and the tree. Nothing in the repository (branches, worktrees) changes."""
    rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", "--quiet",
                          f"{ref}^{{commit}}"], capture_output=True, text=True, check=False)
    if rev.returncode:
        raise ConfigError(f"--against {ref!r}: neither a scenario file nor a commit of "
                          f"{ROOT}")
    sha = rev.stdout.strip()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", sha],
                             capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return sha, into


def against(scenario: str, ref: str, **options: Any) -> dict[str, Any]:
    """This tree's bench of ``scenario`` and the same bench by commit ``ref`` (or of the
    scenario file ``ref`` by this tree), in one run, with the ratios this / ref."""
    check_scenario(scenario)
    if Path(ref).is_file():
        check_scenario(ref)
        other = measure(ref, **options)
        label = str(ref)
        base = measure(scenario, **options)
    else:
        with tempfile.TemporaryDirectory(prefix="quorum-bench-") as tmp:
            sha, tree = export_commit(ref, Path(tmp))
            label = f"{ref} ({sha[:10]})"
            # alternate sides so that a machine getting busier does not favour one
            other = measure(scenario, tree=tree, **options)
            base = measure(scenario, **options)
    return {"this": base, "against": label, "other": other, "ratio": ratios(base, other)}


def ratios(base: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """this / other for the throughput figures and for each common stage's p50 and p99."""
    out: dict[str, Any] = {k: _ratio(base.get(k), other.get(k)) for k in RATIO_KEYS}
    for name, st in base.get("stages", {}).items():
        theirs = other.get("stages", {}).get(name)
        if theirs:
            out[f"{name} p50"] = _ratio(st.get("p50_us"), theirs.get("p50_us"))
            out[f"{name} p99"] = _ratio(st.get("p99_us"), theirs.get("p99_us"))
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def parse_stress(items: Sequence[str]) -> tuple[list[int], list[int]]:
    """``agents=1,2,4 symbols=1,4`` -> the two factor lists (1 when not given)."""
    grid = {"agents": [1], "symbols": [1]}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or key not in grid:
            raise ConfigError(f"--stress {item!r}: expected agents=N,N,... or symbols=N,N,...")
        try:
            grid[key] = [int(v) for v in values.split(",") if v]
        except ValueError:
            raise ConfigError(f"--stress {item!r}: factors must be whole numbers") from None
        if not grid[key] or min(grid[key]) < 1:
            raise ConfigError(f"--stress {item!r}: factors must be >= 1")
    return grid["agents"], grid["symbols"]


def stress(scenario: str, agents: Sequence[int], symbols: Sequence[int], out: Path, *,
           bars: int | None = None, repeat: int = 1, warmup: int = 0) -> tuple[
               list[dict[str, Any]], Path, Path]:
    """The bench on each (agents, symbols) replication factor: rows, and the CSV and PNG."""
    check_scenario(scenario)
    rows = []
    for s in symbols:
        for a in agents:
            r = measure(scenario, repeat=repeat, warmup=warmup, stages=False, agents=a,
                        symbols=s, bars=bars)
            rows.append({
                "agents_x": a, "symbols_x": s, "agents": r["agents"], "symbols": r["symbols"],
                "bars": r["bars"], "best_s": r["best_s"],
                "us_per_bar": round(1e6 * r["best_s"] / max(r["bars"], 1), 3),
                "bars_per_s": r["bars_per_s"], "decisions_per_s": r["decisions_per_s"],
                "orders_per_s": r["orders_per_s"], "peak_rss_mb": r["peak_rss_mb"]})
    out.mkdir(parents=True, exist_ok=True)
    csv_path, png_path = out / "bench_stress.csv", out / "bench_stress.png"
    with csv_path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    _chart(rows, png_path)
    return rows, csv_path, png_path


def _chart(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (cost, memory) = plt.subplots(1, 2, figsize=(10, 4))
    for s in sorted({r["symbols_x"] for r in rows}):
        line = [r for r in rows if r["symbols_x"] == s]
        label = f"{line[0]['symbols']} symbols"
        cost.plot([r["agents"] for r in line], [r["us_per_bar"] for r in line], "o-",
                  label=label)
        memory.plot([r["agents"] for r in line], [r["peak_rss_mb"] for r in line], "o-",
                    label=label)
    cost.set(xlabel="agents", ylabel="µs per bar (wall, best run)", title="cost per bar")
    memory.set(xlabel="agents", ylabel="MB", title="peak resident memory")
    for ax in (cost, memory):
        ax.set_xscale("log", base=2)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def stage_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The terminal table of per-stage latency."""
    return [{"stage": name, **{k: v for k, v in st.items()}}
            for name, st in report.get("stages", {}).items()]


def summary_row(report: dict[str, Any]) -> dict[str, Any]:
    keys = ("name", "agents", "symbols", "bars", "decisions", "orders", "best_s",
            "bars_per_s", "decisions_per_s", "orders_per_s", "peak_rss_mb")
    return {k: report.get(k) for k in keys}


def live_fake(bars: int) -> dict[str, Any]:
    """``quorum bench live --fake``: market event to order on the live path against the
    fake Hyperliquid, as ``tests/perf/test_live_latency.py`` measures it (event to bar in
    the engine, event to order, feed to order), with the engine's stages timed as above.
    The fake exchange is test code: this needs the source checkout."""
    sys.path.insert(0, str(ROOT))
    try:
        import tests.perf.test_live_latency as bench_live
    except ImportError as exc:
        raise ConfigError(f"bench live --fake needs the source checkout (tests/fakes): "
                          f"{exc}") from None
    from array import array

    from quorum.bench_driver import instrument, percentiles

    stages: dict[str, array] = {}
    plain = bench_live.LiveRunner

    class TimedRunner(plain):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            instrument(self.engine, self.recorder.store, stages)

    bench_live.LiveRunner = TimedRunner  # type: ignore[misc]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            to_bar, to_order, feed_to_order = bench_live.measure(Path(tmp), bars)
    finally:
        bench_live.LiveRunner = plain  # type: ignore[misc]
    figures = {name: percentiles(array("q", values)) for name, values in (
        ("event to bar in the engine", to_bar), ("event to order", to_order),
        ("feed to order (client side)", feed_to_order))}
    return {"bars": bars, "figures": figures,
            "stages": {name: percentiles(v) for name, v in stages.items()}}


def cli(args: Any, print_table: Any, echo: Any) -> int:
    """The ``quorum bench SCENARIO`` and ``quorum bench live`` commands."""
    report: dict[str, Any]
    if args.stress and args.against:
        raise ConfigError("bench: --stress and --against do not combine; run them one at a "
                          "time")
    if args.which == "live":
        if not args.fake:
            raise ConfigError("bench live: only --fake is supported (the fake exchange)")
        report = live_fake(args.bars or 1_000)
        print_table([{"figure": k, **v} for k, v in report["figures"].items()],
                    title=f"live path, fake exchange, {report['bars']} bars")
        print_table(stage_rows(report), title="engine stages (µs per call)")
    elif args.stress:
        a, s = parse_stress(args.stress)
        rows, csv_path, png_path = stress(args.which, a, s, Path(args.out), bars=args.bars,
                                          repeat=args.repeat, warmup=args.warmup)
        report = {"stress": rows}
        print_table(rows, title=f"stress: {args.which}")
        echo(f"chart: {png_path} ({csv_path.name} alongside)")
    elif args.against:
        report = against(args.which, args.against, repeat=args.repeat, warmup=args.warmup,
                         bars=args.bars)
        print_table([summary_row(report["this"]), summary_row(report["other"])],
                    title=f"this tree / {report['against']}")
        print_table([{"figure": k, "this / other": v} for k, v in report["ratio"].items()],
                    title="ratio")
    else:
        check_scenario(args.which)
        report = measure(args.which, repeat=args.repeat, warmup=args.warmup, bars=args.bars)
        print_table([summary_row(report)], title=f"bench: {args.which}")
        print_table(stage_rows(report), title="stages (µs per call)")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1))
        echo(f"json: {args.json}")
    return 0
