"""Agents' batch forms: every signal change of a whole symbol's bars at once.

An agent may define ``batch_signals(bars) -> SignalChanges``: from the full columns of one
symbol's bars (a ``sim.view.BarSource``), the bar indexes (0-based) at which its
``on_bar`` would return a Signal, and those signals, in order: exactly what ``on_bar``
would return bar by bar from a fresh agent, the warm-up included (no signal while warming
up). It must be causal (the events up to bar k depend on bars 0..k only) and leave the
agent untouched. The event-skipping engine path walks only such event bars; a run with
an agent that has no batch form keeps the per-bar loop.

*Identical*, not close: the fast path must store byte-identical rows, so every indicator
here is computed with the same floating-point operations in the same order as its
incremental class in ``sim.indicators``. The helpers below do that with numpy where the
incremental form can be reproduced exactly (a running sum restarted from ``math.fsum``
once per window is a row-wise ``cumsum``; ``cumsum`` adds sequentially, unlike ``sum``),
and by running the indicator class itself over the column where the recurrence is
inherently sequential (EMA, Wilder's RSI, Welford's deviation): same code, same numbers.
``tests/unit/test_agent_batch.py`` checks each agent against its own ``on_bar``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from sim.messages import Signal
from sim.view import BarSource

_fsum = math.fsum
_SUM_CHUNK = 65_536  # values per slice of exact_row_sums


@dataclass(frozen=True, slots=True)
class SignalChanges:
    """Where an agent's signal changes (0-based bar indexes, increasing) and to what.
    A batch form that picks its signals from a table of them may say so (``changes``):
    ``signals[i] is table[codes[i]]``, so a reader can work on the codes in bulk."""

    index: np.ndarray
    signals: tuple[Signal, ...]
    codes: np.ndarray | None = None
    table: tuple[Signal, ...] = ()

    def __len__(self) -> int:
        return len(self.signals)

    def upto(self, n: int) -> SignalChanges:
        """The changes among the first ``n`` bars."""
        k = int(np.searchsorted(self.index, n))
        return SignalChanges(self.index[:k], self.signals[:k],
                             None if self.codes is None else self.codes[:k], self.table)


@runtime_checkable
class BatchAgent(Protocol):
    """An agent with a batch form (see the module docstring)."""

    def batch_signals(self, bars: BarSource) -> SignalChanges: ...


def has_batch_form(agent: object) -> bool:
    return callable(getattr(agent, "batch_signals", None))


def column(bars: BarSource, name: str) -> np.ndarray:
    return np.ascontiguousarray(bars.column(name), dtype=np.float64)


def changes(codes: np.ndarray, start: int, table: Sequence[Signal]) -> SignalChanges:
    """Signal changes from one integer code per bar (``table[code]`` is the signal; -1: no
    view yet): the bars from ``start`` on whose code differs from the previous bar's (the
    first coded bar always counts). Codes naming the same Signal object must be equal."""
    c = codes[start:]
    if not len(c):
        return SignalChanges(np.empty(0, dtype=np.int64), ())
    moved = np.empty(len(c), dtype=bool)
    moved[0] = True
    np.not_equal(c[1:], c[:-1], out=moved[1:])
    moved &= c >= 0
    at = np.flatnonzero(moved)
    picked = c[at].astype(np.int64)
    return SignalChanges((at + start).astype(np.int64),
                         tuple(map(table.__getitem__, picked.tolist())), picked, tuple(table))


def from_events(events: list[tuple[int, Signal]]) -> SignalChanges:
    if not events:
        return SignalChanges(np.empty(0, dtype=np.int64), ())
    idx, sigs = zip(*events, strict=True)
    return SignalChanges(np.asarray(idx, dtype=np.int64), tuple(sigs))


def cycled_sums(d: np.ndarray, x: np.ndarray, period: int, block: int = 0,
                square: bool = False) -> np.ndarray:
    """The running sum ``sim.indicators`` keeps over a ring buffer of ``period`` slots:
    ``s_t = s_{t-1} + d_t``, except that at every bar t with ``(t + 1) % period == 0`` it is
    replaced by ``fsum`` of the last ``block`` values of ``x`` (``period`` when 0; their
    squares if ``square``), as the ring's wrap does. ``s_{-1} = 0``. Exact: each cycle is
    one row of a sequential ``cumsum`` started from the previous cycle's ``fsum``."""
    n = len(d)
    block = block or period
    cycles = n // period + 1
    grid = np.zeros(cycles * period, dtype=np.float64)
    grid[1 : n + 1] = d  # grid[p] is d_{p-1}; column 0 of each row is the restart value
    wraps = cycles - 1  # after bars period - 1, 2 * period - 1, ...
    if wraps:  # each wrap's last ``block`` values, one row each (v * v: Python's product)
        rows_x = (x * x if square else x)[: wraps * period].reshape(wraps, period)
        grid[period : wraps * period + 1 : period] = exact_row_sums(rows_x[:, period - block :])
    rows = grid.reshape(cycles, period)
    np.cumsum(rows, axis=1, out=rows)
    return grid[1 : n + 1].copy()


