"""The live stream: bus events as JSON messages on named topics, with catch-up.

``StreamHub`` subscribes to the event bus off the trading path (a queued subscription: the
pipeline only appends to a bounded queue) and turns each envelope into a message on one
or more stream topics:

=================  ===================================================================
``market:update``   a bar closed
``agent:update``    an agent's signal changed, or its lifecycle state
``trades:{agent}``  an order behind a decision the agent voted for reached its end
                    (also ``trades:all``)
``trade:alert``     an alert fired
``logs:all``        a log line (also ``logs:{agent}`` when it names one)
``health``          a component's health changed
``equity``          the account at the end of a time step
``system:event``    decisions, order events, fills, denials, routes, funding,
                    liquidations, positions, agent errors
=================  ===================================================================

Every message carries the bus sequence number. The hub keeps the last ``buffer``
messages: a client that reconnects with the last ``seq`` it saw gets what it missed, or
a ``gap`` message (reload from the REST endpoints) when that is older than the buffer.
A client is a bounded queue: one that falls ``client_queue`` messages behind is dropped,
never waited for.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import json
import math
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sim import bus as topics
from sim.bus import Envelope, EventBus

STREAM_TOPICS = ("market:update", "agent:update", "trades:{agent}", "trade:alert",
                 "logs:all", "logs:{agent}", "health", "equity", "system:event")
_SYSTEM = frozenset((topics.DECISION, topics.ORDER, topics.FILL, topics.DENIAL,
                     topics.ROUTE, topics.FUNDING, topics.LIQUIDATION, topics.POSITION,
                     topics.AGENT_ERROR))


def plain(value: Any) -> Any:
    """A message field as JSON: dataclasses as objects, enums by name, no NaN."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass(slots=True)
class Client:
    """One stream subscriber: the topics it asked for and its bounded queue."""

    topics: frozenset[str]
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[tuple[int, str] | None] = field(
        default_factory=lambda: asyncio.Queue(1000))
    dropped: bool = False

    def wants(self, stream_topics: Iterable[str]) -> bool:
        return any(t in self.topics for t in stream_topics)

    def offer(self, seq: int, text: str) -> None:
        """Called on the hub's thread: hand over, or drop the client if it is behind."""
        try:
            self.loop.call_soon_threadsafe(self._put, (seq, text))
        except RuntimeError:  # its loop is closed: the client is gone
            self.dropped = True

    def _put(self, item: tuple[int, str]) -> None:
        if self.dropped:
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped = True
            self.queue = asyncio.Queue(1)
            self.queue.put_nowait(None)  # tells the sender to close: too slow


_BATCH = 256  # messages handed over at most at once


def _hand_over(batch: list[tuple[Client, list[tuple[int, str]]]]) -> None:
    """On the clients' loop: each client's messages of one batch."""
    for client, items in batch:
        for item in items:
            client._put(item)


