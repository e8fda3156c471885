"""A test agent with a batch form whose signals are drawn from a seed, not from the bars:
every side, zero and full confidences, targets or none, repeats of the standing signal
(equal objects and equal values), so the fast path's bulk votes meet every branch of
``VotingConsensus.resolve`` that they claim to reproduce."""

from __future__ import annotations

import numpy as np

from sim.agents.batch import SignalChanges
from sim.messages import FLAT, HOLD, LONG, SHORT, Signal
from sim.view import BarSource, MarketView

_BARS = 6_000


class DrawnSignals:
    def __init__(self, seed: int = 0, every: int = 3, targets: bool = True) -> None:
        rng = np.random.default_rng(seed)
        sides = (LONG, SHORT, FLAT, HOLD)
        confidences = (0.0, 0.25, 0.5, 1.0)
        table = [Signal(side, c, t if targets else None)
                 for side in sides for c in confidences for t in (None, 0.0, 0.3, 0.7)]
        self._at: dict[int, Signal] = {}
        bars = np.flatnonzero(rng.random(_BARS) < 1.0 / every)
        picks = rng.integers(0, len(table), len(bars))
        copies = rng.random(len(bars)) < 0.2
        for n, k, copy in zip(bars.tolist(), picks.tolist(), copies.tolist(), strict=True):
            sig = table[k]
            # an equal signal that is another object: the engine must see it as no change
            self._at[n + 1] = Signal(sig.side, sig.confidence, sig.target) if copy else sig

    def on_bar(self, view: MarketView) -> Signal | None:
        return self._at.get(view.n)

    def batch_signals(self, bars: BarSource) -> SignalChanges:
        n = len(bars.column("close"))
        at = sorted(k for k in self._at if k <= n)
        return SignalChanges(np.array([k - 1 for k in at], dtype=np.int64),
                             tuple(self._at[k] for k in at))
