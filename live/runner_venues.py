"""The live session's venue accounts: ``attach_port`` routes scenario venues to a real
venue's order manager (``live.orders.OrderPort``), once per account; before the first bar
each port is started, what a previous process left at the venue resolved and the account
reconciled; while the session runs, snapshots are asked for on a timer. With several
accounts, each one's messages reach the runner's one queue tagged with it (``_FromPort``).

Split from ``live.runner`` along that seam: a paper session has no port, and the runner's
consumer applies what the ports deliver as any other message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from live.farms import trip_farms
from live.observe import VenueCalls
from live.port import Snapshot
from live.risk_state import RiskTrips

if TYPE_CHECKING:
    from live.orders import OrderPort
    from sim.bus import EventBus
    from sim.engine import Engine
    from sim.store import RunStore


class VenueAccounts:
    """``LiveRunner``'s venue accounts (a mixin: the state is the runner's, declared
    below for the type checker only)."""

    if TYPE_CHECKING:
        store: RunStore
        run_id: str
        engine: Engine
        bus: EventBus | None
        queue: asyncio.Queue[object]
        port: OrderPort | None
        ports: list[OrderPort]
        reconciled: bool
        trips: RiskTrips | None
        hold_until_ns: int | None
        interval_ns: int
        reconcile_every_s: float | None
        settle_s: float
        _warming: bool

        async def settle(self, timeout_s: float | None = ...) -> bool: ...
        async def _until(self, done: Any, timeout_s: float = ...) -> None: ...

    def attach_port(self, port: OrderPort, *, hold_until_ns: int, interval_ns: int,
                    reconcile_every_s: float | None = None, settle_s: float = 10.0,
                    venues: Sequence[str] | None = None) -> None:
        """Route the orders of scenario ``venues`` (default: every venue no port has yet)
        to ``port`` (a real venue account) instead of simulating them; bars closed by
        ``hold_until_ns`` (the warm-up) send no order. Called once per account: with
        several, each can fall back on the others (``live.orders``)."""
        desk = self.engine.desk
        names = (list(venues) if venues is not None else
                 [v.name for v in self.engine.router.venues if v.name not in desk.external])
        self.ports.append(port)
        self.port = self.ports[0]
        for name in names:
            desk.attach_external(name, port)
        if len(self.ports) > 1:
            for p in self.ports:
                p.fallback = True  # type: ignore[attr-defined]
        requests = getattr(port, "requests", None)
        if self.bus is not None and requests is not None:  # tool feedback: the venue's health
            requests.on_call = VenueCalls(self.bus, names)
        self.hold_until_ns = hold_until_ns
        self.interval_ns = interval_ns
        self.reconcile_every_s = reconcile_every_s
        self.settle_s = settle_s
        self._warming = True

    async def _start_port(self) -> None:
        """Resolve what a previous process left at the venue, then reconcile, before any
        bar is taken."""
        assert self.port is not None
        self.trips = RiskTrips(self.store.con,  # type: ignore[attr-defined]
                               self.run_id, self.engine.risk, trip_farms(self.engine))
        several = len(self.ports) > 1
        for k, port in enumerate(self.ports):
            await port.start(_PortQueue(self.queue, k) if several else self.queue)
        await self.settle()
        for k, port in enumerate(self.ports):
            for _ in range(3):  # until a round finds the account quiet enough to compare all
                port.request_snapshot()
                await self._until(
                    (lambda msg, k=k: isinstance(msg, _FromPort) and msg.port == k
                     and isinstance(msg.msg, Snapshot)) if several
                    else (lambda msg: isinstance(msg, Snapshot)))
                await self.settle()
                if self.reconciled:
                    break

    async def _reconcile_every(self, seconds: float) -> None:
        assert self.port is not None
        while True:
            await asyncio.sleep(seconds)
            for port in self.ports:
                port.request_snapshot()


class _FromPort:
    """A message of account ``port`` (its index in ``LiveRunner.ports``), in a session
    trading several."""

    __slots__ = ("msg", "port")

    def __init__(self, port: int, msg: object) -> None:
        self.port, self.msg = port, msg

class _PortQueue:
    """What an order manager of a several-account session delivers to: the runner's
    queue, each message tagged with its account (an error ends the session as it is)."""

    __slots__ = ("port", "queue")

    def __init__(self, queue: asyncio.Queue[object], port: int) -> None:
        self.queue, self.port = queue, port

    def put_nowait(self, msg: object) -> None:
        self.queue.put_nowait(msg if isinstance(msg, BaseException)
                              else _FromPort(self.port, msg))
