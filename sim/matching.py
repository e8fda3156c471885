"""Matching: working orders against market events. The one fill path.

A market event is either an **observation** (a price seen at a known time: a bar's open,
the price an order is submitted at, a trade in tick replay) or a **path segment** inside
a bar (from one OHLC vertex to the next; only bars have these). ``Matcher`` works on a
copy of the state it needs (position, cash, what each leg has left), so it can try a bar
both ways (worst-case intrabar convention) before anything is booked; the engine books
the proposals of the path it keeps.

Rules (docs/concepts/execution.md states them for users):

* At an observation at price ``p``: a market order takes at ``p``. A limit order seen for
  the first time takes at ``p`` if it is marketable there (never past its limit; a
  post-only order is rejected instead); otherwise it rests. A resting limit that the
  price reaches fills at its limit price as a maker (no price improvement on a gap). A
  stop triggers when ``p`` is at or through it and then takes at ``p`` (gaps fill worse).
* On a segment ``a -> b`` a resting limit fills at its limit when the segment passes it
  (``through``: strictly; ``touch``: reaching it is enough); a stop triggers where the
  segment reaches it and takes at the stop price moved by slippage. Legs fill in the
  order the segment reaches their prices (ties: the older order first). Market orders
  fill only at observations.
* Takers pay the venue's slippage (fixed, volatility-scaled, square-root impact) and its
  taker fee, at a price on the symbol's grid (``sim.instruments``) that must lie in the
  model's band around the price taken against (else ``FillOutsideBand`` stops the run);
  makers pay the maker fee (negative: a rebate) at their limit price.
* Participation: with ``max_participation`` a venue fills at most that share of the
  event's volume (the bar's, or the trade's); the rest stays working for later events.
* Reduce-only orders never grow or flip a position: they fill at most what reduces it,
  and are cancelled when the position is gone. A bracket that fills cancels its sibling.
* Spot buys are trimmed to the cash (legacy rule); perpetual fills that grow a position
  are trimmed to what the account's margin allows (initial margin = 1 / leverage, the
  venue's ``max_leverage`` capped by the symbol's instrument).
* Books (``Book``: a farm's ledger inside the account, ``sim.farm_desk``): an order that
  belongs to a book fills as an order of that book's own account besides the account's.
  Reduce-only means reducing the book's position (a bracket closes only its farm's
  position); a flat book cancels its own reduce-only legs; the part of a spot buy that
  adds to the book's long (beyond covering its short) is trimmed to the book's free cash
  (its cash less what its other orders reserve), then the whole buy to the account's.
* Perpetual liquidation: when equity falls below the maintenance margin of the account's
  perpetual positions (cross margin), the position is closed at its liquidation price,
  where equity equals the maintenance requirement (at the observed price when the market
  gapped past it). Checked at every observation and path vertex.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

from sim.orders import (
    BRACKET_ROLES,
    CANCELLED,
    EXPIRED,
    FILLED,
    IOC,
    LIMIT,
    MAKER,
    MARKET,
    REJECTED,
    STOP,
    TAKER,
    Leg,
)

LIQUIDATION_LIQUIDITY = "liquidation"


@dataclass(slots=True)
class Proposal:
    """A fill the matcher proposes (``leg`` None: a liquidation)."""

    leg: Leg | None
    quantity: float
    price: float
    fee: float
    liquidity: str
    venue: Any  # sim.venue.SimVenue (matching imports nothing of the venue's)
    liquidation_price: float | None = None


@dataclass(slots=True)
class Account:
    """What matching may look at for one symbol: its position, the account's cash, and
    the rest of the account at its marks (for margin and liquidation)."""

    position: float
    cash: float
    other_value: float = 0.0  # sum qty x mark over the other symbols
    other_margin: float = 0.0  # initial margin held by other perpetual positions
    other_maintenance: float = 0.0
    perp: object | None = None  # the perpetual venue whose margin rules apply, or None
    leverage: float = 1.0  # this symbol's on that venue: min(venue's, the instrument's cap)


@dataclass(slots=True, eq=False)
class Book:
    """A part of the account with a position and cash of its own (a farm's ledger), as
    matching may change it: ``position`` in this symbol; ``free`` its cash less what
    every working buy of it reserves; ``held``: order id -> [cash that order reserves, its
    price bound per unit], shrinking as it fills (the desk books the same way)."""

    position: float
    free: float
    held: dict[int, list[float]]


class Matcher:
    """One evaluation: legs of one symbol against a sequence of market events."""

    __slots__ = ("_others", "account", "bar_range", "books", "budget", "closed", "fills",
                 "limit_touch", "remaining", "rested", "triggered", "volume")

    def __init__(self, legs: list[Leg], account: Account, volume: float, bar_range: float,
                 limit_touch: bool, budget: dict[str, float] | None = None,
                 books: dict[int, Book] | None = None) -> None:
        """``legs``: every working leg of the symbol (OCO and flat-position cancels look
        through them all); ``budget``: participation already used in this bar/event;
        ``books``: order id -> the book it belongs to (None: every order is the
        account's)."""
        self.books = books
        self._others = {id(leg): leg for leg in legs}
        self.account = account
        self.volume = volume
        self.bar_range = bar_range
        self.limit_touch = limit_touch
        self.remaining = {id(leg): leg.remaining for leg in legs}
        self.rested = {id(leg) for leg in legs if leg.rested}
        self.triggered = {id(leg) for leg in legs if leg.triggered}
        self.closed: dict[int, tuple[Leg, str, str]] = {}
        self.fills: list[Proposal] = []
        self.budget: dict[str, float] = dict(budget) if budget else {}

    # -- what the engine reads afterwards --------------------------------------------
    def value(self, mark: float) -> float:
        a = self.account
        return a.cash + a.position * mark + a.other_value

    def is_open(self, leg: Leg) -> bool:
        return id(leg) not in self.closed

    # -- events ------------------------------------------------------------------------
    def observe(self, legs: list[Leg], price: float) -> None:
        """An observed price (open, submission price, trade)."""
        for leg in legs:
            if id(leg) in self.closed:
                continue
            order = leg.order
            buy = order.quantity > 0
            kind = order.kind
            if kind == MARKET:
                self._take(leg, price, None)
            elif kind == LIMIT:
                limit = order.limit_price
                assert limit is not None  # a limit order has its price (sim.orders)
                if id(leg) not in self.rested:
                    if (price <= limit) if buy else (price >= limit):
                        if order.post_only:
                            self._close(leg, REJECTED, "post-only order would take liquidity")
                        else:
                            self._take(leg, price, limit)
                elif (price < limit or (self.limit_touch and price == limit)) if buy else (
                        price > limit or (self.limit_touch and price == limit)):
                    self._make(leg, limit)
            elif kind == STOP and (id(leg) in self.triggered or (
                    (price >= order.stop_price) if buy  # type: ignore[operator]
                    else (price <= order.stop_price))):  # type: ignore[operator]
                self.triggered.add(id(leg))
                self._take(leg, price, None)
            self.rested.add(id(leg))
            if order.tif == IOC and id(leg) not in self.closed:
                self._close(leg, EXPIRED, "immediate-or-cancel: the rest was not filled")
        self._check_liquidation(price, price)

    def segment(self, legs: list[Leg], a: float, b: float) -> None:
        """The price moving from ``a`` to ``b`` inside a bar."""
        if a == b:
            return
        up = b > a
        hits: list[tuple[float, int, Leg, float]] = []
        for leg in legs:
            if id(leg) in self.closed:
                continue
            order = leg.order
            buy = order.quantity > 0
            if order.kind == LIMIT and id(leg) in self.rested:
                level = order.limit_price
                assert level is not None  # a limit order has its price (sim.orders)
                if buy and not up and (b < level or (self.limit_touch and b == level)):
                    hits.append((a - level, leg.seq, leg, level))
                elif not buy and up and (b > level or (self.limit_touch and b == level)):
                    hits.append((level - a, leg.seq, leg, level))
            elif order.kind == STOP and id(leg) not in self.triggered:
                level = order.stop_price
                assert level is not None  # a stop order has its trigger (sim.orders)
                if (buy and up and b >= level) or (not buy and not up and b <= level):
                    hits.append((abs(level - a), leg.seq, leg, level))
        if hits:
            hits.sort(key=lambda h: (h[0], h[1]))
            for _, _, leg, level in hits:
                if id(leg) in self.closed:
                    continue
                if leg.order.kind == LIMIT:
                    self._make(leg, level)
                else:
                    self.triggered.add(id(leg))
                    self._take(leg, level, None)
        self._check_liquidation(a, b)

    def path(self, legs: list[Leg], prices: tuple[float, ...]) -> None:
        for a, b in itertools.pairwise(prices):
            self.segment(legs, a, b)

    # -- fills ---------------------------------------------------------------------------
    def _quantity(self, leg: Leg) -> float | None:
        """What the leg may fill now: its remainder, capped by reduce-only and the venue's
        participation budget; None when it was closed instead."""
        qty = self.remaining[id(leg)]
        order = leg.order
        pos = self.account.position
        if self.books is not None:
            pos = self.books[order.order_id].position
        if order.reduce_only:
            if pos == 0.0 or (pos > 0.0) == (qty > 0.0):
                self._close(leg, CANCELLED, "reduce-only: no position left to reduce")
                return None
            if abs(qty) > abs(pos):
                qty = -pos
        venue = leg.venue
        cap = venue.max_participation
        if cap is not None:
            left = self.budget.get(venue.name)
            if left is None:
                left = cap * self.volume
            if left <= 0.0:
                return 0.0
            if abs(qty) > left:
                qty = math.copysign(left, qty)
        return qty

    def _spend(self, leg: Leg, qty: float) -> None:
        cap = leg.venue.max_participation
        if cap is not None:
            name = leg.venue.name
            left = self.budget.get(name)
            self.budget[name] = (cap * self.volume if left is None else left) - abs(qty)

    def _participation(self, qty: float) -> float:
        return abs(qty) / self.volume if self.volume > 0.0 else 0.0

    def _take(self, leg: Leg, market: float, limit: float | None) -> None:
        qty = self._quantity(leg)
        if not qty:
            return
        venue = leg.venue
        buy = qty > 0
        slip = venue.slippage(self._participation(qty), self.bar_range)
        inst = venue.instruments[leg.order.symbol]
        price = inst.taker_price(buy, market, slip)
        if limit is not None:  # a marketable limit never fills past its limit
            price = min(price, limit) if buy else max(price, limit)
        inst.check_taker(leg.order.order_id, buy, market, slip, price)
        self._book(leg, qty, price, venue.fee_rate(False), TAKER)

    def _make(self, leg: Leg, limit: float) -> None:
        qty = self._quantity(leg)
        if not qty:
            return
        self._book(leg, qty, limit, leg.venue.fee_rate(True), MAKER)

    def _book(self, leg: Leg, qty: float, price: float, fee_rate: float,
              liquidity: str) -> None:
        account = self.account
        venue = leg.venue
        trimmed = False
        book = None if self.books is None else self.books[leg.order.order_id]
        if book is not None and qty > 0 and account.perp is None:
            fitted = self._book_affordable(book, leg, qty, price, fee_rate)
            trimmed = fitted != qty
            qty = fitted
        if account.perp is not None:
            grows = abs(account.position + qty) > abs(account.position)
            if grows:
                allowed = self._margin_room(price)
                if abs(account.position + qty) > allowed:
                    room = max(allowed - abs(account.position), 0.0) if (
                        account.position == 0.0 or (account.position > 0) == (qty > 0)) \
                        else allowed + abs(account.position)
                    room = venue.instruments[leg.order.symbol].floor_size(room, True)
                    qty = math.copysign(min(abs(qty), room), qty)
                    trimmed = True
        elif qty > 0:
            fitted = venue.affordable(qty, price, fee_rate, account.cash,
                                      venue.instruments[leg.order.symbol])
            trimmed = trimmed or fitted != qty
            qty = fitted
        if qty == 0.0:
            if self.remaining[id(leg)] == leg.quantity:
                self._close(leg, REJECTED, "insufficient margin" if account.perp is not None
                            else "insufficient cash")
            else:
                self._close(leg, FILLED, "trimmed: nothing more affordable")
            return
        fee = abs(qty) * price * fee_rate
        account.cash -= qty * price + fee
        account.position += qty
        if book is not None:
            book.position += qty
            book.free -= qty * price + fee
            held = book.held.get(leg.order.order_id)
            if held is not None and qty > 0:  # what it reserved is spent or released
                freed = min(held[0], qty * held[1])
                held[0] -= freed
                book.free += freed
        self._spend(leg, qty)
        self.fills.append(Proposal(leg, qty, price, fee, liquidity, venue))
        left = self.remaining[id(leg)] - qty
        if abs(left) <= 1e-12 * abs(leg.quantity):
            left = 0.0
        self.remaining[id(leg)] = left
        if left == 0.0:
            self._close(leg, FILLED, "")
        elif trimmed:
            self._close(leg, FILLED, "trimmed to the cash or margin available")
        order = leg.order
        flat = (account.position if book is None else book.position) == 0.0
        if flat or (order.role in BRACKET_ROLES and left == 0.0):
            self._on_position_change(leg, flat, book)

    def _book_affordable(self, book: Book, leg: Leg, qty: float, price: float,
                         fee_rate: float) -> float:
        """A book's buy of ``qty``: covering its short always goes (a reduction); what
        adds to its long is trimmed to its free cash, with what this order reserved, after
        the cover is paid."""
        cover = min(qty, max(-book.position, 0.0))
        opening = qty - cover
        if opening <= 0.0:
            return qty
        held = book.held.get(leg.order.order_id)
        cash = book.free + (held[0] if held is not None else 0.0)
        cash -= cover * price * (1.0 + fee_rate)
        venue = leg.venue
        fitted = venue.affordable(opening, price, fee_rate, max(cash, 0.0),
                                  venue.instruments[leg.order.symbol])
        return qty if fitted == opening else cover + fitted

    def _on_position_change(self, filled: Leg, flat: bool, book: Book | None) -> None:
        """OCO: a bracket that filled cancels its siblings; a flat position (the book's,
        when orders belong to books) cancels every reduce-only leg of the symbol (of that
        book; the engine passes them all in)."""
        books = self.books
        for other_id, other in list(self._others.items()):
            if other_id in self.closed or other is filled:
                continue
            o = other.order
            if not o.reduce_only:
                continue
            if flat and (books is None or books[o.order_id] is book):
                self._close(other, CANCELLED, "position closed")
            elif (filled.order.role in BRACKET_ROLES and o.role in BRACKET_ROLES
                  and o.parent_id == filled.order.parent_id):
                self._close(other, CANCELLED, f"OCO: order {filled.order.order_id} filled")

    def _margin_room(self, price: float) -> float:
        """Largest |position| the account's margin allows at ``price``."""
        a = self.account
        equity = a.cash + a.position * price + a.other_value
        free = equity - a.other_margin
        return max(free, 0.0) * a.leverage / price

    def _close(self, leg: Leg, status: str, reason: str) -> None:
        self.closed[id(leg)] = (leg, status, reason)

    # -- perpetuals ----------------------------------------------------------------------
    def liquidation_price(self) -> float | None:
        """Price of this symbol at which equity equals the maintenance requirement (the
        rest of the account at its marks), or None when flat or not a perpetual."""
        a = self.account
        if a.perp is None or a.position == 0.0:
            return None
        mmr = a.perp.maintenance_margin  # type: ignore[attr-defined]
        q = a.position
        denominator = q - mmr * abs(q)
        if denominator == 0.0:
            return None
        price = (a.other_maintenance - a.cash - a.other_value) / denominator
        return price if price > 0.0 else None

    def _check_liquidation(self, a_price: float, b_price: float) -> None:
        acct = self.account
        if acct.perp is None or acct.position == 0.0:
            return
        liq = self.liquidation_price()
        if liq is None:
            return
        long = acct.position > 0
        lo, hi = min(a_price, b_price), max(a_price, b_price)
        if (long and lo > liq) or (not long and hi < liq):
            return
        # Reached: at the liquidation price, or at the start when it was already past it.
        start_past = a_price <= liq if long else a_price >= liq
        price = a_price if start_past else liq
        venue = acct.perp
        qty = -acct.position
        fee = abs(qty) * price * venue.fee_rate(False)  # type: ignore[attr-defined]
        acct.cash -= qty * price + fee
        acct.position = 0.0
        self.fills.append(Proposal(None, qty, price, fee, LIQUIDATION_LIQUIDITY, venue, liq))
        for leg in self._others.values():
            if id(leg) not in self.closed and leg.order.reduce_only:
                self._close(leg, CANCELLED, "position liquidated")


# Intrabar conventions: the order the bar's extremes are visited in after the open.
INTRABAR = ("worst_case", "ohlc", "olhc")
