"""Buffers a run's rows and hands them to the store in Arrow batches.

Components report what happened with one call per event, which appends one tuple (the
message itself where there is one; the desk's order events, routes and fills as their
fields, no message made); columns are built only at flush, in bulk. Symbols and
agents travel as small integers and become names at flush. Equity, the one per-bar table,
is the ledger's ``EquityBook`` (``equity``), which the engine appends to; the recorder
writes its rows and drains it (the risk engine follows the book, not the recorder).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from sim.messages import (
    HOLD,
    FundingPaid,
    OrderDenied,
    OrderFilled,
    OrderRouted,
    PositionLiquidated,
    Side,
)
from sim.orders import Order
from sim.portfolio import EquityBook
from sim.recorder_columns import ORDER_ROWS, VOTE_ROWS, _ints, compacted, table_columns
from sim.schema import TABLES
from sim.store import RunStore
from sim.vote_rows import SIDE_DICT, TS

# Orders (decisions) buffered before the order path's (the votes') rows become Arrow
# chunks (``Recorder.compact``): about 1 MB of rows, in the processor's caches until then.
COMPACT_ORDERS = 2048
COMPACT_DECISIONS = 2048


class Recorder:
    def __init__(
        self,
        store: RunStore,
        run_id: str,
        symbols: Sequence[str],
        agents: Sequence[str],
        method: str,
        flush_rows: int = 500_000,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self._symbols = np.array(symbols, dtype=object)
        self._agents = np.array(agents, dtype=object)
        self._method = method
        self.flush_rows = flush_rows
        self._signals: list[tuple[int, int, int, Any]] = []
        self._decisions: list[tuple[Any, ...]] = []
        self._performance: list[tuple[Any, ...]] = []
        # Per (symbol, agent): decisions voted in, in the majority, overruled (counted at
        # flush from the votes; see sim.performance).
        shape = (len(symbols), len(agents))
        self.vote_counts = np.zeros(shape, np.int64)
        self.majority_counts = np.zeros(shape, np.int64)
        self.overruled_counts = np.zeros(shape, np.int64)
        self._orders: list[Order] = []
        self._order_events: list[tuple[Any, ...]] = []
        self._funding: list[tuple[FundingPaid, int]] = []
        self._liquidations: list[tuple[PositionLiquidated, int]] = []
        self._denials: list[tuple[OrderDenied, int]] = []
        # (order, ts, symbol index, venue, candidates, quantity, reason, elapsed_ns): the
        # order is the desk's ``Order`` (or a routed ``SubmitOrder``), read for its id
        self._routes: list[tuple[Any, ...]] = []
        # A fill's fields (``FILL_FIELDS``), then cash, position and realized PnL after it.
        self._fills: list[tuple[Any, ...]] = []
        # The execution desk's rows, appended whole (the tuples ``order_event``,
        # ``routing`` and ``fill`` make): one C call per row on the order path, no Python
        # frame. A recorder that does more with a row (``sim.observed``: publishes it)
        # points these at its methods instead.
        self.order_event_row: Callable[[tuple[Any, ...]], None] = self._order_events.append
        self.route_row: Callable[[tuple[Any, ...]], None] = self._routes.append
        # (fill_id, order_id, ts, symbol index, venue, quantity, price, fee, ref_price,
        # liquidity, cash, position, realized): a fill booked from its fields, no message
        self.fill_row: Callable[[tuple[Any, ...]], None] = self._fills.append
        # The equity rows: the engine sets this to its portfolio's book.
        self.equity = EquityBook()
        # Called before buffered rows are written and dropped (a live session writes the
        # bars it has taken since).
        self.before_flush: list[Callable[[], None]] = []
        # Called before buffered rows are handed over (``take_batches``: a live session's
        # store writer) or dropped unwritten (``discard``): a farm run's per-farm ledgers
        # become their rows, or are dropped, with the rest (``sim.farm_engine``).
        self.before_take: list[Callable[[], None]] = []
        self.on_discard: list[Callable[[], None]] = []
        # (table, batch) made by a flush and not yet in the store (see ``flush``)
        self._unwritten: list[tuple[str, pa.Table]] = []
        # Rare rows (agent lifecycle events, forgiven agent failures), whole rows in the
        # table's column order; ``agent_events`` survive ``discard`` (see there).
        self._rare: dict[str, list[tuple[Any, ...]]] = {}
        # Rows given as columns (``rare_columns``), written after the rare rows.
        self._bulk: list[tuple[str, dict[str, Any]]] = []
        # Signal, decision and vote rows given as columns (``vote_columns``), written after
        # the rows given one by one; and how many signal and decision rows they hold.
        self._vote_cols: list[tuple[list[np.ndarray], ...]] = []
        self._bulk_signals = self._bulk_decisions = 0
        # The order path's rows turned into Arrow chunks every ``COMPACT_ORDERS`` orders
        # (``compact``), by table, joined at the next flush.
        self._compacted: dict[str, list[pa.Table]] = {}

    # -- one call per event ------------------------------------------------------------
    def signal(self, ts: int, symbol: int, agent: int, signal: Any) -> None:
        self._signals.append((ts, symbol, agent, signal))

    def decision(
        self, decision_id: int, ts: int, symbol: int, side: Side, confidence: float,
        target: float | None, agents: tuple[int, ...], votes: tuple[Any, ...],
        weights: tuple[float, ...], rule: str = "none", agreement: float = 0.0,
    ) -> None:
        """One consensus outcome with its votes (``votes[i]`` is agent ``agents[i]``'s
        standing signal, None if it has not spoken or its signal expired), the rule that
        decided and the agreement ratio (``sim.consensus``)."""
        decisions = self._decisions
        decisions.append((decision_id, ts, symbol, side, confidence, target, agents, votes,
                          weights, rule, agreement))
        if len(decisions) >= COMPACT_DECISIONS:
            compacted(self, VOTE_ROWS)

    def agent_performance(self, agent: int, row: tuple[Any, ...]) -> None:
        """One ``sim.performance.PerformanceRow`` for config agent number ``agent``."""
        self._performance.append((agent, row))

    def order(self, order: Order) -> None:
        """An order in its terminal state (its fields are final from then on)."""
        orders = self._orders
        orders.append(order)
        if len(orders) >= COMPACT_ORDERS:
            self.compact()

    def compact(self) -> None:
        """Turn the order path's buffered rows (orders, their events, routes, fills) into
        Arrow chunks now, kept for the next flush, which writes the same rows in the same
        order. Built while they are fresh, a few thousand orders at a time, the rows'
        Python objects are still in the processor's caches; built at a flush up to 500,000
        bars later they are not, and reading them back cost about as much again as making
        them. ``decision`` does the same for signals, decisions and votes given one by
        one (those given as columns, ``vote_columns``, follow them at the flush as
        before)."""
        compacted(self, ORDER_ROWS)

    def order_event(self, order_id: int, ts: int, symbol: int, event: str, venue: str | None,
                    quantity: float | None, price: float | None, reason: str) -> None:
        self._order_events.append((order_id, ts, symbol, event, venue, quantity, price, reason))

    def funding(self, paid: FundingPaid, symbol: int) -> None:
        self._funding.append((paid, symbol))

    def liquidation(self, event: PositionLiquidated, symbol: int) -> None:
        self._liquidations.append((event, symbol))

    def denial(self, denial: OrderDenied, symbol: int) -> None:
        self._denials.append((denial, symbol))

    def routing(self, routed: OrderRouted, symbol: int) -> None:
        self._routes.append((routed.order, routed.ts, symbol, routed.venue, routed.candidates,
                             routed.order.quantity, routed.reason, routed.elapsed_ns))

    def fill(self, fill: OrderFilled, symbol: int, cash: float, position: float,
             realized: float) -> None:
        self._fills.append((fill.fill_id, fill.order_id, fill.ts, symbol, fill.venue,
                            fill.quantity, fill.price, fill.fee, fill.ref_price,
                            fill.liquidity, cash, position, realized))

    def vote_columns(self, signals: list[np.ndarray], decisions: list[np.ndarray],
                     votes: list[np.ndarray], starts: np.ndarray) -> None:
        """Signal, decision and vote rows as columns (``sim.fast_votes``: a fast run's
        votes taken in bulk), the arrays the caller's and untouched from now on.
        ``signals``: ts, symbol, agent, side, confidence, target, has target, reason;
        ``decisions``: id, ts, symbol, side, confidence, target, has target, rule code
        (``sim.vote_rows.RULES``), agreement; ``votes``: agent, side, confidence, weight,
        by decision (``starts``: where each decision's votes start, and the end)."""
        self._vote_cols.append((signals, decisions, votes, [starts]))
        self._bulk_signals += len(signals[0])
        self._bulk_decisions += len(decisions[0]) if decisions else 0

    def add_agent(self, name: str) -> int:
        """A new agent joins the run (spawned while it runs): its index for the calls."""
        self._agents = np.append(self._agents, np.array([name], dtype=object))
        for attr in ("vote_counts", "majority_counts", "overruled_counts"):
            counts = getattr(self, attr)
            setattr(self, attr, np.hstack([counts, np.zeros((counts.shape[0], 1), np.int64)]))
        return len(self._agents) - 1

    def rare_row(self, table: str, row: tuple[Any, ...]) -> None:
        """One row of a table written seldom (``agent_events``, ``agent_errors``), its
        values in ``TABLES[table]`` order (timestamps as ns integers)."""
        self._rare.setdefault(table, []).append(row)

    def rare_columns(self, table: str, columns: dict[str, Any]) -> None:
        """Rows of ``table`` as columns in ``TABLES[table]`` order (arrow arrays or numpy
        arrays the caller does not touch again): a table booked on every time step by
        something other than the engine (``farm_equity``), without a tuple per row."""
        self._bulk.append((table, columns))

    def discard(self) -> None:
        """Drop every buffered row unwritten (a resumed live session's warm-up: those
        bars were, or would have been, recorded by the session that first saw them)."""
        for hook in self.on_discard:
            hook()
        self._clear(written=False)

    # -- flushing ----------------------------------------------------------------------
    def pending_rows(self) -> int:
        return max(len(self.equity), len(self._signals) + self._bulk_signals,
                   len(self._decisions) + self._bulk_decisions)

    def maybe_flush(self) -> None:
        if self.pending_rows() >= self.flush_rows:
            self.flush()

    def flush(self) -> None:
        """Write every buffered row; called at the end, on failure and as buffers fill.
        The rows become one batch per table, each handed to the store as soon as it is
        built (a store that appends behind, ``sim.store.DuckDBStore.appends_behind``,
        writes one while the next is built); a batch leaves the queue only once the
        store has it: a flush cut short (a write failed, a signal rolled a statement back)
        and called again writes what is left, never a table twice."""
        for hook in self.before_flush:
            hook()
        batches = self._batches()
        try:
            while self._unwritten:  # what a flush cut short left, first
                self.store.append(self.run_id, *self._unwritten[0])
                del self._unwritten[0]
            for item in batches:
                self._unwritten.append(item)
                self.store.append(self.run_id, *item)
                del self._unwritten[0]
        finally:
            try:  # cut short: this flush's other batches are kept for the next
                self._unwritten.extend(batches)
            finally:
                self._clear()

    def take_batches(self) -> list[tuple[str, pa.Table]]:
        """The buffered rows as one table per store table, the buffers emptied: for a
        writer that is not this thread (``live.writer``). No ``before_flush`` hooks (the
        equity book's follower still sees its rows: ``EquityBook.drain``); the
        ``before_take`` hooks first."""
        for hook in self.before_take:
            hook()
        batches = list(self._batches())
        self._clear()
        return batches

    def _batches(self) -> Iterator[tuple[str, pa.Table]]:
        for table, columns in self._columns():
            names = [name for name, _ in TABLES[table]]
            if isinstance(columns, pa.Table):  # compacted chunks, joined
                assert columns.column_names == names, (table, columns.column_names)
                yield table, columns
                continue
            assert list(columns) == names, (table, list(columns))
            yield table, pa.table(columns)

    def _clear(self, written: bool = True) -> None:
        for buffer in (self._signals, self._decisions, self._performance, self._orders,
                       self._order_events, self._funding, self._liquidations, self._denials,
                       self._routes, self._fills):
            buffer.clear()
        for table, rows in self._rare.items():
            # A command applied during a resumed session's warm-up happened now: kept.
            if written or table != "agent_events":
                rows.clear()
        self._bulk.clear()
        self._vote_cols.clear()
        self._compacted.clear()
        self._bulk_signals = self._bulk_decisions = 0
        if written:
            self.equity.drain()
        else:
            self.equity.discard()

    def _names(self, lookup: np.ndarray, idx: Sequence[int]) -> pa.Array:
        """Small integer codes -> a dictionary-encoded string column (no Python strings)."""
        return pa.DictionaryArray.from_arrays(
            pa.array(_ints(idx).astype(np.int32)), pa.array(list(lookup), pa.string())
        )

    @staticmethod
    def _sides(sides: Sequence[int]) -> pa.Array:
        codes = np.fromiter(sides, dtype=np.int32, count=len(sides)) + 1
        return pa.DictionaryArray.from_arrays(pa.array(codes), SIDE_DICT)

    def _count_votes(
        self, symbols: Sequence[int], decided: Sequence[int], per_decision: list[int],
        agents: list[int], sides: list[int],
    ) -> None:
        """Add a batch of decisions to the per (symbol, agent) vote counts, in bulk."""
        hold = int(HOLD)
        vote = np.fromiter(sides, dtype=np.int64, count=len(sides))
        outcome = np.repeat(np.fromiter(decided, dtype=np.int64, count=len(decided)),
                            per_decision)
        where = (np.repeat(_ints(symbols), per_decision), _ints(agents))
        voted = vote != hold
        ruled = voted & (outcome != hold)
        agreed = vote == outcome
        np.add.at(self.vote_counts, (where[0][voted], where[1][voted]), 1)
        np.add.at(self.majority_counts, (where[0][ruled & agreed], where[1][ruled & agreed]), 1)
        np.add.at(self.overruled_counts, (where[0][ruled & ~agreed], where[1][ruled & ~agreed]),
                  1)

    def _ts(self, values: Sequence[int]) -> pa.Array:
        return pa.array(_ints(values), type=TS)

    def _columns(self) -> Iterator[tuple[str, dict[str, Any] | pa.Table]]:
        return table_columns(self)
