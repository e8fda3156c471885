"""SIGTERM stops a backtest or a sweep the way Ctrl-C does.

systemd, docker, CI runners and ``timeout`` stop a process with SIGTERM, whose default
action ends it on the spot: a run then stays ``running`` with its buffered rows lost.
``interrupts_as_keyboard_interrupt`` makes SIGTERM raise ``KeyboardInterrupt`` (the path
every command already takes for Ctrl-C: rows so far written, the run marked
``interrupted``) and remembers which signal came, so the exit code can say it: 130 for
SIGINT, 143 for SIGTERM (128 + the signal number, as a shell reports a death by signal).

``interrupts_deferred`` (``sim.interrupts.stop_signals_held``, which the store uses
around its writes) holds both while a block runs and delivers them afterwards: DuckDB
turns a signal that arrives mid-statement into a failed statement.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from sim.interrupts import STOP_SIGNALS, restore_handlers
from sim.interrupts import stop_signals_held as interrupts_deferred

__all__ = ["interrupted_exit_code", "interrupts_as_keyboard_interrupt",
           "interrupts_deferred", "received"]
_received: list[int] = []


def _interrupt(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextmanager
def interrupts_as_keyboard_interrupt() -> Iterator[None]:
    """While the block runs, SIGINT and SIGTERM raise ``KeyboardInterrupt("SIGINT")`` /
    ``("SIGTERM")`` in the main thread (elsewhere: nothing is changed)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received.clear()
    previous = {s: signal.signal(s, _interrupt) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        restore_handlers(previous)


def received() -> int | None:
    """The first stop signal received inside ``interrupts_as_keyboard_interrupt``."""
    return _received[0] if _received else None


def interrupted_exit_code() -> int:
    """128 + the signal that stopped the command (130 when none was seen: a
    ``KeyboardInterrupt`` raised some other way counts as Ctrl-C)."""
    return 128 + (received() or signal.SIGINT)
