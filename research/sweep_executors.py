"""Where a sweep's runs are made: in this process, in a pool of local processes, or on a
dask.distributed cluster. Each executor takes the tasks and yields lists of outcomes as
they are ready (everything finished since the last list), so a driver that falls behind
fast runs stores them in bigger transactions instead of queueing up.

Results are the same whichever executor runs them; only the order they arrive in differs,
and the driver makes sure that order reaches nothing it stores or reports.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import queue
import socket
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from research.sweep_payload import TableReceiver, TableSender
from research.sweep_worker import (
    RunOutcome,
    RunTask,
    execute_run,
    ignore_sigint,
    one_line,
    settle_gc,
    shared_batch,
)

Executor = Callable[[Sequence[RunTask]], Iterator[list[RunOutcome]]]
CONNECT_TIMEOUT_S = 10.0  # --cluster: how long a scheduler has to answer


class WorkerLost(RuntimeError):
    """A worker died or a cluster task failed outside a run (not a run's own failure)."""


class ClusterUnreachable(ValueError):
    """--cluster names no reachable scheduler (bad input: exit 2)."""


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def executor_for(workers: int | None, cluster: str | None) -> Executor:
    """Dask when a cluster is named; else a pool of ``workers`` processes (default: one per
    core), or this process alone for one worker."""
    if cluster is not None:
        return lambda tasks: run_dask(tasks, cluster)
    n = workers or default_workers()
    if n <= 1:
        return run_serial
    return lambda tasks: run_processes(tasks, n)


def run_serial(tasks: Sequence[RunTask]) -> Iterator[list[RunOutcome]]:
    for task in tasks:
        yield [execute_run(task)]


def run_processes(tasks: Sequence[RunTask], workers: int) -> Iterator[list[RunOutcome]]:
    """``workers`` spawned processes (not forked: the driver holds a DuckDB connection and
    may run a progress thread) fed through a queue, at most ``2 * workers`` runs ahead.

    A plain queue rather than ``concurrent.futures``: on Ctrl-C the workers are
    terminated mid-run, and a process pool's manager thread can then hang the driver's
    exit on a half-written result. Results come back on one pipe per worker, not a shared
    queue: a worker killed while writing its result (the OOM killer) leaves a half
    message, and on a pipe that other workers still hold open the driver would wait for
    the rest forever; on its own pipe the write end dies with it and the read fails at
    once. Yields an empty list when nothing finished for half a second.

    The pipes are read and the workers fed by a thread of the driver (``_Receiver``), so
    they keep working while the driver stores what it was last handed (a commit takes
    up to a second; fed only between commits, the workers waited on it). Whatever the
    caller does with the lists, this thread only receives: nothing it reads is stored
    until the caller has it."""
    ctx = multiprocessing.get_context("spawn")
    todo = ctx.Queue()
    procs, results = [], []
    with _cli_main_hidden():
        for i in range(workers):
            receive, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=serve, args=(todo, send), daemon=True,
                               name=f"sweep-{i}")
            proc.start()
            send.close()  # the worker holds the only write end: its death closes the pipe
            procs.append(proc)
            results.append(receive)
    receiver = _Receiver(tasks, todo, procs, results, 2 * workers, HELD_MAX)
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
        _stop_workers(procs, todo, receiver.results, finished)


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


# Runs received and not yet taken by the caller, at most (with those still running): past
# it no task is handed out until the caller takes some, so a driver that stores slower
# than the workers run holds a bounded number of results (80 MB of the bundled sweep's).
HELD_MAX = 256


class _Receiver:
    """``run_processes``'s thread: feeds the task queue (at most ``ahead`` runs ahead, and
    ``held_max`` with those received and not yet taken), reads each worker's pipe and
    hands the outcomes over, in the order they arrived, with the first error (a dead
    worker, a failure outside a run) after them."""

    def __init__(self, tasks: Sequence[RunTask], todo: Any, procs: Sequence[Any],
                 results: list[Any], ahead: int, held_max: int) -> None:
        self.results = results  # the pipes still open (a dead worker's is dropped)
        self._todo = todo
        self._procs = procs
        self._owner = dict(zip(results, procs, strict=True))
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
    """A worker: run tasks until the ``None`` that says stop; results on its own pipe,
    each shared batch sent once (``research.sweep_payload``)."""
    ignore_sigint()
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
                  finished: bool) -> None:
    """Finished: tell the workers to stop and wait for them. Otherwise (Ctrl-C, an error)
    end them now: their runs are dropped and made again on resume."""
    if finished:
        for _ in procs:
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


