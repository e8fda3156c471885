"""Order lifecycle: what an order is while it lives, and the one terminal state it ends in.

An ``Order`` is the engine's record of one order from creation to its terminal state. The
part of it that rests on a venue is a ``Leg`` (one per venue; several only when the router
splits). Legs live in their venue's book (``SimVenue.book``) and are matched there against
market events; the order is terminal when its last leg is.

States (``Order.status`` and the ``orders.status`` column), exactly one terminal each:

* ``filled``: the order is done and some quantity filled (a buy trimmed to the cash the
  account has, or to the margin it has, is done: it is filled, with the smaller quantity);
* ``cancelled``: cancelled while working: replaced by a newer decision's order, the
  position a reduce-only or bracket order protected is gone, its bracket sibling filled,
  or the run ended;
* ``expired``: its time in force ran out (IOC remainder, ``order_ttl``) or it timed out in
  flight to every venue that could take it;
* ``rejected``: a venue refused it (down at arrival, random reject, post-only that would
  take, nothing affordable) and no fallback venue was left, with nothing filled;
* ``denied``: refused before it reached a venue (a pre-trade risk check, or no route).

A partially filled order that is then cancelled or expires keeps that status; its
``filled_quantity`` says how much filled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Order kinds
MARKET, LIMIT, STOP = "market", "limit", "stop"
ORDER_KINDS = (MARKET, LIMIT, STOP)
# Time in force
GTC, IOC = "gtc", "ioc"
# Statuses
WORKING = "working"
FILLED, CANCELLED, EXPIRED, REJECTED, DENIED = (
    "filled", "cancelled", "expired", "rejected", "denied")
TERMINAL = frozenset((FILLED, CANCELLED, EXPIRED, REJECTED, DENIED))
# ``order.outcomes += ENDED[code]`` notes how a leg ended. The one-element tuples are shared,
# and adding one to the empty tuple returns it: an order's first (usually only) finished
# leg allocates nothing, so the garbage collector has one object fewer per order to walk.
ENDED = {code: (code,) for code in TERMINAL}
# Why the order exists
ENTRY, TAKE_PROFIT, STOP_LOSS, FLATTEN, LIQUIDATION = (
    "entry", "take_profit", "stop_loss", "flatten", "liquidation")
BRACKET_ROLES = frozenset((TAKE_PROFIT, STOP_LOSS))
# Liquidity of a fill
TAKER, MAKER = "taker", "maker"


@dataclass(slots=True, eq=False)
class Order:
    """One order's lifecycle state. ``quantity`` is signed (positive buys); ``ts`` is when
    it was submitted (released) and ``decision_ts`` the decision behind it (its bar);
    ``ref_price`` the expected (decision) price it was sized at."""

    order_id: int
    decision_id: int
    ts: int
    decision_ts: int
    symbol: str
    s: int
    quantity: float
    ref_price: float
    kind: str = MARKET
    limit_price: float | None = None
    stop_price: float | None = None
    tif: str = GTC
    post_only: bool = False
    reduce_only: bool = False
    role: str = ENTRY
    parent_id: int = 0  # the entry order a bracket protects
    replaces: int = 0  # the order this one replaced (cancel/replace)
    expires_at: int | None = None
    status: str = WORKING
    reason: str = ""
    venue: str | None = None  # last venue it was sent to
    arrival_ts: int | None = None  # first arrival at a venue
    fill_ts: int | None = None  # last fill
    filled: float = 0.0  # signed filled quantity
    filled_notional: float = 0.0  # sum |q| x price
    fees: float = 0.0
    # The three below start as empty tuples, not containers: most orders fill at once and
    # never rest, are refused or time out, and an order's __init__ runs for every one.
    legs: list[Leg] | tuple[()] = ()  # a list from the first leg that rests on a venue
    tried: tuple[str, ...] = ()  # venues that refused it or timed out
    outcomes: tuple[str, ...] = ()  # terminal codes of finished legs
    in_flight: int = 0  # legs sent, not yet arrived (or timed out)
    closing: tuple[str, str] | None = None  # cancel/expiry decided: legs arriving later drop

    @property
    def notional(self) -> float:
        return abs(self.quantity) * self.ref_price

    def add_leg(self, leg: Leg) -> None:
        """Note a leg that works on a venue (``legs`` is a list from the first one on)."""
        if self.legs:
            self.legs.append(leg)  # type: ignore[union-attr]
        else:
            self.legs = [leg]

    @property
    def avg_fill_price(self) -> float | None:
        return self.filled_notional / abs(self.filled) if self.filled else None

    @property
    def sign(self) -> float:
        return 1.0 if self.quantity > 0 else -1.0

    @property
    def trigger(self) -> float | None:
        return self.stop_price if self.kind == STOP else self.limit_price


@dataclass(slots=True, eq=False)
class Leg:
    """The part of an order working on one venue. ``rested``: it has been seen by the
    market once (its arrival check is done; from then on a crossing fills it at its limit,
    as a maker). ``seq`` orders legs that share a trigger price (earlier first)."""

    order: Order
    venue: Any  # sim.venue.SimVenue (Any: venue imports nothing from here at runtime)
    quantity: float
    remaining: float
    arrival_ts: int
    seq: int
    rested: bool = False
    triggered: bool = False
    status: str = WORKING


def final_status(order: Order) -> str:
    """An order's terminal status once every leg is done: a cancelled or expired leg
    decides; otherwise filled if anything filled, else rejected."""
    outcomes = order.outcomes
    if CANCELLED in outcomes:
        return CANCELLED
    if EXPIRED in outcomes:
        return EXPIRED
    return FILLED if order.filled != 0.0 else REJECTED


@dataclass(frozen=True, slots=True)
class ExecutionSettings:
    """How decisions become orders and how the market treats them (``[execution]``).
    The defaults are the instant market-order model: nothing here is on unless set."""

    order_type: str = MARKET  # what a decision's order is: market, limit or stop
    offset: float = 0.0  # limit: this fraction better than the decision price; stop: beyond
    tif: str = GTC
    post_only: bool = False
    ttl_ns: int | None = None  # a working order expires this long after submission
    take_profit: float | None = None  # bracket distances from the entry, fractions
    stop_loss: float | None = None
    intrabar: str = "worst_case"  # or "ohlc", "olhc": order of a bar's extremes
    limit_touch: bool = False  # a resting limit fills when touched (else: traded through)
    latency: bool = False  # simulate processing + venue network latency
    processing_ns: int = 0  # agents + consensus + risk + router, when latency is on
    ticks: bool = False  # tick replay: trades drive matching, bars are built from them

    @property
    def brackets(self) -> bool:
        return self.take_profit is not None or self.stop_loss is not None

    def entry_prices(self, buy: bool, price: float) -> tuple[float | None, float | None]:
        """(limit, stop) of a decision's order sized at ``price``."""
        if self.order_type == LIMIT:
            return (price * (1.0 - self.offset) if buy else price * (1.0 + self.offset)), None
        if self.order_type == STOP:
            return None, (price * (1.0 + self.offset) if buy else price * (1.0 - self.offset))
        return None, None
