"""What the kernel forgives an agent that fails, and what it counts against it.

``on_error = "fail"`` (the backtest default: an exception there is a bug to see) calls the
agent as it is, so its exception ends the run. ``"abstain"`` (the session default) calls it
through a wrapper: an exception is stored (an ``agent_errors`` row of kind "exception":
bar, type, message, a digest of the traceback) and published (``AgentFailed``), the
agent's signal on that symbol is withdrawn (a HOLD: no opinion) and it stays active,
until ``max_errors`` within ``error_window`` trip its circuit breaker (``on_trip``: the
roster puts it in ``errored``). Once it works again with an unchanged view, its last
signal stands again. In a session, an agent with a ``latency_budget_ms`` is timed; a
slower bar is an ``agent_errors`` row of kind "latency", counted and published.
"""

from __future__ import annotations

import hashlib
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sim.bus import AGENT_ERROR, EventBus
from sim.bus_events import AgentFailed
from sim.messages import HOLD, Signal
from sim.recorder import Recorder
from sim.view import MarketView

if TYPE_CHECKING:
    from sim.lifecycle import AgentState

OnBar = Callable[[MarketView], Signal | None]


@dataclass(frozen=True, slots=True)
class ErrorPolicy:
    """What an agent's failures do: ``fail`` the run, or ``abstain`` (stored, signal
    withdrawn, still active) until ``max_errors`` within ``error_window_ns`` (None: since
    it last started or resumed; ``max_errors`` None: never) trip its breaker.
    ``latency_budget_ns``: slower bars are flagged (sessions only)."""

    on_error: str = "fail"
    max_errors: int | None = 5
    error_window_ns: int | None = 3_600_000_000_000
    latency_budget_ns: int | None = None


class FaultKeeper:
    """Wraps the agents that need it and keeps their failures. ``timer``: a monotonic ns
    clock (a live session's; None in a backtest, which never reads one). ``on_trip(agent,
    ts, reason)``: the breaker tripped."""

    def __init__(self, recorder: Recorder, symbols: Sequence[str], bus: EventBus | None,
                 timer: Callable[[], int] | None,
                 on_trip: Callable[[AgentState, int, str], None]) -> None:
        self.recorder = recorder
        self.symbols = tuple(symbols)
        self.bus = bus
        self.timer = timer
        self.on_trip = on_trip

    def wrapped(self, agent: AgentState) -> bool:
        return agent.policy.on_error == "abstain" or (
            self.timer is not None and agent.policy.latency_budget_ns is not None)

    def call(self, agent: AgentState, s: int, on_bar: OnBar) -> OnBar:
        """What the engine calls for ``agent`` on symbol ``s``: ``on_bar`` itself unless
        its failures are forgiven or it is timed."""
        if not self.wrapped(agent):
            return on_bar
        abstain = agent.policy.on_error == "abstain"
        timer = self.timer if agent.policy.latency_budget_ns is not None else None
        budget = agent.policy.latency_budget_ns or 0
        failed, slow = self._failed, self._slow
        held: list[Any] = [None, False]  # its last signal; whether it abstained since

        def guarded(view: MarketView) -> Signal | None:
            start = timer() if timer is not None else 0
            try:
                signal = on_bar(view)
            except Exception as exc:
                if not abstain:
                    raise
                held[1] = True
                return failed(agent, s, view, exc)
            if timer is not None and (elapsed := timer() - start) > budget:
                slow(agent, s, view, elapsed)
            if signal is not None:
                held[0] = signal
                held[1] = False
            elif held[1]:  # working again with an unchanged view: it stands again
                held[1] = False
                return held[0]  # type: ignore[no-any-return]
            return signal

        return guarded

    def _failed(self, agent: AgentState, s: int, view: MarketView, exc: Exception
                ) -> Signal:
        """An abstaining agent raised on a bar: stored, published, counted against its
        breaker; its signal on the symbol is withdrawn (a HOLD: no opinion)."""
        ts, symbol = view.ts, self.symbols[s]
        kind, message = type(exc).__name__, str(exc)
        frames = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        digest = hashlib.blake2b(frames.encode(), digest_size=8).hexdigest()
        agent.errors += 1
        self.recorder.rare_row("agent_errors", (
            symbol, agent.name, None, 1, message, "exception", ts, view.n, kind, digest,
            None))
        if self.bus is not None and self.bus.wants(AGENT_ERROR):
            self.bus.publish(AGENT_ERROR, ts, AgentFailed(
                ts, agent.name, symbol, view.n, "exception", kind, message, digest))
        policy = agent.policy
        if policy.max_errors is not None:
            recent = agent.recent_errors
            recent.append(ts)
            if policy.error_window_ns is not None:
                while recent and recent[0] <= ts - policy.error_window_ns:
                    recent.popleft()
            if len(recent) >= policy.max_errors:
                window = ("" if policy.error_window_ns is None
                          else f" within {policy.error_window_ns / 1e9:g} s")
                self.on_trip(agent, ts, f"{len(recent)} errors{window} (max_errors "
                                        f"{policy.max_errors}); last: {kind}: {message}")
        return Signal(HOLD, 0.0, None, f"abstained: {kind}")

    def _slow(self, agent: AgentState, s: int, view: MarketView, elapsed_ns: int) -> None:
        """A timed agent overran its latency budget on a bar: stored, counted, published."""
        agent.slow_bars += 1
        ts, symbol = view.ts, self.symbols[s]
        budget_ms = (agent.policy.latency_budget_ns or 0) / 1e6
        message = f"{elapsed_ns / 1e6:.3f} ms on a bar, budget {budget_ms:g} ms"
        self.recorder.rare_row("agent_errors", (
            symbol, agent.name, None, None, message, "latency", ts, view.n, "LatencyBudget",
            None, elapsed_ns / 1e6))
        if self.bus is not None and self.bus.wants(AGENT_ERROR):
            self.bus.publish(AGENT_ERROR, ts, AgentFailed(
                ts, agent.name, symbol, view.n, "latency", "LatencyBudget", message, ""))
