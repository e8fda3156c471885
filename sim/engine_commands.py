"""What changes the engine between bars rather than with them: the agent set (an agent
added, rebuilt, stopped or given a standing signal by ``sim.lifecycle``), the account's
kill switch, the scenario's timed events (venue health, latency, reject rate) and the
queue's end-of-data handling of what was scheduled for a time the data never reached.

Split from ``sim.engine`` along that seam: the engine keeps the per-bar loop and the
decision path; none of this runs on a bar, only on a command or a queued event. Also here:
the mark (``_Revote``) a command or a stale signal leaves in ``Engine._pending`` to have
consensus vote again at the next close.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sim.event_queue import PRIORITY_EVENT
from sim.messages import ScenarioEvent, Side, Signal
from sim.venue import DEGRADED, DOWN, UP

if TYPE_CHECKING:
    from sim.clock import SimClock
    from sim.engine import AgentSlot
    from sim.event_queue import EventQueue
    from sim.execution import ExecutionDesk
    from sim.performance import AgentPerformance
    from sim.recorder import Recorder
    from sim.risk import RiskEngine
    from sim.router import VenueRouter
    from sim.view import MarketView


# A decision that waits for the next open, as ``Engine._release`` takes it: (decision id,
# decision time, side, target exposure, the agents its order is attributed to). The
# decision's row is recorded; no ``Decision`` message is made for the order.
Held = tuple[int, int, Side, float, tuple[str, ...]]


@dataclass(slots=True)
class _Revote:
    """In ``Engine._pending``: vote at this bar's close; ``held`` is the decision it
    displaced, still released at the open."""

    held: Held | None



class EngineCommands:
    """``Engine``'s commands and scheduled events (a mixin: the state is the engine's,
    declared below for the type checker only)."""

    if TYPE_CHECKING:
        agents: list[tuple[AgentSlot, ...]]
        risk: RiskEngine
        router: VenueRouter
        recorder: Recorder
        clock: SimClock
        queue: EventQueue
        desk: ExecutionDesk
        performance: AgentPerformance
        _standing: list[list[Signal | None]]
        _signal_ts: list[list[int]]
        _pending: list[Held | None]
        _agent_calls: list[tuple[tuple[int, Callable[[MarketView], Any]], ...]]
        _agent_names: list[tuple[str, ...]]
        _agent_indexes: list[tuple[int, ...]]
        _timed: dict[Callable[[Any], None], Callable[[Any], str]]

        def _accept_signal(self, s: int, pos: int, signal: Signal, ts: int) -> None: ...

    # -- the agent set changes (sim.lifecycle), between bars only ----------------------
    def add_slot(self, s: int, slot: AgentSlot) -> int:
        """A new agent instance on symbol ``s`` (it calls nothing until ``set_calls``);
        returns its position, its column in the symbol's votes from now on."""
        self.agents[s] = (*self.agents[s], slot)
        self._standing[s].append(None)
        self._signal_ts[s].append(0)
        self._agent_names[s] = (*self._agent_names[s], slot.name)
        self._agent_indexes[s] = (*self._agent_indexes[s], slot.index)
        self.performance.add_slot(s)
        return len(self.agents[s]) - 1

    def replace_slot(self, s: int, pos: int, slot: AgentSlot) -> None:
        """A rebuilt agent takes position ``pos`` of symbol ``s`` (``update``)."""
        slots = list(self.agents[s])
        slots[pos] = slot
        self.agents[s] = tuple(slots)

    def set_calls(self, s: int, calls: tuple[tuple[int, Callable[[MarketView], Any]], ...]
                  ) -> None:
        """The (position, on_bar) pairs symbol ``s``'s bars call from the next bar on: a
        lifecycle change swaps this tuple, so the bar path tests no state."""
        self._agent_calls[s] = calls

    def set_standing(self, s: int, pos: int, signal: Signal | None, ts: int) -> None:
        """Give (a signal: recorded as the agent's) or withdraw (None) the standing
        signal of position ``pos`` on ``s``; consensus votes again at the next bar."""
        standing = self._standing[s]
        if signal is None:
            if standing[pos] is None:
                return
        elif signal is not standing[pos]:
            self._accept_signal(s, pos, signal, ts)
        standing[pos] = signal
        self.revote(s)

    def standing(self, s: int, pos: int) -> Signal | None:
        return self._standing[s][pos]

    def revote(self, s: int) -> None:
        """Consensus on ``s`` votes at the close of its next bar (as a stale signal
        makes it: the mark rides in ``_pending``)."""
        pending = self._pending[s]
        if pending.__class__ is not _Revote:
            self._pending[s] = _Revote(pending)  # type: ignore[call-overload]

    def kill(self, ts: int, flatten: bool = False) -> None:
        """The account's kill switch: only position-reducing orders pass from now on;
        working entries are cancelled; positions closed with ``flatten`` (or the risk
        limits' ``flatten_on_trip``)."""
        self.risk.kill()
        self.desk.cancel_entries(ts, "kill switch")
        if flatten or self.risk.limits.flatten_on_trip:
            self.desk.flatten(ts)

    # -- scenario events and dispatch -------------------------------------------------
    def schedule_events(self, events: Sequence[ScenarioEvent]) -> None:
        """Put scenario events on the queue; each runs before the bars at its time."""
        for event in events:
            self.schedule(event.ts, self._on_event, event, _event_name)

    def _on_event(self, event: ScenarioEvent) -> None:
        kind = event.kind
        if kind == "kill_switch":
            self.kill(event.ts)
            return
        if kind == "venue_latency" and event.venue is not None:
            self.router.venue(event.venue).added_latency_ms = float(event.value or 0.0)
            return
        if kind == "venue_reject_rate" and event.venue is not None:
            self.router.venue(event.venue).reject_rate = float(event.value or 0.0)
            return
        health = {"venue_down": DOWN, "venue_up": UP, "venue_degraded": DEGRADED}.get(kind)
        if health is None or event.venue is None:
            raise ValueError(f"unknown scenario event {event!r}")
        self.router.set_health(event.venue, health)

    def schedule(self, ts: int, handler: Callable[[Any], None], message: Any,
                 name: Callable[[Any], str]) -> None:
        """Run ``handler(message)`` before the bars at ``ts`` (a scenario's event or
        lifecycle command); ``name`` names it should the data end before ``ts``
        (``finish``)."""
        self._timed[handler] = name
        self.queue.push(ts, PRIORITY_EVENT, handler, message)

    def _drain_remaining(self) -> None:
        """At the end: what is in flight (orders on their way, expiries) runs as before;
        what was scheduled for a time the data never reached is recorded, not run."""
        queue, timed = self.queue, self._timed
        while queue:
            item = queue.pop()
            name = timed.get(item.handler)
            if name is None:
                self.clock.advance_to(item.ts)
                item.handler(item.message)
                continue
            self.recorder.rare_row("run_info", (
                "not_run", f"{name(item.message)} at {_when(item.ts)}: after the "
                "data's end"))


def _when(ns: int) -> str:
    return datetime.fromtimestamp(ns // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _event_name(event: ScenarioEvent) -> str:
    return event.kind if event.venue is None else f"{event.kind} {event.venue}"

