"""The API served beside a run or a session, in the same process: uvicorn on its own
thread and event loop, so a request never runs on the trading path's thread."""

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

from quorum.api.app import create_app
from quorum.api.metrics import BusMetrics
from quorum.api.reads import StoreReader
from quorum.api.serve import check_binding, load_keys, parse_address
from quorum.api.stream import StreamHub
from sim.bus import EventBus


class ApiServer:
    def __init__(self, app: Any, host: str, port: int) -> None:
        config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                                access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="quorum-api",
                                       daemon=True)

    def start(self, timeout_s: float = 10.0) -> ApiServer:
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
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
    app = create_app(StoreReader(con, default_run=run_id), keys, mode=mode, store=db, hub=hub,
                     metrics=BusMetrics(bus))
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
