"""Component health: each part of a running system is healthy, degraded or critical,
with the reason and the time it became so; the overall status is the worst of them.

Components are named ``kind`` or ``kind:name``: ``feed:<symbol>`` (bars arriving),
``venue:<name>`` (up, errors, rejects, latency), ``agent:<name>`` (errors, lifecycle,
silence), ``store`` (the writer), ``reconciliation``, ``risk`` (breaker, kill switch).
A change is published on the bus (topic ``health``) and so stored and alerted on; a
state that does not change publishes nothing, so heartbeats cost no rows.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from sim.bus import HEALTH, EventBus
from sim.bus_events import HealthChanged

HEALTHY, DEGRADED, CRITICAL = "healthy", "degraded", "critical"
STATES = (HEALTHY, DEGRADED, CRITICAL)
_RANK = {HEALTHY: 0, DEGRADED: 1, CRITICAL: 2}
OVERALL = "overall"


@dataclass(frozen=True, slots=True)
class ComponentHealth:
    component: str
    state: str
    reason: str
    since: int  # ns: when it entered this state


def worst(*states: str) -> str:
    return max(states, key=_RANK.__getitem__, default=HEALTHY)


class HealthBoard:
    """The current state of every component; ``set`` publishes changes, and a change
    of the worst state publishes the ``overall`` component too."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self._states: dict[str, ComponentHealth] = {}
        self._lock = threading.Lock()

    def set(self, ts: int, component: str, state: str, reason: str = "") -> bool:
        """Put ``component`` in ``state``; True (and published) when that changed it."""
        if state not in _RANK:
            raise ValueError(f"unknown health state {state!r}; one of {STATES}")
        with self._lock:
            current = self._states.get(component)
            if current is not None and current.state == state:
                return False
            if current is None and state == HEALTHY and not reason:
                # first sight of a healthy component: known, but not a change worth a row
                self._states[component] = ComponentHealth(component, state, reason, ts)
                return False
            before = self._overall()
            self._states[component] = ComponentHealth(component, state, reason, ts)
            after = self._overall()
        self.bus.publish(HEALTH, ts, HealthChanged(
            ts, component, state, None if current is None else current.state, reason))
        if after[0] != before[0]:
            self.bus.publish(HEALTH, ts, HealthChanged(ts, OVERALL, after[0], before[0],
                                                       after[1]))
        return True

    def get(self, component: str) -> ComponentHealth | None:
        return self._states.get(component)

    def components(self) -> list[ComponentHealth]:
        with self._lock:
            return sorted(self._states.values(), key=lambda c: c.component)

    def overall(self) -> tuple[str, str]:
        """(worst state, the components in it with their reasons)."""
        with self._lock:
            return self._overall()

    def _overall(self) -> tuple[str, str]:
        states = list(self._states.values())
        state = worst(*(c.state for c in states))
        if state == HEALTHY:
            return state, ""
        return state, "; ".join(f"{c.component}: {c.reason}" for c in states
                                if c.state == state)
