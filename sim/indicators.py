"""Incremental indicators: O(1) work per bar, fixed memory.

Rolling sums are kept with a ring buffer. Float error from adding and subtracting is
bounded by recomputing the sums exactly once per full window (amortised O(1)), so a
million-bar run drifts no further than a single window does: about window x eps x the
largest value in it. That is far below price resolution unless one window mixes values
many orders of magnitude apart, which prices do not.
"""

from __future__ import annotations

import math
from collections import deque

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


class EMA:
    """Exponential moving average of span ``length``: smoothing ``alpha = 2 / (length + 1)``.

    Seeded with the first value: ``e_0 = x_0``, then ``e_t = e_{t-1} + alpha * (x_t - e_{t-1})``
    (pandas ``ewm(span=length, adjust=False).mean()``). ``value`` is the latest average (NaN
    before the first value); ``ready`` turns True once ``length`` values have been seen, when
    the seed's weight has fallen to ``(1 - alpha) ** (length - 1)``.
    """

    __slots__ = ("_alpha", "count", "length", "ready", "value")

    def __init__(self, length: int) -> None:
        if length < 1:
            raise ValueError(f"EMA span must be >= 1, got {length}")
        self.length = length
        self._alpha = 2.0 / (length + 1)
        self.count = 0
        self.ready = False
        self.value = math.nan

    def update(self, x: float) -> float:
        """Add ``x``; return the new average."""
        count = self.count
        if count:
            value = self.value
            value += self._alpha * (x - value)
        else:
            value = x
        self.value = value
        if count < self.length:
            count += 1
            self.count = count
            self.ready = count == self.length
        return value


class RollingMax:
    """Maximum of the last ``length`` values (of all so far while warming up).

    A monotonic deque holds ``(value, position)`` pairs whose values strictly decrease from
    the front: a new value first drops every pair it equals or beats, and the front expires
    once it is ``length`` positions old. Each value enters and leaves once: amortised O(1).
    ``value`` is the current maximum (NaN before the first update); ``ready`` turns True once
    ``length`` values have been seen.
    """

    __slots__ = ("_deque", "_n", "length", "ready", "value")

    def __init__(self, length: int) -> None:
        if length < 1:
            raise ValueError(f"window length must be >= 1, got {length}")
        self.length = length
        self._deque: deque[tuple[float, int]] = deque()
        self._n = 0
        self.ready = False
        self.value = math.nan

    def update(self, x: float) -> float:
        """Add ``x``; return the maximum of the window that ends with it."""
        dq, n = self._deque, self._n
        while dq and dq[-1][0] <= x:
            dq.pop()
        dq.append((x, n))
        front = dq[0]
        if front[1] <= n - self.length:  # at most one pair expires per step
            dq.popleft()
            front = dq[0]
        n += 1
        self._n = n
        if n == self.length:
            self.ready = True
        self.value = value = front[0]
        return value


class RollingMin:
    """Minimum of the last ``length`` values: the mirror image of ``RollingMax``."""

    __slots__ = ("_deque", "_n", "length", "ready", "value")

    def __init__(self, length: int) -> None:
        if length < 1:
            raise ValueError(f"window length must be >= 1, got {length}")
        self.length = length
        self._deque: deque[tuple[float, int]] = deque()
        self._n = 0
        self.ready = False
        self.value = math.nan

    def update(self, x: float) -> float:
        """Add ``x``; return the minimum of the window that ends with it."""
        dq, n = self._deque, self._n
        while dq and dq[-1][0] >= x:
            dq.pop()
        dq.append((x, n))
        front = dq[0]
        if front[1] <= n - self.length:
            dq.popleft()
            front = dq[0]
        n += 1
        self._n = n
        if n == self.length:
            self.ready = True
        self.value = value = front[0]
        return value


