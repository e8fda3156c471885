"""Incremental indicators: O(1) work per bar, fixed memory.

Rolling sums are kept with a ring buffer. Float error from adding and subtracting is
bounded by recomputing the sums exactly once per full window (amortised O(1)), so a
million-bar run drifts no further than a single window does: about window x eps x the
largest value in it. That is far below price resolution unless one window mixes values
many orders of magnitude apart, which prices do not.
"""

from __future__ import annotations

import math

_fsum = math.fsum
_sqrt = math.sqrt


class RollingMean:
    __slots__ = ("_buf", "_count", "_i", "_sum", "length")

    def __init__(self, length: int) -> None:
        if length < 1:
            raise ValueError(f"window length must be >= 1, got {length}")
        self.length = length
        self._buf = [0.0] * length
        self._i = 0
        self._count = 0
        self._sum = 0.0

    @property
    def ready(self) -> bool:
        return self._count >= self.length

    def update(self, x: float) -> float:
        """Add ``x``; return the mean of the last ``length`` values (of fewer while warming)."""
        buf, i = self._buf, self._i
        self._sum += x - buf[i]
        buf[i] = x
        i += 1
        if i == self.length:
            i = 0
            self._sum = math.fsum(buf)
        self._i = i
        if self._count < self.length:
            self._count += 1
        return self._sum / self._count


class RollingZScore:
    """Mean and population standard deviation over a window; returns the z-score of x.

    ``ready`` turns True once the window is full (a plain attribute: agents read it on
    every bar).
    """

    __slots__ = ("_buf", "_count", "_i", "_sum", "_sumsq", "length", "ready")

    def __init__(self, length: int) -> None:
        if length < 2:
            raise ValueError(f"z-score window must be >= 2, got {length}")
        self.length = length
        self._buf = [0.0] * length
        self._i = 0
        self._count = 0
        self._sum = 0.0
        self._sumsq = 0.0
        self.ready = False

    def update(self, x: float) -> float:
        buf, i = self._buf, self._i
        old = buf[i]
        total = self._sum + (x - old)
        total_sq = self._sumsq + (x * x - old * old)
        buf[i] = x
        i += 1
        if i == self.length:
            i = 0
            total = _fsum(buf)
            total_sq = _fsum([v * v for v in buf])
        self._i = i
        self._sum = total
        self._sumsq = total_sq
        n = self._count
        if n < self.length:
            n += 1
            self._count = n
            self.ready = n == self.length
        mean = total / n
        var = total_sq / n - mean * mean
        if var <= 1e-24 * mean * mean:  # flat window: no dispersion, no z-score
            return 0.0
        return (x - mean) / _sqrt(var)


class FastSlowMeans:
    """Two trailing means (fast inside slow) kept over one ring buffer: one call per bar."""

    __slots__ = ("_buf", "_fast", "_fast_sum", "_i", "_slow", "_slow_sum", "count")

    def __init__(self, fast: int, slow: int) -> None:
        if not 1 <= fast < slow:
            raise ValueError(f"need 1 <= fast < slow, got fast={fast}, slow={slow}")
        self._fast = fast
        self._slow = slow
        self._buf = [0.0] * slow
        self._i = 0
        self.count = 0
        self._fast_sum = 0.0
        self._slow_sum = 0.0

    @property
    def ready(self) -> bool:
        return self.count >= self._slow

    def update(self, x: float) -> tuple[float, float]:
        """Add ``x``; return (fast mean, slow mean), over fewer values while warming up."""
        buf, i, slow = self._buf, self._i, self._slow
        j = i - self._fast  # slot of the value leaving the fast window
        self._fast_sum += x - buf[j]  # negative j wraps, as the ring does
        self._slow_sum += x - buf[i]
        buf[i] = x
        i += 1
        if i == slow:
            i = 0
            self._slow_sum = math.fsum(buf)
            self._fast_sum = math.fsum(buf[slow - self._fast :])
        self._i = i
        count = self.count
        if count < slow:
            count += 1
            self.count = count
            return self._fast_sum / min(count, self._fast), self._slow_sum / count
        return self._fast_sum / self._fast, self._slow_sum / slow