class StreamHub:
    def __init__(self, bus: EventBus, *, buffer: int = 10_000) -> None:
        self._buffer: deque[tuple[int, tuple[str, ...], str]] = deque(maxlen=buffer)
        self._clients: list[Client] = []
        self._lock = threading.Lock()
        self._voters: dict[int, tuple[str, ...]] = {}  # decision id -> agents on its side
        self.last_seq = 0
        self.evicted_upto = 0  # the newest sequence number dropped from the buffer
        self._outbox: list[tuple[int, tuple[str, ...], str]] = []  # the hub thread's own
        self.subscription = bus.subscribe_queued(self._on_event, maxlen=100_000,
                                                 name="stream")

    # -- from the bus (the hub's worker thread) ----------------------------------------
    def _on_event(self, envelope: Envelope) -> None:
        stream_topics = self.route(envelope)
        if stream_topics:
            self._publish(envelope, stream_topics)
        # What a step published goes to the clients together, once nothing more is queued
        # (or once a busy stream has piled up a batch).
        subscription = getattr(self, "subscription", None)
        if self._outbox and (subscription is None or not subscription.pending()
                             or len(self._outbox) >= _BATCH):
            self._flush()

    def _publish(self, envelope: Envelope, stream_topics: tuple[str, ...]) -> None:
        text = json.dumps({"seq": envelope.seq, "topic": stream_topics[0],
                           "topics": list(stream_topics), "kind": envelope.topic,
                           "ts": envelope.ts, "data": plain(envelope.event)},
                          separators=(",", ":"))
        with self._lock:
            if len(self._buffer) == self._buffer.maxlen:
                self.evicted_upto = self._buffer[0][0]
            self._buffer.append((envelope.seq, stream_topics, text))
            self.last_seq = envelope.seq
        self._outbox.append((envelope.seq, stream_topics, text))

    def _flush(self) -> None:
        """Hand the waiting messages to the clients: one wake-up per event loop and one
        batch per client, not one per message (each hand-over wakes a client's task and
        each wake-up sends a frame; all of it shares the interpreter lock with the trading
        loop)."""
        outbox, self._outbox = self._outbox, []
        with self._lock:
            clients = list(self._clients)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Client, list[tuple[int, str]]]]] = {}
        by_topics: dict[frozenset[str], list[tuple[int, str]]] = {}  # most clients share one
        for client in clients:
            mine = by_topics.get(client.topics)
            if mine is None:
                mine = by_topics[client.topics] = [
                    (seq, text) for seq, stream_topics, text in outbox
                    if client.wants(stream_topics)]
            if mine:
                by_loop.setdefault(client.loop, []).append((client, mine))
        for loop, batch in by_loop.items():
            try:
                loop.call_soon_threadsafe(_hand_over, batch)
            except RuntimeError:  # its loop is closed: those clients are gone
                for client, _ in batch:
                    client.dropped = True

    def route(self, envelope: Envelope) -> tuple[str, ...]:
        """The stream topics an envelope goes to (first: its main topic)."""
        kind, event = envelope.topic, envelope.event
        if kind == topics.BAR:
            return ("market:update",)
        if kind in (topics.SIGNAL, topics.AGENT):
            return ("agent:update",)
        if kind == topics.DECISION:
            self._voters[event.decision_id] = tuple(
                agent for agent, vote in zip(event.agents, event.votes, strict=True)
                if vote is not None and vote.side == event.side)
            return ("system:event",)
        if kind == topics.ORDER_CLOSED:
            voters = self._voters.get(event.decision_id, ())
            return ("trades:all", *(f"trades:{a}" for a in voters))
        if kind == topics.ALERT:
            return ("trade:alert",)
        if kind == topics.LOG:
            agent = getattr(event, "agent", None)
            return ("logs:all", f"logs:{agent}") if agent else ("logs:all",)
        if kind == topics.HEALTH:
            return ("health",)
        if kind == topics.EQUITY:
            return ("equity",)
        if kind in _SYSTEM:
            return ("system:event",)
        return ()

    # -- to clients --------------------------------------------------------------------
    def since(self, seq: int, wanted: Iterable[str]) -> list[tuple[int, str]] | None:
        """Messages after ``seq`` on ``wanted`` topics, or None when some were dropped
        from the buffer (a gap: reload)."""
        wanted = frozenset(wanted)
        with self._lock:
            if seq < self.evicted_upto:
                return None
            kept = list(self._buffer)
        return [(s, text) for s, ts, text in kept
                if s > seq and any(t in wanted for t in ts)]

    def connect(self, wanted: Iterable[str], loop: asyncio.AbstractEventLoop) -> Client:
        client = Client(frozenset(wanted), loop)
        with self._lock:
            self._clients.append(client)
        return client

    def disconnect(self, client: Client) -> None:
        with self._lock:
            if client in self._clients:
                self._clients.remove(client)

    @property
    def clients(self) -> int:
        return len(self._clients)