def exact_row_sums(rows: np.ndarray) -> np.ndarray:
    """``math.fsum`` of each row (the exact sum, correctly rounded), in bulk where the row
    allows: each value is ``mantissa x 2**exponent`` with a 53-bit integer mantissa, so
    where a row's values are non-zero, finite and span few binades, the mantissas shifted
    to the row's lowest exponent add exactly in int64, and one conversion to float rounds
    that exact sum once, as ``fsum`` does. Other rows (zeros, a wide span, infinities or
    NaN, a subnormal or overflowing sum) take ``math.fsum`` itself. In slices of about
    ``_SUM_CHUNK`` values: the temporaries stay small (peak memory on long runs)."""
    k = rows.shape[1]
    step = max(1, _SUM_CHUNK // max(k, 1))
    if len(rows) > step:
        return np.concatenate([exact_row_sums(rows[i : i + step])
                               for i in range(0, len(rows), step)])
    out = np.empty(len(rows))
    if not len(rows):
        return out
    finite = np.isfinite(rows).all(axis=1) & (rows != 0.0).all(axis=1)
    m, e = np.frexp(np.where(finite[:, None], rows, 1.0))
    mant = (m * 9007199254740992.0).astype(np.int64)  # m x 2**53: an exact integer
    low = e.min(axis=1)
    shift = (e - low[:, None]).astype(np.int64)
    # k terms below 2**(53 + shift) each: their sum stays below 2**63
    ok = finite & (shift.max(axis=1) <= 10 - (k - 1).bit_length())
    total = (mant[ok] << shift[ok]).sum(axis=1)
    sums = np.ldexp(total.astype(np.float64), low[ok] - 53)
    normal = np.isfinite(sums) & (np.abs(sums) >= np.finfo(np.float64).tiny)
    at = np.flatnonzero(ok)
    out[at[normal]] = sums[normal]
    slow = np.ones(len(rows), dtype=bool)
    slow[at[normal]] = False
    for i in np.flatnonzero(slow).tolist():
        out[i] = _fsum(rows[i].tolist())
    return out


def lagged(x: np.ndarray, lag: int) -> np.ndarray:
    """``x_{t-lag}``, 0.0 before the start (an unwritten ring slot)."""
    out = np.zeros_like(x)
    if lag < len(x):
        out[lag:] = x[: len(x) - lag]
    return out


def rolling_extreme(x: np.ndarray, window: int, maximum: bool) -> np.ndarray:
    """``max`` (or ``min``) of ``x[t - window + 1 .. t]`` for t >= window - 1 (NaN before):
    van Herk / Gil-Werman block prefix and suffix extremes, O(n) and exact."""
    n = len(x)
    out = np.full(n, np.nan)
    if n < window:
        return out
    op = np.maximum if maximum else np.minimum
    pad = (-n) % window
    fill = -np.inf if maximum else np.inf
    blocks = np.concatenate([x, np.full(pad, fill)]).reshape(-1, window)
    prefix = op.accumulate(blocks, axis=1).ravel()
    suffix = op.accumulate(blocks[:, ::-1], axis=1)[:, ::-1].ravel()
    start = np.arange(0, n - window + 1)
    out[window - 1 :] = op(suffix[start], prefix[start + window - 1])
    return out


def rounded_steps(values: np.ndarray, steps: int) -> np.ndarray:
    """``round(v)`` (half to even, as Python's) capped at ``steps``, never below 1: the
    index into a confidence ladder whose rungs 0 and 1 are the same signal."""
    k = np.rint(values)
    np.minimum(k, steps, out=k)
    np.maximum(k, 1, out=k)
    return k.astype(np.int64)
