"""The event-skipping fast path: a backtest walks only the bars where something happens.

Most bars change nothing: every agent's signal stands until it changes, no decision waits
for an open, no order works, no queued event is due; such a bar only moves its symbol's
mark and books one equity row, ``cash + sum(qty x close)``. Given each agent's batch form
(``sim.agents.batch``: every bar where its signal changes, computed causally from the whole
column), this walk hands ``Engine.on_bar`` only the *event* bars, with the agents' calls
replaced by look-ups of those precomputed signals, and books the equity rows of the bars in
between with array operations: the same IEEE operations in the same order as
``Portfolio.equity`` (cash, then each held symbol's ``qty x mark`` in the ledger's order),
so every stored row is byte-identical to the per-bar loop's (``sim.fast_skip``; on one
symbol with votes in bulk, ``sim.fast_book`` books them in blocks, where they are read).

An event bar is one where the per-bar loop could do more than that: an agent's signal
changes; a decision is pending for the symbol's next open (or a revote is marked there);
the symbol has orders working or a perpetual position to watch (``desk.watch``); a queued
event (scenario events, funding, order arrivals, signal expiry, monitor heartbeats) is due
before it. The last three are re-read after every event bar, since each can start there.
Circuit breakers need no per-bar events: risk evaluates them only when an order is checked,
over the equity book, which holds every skipped bar's row by then. Taking a bar as an event
bar when it need not be is always safe (``on_bar`` is the reference); the conditions err
only that way.

Where the votes can be taken in bulk (``sim.fast_votes``: the common consensus methods
and sizings), the agents are not called at all: every signal, decision and vote row is
computed for the whole run from the batch forms, and the walk's event bars are only the
decisions whose exposure differs from the one acted on, plus the conditions above.

The recorder is flushed after the same bars as ``Engine.run`` flushes it (every ``chunk``
rows), so buffered rows, and what the risk engine has followed, match at every flush.

What it cannot do exactly runs the per-bar loop (``choose_path`` says why): an agent with
no batch form, agent lifecycle events (``agent_*``: they rebuild agents mid-run), tick
replay, per-bar bus topics (``bar``/``equity`` observers), or a caller asking for it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from sim.agents.batch import has_batch_form
from sim.data import MarketData
from sim.engine import Engine, fewer_gc_passes
from sim.fast_book import DeferredBook
from sim.fast_skip import Skipper
from sim.fast_votes import BulkVotes, bulk_reason
from sim.messages import FillTiming, Signal
from sim.view import MarketView

FAST = "fast"
PER_BAR = "per-bar"
_DENSE = 4  # an event this few bars ahead: walk the bars before it through on_bar


@dataclass(frozen=True, slots=True)
class PathChoice:
    """Which loop a run takes (``FAST`` or ``PER_BAR``) and why, as stored with the run."""

    path: str
    reason: str


def choose_path(engine: Engine, events: Sequence[str] = (), *, allowed: bool = True
                ) -> PathChoice:
    """The fast path when it is exact for this engine, else the per-bar loop with the
    first reason it is not. ``events``: the scenario's ``[[events]]`` kinds."""
    if not allowed:
        return PathChoice(PER_BAR, "asked for (--per-bar)")
    if engine.per_bar_reason is not None:
        return PathChoice(PER_BAR, engine.per_bar_reason)
    if type(engine) is not Engine:
        return PathChoice(PER_BAR, f"{type(engine).__name__}: an engine the fast path "
                          "does not know")
    if engine.execution.ticks:
        return PathChoice(PER_BAR, "tick replay")
    lifecycle = sorted({k for k in events if k.startswith("agent_")})
    if lifecycle:
        return PathChoice(PER_BAR, f"agent lifecycle events ({', '.join(lifecycle)}) "
                          "change agents mid-run")
    roster = engine.lifecycle
    if roster is not None and any(getattr(item, "handler", None) == roster.apply
                                  for item in engine.queue.heap):
        # commands queued by other means than the scenario's events (sim.lifecycle)
        return PathChoice(PER_BAR, "agent lifecycle commands queued change agents mid-run")
    for s, slots in enumerate(engine.agents):
        positions = sorted(pos for pos, _ in engine._agent_calls[s])
        if positions != list(range(len(slots))):
            return PathChoice(PER_BAR, f"not every agent on {engine.symbols[s]} is active")
        for slot in slots:
            if not has_batch_form(slot.agent):
                return PathChoice(PER_BAR, f"agent {slot.name!r} "
                                  f"({type(slot.agent).__name__}) has no batch form")
    return PathChoice(FAST, "every agent has a batch form")


