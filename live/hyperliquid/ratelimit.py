"""Client-side rate limiting within Hyperliquid's published REST weights.

Published limits (Hyperliquid docs, "Rate limits and user limits"): REST requests share
an aggregated weight of 1200 per minute per IP. An exchange action weighs
``1 + floor(batch length / 40)``. Info requests weigh 2 (``l2Book``, ``allMids``,
``clearinghouseState``, ``orderStatus``, ``spotClearinghouseState``, ``exchangeStatus``),
60 (``userRole``) or 20 (every other documented request); some add weight for what they
return: one more per 20 items (``userFills``, ``recentTrades``, ``historicalOrders``, ...)
or per 60 items (``candleSnapshot``).

``WeightLimiter`` keeps a sliding one-minute window of what this client spent and waits
before a request that would take it over ``budget`` (default 1000: headroom for other
clients on the same IP and for the extra weight only known after a response). After a
429 the whole limiter stays closed until the cool-down (Retry-After, or the policy's
backoff) has passed.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

PUBLISHED_WEIGHT_PER_MINUTE = 1200
DEFAULT_BUDGET = 1000
WINDOW_S = 60.0

_CHEAP_INFO = {"l2Book", "allMids", "clearinghouseState", "orderStatus",
               "spotClearinghouseState", "exchangeStatus"}
_ITEMS_PER_UNIT = {
    **dict.fromkeys(("recentTrades", "historicalOrders", "userFills", "userFillsByTime",
                     "fundingHistory", "userFunding", "nonUserFundingUpdates", "twapHistory",
                     "userTwapSliceFills", "userTwapSliceFillsByTime", "delegatorHistory",
                     "delegatorRewards", "validatorStats"), 20),
    "candleSnapshot": 60,
}


def info_weight(kind: str) -> int:
    """Weight of an /info request before its response is counted."""
    if kind in _CHEAP_INFO:
        return 2
    return 60 if kind == "userRole" else 20


def info_extra_weight(kind: str, items: int) -> int:
    """Weight added by what a response returned (0 for most requests)."""
    per = _ITEMS_PER_UNIT.get(kind)
    return items // per if per else 0


class WeightLimiter:
    """Sliding-window weight budget; ``acquire`` waits, ``charge`` books after the fact."""

    def __init__(self, budget: int = DEFAULT_BUDGET, window_s: float = WINDOW_S, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        if not 0 < budget <= PUBLISHED_WEIGHT_PER_MINUTE:
            raise ValueError(f"budget must be in 1..{PUBLISHED_WEIGHT_PER_MINUTE}, got {budget}")
        self.budget = budget
        self.window_s = window_s
        self._clock = clock
        self._sleep = sleep
        self._spent: deque[tuple[float, int]] = deque()
        self._total = 0
        self._closed_until = 0.0
        self._lock = asyncio.Lock()
        self._queued = 0  # callers inside ``acquire`` (holding or waiting for the lock)

    @property
    def spent(self) -> int:
        """Weight spent within the current window."""
        self._expire(self._clock())
        return self._total

    def _expire(self, now: float) -> None:
        spent = self._spent
        while spent and spent[0][0] <= now - self.window_s:
            self._total -= spent.popleft()[1]

    async def acquire(self, weight: int) -> None:
        """Wait until ``weight`` fits in the window (and any 429 cool-down is over)."""
        if weight > self.budget:
            raise ValueError(f"one request of weight {weight} exceeds the budget {self.budget}")
        self._queued += 1
        try:
            async with self._lock:  # first come, first served
                while True:
                    now = self._clock()
                    self._expire(now)
                    if now < self._closed_until:
                        await self._sleep(self._closed_until - now)
                        continue
                    if self._total + weight <= self.budget:
                        self.charge(weight, now)
                        return
                    # wait for enough of the oldest spending to leave the window
                    need, freed = self._total + weight - self.budget, 0
                    for at, w in self._spent:
                        freed += w
                        if freed >= need:
                            await self._sleep(at + self.window_s - now)
                            break
        finally:
            self._queued -= 1

    def try_acquire(self, weight: int) -> bool:
        """Take ``weight`` now if ``acquire`` would not wait (no one queued, no cool-down,
        room in the window); else take nothing and say so."""
        if self._queued or weight > self.budget:
            return False
        now = self._clock()
        self._expire(now)
        if now < self._closed_until or self._total + weight > self.budget:
            return False
        self.charge(weight, now)
        return True

    def charge(self, weight: int, now: float | None = None) -> None:
        """Book weight without waiting (e.g. what a response's size added)."""
        if weight > 0:
            self._spent.append((self._clock() if now is None else now, weight))
            self._total += weight

    def close_for(self, seconds: float) -> None:
        """The venue said 429: send nothing for ``seconds``."""
        self._closed_until = max(self._closed_until, self._clock() + seconds)
