"""``--cluster`` at an address where something answers that is not a Dask scheduler: one
line, exit 2, within the connect timeout (observed: a ``MemoryError: Unable to allocate
3.07 EiB`` traceback, or a hang past the stated 10 s).

The peers are loopback servers started here, each serving a bounded number of
connections and stopped by the test."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "scenarios" / "sweeps" / "tiny.toml"


@contextmanager
def loopback_peer(answer: Callable[[socket.socket], None]) -> Iterator[str]:
    """A TCP server on 127.0.0.1 that hands each connection (at most 20) to ``answer``."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        for _ in range(20):
            while not stop.is_set():
                try:
                    conn, _ = server.accept()
                    break
                except TimeoutError:
                    continue
            else:
                return
            with conn:
                conn.settimeout(5)
                with suppress(OSError):
                    answer(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(10)
        server.close()


def garbage(conn: socket.socket) -> None:
    conn.sendall(b"\xff" * 64)
    conn.recv(1 << 16)


def http(conn: socket.socket) -> None:
    conn.recv(1 << 16)
    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


def silent(conn: socket.socket) -> None:
    stop = threading.Event()
    stop.wait(3)  # holds the connection open, says nothing


@pytest.mark.parametrize("peer", [garbage, http], ids=["garbage", "http"])
def test_a_peer_that_is_not_dask_is_one_line_exit_2(tmp_path: Path,
                                                     peer: Callable[[socket.socket], None]
                                                     ) -> None:
    with loopback_peer(peer) as address:
        proc = subprocess.run(
            [sys.executable, "-m", "quorum.cli", "sweep", str(TINY), "--db",
             str(tmp_path / "runs.duckdb"), "--quiet", "--cluster", address],
            capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("quorum: error: "), proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "is not a dask scheduler" in proc.stderr


def test_a_silent_peer_fails_at_the_timeout_not_never() -> None:
    from research.sweep_executors import ClusterUnreachable, probe_scheduler

    with (loopback_peer(silent) as address,
          pytest.raises(ClusterUnreachable,
                        match=r"no answer from a dask scheduler .* within 0.5 s")):
        probe_scheduler(address, timeout=0.5)


def test_a_dask_worker_is_not_a_scheduler() -> None:
    from research.sweep_executors import ClusterUnreachable, probe_scheduler

    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cl:
        probe_scheduler(cl.scheduler_address)  # the real thing passes
        worker = next(iter(cl.scheduler.workers))
        with pytest.raises(ClusterUnreachable, match="answers, but is not a dask scheduler"):
            probe_scheduler(worker)
