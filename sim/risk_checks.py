"""The pre-trade limit checks: each a small pure function ``check_x(order, ctx) ->
Breach | None`` over the order and an immutable snapshot of the state it is judged against
(``RiskContext``), with the limits and per-agent permissions they read, the order they run
in (``CHECK_ORDER``) and the helpers they share (``grows``, ``reduces``, ``attributed``).
The definitions they implement are in ``sim.risk``'s docstring.

Split from ``sim.risk`` along that seam: these hold no state; ``sim.risk.RiskEngine``
owns the mutable state (day and window counters, the circuit breaker, the kill switch),
builds the snapshot and runs them. Every name here is re-exported by ``sim.risk``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sim.messages import Decision, Side, SubmitOrder
from sim.orders import Order

# What risk judges: an order as the desk carries it (``sim.orders.Order``) or as a
# message (``SubmitOrder``); both have the fields and ``notional`` the checks read.
Ticket = SubmitOrder | Order

RISK_LEVEL_LEVERAGE: dict[str, float] = {"low": 1.0, "medium": 2.0, "high": 5.0}
_NAN = float("nan")


@dataclass(frozen=True, slots=True)
class Breach:
    check: str
    limit: float | None
    value: float | None
    reason: str


@dataclass(frozen=True, slots=True)
class AgentPermissions:
    max_trade_notional: float | None = None
    max_position_notional: float | None = None
    max_trades_per_day: int | None = None
    allowed_symbols: frozenset[str] | None = None
    risk_level: str | None = None


@dataclass(frozen=True, slots=True)
class RiskLimits:
    max_order_notional: float | None = None
    max_position_notional: float | None = None
    max_orders_per_day: int | None = None
    allowed_symbols: frozenset[str] | None = None
    daily_loss_limit: float | None = None  # fraction of start-of-day equity
    max_drawdown: float | None = None  # fraction of peak equity
    max_leverage: float | None = None  # gross exposure / equity
    price_band: float | None = None  # |ref / last close - 1|
    max_orders_per_window: int | None = None
    order_window_ns: int | None = None
    flatten_on_trip: bool = False
    timezone: str = "UTC"
    agents: Mapping[str, AgentPermissions] = field(default_factory=dict)

    @property
    def needs_equity_history(self) -> bool:
        return self.daily_loss_limit is not None or self.max_drawdown is not None


class RiskContext(NamedTuple):
    """Everything a check may look at, frozen at the moment of the check.

    A named tuple rather than a frozen dataclass: it is built once per order check, and a
    frozen dataclass's ``__init__`` (one ``object.__setattr__`` per field) cost 2 µs of a
    20 µs per-decision budget; the tuple costs a fifth of that."""

    limits: RiskLimits
    position: float
    equity: float = _NAN
    gross_exposure: float = 0.0  # sum |qty| x mark, before the order
    last_close: float = _NAN
    orders_today: int = 0
    orders_in_window: int = 0
    day_start_equity: float = _NAN
    peak_equity: float = _NAN
    breaker: str | None = None  # the check that tripped the breaker, if it is tripped
    breaker_value: float | None = None
    killed: bool = False
    agents: tuple[str, ...] = ()  # the order's attributed agents
    agent_trades_today: tuple[int, ...] = ()


def attributed_agents(decision: Decision) -> tuple[str, ...]:
    """The agents an order made from ``decision`` is attributed to: those whose standing
    vote is on the decision's side (in the order the agents are listed)."""
    return attributed(decision.side, decision.agents, decision.votes)


def attributed(side: Side, agents: tuple[str, ...], votes: tuple[Any, ...]
               ) -> tuple[str, ...]:
    """``attributed_agents`` from a decision's side, agents and votes (the engine's, as it
    decides: it keeps only this, not the decision)."""
    return tuple(name for name, vote in zip(agents, votes, strict=True)
                 if vote is not None and vote.side == side)


def grows(position: float, quantity: float) -> bool:
    return abs(position + quantity) > abs(position)


def reduces(position: float, quantity: float) -> bool:
    after = position + quantity
    return position != 0.0 and abs(after) <= abs(position) and after * position >= 0.0


# -- the checks: pure functions of (order, ctx) ---------------------------------------------
def check_kill_switch(order: Ticket, ctx: RiskContext) -> Breach | None:
    if ctx.killed and not reduces(ctx.position, order.quantity):
        return Breach("kill_switch", None, None,
                      "kill switch engaged: only position-reducing orders may go")
    return None


