"""The execution desk of a farm run: the one desk of ``sim.execution`` (one account, one
order and fill numbering, the same venues), with each order tagged with its farm.

What a farm adds to the desk: its risk limits and wallet judge its orders first
(``sim.farms.FarmRisk``, ``FarmRouter``); a fill books into the account as before and
into the ledger of the order's farm; cancel/replace touches only the farm's own orders;
risk-made flattening closes each farm's positions with orders of that farm (the account
position is their sum, so the account ends flat too).

Perpetuals: each farm's margin is its own (``Farm.free_collateral``: its orders are
trimmed and judged on it, ``FarmRisk``); the venue still judges the account's margin as
a whole (cross margin), so a farm that lost into its initial margin can get another
farm's opening order trimmed there. Funding is paid per farm on the farm's own
position at the funding time (-rate x its position x the mark), the account paying the
venue's amount on the netted position; the two agree to float rounding, checked on every
step. When the venue liquidates the account's position in a symbol (cross margin: the
account's equity fell to its maintenance margin), the one liquidation fill books into
the account, and every farm holding the symbol has its position closed at the same
price, paying the liquidation fee in proportion to the size it lost (a
``farm_liquidations`` row each). A farm whose own equity falls below the maintenance
margin of its own perpetual positions (checked at each time step's close) has them
closed at the marks with orders of that farm (a ``farm_liquidations`` row each, cause
"farm margin"): its loss stops there and never reaches the other farms' capital.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from sim.clock import SimClock
from sim.event_queue import EventQueue
from sim.execution import ExecutionDesk
from sim.farms import Farm, FarmRisk, FarmRouter
from sim.messages import OrderFilled, SubmitOrder
from sim.orders import (
    BRACKET_ROLES,
    ENTRY,
    FLATTEN,
    LIQUIDATION,
    TERMINAL,
    ExecutionSettings,
    Order,
)
from sim.portfolio import Portfolio
from sim.recorder import Recorder
from sim.risk import RiskEngine
from sim.router import VenueRouter
from sim.view import MarketView


class FarmDesk(ExecutionDesk):
    """``farm``: the farm whose order is submitted now (set by the engine before it
    submits; every order made meanwhile is that farm's)."""

    def __init__(
        self, symbols: Sequence[str], views: Sequence[MarketView], risk: RiskEngine,
        router: VenueRouter, portfolio: Portfolio, recorder: Recorder, queue: EventQueue,
        clock: SimClock, execution: ExecutionSettings, farms: Sequence[Farm], *,
        dispatch_before: Callable[[int | None, int], None],
        on_flatten: Callable[[Farm, int], None],
    ) -> None:
        venues = router.venues
        # The dearest fill per unit of reference price: fee on top of slipped price.
        margin = max((1.0 + max(v.fee_bps, v.maker_fee_bps) / 10_000.0)
                     * (1.0 + (v.slippage_bps + v.impact_bps) / 10_000.0) for v in venues) - 1.0
        self.farm_risk = FarmRisk(risk, portfolio, {s: i for i, s in enumerate(symbols)},
                                  margin)
        super().__init__(symbols, views, self.farm_risk,  # type: ignore[arg-type]
                         FarmRouter(router, self.farm_risk),  # type: ignore[arg-type]
                         portfolio, recorder, queue, clock, execution,
                         dispatch_before=dispatch_before,
                         on_flatten=lambda s: on_flatten(self._current(), s))
        self.farms = farms if isinstance(farms, list) else list(farms)  # the engine's
        self._farm_of: dict[int, Farm] = {}
        self._on_farm_flatten = on_flatten
        self.sizes = [0.0] * len(self.symbols)  # the largest fill of each symbol so far
        for farm in self.farms:
            self.add_farm(farm)

    def add_farm(self, farm: Farm) -> None:
        """A farm trades through this desk: its breakers follow its own equity, and its
        margin rates are the perpetual venues' (capped by its own ``max_leverage``)."""
        farm.ledger.book.follow(farm.risk.observe_equity)
        cap = farm.risk.limits.max_leverage
        farm.leverage = []
        farm.maintenance = []
        for sym, perp in zip(self.symbols, self.perp, strict=True):
            if perp is None:
                farm.leverage.append(None)
                farm.maintenance.append(0.0)
                continue
            lev = perp.leverage.get(sym, perp.max_leverage)
            farm.leverage.append(lev if cap is None else min(lev, cap))
            farm.maintenance.append(perp.maintenance_margin)
        if all(lev is None for lev in farm.leverage):
            farm.leverage = []  # spot only: nothing to look up per order

    @property
    def farm(self) -> Farm | None:
        return self.farm_risk.farm

    @farm.setter
    def farm(self, farm: Farm) -> None:
        self.farm_risk.farm = farm

    def _current(self) -> Farm:
        farm = self.farm_risk.farm
        assert farm is not None, "an order made with no farm set"
        return farm

    def farm_of(self, order_id: int) -> Farm:
        return self._farm_of[order_id]

    # -- orders in: tagged, judged by the farm first ------------------------------------
    def _submit(self, s: int, order: SubmitOrder, position: float, equity: float,
                last_close: float, agents: tuple[str, ...], decision_ts: int | None = None,
                role: str = ENTRY, parent_id: int = 0, replaces: int = 0) -> None:
        farm = self._current()
        self._farm_of[order.order_id] = farm
        self.recorder.rare_row("farm_orders", (order.order_id, order.decision_id, farm.name))
        super()._submit(s, order, position, equity, last_close, agents, decision_ts, role,
                        parent_id, replaces)
        tripped = self.farm_risk.farm_tripped
        if tripped is not None and tripped.flatten_on_trip and not self._flattening:
            self.flatten_farm(tripped, order.ts)

    def replace_working(self, s: int, ts: int) -> int:
        """Cancel the current farm's working entries on s (never another farm's)."""
        if not self.n_working[s]:
            return 0
        farm = self._current()
        last = 0
        for life in list(self._live.values()):
            if (life.s != s or life.status in TERMINAL or life.closing is not None
                    or life.role in BRACKET_ROLES or self._farm_of.get(life.order_id)
                    is not farm):
                continue
            self._stop_order(life, ts, "cancelled", "replaced by a newer decision's order")
            last = life.order_id
        return last

    # -- fills: the account and the order's farm --------------------------------------
    def _book_fill(self, life: Order, s: int, fill: OrderFilled) -> None:
        super()._book_fill(life, s, fill)
        size = abs(fill.quantity)
        if size > self.sizes[s]:
            self.sizes[s] = size
        farm = self._farm_of.get(life.order_id)
        if farm is not None:
            farm.ledger.apply(s, fill)
            return
        assert life.role == LIQUIDATION, f"order {life.order_id} ({life.role}) has no farm"
        self._split_liquidation(s, fill)

    def _split_liquidation(self, s: int, fill: OrderFilled) -> None:
        """The venue liquidated the account's position in s: every farm holding s has
        its position closed at the fill's price; the fee is shared in proportion to the
        size each loses."""
        holders = [(farm, farm.ledger.qty[s]) for farm in self.farms if farm.ledger.qty[s]]
        gross = math.fsum(abs(q) for _, q in holders)
        for farm, position in holders:
            fee = fill.fee * abs(position) / gross if gross else 0.0
            farm.ledger.apply(s, OrderFilled(
                fill.fill_id, fill.order_id, fill.ts, fill.symbol, fill.venue, -position,
                fill.price, fee, fill.ref_price, fill.liquidity))
            self.recorder.rare_row("farm_liquidations", (
                fill.ts, farm.name, fill.symbol, fill.order_id, position, fill.price, fee,
                "venue liquidation of the account"))

    # -- perpetual funding and margin, farm by farm -------------------------------------
    def _fund(self, item: tuple[int, float]) -> None:
        """Longs pay shorts ``rate`` x position x mark: each farm on its own position
        (``farm_funding``), the account on the netted one (``funding``, as without
        farms)."""
        s, rate = item
        mark = self.portfolio.price[s]
        now = self.clock.now
        for farm in self.farms:
            position = farm.ledger.qty[s]
            if position:
                payment = -rate * position * mark
                farm.ledger.fund(payment)
                self.recorder.rare_row("farm_funding", (
                    now, farm.name, self.symbols[s], position, mark, rate, payment))
        super()._fund(item)

    def margin_calls(self, ts: int) -> None:
        """Close the perpetual positions of each farm whose equity is below their
        maintenance margin, at the latest marks, with orders of that farm."""
        for farm in self.farms:
            if not farm.has_perp_position():
                continue
            equity = farm.ledger.equity()
            required = farm.maintenance_margin()
            if equity >= required:
                continue
            cause = (f"farm margin: equity {equity:,.6g} below its maintenance margin "
                     f"{required:,.6g}")
            for order_id, sym, position, price in self.flatten_farm(farm, ts,
                                                                    perps_only=True):
                self.recorder.rare_row("farm_liquidations", (
                    ts, farm.name, sym, order_id, position, price, None, cause))

    # -- risk-made orders, farm by farm -------------------------------------------------
    def flatten(self, ts: int) -> None:
        """The account flattens: each farm closes its own positions."""
        for farm in self.farms:
            self.flatten_farm(farm, ts)

    def flatten_farm(self, farm: Farm, ts: int, perps_only: bool = False
                     ) -> list[tuple[int, str, float, float]]:
        """Close ``farm``'s open positions (``perps_only``: on perpetuals) at their latest
        marks (decision 0 orders); (order id, symbol, position, mark) of each."""
        made: list[tuple[int, str, float, float]] = []
        if self._flattening:
            return made
        self._flattening = True
        previous = self.farm_risk.farm
        try:
            ledger = farm.ledger
            self.farm = farm
            for i, sym in enumerate(self.symbols):
                position = ledger.qty[i]
                if position == 0.0 or (perps_only and self.perp[i] is None):
                    continue
                made.append((self._order_id + 1, sym, position, ledger.price[i]))
                self._on_farm_flatten(farm, i)
                price = ledger.price[i]
                if self.n_working[i]:
                    self.replace_working(i, ts)
                self._order_id += 1
                order = SubmitOrder(self._order_id, 0, ts, sym, -position, price)
                self._obs_ts[i] = ts
                self._submit(i, order, position, ledger.equity(), price, (), role=FLATTEN)
        finally:
            self._flattening = False
            self.farm_risk.farm = previous
        return made