def _replay(signals: dict[int, Signal]) -> Callable[[MarketView], Signal | None]:
    """An agent's ``on_bar`` stand-in: its batch signal at the view's bar (numbered from
    1 as ``view.n``), None where it does not change."""
    get = signals.get

    def on_bar(view: MarketView) -> Signal | None:
        return get(view.n)

    return on_bar


def run_fast(engine: Engine, data: MarketData, chunk: int = 65_536,
             on_progress: Callable[[int], None] | None = None) -> None:
    """``Engine.run`` over ``data`` visiting event bars only (see the module docstring);
    the engine must have passed ``choose_path``."""
    walk = _Walk(engine, data, chunk)
    votes = walk.votes
    with fewer_gc_passes():
        ok = False
        try:
            walk.run(on_progress)
            ok = True
        finally:  # a failed run stores the rows the per-bar loop would have by then
            if votes is not None:
                votes.record_upto(walk.row_done)
            if not ok:
                walk.settle_book()
        if votes is not None:
            votes.finish()
        end = int(walk.times[-1]) if len(walk.times) else None
        del walk, votes  # the walk's arrays are not held through the last flush
        if end is not None and engine.clock.now < end:
            # the run ends at its last bar, walked or skipped (the per-bar loop's clock
            # is there): what the end cancels is stamped then, not at the last event bar
            engine.clock.now = end
        engine.finish()


