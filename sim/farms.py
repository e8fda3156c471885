"""A farm at run time: its agents' columns, its consensus, policy, risk and own ledger;
the account-level risk seen through a farm (``FarmRisk``) and the farm's wallet
(``FarmRouter``); the invariant that the account ledger is the sum of the farms'.

The account (``Engine.portfolio``) is what the venues see: every fill books there as
before, so two farms trading one symbol net at the venue. Each fill also books into the
ledger of the farm whose order it was, so each farm keeps its own cash, positions,
realised and unrealised PnL and fees. Cash, positions and fees add up exactly (up to
float rounding, ``LEDGER_TOLERANCE``); realised PnL does not (netted positions realise at
the account when farms hold opposite sides), so it is not part of the invariant.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from sim.consensus import Consensus, PerformanceSource
from sim.messages import OrderDenied, OrderRouted, SubmitOrder
from sim.policy import TargetExposurePolicy
from sim.portfolio import Portfolio
from sim.risk import RiskEngine, RiskLimits, Ticket, reduces
from sim.router import Route, VenueRouter
from sim.venue import SimVenue

# Relative tolerance of the ledger invariant: each booking is one IEEE add per ledger, so
# the account and the sum of the farms drift apart by a few ulps per fill at most.
LEDGER_TOLERANCE = 1e-9


class LedgerMismatch(AssertionError):
    """The account ledger is not the sum of the farm ledgers: a fill, fee or funding
    payment was booked to one side only (a bug; the run fails naming it)."""


@dataclass(slots=True, eq=False)
class Farm:
    """One farm's pipeline state. ``columns[s]``: the positions, in the engine's standing
    signals of symbol s, of this farm's agents (its votes, in listed order)."""

    index: int
    name: str
    capital: float
    ledger: Portfolio
    consensus: Consensus
    policy: TargetExposurePolicy
    risk: RiskEngine
    columns: list[tuple[int, ...]]
    agent_indexes: list[tuple[int, ...]]
    agent_names: list[tuple[str, ...]]
    daily_loss: float | None = None  # money; None: no such limit
    flatten_on_trip: bool = False
    outside_wallet: frozenset[str] = frozenset()  # venues it may not trade through
    # "active", "paused" (no votes, no orders of its own) or "killed" (final: no votes,
    # only position-reducing orders); ``sim.farm_lifecycle``.
    state: str = "active"
    members: set[str] = field(default_factory=set)  # its agents' names (spawns join)
    # Per symbol: the leverage its perpetual margin allows (min of the venue's and the
    # farm's max_leverage), None for a spot symbol; and its maintenance margin rate.
    leverage: list[float | None] = field(default_factory=list)
    maintenance: list[float] = field(default_factory=list)
    last_decision: list[tuple[object, float, float | None] | None] = field(
        default_factory=list)
    acted_target: list[float] = field(default_factory=list)
    # Its buys not yet terminal (in flight or working): order id -> [cash reserved, price
    # bound per unit with fees]. The reservation shrinks as the order fills and goes when
    # it ends (filled, cancelled, expired, rejected): sim.farm_desk.
    reserved: dict[int, list[float]] = field(default_factory=dict)

    def free_cash(self) -> float:
        """Cash no working order of the farm has reserved: what a new buy may spend."""
        reserved = self.reserved
        if not reserved:
            return self.ledger.cash
        return self.ledger.cash - math.fsum(held[0] for held in reserved.values())

    def gross_exposure(self) -> float:
        ledger = self.ledger
        return sum(abs(ledger.qty[i] * ledger.price[i]) for i in ledger._held)

    def free_collateral(self) -> float:
        """What the farm may still commit: its cash, plus its perpetual positions' value
        less their initial margin (|quantity x mark| / leverage). A spot-only farm's is
        its cash, exactly (the first increment's rule)."""
        ledger = self.ledger
        cash = ledger.cash
        leverage = self.leverage
        value = margin = 0.0
        perps = False
        for i in ledger._held:
            lev = leverage[i] if leverage else None
            if lev is not None:
                perps = True
                v = ledger.qty[i] * ledger.price[i]
                value += v
                margin += abs(v) / lev
        return cash + value - margin if perps else cash

    def maintenance_margin(self) -> float:
        """The maintenance margin of the farm's perpetual positions at their marks."""
        ledger = self.ledger
        return math.fsum(abs(ledger.qty[i] * ledger.price[i]) * self.maintenance[i]
                         for i in ledger._held if self.leverage and self.leverage[i] is not None)

    def has_perp_position(self) -> bool:
        leverage = self.leverage
        return bool(leverage) and any(leverage[i] is not None for i in self.ledger._held)


