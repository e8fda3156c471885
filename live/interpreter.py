"""What a live session's trading loop shares with the other threads of its process: the
interpreter lock and the cyclic garbage collector.

A session's process runs more than its trading loop: the store writer, the monitor's
heartbeat, the bus's observers, with `--api` the server, its stream and its reads. Two
things of theirs could delay a market event's step:

* **The lock.** CPython lets the thread holding it keep it for up to the switch interval
  (5 ms) before a waiting thread may take it. While a session consumes its feeds the
  interval is ``SESSION_SWITCH_S`` (0.5 ms), with or without the API.
* **The collector.** An automatic collection runs on whichever thread allocates past the
  threshold, often the trading loop's, and holds the lock throughout (a young pass over
  100,000 objects: 0.1-3 ms). The other threads' allocations count too: an API serving
  reads and a stream makes the trading loop collect more often. While a session trades,
  automatic collection is off and the trading loop collects what is due between steps
  (``StepCollector``): after a step, and every ``idle_s`` when no step comes.
"""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType

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


class StepCollector:
    """Inside the block, automatic collection is off (for every thread); ``collect_due``
    runs the collection CPython would have run by now, if any, on the caller's thread:
    the youngest generations whose counts passed their thresholds (``gc.get_threshold``).
    Collection is restored as it was on exit."""

    def __init__(self, idle_s: float = 0.25) -> None:
        self.idle_s = idle_s
        self.passes = [0, 0, 0]  # collections run, by generation
        self._was_enabled = False

    def __enter__(self) -> StepCollector:
        self._was_enabled = gc.isenabled()
        gc.disable()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._was_enabled:
            gc.enable()

    def collect_due(self) -> int | None:
        """Collect what is due: None when the young generation is under its threshold,
        else the generation collected."""
        counts, thresholds = gc.get_count(), gc.get_threshold()
        if counts[0] <= thresholds[0]:
            return None
        # CPython's choice: the oldest generation past its threshold (a generation's count
        # is the passes of the one below since its own last pass).
        generation = next((g for g in (2, 1) if counts[g] > thresholds[g]), 0)
        gc.collect(generation)
        self.passes[generation] += 1
        return generation

    async def while_idle(self) -> None:
        """On the trading loop, between its steps: collect what is due every ``idle_s``
        (the other threads allocate while no market event comes)."""
        while True:
            await asyncio.sleep(self.idle_s)
            self.collect_due()