def run_dask(tasks: Sequence[RunTask], address: str) -> Iterator[list[RunOutcome]]:
    """Tasks on a dask.distributed cluster. Its workers need this package installed, and
    recorded data files at the same paths as here."""
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise ClusterUnreachable("--cluster needs dask.distributed: pip install "
                                 "'quorum-harness[cluster]'") from None
    check_reachable(address)
    probe_scheduler(address)
    try:
        client = Client(address, timeout=f"{CONNECT_TIMEOUT_S:g}s", set_as_default=False)
    except Exception as exc:
        raise ClusterUnreachable(f"cannot reach the dask scheduler at {address}: "
                                 f"{one_line(exc)}") from None
    token = os.urandom(4).hex()
    futures = [client.submit(execute_run, t, key=f"quorum-run-{t.run_id}-{token}", pure=False)
               for t in tasks]
    try:
        for batch in as_completed(futures, loop=client.loop).batches():
            ready = []
            for future in batch:
                try:
                    ready.append(future.result())
                except Exception as exc:
                    raise WorkerLost(f"dask task {future.key} failed: {one_line(exc)}"
                                     ) from None
            yield ready
    finally:
        client.cancel(futures)
        client.close()


def check_reachable(address: str) -> None:
    """Fail at once, not after the client's connect timeout, when nothing listens on a
    tcp:// address (a refused connection is final; dask would keep retrying)."""
    from urllib.parse import urlsplit

    parts = urlsplit(address)
    if parts.scheme != "tcp":
        return  # tls://, inproc://, ...: left to dask
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if not host or not port:
        raise ClusterUnreachable(f"--cluster {address!r}: expected tcp://HOST:PORT")
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as exc:
        raise ClusterUnreachable(f"cannot reach the dask scheduler at {address}: "
                                 f"{exc.strerror or exc}") from None


def probe_scheduler(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Ask ``address`` who it is (the scheduler's ``identity`` call) and raise
    ``ClusterUnreachable`` unless a Dask scheduler answers within ``timeout`` seconds.

    dask.distributed's client trusts whatever accepts the connection: it reads a peer
    that is not Dask (an HTTP server, anything sending bytes) as frame lengths and tries to
    allocate them (``MemoryError: Unable to allocate 3.07 EiB``), and waits for a silent
    peer's handshake with no timeout at all. The probe runs on a loop in a thread of its
    own, bounded by ``timeout``, so whatever the peer does costs at most that long."""
    outcome: list[Any] = []

    def probe() -> None:
        try:
            outcome.append(asyncio.run(asyncio.wait_for(_identity(address, timeout),
                                                        timeout)))
        except BaseException as exc:  # MemoryError included: the peer sent garbage
            outcome.append(exc)

    thread = threading.Thread(target=probe, name="dask-probe", daemon=True)
    thread.start()
    thread.join(timeout + 2.0)  # the loop's own timeout fires first; this is a backstop
    got = outcome[0] if outcome else TimeoutError()
    if isinstance(got, TimeoutError):
        raise ClusterUnreachable(f"no answer from a dask scheduler at {address} within "
                                 f"{timeout:g} s")
    if isinstance(got, BaseException):
        raise ClusterUnreachable(f"{address} is not a dask scheduler: {one_line(got)}")
    if not isinstance(got, dict) or got.get("type") != "Scheduler":
        kind = got.get("type") if isinstance(got, dict) else type(got).__name__
        raise ClusterUnreachable(f"{address} answers, but is not a dask scheduler "
                                 f"({kind!r})")


async def _identity(address: str, timeout: float) -> Any:
    from distributed.comm import connect

    comm = await connect(address, timeout=timeout)
    try:
        await comm.write({"op": "identity", "reply": True})
        return await comm.read()
    finally:
        comm.abort()