class RollingMeanStd:
    """Mean and population standard deviation (divisor = count) of the last ``length`` values.

    Updated by Welford's recurrences: adding a value while warming up, replacing the oldest
    one once the window is full (``M2 += (x - old) * (x - mean_new + old - mean_old)``), which
    avoids the cancellation of ``E[x^2] - E[x]^2``. The mean and ``M2`` are recomputed
    exactly (two passes, ``math.fsum``) once per full window, so rounding error cannot
    accumulate: amortised O(1). A window of equal values has ``mean`` exactly that value and
    ``std`` exactly 0 (the run of equal values is counted), where the recurrences would
    leave a rounding residue of about ``1e-8 * mean`` after the square root. ``mean`` and
    ``std`` are attributes (NaN before the first value); ``ready`` turns True once the
    window is full.
    """

    __slots__ = ("_buf", "_count", "_i", "_m2", "_prev", "_run", "length", "mean", "ready",
                 "std")

    def __init__(self, length: int) -> None:
        if length < 2:
            raise ValueError(f"window length must be >= 2, got {length}")
        self.length = length
        self._buf = [0.0] * length
        self._i = 0
        self._count = 0
        self._m2 = 0.0
        self._prev = math.nan
        self._run = 0  # equal values ending now
        self.ready = False
        self.mean = math.nan
        self.std = math.nan

    def update(self, x: float) -> None:
        """Add ``x``; ``mean`` and ``std`` then describe the window that ends with it."""
        buf, i, length = self._buf, self._i, self.length
        n = self._count
        if n == length:
            old = buf[i]
            mean = self.mean
            delta = x - old
            new_mean = mean + delta / length
            m2 = self._m2 + delta * (x - new_mean + old - mean)
            mean = new_mean
        else:
            n += 1
            self._count = n
            mean = self.mean if n > 1 else 0.0
            delta = x - mean
            mean += delta / n
            m2 = self._m2 + delta * (x - mean)
            if n == length:
                self.ready = True
        buf[i] = x
        i += 1
        if i == length:
            i = 0
            mean = _fsum(buf) / length
            m2 = _fsum([(v - mean) * (v - mean) for v in buf])
        self._i = i
        if x == self._prev:
            run = self._run + 1
            self._run = run
            if run >= n:  # every value in the window is x
                mean = x
                m2 = 0.0
        else:
            self._prev = x
            self._run = 1
        self.mean = mean
        if m2 < 0.0:  # rounding can push a nearly flat window a hair below zero
            m2 = 0.0
        self._m2 = m2
        self.std = _sqrt(m2 / n)


class WilderRSI:
    """Relative strength index with Wilder's smoothing over ``length`` price changes.

    For each value after the first, the change is ``d = x_t - x_{t-1}``, its gain
    ``max(d, 0)`` and its loss ``max(-d, 0)``. The first average gain and loss are the simple
    means of the first ``length`` gains and losses; after that each average moves by
    Wilder's smoothing ``avg = (avg * (length - 1) + new) / length`` (an EMA with
    ``alpha = 1 / length``). ``RSI = 100 * avg_gain / (avg_gain + avg_loss)``, which equals
    ``100 - 100 / (1 + avg_gain / avg_loss)`` and is 100 when there were no losses, and 50
    when the price did not move at all. ``value`` is NaN, and ``ready`` False, until
    ``length + 1`` values (``length`` changes) have been seen.
    """

    __slots__ = ("_count", "_gain", "_loss", "_prev", "length", "ready", "value")

    def __init__(self, length: int) -> None:
        if length < 1:
            raise ValueError(f"RSI length must be >= 1, got {length}")
        self.length = length
        self._count = 0  # changes seen, capped at length
        self._gain = 0.0
        self._loss = 0.0
        self._prev = math.nan
        self.ready = False
        self.value = math.nan

    def update(self, x: float) -> float:
        """Add ``x``; return the RSI (NaN while warming up)."""
        prev = self._prev
        self._prev = x
        if prev != prev:  # the first value: no change yet
            return math.nan
        d = x - prev
        length = self.length
        count = self._count
        if count == length:
            w = length - 1
            if d > 0.0:
                gain = (self._gain * w + d) / length
                loss = self._loss * w / length
            else:
                gain = self._gain * w / length
                loss = (self._loss * w - d) / length
        else:  # warming up: plain sums, divided once the first `length` changes are in
            gain = self._gain + (d if d > 0.0 else 0.0)
            loss = self._loss - (d if d < 0.0 else 0.0)
            count += 1
            self._count = count
            if count < length:
                self._gain = gain
                self._loss = loss
                return math.nan
            gain /= length
            loss /= length
            self.ready = True
        self._gain = gain
        self._loss = loss
        total = gain + loss
        value = 100.0 * gain / total if total > 0.0 else 50.0
        self.value = value
        return value


class RateOfChange:
    """Rate of change over ``length`` bars: ``x_t / x_{t-length} - 1`` (for positive series).

    A ring buffer holds the last ``length`` values. ``value`` is NaN, and ``ready`` False,
    until ``length + 1`` values have been seen.
    """

    __slots__ = ("_buf", "_count", "_i", "length", "ready", "value")

    def __init__(self, length: int) -> None:
        if length < 1:
            raise ValueError(f"rate-of-change length must be >= 1, got {length}")
        self.length = length
        self._buf = [math.nan] * length
        self._i = 0
        self._count = 0
        self.ready = False
        self.value = math.nan

    def update(self, x: float) -> float:
        """Add ``x``; return its change relative to the value ``length`` bars earlier."""
        buf, i = self._buf, self._i
        old = buf[i]
        buf[i] = x
        i += 1
        self._i = 0 if i == self.length else i
        if self.ready:
            value = x / old - 1.0
        else:
            self._count += 1
            if self._count <= self.length:
                return math.nan
            self.ready = True
            value = x / old - 1.0
        self.value = value
        return value
