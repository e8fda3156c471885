"""Router: the "where". Picks the venue (or venues) for each order.

Eligibility: a venue is a candidate for an order when it lists the symbol and is not
down. Venues that are up are tried first (in score order), degraded ones only after them.
After rounding the quantity down to the symbol's lots on that venue (its instrument,
``sim.instruments``), a venue is also ineligible when nothing is left, the quantity is
below the instrument's ``min_size``, or (unless the order is reduce-only) its notional
at the order's reference price is below ``min_notional``.
Policies (``router.policy``):

* ``cheapest`` (the default): lowest taker fee; score = fee bps.
* ``preference``: the fixed order of ``preference`` (venues not named come after, in the
  order listed); the first eligible venue wins; score = rank.
* ``cost``: lowest estimated cost in bps: taker fee + the venue's slippage estimate +
  a funding term; score = cost. The funding term is what holding the position for
  ``funding_horizon`` funding intervals would cost at the latest rate known: for a
  perpetual venue, ``rate x 10^4 x horizon``, paid by a buy (positive) and earned by a
  sell when the rate is positive, the other way round when negative; 0 on a spot venue.
  The rate known is the last one paid in the run (``observe_funding``; no lookahead),
  else the venue's configured ``funding_rate``, else 0. Scores then depend on the
  order's side, so the plan is cached per (symbol, side).
* ``split``: by cost, each venue takes up to its ``max_order_notional`` (at the order's
  reference price), the rest goes to the next; a venue without a cap takes all that is
  left. Each leg is routed as its own ``OrderRouted`` (same order id, the leg's quantity);
  what no venue can take is not sent (the order fills smaller than asked).

Quantities are rounded toward zero to whole lots, so a closing order on a venue with a
lot may leave a remainder smaller than one lot.

Ties keep the order the venues are listed in (stable, deterministic). Every decision
carries the candidates with their scores and the reason. ``timer`` measures how long
routing took (a wall-time measurement stored for latency analysis; it never influences a
result).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from sim.messages import OrderRouted, RouteCandidate, SubmitOrder
from sim.venue import DOWN, UP, SimVenue

POLICIES = ("cheapest", "preference", "cost", "split")
# (venues to try as (score, listing position, venue), candidates, skipped note, reasons)
# (venues to try as (score, listing position, venue), candidates, skipped note, reasons,
# the first venue with its reason when it is up and the policy does not split)
_Plan = tuple[list[tuple[float, int, SimVenue]], tuple[RouteCandidate, ...], str, list[str],
              tuple[SimVenue, str] | None]
# A route as the desk takes it: (candidates, elapsed ns, the legs as (venue, quantity,
# reason)); ``route_legs`` makes each leg an ``OrderRouted``.
Route = tuple[tuple[RouteCandidate, ...], int, tuple[tuple[SimVenue, float, str], ...]]


class VenueRouter:
    def __init__(
        self, venues: Sequence[SimVenue], policy: str = "cheapest",
        preference: Sequence[str] = (), timer: Callable[[], int] = time.perf_counter_ns,
        funding_horizon: float = 1.0,
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(f"unknown router policy {policy!r} (known: {POLICIES})")
        self.venues = tuple(venues)
        self.policy = policy
        self._timer = timer
        self._by_name = {v.name: v for v in self.venues}
        order = [n for n in preference if n in self._by_name]
        order += [v.name for v in self.venues if v.name not in order]
        self._rank = {name: i for i, name in enumerate(order)}
        self._listing: dict[str, tuple[SimVenue, ...]] = {}
        for venue in self.venues:
            for symbol in venue.symbols:
                self._listing.setdefault(symbol, ())
        for symbol in self._listing:
            self._listing[symbol] = tuple(v for v in self.venues if symbol in v.symbols)
        self.funding_horizon = funding_horizon
        self._funding: dict[str, float] = {}  # symbol -> last funding rate paid
        self._by_cost = policy in ("cost", "split")
        self._plans: dict[tuple[str, float], _Plan] = {}

    def venue(self, name: str) -> SimVenue:
        return self._by_name[name]

    def set_health(self, name: str, health: str) -> None:
        self._by_name[name].health = health
        self._plans.clear()

    def observe_funding(self, symbol: str, rate: float) -> None:
        """A funding rate was paid on ``symbol``: the cost policies score with it next."""
        if self._funding.get(symbol) != rate:
            self._funding[symbol] = rate
            if self._by_cost:
                self._plans.clear()

    def _plan(self, symbol: str, side: float) -> _Plan:
        """Per symbol (and side, for the cost policies), cached until a venue's health or
        the funding rate changes: the venues to try in order (up ones by score, then
        degraded), the candidates, the skipped note and the reason of each rank (made
        once, not per order)."""
        key = (symbol, side if self._by_cost else 0.0)
        plan = self._plans.get(key)
        if plan is None:
            listing = self._listing[symbol]
            scores = [self.score(v, symbol, side) for v in listing]
            scored = sorted(
                ((scores[i], i, v) for i, v in enumerate(listing) if v.health != DOWN),
                key=lambda t: (t[0], t[1]),
            )
            pool = ([t for t in scored if t[2].health == UP]
                    + [t for t in scored if t[2].health != UP])
            candidates = tuple(RouteCandidate(v.name, v.fee_bps, scores[i])
                               for i, v in enumerate(listing) if v.health != DOWN)
            skipped = [v.name for v in listing if v.health == DOWN]
            note = f"; skipped down: {', '.join(skipped)}" if skipped else ""
            reasons = [self._reason(sc, len(listing), rank)
                       for rank, (sc, _, _) in enumerate(pool)]
            first = (pool[0][2], reasons[0] + note) if (
                pool and pool[0][2].health == UP and self.policy != "split") else None
            plan = self._plans[key] = (pool, candidates, note, reasons, first)
        return plan

    def funding_bps(self, venue: SimVenue, symbol: str, side: float) -> float:
        """Expected funding cost in bps of holding ``side`` (+1 long, -1 short) on
        ``venue`` for ``funding_horizon`` intervals (negative: earned)."""
        if venue.kind != "perp":
            return 0.0
        rate = self._funding.get(symbol)
        if rate is None:
            rate = venue.funding_rate or 0.0
        return rate * 10_000.0 * self.funding_horizon * side

    def score(self, venue: SimVenue, symbol: str = "", side: float = 1.0) -> float:
        if self.policy == "cheapest":
            return venue.fee_bps
        if self.policy == "preference":
            return float(self._rank[venue.name])
        return venue.fee_bps + venue.slippage_bps + self.funding_bps(venue, symbol, side)

    def route(self, order: SubmitOrder) -> OrderRouted | None:
        """One venue for the whole order, or None when no venue is eligible."""
        routed = self.route_legs(order)
        return routed[0] if routed else None

    def why_not(self, symbol: str) -> str:
        """The reason an order for ``symbol`` could not be routed."""
        listing = self._listing.get(symbol, ())
        if not listing:
            return f"no venue lists {symbol}"
        if all(v.health == DOWN for v in listing):
            return f"every venue listing {symbol} is down"
        return (f"the order is below every open venue's lot, minimum size or minimum "
                f"notional for {symbol}")

    def route_legs(
        self, order: SubmitOrder, exclude: frozenset[str] = frozenset()
    ) -> tuple[OrderRouted, ...]:
        """The routed legs (one unless the policy splits); empty when nothing is eligible.
        ``exclude``: venues that already refused this order (a fallback skips them)."""
        found = self.legs(order.symbol, order.quantity, order.ref_price, order.reduce_only,
                          exclude)
        if found is None:
            return ()
        candidates, elapsed, legs = found
        split = self.policy == "split"
        return tuple(
            OrderRouted(order if qty == order.quantity and not split
                        else order.with_quantity(qty), order.ts, venue.name, candidates,
                        reason, elapsed)
            for venue, qty, reason in legs)

    def legs(
        self, symbol: str, quantity: float, ref_price: float, reduce_only: bool,
        exclude: frozenset[str] = frozenset(),
    ) -> Route | None:
        """``route_legs`` from an order's fields, without messages (the desk's path):
        (candidates, elapsed ns, ((venue, quantity, reason), ...)); None when nothing
        is eligible."""
        start = self._timer()
        side = 1.0 if quantity > 0 else -1.0
        plan = self._plans.get((symbol, side if self._by_cost else 0.0))  # _plan's
        if plan is None:
            if symbol not in self._listing:
                return None
            plan = self._plan(symbol, side)
        pool, candidates, note, reasons, first = plan
        if first is not None and not exclude and quantity != 0.0:
            # The first venue takes it when the symbol has no size rules there (the loop
            # below, without its steps: the quantity as is, the first rank's reason).
            venue, reason = first
            inst = venue.instruments.get(symbol)
            if inst is not None and not inst.size_rules:
                return candidates, self._timer() - start, ((venue, quantity, reason),)
        listing = self._listing[symbol]
        if exclude:
            pool = [t for t in pool if t[2].name not in exclude]
        if self.policy == "split":
            legs = self._split(symbol, quantity, ref_price, reduce_only, pool)
            if not legs:
                return None
            elapsed = self._timer() - start
            n = len(legs)
            return candidates, elapsed, tuple(
                (v, q, f"split leg {k + 1}/{n} by cost ({sc:g} bps){note}")
                for k, (sc, v, q) in enumerate(legs))
        for rank, (sc, _, v) in enumerate(pool):
            inst = v.instruments.get(symbol) or v.instrument(symbol, ref_price)
            qty = inst.round_size(quantity) if inst.size_rules else quantity
            if qty == 0.0 or (inst.size_rules and inst.too_small(qty, ref_price, reduce_only)):
                note += f"; {v.name}: below lot/min size/min notional"
                continue
            reason = (self._reason(sc, len(listing), rank) if exclude
                      else reasons[rank]) + note
            if v.health != UP:
                reason += f"; {v.name} is {v.health}: no venue that is up could take it"
            return candidates, self._timer() - start, ((v, qty, reason),)
        return None

    def _reason(self, score: float, n_listing: int, rank: int) -> str:
        if n_listing == 1:
            return "only venue listing the symbol"
        if self.policy == "cheapest":
            return f"lowest taker fee ({score:g} bps) of {n_listing} venues"
        if self.policy == "preference":
            return ("first preferred venue" if rank == 0 and score == 0
                    else f"fallback: preference rank {int(score) + 1} of {n_listing}")
        return f"lowest estimated cost ({score:g} bps: fee + slippage + funding)"

    def _split(
        self, symbol: str, quantity: float, ref_price: float, reduce_only: bool,
        pool: list[tuple[float, int, SimVenue]],
    ) -> list[tuple[float, SimVenue, float]]:
        left = abs(quantity)
        sign = 1.0 if quantity > 0 else -1.0
        legs: list[tuple[float, SimVenue, float]] = []
        for sc, _, v in pool:
            if left <= 0.0:
                break
            cap = left if v.max_order_notional is None else min(
                left, v.max_order_notional / ref_price)
            inst = v.instruments.get(symbol) or v.instrument(symbol, ref_price)
            qty = abs(inst.round_size(cap))
            if qty <= 0.0 or inst.too_small(qty, ref_price, reduce_only):
                continue
            legs.append((sc, v, sign * qty))
            left -= qty
        return legs


# The name the engine and the older tests use.
CheapestVenueRouter = VenueRouter
