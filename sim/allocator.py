"""Re-allocating capital between farms on a schedule (``[allocator]``).

At each scheduled time (before that time's bars) the allocator sets a target weight per
farm, ``floor + (1 - n * floor) * raw``, where ``raw`` is

* ``equal``: the same for every farm;
* ``inverse_volatility``: proportional to 1 / the standard deviation of the farm's
  per-step returns over the last ``lookback`` time steps (a farm with no variation yet
  counts as the least volatile one seen);
* ``performance``: proportional to the farm's return over the last ``lookback`` steps
  where positive (none positive: equal);

and moves cash from farms above their target to farms below it: a farm gives at most the
cash it holds free (positions are never sold to fund a transfer, and cash its working
buys reserve stays with it: ``Farm.free_cash``), and what is given is shared
among the receivers in proportion to their shortfall. Each move is a ``capital_transfers``
row; the account's cash does not change, so the ledger invariant still holds. A farm's
risk state moves with its capital (its peak, start-of-day and initial equity shift by the
amount), so a transfer out never reads as a loss to its breakers.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Callable, Sequence

from sim.farms import Farm

METHODS = ("equal", "inverse_volatility", "performance")


class Allocator:
    def __init__(self, farms: Sequence[Farm], method: str, floor: float, lookback: int,
                 record: Callable[[int, str, str, float, str], None]) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown allocator method {method!r}; one of {METHODS}")
        self.farms = tuple(farms)
        self.method = method
        self.floor = floor
        self.lookback = lookback
        self._record = record
        # Each farm's equity at the last ``lookback + 1`` time steps (FarmEngine books).
        self.history: list[deque[float]] = [deque(maxlen=lookback + 1) for _ in farms]

    def observe(self, equities: Sequence[float]) -> None:
        """The farms' equity at one time step (called by the engine as it books)."""
        for past, value in zip(self.history, equities, strict=True):
            past.append(value)

    def weights(self) -> list[float]:
        n = len(self.farms)
        raw = [1.0] * n
        if self.method == "inverse_volatility":
            vols = [_volatility(h) for h in self.history]
            known = [v for v in vols if v > 0.0]
            least = min(known) if known else 1.0
            raw = [1.0 / (v if v > 0.0 else least) for v in vols]
        elif self.method == "performance":
            gains = [max(_return(h), 0.0) for h in self.history]
            if sum(gains) > 0.0:
                raw = gains
        total = math.fsum(raw)
        return [self.floor + (1.0 - n * self.floor) * r / total for r in raw]

    def rebalance(self, ts: int) -> None:
        """Move cash toward the target weights now (see the module docstring)."""
        farms = self.farms
        equities = [f.ledger.equity() for f in farms]
        total = math.fsum(equities)
        if not total > 0.0:
            return
        targets = [w * total for w in self.weights()]
        give = [min(max(e - t, 0.0), max(f.free_cash(), 0.0))
                for f, e, t in zip(farms, equities, targets, strict=True)]
        need = [max(t - e, 0.0) for e, t in zip(equities, targets, strict=True)]
        pool, wanted = math.fsum(give), math.fsum(need)
        if not pool > 0.0 or not wanted > 0.0:
            return
        moved = min(pool, wanted)
        gives = [g * moved / pool for g in give]
        gets = [n * moved / wanted for n in need]
        # Pair givers with receivers in the farms' order: one row per pair.
        j = 0
        left = list(gets)
        reason = f"rebalance: {self.method}"
        for i, amount in enumerate(gives):
            while amount > 0.0 and j < len(farms):
                if left[j] <= 0.0:
                    j += 1
                    continue
                step = min(amount, left[j])
                self._move(farms[i], farms[j], step, ts, reason)
                amount -= step
                left[j] -= step
                if left[j] <= 1e-12 * moved:
                    j += 1

    def _move(self, source: Farm, target: Farm, amount: float, ts: int,
              reason: str) -> None:
        for farm, delta in ((source, -amount), (target, amount)):
            farm.ledger.book.catch_up(ts)  # its breakers see the rows booked before
            farm.ledger.cash += delta
            farm.capital += delta
            farm.risk.shift_equity(delta)
        self._record(ts, source.name, target.name, amount, reason)


def _volatility(history: deque[float]) -> float:
    values = list(history)
    returns = [b / a - 1.0 for a, b in itertools.pairwise(values) if a > 0.0]
    if len(returns) < 2:
        return 0.0
    mean = math.fsum(returns) / len(returns)
    return math.sqrt(math.fsum((r - mean) ** 2 for r in returns) / (len(returns) - 1))


def _return(history: deque[float]) -> float:
    return history[-1] / history[0] - 1.0 if len(history) > 1 and history[0] > 0.0 else 0.0


def schedule(first: int, last: int, every: int) -> list[int]:
    """Rebalance times: every ``every`` ns after the first bar, up to the last."""
    return list(range(first + every, last + 1, every))