class FarmPerformance:
    """``performance_weighted`` inside a farm: the weights of the farm's own agents on a
    symbol (each agent's decayed hit rate there, ``sim.performance``), in its columns'
    order. ``columns`` is the farm's list, read at each vote (spawns and symbol moves
    add columns to it)."""

    def __init__(self, source: PerformanceSource, columns: list[tuple[int, ...]]) -> None:
        self.source = source
        self.columns = columns

    def weights(self, symbol: int) -> list[float]:
        every = self.source.weights(symbol)
        return [every[p] for p in self.columns[symbol]]


def check_ledgers(account: Portfolio, farms: Sequence[Farm], reserve: float,
                  ts: int, unattributed: Portfolio | None = None,
                  sizes: Sequence[float] = ()) -> None:
    """Raise ``LedgerMismatch`` unless the account's cash, every position, fees and
    funding are the reserve plus the farms' (relative tolerance ``LEDGER_TOLERANCE``).

    A position's scale is also what the account's equity buys at its mark, and
    ``sizes[i]``, the largest fill of symbol i so far: two farms' positions netted in the
    account and then closed by each leave the account's running sum a few ulps of the
    largest position held off zero (millions of units of a symbol priced at a
    thousandth), where the farms' own are exactly zero.

    ``unattributed``: what a live session booked to no farm (a reconciliation
    adjustment no single farm's ledger can be told to owe, ``sim.farm_desk``), part of
    the account too."""
    ledgers = [f.ledger for f in farms]
    if unattributed is not None:
        reserve += unattributed.cash

    def same(what: str, account_value: float, parts: list[float], size: float = 1.0
             ) -> None:
        total = math.fsum(parts)
        scale = max(size, abs(account_value), *(abs(p) for p in parts))
        if abs(account_value - total) > LEDGER_TOLERANCE * scale:
            each = ", ".join(f"{f.name} {p!r}"
                             for f, p in zip(farms, parts[-len(farms):], strict=True))
            raise LedgerMismatch(
                f"at {ts}: account {what} {account_value!r} is not the sum of the farm "
                f"ledgers {total!r} ({each}): a fill, fee or funding payment was booked "
                "to one side only")

    same("cash", account.cash, [reserve, *(le.cash for le in ledgers)])
    same("fees", account.fees_paid, [le.fees_paid for le in ledgers])
    held_apart = unattributed.funding_total if unattributed is not None else 0.0
    same("funding", account.funding_total - held_apart,
         [le.funding_total for le in ledgers])
    equity = abs(account.equity())
    for i in range(len(account.qty)):
        mark = abs(account.price[i])
        size = equity / mark if mark > 0.0 and math.isfinite(equity) else 1.0
        apart = unattributed.qty[i] if unattributed is not None else 0.0
        same(f"position {i}", account.qty[i] - apart, [le.qty[i] for le in ledgers],
             max(1.0, size, sizes[i] if sizes else 1.0))


def margin_split(qty: float, position: float, free: float, price: float, leverage: float,
                 cost: float) -> tuple[float, float, float]:
    """An order of ``qty`` on a perpetual by a farm holding ``position`` with ``free``
    collateral (``Farm.free_collateral``): (cover, opening, affordable), as magnitudes.
    ``cover`` reduces the position (always allowed; it frees its initial margin, less
    its costs), ``opening`` grows it, ``affordable`` is the most opening the collateral
    left pays the initial margin (1 / leverage) and costs (``cost``, a fraction) for."""
    cover = min(abs(qty), abs(position)) if position and (position > 0) != (qty > 0) else 0.0
    opening = abs(qty) - cover
    left = free + cover * price * (1.0 / leverage - cost)
    return cover, opening, max(left, 0.0) / (price * (1.0 / leverage + cost))


