"""A backtest's appends on a thread of their own, in the order they were handed over.

An append into the store's file costs DuckDB ~28 ms per DOUBLE column per million rows, in
its C++ code, which releases the interpreter lock: a 1M-bar run spends ~0.8 s there (the
``bars`` table, equity, the order tables). On a second core that time can overlap the
simulation. The run's thread hands each batch over and goes on; this thread appends them,
one at a time, first in first out, on a cursor of its own: every table receives the same
rows in the same order as when the run's thread appended them itself.

The hand-over is bounded (``depth`` batches waiting, one more being written): a run that
makes rows faster than they are written waits, so no more batches are held than that.
After each append the C heap's free pages go back to the system (glibc's
``malloc_trim``, where there is one): batches built on the run's thread and freed on this
one left their pages with the allocator, and the run's peak memory rose above that of
appends on one thread (~15 MB at 1M bars); trimmed, it does not.
A failed append is kept (``error``), nothing more is written after it, and the run's
thread raises it, the same exception object, at its next hand-over or barrier
(``sim.store.DuckDBStore``): the run fails naming the cause, as when it appended itself.
"""

from __future__ import annotations

import contextlib
import ctypes
import queue
import threading
from collections.abc import Callable
from typing import TypeAlias

import duckdb
import pyarrow as pa

# A batch, or what builds it on this thread (the ``bars`` table: labels computed here).
Batch: TypeAlias = pa.Table | Callable[[], pa.Table]
Append: TypeAlias = Callable[[duckdb.DuckDBPyConnection, str, str, pa.Table], None]


def _heap_trimmer() -> Callable[[], object]:
    """glibc's ``malloc_trim(0)`` (it releases the GIL: ctypes calls do), or a no-op."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, musl)
        return lambda: None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return lambda: trim(0)


_TRIM = _heap_trimmer()


class AppendWriter:
    """Appends ``(run_id, table, batch)`` jobs through ``append`` on its own cursor."""

    def __init__(self, con: duckdb.DuckDBPyConnection, append: Append, depth: int = 1) -> None:
        self._cursor = con.cursor()
        self._append = append
        self._jobs: queue.Queue[tuple[str, str, Batch] | None] = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.reported = False  # the error was raised on the run's thread
        self._thread = threading.Thread(target=self._run, name="quorum-append-writer",
                                        daemon=True)
        self._thread.start()

    def submit(self, run_id: str, table: str, batch: Batch) -> None:
        """Hand a batch over; waits while ``depth`` batches wait already. Raises the
        writer's failure instead, if it failed: the batch is then not taken."""
        self.check()
        self._jobs.put((run_id, table, batch))

    def drain(self) -> None:
        """Wait until every batch handed over is appended (or dropped after a failure)."""
        self._jobs.join()

    def check(self) -> None:
        if self.error is not None:
            self.reported = True
            raise self.error

    def close(self) -> None:
        """Append what is handed over, then stop the thread (a failure stays in ``error``)."""
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join()
        with contextlib.suppress(duckdb.Error):
            self._cursor.close()

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                if self.error is None:  # after a failure nothing more is written
                    self._write(*job)
            except BaseException as exc:  # raised on the run's thread (``check``)
                self.error = exc
            finally:
                job = None  # the batch is freed before the next one is awaited
                _TRIM()
                self._jobs.task_done()

    def _write(self, run_id: str, table: str, batch: Batch) -> None:
        self._append(self._cursor, run_id, table, batch if isinstance(batch, pa.Table)
                     else batch())