def check_circuit_breaker(order: Ticket, ctx: RiskContext) -> Breach | None:
    if ctx.breaker is not None and not reduces(ctx.position, order.quantity):
        limit = (ctx.limits.daily_loss_limit if ctx.breaker == "daily_loss_limit"
                 else ctx.limits.max_drawdown)
        return Breach("circuit_breaker", limit, ctx.breaker_value,
                      f"circuit breaker tripped by {ctx.breaker}: only position-reducing "
                      "orders may go")
    return None


def check_equity(order: Ticket, ctx: RiskContext) -> Breach | None:
    """No new exposure on an account with nothing left: equity <= 0 (NaN: unknown, as in
    a check given no account) lets only reductions through."""
    equity = ctx.equity
    if equity <= 0.0 and not reduces(ctx.position, order.quantity):
        return Breach("equity", 0.0, equity,
                      f"equity {equity:,.6g} is not positive: only position-reducing orders "
                      "may go")
    return None


def daily_loss(ctx: RiskContext) -> float:
    start = ctx.day_start_equity
    if not start > 0.0 or math.isnan(ctx.equity):
        return 0.0
    return (start - ctx.equity) / start


def drawdown(ctx: RiskContext) -> float:
    peak = ctx.peak_equity
    if not peak > 0.0 or math.isnan(ctx.equity):
        return 0.0
    return (peak - ctx.equity) / peak


def check_daily_loss(order: Ticket, ctx: RiskContext) -> Breach | None:
    limit = ctx.limits.daily_loss_limit
    if limit is not None and not reduces(ctx.position, order.quantity):
        loss = daily_loss(ctx)
        if loss >= limit:
            return Breach("daily_loss_limit", limit, loss,
                          f"daily loss {loss:.4%} reached the limit {limit:.4%}")
    return None


def check_drawdown(order: Ticket, ctx: RiskContext) -> Breach | None:
    limit = ctx.limits.max_drawdown
    if limit is not None and not reduces(ctx.position, order.quantity):
        dd = drawdown(ctx)
        if dd >= limit:
            return Breach("max_drawdown", limit, dd,
                          f"drawdown {dd:.4%} from the peak reached the limit {limit:.4%}")
    return None


def check_allowed_symbols(order: Ticket, ctx: RiskContext) -> Breach | None:
    allowed = ctx.limits.allowed_symbols
    if allowed is not None and order.symbol not in allowed:
        return Breach("allowed_symbols", None, None, f"{order.symbol} is not an allowed symbol")
    return None


def check_orders_per_day(order: Ticket, ctx: RiskContext) -> Breach | None:
    limit = ctx.limits.max_orders_per_day
    if limit is not None and ctx.orders_today >= limit:
        return Breach("max_orders_per_day", limit, ctx.orders_today,
                      f"{ctx.orders_today} orders already today (limit {limit})")
    return None


def check_order_rate(order: Ticket, ctx: RiskContext) -> Breach | None:
    limit = ctx.limits.max_orders_per_window
    if limit is not None and ctx.orders_in_window >= limit:
        return Breach("order_rate", limit, ctx.orders_in_window,
                      f"{ctx.orders_in_window} orders in the last "
                      f"{ctx.limits.order_window_ns} ns (limit {limit})")
    return None


def check_price_band(order: Ticket, ctx: RiskContext) -> Breach | None:
    band = ctx.limits.price_band
    last = ctx.last_close
    if band is not None and last > 0.0:
        dev = abs(order.ref_price / last - 1.0)
        if dev > band:
            return Breach("price_band", band, dev,
                          f"price {order.ref_price:.6g} is {dev:.4%} from the last close "
                          f"{last:.6g} (band {band:.4%})")
    return None


def check_order_notional(order: Ticket, ctx: RiskContext) -> Breach | None:
    limit = ctx.limits.max_order_notional
    notional = order.notional
    if limit is not None and notional > limit:
        return Breach("max_order_notional", limit, notional,
                      f"order notional {notional:.6g} exceeds {limit:.6g}")
    return None


