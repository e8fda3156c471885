"""A backtest's appends on a thread of their own, in the order they were handed over.

An append into the store's file costs DuckDB ~28 ms per DOUBLE column per million rows, in
its C++ code, which releases the interpreter lock: a 1M-bar run spends ~0.8 s there (the
``bars`` table, equity, the order tables). On a second core that time can overlap the
simulation. The run's thread hands each batch over and goes on; this thread appends them,
one at a time, first in first out, on a cursor of its own: every table receives the same
rows in the same order as when the run's thread appended them itself.

The hand-over is bounded: batches waiting (besides the one being written) hold at most
``max_bytes`` of Arrow buffers (one is always taken when none waits), so a run that
makes rows faster than they are written waits, and no more is held than about one flush
(a flush of 500,000 rows is ~35 MB: equity ~20). A bound in batches made the run's thread
wait within each flush: this thread needs the interpreter lock a few times per append
(register, execute, unregister), each time up to the switch interval (5 ms) behind a run
that is executing Python, so a small table took it 10-40 ms.
After each append the C heap's free pages go back to the system (glibc's
``malloc_trim``, where there is one): batches built on the run's thread and freed on this
one left their pages with the allocator, and the run's peak memory rose above that of
appends on one thread (~15 MB at 1M bars; trimmed only when no batch waited, ~5 MB);
trimmed after each, it does not.
A failed append is kept (``error``), nothing more is written after it, and the run's
thread raises it, the same exception object, at its next hand-over or barrier
(``sim.store.DuckDBStore``): the run fails naming the cause, as when it appended itself.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
from collections import deque
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


MAX_BYTES = 64 << 20


class AppendWriter:
    """Appends ``(run_id, table, batch)`` jobs through ``append`` on its own cursor."""

    def __init__(self, con: duckdb.DuckDBPyConnection, append: Append,
                 max_bytes: int = MAX_BYTES) -> None:
        self._cursor = con.cursor()
        self._append = append
        self.max_bytes = max_bytes
        self._ready = threading.Condition()
        # Jobs waiting (run id, table, batch, its bytes); None: stop.
        self._jobs: deque[tuple[str, str, Batch, int] | None] = deque()
        self.waiting_bytes = 0
        self._unfinished = 0  # handed over and not yet appended (or dropped)
        self.error: BaseException | None = None
        self.reported = False  # the error was raised on the run's thread
        self._thread = threading.Thread(target=self._run, name="quorum-append-writer",
                                        daemon=True)
        self._thread.start()

    def has_room(self, size: int) -> bool:
        """Whether a batch of ``size`` bytes is taken now (else the hand-over waits)."""
        return not self._jobs or self.waiting_bytes + size <= self.max_bytes

    def submit(self, run_id: str, table: str, batch: Batch) -> None:
        """Hand a batch over (one built here, by ``batch()``, counts no bytes); waits
        while it does not fit. Raises the writer's failure instead, if it failed: the
        batch is then not taken."""
        self.check()
        size = batch.nbytes if isinstance(batch, pa.Table) else 0
        with self._ready:
            while not self.has_room(size):
                self._ready.wait()
            self._put((run_id, table, batch, size))

    def drain(self) -> None:
        """Wait until every batch handed over is appended (or dropped after a failure)."""
        with self._ready:
            while self._unfinished:
                self._ready.wait()

    def check(self) -> None:
        if self.error is not None:
            self.reported = True
            raise self.error

    def close(self) -> None:
        """Append what is handed over, then stop the thread (a failure stays in ``error``)."""
        if self._thread.is_alive():
            with self._ready:
                self._put(None)
            self._thread.join()
        with contextlib.suppress(duckdb.Error):
            self._cursor.close()

    def _put(self, job: tuple[str, str, Batch, int] | None) -> None:
        self._jobs.append(job)
        if job is not None:
            self.waiting_bytes += job[3]
            self._unfinished += 1
        self._ready.notify_all()

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._jobs:
                    self._ready.wait()
                job = self._jobs.popleft()
                if job is None:
                    return
                self.waiting_bytes -= job[3]
                self._ready.notify_all()  # room for the next
            try:
                if self.error is None:  # after a failure nothing more is written
                    self._write(*job[:3])
            except BaseException as exc:  # raised on the run's thread (``check``)
                self.error = exc
            finally:
                job = None  # the batch is freed before the next one is awaited
                _TRIM()
                with self._ready:
                    self._unfinished -= 1
                    self._ready.notify_all()

    def _write(self, run_id: str, table: str, batch: Batch) -> None:
        self._append(self._cursor, run_id, table, batch if isinstance(batch, pa.Table)
                     else batch())
