"""Regime generation speed under pytest-benchmark (disabled by default; no timed assertions).

By default each regime runs once on 100,000 bars as a smoke test. The target is 1,000,000
bars of any regime in under 2 s on the 2-core CI machine; measure it with

    REGIME_BENCH_BARS=1000000 .venv/bin/python -m pytest \\
        tests/perf/test_regime_generation.py --benchmark-enable

(best of 3 rounds per regime and generator version, one symbol, the default 8 substeps
per bar).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from sim.regimes.generators import REGIMES, generate

BARS = int(os.environ.get("REGIME_BENCH_BARS", "100000"))


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("regime", REGIMES)
def test_generate_regime(benchmark, regime: str, version: int) -> None:
    bars = benchmark.pedantic(
        lambda: generate(regime, BARS, np.random.default_rng(0), version=version), rounds=3,
        iterations=1)
    assert len(bars[0]) == BARS
