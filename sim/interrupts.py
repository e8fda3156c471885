"""Ctrl-C and SIGTERM held while the store writes, then delivered.

A signal that arrives while DuckDB runs a statement reaches the Python handler from
inside DuckDB, which then fails the statement in its own words: ``RuntimeError: Query
interrupted``, or ``InvalidInputException: exporting a stream ... failed:
KeyboardInterrupt`` while it reads an Arrow batch. The user's Ctrl-C became a failed run,
and the rows of that flush were lost. Held, the statement finishes (a flush takes
milliseconds to a second) and the signal is delivered right after, as a plain
``KeyboardInterrupt`` between statements.

Only on the main thread with no asyncio loop running in it: handlers run there, and an
event loop takes its signals its own way (a live session's writer thread needs nothing).
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _holding_applies() -> bool:
    if threading.current_thread() is not threading.main_thread():
        return False
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return True
    return False


@contextmanager
def stop_signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block is done, then deliver the first one to the
    handler that was in place (Ctrl-C raises ``KeyboardInterrupt`` after the block; a
    SIGTERM nobody handles still ends the process). A second signal of the same kind is
    not held: pressing Ctrl-C twice means it."""
    if not _holding_applies():
        yield
        return
    caught: list[int] = []
    previous: dict[int, Any] = {}

    def hold(signum: int, frame: FrameType | None) -> None:
        if signum in caught:
            restore_handlers({signum: previous.pop(signum)})
            signal.raise_signal(signum)
            return
        caught.append(signum)

    previous.update({s: signal.signal(s, hold) for s in STOP_SIGNALS})
    try:
        yield
    finally:
        restore_handlers(previous)
    if caught:
        signal.raise_signal(caught[0])


def restore_handlers(handlers: dict[int, Any]) -> None:
    for signum, handler in handlers.items():
        # None: a handler set outside Python, which signal.signal cannot put back
        signal.signal(signum, signal.SIG_DFL if handler is None else handler)
