"""The execution desk of a farm run: the one desk of ``sim.execution`` (one account, one
order and fill numbering, the same venues), with each order tagged with its farm.

What a farm adds to the desk: its risk limits and wallet judge its orders first
(``sim.farms.FarmRisk``, ``FarmRouter``); a fill books into the account as before and
into the ledger of the order's farm; cancel/replace touches only the farm's own orders;
risk-made flattening closes each farm's positions with orders of that farm (the account
position is their sum, so the account ends flat too).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from sim.clock import SimClock
from sim.event_queue import EventQueue
from sim.execution import ExecutionDesk
from sim.farms import Farm, FarmRisk, FarmRouter
from sim.messages import OrderFilled, SubmitOrder
from sim.orders import BRACKET_ROLES, ENTRY, FLATTEN, TERMINAL, ExecutionSettings, Order
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
        self.farms = tuple(farms)
        self._farm_of: dict[int, Farm] = {}
        # What a live session books to no farm: a reconciliation adjustment that no one
        # farm's ledger can be told to owe (``adjust``), and its share of funding.
        self.unattributed = Portfolio(symbols, 0.0)
        self.unattributed.price = portfolio.price
        self.booked_unattributed = False  # anything ever booked there (never in a backtest)
        self._on_farm_flatten = on_flatten
        for farm in self.farms:  # its breakers follow its own equity
            farm.ledger.book.follow(farm.risk.observe_equity)

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

    def farm_name(self, order_id: int) -> str | None:
        farm = self._farm_of.get(order_id)
        return None if farm is None else farm.name

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
        farm = self._farm_of.get(life.order_id)
        if farm is None:  # only an adjustment no farm owes has none (``adjust``)
            assert life.role == "adjustment", f"order {life.order_id} has no farm"
            self.unattributed.apply(s, fill)
            self.booked_unattributed = True
        else:
            farm.ledger.apply(s, fill)

    # -- a live session: venue truths booked to the farm they belong to ------------------
    def adopt_farm(self, order_id: int, farm: Farm) -> None:
        """A restarted session takes back order ``order_id`` of ``farm`` (``live.farms``):
        its later fills book into that farm's ledger."""
        self._farm_of[order_id] = farm

    def owner(self, s: int) -> Farm | None:
        """The one farm whose ledger a difference on symbol s belongs to: the only farm
        that trades s or holds it (None: none, or several, so no one can tell)."""
        found = [f for f in self.farms if f.columns[s] or f.ledger.qty[s] != 0.0]
        return found[0] if len(found) == 1 else None

    def holders(self, s: int) -> str:
        """Which farm ledger a position difference on symbol s is booked to, in words
        (a reconciliation alert says it)."""
        farm = self.owner(s)
        if farm is not None:
            return f"farm {farm.name} (the one farm trading {self.symbols[s]})"
        held = ", ".join(f"{f.name} {f.ledger.qty[s]:+g}" for f in self.farms
                         if f.columns[s] or f.ledger.qty[s] != 0.0)
        return (f"no farm (farms {held or 'none'} trade {self.symbols[s]}: cannot tell "
                "whose ledger disagrees)")

    def adjust(self, s: int, now: int, quantity: float, price: float, reason: str,
               venue: str = "reconciliation") -> int:
        """``ExecutionDesk.adjust``, booked to the farm that owes it (``owner``), else
        unattributed (the account's, no farm's: ``check_ledgers`` counts it)."""
        farm = self.owner(s)
        if farm is not None:
            order_id = self._order_id + 1
            self._farm_of[order_id] = farm
            self.recorder.rare_row("farm_orders", (order_id, 0, farm.name))
        return super().adjust(s, now, quantity, price, reason, venue)

    def book_funding(self, s: int, ts: int, position: float, mark: float, rate: float,
                     payment: float, venue: str | None = None) -> None:
        """A venue's funding payment on the account's position, split among the ledgers
        holding it in proportion to their positions (the unattributed part included);
        the last holder takes what rounding leaves, so the parts add up exactly."""
        super().book_funding(s, ts, position, mark, rate, payment, venue)
        self.split_funding(s, payment)

    def split_funding(self, s: int, payment: float) -> None:
        """Book ``payment`` on symbol s into the farm ledgers (see ``book_funding``)."""
        ledgers = [f.ledger for f in self.farms if f.ledger.qty[s] != 0.0]
        if self.unattributed.qty[s] != 0.0:
            ledgers.append(self.unattributed)
        held = math.fsum(ledger.qty[s] for ledger in ledgers)
        if held == 0.0 or not ledgers:
            self.unattributed.fund(payment)
            self.booked_unattributed = True
            return
        left = payment
        for ledger in ledgers[:-1]:
            part = payment * ledger.qty[s] / held
            ledger.fund(part)
            left -= part
        ledgers[-1].fund(left)

    # -- risk-made orders, farm by farm -------------------------------------------------
    def flatten(self, ts: int) -> None:
        """The account flattens: each farm closes its own positions."""
        for farm in self.farms:
            self.flatten_farm(farm, ts)

    def flatten_farm(self, farm: Farm, ts: int) -> None:
        """Close ``farm``'s open positions at their latest marks (decision 0 orders)."""
        if self._flattening:
            return
        self._flattening = True
        previous = self.farm_risk.farm
        try:
            ledger = farm.ledger
            self.farm = farm
            for i, sym in enumerate(self.symbols):
                position = ledger.qty[i]
                if position == 0.0:
                    continue
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