def check_position_notional(order: Ticket, ctx: RiskContext) -> Breach | None:
    """Any order that puts on a position is judged by the position it leaves: one that
    grows it, and one that flips it to the other side (a flip to a smaller size still
    opens a new position, at today's price). Only a pure reduction is never stopped."""
    limit = ctx.limits.max_position_notional
    if limit is not None and not reduces(ctx.position, order.quantity):
        after = abs(ctx.position + order.quantity) * order.ref_price
        if after > limit:
            return Breach("max_position_notional", limit, after,
                          f"position notional after the order {after:.6g} exceeds {limit:.6g}")
    return None


def leverage_after(order: Ticket, ctx: RiskContext) -> float:
    """Gross exposure after the order over equity (inf when equity is not positive).

    ``gross_exposure`` marks this symbol's current position at the order's price."""
    pos = ctx.position
    price = order.ref_price
    gross = ctx.gross_exposure - abs(pos) * price + abs(pos + order.quantity) * price
    if not ctx.equity > 0.0:
        return math.inf
    return max(gross, 0.0) / ctx.equity


def check_leverage(order: Ticket, ctx: RiskContext) -> Breach | None:
    limit = ctx.limits.max_leverage
    if limit is not None and grows(ctx.position, order.quantity):
        lev = leverage_after(order, ctx)
        if lev > limit:
            return Breach("max_leverage", limit, lev,
                          f"gross leverage after the order {lev:.4g}x exceeds {limit:.4g}x")
    return None


def check_agent_permissions(order: Ticket, ctx: RiskContext) -> Breach | None:
    """Every attributed agent's permissions must hold (the strictest binds)."""
    perms = ctx.limits.agents
    if not perms or not ctx.agents:
        return None
    growing = grows(ctx.position, order.quantity)
    opening = not reduces(ctx.position, order.quantity)  # see ``check_position_notional``
    notional = order.notional
    after = abs(ctx.position + order.quantity) * order.ref_price
    lev = -1.0  # computed on first use: most agents carry no risk level
    for name, trades in zip(ctx.agents, ctx.agent_trades_today, strict=True):
        p = perms.get(name)
        if p is None:
            continue
        if p.allowed_symbols is not None and order.symbol not in p.allowed_symbols:
            return Breach("agent_allowed_symbols", None, None,
                          f"agent {name!r} may not trade {order.symbol}")
        if p.max_trades_per_day is not None and trades >= p.max_trades_per_day:
            return Breach("agent_max_trades_per_day", p.max_trades_per_day, trades,
                          f"agent {name!r} has {trades} trades today "
                          f"(limit {p.max_trades_per_day})")
        if p.max_trade_notional is not None and notional > p.max_trade_notional:
            return Breach("agent_max_trade_notional", p.max_trade_notional, notional,
                          f"order notional {notional:.6g} exceeds agent {name!r}'s "
                          f"{p.max_trade_notional:.6g}")
        if (opening and p.max_position_notional is not None
                and after > p.max_position_notional):
            return Breach("agent_max_position_notional", p.max_position_notional, after,
                          f"position notional after the order {after:.6g} exceeds agent "
                          f"{name!r}'s {p.max_position_notional:.6g}")
        if not growing:
            continue
        if p.risk_level is not None:
            if lev < 0.0:
                lev = leverage_after(order, ctx)
            cap = RISK_LEVEL_LEVERAGE[p.risk_level]
            if lev > cap:
                return Breach("agent_risk_level", cap, lev,
                              f"gross leverage after the order {lev:.4g}x exceeds agent "
                              f"{name!r}'s risk level {p.risk_level!r} ({cap:g}x)")
    return None


Check = Callable[[Ticket, RiskContext], "Breach | None"]

# The order checks run in: the first breach denies.
CHECK_ORDER: tuple[Check, ...] = (
    check_kill_switch,
    check_circuit_breaker,
    check_equity,
    check_daily_loss,
    check_drawdown,
    check_allowed_symbols,
    check_orders_per_day,
    check_order_rate,
    check_price_band,
    check_order_notional,
    check_position_notional,
    check_leverage,
    check_agent_permissions,
)

CHECK_NAMES = frozenset({
    "kill_switch", "circuit_breaker", "equity", "daily_loss_limit", "max_drawdown",
    "allowed_symbols", "max_orders_per_day", "order_rate", "price_band", "max_order_notional",
    "max_position_notional", "max_leverage", "agent_allowed_symbols",
    "agent_max_trades_per_day", "agent_max_trade_notional", "agent_max_position_notional",
    "agent_risk_level",
})
