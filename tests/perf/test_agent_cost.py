"""What each built-in agent costs per bar, under pytest-benchmark.

Disabled by default (``--benchmark-disable`` in pyproject: each runs once as a smoke
test). Measure with::

    .venv/bin/python -m pytest tests/perf/test_agent_cost.py --benchmark-enable \\
        --benchmark-columns=min,median,max

A round drives a fresh agent (default parameters) over 200,000 seeded GBM bars through a
``MarketView``, updating the view as ``Engine.on_bar`` does and with the GC thresholds
``Engine.run`` sets; ``extra_info`` holds the best round in µs per bar. That includes the
loop and view update (~0.05 µs per bar on the CI machine): no engine, consensus or store.
Targets: classic agents <= 2 µs per bar, SMC <= 6 µs. No timed assertions.
"""

from __future__ import annotations

import numpy as np
import pytest

from sim.agents.base import Agent, build_agent
from sim.data import gbm_bars
from sim.engine import fewer_gc_passes
from sim.view import MarketView
from tests._agents import replay

BARS = 200_000
KINDS = ["sma_crossover", "zscore_reversion", "ema_crossover", "donchian_breakout",
         "bollinger_reversion", "rsi", "momentum", "smc"]


@pytest.fixture(scope="module")
def bars() -> tuple[MarketView, list[tuple[float, ...]]]:
    data = gbm_bars("GBM", BARS, np.random.default_rng(1), start_ns=0,
                    interval_ns=60 * 10**9)
    rows = list(zip(*(data.column(c).tolist()
                      for c in ("ts", "open", "high", "low", "close", "volume")), strict=True))
    return MarketView(data), rows


def run(agent: Agent, view: MarketView, rows: list[tuple[float, ...]]) -> int:
    """Drive ``agent`` over every row, with the GC settings ``Engine.run`` uses; return how
    many signals it gave."""
    with fewer_gc_passes():
        return sum(signal is not None for signal in replay(agent, view, rows))


@pytest.mark.parametrize("kind", KINDS)
def test_agent_cost_per_bar(benchmark, bars, kind: str) -> None:  # type: ignore[no-untyped-def]
    view, rows = bars

    def fresh() -> tuple[tuple[Agent, MarketView, list[tuple[float, ...]]], dict]:
        return (build_agent(kind, {}, np.random.default_rng(0)), view, rows), {}

    signals = benchmark.pedantic(run, setup=fresh, rounds=5, iterations=1)
    assert 0 < signals < BARS
    if benchmark.stats is not None:  # enabled: record the figure the issue asks for
        benchmark.extra_info["us_per_bar"] = round(benchmark.stats.stats.min / BARS * 1e6, 3)
