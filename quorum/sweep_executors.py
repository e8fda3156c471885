"""Where a sweep's runs are made: in this process, in a pool of local processes, or on a
dask.distributed cluster. Each executor takes the tasks and yields lists of outcomes as
they are ready (everything finished since the last list), so a driver that falls behind
fast runs stores them in bigger transactions instead of queueing up.

Results are the same whichever executor runs them; only the order they arrive in differs,
and the driver makes sure that order reaches nothing it stores or reports.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

from quorum.sweep_worker import RunOutcome, RunTask, execute_run, ignore_sigint, one_line

Executor = Callable[[Sequence[RunTask]], Iterator[list[RunOutcome]]]


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
    """A pool of spawned processes (not forked: the driver holds a DuckDB connection and
    may run a progress thread). At most ``4 * workers`` runs are submitted ahead, so an
    interrupt stops promptly and finished results cannot pile up without bound. Yields an
    empty list when nothing finished for half a second."""
    from concurrent.futures.process import BrokenProcessPool

    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=ignore_sigint)
    pending = iter(tasks)
    running: set[Any] = set()
    finished = False
    try:
        while True:
            while len(running) < 4 * workers:
                task = next(pending, None)
                if task is None:
                    break
                running.add(pool.submit(execute_run, task))
            if not running:
                finished = True
                return
            # wake at least twice a second, so the driver can store what it holds
            done, running = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
            try:
                ready = [future.result() for future in done]
            except BrokenProcessPool as exc:
                raise WorkerLost(f"a worker process died ({exc}); out of memory?") from None
            yield ready
    finally:
        if finished:
            pool.shutdown(wait=True)
        else:
            _stop_pool(pool)


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel what has not started and end busy workers now: their runs are dropped and
    made again on resume. (No public API ends busy workers before Python 3.14's
    ``terminate_workers``, hence the private ``_processes``.)"""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        if proc.is_alive():
            proc.terminate()
    for proc in processes:
        proc.join(timeout=5)


def run_dask(tasks: Sequence[RunTask], address: str) -> Iterator[list[RunOutcome]]:
    """Tasks on a dask.distributed cluster. Its workers need this package installed, and
    recorded data files at the same paths as here."""
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise ClusterUnreachable("--cluster needs dask.distributed: pip install "
                                 "'quorum[cluster]'") from None
    check_reachable(address)
    try:
        client = Client(address, timeout="10s", set_as_default=False)
    except (OSError, TimeoutError) as exc:
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
