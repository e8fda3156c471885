"""SIGTERM stops a command the way Ctrl-C (SIGINT) does, for every command that runs.

systemd, docker, CI runners and ``timeout`` stop a process with SIGTERM, whose default
action ends it on the spot: a run left ``running`` with its buffered rows lost. Here both
signals take the interrupt path every command already has for Ctrl-C (rows so far
written, the run marked ``interrupted``), and the signal is remembered so the exit code
can say which it was: 130 for SIGINT, 143 for SIGTERM (128 + the signal number, as a
shell reports a death by signal).

* ``interrupts_as_keyboard_interrupt()``: around a command (``quorum.cli.main``), both
  signals raise ``KeyboardInterrupt("SIGINT")`` / ``("SIGTERM")`` in the main thread.
* ``interrupts_deferred()`` (``sim.interrupts.stop_signals_held``, which the store uses
  around its writes and a sweep around each commit): both are held while a block runs
  and delivered after it; DuckDB turns a signal that arrives mid-statement into a failed
  statement.
* ``run_interruptible(coro)``: ``asyncio.run`` for a live session. Both signals cancel
  the session's task with "SIGTERM received" (or SIGINT) as the message, which the run
  stores as its reason, then ``KeyboardInterrupt`` is raised outside the loop. A second
  signal cancels again (stops waiting for the venue) and never interrupts a commit under
  way: the loop runs the handlers between steps.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, TypeVar

from sim.interrupts import STOP_SIGNALS, restore_handlers
from sim.interrupts import stop_signals_held as interrupts_deferred

__all__ = ["interrupted_exit_code", "interrupts_as_keyboard_interrupt",
           "interrupts_deferred", "received", "run_interruptible"]

T = TypeVar("T")
_received: list[int] = []


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextmanager
def interrupts_as_keyboard_interrupt() -> Iterator[None]:
    """While the block runs, SIGINT and SIGTERM raise ``KeyboardInterrupt("SIGINT")`` /
    ``("SIGTERM")`` in the main thread (elsewhere: nothing is changed)."""
    if not _main_thread():
        yield
        return
    _received.clear()
    previous: dict[int, Any] = {s: signal.signal(s, _interrupt) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        restore_handlers(previous)


def received() -> int | None:
    """The first stop signal received (inside ``interrupts_as_keyboard_interrupt`` or
    ``run_interruptible``)."""
    return _received[0] if _received else None


def interrupted_exit_code() -> int:
    """128 + the signal that stopped the command (130 when none was seen: a
    ``KeyboardInterrupt`` raised some other way counts as Ctrl-C)."""
    return 128 + (received() or signal.SIGINT)


def run_interruptible(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)``; SIGINT or SIGTERM cancel ``main`` with "SIGTERM received"
    (or SIGINT), then ``KeyboardInterrupt`` is raised here."""
    names: list[str] = []

    async def guarded() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def on_signal(signum: signal.Signals) -> None:
            _received.append(signum)
            names.append(signum.name)
            task.cancel(f"{signum.name} received")

        installed = []
        if _main_thread():
            for signum in STOP_SIGNALS:
                previous = signal.getsignal(signum)
                try:
                    loop.add_signal_handler(signum, on_signal, signum)
                except (NotImplementedError, RuntimeError, ValueError):
                    continue
                installed.append((signum, previous))
        try:
            return await main
        finally:
            for signum, previous in installed:
                loop.remove_signal_handler(signum)
                if previous is not None:
                    signal.signal(signum, previous)

    try:
        return asyncio.run(guarded())
    except asyncio.CancelledError:
        if names:
            raise KeyboardInterrupt(names[0]) from None
        raise
