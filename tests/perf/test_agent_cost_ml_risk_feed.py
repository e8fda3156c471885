"""Per-bar cost of the ML, risk-manager, signal-feed and external agents.

Disabled by default (``--benchmark-disable`` in pyproject: each runs once, on fewer bars,
as a smoke test). The figures for BENCHMARKS.md come from::

    .venv/bin/python -m tests.perf.test_agent_cost_ml_risk_feed

which drives each agent over 200,000 seeded one-minute GBM bars through a ``MarketView``
(as ``Engine.on_bar`` does; no engine, consensus or store), best of 3, and splits the ML
agent's time into its fits and the rest. The external agent runs in replay mode from an
in-memory log (no network), on fewer bars. No timed assertions.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from sim.agents.external import ExternalAgent, MemoryCallLog
from sim.agents.ml import MlLogistic
from sim.agents.risk_manager import RiskManager
from sim.agents.signal_feed import SignalFeed
from sim.data import SymbolBars, gbm_bars
from sim.view import MarketView
from tests._agents import bar_rows, replay

BARS = 200_000
SMOKE_BARS = 5_000


class TimedMl(MlLogistic):
    """Counts the wall time spent refitting."""

    __slots__ = ("fit_seconds",)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fit_seconds = 0.0

    def _fit(self) -> bool:
        start = time.perf_counter()
        try:
            return super()._fit()
        finally:
            self.fit_seconds += time.perf_counter() - start


def data(n: int) -> SymbolBars:
    return gbm_bars("GBM", n, np.random.default_rng(1), start_ns=0, interval_ns=60 * 10**9)


def drive(agent: Any, bars: SymbolBars) -> float:
    """Seconds to feed every bar to ``agent``."""
    view = MarketView(bars)
    rows = bar_rows(bars)
    start = time.perf_counter()
    replay(agent, view, rows)
    return time.perf_counter() - start


def feed_file(path: Path, bars: SymbolBars, every: int = 20) -> Path:
    """One signal every ``every`` bars, half of them mid-bar."""
    lines = ["timestamp,symbol,side,confidence,fund_pct"]
    for k, ts in enumerate(bars.ts[::every].tolist()):
        t = pd.Timestamp(ts + (30 * 10**9 if k % 2 else 0), tz="UTC").isoformat()
        lines.append(f"{t},GBM,{('long', 'short', 'flat')[k % 3]},0.{k % 10},0.{k % 7}")
    path.write_text("\n".join(lines) + "\n")
    return path


def replay_log(bars: SymbolBars, lookback: int, every: int) -> MemoryCallLog:
    """A log answering every request the agent will make (recorded by a stub 'service')."""
    log = MemoryCallLog()
    stub = ExternalAgent("http://127.0.0.1:9/", mode="live", lookback=lookback, every=every,
                         call_log=log)
    stub._post = lambda body: ('{"confidence":0.5,"side":"long"}', None, 1.0)  # type: ignore
    drive(stub, bars)
    return log


def figures(n: int, tmp: Path) -> list[dict[str, Any]]:
    bars = data(n)
    out: list[dict[str, Any]] = []

    def best(make: Any, label: str, bars_: SymbolBars = bars, repeat: int = 3) -> None:
        runs = []
        for _ in range(repeat):
            agent = make()
            runs.append((drive(agent, bars_), agent))
        seconds, agent = min(runs, key=lambda r: r[0])
        row = {"agent": label, "bars": len(bars_), "us_per_bar": seconds / len(bars_) * 1e6}
        if isinstance(agent, TimedMl):
            row["fits"] = agent.fits
            row["ms_per_fit"] = agent.fit_seconds / max(agent.fits, 1) * 1e3
            row["us_per_bar_outside_fits"] = (seconds - agent.fit_seconds) / len(bars_) * 1e6
        out.append(row)

    best(lambda: TimedMl(), "ml_logistic (defaults: retrain_every 50, train_window 500)")
    best(lambda: TimedMl(retrain_every=1000), "ml_logistic (retrain_every 1000)")
    best(lambda: RiskManager(), "risk_manager (historical, window 250)")
    best(lambda: RiskManager(method="worst", drawdown_window=1000),
         "risk_manager (worst of both, drawdown_window 1000)")
    path = feed_file(tmp / "feed.csv", bars)
    best(lambda: SignalFeed(str(path)), "signal_feed (a signal every 20 bars)")
    small = data(max(n // 10, 1_000))
    log = replay_log(small, 50, 1)
    best(lambda: ExternalAgent("http://127.0.0.1:9/", mode="replay", lookback=50,
                               call_log=MemoryCallLog(log.records)),
         "external (replay, lookback 50, every bar)", small)
    return out


@pytest.mark.parametrize("kind", ["ml", "risk", "feed", "external"])
def test_agent_cost_per_bar(benchmark, tmp_path: Path, kind: str) -> None:  # type: ignore[no-untyped-def]
    bars = data(SMOKE_BARS)
    if kind == "ml":
        make: Any = TimedMl
    elif kind == "risk":
        make = RiskManager
    elif kind == "feed":
        path = feed_file(tmp_path / "feed.csv", bars)
        make = lambda: SignalFeed(str(path))  # noqa: E731
    else:  # JSON-bound: fewer bars
        bars = data(SMOKE_BARS // 5)
        log = replay_log(bars, 50, 1)
        make = lambda: ExternalAgent("http://127.0.0.1:9/", mode="replay",  # noqa: E731
                                     lookback=50, call_log=MemoryCallLog(log.records))
    seconds = benchmark.pedantic(lambda: drive(make(), bars), rounds=3, iterations=1)
    assert seconds > 0


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp_dir:
        rows = figures(BARS, Path(tmp_dir))
    for row in rows:
        extra = "".join(f", {k} {v:.2f}" if isinstance(v, float) else f", {k} {v}"
                        for k, v in row.items() if k not in ("agent", "bars", "us_per_bar"))
        print(f"{row['agent']}: {row['us_per_bar']:.2f} us/bar over {row['bars']} bars{extra}")
