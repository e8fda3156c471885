"""Where a sweep's runs are made: in this process, in a pool of local processes, or on a
dask.distributed cluster. Each executor takes the tasks and yields lists of outcomes as
they are ready (everything finished since the last list), so a driver that falls behind
fast runs stores them in bigger transactions instead of queueing up.

The local pool is ``research.sweep_pool`` (the CLI starts it before the sweep is
loaded). Results are the same whichever executor runs them; only the order they arrive
in differs, and the driver makes sure that order reaches nothing it stores or reports.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from research import sweep_pool
from research.sweep_pool import HELD_MAX, WorkerLost, default_workers
from research.sweep_pool import _cli_main_hidden as _cli_main_hidden  # tests import it here
from research.sweep_worker import RunOutcome, RunTask, execute_run, one_line

Executor = Callable[[Sequence[RunTask]], Iterator[list[RunOutcome]]]
CONNECT_TIMEOUT_S = 10.0  # --cluster: how long a scheduler has to answer


class ClusterUnreachable(ValueError):
    """--cluster names no reachable scheduler (bad input: exit 2)."""


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
    """``tasks`` on ``workers`` local processes started for them
    (``research.sweep_pool.ProcessPool``), at most ``HELD_MAX`` runs held."""
    return sweep_pool.run_processes(tasks, workers, HELD_MAX)


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
