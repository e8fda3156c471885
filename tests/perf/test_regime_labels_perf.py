"""Regime labelling speed under pytest-benchmark (disabled by default; no timed assertions).

Measure with ``pytest tests/perf/test_regime_labels_perf.py --benchmark-enable``.
"""

from __future__ import annotations

import numpy as np

from sim.data import gbm_bars
from sim.regimes.labels import LABELS, label_regimes

BARS = 1_000_000


def test_label_a_million_bars(benchmark) -> None:
    bars = gbm_bars("X", BARS, np.random.default_rng(0), start_ns=0, interval_ns=60 * 10**9)
    labels = benchmark.pedantic(lambda: label_regimes(bars.ts, bars.close), rounds=5,
                                iterations=1)
    assert len(labels) == BARS and set(labels.tolist()) <= set(LABELS)
