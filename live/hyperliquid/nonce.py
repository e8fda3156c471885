"""Per-signer nonces: milliseconds since the epoch, strictly increasing.

Hyperliquid keeps each signer's 100 highest nonces; a new one must be larger than the
smallest of them, never used before, and within (T - 2 days, T + 1 day) of the block time
T. Taking the wall clock in ms, bumped past the last one handed out, meets all three for
one process per key. Two processes sharing a key must not share a signer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class NonceSource:
    __slots__ = ("_last", "_lock", "_now_ms")

    def __init__(self, now_ms: Callable[[], int] | None = None, last: int = 0) -> None:
        self._now_ms = now_ms or (lambda: time.time_ns() // 1_000_000)
        self._last = last
        self._lock = threading.Lock()

    def next(self) -> int:
        """A nonce larger than every one returned before."""
        with self._lock:
            nonce = max(self._now_ms(), self._last + 1)
            self._last = nonce
            return nonce

    @property
    def last(self) -> int:
        return self._last
