"""The engine: one single-threaded loop that both backtest and live mode drive.

Order of work for a bar of symbol s at time t (the bar's open time):

1. Queued events due before t run first, in (timestamp, priority, sequence) order.
2. Open: a decision left pending by s's previous bar is released at this bar's open
   price: the policy sizes it, risk checks it, the router picks a venue, the venue
   fills it. (With ``FillTiming.CLOSE`` this happens in step 4 instead.)
3. Close: s is marked to its close and every agent trading s sees the bar, in the stable
   order the scenario lists them. Changed signals are recorded.
4. If any signal changed, consensus votes; a changed decision is recorded and becomes
   pending (or is released at the close under ``FillTiming.CLOSE``).
5. When the clock moves past t, equity at t is recorded.

A decision can therefore never fill on the bar that caused it unless asked to, and an agent
only ever sees bars up to the current one (see ``MarketView``).
"""

from __future__ import annotations

import gc
import heapq
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from sim.clock import SimClock
from sim.consensus import Consensus, expire
from sim.data import BarFeed
from sim.matching import Account, Matcher, Proposal
from sim.messages import (
    Decision,
    FillTiming,
    FundingPaid,
    OrderDenied,
    OrderFilled,
    OrderRouted,
    PositionLiquidated,
    ScenarioEvent,
    Side,
    Signal,
    SubmitOrder,
)
from sim.orders import (
    BRACKET_ROLES,
    CANCELLED,
    DENIED,
    ENTRY,
    EXPIRED,
    FILLED,
    FLATTEN,
    LIMIT,
    LIQUIDATION,
    MARKET,
    REJECTED,
    STOP,
    STOP_LOSS,
    TAKE_PROFIT,
    TERMINAL,
    WORKING,
    ExecutionSettings,
    Leg,
    Order,
    final_status,
)
from sim.performance import AgentPerformance
from sim.policy import TargetExposurePolicy
from sim.portfolio import Portfolio
from sim.recorder import Recorder
from sim.risk import RiskEngine, attributed_agents
from sim.router import VenueRouter
from sim.venue import DEGRADED, DOWN, UP, SimVenue
from sim.view import MarketView

# Priorities order events that share a timestamp (lower runs first): a scenario event
# (kill switch, venue health) comes before the bar's open, which comes before anything
# delivered to a venue at that time.
PRIORITY_EVENT = -1
PRIORITY_OPEN = 0
PRIORITY_VENUE = 10
# An order reaching a venue at a time (latency): after that time's scenario events, before
# its bars' opens, so it meets the first open at or after its arrival.
PRIORITY_ARRIVAL = -0.5
# A standing signal going stale (consensus.max_signal_age): before the open at that time.
# It only marks the symbol; the re-vote happens at the close of the symbol's next bar.
PRIORITY_EXPIRY = -1

_SIDES = frozenset(Side)


class AgentOutputError(ValueError):
    """An agent returned something that is not a valid signal."""


@dataclass(frozen=True, slots=True)
class AgentSlot:
    """One agent instance trading one symbol; ``index`` is its column in the votes."""

    index: int
    name: str
    agent: Any


@dataclass(slots=True)
class _Revote:
    """In ``Engine._pending``: vote at this bar's close; ``held`` is the decision it
    displaced, still released at the open."""

    held: tuple[Decision, float] | None


@dataclass(order=True, slots=True)
class _Queued:
    ts: int
    priority: int
    seq: int
    handler: Callable[[Any], None] = field(compare=False)
    message: Any = field(compare=False)


class EventQueue:
    """Min-heap keyed by (timestamp, priority, sequence): a total, reproducible order."""

    __slots__ = ("_seq", "heap")

    def __init__(self) -> None:
        self.heap: list[_Queued] = []
        self._seq = 0

    def __len__(self) -> int:
        return len(self.heap)

    def push(self, ts: int, priority: int, handler: Callable[[Any], None], message: Any) -> None:
        self._seq += 1
        heapq.heappush(self.heap, _Queued(ts, priority, self._seq, handler, message))

    def next_key(self) -> tuple[int, int] | None:
        return (self.heap[0].ts, self.heap[0].priority) if self.heap else None

    def pop(self) -> _Queued:
        return heapq.heappop(self.heap)


