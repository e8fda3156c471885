"""Typed messages passed between pipeline components.

Commands are imperative (``SubmitOrder``), events past tense (``OrderFilled``). Every message
that happens at a point in time carries ``ts``: integer nanoseconds since the Unix epoch, UTC,
taken from the engine clock (event time, identical in sim and live).
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from enum import IntEnum
from typing import Any, TypeVar

_T = TypeVar("_T")


def quick_init(cls: type[_T]) -> type[_T]:
    """Give a frozen, slotted dataclass an ``__init__`` that sets each field through its
    slot's descriptor. The one ``dataclass`` writes calls ``object.__setattr__`` per field,
    which looks the name up on the type each time: 4 µs for a 12-field ``SubmitOrder``,
    paid several times per order. Same signature, defaults and values; the instance is as
    frozen as before (only ``__init__`` changes). No default factories (none here)."""
    names, params = [], []
    namespace: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        if f.default_factory is not MISSING or not f.init:
            raise TypeError(f"quick_init: {cls.__name__}.{f.name} has a default factory "
                            "or is left out of __init__")
        names.append(f.name)
        namespace[f"_set_{f.name}"] = cls.__dict__[f.name].__set__
        if f.default is MISSING:
            params.append(f.name)
        else:
            namespace[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
    body = "".join(f"    _set_{n}(self, {n})\n" for n in names)
    exec(f"def __init__(self, {', '.join(params)}):\n{body}", namespace)
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = init  # type: ignore[method-assign]
    return cls


class Side(IntEnum):
    """An opinion or a decision. HOLD means "no view / keep what you have"."""

    SHORT = -1
    FLAT = 0
    LONG = 1
    HOLD = 2


# Module constants: reading ``Side.LONG`` goes through the enum's descriptor, which costs
# more than the rest of a hot per-bar step; compare against these instead.
SHORT, FLAT, LONG, HOLD = Side.SHORT, Side.FLAT, Side.LONG, Side.HOLD


class FillTiming(IntEnum):
    """When a market order created from a decision meets the market."""

    NEXT_OPEN = 0
    CLOSE = 1


@quick_init
@dataclass(frozen=True, slots=True)
class Bar:
    """One OHLCV bar; ``ts`` is the bar's open time."""

    symbol: str
    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float


@quick_init
@dataclass(frozen=True, slots=True)
class Signal:
    """What an agent returns: a view on one symbol. It stands until the agent returns another."""

    side: Side
    confidence: float
    target: float | None = None  # optional target exposure, fraction of equity
    reason: str | None = None  # why, in words: stored with the signal for the audit


@quick_init
@dataclass(frozen=True, slots=True)
class Decision:
    """Consensus output for one symbol, with the votes that produced it.

    ``votes[i]`` is the standing signal of ``agents[i]`` (None: it has not spoken yet) and
    ``weights[i]`` what that vote counted for in the method used.
    """

    decision_id: int
    ts: int
    symbol: str
    side: Side
    confidence: float
    target: float | None
    agents: tuple[str, ...]
    votes: tuple[Signal | None, ...]
    weights: tuple[float, ...]


@quick_init
@dataclass(frozen=True, slots=True)
class SubmitOrder:
    """An order; ``quantity`` is signed (positive buys). ``ref_price`` sized it (the
    expected price). ``kind``: "market", "limit" (``limit_price``) or "stop"
    (``stop_price``); ``tif`` "gtc" or "ioc"; see ``sim.orders``."""

    order_id: int
    decision_id: int
    ts: int
    symbol: str
    quantity: float
    ref_price: float
    kind: str = "market"
    limit_price: float | None = None
    stop_price: float | None = None
    tif: str = "gtc"
    post_only: bool = False
    reduce_only: bool = False

    @property
    def notional(self) -> float:
        return abs(self.quantity) * self.ref_price

    def with_quantity(self, quantity: float) -> SubmitOrder:
        """The same order for another quantity (a router leg, a lot-rounded size):
        ``dataclasses.replace`` does this at twice the cost on the routing path."""
        return SubmitOrder(self.order_id, self.decision_id, self.ts, self.symbol, quantity,
                           self.ref_price, self.kind, self.limit_price, self.stop_price,
                           self.tif, self.post_only, self.reduce_only)


@quick_init
@dataclass(frozen=True, slots=True)
class OrderDenied:
    order_id: int
    ts: int
    symbol: str
    check: str
    reason: str
    limit: float | None = None  # the limit the order breached, when it has a number
    value: float | None = None  # the value the check found


@quick_init
@dataclass(frozen=True, slots=True)
class RouteCandidate:
    venue: str
    fee_bps: float
    score: float = 0.0  # the routing policy's score (lower is better)


@quick_init
@dataclass(frozen=True, slots=True)
class OrderRouted:
    order: SubmitOrder
    ts: int
    venue: str
    candidates: tuple[RouteCandidate, ...]
    reason: str
    elapsed_ns: int  # wall time the router took: a measurement, not part of the simulation


@quick_init
@dataclass(frozen=True, slots=True)
class OrderFilled:
    fill_id: int
    order_id: int
    ts: int
    symbol: str
    venue: str
    quantity: float  # signed, may be smaller than ordered when cash ran short
    price: float  # after slippage
    fee: float
    ref_price: float
    liquidity: str = "taker"  # "maker", "taker" or "liquidation"


@quick_init
@dataclass(frozen=True, slots=True)
class ScenarioEvent:
    """A scheduled scenario event: "kill_switch", "venue_down", "venue_up",
    "venue_degraded", "venue_latency" (``value``: added latency, ms) or
    "venue_reject_rate" (``value``: probability); ``venue`` names the venue."""

    ts: int
    kind: str
    venue: str | None = None
    value: float | None = None


@quick_init
@dataclass(frozen=True, slots=True)
class FundingPaid:
    """A perpetual's funding at ``ts``: ``payment`` is what the account received (longs
    pay ``rate`` x position notional at the mark when the rate is positive)."""

    ts: int
    symbol: str
    position: float
    mark: float
    rate: float
    payment: float
    venue: str | None = None  # where it was paid (None: a store from before the column)


@quick_init
@dataclass(frozen=True, slots=True)
class PositionLiquidated:
    """A perpetual position closed by the venue at its liquidation price."""

    ts: int
    symbol: str
    venue: str
    order_id: int
    position: float
    liquidation_price: float
    price: float
    maintenance_margin: float
