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

The engine keeps the loop and the decision path (signals, consensus, sizing, equity). An
order, once sized, goes to the engine's ``ExecutionDesk`` (``sim.execution``), which takes
it from the risk check to its terminal state through the same event queue and clock.
Split off along their seams, as mixins of ``Engine``: the replay drivers that feed the
loop from recorded bars or trades (``sim.engine_replay``), and what changes the engine
between bars, the agent set, the kill switch and the scenario's timed events
(``sim.engine_commands``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from sim.clock import SimClock
from sim.consensus import Consensus, expire
from sim.engine_commands import EngineCommands, Held, _Revote
from sim.engine_replay import Replay, fewer_gc_passes  # re-exported: defined here before
from sim.event_queue import (  # re-exported: the queue was defined here
    PRIORITY_ARRIVAL,
    PRIORITY_EVENT,
    PRIORITY_EXPIRY,
    PRIORITY_OPEN,
    PRIORITY_VENUE,
    EventQueue,
)
from sim.execution import ExecutionDesk
from sim.messages import FillTiming, Side, Signal
from sim.orders import ExecutionSettings
from sim.performance import AgentPerformance
from sim.policy import InvertedOrderError, TargetExposurePolicy, inverted
from sim.portfolio import Portfolio
from sim.recorder import Recorder
from sim.risk import RiskEngine, attributed
from sim.router import VenueRouter
from sim.view import MarketView

__all__ = [
    "PRIORITY_ARRIVAL", "PRIORITY_EVENT", "PRIORITY_EXPIRY", "PRIORITY_OPEN", "PRIORITY_VENUE",
    "AgentOutputError", "AgentSlot", "Engine", "EventQueue", "Held", "fewer_gc_passes",
]

_SIDES = frozenset(Side)


def _is_text(value: object) -> bool:
    """A str the store can hold: a lone surrogate (``"\\ud800"``) is not UTF-8 text."""
    if not isinstance(value, str):
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class AgentOutputError(ValueError):
    """An agent returned something that is not a valid signal."""


def valid_signal(signal: object) -> bool:
    """What ``Engine._accept_signal`` accepts (checked inline there: it runs on every
    signal change)."""
    try:
        return (type(signal) is Signal and signal.side in _SIDES
                and 0.0 <= signal.confidence <= 1.0
                and (signal.target is None or 0.0 <= signal.target <= 1.0)
                and (signal.reason is None or _is_text(signal.reason)))
    except TypeError:
        return False


@dataclass(frozen=True, slots=True)
class AgentSlot:
    """One agent instance trading one symbol; ``index`` is its column in the votes."""

    index: int
    name: str
    agent: Any


class Engine(EngineCommands, Replay):
    # Why a subclass needs every bar walked (``sim.fast_path.choose_path``); None: it
    # does not.
    per_bar_reason: ClassVar[str | None] = None

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
        self._pending: list[Held | None] = [None] * n
        self._acted_target: list[float | None] = [0.0] * n
        self._last_ts: int | None = None
        self._decision_id = 0
        self._symbol_index = {sym: i for i, sym in enumerate(self.symbols)}
        # Equity per time step goes to the ledger's book; the recorder writes it from there.
        book = portfolio.book
        recorder.equity = book
        self._book_ts = book.ts.append
        self._book_cash = book.cash.append
        self._book_equity = book.equity.append
        self._book_realized = book.realized.append
        self._book_unrealized = book.unrealized.append
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
        self._attribute = bool(risk.limits.agents)  # attribution only feeds permissions
        # Everything after the decision (sim.execution): risk, routing, venues, matching,
        # fills, brackets, perpetuals. The per-bar path reads its ``watch`` list (set only
        # while a symbol has orders working or a perpetual position to watch) and calls it
        # only then, so the default path pays one list lookup per bar for all of it.
        self.execution = execution or ExecutionSettings()
        self.desk = ExecutionDesk(
            self.symbols, self.views, risk, router, portfolio, recorder, self.queue,
            self.clock, self.execution, dispatch_before=self._drain_before,
            on_flatten=self._forget_decision)
        # The agent roster (sim.lifecycle.AgentRoster) that steers the agents, set by
        # sim.runner.build_engine.
        self.lifecycle: Any = None
        # What the scenario scheduled at a time of its own (events, lifecycle commands), by
        # handler, with how to name one: what the data never reach is not run (finish).
        self._timed: dict[Callable[[Any], None], Callable[[Any], str]] = {}
        self._watch = self.desk.watch
        self._n_working = self.desk.n_working
        self._tick_volume = self.desk.tick_volume

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
        # One test per bar for both: a decision to release, orders working on the symbol.
        changed = (self._open(s, ts, o, h, lo, c, v, pending)
                   if pending is not None or self._watch[s] else False)
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

    def _open(self, s: int, ts: int, o: float, h: float, lo: float, c: float, v: float,
              pending: Held | _Revote | None) -> bool:
        """A bar's open when something happens there: working orders meet the open, the
        pending decision is released at it, then working orders follow the bar's path (in
        bar replay; in tick replay trades drive them). True when a standing signal went
        stale, so consensus votes again at the close."""
        changed = False
        bars = not self.execution.ticks
        if bars and self._watch[s]:  # working orders meet the open
            self.desk.venue_open(s, ts, o, v)
        if pending is not None:
            self._pending[s] = None
            if pending.__class__ is _Revote:  # a standing signal went stale
                changed = True
                pending = pending.held
            if pending is not None:  # a Held by now
                self._release(s, ts, o, *pending)  # type: ignore[misc]
        if bars and self._watch[s]:  # ... and the bar's path
            self.desk.venue_path(s, ts, o, h, lo, c, v)
        return changed

    @property
    def bars_seen(self) -> int:
        """Bars that entered the pipeline (exact even after an interruption)."""
        return sum(view.n for view in self.views)

    def restore_decision_id(self, decision_id: int) -> None:
        """Continue a stored run (a live restart): new decisions number after this one."""
        self._decision_id = max(self._decision_id, decision_id)

    def drop_pending_equity(self) -> None:
        """The bar run last books no equity row (a resumed live run re-runs its stored
        warm-up, whose rows exist already)."""
        self._last_ts = None

    def finish(self) -> None:
        """Cancel the orders still working (the run ended), run what is still queued and
        record the last equity row.

        What the scenario scheduled after the data's end (an event or lifecycle command
        the bars never reached) is not run: its time never came, and running it here
        would book rows after the last equity row (a farm funded after the run's last
        snapshot). The run says so in ``run_info`` (key ``not_run``, one row each)."""
        self.desk.end_run()
        if self.queue:
            self._drain_remaining()
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

    # -- steps -----------------------------------------------------------------------
    def _accept_signal(self, s: int, pos: int, signal: Signal, ts: int) -> None:
        # Checked here, on the way in, so a bad value fails the run naming the agent (not
        # the recorder's flush later, naming nothing).
        try:
            valid = (
                type(signal) is Signal
                and signal.side in _SIDES
                and 0.0 <= signal.confidence <= 1.0
                and (signal.target is None or 0.0 <= signal.target <= 1.0)
                and ((reason := signal.reason) is None
                     or (type(reason) is str and reason.isascii()) or _is_text(reason))
            )
        except TypeError:  # a confidence or target that is no number
            valid = False
        if not valid:
            raise AgentOutputError(
                f"agent {self._agent_names[s][pos]!r} on {self.symbols[s]} returned "
                f"{signal!r}: expected Signal(side, confidence in [0, 1], target in [0, 1] "
                "or None, reason text or None) or None"
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
        self.revote(s)

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
        agents = attributed(side, self._agent_names[s], signals) if self._attribute else ()
        if self.fill_timing is FillTiming.CLOSE:
            self._release(s, ts, close, decision_id, ts, side, exposure, agents)
        else:
            self._pending[s] = (decision_id, ts, side, exposure, agents)

    def _release(
        self, s: int, ts: int, price: float, decision_id: int, decision_ts: int, side: Side,
        target: float, agents: tuple[str, ...],
    ) -> None:
        """Turn a decision into an order at ``price``: size it and hand it to the desk
        (risk check, route, execute). Orders still working from earlier decisions on the
        symbol are cancelled first (cancel/replace): the new order is sized from the
        position actually held.

        At equity <= 0 sizing aims at flat; a decision for exposure on a flat position
        goes to risk as an order of 0 units, to be denied there (check "equity") and
        stored with its reason rather than vanish. An order on the side opposite to
        its decision stops the run (``InvertedOrderError``): a bug, not a result.
        ``agents``: those the order is attributed to (``sim.risk.attributed``)."""
        self._acted_target[s] = target
        portfolio = self.portfolio
        last_close = portfolio.price[s]  # the previous mark: the price band's reference
        portfolio.price[s] = price
        desk = self.desk
        replaced = desk.replace_working(s, ts) if self._n_working[s] else 0
        position = portfolio.qty[s]
        equity = portfolio.equity()
        qty = self.policy.order_quantity(target, position, equity, price)
        if qty == 0.0:
            if not (target and equity <= 0.0 and position == 0.0):
                return  # nothing to trade (or a reduction too small to trade)
        elif inverted(target, position, qty):
            raise InvertedOrderError(
                f"decision {decision_id} ({side.name}, target exposure "
                f"{target:+.6g}) on {self.symbols[s]} made an order of {qty:+.6g} that takes "
                f"the position from {position:+.6g} to {position + qty:+.6g} (equity "
                f"{equity:.6g}, price {price:.6g}): an order opposite to its decision")
        desk.submit_decision(s, ts, price, qty, decision_id, decision_ts, position, equity,
                             last_close, agents, replaced)

    def _release_held(self, s: int, ts: int, price: float, held: Any) -> None:
        """Release what ``_pending[s]`` held (here a ``Held``; a farm run
        holds one per farm) at ``price``: a trade's, in tick replay."""
        self._release(s, ts, price, *held)

    def _forget_decision(self, s: int) -> None:
        """Risk is flattening symbol s: the target acted on is now flat, and a decision
        waiting for the next open is dropped."""
        self._acted_target[s] = 0.0
        self._pending[s] = None

    # -- the queue and equity, as the loop uses them ---------------------------------------
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
