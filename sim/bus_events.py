"""The messages the event bus carries that the pipeline's own messages do not cover.

Where a pipeline message already says what happened it travels as is: ``OrderFilled``
(topic ``fill``), ``OrderDenied`` (``denial``), ``OrderRouted`` (``route``),
``FundingPaid`` (``funding``), ``PositionLiquidated`` (``liquidation``), all in
``sim.messages``. The ones here give the rest a name, a time and the symbol or agent
by name (subscribers never see the engine's integer codes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sim.messages import OrderFilled, Side, Signal


@dataclass(frozen=True, slots=True)
class BarClosed:
    """Topic ``bar``: a bar entered the pipeline (``ts`` is its open time)."""

    ts: int
    symbol: str
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True, slots=True)
class SignalChanged:
    """Topic ``signal``: an agent's standing signal on a symbol changed."""

    ts: int
    symbol: str
    agent: str
    signal: Signal


@dataclass(frozen=True, slots=True)
class DecisionMade:
    """Topic ``decision``: consensus changed its decision on a symbol; ``votes[i]`` is
    ``agents[i]``'s standing signal (None: silent or expired)."""

    decision_id: int
    ts: int
    symbol: str
    side: Side
    confidence: float
    target: float | None
    agents: tuple[str, ...]
    votes: tuple[Signal | None, ...]
    weights: tuple[float, ...]
    rule: str
    agreement: float


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """Topic ``order``: one step of an order's life, as the ``order_events`` row says it."""

    order_id: int
    ts: int
    symbol: str
    event: str
    venue: str | None
    quantity: float | None
    price: float | None
    reason: str


@dataclass(frozen=True, slots=True)
class OrderClosed:
    """Topic ``order_closed``: an order reached its terminal state."""

    order_id: int
    decision_id: int
    ts: int
    symbol: str
    status: str
    role: str
    quantity: float
    filled: float
    filled_notional: float
    fees: float
    venue: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class FillBooked:
    """Topic ``fill``: a fill and the ledger right after it (cash, the symbol's position,
    its realised PnL to date)."""

    fill: OrderFilled
    cash: float
    position: float
    realized: float


@dataclass(frozen=True, slots=True)
class EquityBooked:
    """Topic ``equity``: the account at the end of time ``ts``."""

    ts: int
    cash: float
    equity: float
    realized: float
    unrealized: float


@dataclass(frozen=True, slots=True)
class PositionChanged:
    """Topic ``position``: a symbol's position after a fill, funding or liquidation."""

    ts: int
    symbol: str
    venue: str | None
    quantity: float
    average_price: float


@dataclass(frozen=True, slots=True)
class AgentStateChanged:
    """Topic ``agent``: a lifecycle command's outcome (``outcome`` "applied" or
    "rejected: <why>"), or a state change the kernel made itself (the circuit breaker:
    ``actor`` "kernel")."""

    ts: int
    agent: str
    state: str  # active | paused | stopped | errored (after the command)
    previous: str | None
    command: str
    actor: str
    reason: str
    outcome: str


@dataclass(frozen=True, slots=True)
class AgentFailed:
    """Topic ``agent_error``: an agent raised (or overran its latency budget) on a bar."""

    ts: int
    agent: str
    symbol: str
    bar: int
    kind: str  # "exception" | "latency"
    error_type: str
    message: str
    traceback_digest: str


@dataclass(frozen=True, slots=True)
class HealthChanged:
    """Topic ``health``: a component's state changed (healthy | degraded | critical)."""

    ts: int
    component: str
    state: str
    previous: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class ComponentReported:
    """Topic ``component``: what an edge of a session saw of a component (the
    reconciliation found differences, a feed fell back to REST): the monitor puts it in
    ``state`` and, with ``alert_kind``, alerts when it leaves ``healthy``."""

    ts: int
    component: str
    state: str  # healthy | degraded | critical
    reason: str
    alert_kind: str | None = None


@dataclass(frozen=True, slots=True)
class ToolCalled:
    """Topic ``call``: one call to an outside tool (``tool`` "agent:NAME": an external
    agent's service; "venue:NAME": a venue client's request), how it went and how long
    it took (ms, retries included)."""

    ts: int
    tool: str
    call: str  # what was asked: a symbol, "place", "lookup", "snapshot"
    ok: bool
    latency_ms: float
    error: str | None = None


@dataclass(frozen=True, slots=True)
class AlertRaised:
    """Topic ``alert``: a detector fired (severity info | warning | critical)."""

    alert_id: int
    ts: int
    severity: str
    source: str
    kind: str
    message: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class LogRecord:
    """Topic ``log``: one structured log line (level debug | info | warning | error |
    trade; category agent | order | risk | venue | system)."""

    ts: int
    level: str
    category: str
    message: str
    agent: str | None = None
    data: dict[str, Any] | None = None
