"""The anomaly detectors: small pure functions of what the event stream showed.

Each takes the few numbers it needs (times in ns, prices, counts) and its thresholds,
and answers with a finding or None; the state they look at (a window of change times,
the equity book) is kept by ``sim.monitor.monitor.Monitor``, which turns findings into
alerts. Pure, so each is tested on hand-made numbers and gives the same answer in a
backtest (sim time) and a session (wall time).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Finding:
    """What a detector saw: a message and the numbers behind it (stored as JSON)."""

    message: str
    data: dict[str, float | int | str]


def drawdown_velocity(ts: Sequence[int], equity: Sequence[float], now: int, window_ns: int,
                      limit: float) -> Finding | None:
    """Equity fell from its peak within the last ``window_ns`` to its latest value by more
    than ``limit`` (a fraction of that peak). ``ts``/``equity``: the booked equity rows,
    ascending."""
    if not equity:
        return None
    start = bisect_left(ts, now - window_ns)
    if start >= len(equity):
        return None
    return drop_from_peak(max(equity[start:]), equity[-1], limit)


def drop_from_peak(peak: float, last: float, limit: float) -> Finding | None:
    """The test ``drawdown_velocity`` makes, given the window's peak and the last value."""
    if not peak > 0.0:
        return None
    drop = (peak - last) / peak
    if drop > limit:
        return Finding(f"equity fell {drop:.1%} within the window (from {peak:.2f} to "
                       f"{last:.2f}), above {limit:.1%}",
                       {"peak": peak, "equity": last, "drop": drop, "limit": limit})
    return None


class WindowPeak:
    """The peak of the equity rows within the last ``window_ns``, kept incrementally:
    what ``drawdown_velocity`` computes, without re-reading the whole window at every
    heartbeat. The rows booked since the last look (after the last time seen: a
    session's book is emptied each time its rows are written) form a block whose max is
    taken once; blocks leave the window whole, and the one the window's edge cuts is
    re-measured over its part inside while its rows are still in the book."""

    __slots__ = ("_blocks", "_last", "_last_ts", "window_ns")

    def __init__(self, window_ns: int) -> None:
        self.window_ns = window_ns
        self._blocks: deque[list[Any]] = deque()  # [first ts, last ts, max]
        self._last_ts: int | None = None
        self._last = 0.0

    def check(self, ts: Sequence[int], equity: Sequence[float], now: int,
              limit: float) -> Finding | None:
        blocks = self._blocks
        n = min(len(ts), len(equity))  # another thread may be appending
        lo = 0 if self._last_ts is None else bisect_right(ts, self._last_ts, 0, n)
        if lo < n:
            blocks.append([ts[lo], ts[n - 1], max(equity[lo:n])])
            self._last_ts, self._last = ts[n - 1], equity[n - 1]
        horizon = now - self.window_ns
        while blocks and blocks[0][1] < horizon:
            blocks.popleft()
        if not blocks:
            return None
        first = blocks[0]
        if first[0] < horizon and n and ts[0] <= first[0]:  # cut, and still in the book
            start = bisect_left(ts, horizon, 0, n)
            stop = bisect_right(ts, first[1], 0, n)
            if start < stop:
                first[0], first[2] = ts[start], max(equity[start:stop])
        return drop_from_peak(max(b[2] for b in blocks), self._last, limit)


def slippage_excess(price: float, ref_price: float, expected_bps: float, factor: float,
                    floor_bps: float) -> Finding | None:
    """A fill's price is further from its reference than ``factor`` x the modelled
    slippage (and at least ``floor_bps``), either side: the model no longer describes
    the market."""
    if not ref_price > 0.0:
        return None
    bps = abs(price / ref_price - 1.0) * 1e4
    bound = max(factor * expected_bps, floor_bps)
    if bps > bound:
        return Finding(f"fill {bps:.1f} bps from its reference price, above {bound:.1f} bps "
                       f"({factor:g} x the modelled {expected_bps:g} bps)",
                       {"slippage_bps": bps, "bound_bps": bound, "price": price,
                        "ref_price": ref_price})
    return None


def in_window(times: deque[int], now: int, window_ns: int) -> int:
    """Append ``now`` to ``times``, drop those older than ``window_ns``; the count left.
    The one stateful helper the counting detectors share (the deque is their state)."""
    times.append(now)
    horizon = now - window_ns
    while times and times[0] <= horizon:
        times.popleft()
    return len(times)


def flapping(changes_in_window: int, limit: int, window: str) -> Finding | None:
    """An agent changed side more than ``limit`` times within the window."""
    if changes_in_window > limit:
        return Finding(f"changed side {changes_in_window} times within {window}, above "
                       f"{limit}", {"changes": changes_in_window, "limit": limit})
    return None


def burst(count_in_window: int, limit: int, window: str, what: str) -> Finding | None:
    """More than ``limit`` denials or rejects within the window."""
    if count_in_window > limit:
        return Finding(f"{count_in_window} {what} within {window}, above {limit}",
                       {"count": count_in_window, "limit": limit})
    return None


def silent(last_ts: int, now: int, after_ns: int) -> Finding | None:
    """No signal since ``last_ts`` for longer than ``after_ns``."""
    quiet = now - last_ts
    if quiet > after_ns:
        return Finding(f"no signal for {quiet / 3.6e12:.1f} h, above "
                       f"{after_ns / 3.6e12:.1f} h", {"silent_ns": quiet, "after_ns": after_ns})
    return None


def latency_spike(elapsed_ns: int, limit_ms: float) -> Finding | None:
    """An order took longer than ``limit_ms`` to reach its venue."""
    ms = elapsed_ns / 1e6
    if ms > limit_ms:
        return Finding(f"order took {ms:.0f} ms to reach its venue, above {limit_ms:g} ms",
                       {"latency_ms": ms, "limit_ms": limit_ms})
    return None


def stale(last_bar_ts: int, now: int, interval_ns: int, bars: float) -> Finding | None:
    """No bar for more than ``bars`` bar intervals (a bar's ts is its open: it closed one
    interval later, so the wait counts from there)."""
    waited = now - (last_bar_ts + interval_ns)
    if interval_ns > 0 and waited > bars * interval_ns:
        return Finding(f"no bar for {waited / interval_ns:.1f} intervals, above {bars:g}",
                       {"intervals": waited / interval_ns, "limit": bars,
                        "last_bar_ts": last_bar_ts})
    return None


def tool_trouble(calls: Sequence[tuple[bool, float]], min_calls: int,
                 min_success: float | None, p99_ms: float | None) -> Finding | None:
    """An outside tool's recent calls (ok, latency ms), oldest first: too many failed
    (success rate below ``min_success``) or the slow tail is too slow (p99 above
    ``p99_ms``, nearest rank). Nothing is judged on fewer than ``min_calls`` calls."""
    n = len(calls)
    if n < min_calls:
        return None
    ok = sum(1 for good, _ in calls if good)
    rate = ok / n
    latencies = sorted(ms for _, ms in calls)
    p99 = latencies[min(n - 1, int(0.99 * n))]
    data: dict[str, float | int | str] = {"calls": n, "success_rate": rate, "p99_ms": p99}
    if min_success is not None and rate < min_success:
        return Finding(f"{n - ok} of its last {n} calls failed (success {rate:.0%}, below "
                       f"{min_success:.0%})", data)
    if p99_ms is not None and p99 > p99_ms:
        return Finding(f"p99 latency {p99:.0f} ms over its last {n} calls, above "
                       f"{p99_ms:g} ms", data)
    return None
