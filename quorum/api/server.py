"""The API served beside a run or a session, in the same process: uvicorn on its own
thread and event loop, so a request never runs on the trading path's thread.

``watched`` serves a backtest (``quorum run --api``): reads and the stream, control
read-only (a backtest is steered by its scenario's ``[[events]]``, deterministically).
``SessionApi`` serves a live session (``quorum live --api``): the same, with control
over the session's runner (``quorum.api.control.SessionControl``)."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn

from quorum.api import audit
from quorum.api.app import create_app
from quorum.api.control import ControlConfig, ReadOnlyControl, SessionControl
from quorum.api.metrics import BusMetrics
from quorum.api.reads import StoreReader
from quorum.api.serve import ServeUsageError, check_binding, load_keys, parse_address
from quorum.api.stream import StreamHub
from sim.bus import EventBus


class ApiServer:
    """uvicorn on a thread of its own. While it serves, the interpreter's thread switch
    interval is ``switch_interval_s`` (0.5 ms, not CPython's 5 ms): the server's thread
    shares the interpreter lock with the trading loop, and a market event that arrives
    while the server holds the lock waits at most one interval for it."""

    def __init__(self, app: Any, host: str, port: int, *,
                 switch_interval_s: float | None = 0.0005) -> None:
        self.switch_interval_s = switch_interval_s
        self._interval_before: float | None = None
        # No per-message deflate: compressing each frame once per client costs the
        # process (and the interpreter lock it shares with the trading loop) far more CPU
        # than the bytes it saves on loopback or a LAN. HTTP parsed by httptools (C), not
        # h11 (Python).
        config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                                access_log=False, lifespan="off",
                                ws_per_message_deflate=False, http="httptools")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="quorum-api",
                                       daemon=True)

    def start(self, timeout_s: float = 10.0) -> ApiServer:
        if self.switch_interval_s is not None:
            self._interval_before = sys.getswitchinterval()
            sys.setswitchinterval(self.switch_interval_s)
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise OSError("the API server did not start (is the port taken?)")
            time.sleep(0.01)
        return self

    @property
    def port(self) -> int:
        sockets = [s for server in self.server.servers for s in server.sockets]
        return int(sockets[0].getsockname()[1]) if sockets else self.server.config.port

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(5)
        if self._interval_before is not None:
            sys.setswitchinterval(self._interval_before)
            self._interval_before = None


@dataclass(frozen=True, slots=True)
class Watch:
    """A run's bus (None: nobody watches) and, with ``--api``, where it is served."""

    bus: EventBus | None
    url: str | None = None


@contextmanager
def watched(con: Any, db: str, args: argparse.Namespace, mode: str,
            run_id: str | None = None) -> Iterator[Watch]:
    """With ``--api``: a bus for the run to publish on, its stream and the API over the
    run's own store connection, served until the block ends; reads default to ``run_id``
    (the run being watched). Without: no bus."""
    if getattr(args, "api", None) is None:
        yield Watch(None)
        return
    host, port = parse_address(args.api)
    keys = load_keys(getattr(args, "keys", None))
    check_binding(host, keys)
    bus = EventBus()
    hub = StreamHub(bus)
    audit.create_table(con)
    control = ReadOnlyControl("read-only: a backtest is steered by its scenario's [[events]]"
                              " (deterministic); `quorum live --api` takes commands",
                              audit_con=con)
    app = create_app(StoreReader(con, default_run=run_id), keys, mode=mode, store=db, hub=hub,
                     metrics=BusMetrics(bus), controller=control)
    server = ApiServer(app, host, port).start()
    url = f"http://{host}:{server.port}"
    print(f"quorum {mode}: API at {url} (OpenAPI at /docs, stream at /ws; keys "
          f"{'required' if keys.required else 'off, loopback only'})", file=sys.stderr,
          flush=True)
    try:
        yield Watch(bus, url)
    finally:
        bus.close()
        server.stop()


def parse_rate(text: str | None) -> ControlConfig:
    """``--api-rate RATE[:BURST]``: control calls per second per key, and how many may
    come at once (default 5:20)."""
    if not text:
        return ControlConfig()
    rate, _, burst = text.partition(":")
    try:
        return ControlConfig(rate_per_s=float(rate),
                             **({"burst": int(burst)} if burst else {}))
    except ValueError as exc:  # pydantic's ValidationError is one
        last = str(exc).strip().splitlines()[-1].strip()
        raise ServeUsageError(f"--api-rate {text!r}: expected RATE[:BURST], e.g. 5:20 "
                              f"(calls per second per key, burst): {last}") from None


class SessionApi:
    """``quorum live --api``: the address and keys checked before anything connects (a
    bad one is exit 2), the server started once the session's runner exists
    (``attach``), on the runner's own bus, store connection and run."""

    def __init__(self, args: argparse.Namespace, *, stream_buffer: int = 10_000) -> None:
        self.host, self.port = parse_address(args.api)
        self.keys = load_keys(getattr(args, "keys", None))
        check_binding(self.host, self.keys)
        self.control = parse_rate(getattr(args, "api_rate", None))
        self.db = str(getattr(args, "db", "") or "")
        # The session's bus, with the stream on it before the engine is built (it
        # publishes bars and equity only when someone listens then).
        self.bus = EventBus(history=10_000)
        self.hub = StreamHub(self.bus, buffer=stream_buffer)  # messages kept for catch-up
        self.metrics = BusMetrics(self.bus)
        self.server: ApiServer | None = None
        self.url: str | None = None

    def attach(self, runner: Any) -> None:
        """Serve ``runner``'s session, built on ``self.bus`` (called before it runs)."""
        if runner.bus is not self.bus:
            raise ValueError("the session's runner must be built on SessionApi.bus")
        con = runner.store.con
        audit.create_table(con)
        app = create_app(StoreReader(con, default_run=runner.run_id), self.keys,
                         mode=runner.mode, store=self.db, hub=self.hub, metrics=self.metrics,
                         controller=SessionControl(runner), control=self.control)
        try:
            self.server = ApiServer(app, self.host, self.port).start()
        except OSError as exc:
            raise ServeUsageError(f"--api {self.host}:{self.port}: {exc}") from None
        self.url = f"http://{self.host}:{self.server.port}"
        line = (f"quorum live: API at {self.url} (OpenAPI at /docs, stream at /ws, dashboard "
                f"at /; keys {'required' if self.keys.required else 'off, loopback only'})")
        threading.Thread(target=self._announce, args=(runner, line), daemon=True,
                         name="quorum-api-ready").start()

    def _announce(self, runner: Any, line: str) -> None:
        """Say where the API is (on stdout, for scripts) once the session runs: from then
        on its run is stored and its commands are taken."""
        while runner.writer is None and self.server is not None:
            time.sleep(0.01)
        if self.server is not None:
            print(line, flush=True)

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