class _Walk:
    """The state of one fast run: the merged bar order, each symbol's rows in it, the
    static event rows (signal changes) and the distinct times (queued events meet them)."""

    def __init__(self, engine: Engine, data: MarketData, chunk: int) -> None:
        self.engine = engine
        self.bars = data.bars
        self.chunk = chunk
        self.n = n = len(data)
        self.single = len(data.bars) == 1
        order_symbol = data.order_symbol
        self.order_symbol = order_symbol
        self.order_pos = data.order_pos
        if self.single:
            self.ts = np.asarray(data.bars[0].ts, dtype=np.int64)
            self.rows_of = [np.arange(n, dtype=np.int64)]
        else:
            self.ts = np.empty(n, dtype=np.int64)
            self.rows_of = []
            for s, b in enumerate(data.bars):
                rows = np.flatnonzero(order_symbol == s)
                self.ts[rows] = b.ts
                self.rows_of.append(rows)
        self.skipper = Skipper(engine, data.bars, self.ts, order_symbol, self.order_pos,
                               self.rows_of)
        moved = np.ones(n, dtype=bool)
        if n:
            np.not_equal(self.ts[1:], self.ts[:-1], out=moved[1:])
        self.starts = np.flatnonzero(moved)
        self.times = self.ts[self.starts]
        self._due: int | None = None  # the queue head's time and its row (_queue_row)
        self._due_row = 0
        events: list[np.ndarray] = []
        # Per row, the (position, replay) pairs of the agents whose signal changes there,
        # in position order: ``_process`` hands on_bar only those (the others' replays
        # would return None), so an event bar calls one agent or two, not all of them.
        # Not made when no symbol has two agents (nothing to leave out, and it costs a
        # Python step per signal change).
        several = any(len(calls) > 1 for calls in engine._agent_calls)
        changing: dict[int, list[tuple[int, Callable[[MarketView], Signal | None]]]] = {}
        batches = [[engine.agents[s][pos].agent.batch_signals(data.bars[s]) for pos, _ in calls]
                   for s, calls in enumerate(engine._agent_calls)]
        # Votes in bulk where they can be (sim.fast_votes): the walk then stops only at
        # decisions that may make an order; the agents are not called at all.
        self.votes: BulkVotes | None = None
        self.row_done = 0  # rows whose signals and decisions the recorder has by now
        if bulk_reason(engine) is None:
            votes = BulkVotes(engine, list(data.bars), self.rows_of, batches)
            if votes.ok:
                self.votes = votes
                for s in range(len(batches)):
                    engine.set_calls(s, ())
                batches = [[] for _ in batches]
                several = False
        for s, calls in enumerate(engine._agent_calls):
            replays = []
            for (pos, _), changes in zip(calls, batches[s], strict=True):
                replay = _replay(dict(zip((changes.index + 1).tolist(), changes.signals,
                                          strict=True)))
                replays.append((pos, replay))
                rows = self.rows_of[s][changes.index]
                events.append(rows)
                pair = (pos, replay)
                for r in rows.tolist() if several else ():
                    changing.setdefault(r, []).append(pair)
            if self.votes is None:
                engine.set_calls(s, tuple(replays))
        self.calls_at = ({r: tuple(pairs) for r, pairs in changing.items()} if several
                         else None)
        static = np.unique(np.concatenate(events)) if events else np.zeros(0, np.int64)
        self.static: list[int] = static.tolist()
        # For each static event, the last one of its dense cluster (events fewer than
        # _DENSE rows apart): a walk that reaches a cluster hands it to on_bar whole.
        ends = np.flatnonzero(np.diff(static) >= _DENSE)
        last = np.append(static[ends], static[-1:]) if len(static) else static
        self.cluster_end: list[int] = np.repeat(
            last, np.diff(np.concatenate(([0], ends + 1, [len(static)])))).tolist()
        # One symbol, votes in bulk, no equity follower: the equity rows are booked in
        # blocks where they are read (sim.fast_book), not at each event bar and skip.
        self.deferred = (DeferredBook(engine.portfolio, self.ts, data.bars[0].close)
                         if self.single and self.votes is not None
                         and not engine.portfolio.book.followed else None)

    # -- the walk ------------------------------------------------------------------------
    def run(self, on_progress: Callable[[int], None] | None) -> None:
        engine = self.engine
        pending, watch, queued = engine._pending, engine._watch, engine._queued
        symbols = range(len(self.bars))
        static, cluster_end, k = self.static, self.cluster_end, 0
        n, chunk = self.n, self.chunk
        votes = self.votes
        candidate = votes.next_candidate if votes is not None else None
        deferred = self.deferred
        p = done = 0
        while p < n:
            boundary = min((p // chunk + 1) * chunk, n)
            while k < len(static) and static[k] < p:
                k += 1
            e = static[k] if k < len(static) else n
            if queued:
                e = min(e, self._queue_row(p))
            if candidate is not None:
                for s in symbols:
                    e = min(e, candidate(s, p, n))
            for s in symbols:
                if pending[s] is not None or watch[s]:
                    e = min(e, self._next_row(s, p))
            if e >= boundary:
                self._skip(p, boundary)
                p = boundary
            else:
                if e - p < _DENSE and deferred is None:  # a few quiet bars: on_bar itself
                    a = p  # is cheaper (with a deferred book a skip costs nothing)
                else:
                    self._skip(p, e)
                    a = e
                # ... and through the rest of a dense cluster of static events
                end = (cluster_end[k] if k < len(static) and static[k] - e < _DENSE
                       else e)
                p = min(end + 1, boundary)
                if deferred is not None:
                    p = self._process_deferred(a, p, boundary)
                else:
                    self._process(a, p)
            if p == boundary:  # where Engine.run ends a chunk
                if deferred is not None:  # the rows Engine.run has booked by now
                    deferred.book_upto(p - 1)
                if votes is not None:
                    votes.record_upto(p)
                    self.row_done = p
                engine.recorder.maybe_flush()
                if on_progress is not None:
                    on_progress(p - done)
                done = p
        if deferred is not None and n:  # Engine.finish books the last bar's row
            engine._last_ts = self.ts.item(n - 1)
            self.skipper.show(0, n - 1)

    def settle_book(self) -> None:
        """After a failure: the equity rows, and the engine's time, as the per-bar loop
        leaves them by the bar where it failed."""
        deferred = self.deferred
        if deferred is not None and self.n:
            upto = deferred.upto
            deferred.book_upto(upto)
            self.engine._last_ts = self.ts.item(upto)
            if upto and self.engine.views[0].n < upto:  # failed before on_bar set it
                self.skipper.show(0, upto - 1)

    def _queue_row(self, p: int) -> int:
        """The first row at or after ``p`` where the next queued event may run: the first
        row of the first time at or after the event's (the engine drains on a time change;
        at most as early as needed, never later)."""
        due = self.engine._queued[0].ts
        if due != self._due:  # the head of the queue changes seldom: one search each
            i = int(np.searchsorted(self.times, due))
            self._due = due
            self._due_row = int(self.starts[i]) if i < len(self.starts) else self.n
        return max(self._due_row, p)

    def _next_row(self, s: int, p: int) -> int:
        if self.single:
            return p
        rows = self.rows_of[s]
        i = int(np.searchsorted(rows, p))
        return int(rows[i]) if i < len(rows) else self.n

    def _process(self, a: int, b: int) -> None:
        """Rows ``[a, b)`` through ``Engine.on_bar``, as the per-bar loop hands them."""
        if self.votes is not None:
            self._process_votes(a, b)
            return
        on_bar = self.engine.on_bar
        calls = self.engine._agent_calls
        calls_at = self.calls_at.get if self.calls_at is not None else None
        if self.single:
            bars = self.bars[0]
            ts, o, h, lo, c, v = (bars.ts, bars.open, bars.high, bars.low, bars.close,
                                  bars.volume)
            for i in range(a, b):
                if calls_at is not None:
                    calls[0] = calls_at(i, ())
                on_bar(0, i + 1, ts.item(i), o.item(i), h.item(i), lo.item(i), c.item(i),
                       v.item(i))
            return
        for r in range(a, b):
            s, i = self.order_symbol.item(r), self.order_pos.item(r)
            if calls_at is not None:
                calls[s] = calls_at(r, ())
            bars = self.bars[s]
            on_bar(s, i + 1, bars.ts.item(i), bars.open.item(i), bars.high.item(i),
                   bars.low.item(i), bars.close.item(i), bars.volume.item(i))

    def _process_votes(self, a: int, b: int) -> None:
        """``_process`` with votes in bulk: no agent is called; after ``on_bar`` at a row
        with a decision the bulk votes act on it (``BulkVotes.act``). On a failure,
        ``row_done`` says which rows' signals and decisions the per-bar loop had
        recorded by then (the failing row's too when the failure is in the act)."""
        votes = self.votes
        assert votes is not None
        on_bar, act, cand_at = self.engine.on_bar, votes.act, votes.cand_at
        r = a
        acting = False
        try:
            if self.single:
                bars = self.bars[0]
                ts, o, h, lo, c, v = (bars.ts, bars.open, bars.high, bars.low, bars.close,
                                      bars.volume)
                at = cand_at[0]
                for r in range(a, b):
                    on_bar(0, r + 1, ts.item(r), o.item(r), h.item(r), lo.item(r),
                           c.item(r), v.item(r))
                    if at[r]:
                        acting = True
                        act(0, r, c.item(r))
                        acting = False
                return
            for r in range(a, b):
                s, i = self.order_symbol.item(r), self.order_pos.item(r)
                bars = self.bars[s]
                close = bars.close.item(i)
                on_bar(s, i + 1, bars.ts.item(i), bars.open.item(i), bars.high.item(i),
                       bars.low.item(i), close, bars.volume.item(i))
                if cand_at[s][r]:
                    acting = True
                    act(s, r, close)
                    acting = False
        except BaseException:
            self.row_done = r + 1 if acting else r
            raise

    def _process_deferred(self, a: int, b: int, limit: int) -> int:
        """``_process_votes`` on one symbol with a deferred book, through row ``b - 1``
        and on while a decision waits for the next open or orders work (those rows are
        event rows; up to ``limit``, the chunk's end), then on to the next candidate
        before ``limit`` while nothing is queued; returns the row after the last.
        ``on_bar`` books no equity row (the engine's time is unset before each bar): the
        state each bar leaves is kept for the book instead.

        A row where only a decision is made for the next open (nothing waits for this
        bar's open, no order works, nothing is queued) is not handed to ``on_bar``: it
        would only set the view and the mark, and the next bar's ``on_bar`` sets the
        view again; the mark (the next release's price band reads it) is set here and
        the account's state is the last one kept."""
        engine = self.engine
        deferred, votes = self.deferred, self.votes
        assert deferred is not None and votes is not None
        portfolio = engine.portfolio
        qty = portfolio.qty
        keep = deferred.states.append
        on_bar, act, at = engine.on_bar, votes.act, votes.cand_at[0]
        pending, watch, queued = engine._pending, engine._watch, engine._queued
        price = portfolio.price
        at_open = engine.fill_timing is FillTiming.NEXT_OPEN
        bars = self.bars[0]
        ts, o, h, lo, c, v = bars.ts, bars.open, bars.high, bars.low, bars.close, bars.volume
        if a:  # the mark the skipped bars left (_skip sets none) ...
            if engine._queued:  # ... and the view: queued events run before on_bar sets
                self.skipper.show(0, a - 1)  # it (a fill's bar volume and range read it)
            else:
                portfolio.price[0] = c.item(a - 1)
        candidate, n = votes.next_candidate, self.n
        r = a
        acting = False
        try:
            while True:
                while r < b or (r < limit and (pending[0] is not None or watch[0])):
                    if (at_open and at[r] and pending[0] is None and not watch[0]
                            and not queued):
                        price[0] = close = c.item(r)  # as on_bar leaves it
                        acting = True
                        act(0, r, close)
                        acting = False
                        r += 1
                        continue
                    engine._last_ts = None
                    on_bar(0, r + 1, ts.item(r), o.item(r), h.item(r), lo.item(r),
                           c.item(r), v.item(r))
                    if at[r]:
                        acting = True
                        act(0, r, c.item(r))
                        acting = False
                    keep((r, portfolio.cash, qty[0], portfolio.cost_basis,
                          portfolio.realized_total))
                    r += 1
                # Nothing waits for an open and no order works now. With nothing queued,
                # the next event row is the next candidate (``run`` finds the same: no
                # static events here): walk on to it when it is before ``limit``,
                # skipping the rows before it, instead of a turn of ``run``'s loop.
                if queued or r >= limit:
                    break
                e = candidate(0, r, n)
                if e >= limit:
                    break
                if e > r:
                    price[0] = c.item(e - 1)  # the mark the skipped rows leave
                r, b = e, e + 1
        except BaseException:
            self.row_done = r + 1 if acting else r
            deferred.upto = r
            if acting and engine.views[0].n != r + 1:  # failed in a row on_bar did not
                self.skipper.show(0, r)  # see: the view and time as on_bar left them
                engine.clock.now = ts.item(r)
            raise
        deferred.upto = r - 1
        return r

    # -- the bars in between -------------------------------------------------------------
    def _skip(self, a: int, b: int) -> None:
        """Rows ``[a, b)`` change nothing but marks (``Skipper.skip``). With a deferred
        book nothing is done now: the rows are booked where read, the mark and view set
        where read (``_process_deferred``, the end of the walk)."""
        if self.deferred is not None:
            if a < b:
                self.deferred.upto = b - 1
            return
        self.skipper.skip(a, b)
