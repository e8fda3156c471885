"""SIGTERM stops a command the way Ctrl-C (SIGINT) does.

systemd, docker and CI stop a process with SIGTERM, whose default action ends it on the
spot: a run left ``running`` with its rows unstored. Here SIGTERM takes the path SIGINT
takes, whatever that path is at that moment:

* ``sigterm_as_sigint()``: SIGTERM calls the current SIGINT handler. In plain code that
  raises ``KeyboardInterrupt`` (the run is stored ``interrupted``, exit 130); under
  ``asyncio.run`` it cancels the main task; inside ``quorum.sweep.sigint_deferred`` it
  is held until the transaction is committed, like Ctrl-C. If SIGINT is ignored (a
  background job of a non-interactive shell), SIGTERM still raises ``KeyboardInterrupt``.
* ``run_interruptible(coro)``: ``asyncio.run`` for a live session. SIGINT and SIGTERM
  cancel the session's task with the signal's name as the message (the run is stored
  ``interrupted`` with it), then ``KeyboardInterrupt`` is raised outside the loop. A
  second signal cancels again (stops waiting for the venue) and never interrupts a
  commit under way: the handlers run on the loop, between steps.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, TypeVar

T = TypeVar("T")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def sigterm_as_sigint() -> Iterator[None]:
    """While inside, SIGTERM is handled as SIGINT is (see the module)."""
    if not _main_thread():
        yield
        return

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):
            handler(signal.SIGINT, frame)
        else:  # SIG_IGN or SIG_DFL: stop anyway, through the interrupt path
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_interruptible(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)``; SIGINT or SIGTERM cancel ``main`` with "SIGTERM received"
    (or SIGINT), then ``KeyboardInterrupt`` is raised here."""
    received: list[str] = []

    async def guarded() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def on_signal(signum: signal.Signals) -> None:
            received.append(signum.name)
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
        if received:
            raise KeyboardInterrupt(received[0]) from None
        raise
