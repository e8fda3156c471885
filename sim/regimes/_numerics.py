"""Vectorised kernels behind the regime generators.

The regimes are recursions (mean reversion, GARCH variance, a Markov chain), which a plain
Python loop would run at about a microsecond a step: too slow for millions of substeps.
Each recursion here runs as ``sqrt(n)`` numpy operations over ``sqrt(n)``-long vectors
(blocks of the series side by side, then a short pass to carry each block's end into the
next), so the cost per step is that of numpy arithmetic, and the result is exactly the
sequential recursion up to float rounding.
"""

from __future__ import annotations

import math

import numpy as np

_LOOP_BELOW = 64  # shorter series: a direct loop is cheaper than blocking


def _blocks(n: int) -> tuple[int, int]:
    """Block length and count covering ``n`` steps, both about ``sqrt(n)``."""
    size = math.isqrt(max(n - 1, 0)) + 1
    return size, -(-n // size)


def linear_recurrence(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``y[..., t] = a[..., t] * y[..., t-1] + b[..., t]`` along the last axis, ``y[-1] = 0``.

    Leading axes are independent series (one per symbol); ``a`` broadcasts against ``b``
    (one coefficient series for every symbol). ``a`` may hold zeros (a reset:
    ``y[t] = b[t]``); products of ``a`` are taken only within a block, so for the
    contracting recursions used here (``|a| <= 1`` on average) nothing overflows.
    """
    b = np.asarray(b, dtype=np.float64)
    a = np.broadcast_to(np.asarray(a, dtype=np.float64), b.shape)
    n = b.shape[-1]
    lead = b.shape[:-1]
    if n <= _LOOP_BELOW:
        y = np.array(b, dtype=np.float64)
        for t in range(1, n):
            y[..., t] += a[..., t] * y[..., t - 1]
        return y
    size, count = _blocks(n)
    # Time within a block on axis 0, blocks side by side on the last axis: each step of
    # the loop below is one contiguous vector operation across all blocks.
    a_blk = np.ones((*lead, size * count))
    a_blk[..., :n] = a
    a_blk = np.ascontiguousarray(np.moveaxis(a_blk.reshape(*lead, count, size), -1, 0))
    y = np.zeros((*lead, size * count))
    y[..., :n] = b
    y = np.ascontiguousarray(np.moveaxis(y.reshape(*lead, count, size), -1, 0))
    tmp = np.empty((*lead, count))
    for j in range(1, size):  # each block as if it started from zero
        np.multiply(a_blk[j], y[j - 1], out=tmp)
        y[j] += tmp
    np.cumprod(a_blk, axis=0, out=a_blk)  # a_blk[j] = product of a over the block to j
    ends, gain = y[-1], a_blk[-1]
    carry = np.zeros((*lead, count))  # value of y just before each block starts
    for blk in range(1, count):
        carry[..., blk] = gain[..., blk - 1] * carry[..., blk - 1] + ends[..., blk - 1]
    y += a_blk * carry
    out = np.moveaxis(y, 0, -1).reshape(*lead, size * count)
    return out[..., :n]


def markov_chain(
    matrix: np.ndarray, n: int, initial: int, rng: np.random.Generator
) -> np.ndarray:
    """States of a Markov chain: ``n`` steps from ``initial``, as int8 codes.

    Step ``t`` draws ``u ~ U[0, 1)`` and moves to the first state whose cumulative row
    probability exceeds ``u`` (zero-probability states are never chosen). Blocks of the
    chain are run from every possible start state at once, then stitched together with
    the true start of each block, which is exactly the sequential chain.
    """
    k = matrix.shape[0]
    cum = np.cumsum(matrix, axis=1)
    cum[:, -1] = 1.0  # rows sum to 1 within 1e-9: never let u fall past the last state
    u = rng.random(n - 1) if n > 1 else np.empty(0)
    if k == 1:
        return np.zeros(n, dtype=np.int8)
    size, count = _blocks(max(n - 1, 1))
    u_blk = np.full(size * count, 0.0)
    u_blk[: n - 1] = u
    u_blk = np.ascontiguousarray(u_blk.reshape(count, size).T)  # (step in block, block)
    # paths[j, b, s]: state after step j of block b if the block started in state s.
    paths = np.empty((size, count, k), dtype=np.int8)
    state = np.broadcast_to(np.arange(k, dtype=np.int8), (count, k))
    for j in range(size):
        state = (cum[state] <= u_blk[j][:, None, None]).sum(axis=-1, dtype=np.int8)
        paths[j] = state
    starts = np.empty(count, dtype=np.int64)
    current = initial
    for blk in range(count):
        starts[blk] = current
        current = int(paths[-1, blk, current])
    steps = paths[:, np.arange(count), starts].T.reshape(-1)[: n - 1]
    return np.concatenate(([initial], steps)).astype(np.int8)


def correlation_factor(corr: np.ndarray) -> np.ndarray:
    """A matrix ``L`` with ``L @ L.T == corr``: Cholesky, or for a singular but positive
    semi-definite matrix (perfectly correlated symbols) the eigen factor, which Cholesky
    cannot produce."""
    try:
        return np.linalg.cholesky(corr)
    except np.linalg.LinAlgError:
        values, vectors = np.linalg.eigh(corr)
        return vectors * np.sqrt(np.clip(values, 0.0, None))


def spell_starts(states: np.ndarray) -> np.ndarray:
    """True on each bar whose state differs from the bar before (and on bar 0)."""
    starts = np.empty(len(states), dtype=bool)
    if len(states):
        starts[0] = True
        np.not_equal(states[1:], states[:-1], out=starts[1:])
    return starts
