"""A sweep's local worker processes (``quorum sweep --workers N``, N > 1).

The pool is started first, before the sweep is loaded and planned: a spawned worker
imports the simulator (about a second of CPU) while the driver reads the sweep file and
asks the store what is left, instead of after. The pool then makes the runs it is handed
once (``ProcessPool.run``), or is stopped unused (a sweep that fails to load, has nothing
left to run, or is interrupted first): no worker outlives it either way.

This module imports only the standard library when loaded (the CLI starts the pool before
it imports anything else); what the workers and the receiver need is imported where used.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from research.sweep_payload import TableReceiver
    from research.sweep_worker import RunOutcome, RunTask

# Runs received and not yet taken by the caller, at most (with those still running): past
# it no task is handed out until the caller takes some, so a driver that stores slower
# than the workers run holds a bounded number of results (80 MB of the bundled sweep's).
HELD_MAX = 256


class WorkerLost(RuntimeError):
    """A worker died or a cluster task failed outside a run (not a run's own failure)."""


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class ProcessPool:
    """``workers`` spawned processes (not forked: the driver holds a DuckDB connection and
    may run a progress thread) fed through a queue, at most ``2 * workers`` runs ahead.

    A plain queue rather than ``concurrent.futures``: on Ctrl-C the workers are
    terminated mid-run, and a process pool's manager thread can then hang the driver's
    exit on a half-written result. Results come back on one pipe per worker, not a shared
    queue: a worker killed while writing its result (the OOM killer) leaves a half
    message, and on a pipe that other workers still hold open the driver would wait for
    the rest forever; on its own pipe the write end dies with it and the read fails at
    once.

    Used once: ``start`` (or entering it), then ``run`` or ``release``; ``close`` (or
    leaving it) ends whatever is still running."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.procs: list[Any] = []
        self._ctx = multiprocessing.get_context("spawn")
        self._todo: Any = None
        self._results: list[Any] = []
        self._used = False  # run or release called: the pool is not handed tasks again
        self._released = False  # told to stop, not waited for yet

    def __enter__(self) -> ProcessPool:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def start(self) -> ProcessPool:
        """Spawn the workers (they import what a run needs, then wait for tasks)."""
        if self.procs or self._used:
            return self
        self._todo = self._ctx.Queue()
        try:
            with _cli_main_hidden():
                for i in range(self.workers):
                    receive, send = self._ctx.Pipe(duplex=False)
                    proc = self._ctx.Process(target=serve, args=(self._todo, send),
                                             daemon=True, name=f"sweep-{i}")
                    proc.start()
                    send.close()  # the worker holds the only write end: its death closes it
                    self.procs.append(proc)
                    self._results.append(receive)
        except BaseException:
            self.close()
            raise
        return self

    def run(self, tasks: Sequence[RunTask], held_max: int | None = None
            ) -> Iterator[list[RunOutcome]]:
        """Make ``tasks``, yielding lists of outcomes as they arrive (an empty list when
        nothing finished for half a second); the workers are stopped at the end, or at
        once on an error or when the caller stops iterating.

        The pipes are read and the workers fed by a thread of the driver (``_Receiver``),
        so they keep working while the driver stores what it was last handed (a commit
        takes up to a second; fed only between commits, the workers waited on it).
        Whatever the caller does with the lists, this thread only receives: nothing it
        reads is stored until the caller has it."""
        if self._used:
            raise RuntimeError("a ProcessPool makes one sweep's runs")
        self.start()
        self._used = True
        receiver = _Receiver(tasks, self._todo, self.procs, self._results,
                             2 * self.workers, HELD_MAX if held_max is None else held_max)
        finished = False
        try:
            receiver.start()
            while True:
                ready, error, done = receiver.take(0.5)
                yield ready  # what finished is kept, also before an error
                if error is not None:
                    raise error
                if done:
                    break
            finished = True
        finally:
            receiver.stop()
            self._results = receiver.results
            self._stop(finished)

    def release(self) -> None:
        """Nothing for the workers to do: tell them to stop, without waiting (``close``
        waits for them)."""
        if self._used or not self.procs:
            self._used = True
            return
        self._used = True
        self._released = True
        for _ in self.procs:
            self._todo.put(None)

    def close(self) -> None:
        """End the pool: released workers are waited for, any other is ended now (a
        run it was making is dropped, and made again on resume)."""
        self._used = True
        self._stop(self._released)

    def _stop(self, finished: bool) -> None:
        if self._todo is None:
            return
        _stop_workers(self.procs, self._todo, self._results, finished,
                      told=self._released)
        self._todo = None
        self._results = []


def run_processes(tasks: Sequence[RunTask], workers: int, held_max: int | None = None
                  ) -> Iterator[list[RunOutcome]]:
    """``tasks`` on a pool of ``workers`` processes started for them (``ProcessPool``)."""
    with ProcessPool(workers) as pool:
        yield from pool.run(tasks, held_max)


@contextmanager
def _cli_main_hidden() -> Iterator[None]:
    """While workers are spawned: when this process's ``__main__`` is Quorum's CLI
    (``python -m quorum.cli`` or the ``quorum`` script), it is not named to them, so
    they do not import it again as theirs (a spawned child imports its parent's
    ``__main__`` first: the CLI and all its commands' modules, 0.3 s of CPU per worker,
    none of it used by ``serve``). Any other ``__main__`` is named as usual: a script
    may define what its runs need."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    entry = getattr(main, "main", None)
    if main is None or "quorum.cli" not in (getattr(spec, "name", None),
                                            getattr(entry, "__module__", None)):
        yield
        return
    path = vars(main).pop("__file__", None)
    main.__spec__ = None
    try:
        yield
    finally:
        main.__spec__ = spec
        if path is not None:
            main.__file__ = path


class _Receiver:
    """``ProcessPool.run``'s thread: feeds the task queue (at most ``ahead`` runs ahead, and
    ``held_max`` with those received and not yet taken), reads each worker's pipe and
    hands the outcomes over, in the order they arrived, with the first error (a dead
    worker, a failure outside a run) after them."""

    def __init__(self, tasks: Sequence[RunTask], todo: Any, procs: Sequence[Any],
                 results: list[Any], ahead: int, held_max: int) -> None:
        self.results = results  # the pipes still open (a dead worker's is dropped)
        self._todo = todo
        self._procs = procs
        self._owner = dict(zip(results, procs, strict=True))
        from research.sweep_payload import TableReceiver

        self._receivers = {conn: TableReceiver() for conn in results}
        self._pending = iter(tasks)
        self._ahead = ahead
        self._held_max = held_max
        self._outstanding = 0  # handed out, not received
        self._exhausted = False  # every task handed out
        self._held = 0  # received, not taken (under _lock: both threads change it)
        self._lock = threading.Lock()
        self._taken = threading.Event()
        self._inbox: queue.Queue[tuple[list[RunOutcome], BaseException | None, bool]] = (
            queue.Queue())
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sweep-results", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop reading (within half a second), before the workers are stopped."""
        self._halt.set()
        if self._thread.is_alive():
            self._thread.join()

    def take(self, timeout: float) -> tuple[list[RunOutcome], BaseException | None, bool]:
        """Everything received since the last call (waiting up to ``timeout`` for
        something): the outcomes, an error to raise after them, and whether every task
        is done."""
        ready: list[RunOutcome] = []
        try:
            item = self._inbox.get(timeout=timeout)
        except queue.Empty:
            return ready, None, False
        while True:
            got, error, done = item
            ready.extend(got)
            if error is not None or done:
                break
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                break
        if ready:
            with self._lock:
                self._held -= len(ready)
            self._taken.set()
        return ready, error, done

    def _feed(self) -> None:
        while self._outstanding < self._ahead and not self._exhausted:
            with self._lock:
                if self._held + self._outstanding >= self._held_max:
                    return
            task = next(self._pending, None)
            if task is None:
                self._exhausted = True
                return
            self._todo.put(task)
            self._outstanding += 1

    def _run(self) -> None:
        try:
            self._feed()
            while (self._outstanding or not self._exhausted) and not self._halt.is_set():
                if not self._outstanding:  # held back: wait for the caller to take some
                    self._taken.wait(0.5)
                    self._taken.clear()
                    self._feed()
                    continue
                ready, error = self._receive()
                self._outstanding -= len(ready)
                if ready or error is not None:
                    with self._lock:
                        self._held += len(ready)
                    self._inbox.put((ready, error, False))
                    if error is not None:
                        return
                self._feed()
            self._inbox.put(([], None, self._exhausted and not self._outstanding))
        except BaseException as exc:  # e.g. a failure outside a run (_unwrap)
            self._inbox.put(([], exc, False))

    def _receive(self) -> tuple[list[RunOutcome], BaseException | None]:
        ready: list[RunOutcome] = []
        broken: list[Any] = []
        for conn in wait_for_results(self.results, 0.5):
            try:
                while conn.poll():
                    ready.append(_unwrap(self._receivers[conn], conn.recv()))
            except (EOFError, OSError):  # its worker is gone (mid-write, or after)
                self.results.remove(conn)
                broken.append(self._owner[conn])
        # Workers leave only when told to (after the loop): one that is gone was
        # killed. Checked on every pass, not only when nothing finished, so a death
        # is noticed even when the other workers could finish every run.
        dead = broken or [p for p in self._procs if not p.is_alive()]
        if not dead:
            return ready, None
        dead[0].join(timeout=5)  # its exit code, if it has one yet
        return ready, WorkerLost(f"worker {dead[0].name} died (exit code "
                                 f"{dead[0].exitcode}); out of memory?")


def wait_for_results(conns: Sequence[Any], timeout: float) -> list[Any]:
    """The result pipes with something to read (or closed), within ``timeout`` seconds."""
    from multiprocessing.connection import wait

    return list(wait(list(conns), timeout=timeout)) if conns else []


def serve(todo: Any, done: Any) -> None:
    """A worker: import what a run needs, then run tasks until the ``None`` that says
    stop; results on its own pipe, each shared batch sent once
    (``research.sweep_payload``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's: it stops us
    from research.sweep_payload import TableSender
    from research.sweep_worker import execute_run, one_line, prepare_worker, settle_gc, shared_batch

    prepare_worker()
    sender = TableSender()
    first = True
    while (task := todo.get()) is not None:
        try:
            done.send(("ok", sender.pack(execute_run(task), shared_batch)))
        except BaseException as exc:  # not a run's failure: execute_run catches those
            done.send(("lost", f"run {task.run_id}: {one_line(exc)}"))
        if first:
            settle_gc()
            first = False


def _unwrap(receiver: TableReceiver, item: tuple[str, Any]) -> RunOutcome:
    kind, payload = item
    if kind != "ok":
        raise WorkerLost(f"a worker failed outside a run: {payload}")
    return receiver.unpack(payload)


def _stop_workers(procs: Sequence[Any], todo: Any, results: Sequence[Any],
                  finished: bool, told: bool = False) -> None:
    """Finished: tell the workers to stop (unless ``told`` already) and wait for them.
    Otherwise (Ctrl-C, an error) end them now: their runs are dropped and made again on
    resume."""
    if finished:
        for _ in () if told else procs:
            todo.put(None)
        for proc in procs:
            proc.join(timeout=10)
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    for proc in procs:
        proc.join(timeout=5)
    todo.cancel_join_thread()  # exit must never wait on a queue's feeder thread
    todo.close()
    for conn in results:
        conn.close()
