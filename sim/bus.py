"""The event bus: one typed, in-process publish/subscribe stream of what the pipeline does.

Every domain event (a bar closed, a signal changed, a decision, an order's event, a fill,
a denial, an agent's state, a health change, an alert) is published once, as a small
frozen message in an ``Envelope`` with a sequence number. Observers (the alert detectors,
the log, the per-agent figures, the control API's stream) subscribe; the recorder stays
the one writer of the store's rows.

Two delivery modes, one API:

* **Backtests** deliver synchronously, in publication order, on the engine's thread:
  deterministic (sequence numbers and handler calls are the same on every replay), so a
  detector raises the same alerts at the same sim time on every run.
* **Sessions** subscribe with ``EventBus.subscribe_queued``: ``publish`` only appends to
  a bounded queue and returns; a worker thread calls the handler. A slow subscriber never
  delays an order: when its queue is full the oldest events are dropped and counted in
  ``QueuedSubscription.missed``, and it can catch up from a sequence number out of the
  bus's bounded history (``EventBus.since``).

Publishing costs nothing when nobody listens: ``wants(topic)`` is one set lookup, and the
pipeline publishes its per-event messages through ``ObservedRecorder`` (``sim.observed``),
installed only when a run has observers, so an unobserved backtest runs exactly the code it
ran before the bus existed.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

# Topics: what a subscriber names. One per kind of message (see sim.bus_events).
BAR = "bar"
SIGNAL = "signal"
DECISION = "decision"
ORDER = "order"  # an order's event (submitted, sent, arrived, filled, cancelled, ...)
ORDER_CLOSED = "order_closed"  # an order in its terminal state
FILL = "fill"
DENIAL = "denial"
ROUTE = "route"
FUNDING = "funding"
LIQUIDATION = "liquidation"
EQUITY = "equity"
POSITION = "position"
AGENT = "agent"  # an agent's lifecycle state changed, or a command was rejected
AGENT_ERROR = "agent_error"
HEALTH = "health"
ALERT = "alert"
LOG = "log"
# What a session's edges report for the monitor to judge: a component's state seen from
# outside the pipeline (reconciliation, the feed's REST fallback), a call to a tool.
COMPONENT = "component"
CALL = "call"
TOPICS = frozenset((BAR, SIGNAL, DECISION, ORDER, ORDER_CLOSED, FILL, DENIAL, ROUTE, FUNDING,
                    LIQUIDATION, EQUITY, POSITION, AGENT, AGENT_ERROR, HEALTH, ALERT, LOG,
                    COMPONENT, CALL))
ALL = "*"


@dataclass(frozen=True, slots=True)
class Envelope:
    """One published event: ``seq`` counts from 1 over the bus's life, ``ts`` is the event
    time (engine clock, ns), ``event`` the typed message (``sim.bus_events``)."""

    seq: int
    topic: str
    ts: int
    event: Any


Handler = Callable[[Envelope], None]


class Subscription:
    """A synchronous subscriber: ``handler`` is called inside ``publish``."""

    __slots__ = ("handler", "topics")

    def __init__(self, handler: Handler, topics: frozenset[str]) -> None:
        self.handler = handler
        self.topics = topics

    def deliver(self, envelope: Envelope) -> None:
        self.handler(envelope)

    def close(self) -> None:
        """Nothing to stop for a synchronous subscriber."""


class StepGate:
    """Whether the trading path is inside a step (a session's bar, from arrival to the
    orders it makes): queued observers wait while it is, and run in the gaps between
    steps. They share the process's interpreter lock with the trading path, so an observer
    woken by an event of this very step (the bar's own ``market:update``) would otherwise
    take turns with it and delay its orders. A step longer than ``limit_s`` (a resumed
    session's warm-up) stops holding them back: their queues are bounded."""

    __slots__ = ("_since", "limit_s")

    def __init__(self, limit_s: float = 0.05) -> None:
        self._since: float | None = None
        self.limit_s = limit_s

    def begin(self) -> bool:
        """A step starts (False: one is already under way, and it ends the hold)."""
        if self._since is not None:
            return False
        self._since = time.monotonic()
        return True

    def end(self) -> None:
        self._since = None

    def holding(self) -> float:
        """Seconds the hold still lasts (0.0: observers may run)."""
        since = self._since
        if since is None:
            return 0.0
        return max(0.0, self.limit_s - (time.monotonic() - since))


class QueuedSubscription(Subscription):
    """A subscriber served off the publishing thread through a bounded queue.

    ``deliver`` never blocks: a full queue drops its oldest event and counts it in
    ``missed`` (the subscriber can reload from ``EventBus.since``). A handler that raises
    is counted in ``errors`` and the worker goes on: an observer's bug never reaches the
    trading path.
    """

    __slots__ = ("_gate", "_maxlen", "_queue", "_ready", "_stopping", "_thread", "delivered",
                 "errors", "last_seq", "missed")

    def __init__(self, handler: Handler, topics: frozenset[str], maxlen: int,
                 name: str, gate: StepGate | None = None) -> None:
        super().__init__(handler, topics)
        self._gate = gate or StepGate()
        self._queue: deque[Envelope] = deque()
        self._ready = threading.Condition()
        self._stopping = False
        self.missed = 0
        self.delivered = 0
        self.errors = 0
        self.last_seq = 0  # the last sequence number handed to the handler
        self._maxlen = maxlen
        self._thread = threading.Thread(target=self._work, name=f"bus:{name}", daemon=True)
        self._thread.start()

    def deliver(self, envelope: Envelope) -> None:
        with self._ready:
            if len(self._queue) >= self._maxlen:
                self._queue.popleft()
                self.missed += 1
            self._queue.append(envelope)
            if not self._gate.holding():  # else ``wake`` at the step's end
                self._ready.notify()

    def wake(self) -> None:
        """The trading path's step ended: deliver what it published."""
        with self._ready:
            self._ready.notify()

    def pending(self) -> int:
        return len(self._queue)

    def _work(self) -> None:
        while True:
            with self._ready:
                while not self._stopping:
                    if not self._queue:  # events of a step that outlasts its hold
                        # come without a wake-up: look again at that pace
                        self._ready.wait(self._gate.limit_s)
                        continue
                    held = self._gate.holding()
                    if not held:
                        break
                    self._ready.wait(held)
                if not self._queue:  # stopping and drained
                    return
                envelope = self._queue.popleft()
            try:
                self.handler(envelope)
            except Exception:  # an observer's failure is counted, never raised
                self.errors += 1
            self.delivered += 1
            self.last_seq = envelope.seq

    def close(self, timeout: float = 2.0) -> None:
        """Deliver what is queued (within ``timeout`` seconds), then stop the worker."""
        with self._ready:
            self._stopping = True
            self._ready.notify()
        self._thread.join(timeout)


class EventBus:
    """Publish typed events to subscribers, numbered in publication order.

    ``history`` keeps the last events (0: none, the backtest default) so a subscriber that
    missed some can catch up with ``since(seq)``; a gap older than the history is reported
    by ``since`` returning None, for the caller to reload from the store.
    """

    def __init__(self, history: int = 0) -> None:
        self.seq = 0
        self._subscriptions: list[Subscription] = []
        self._by_topic: dict[str, tuple[Subscription, ...]] = {}
        self._wanted: frozenset[str] = frozenset()
        self._history: deque[Envelope] | None = deque(maxlen=history) if history else None
        self._lock = threading.Lock()  # publishers may be several threads in a session
        self.gate = StepGate()

    # -- subscribing -------------------------------------------------------------------
    def subscribe(self, handler: Handler, topics: Iterable[str] = (ALL,)) -> Subscription:
        """Call ``handler(envelope)`` synchronously for every event on ``topics``."""
        return self._add(Subscription(handler, _topics(topics)))

    def subscribe_queued(self, handler: Handler, topics: Iterable[str] = (ALL,), *,
                         maxlen: int = 10_000, name: str = "subscriber") -> QueuedSubscription:
        """Call ``handler`` on a worker thread through a queue of at most ``maxlen``."""
        subscription = QueuedSubscription(handler, _topics(topics), maxlen, name, self.gate)
        self._add(subscription)
        return subscription

    @contextmanager
    def step(self) -> Iterator[None]:
        """A step of the trading path (a session's bar): queued subscribers hold what it
        publishes until it ends (at most ``gate.limit_s``), then get it at once."""
        gate = self.gate
        if not gate.begin():  # nested: the outer step ends it
            yield
            return
        try:
            yield
        finally:
            gate.end()
            for subscription in self._subscriptions:
                if isinstance(subscription, QueuedSubscription):
                    subscription.wake()

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            if subscription in self._subscriptions:
                self._subscriptions.remove(subscription)
            self._reindex()
        subscription.close()

    def close(self) -> None:
        """Stop every subscriber (queued ones deliver what they hold first)."""
        for subscription in list(self._subscriptions):
            self.unsubscribe(subscription)

    def _add(self, subscription: Subscription) -> Subscription:
        with self._lock:
            self._subscriptions.append(subscription)
            self._reindex()
        return subscription

    def _reindex(self) -> None:
        by_topic: dict[str, list[Subscription]] = {}
        for sub in self._subscriptions:
            for topic in (TOPICS if ALL in sub.topics else sub.topics):
                by_topic.setdefault(topic, []).append(sub)
        self._by_topic = {topic: tuple(subs) for topic, subs in by_topic.items()}
        self._wanted = frozenset(self._by_topic)

    # -- publishing --------------------------------------------------------------------
    def wants(self, topic: str) -> bool:
        """True when someone listens to ``topic`` (publishers skip building the message
        otherwise). History alone does not count: nobody would read it."""
        return topic in self._wanted

    def publish(self, topic: str, ts: int, event: Any) -> int:
        """Number ``event`` and deliver it; returns its sequence number (0: nobody
        listened and nothing was kept)."""
        subscribers = self._by_topic.get(topic)
        history = self._history
        if subscribers is None and history is None:
            return 0
        with self._lock:
            self.seq += 1
            envelope = Envelope(self.seq, topic, ts, event)
            if history is not None:
                history.append(envelope)
        if subscribers is not None:
            for subscriber in subscribers:
                subscriber.deliver(envelope)
        return envelope.seq

    def since(self, seq: int, topics: Iterable[str] = (ALL,)) -> list[Envelope] | None:
        """Events after ``seq`` still in the history, oldest first; None when some
        between ``seq`` and the oldest kept were already dropped (a gap: reload)."""
        if self._history is None:
            return None if seq < self.seq else []
        wanted = _topics(topics)
        with self._lock:
            kept = list(self._history)
        if kept and kept[0].seq > seq + 1:
            return None
        if not kept and seq < self.seq:
            return None
        every = ALL in wanted
        return [e for e in kept if e.seq > seq and (every or e.topic in wanted)]


def _topics(topics: Iterable[str]) -> frozenset[str]:
    names = frozenset((topics,) if isinstance(topics, str) else topics)
    unknown = names - TOPICS - {ALL}
    if unknown:
        raise ValueError(f"unknown bus topic(s) {sorted(unknown)}; known: {sorted(TOPICS)}")
    return names