def buy_split(qty: float, position: float, cash: float, unit_cost: float
              ) -> tuple[float, float, float]:
    """A buy of ``qty`` (> 0) by a farm holding ``position`` and ``cash``, at ``unit_cost``
    per unit with fees: (cover, opening, affordable). ``cover`` buys back a short (a
    reduction: always allowed), ``opening`` adds to a long, and ``affordable`` is the
    most opening the cash left after the cover pays for."""
    cover = min(qty, max(-position, 0.0))
    opening = qty - cover
    left = cash - cover * unit_cost
    return cover, opening, max(left, 0.0) / unit_cost


class FarmRisk:
    """The desk's risk engine in a farm run: an order is judged first by its farm's
    limits on the farm's ledger, then by the account's on the account (kill switch,
    account breakers, venue limits), as one order of one account; an order reducing its
    farm's position counts as a reduction there too. ``farm``: the farm whose order is
    being checked (the desk sets it)."""

    def __init__(self, account: RiskEngine, portfolio: Portfolio,
                 symbol_index: dict[str, int], unit_cost: Callable[[Ticket], float],
                 cost_margin: float) -> None:
        """``unit_cost(order)``: the most a unit of a buy may cost with fees at the price
        it is bounded by (``sim.farm_desk.FarmDesk.unit_cost``): a farm's buy must fit its
        free cash at it, and reserves that much while it works. ``cost_margin``: the most
        a taker fill costs over its reference price, as a fraction (fee on slipped price
        at the dearest venue): what a perpetual's opening pays on top of its margin."""
        self.account = account
        self.portfolio = portfolio
        self.symbol_index = symbol_index
        self.unit_cost = unit_cost
        self.cost_margin = cost_margin
        self.limits: RiskLimits = account.limits
        self.needs_account = account.needs_account
        self.tripped_now = False
        self.farm_tripped: Farm | None = None  # a farm breaker the last check tripped
        self.farm: Farm | None = None

    def observe_equity(self, ts: Sequence[int], values: Sequence[float], start: int,
                       now: int) -> None:
        self.account.observe_equity(ts, values, start, now)

    def kill(self) -> None:
        self.account.kill()

    def check(self, order: Ticket, position: float, *, equity: float = math.nan,
              gross_exposure: float = 0.0, last_close: float = math.nan,
              agents: tuple[str, ...] = ()) -> OrderDenied | None:
        farm = self.farm
        assert farm is not None, "an order checked with no farm set"
        self.tripped_now = False
        self.farm_tripped = None
        denial = self._farm_check(farm, order, position, equity, last_close)
        if denial is not None:
            return denial
        account = self.portfolio
        held = account.qty[self.symbol_index[order.symbol]]
        if reduces(position, order.quantity):
            # A farm closing (part of) its own position takes risk off the account even
            # when the netted account position grows (another farm holds the other side):
            # it passes the account's checks as a reduction (kill switch, breakers).
            held = position
        denial = self.account.check(
            order, held, equity=account.equity(), gross_exposure=gross_exposure,
            last_close=last_close, agents=agents)
        self.tripped_now = self.account.tripped_now
        return denial

    def _farm_check(self, farm: Farm, order: Ticket, position: float, equity: float,
                    last_close: float) -> OrderDenied | None:
        risk = farm.risk
        farm.ledger.book.catch_up(order.ts)
        if farm.daily_loss is not None and risk.breaker is None:
            _, end = risk.day_bounds(order.ts)
            loss = risk.day_start_equity - equity
            if loss >= farm.daily_loss:
                risk.trip("daily_loss", loss, end)
                self.farm_tripped = farm
        if risk.breaker == "daily_loss" and not reduces(position, order.quantity):
            return _farm_denial(OrderDenied(
                order.order_id, order.ts, order.symbol, "circuit_breaker",
                f"farm {farm.name}: circuit breaker tripped by daily_loss (lost "
                f"{risk.breaker_value:,.6g}, limit {farm.daily_loss:,.6g}): only "
                "position-reducing orders may go", farm.daily_loss, risk.breaker_value))
        denial = risk.check(order, position, equity=equity,
                            gross_exposure=farm.gross_exposure(), last_close=last_close)
        if risk.tripped_now:
            self.farm_tripped = farm
        if denial is not None:
            return _farm_denial(replace(denial, reason=f"farm {farm.name}: {denial.reason}"))
        # what its working orders hold back (sim.farm_desk) is not the farm's to commit
        held_back = farm.ledger.cash - farm.free_cash()
        lev = farm.leverage[self.symbol_index[order.symbol]] if farm.leverage else None
        if lev is not None:  # a perpetual: the farm's own margin pays for what it opens
            free = farm.free_collateral() - held_back
            _, opening, affordable = margin_split(order.quantity, position, free,
                                                  order.ref_price, lev, self.cost_margin)
            if opening > affordable * (1.0 + LEDGER_TOLERANCE):
                need = opening * order.ref_price * (1.0 / lev + self.cost_margin)
                return _farm_denial(OrderDenied(
                    order.order_id, order.ts, order.symbol, "margin",
                    f"farm {farm.name}: opening {opening:.6g} at {order.ref_price:.6g} "
                    f"needs {need:,.6g} of margin and costs at {lev:g}x, more than its free "
                    f"collateral {free:,.6g}", free, need))
        elif order.quantity > 0.0:  # a farm spends only the cash it has (not reserved)
            unit = self.unit_cost(order)
            cash = farm.free_collateral() - held_back
            _, opening, affordable = buy_split(order.quantity, position, cash, unit)
            if opening > affordable * (1.0 + LEDGER_TOLERANCE):
                held = "" if cash == farm.ledger.cash else ", its working orders reserving the rest"
                return _farm_denial(OrderDenied(
                    order.order_id, order.ts, order.symbol, "capital",
                    f"farm {farm.name}: buying {order.quantity:.6g} at "
                    f"{order.ref_price:.6g} costs {order.quantity * unit:,.6g} with fees, "
                    f"more than its cash {cash:,.6g} pays for{held}", cash,
                    order.quantity * unit))
        return None

    def on_order_sent(self, order: Ticket, agents: tuple[str, ...] = ()) -> None:
        """The order goes to a venue: the farm's limits count it, and a buy reserves
        its cost at its price bound from the farm's cash until it ends."""
        self.account.on_order_sent(order, agents)
        farm = self.farm
        if farm is not None:
            farm.risk.on_order_sent(order)
            perp = bool(farm.leverage) and farm.leverage[
                self.symbol_index[order.symbol]] is not None
            # a perpetual's margin is judged when it is sent (market orders, no latency:
            # sim.farm_config), not reserved as a spot buy's cost is
            if order.quantity > 0.0 and not order.reduce_only and not perp:
                unit = self.unit_cost(order)
                farm.reserved[order.order_id] = [order.quantity * unit, unit]


