"""Agent performance: how each agent's own signals did, per symbol, and the weights that
``performance_weighted`` consensus gives them.

All of it is updated on signal changes and recorded decisions, never per bar. An agent's
signal on a symbol is an **episode**: it starts at the close of the bar that gave it
(bar ``n``, 1-based) and ends at the close of the bar where the agent replaces it (``u``),
or at the last bar seen.

* **Hit.** A LONG (SHORT) episode is a hit when the close at its end is strictly above
  (below) the close at its start: the price moved in the signalled direction over the bars
  the signal stood. FLAT and HOLD episodes, and episodes that end on the bar they start
  (the last bar of a run), are not scored. ``hit_rate = hits / scored``.
* **Weight** (``performance_weighted``): a hit rate with exponential decay per scored
  episode and a uniform prior, ``(H + 1) / (N + 2)`` where ``H <- decay * H + hit`` and
  ``N <- decay * N + 1`` at each scored episode (``decay = 1``: plain counts). 0.5 before
  the first. It is updated when an episode ends at a replacement, so a vote at bar ``u``
  uses only closes up to ``u``. The episode still open at the end of the run is scored in
  the stored hit counts but never moves a weight.
* **Shadow PnL**: the agent trading its own signals alone, one unit of notional, no fees:
  +1 while LONG, -1 while SHORT, 0 while FLAT or HOLD, entered at the open after the
  signal's bar (index ``n`` of the 0-based bar arrays) and left at the open after the
  replacing bar (index ``u``), or at the last close. Each episode adds
  ``side * (exit / entry - 1)``; the sum is not compounded.
* **Votes** (counted by ``sim.recorder.Recorder`` from the votes it stores, in bulk at
  flush, so the decision path pays nothing): at each recorded decision, an agent with an
  opinion (its standing, unexpired signal is LONG, SHORT or FLAT) voted. When the decision
  is not HOLD it was **in the majority** if it voted for the decided side and
  **overruled** otherwise.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from typing import Any

import numpy as np

from sim.messages import HOLD, LONG, SHORT, Side

# (symbol index, slot position, signals, scored, hits, hit_rate or None, shadow_pnl, weight)
PerformanceRow = tuple[int, int, int, int, int, float | None, float, float]


class AgentPerformance:
    """Per agent per symbol figures. ``online=True`` keeps the weights current on every
    signal change (``performance_weighted`` reads them); otherwise a change costs two
    appends and everything is computed once, in bulk, by ``rows``."""

    def __init__(self, agents_per_symbol: Sequence[int], decay: float = 1.0,
                 online: bool = True) -> None:
        if not 0.0 < decay <= 1.0:
            raise ValueError(f"decay must be in (0, 1], got {decay}")
        self.decay = decay
        self.online = online
        sizes = list(agents_per_symbol)

        def grid(value: Any) -> list[list[Any]]:
            return [[value] * k for k in sizes]

        self._weights: list[list[float]] = grid(0.5)
        self._h: list[list[float]] = grid(0.0)
        self._n: list[list[float]] = grid(0.0)
        self._side: list[list[Side]] = grid(HOLD)
        self._start_close: list[list[float]] = grid(0.0)
        # Each episode's first bar and side, compactly (one pair per signal change).
        self._starts: list[list[array[int]]] = [[array("q") for _ in range(k)]
                                                for k in sizes]
        self._sides: list[list[array[int]]] = [[array("b") for _ in range(k)]
                                               for k in sizes]

    def add_slot(self, symbol: int) -> None:
        """One more agent on ``symbol`` (spawned while the run goes): its figures start
        now, at the prior."""
        self._weights[symbol].append(0.5)
        self._h[symbol].append(0.0)
        self._n[symbol].append(0.0)
        self._side[symbol].append(HOLD)
        self._start_close[symbol].append(0.0)
        self._starts[symbol].append(array("q"))
        self._sides[symbol].append(array("b"))

    def weights(self, symbol: int) -> list[float]:
        return self._weights[symbol]

    def on_signal(self, symbol: int, pos: int, side: Side, n: int, close: float) -> None:
        """Agent ``pos`` on ``symbol`` changed its signal to ``side`` at bar ``n``'s close.
        On every signal change: keep it small."""
        self._starts[symbol][pos].append(n)
        self._sides[symbol][pos].append(side)
        if not self.online:
            return
        sides = self._side[symbol]
        prev = sides[pos]
        starts = self._start_close[symbol]
        if prev is LONG or prev is SHORT:  # a directional episode ends: score it
            hit = (close - starts[pos]) * prev > 0.0
            d = self.decay
            hs, ns = self._h[symbol], self._n[symbol]
            h = hs[pos] = hs[pos] * d + hit
            k = ns[pos] = ns[pos] * d + 1.0
            self._weights[symbol][pos] = (h + 1.0) / (k + 2.0)
        sides[pos] = side
        starts[pos] = close

    def on_signals(self, symbol: int, pos: int, bars: np.ndarray, sides: np.ndarray) -> None:
        """``on_signal`` for many changes of one agent at once, in order (bar numbers and
        sides as int64 arrays); offline only (online weights move with each)."""
        if self.online:
            raise ValueError("on_signals keeps no online weights: call on_signal")
        self._starts[symbol][pos].frombytes(np.ascontiguousarray(bars, np.int64).tobytes())
        self._sides[symbol][pos].frombytes(np.ascontiguousarray(sides, np.int8).tobytes())

    def episodes(self, symbol: int, pos: int) -> tuple[np.ndarray, np.ndarray]:
        """Copies of agent ``pos``'s episodes on ``symbol``: (first bar numbers, sides).
        Copies, so an observer on another thread can read them while the loop appends
        (a buffer view would stop the append)."""
        starts = np.array(self._starts[symbol][pos].tolist(), dtype=np.int64)
        sides = np.array(self._sides[symbol][pos].tolist(), dtype=np.int64)
        n = min(len(starts), len(sides))
        return starts[:n], sides[:n]

    def rows(self, symbol: int, opens: Sequence[float] | np.ndarray,
             closes: Sequence[float] | np.ndarray) -> list[PerformanceRow]:
        """Final figures for ``symbol`` given the bars seen so far (0-based arrays), in
        bulk. Changes no state, so it can be asked at any time."""
        out: list[PerformanceRow] = []
        o = np.asarray(opens, dtype=np.float64)
        c = np.asarray(closes, dtype=np.float64)
        last = len(c)
        for pos, first in enumerate(self._starts[symbol]):
            starts = np.frombuffer(first, dtype=np.int64) if first else np.zeros(0, np.int64)
            starts = starts[starts <= last]  # episodes within the bars given
            sides = np.frombuffer(self._sides[symbol][pos], dtype=np.int8)[: len(starts)]
            sides = sides.astype(np.int64)
            ends = np.append(starts[1:], last)  # bar numbers, 1-based
            directional = (sides == 1) | (sides == -1)
            scored = directional & (ends > starts)
            hit = scored & ((c[ends - 1] - c[starts - 1]) * sides > 0.0)
            n_scored, n_hits = int(scored.sum()), int(hit.sum())
            if self.online:
                weight = self._weights[symbol][pos]
            else:  # the same recurrence over the episodes a replacement ended
                weight = self._offline_weight(hit[:-1][scored[:-1]])
            trade = directional & (starts < last)
            ends_t = ends[trade]
            exits = np.where(ends_t < last, o[np.minimum(ends_t, last - 1)],
                             c[-1] if last else 0.0)
            pnl = float(np.sum(sides[trade] * (exits / o[starts[trade]] - 1.0)))
            out.append((symbol, pos, len(starts), n_scored, n_hits,
                        n_hits / n_scored if n_scored else None, pnl, weight))
        return out

    def _offline_weight(self, hits: np.ndarray) -> float:
        """``(H + 1) / (N + 2)`` over the scored episodes' hits (bools, oldest first), the
        hits' decay factors summed exactly (``math.fsum``), not by a BLAS dot product:
        BLAS splits a long one across its threads, and the stored weight's last digit
        would then depend on the machine's cores (and cost their spin)."""
        if self.decay == 1.0:  # plain counts
            return (float(np.count_nonzero(hits)) + 1.0) / (float(len(hits)) + 2.0)
        decay = self.decay ** np.arange(len(hits) - 1, -1, -1, dtype=np.float64)
        return (math.fsum(decay[hits].tolist()) + 1.0) / (float(decay.sum()) + 2.0)


__all__ = ["AgentPerformance", "PerformanceRow"]