class Engine:
    def __init__(
        self,
        symbols: Sequence[str],
        views: Sequence[MarketView],
        agents: Sequence[Sequence[AgentSlot]],
        consensus: Consensus,
        policy: TargetExposurePolicy,
        risk: RiskEngine,
        router: VenueRouter,
        portfolio: Portfolio,
        recorder: Recorder,
        *,
        fill_timing: FillTiming = FillTiming.NEXT_OPEN,
        clock: SimClock | None = None,
        performance: AgentPerformance | None = None,
        max_signal_age: int | None = None,
        execution: ExecutionSettings | None = None,
    ) -> None:
        self.symbols = tuple(symbols)
        self.views = list(views)
        self.agents = [tuple(slots) for slots in agents]
        self.consensus = consensus
        self.policy = policy
        self.risk = risk
        self.router = router
        self.portfolio = portfolio
        self.recorder = recorder
        self.fill_timing = fill_timing
        self.clock = clock or SimClock()
        self.queue = EventQueue()
        n = len(self.symbols)
        # Standing signals per symbol, in the order the agents trading it are listed.
        self._standing: list[list[Signal | None]] = [[None] * len(a) for a in self.agents]
        self._last_decision: list[tuple[Side, float, float | None] | None] = [None] * n
        # A decision waiting for the next bar's open, with the target exposure it asks for.
        self._pending: list[tuple[Decision, float] | None] = [None] * n
        self._acted_target: list[float | None] = [0.0] * n
        self._last_ts: int | None = None
        self._decision_id = 0
        self._order_id = 0
        self._fill_id = 0
        self._symbol_index = {sym: i for i, sym in enumerate(self.symbols)}
        self._book_ts = recorder.equity_ts.append
        self._book_cash = recorder.equity_cash.append
        self._book_equity = recorder.equity_value.append
        self._book_realized = recorder.equity_realized.append
        self._book_unrealized = recorder.equity_unrealized.append
        self._queued = self.queue.heap  # the heap list itself: truthiness costs no call
        self._agent_calls = [
            tuple(enumerate(a.agent.on_bar for a in slots)) for slots in self.agents
        ]
        self._agent_names = [tuple(a.name for a in slots) for slots in agents]
        self._agent_indexes = [tuple(a.index for a in slots) for slots in agents]
        # Per agent per symbol performance (sim.performance): updated on changes only.
        self.performance = performance or AgentPerformance(
            [len(a) for a in self.agents], online=False)
        # Signals older than this do not vote (None: they stand until replaced). When each
        # standing signal was given, parallel to _standing and set only when it changes.
        self.max_signal_age = max_signal_age
        self._signal_ts: list[list[int]] = [[0] * len(a) for a in self.agents]
        self._performance_recorded = False
        # Risk state the engine feeds only when an order is checked (never per bar).
        self._eq_seen = 0  # equity rows already shown to the risk engine
        self._track_equity = risk.limits.needs_equity_history
        if self._track_equity:
            recorder.before_flush.append(self._observe_booked_equity)
        self._flattening = False
        self._attribute = bool(risk.limits.agents)  # attribution only feeds permissions
        # Execution (sim.orders, sim.matching): working orders live in their venue's book;
        # ``_watch[s]`` is set while symbol s needs the venue on every bar (working legs, or
        # a perpetual position to watch for liquidation), so the default path pays one
        # list lookup per bar for all of it.
        self.execution = execution or ExecutionSettings()
        self._live: dict[int, Order] = {}  # orders not yet terminal
        self._watch = [False] * n
        self._n_working = [0] * n
        self._leg_seq = 0
        self._obs_ts = [-1] * n  # time of the price the engine last showed symbol s's orders
        self._budget: list[tuple[int, dict[str, float]]] = [(-1, {})] * n
        venues = getattr(router, "venues", ())
        self._venues_of: list[tuple[SimVenue, ...]] = [
            tuple(v for v in venues if sym in v.symbols) for sym in self.symbols]
        self._perp: list[SimVenue | None] = [
            next((v for v in vs if v.kind == "perp"), None) for vs in self._venues_of]
        self._any_perp = any(p is not None for p in self._perp)
        self._vol_slippage = any(v.volatility_slippage for v in venues)
        self._tick_volume = [0.0] * n
        self._ending = False
        # The immediate market fill needs no matcher while no venue prices volume or
        # volatility or keeps margin (SimVenue.execute: the same price and cash rules).
        self._fast = not any(v.max_participation is not None or v.kind == "perp"
                             or v.impact_bps or v.volatility_slippage for v in venues)
    # -- the per-bar path ------------------------------------------------------------
    def on_bar(
        self, s: int, n: int, ts: int, o: float, h: float, lo: float, c: float, v: float
    ) -> None:
        """Process bar number ``n`` (1-based) of symbol ``s``. The only way bars enter."""
        last_ts = self._last_ts
        if ts != last_ts:  # time moves: book the previous time's equity, run due events
            if last_ts is not None:
                if ts < last_ts:
                    raise ValueError(f"bar at {ts} arrived after {last_ts}: feed out of order")
                portfolio = self.portfolio  # _snapshot, inlined: this runs on every bar
                equity = portfolio.equity()
                self._book_ts(last_ts)
                self._book_cash(portfolio.cash)
                self._book_equity(equity)
                self._book_realized(portfolio.realized_total)
                self._book_unrealized(portfolio.unrealized(equity))
            if self._queued:
                self._drain_before(ts, PRIORITY_OPEN)
            self.clock.now = ts
            self._last_ts = ts
        view = self.views[s]
        view.n = n
        view.ts = ts
        view.open = o
        view.high = h
        view.low = lo
        view.close = c
        view.volume = v
        pending = self._pending[s]
        changed = False
        if self._watch[s] and not self.execution.ticks:  # working orders meet the open
            self._venue_open(s, ts, o, v)
        if pending is not None:
            self._pending[s] = None
            if pending.__class__ is _Revote:  # a standing signal went stale
                changed = True
                pending = pending.held
            if pending is not None:
                self._release(s, ts, o, *pending)
        if self._watch[s] and not self.execution.ticks:  # ... and the bar's path
            self._venue_path(s, ts, o, h, lo, c, v)
        self.portfolio.price[s] = c
        standing = self._standing[s]
        for pos, on_bar in self._agent_calls[s]:
            signal = on_bar(view)
            if signal is not None:
                prev = standing[pos]
                if signal is not prev and signal != prev:
                    self._accept_signal(s, pos, signal, ts)
                    standing[pos] = signal
                    changed = True
        if changed:
            self._vote(s, ts, c)

    @property
    def bars_seen(self) -> int:
        """Bars that entered the pipeline (exact even after an interruption)."""
        return sum(view.n for view in self.views)

    def finish(self) -> None:
        """Cancel the orders still working (the run ended), run what is still queued and
        record the last equity row."""
        self._ending = True  # no new brackets for orders that end now
        for life in list(self._live.values()):
            if life.status not in TERMINAL and life.closing is None:
                self._stop_order(life, self.clock.now, CANCELLED, "run ended")
        if self.queue:
            self._drain_before(None, 0)
        if self._last_ts is not None:
            self._snapshot(self._last_ts)
            self._last_ts = None
        if not self._performance_recorded:
            self._performance_recorded = True
            self._record_performance()
        self.recorder.flush()

    def _record_performance(self) -> None:
        """One agent_performance row per agent per symbol, from the bars seen."""
        for s, view in enumerate(self.views):
            if not self.agents[s]:
                continue
            opens, closes = view.history("open"), view.history("close")
            for row in self.performance.rows(s, opens, closes):
                self.recorder.agent_performance(self._agent_indexes[s][row[1]], row)

    def run(
        self, feed: BarFeed, chunk: int = 65_536,
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        """Replay a feed's bars (recorded or generated) through ``on_bar``, in its order."""
        on_bar = self.on_bar
        with fewer_gc_passes():
            for rows in feed.batches(chunk):
                for row in zip(*rows, strict=True):
                    on_bar(*row)
                self.recorder.maybe_flush()
                if on_progress is not None:
                    on_progress(len(rows[0]))
            self.finish()

    def run_ticks(
        self, s: int, ts: Sequence[int], price: Sequence[float], amount: Sequence[float],
        interval_ns: int, on_progress: Callable[[int], None] | None = None,
    ) -> None:
        """Tick replay of one symbol: every trade is a market event for working orders,
        and bars of ``interval_ns`` (labelled by open time, as ``sim.loaders`` builds them)
        are built on the fly and handed to ``on_bar`` when they complete, so agents see
        exactly the bars of bar replay. A decision is released at the first trade after
        the bar that caused it (that bar's successor's open, at the trade's own time)."""
        if not self.execution.ticks:
            raise ValueError("run_ticks needs ExecutionSettings(ticks=True)")
        with fewer_gc_passes():
            label = -1
            n = 0
            o = h = lo = c = v = 0.0
            on_tick = self._on_tick
            for i, (t, p, a) in enumerate(zip(ts, price, amount, strict=True)):
                start = t - t % interval_ns
                if start != label:
                    if n:
                        self._bar_done(s, n, label, o, h, lo, c, v)
                    n += 1
                    label = start
                    o = h = lo = c = p
                    v = 0.0
                    on_tick(s, t, p, a, True)
                else:
                    on_tick(s, t, p, a, False)
                if p > h:
                    h = p
                if p < lo:
                    lo = p
                c = p
                v += a
                if on_progress is not None and i % 65_536 == 65_535:
                    on_progress(65_536)
            if n:
                self._bar_done(s, n, label, o, h, lo, c, v)
            self.finish()

    def _bar_done(self, s: int, n: int, label: int, o: float, h: float, lo: float, c: float,
                  v: float) -> None:
        """A tick-built bar completed: agents see it through ``on_bar``; its equity row is
        booked now (after its last trade), as bar replay books it before the next bar."""
        self.on_bar(s, n, label, o, h, lo, c, v)
        self._snapshot(label)
        self._last_ts = None
        self.recorder.maybe_flush()

    def _on_tick(self, s: int, ts: int, price: float, amount: float, opens: bool) -> None:
        if self._queued:
            self._drain_before(ts, PRIORITY_OPEN)
        self.clock.advance_to(ts)
        portfolio = self.portfolio
        self._tick_volume[s] = amount
        if opens:  # the first trade of a bar: a pending decision meets it
            pending = self._pending[s]
            if pending is not None:
                if pending.__class__ is _Revote:
                    held = pending.held
                    self._pending[s] = _Revote(None)
                    pending = held
                else:
                    self._pending[s] = None
                if pending is not None:
                    self._release(s, ts, price, *pending)
        if self._watch[s]:
            portfolio.price[s] = price
            self._obs_ts[s] = ts
            self._match(s, ts, price, None, amount)
        portfolio.price[s] = price

    # -- steps -----------------------------------------------------------------------
    def _accept_signal(self, s: int, pos: int, signal: Signal, ts: int) -> None:
        if (
            type(signal) is not Signal
            or signal.side not in _SIDES
            or not 0.0 <= signal.confidence <= 1.0
            or (signal.target is not None and not 0.0 <= signal.target <= 1.0)
        ):
            raise AgentOutputError(
                f"agent {self._agent_names[s][pos]!r} on {self.symbols[s]} returned "
                f"{signal!r}: expected Signal(side, confidence in [0, 1], target in [0, 1] "
                "or None) or None"
            )
        self.recorder.signal(ts, s, self._agent_indexes[s][pos], signal)
        view = self.views[s]
        self.performance.on_signal(s, pos, signal.side, view.n, view.close)
        if self.max_signal_age is not None:
            self._signal_ts[s][pos] = ts
            # Votes happen on signal changes; this event makes one happen when the signal
            # goes stale, so a decision never rests on an expired vote.
            self.queue.push(ts + self.max_signal_age, PRIORITY_EXPIRY, self._expire,
                            (s, pos, ts))

    def _expire(self, item: tuple[int, int, int]) -> None:
        """A standing signal reached ``max_signal_age``: have consensus vote again at the
        close of the symbol's next bar (at or after this time), as if a signal changed.
        The mark rides in ``_pending``, which ``on_bar`` checks anyway: no per-bar cost."""
        s, pos, given = item
        if self._signal_ts[s][pos] != given:
            return  # replaced since: the vote on the replacement saw it
        pending = self._pending[s]
        if pending.__class__ is not _Revote:
            self._pending[s] = _Revote(pending)  # type: ignore[call-overload]

    def _vote(self, s: int, ts: int, close: float) -> None:
        """Consensus on symbol ``s`` at bar ``ts``'s close. Stale signals are dropped here,
        when a vote happens (a signal changed or one went stale), never per bar."""
        signals = tuple(self._standing[s])
        if self.max_signal_age is not None:
            signals = expire(signals, self._signal_ts[s], ts, self.max_signal_age)
        side, confidence, target, weights, rule, agreement = self.consensus.resolve(
            signals, s)
        key = (side, confidence, target)
        if key == self._last_decision[s]:
            return
        self._last_decision[s] = key
        self._decision_id += 1
        decision_id = self._decision_id
        self.recorder.decision(decision_id, ts, s, side, confidence, target,
                               self._agent_indexes[s], signals, weights, rule, agreement)
        exposure = self.policy.target_exposure(side, confidence, target, s)
        if exposure is None or exposure == self._acted_target[s]:
            return  # HOLD, or what is held already: no order to make
        # Only decisions that will become orders are built as messages (most never do).
        decision = Decision(decision_id, ts, self.symbols[s], side, confidence, target,
                            self._agent_names[s], signals, weights)
        if self.fill_timing is FillTiming.CLOSE:
            self._release(s, ts, close, decision, exposure)
        else:
            self._pending[s] = (decision, exposure)

    def _release(
        self, s: int, ts: int, price: float, decision: Decision, target: float
    ) -> None:
        """Turn a decision into an order at ``price``: size, risk-check, route, execute.
        Orders still working from earlier decisions on the symbol are cancelled first
        (cancel/replace): the new order is sized from the position actually held."""
        self._acted_target[s] = target
        portfolio = self.portfolio
        last_close = portfolio.price[s]  # the previous mark: the price band's reference
        portfolio.price[s] = price
        replaced = self._cancel_working(s, ts, "replaced by a newer decision's order",
                                        entries_only=True) if self._n_working[s] else 0
        position = portfolio.qty[s]
        equity = portfolio.equity()
        qty = self.policy.order_quantity(target, position, equity, price)
        if qty == 0.0:
            return
        self._order_id += 1
        execution = self.execution
        if execution.order_type == MARKET:
            order = SubmitOrder(self._order_id, decision.decision_id, ts, self.symbols[s],
                                qty, price, tif=execution.tif)
        else:
            limit, stop = execution.entry_prices(qty > 0, price)
            order = SubmitOrder(self._order_id, decision.decision_id, ts, self.symbols[s],
                                qty, price, execution.order_type, limit, stop, execution.tif,
                                execution.post_only)
        agents = attributed_agents(decision) if self._attribute else ()
        self._obs_ts[s] = ts
        self._submit(s, order, position, equity, last_close, agents, decision.ts,
                     replaces=replaced)

    def _submit(
        self, s: int, order: SubmitOrder, position: float, equity: float,
        last_close: float, agents: tuple[str, ...], decision_ts: int | None = None,
        role: str = ENTRY, parent_id: int = 0, replaces: int = 0,
    ) -> None:
        """Risk-check, route and send one order (decision-, risk- or bracket-made)."""
        risk = self.risk
        ts = order.ts
        if self._track_equity:
            self._observe_booked_equity(ts)
        gross = self._gross_exposure() if risk.needs_account else 0.0
        denial = risk.check(order, position, equity=equity, gross_exposure=gross,
                            last_close=last_close, agents=agents)
        tripped = risk.tripped_now
        life = Order(order.order_id, order.decision_id, ts,
                     ts if decision_ts is None else decision_ts, order.symbol, s,
                     order.quantity, order.ref_price, order.kind, order.limit_price,
                     order.stop_price, order.tif, order.post_only, order.reduce_only, role,
                     parent_id, replaces)
        ttl = self.execution.ttl_ns
        if ttl is not None and role not in BRACKET_ROLES:
            life.expires_at = ts + ttl
        self.recorder.order_event(life.order_id, ts, s, "submitted", None, order.quantity,
                                  order.ref_price, role)
        if denial is None:
            legs = self.router.route_legs(order)
            if legs:
                risk.on_order_sent(order, agents)
                for leg in legs:
                    self.recorder.routing(leg, s)
                self._live[life.order_id] = life
                if life.expires_at is not None:
                    self.queue.push(life.expires_at, PRIORITY_ARRIVAL, self._expire_order, life)
                self._send(life, legs, ts)
            else:
                denial = OrderDenied(order.order_id, ts, order.symbol, "route",
                                     self.router.why_not(order.symbol))
        if denial is not None:
            life.status = DENIED
            life.reason = denial.reason
            self.recorder.order(life)
            self.recorder.order_event(life.order_id, ts, s, DENIED, None, order.quantity,
                                      None, denial.reason)
            self.recorder.denial(denial, s)
        if tripped and risk.limits.flatten_on_trip:
            self._flatten(ts)

    # -- the order's way to the venue ------------------------------------------------
    def _send(self, life: Order, legs: Sequence[OrderRouted], now: int) -> None:
        """Send routed legs: each reaches its venue after the processing and network
        latency (zero unless ``execution.latency``), or times out on the way."""
        latency = self.execution.latency
        immediate = False
        for routed in legs:
            venue = self.router.venue(routed.venue)
            life.in_flight += 1
            if not latency:
                immediate = True
                self.queue.push(now, PRIORITY_VENUE, self._arrive, (life, routed, venue))
                continue
            delay = self.execution.processing_ns + venue.network_latency_ns()
            timeout = venue.timeout_ms
            if timeout is not None and delay > timeout * 1_000_000:
                self.queue.push(now + round(timeout * 1_000_000), PRIORITY_ARRIVAL,
                                self._timed_out, (life, routed, venue))
                continue
            arrival = now + delay
            if arrival == now:
                immediate = True
            self.queue.push(arrival, PRIORITY_VENUE if arrival == now else PRIORITY_ARRIVAL,
                            self._arrive, (life, routed, venue))
        if immediate:
            self._drain_before(now, PRIORITY_VENUE + 1)

    def _arrive(self, message: tuple[Order, OrderRouted, SimVenue]) -> None:
        """A leg reaches its venue: refused (down, random reject: the router falls back),
        dropped (its order was cancelled meanwhile) or accepted into the book. Arriving
        at the moment the engine shows the symbol's price, it meets that price at once;
        otherwise it waits for the first price observed after it (the next open)."""
        life, routed, venue = message
        life.in_flight -= 1
        now = self.clock.now
        s = life.s
        rec = self.recorder
        if life.closing is not None:
            code, reason = life.closing
            life.outcomes.append(code)
            life.reason = reason
            self._maybe_final(life, now)
            return
        if venue.health == DOWN:
            self._refused(life, routed, venue, "venue down at arrival", REJECTED)
            return
        if venue.rejects():
            self._refused(life, routed, venue, "rejected by the venue (reject rate)", REJECTED)
            return
        if life.arrival_ts is None:
            life.arrival_ts = now
        life.venue = venue.name
        qty = routed.order.quantity
        rec.order_event(life.order_id, now, s, "arrived", venue.name, qty, None, "")
        portfolio = self.portfolio
        if (self._fast and life.kind == MARKET and not life.reduce_only
                and now == self._obs_ts[s]):
            # The immediate case of matching: a market order meeting the price now.
            fill = venue.execute(routed.order, self._fill_id + 1, now, portfolio.price[s],
                                 portfolio.cash)
            if fill is None:
                life.outcomes.append(REJECTED)
                life.reason = "insufficient cash"
            else:
                self._book_fill(life, s, fill)
                life.outcomes.append(FILLED)
            self._maybe_final(life, now)
            return
        self._leg_seq += 1
        leg = Leg(life, venue, qty, qty, now, self._leg_seq)
        life.legs.append(leg)
        venue.book.setdefault(s, []).append(leg)
        self._n_working[s] += 1
        self._watch[s] = True
        if now == self._obs_ts[s]:
            self._match(s, now, portfolio.price[s], [leg], self._bar_volume(s, now))

    def _refused(self, life: Order, routed: OrderRouted, venue: SimVenue, reason: str,
                 code: str) -> None:
        """A venue refused a leg or it timed out: the router tries the venues not tried
        yet; with none left the leg ends ``code``. Nothing is sent twice."""
        now = self.clock.now
        s = life.s
        life.tried.add(venue.name)
        self.recorder.order_event(life.order_id, now, s, "venue_" + code, venue.name,
                                  routed.order.quantity, None, reason)
        retry = replace(routed.order, ts=now)
        legs = self.router.route_legs(retry, exclude=frozenset(life.tried))
        if legs:
            legs = tuple(replace(leg, reason=f"fallback: {venue.name} {reason}; {leg.reason}")
                         for leg in legs)
            for leg in legs:
                self.recorder.routing(leg, s)
            self._send(life, legs, now)
            return
        life.outcomes.append(code)
        life.reason = f"{reason}; no other venue could take it"
        self._maybe_final(life, now)

    def _timed_out(self, message: tuple[Order, OrderRouted, SimVenue]) -> None:
        life, routed, venue = message
        life.in_flight -= 1
        if life.closing is not None:
            life.outcomes.append(life.closing[0])
            self._maybe_final(life, self.clock.now)
            return
        self._refused(life, routed, venue,
                      f"timed out after {venue.timeout_ms:g} ms in flight", EXPIRED)

    # -- matching --------------------------------------------------------------------
    def _bar_volume(self, s: int, now: int) -> float:
        """Volume of the market event at ``now``: the bar's, or the trade's in tick replay
        (participation and impact are measured against it)."""
        if self.execution.ticks:
            return self._tick_volume[s] if self._obs_ts[s] == now else 0.0
        view = self.views[s]
        return view.volume if view.ts == now else 0.0

    def _legs(self, s: int) -> list[Leg]:
        """Working legs of symbol s on venues that are not down, oldest first."""
        legs = [leg for v in self._venues_of[s] if v.health != DOWN
                for leg in v.book.get(s, ())]
        if len(legs) > 1:
            legs.sort(key=lambda leg: leg.seq)
        return legs

    def _account(self, s: int) -> Account:
        portfolio = self.portfolio
        qty, price = portfolio.qty, portfolio.price
        other = other_im = other_mm = 0.0
        for j in portfolio._held:
            if j == s:
                continue
            value = qty[j] * price[j]
            other += value
            perp = self._perp[j]
            if perp is not None:
                other_im += abs(value) / perp.max_leverage
                other_mm += abs(value) * perp.maintenance_margin
        return Account(qty[s], portfolio.cash, other, other_im, other_mm, self._perp[s])

    def _bar_range(self, s: int) -> float:
        """The previous completed bar's (high - low) / close: volatility-scaled slippage
        uses only what is known before the fill."""
        if not self._vol_slippage:
            return 0.0
        view = self.views[s]
        i = view.n - (1 if self.execution.ticks else 2)
        if i < 0:
            return 0.0
        high, low, close = (view._bars.column(c)[i] for c in ("high", "low", "close"))
        return float((high - low) / close)

    def _matcher(self, s: int, now: int, legs: list[Leg], volume: float) -> Matcher:
        budget_ts, budget = self._budget[s]
        return Matcher(legs, self._account(s), volume, self._bar_range(s),
                       self.execution.limit_touch, budget if budget_ts == now else None)

    def _match(self, s: int, now: int, price: float, subset: list[Leg] | None,
               volume: float) -> None:
        """One observation of ``price`` for symbol s's legs (``subset``: only those)."""
        legs = self._legs(s)
        matcher = self._matcher(s, now, legs, volume)
        matcher.observe(legs if subset is None else subset, price)
        self._commit(s, now, matcher)

    def _venue_open(self, s: int, ts: int, o: float, v: float) -> None:
        """Working orders meet a bar's open (the first price observed at or after their
        arrival; a resting order the open gapped through)."""
        portfolio = self.portfolio
        previous = portfolio.price[s]
        portfolio.price[s] = o
        self._obs_ts[s] = ts
        self._match(s, ts, o, None, v)
        portfolio.price[s] = previous  # the release's price band still sees the last close

    def _venue_path(self, s: int, ts: int, o: float, h: float, lo: float, c: float,
                    v: float) -> None:
        """Working orders along the bar's path after the open, by the intrabar convention;
        ``worst_case`` tries both orders of the extremes and keeps the one that leaves the
        account worth less at the close (a tie: open-high-low-close)."""
        legs = self._legs(s)
        if not legs and self._perp[s] is None:
            return
        up = (o, h, lo, c)
        down = (o, lo, h, c)
        convention = self.execution.intrabar
        if convention == "worst_case":
            first = self._matcher(s, ts, legs, v)
            first.path(legs, up)
            second = self._matcher(s, ts, legs, v)
            second.path(legs, down)
            chosen = second if second.value(c) < first.value(c) else first
        else:
            chosen = self._matcher(s, ts, legs, v)
            chosen.path(legs, up if convention == "ohlc" else down)
        self._obs_ts[s] = -1  # orders made now (brackets) wait for the next observation
        self._commit(s, ts, chosen)

    def _commit(self, s: int, now: int, matcher: Matcher) -> None:
        """Book what a matcher decided: fills into the one ledger, leg states, closures."""
        finished: list[Order] = []
        for proposal in matcher.fills:
            if proposal.leg is None:
                self._liquidate(s, now, proposal)
                continue
            leg = proposal.leg
            life = leg.order
            leg.remaining = matcher.remaining[id(leg)]
            self._book_fill(life, s, OrderFilled(
                self._fill_id + 1, life.order_id, now, life.symbol, proposal.venue.name,
                proposal.quantity, proposal.price, proposal.fee, life.ref_price,
                proposal.liquidity))
        for leg in matcher._others.values():
            key = id(leg)
            leg.rested = leg.rested or key in matcher.rested
            leg.triggered = leg.triggered or key in matcher.triggered
            if key in matcher.remaining:
                leg.remaining = matcher.remaining[key]
        for leg, code, reason in matcher.closed.values():
            self._close_leg(leg, code, reason)
            finished.append(leg.order)
        self._budget[s] = (now, matcher.budget)
        for life in finished:
            self._maybe_final(life, now)
        self._rewatch(s)

    def _book_fill(self, life: Order, s: int, fill: OrderFilled) -> None:
        self._fill_id += 1
        portfolio = self.portfolio
        portfolio.apply(s, fill)
        life.filled += fill.quantity
        life.filled_notional += abs(fill.quantity) * fill.price
        life.fees += fill.fee
        life.fill_ts = fill.ts
        self.recorder.fill(fill, s, portfolio.cash, portfolio.qty[s], portfolio.realized[s])

    def _close_leg(self, leg: Leg, code: str, reason: str) -> None:
        if leg.status != WORKING:
            return
        leg.status = code
        book = leg.venue.book[leg.order.s]
        book.remove(leg)
        self._n_working[leg.order.s] -= 1
        life = leg.order
        life.outcomes.append(code)
        if reason:
            life.reason = reason

    def _maybe_final(self, life: Order, now: int) -> None:
        """Record the order's one terminal state once nothing of it is left anywhere."""
        if life.status in TERMINAL or life.in_flight or any(
                leg.status == WORKING for leg in life.legs):
            return
        life.status = final_status(life)
        self._live.pop(life.order_id, None)
        rec = self.recorder
        rec.order(life)
        rec.order_event(life.order_id, now, life.s, life.status, life.venue, life.filled,
                        life.avg_fill_price, life.reason)
        if (life.filled and life.role not in BRACKET_ROLES and self.execution.brackets
                and not self._ending):
            self._attach_brackets(life, now)
        elif self.portfolio.qty[life.s] == 0.0 and self._n_working[life.s]:
            self._cancel_working(life.s, now, "position closed", reduce_only=True)

    def _rewatch(self, s: int) -> None:
        self._watch[s] = bool(self._n_working[s]) or (
            self._perp[s] is not None and self.portfolio.qty[s] != 0.0)

    # -- cancels, expiry, brackets ---------------------------------------------------
    def _cancel_working(self, s: int, now: int, reason: str, *, entries_only: bool = False,
                        reduce_only: bool = False, code: str = CANCELLED) -> int:
        """Cancel symbol s's live orders (``entries_only``: not brackets; ``reduce_only``:
        only reduce-only ones). Returns the id of the last one cancelled (0: none)."""
        last = 0
        for life in list(self._live.values()):
            if life.s != s or life.status in TERMINAL or life.closing is not None:
                continue
            if entries_only and life.role in BRACKET_ROLES:
                continue
            if reduce_only and not life.reduce_only:
                continue
            self._stop_order(life, now, code, reason)
            last = life.order_id
        return last

    def _stop_order(self, life: Order, now: int, code: str, reason: str) -> None:
        if life.in_flight:
            life.closing = (code, reason)  # legs still on their way drop on arrival
        for leg in list(life.legs):
            self._close_leg(leg, code, reason)
        self._maybe_final(life, now)
        self._rewatch(life.s)

    def _expire_order(self, life: Order) -> None:
        if life.status not in TERMINAL and life.closing is None:
            self._stop_order(life, self.clock.now, EXPIRED, "time in force ran out (order_ttl)")

    def _attach_brackets(self, entry: Order, now: int) -> None:
        """Take-profit (limit) and stop-loss (stop) orders, reduce-only and one-cancels-
        the-other, for the whole position at its average price; the previous brackets of
        the symbol are cancelled first."""
        s = entry.s
        self._cancel_working(s, now, "brackets replaced", reduce_only=True)
        portfolio = self.portfolio
        position = portfolio.qty[s]
        if position == 0.0:
            return
        execution = self.execution
        avg = portfolio.avg_price[s]
        long = position > 0
        legs: list[tuple[str, str, float]] = []
        if execution.take_profit is not None:
            tp = avg * (1.0 + execution.take_profit if long else 1.0 - execution.take_profit)
            legs.append((TAKE_PROFIT, LIMIT, tp))
        if execution.stop_loss is not None:
            sl = avg * (1.0 - execution.stop_loss if long else 1.0 + execution.stop_loss)
            legs.append((STOP_LOSS, STOP, sl))
        for role, kind, level in legs:
            if portfolio.qty[s] != position:
                break  # the first bracket filled at once: the second has nothing to guard
            self._order_id += 1
            order = SubmitOrder(
                self._order_id, entry.decision_id, now, entry.symbol, -position, level, kind,
                level if kind == LIMIT else None, level if kind == STOP else None,
                reduce_only=True)
            self._submit(s, order, position, portfolio.equity(), portfolio.price[s], (),
                         entry.decision_ts, role, entry.order_id)

    # -- perpetuals --------------------------------------------------------------------
    def _liquidate(self, s: int, now: int, proposal: Proposal) -> None:
        venue = proposal.venue
        position = self.portfolio.qty[s]
        self._order_id += 1
        life = Order(self._order_id, 0, now, now, self.symbols[s], s, proposal.quantity,
                     proposal.liquidation_price or proposal.price, role=LIQUIDATION,
                     reduce_only=True)
        life.venue = venue.name
        life.arrival_ts = now
        self.recorder.order_event(life.order_id, now, s, "submitted", venue.name,
                                  life.quantity, life.ref_price, LIQUIDATION)
        self._book_fill(life, s, OrderFilled(
            self._fill_id + 1, life.order_id, now, life.symbol, venue.name,
            proposal.quantity, proposal.price, proposal.fee, life.ref_price, "liquidation"))
        life.outcomes.append(FILLED)
        self._maybe_final(life, now)
        self.recorder.liquidation(PositionLiquidated(
            now, life.symbol, venue.name, life.order_id, position,
            proposal.liquidation_price or proposal.price, proposal.price,
            venue.maintenance_margin), s)

    def schedule_funding(self, s: int, times: Sequence[int], rates: Sequence[float]) -> None:
        """Funding of symbol s at ``times`` (each before that time's bars)."""
        for ts, rate in zip(times, rates, strict=True):
            self.queue.push(int(ts), PRIORITY_EVENT, self._fund, (s, float(rate)))

    def _fund(self, item: tuple[int, float]) -> None:
        """Longs pay shorts ``rate`` x position x mark (the last price seen)."""
        s, rate = item
        self.router.observe_funding(self.symbols[s], rate)  # known from now on
        portfolio = self.portfolio
        position = portfolio.qty[s]
        if position == 0.0:
            return
        mark = portfolio.price[s]
        payment = -rate * position * mark
        portfolio.fund(payment)
        self.recorder.funding(FundingPaid(self.clock.now, self.symbols[s], position, mark,
                                          rate, payment), s)

    # -- risk state and scenario events ----------------------------------------------
    def _observe_booked_equity(self, now: int | None = None) -> None:
        """Show the risk engine the equity rows booked since it last looked (before an
        order is checked, and before the recorder flushes them away)."""
        rec = self.recorder
        values = rec.equity_value
        if len(values) < self._eq_seen:
            self._eq_seen = 0
        if now is None:  # called before a flush: the buffers are about to be emptied
            if self._eq_seen < len(values):
                self.risk.observe_equity(rec.equity_ts, values, self._eq_seen,
                                         rec.equity_ts[-1])
            self._eq_seen = 0
            return
        self.risk.observe_equity(rec.equity_ts, values, self._eq_seen, now)
        self._eq_seen = len(values)

    def _gross_exposure(self) -> float:
        portfolio = self.portfolio
        qty, price = portfolio.qty, portfolio.price
        return sum(abs(qty[i] * price[i]) for i in range(len(qty)) if qty[i] != 0.0)

    def _flatten(self, ts: int) -> None:
        """Close every open position at its latest mark (risk-made orders, decision 0)."""
        if self._flattening:
            return
        self._flattening = True
        try:
            portfolio = self.portfolio
            for i, sym in enumerate(self.symbols):
                position = portfolio.qty[i]
                if position == 0.0:
                    continue
                self._acted_target[i] = 0.0
                self._pending[i] = None
                price = portfolio.price[i]
                if self._n_working[i]:
                    self._cancel_working(i, ts, "flattened by risk")
                self._order_id += 1
                order = SubmitOrder(self._order_id, 0, ts, sym, -position, price)
                self._obs_ts[i] = ts  # fills at the latest mark, as the breaker decides
                self._submit(i, order, position, portfolio.equity(), price, (), role=FLATTEN)
        finally:
            self._flattening = False

    def schedule_events(self, events: Sequence[ScenarioEvent]) -> None:
        """Put scenario events on the queue; each runs before the bars at its time."""
        for event in events:
            self.queue.push(event.ts, PRIORITY_EVENT, self._on_event, event)

    def _on_event(self, event: ScenarioEvent) -> None:
        kind = event.kind
        if kind == "kill_switch":
            self.risk.kill()
            if self.risk.limits.flatten_on_trip:
                self._flatten(event.ts)
            return
        if kind == "venue_latency" and event.venue is not None:
            self.router.venue(event.venue).added_latency_ms = float(event.value or 0.0)
            return
        if kind == "venue_reject_rate" and event.venue is not None:
            self.router.venue(event.venue).reject_rate = float(event.value or 0.0)
            return
        health = {"venue_down": DOWN, "venue_up": UP, "venue_degraded": DEGRADED}.get(kind)
        if health is None or event.venue is None:
            raise ValueError(f"unknown scenario event {event!r}")
        self.router.set_health(event.venue, health)

    def _drain_before(self, ts: int | None, priority: int) -> None:
        """Dispatch queued events with key < (ts, priority); all of them if ts is None."""
        queue = self.queue
        while queue:
            key = queue.next_key()
            if ts is not None and key is not None and key >= (ts, priority):
                return
            item = queue.pop()
            self.clock.advance_to(item.ts)
            item.handler(item.message)

    def _snapshot(self, ts: int) -> None:
        """Equity at the end of time ``ts``, every symbol at its latest mark."""
        portfolio = self.portfolio
        equity = portfolio.equity()
        self._book_ts(ts)
        self._book_cash(portfolio.cash)
        self._book_equity(equity)
        self._book_realized(portfolio.realized_total)
        self._book_unrealized(portfolio.unrealized(equity))


@contextmanager
def fewer_gc_passes(young: int = 100_000) -> Iterator[None]:
    """Run the cyclic garbage collector less often while a backtest runs.

    A run keeps hundreds of thousands of acyclic rows alive in the recorder's buffers; at
    CPython's default (a young-generation pass every 700 allocations) the collector keeps
    re-walking them and takes 40% of a multi-agent run. Cycles are still collected, just
    in larger batches. The previous thresholds are restored afterwards.
    """
    old = gc.get_threshold()
    gc.set_threshold(young, *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)
