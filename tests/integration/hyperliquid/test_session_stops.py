"""How a session ends when it cannot go on: the network is gone (bounded reconnects,
then the run fails, stored) or the process is told to stop (SIGTERM, as systemd,
docker and CI send it: stored interrupted, rows committed, exit 143)."""

from __future__ import annotations

import asyncio
import signal
import socket
import time

import pytest

from live.hyperliquid.config import HyperliquidConfig
from live.hyperliquid.errors import StreamUnavailable
from live.hyperliquid.stream import HyperliquidStream, candle
from quorum.live import paper_session
from sim.store import DuckDBStore
from tests.fakes.hyperliquid import FakeHyperliquid

from .test_sigkill_recovery import SCENARIO, Exchange, child, price, wait
from .venue_session import VERDICT, scenario

MIN_MS = 60_000


def test_a_stream_that_cannot_connect_gives_up() -> None:
    """No network (the name does not resolve): each connect fails at once. The stream
    gives up after ``give_up_s`` with the last error, instead of retrying for ever."""
    attempts = []

    async def no_network(*args, **kwargs):
        attempts.append(time.monotonic())
        raise socket.gaierror(-3, "Temporary failure in name resolution")

    async def go() -> None:
        stream = HyperliquidStream("wss://api.hyperliquid.invalid/ws", [candle("ETH", "1m")],
                                   backoff_s=0.01, max_backoff_s=0.05, give_up_s=0.3,
                                   connect=no_network)
        async for _ in stream:
            pass

    with pytest.raises(StreamUnavailable, match=r"within 0\.3 s .*gaierror"):
        asyncio.run(asyncio.wait_for(go(), 30))
    assert len(attempts) >= 3 and attempts[-1] - attempts[0] <= 0.3


def test_a_paper_session_whose_stream_never_connects_fails_and_is_stored(
        fake: FakeHyperliquid, tmp_path) -> None:
    """The venue answers REST but refuses every WebSocket: the session's run fails
    with the stream's error once reconnecting has gone on for ``ws_give_up_s``."""
    fake.faults.ws_refuse = True
    hl = HyperliquidConfig(network="testnet", base_url=fake.base_url, ws_url=fake.ws_url,
                           backoff_s=0.01, max_backoff_s=0.05, ws_give_up_s=0.5)
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        with pytest.raises(StreamUnavailable):
            asyncio.run(asyncio.wait_for(paper_session(
                scenario(), store, hl, VERDICT, override_reason=None,
                kill_file=tmp_path / "runs.kill"), 30))
        status, error = store.con.execute("SELECT status, error FROM runs").fetchone()
    assert status == "failed" and error.startswith("StreamUnavailable: no WebSocket")


@pytest.mark.slow
def test_sigterm_stops_a_venue_session_like_sigint(fake: FakeHyperliquid, tmp_path) -> None:
    """``quorum live --venue`` in a child process, trading; SIGTERM: exit 143, the run
    stored interrupted with its orders' outcomes committed (before: the process ended
    at once, the run left running with its last second of rows unstored)."""
    path = tmp_path / "sigterm.toml"
    path.write_text(SCENARIO)
    db = tmp_path / "runs.duckdb"
    now_ms = time.time_ns() // 1_000_000
    minute = now_ms - now_ms % MIN_MS
    for k in range(6, 0, -1):  # closed history: the warm-up
        p = price(-k)
        fake.push_bar("ETH", "1m", MIN_MS, minute - k * MIN_MS, p, p + 1, p - 1, p, 10.0)
    exchange = Exchange(fake, minute)
    proc = child(db, path, fake)
    try:
        exchange.thread.start()
        wait(lambda: fake.requests["/exchange"] >= 2, "two orders", proc)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        exchange.stop.set()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, out
    assert "Traceback" not in out
    with DuckDBStore(db) as store:
        con = store.con
        status, error, n_bars = con.execute("SELECT status, error, n_bars FROM runs").fetchone()
        (bars,) = con.execute("SELECT count(*) FROM bars").fetchone()
        sent = con.execute("SELECT count(*) FROM venue_orders").fetchone()[0]
        filled = con.execute("SELECT count(*) FROM venue_orders WHERE status = 'filled'"
                             ).fetchone()[0]
    assert (status, error) == ("interrupted", "Interrupted: SIGTERM received")
    assert bars == n_bars >= 4
    assert sent >= 2 and filled >= 1  # the outcomes came back and were committed
