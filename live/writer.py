"""The live session's store writes, on a thread of their own.

A commit of a step's rows (signals, decisions, equity, orders, fills with their venue
trade ids, bars with their labels) costs 5-20 ms of DuckDB work. Done on the event loop,
it held up whatever market event arrived meanwhile: with a commit after every fill, most
events that followed an order waited (BENCHMARKS.md). The loop now only *takes* the rows
(buffers swapped for empty ones, tables built) and hands them over; this thread writes
each hand-over as one transaction, in the order given, on a cursor of its own. DuckDB
releases the GIL while it works, so the loop keeps running.

Durability is what it was: rows reach the store within ``flush_every_s`` or at once
after fills, order outcomes and risk trips, only now without the loop waiting; what a
crash loses before its commit, the restart recovers from the journal and the venue
(``live.recovery``). A failed write stops the session: ``check`` raises it on the loop.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable

import duckdb

Job = Callable[[duckdb.DuckDBPyConnection], None]


class StoreWriter:
    """Runs jobs (functions of a connection), each in one transaction, one at a time."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._cursor = con.cursor()
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._pending = 0
        self._idle = threading.Event()
        self._idle.set()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="quorum-store-writer",
                                        daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        self.check()
        with self._lock:
            self._pending += 1
            self._idle.clear()
        self._jobs.put(job)

    def wait(self) -> None:
        """Block until every job submitted so far is written (or one failed: raised)."""
        self._idle.wait()
        self.check()

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        """Write what is queued, then stop the thread (a failure is kept in ``error``)."""
        if not self._thread.is_alive():
            return
        self._jobs.put(None)
        self._thread.join()
        with contextlib.suppress(duckdb.Error):
            self._cursor.close()

    def _run(self) -> None:
        cur = self._cursor
        while (job := self._jobs.get()) is not None:
            if self.error is None:  # after a failure nothing more is written
                try:
                    cur.begin()
                    job(cur)
                    cur.commit()
                except BaseException as exc:  # handed to the loop by ``check``
                    with contextlib.suppress(duckdb.Error):
                        cur.rollback()
                    self.error = exc
            with self._lock:
                self._pending -= 1
                if not self._pending:
                    self._idle.set()
