"""How long another thread may hold the interpreter while a live session trades.

A session's process runs more than its trading loop: the store writer, the monitor's
heartbeat, the bus's observers, with `--api` the server and its stream. They share one
interpreter lock, and CPython lets the thread holding it keep it for up to the switch
interval (5 ms) before a waiting thread may take it: a market event that arrives then
waits that long before its step starts. While a session consumes its feeds the interval
is ``SESSION_SWITCH_S`` (0.5 ms), with or without the API, so the two compare alike.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

SESSION_SWITCH_S = 0.0005


@contextmanager
def short_thread_switches(interval_s: float = SESSION_SWITCH_S) -> Iterator[None]:
    """The interpreter's switch interval at ``interval_s`` inside the block; the previous
    one restored after (the setting is the process's)."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(min(interval_s, before))
    try:
        yield
    finally:
        sys.setswitchinterval(before)
