"""A recorder that also publishes what it records on the event bus.

Every domain event of the pipeline already passes through one ``Recorder`` call (a signal,
a decision, an order's event, a terminal order, a fill, a denial, a route, funding, a
liquidation). ``ObservedRecorder`` records it exactly as ``Recorder`` does, then publishes
it as a typed message (``sim.bus_events``) when somebody listens to its topic. A run with
observers builds this class; a run without builds ``Recorder``, so the bus costs an
unobserved backtest nothing at all. The stored rows are the same either way.

``ObservedEngine`` does the same for the two per-bar topics, ``bar`` and ``equity``: it
publishes after ``Engine.on_bar`` has done the bar's work, so observers see a bar after
the pipeline has acted on it, never before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sim.bus import (
    BAR,
    DECISION,
    DENIAL,
    EQUITY,
    FILL,
    FUNDING,
    LIQUIDATION,
    ORDER,
    ORDER_CLOSED,
    ROUTE,
    SIGNAL,
    EventBus,
)
from sim.bus_events import (
    BarClosed,
    DecisionMade,
    EquityBooked,
    FillBooked,
    OrderClosed,
    OrderEvent,
    SignalChanged,
)
from sim.engine import Engine
from sim.messages import (
    FundingPaid,
    OrderDenied,
    OrderFilled,
    OrderRouted,
    PositionLiquidated,
    SubmitOrder,
)
from sim.orders import Order
from sim.recorder import Recorder
from sim.store import RunStore


class ObservedRecorder(Recorder):
    def __init__(self, store: RunStore, run_id: str, symbols: Sequence[str],
                 agents: Sequence[str], method: str, bus: EventBus,
                 flush_rows: int = 500_000) -> None:
        super().__init__(store, run_id, symbols, agents, method, flush_rows)
        self.bus = bus
        self._symbol_names = tuple(symbols)
        self._agent_names = tuple(agents)
        # The desk's rows go through the methods below, which publish them.
        self.order_event_row = self._order_event_row
        self.route_row = self._route_row
        self.fill_row = self._fill_row

    def _order_event_row(self, row: tuple[Any, ...]) -> None:
        self.order_event(*row)

    def _route_row(self, row: tuple[Any, ...]) -> None:
        self._routes.append(row)
        if self.bus.wants(ROUTE):
            life, ts, _, venue, candidates, quantity, reason, elapsed = row
            self.bus.publish(ROUTE, ts, OrderRouted(
                SubmitOrder(life.order_id, life.decision_id, ts, life.symbol, quantity,
                            life.ref_price, life.kind, life.limit_price, life.stop_price,
                            life.tif, life.post_only, life.reduce_only),
                ts, venue, candidates, reason, elapsed))

    def _fill_row(self, row: tuple[Any, ...]) -> None:
        self._fills.append(row)
        if self.bus.wants(FILL):
            (fill_id, order_id, ts, symbol, venue, quantity, price, fee, ref_price, liquidity,
             cash, position, realized) = row
            self.bus.publish(FILL, ts, FillBooked(OrderFilled(
                fill_id, order_id, ts, self._symbol_names[symbol], venue, quantity, price,
                fee, ref_price, liquidity), cash, position, realized))

    def add_agent(self, name: str) -> int:
        self._agent_names = (*self._agent_names, name)
        return super().add_agent(name)

    def signal(self, ts: int, symbol: int, agent: int, signal: Any) -> None:
        super().signal(ts, symbol, agent, signal)
        if self.bus.wants(SIGNAL):
            self.bus.publish(SIGNAL, ts, SignalChanged(
                ts, self._symbol_names[symbol], self._agent_names[agent], signal))

    def decision(self, decision_id: int, ts: int, symbol: int, side: Any, confidence: float,
                 target: float | None, agents: tuple[int, ...], votes: tuple[Any, ...],
                 weights: tuple[float, ...], rule: str = "none",
                 agreement: float = 0.0) -> None:
        super().decision(decision_id, ts, symbol, side, confidence, target, agents, votes,
                         weights, rule, agreement)
        if self.bus.wants(DECISION):
            names = self._agent_names
            self.bus.publish(DECISION, ts, DecisionMade(
                decision_id, ts, self._symbol_names[symbol], side, confidence, target,
                tuple(names[a] for a in agents), tuple(votes), tuple(weights), rule,
                agreement))

    def order(self, order: Order) -> None:
        super().order(order)
        if self.bus.wants(ORDER_CLOSED):
            self.bus.publish(ORDER_CLOSED, order.fill_ts or order.ts, OrderClosed(
                order.order_id, order.decision_id, order.fill_ts or order.ts, order.symbol,
                order.status, order.role, order.quantity, order.filled,
                order.filled_notional, order.fees, order.venue, order.reason))

    def order_event(self, order_id: int, ts: int, symbol: int, event: str, venue: str | None,
                    quantity: float | None, price: float | None, reason: str) -> None:
        super().order_event(order_id, ts, symbol, event, venue, quantity, price, reason)
        if self.bus.wants(ORDER):
            self.bus.publish(ORDER, ts, OrderEvent(
                order_id, ts, self._symbol_names[symbol], event, venue, quantity, price,
                reason))

    def fill(self, fill: OrderFilled, symbol: int, cash: float, position: float,
             realized: float) -> None:
        super().fill(fill, symbol, cash, position, realized)
        if self.bus.wants(FILL):
            self.bus.publish(FILL, fill.ts, FillBooked(fill, cash, position, realized))

    def denial(self, denial: OrderDenied, symbol: int) -> None:
        super().denial(denial, symbol)
        if self.bus.wants(DENIAL):
            self.bus.publish(DENIAL, denial.ts, denial)

    def routing(self, routed: OrderRouted, symbol: int) -> None:
        super().routing(routed, symbol)
        if self.bus.wants(ROUTE):
            self.bus.publish(ROUTE, routed.ts, routed)

    def funding(self, paid: FundingPaid, symbol: int) -> None:
        super().funding(paid, symbol)
        if self.bus.wants(FUNDING):
            self.bus.publish(FUNDING, paid.ts, paid)

    def liquidation(self, event: PositionLiquidated, symbol: int) -> None:
        super().liquidation(event, symbol)
        if self.bus.wants(LIQUIDATION):
            self.bus.publish(LIQUIDATION, event.ts, event)


class ObservedEngine(Engine):
    """An engine that publishes each bar (``BarClosed``) and each booked equity row
    (``EquityBooked``) when somebody listens. Built instead of ``Engine`` only for runs
    with observers; the bar path of an unobserved run is untouched."""

    per_bar_reason = "bars or equity are published on the bus (an observer of each bar)"

    def __init__(self, *args: Any, bus: EventBus, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.bus = bus

    def on_bar(self, s: int, n: int, ts: int, o: float, h: float, lo: float, c: float,
               v: float) -> None:
        booked = self._last_ts is not None and ts != self._last_ts
        super().on_bar(s, n, ts, o, h, lo, c, v)
        bus = self.bus
        if booked and bus.wants(EQUITY):
            self._publish_equity()
        if bus.wants(BAR):
            bus.publish(BAR, ts, BarClosed(ts, self.symbols[s], o, h, lo, c, v))

    def _snapshot(self, ts: int) -> None:
        super()._snapshot(ts)
        if self.bus.wants(EQUITY):
            self._publish_equity()

    def _publish_equity(self) -> None:
        book = self.portfolio.book
        ts = book.ts[-1]
        self.bus.publish(EQUITY, ts, EquityBooked(
            ts, book.cash[-1], book.equity[-1], book.realized[-1], book.unrealized[-1]))