def _farm_denial(denial: OrderDenied) -> OrderDenied:
    """A farm's own limit denied the order: its check is named ``farm.<check>``."""
    return replace(denial, check=f"farm.{denial.check}")


class FarmRouter:
    """The venue router as a farm sees it: only the venues of its wallet."""

    def __init__(self, router: VenueRouter, risk: FarmRisk) -> None:
        self.router = router
        self.risk = risk
        self.venues = router.venues

    def _outside(self) -> frozenset[str]:
        farm = self.risk.farm
        return frozenset() if farm is None else farm.outside_wallet

    def route_legs(self, order: SubmitOrder, exclude: frozenset[str] = frozenset()
                   ) -> tuple[OrderRouted, ...]:
        return self.router.route_legs(order, exclude | self._outside())

    def legs(self, symbol: str, quantity: float, ref_price: float, reduce_only: bool,
             exclude: frozenset[str] = frozenset()) -> Route | None:
        return self.router.legs(symbol, quantity, ref_price, reduce_only,
                                exclude | self._outside())

    def why_not(self, symbol: str) -> str:
        farm = self.risk.farm
        if farm is None or not farm.outside_wallet:
            return self.router.why_not(symbol)
        wallet = ", ".join(v.name for v in self.venues if v.name not in farm.outside_wallet)
        return f"{self.router.why_not(symbol)} (farm {farm.name} trades through {wallet})"

    def venue(self, name: str) -> SimVenue:
        return self.router.venue(name)

    def observe_funding(self, symbol: str, rate: float) -> None:
        self.router.observe_funding(symbol, rate)
