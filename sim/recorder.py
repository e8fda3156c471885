"""Buffers a run's rows and hands them to the store in Arrow batches.

Components report what happened with one call per event, which appends one tuple (the
message itself where there is one); columns are built only at flush, in bulk. Symbols and
agents travel as small integers and become names at flush. Equity, the one per-bar table,
is the ledger's ``EquityBook`` (``equity``), which the engine appends to; the recorder
writes its rows and drains it (the risk engine follows the book, not the recorder).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from itertools import chain
from operator import attrgetter, itemgetter
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
    RouteCandidate,
    Side,
)
from sim.orders import Order
from sim.portfolio import EquityBook
from sim.schema import TABLES
from sim.store import RunStore
from sim.vote_rows import SIDE_DICT, TS, merged, vote_tables

_TS = TS
_SIDE_DICT = SIDE_DICT  # Side values -1..2 index this dictionary after adding 1
# An orders row, in the order ``_columns`` unpacks it (sim.orders.Order's fields).
_ORDER_ROW = (
    "order_id", "decision_id", "ts", "s", "quantity", "ref_price", "status", "kind", "tif",
    "limit_price", "stop_price", "post_only", "reduce_only", "role", "parent_id", "replaces",
    "venue", "decision_ts", "arrival_ts", "fill_ts", "filled", "filled_notional", "fees",
    "reason")

# The fields of buffered messages that become columns (``_fields``).
_SIGNAL_ROW = ("side", "confidence", "target", "reason")
_FILL_ROW = ("fill_id", "order_id", "ts", "venue", "quantity", "price", "fee", "ref_price",
             "liquidity")
_ROUTE_ROW = ("order", "ts", "venue", "candidates", "reason", "elapsed_ns")
_ROUTED_ORDER = ("order_id", "quantity")
_CANDIDATE_TYPES = {"candidates": pa.list_(pa.string()),
                    "candidate_fees_bps": pa.list_(pa.float64()),
                    "candidate_scores": pa.list_(pa.float64())}


def _candidate_columns(candidates: Sequence[tuple[RouteCandidate, ...]]) -> dict[str, Any]:
    """The routing rows' candidate lists. The router reuses one candidates tuple per
    plan, so each distinct tuple is converted once and the rows take from it (found by
    identity, in bulk: the tuples are alive while the rows hold them, so ids are unique)."""
    ids = np.fromiter(map(id, candidates), dtype=np.uint64, count=len(candidates))
    _, first, index = np.unique(ids, return_index=True, return_inverse=True)
    distinct = [candidates[i] for i in first.tolist()]
    rows = pa.array(index.astype(np.int64))
    values = ([[c.venue for c in cs] for cs in distinct],
              [[c.fee_bps for c in cs] for cs in distinct],
              [[c.score for c in cs] for cs in distinct])
    return {name: pa.array(v, type=kind).take(rows)
            for (name, kind), v in zip(_CANDIDATE_TYPES.items(), values, strict=True)}


# DuckDB column type -> Arrow type, for the rare rows built from Python values.
_ARROW = {"TIMESTAMP_NS": _TS, "VARCHAR": pa.string(), "JSON": pa.string(),
          "BIGINT": pa.int64(), "DOUBLE": pa.float64(), "BOOLEAN": pa.bool_()}


def _transpose(rows: Sequence[tuple[Any, ...]], width: int) -> list[Any]:
    """Rows of ``width`` values -> columns. One C-level pass per column (``itemgetter``):
    ``zip(*rows)`` makes an iterator per row and costs half as much again. Every row must
    have the width (checked: a short or long row is a bug that must not shift columns)."""
    if set(map(len, rows)) != {width}:
        raise ValueError(f"recorder rows of widths {sorted(set(map(len, rows)))}, "
                         f"expected {width}")
    return [list(map(itemgetter(k), rows)) for k in range(width)]


def _fields(objects: Sequence[Any], names: Sequence[str]) -> list[list[Any]]:
    """The named attributes of each object, as columns (one C-level pass per column)."""
    return [list(map(attrgetter(name), objects)) for name in names]


def _ints(values: Sequence[int]) -> np.ndarray:
    return np.fromiter(values, dtype=np.int64, count=len(values))


def _floats(values: Sequence[float]) -> np.ndarray:
    return np.fromiter(values, dtype=np.float64, count=len(values))


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
        self._routes: list[tuple[OrderRouted, int]] = []
        self._fills: list[tuple[OrderFilled, int, float, float, float]] = []
        # The execution desk's rows, appended whole (the tuples ``order_event``,
        # ``routing`` and ``fill`` make): one C call per row on the order path, no Python
        # frame. A recorder that does more with a row (``sim.observed``: publishes it)
        # points these at its methods instead.
        self.order_event_row: Callable[[tuple[Any, ...]], None] = self._order_events.append
        self.route_row: Callable[[tuple[OrderRouted, int]], None] = self._routes.append
        self.fill_row: Callable[[tuple[OrderFilled, int, float, float, float]], None] = (
            self._fills.append)
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
        self._decisions.append(
            (decision_id, ts, symbol, side, confidence, target, agents, votes, weights,
             rule, agreement)
        )

    def agent_performance(self, agent: int, row: tuple[Any, ...]) -> None:
        """One ``sim.performance.PerformanceRow`` for config agent number ``agent``."""
        self._performance.append((agent, row))

    def order(self, order: Order) -> None:
        """An order in its terminal state (its fields are final from then on)."""
        self._orders.append(order)

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
        self._routes.append((routed, symbol))

    def fill(self, fill: OrderFilled, symbol: int, cash: float, position: float,
             realized: float) -> None:
        self._fills.append((fill, symbol, cash, position, realized))

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
        return pa.DictionaryArray.from_arrays(pa.array(codes), _SIDE_DICT)

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
        return pa.array(_ints(values), type=_TS)

    def _columns(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Each table's columns in turn, built as they are asked for (a flush hands one
        table to the store while the next is built). The big buffers are emptied as their
        tables are taken (``_clear`` empties them all after the last)."""
        book = self.equity
        if book.ts:  # first: the biggest, appended while the others are built
            # Copies, in one block each: the book's arrays are cleared after this (an
            # array exporting its buffer could not be).
            yield ("equity", {
                "ts": pa.array(np.array(book.ts, dtype=np.int64), type=_TS),
                "cash": np.array(book.cash, dtype=np.float64),
                "equity": np.array(book.equity, dtype=np.float64),
                "realized_pnl": np.array(book.realized, dtype=np.float64),
                "unrealized_pnl": np.array(book.unrealized, dtype=np.float64),
            })
        for table, rows in self._rare.items():
            if rows:
                columns = list(zip(*rows, strict=True))
                yield (table, {name: pa.array(list(col), _ARROW[kind])
                                    for (name, kind), col in zip(TABLES[table], columns,
                                                                 strict=True)})
        yield from self._bulk
        if self._signals:
            ts, sym, agent, sig = _transpose(self._signals, 4)
            side, confidence, target, reason = _fields(sig, _SIGNAL_ROW)
            yield ("signals", {
                "ts": self._ts(ts), "symbol": self._names(self._symbols, sym),
                "agent": self._names(self._agents, agent),
                "side": self._sides(side),
                "confidence": _floats(confidence),
                "target": pa.array(target, type=pa.float64()),
                "reason": pa.array(reason, type=pa.string()),
            })
            self._signals.clear()  # (its rows are in the batch: freed as the flush goes)
        if self._decisions:
            ids, ts, sym, side, conf, target, agents, votes, weights, rule, agree = (
                _transpose(self._decisions, 11))
            yield ("decisions", {
                "decision_id": _ints(ids),
                "ts": self._ts(ts),
                "symbol": self._names(self._symbols, sym),
                "side": self._sides(side),
                "confidence": _floats(conf),
                "target": pa.array(target, type=pa.float64()),
                "method": self._names(np.array([self._method]), [0] * len(ids)),
                "rule": pa.array(rule, type=pa.string()),
                "agreement": _floats(agree),
            })
            # Flattened with chain (no tuple per vote: millions of them on long runs).
            vote_signals = list(chain.from_iterable(votes))
            per_decision = [len(v) for v in votes]
            vote_agents = list(chain.from_iterable(agents))
            vote_sides = [HOLD if s is None else s.side for s in vote_signals]
            self._count_votes(sym, side, per_decision, vote_agents, vote_sides)
            yield ("votes", {
                "decision_id": np.repeat(_ints(ids), per_decision),
                "agent": self._names(self._agents, vote_agents),
                "side": self._sides(vote_sides),
                "confidence": _floats([0.0 if s is None else s.confidence
                                       for s in vote_signals]),
                "weight": _floats(list(chain.from_iterable(weights))),
            })
            self._decisions.clear()
        if self._vote_cols:  # one batch per table, as for the rows given one by one
            yield from vote_tables(self, *merged(self._vote_cols))
            self._vote_cols.clear()
        if self._performance:
            perf_agents, perf_rows = zip(*self._performance, strict=True)
            cols = list(zip(*perf_rows, strict=True))
            at = (_ints(cols[0]), _ints(perf_agents))
            yield ("agent_performance", {
                "symbol": self._names(self._symbols, cols[0]),
                "agent": self._names(self._agents, perf_agents),
                "signals": _ints(cols[2]), "scored": _ints(cols[3]), "hits": _ints(cols[4]),
                "hit_rate": pa.array(cols[5], type=pa.float64()),
                "shadow_pnl": _floats(cols[6]), "votes": self.vote_counts[at],
                "in_majority": self.majority_counts[at],
                "overruled": self.overruled_counts[at],
                "weight": _floats(cols[7]),
            })
        if self._orders:
            # One pass over the orders (attrgetter: no Python code per order), then the
            # derived columns in bulk: the same IEEE operations as Order.notional and
            # Order.avg_fill_price, so the values are identical.
            (oid, did, ts, sym, qty, ref, status, kind, tif, limit, stop, post, reduce, role,
             parent, replaces, venue, decision_ts, arrival_ts, fill_ts, filled, filled_notional,
             fees, reason) = _fields(self._orders, _ORDER_ROW)
            quantity, ref_price = _floats(qty), _floats(ref)
            filled_qty = _floats(filled)
            unfilled = filled_qty == 0.0
            avg = np.divide(_floats(filled_notional), np.abs(filled_qty),
                            out=np.zeros_like(filled_qty), where=~unfilled)
            yield ("orders", {
                "order_id": _ints(oid),
                "decision_id": _ints(did),
                "ts": self._ts(ts),
                "symbol": self._names(self._symbols, sym),
                "quantity": quantity,
                "ref_price": ref_price,
                "notional": np.abs(quantity) * ref_price,
                "status": list(status),
                "order_type": list(kind),
                "time_in_force": list(tif),
                "limit_price": pa.array(limit, pa.float64()),
                "stop_price": pa.array(stop, pa.float64()),
                "post_only": pa.array(post, pa.bool_()),
                "reduce_only": pa.array(reduce, pa.bool_()),
                "role": list(role),
                "parent_id": _ints(parent),
                "replaces": _ints(replaces),
                "venue": pa.array(venue, pa.string()),
                "decision_ts": self._ts(decision_ts),
                "arrival_ts": pa.array(arrival_ts, _TS),
                "fill_ts": pa.array(fill_ts, _TS),
                "filled_quantity": filled_qty,
                "avg_fill_price": pa.array(avg, pa.float64(), mask=unfilled),
                "fees": _floats(fees),
                "reason": list(reason),
            })
            self._orders.clear()
        if self._order_events:
            oid, ts, sym, event, venue, qty, price, reason = _transpose(self._order_events, 8)
            yield ("order_events", {
                "order_id": _ints(oid), "ts": self._ts(ts),
                "symbol": self._names(self._symbols, sym),
                "event": list(event), "venue": pa.array(venue, pa.string()),
                "quantity": pa.array(qty, pa.float64()),
                "price": pa.array(price, pa.float64()), "reason": list(reason),
            })
            self._order_events.clear()
        if self._funding:
            paid, sym = zip(*self._funding, strict=True)
            yield ("funding", {
                "ts": self._ts([f.ts for f in paid]),
                "symbol": self._names(self._symbols, sym),
                "position": _floats([f.position for f in paid]),
                "mark": _floats([f.mark for f in paid]),
                "rate": _floats([f.rate for f in paid]),
                "payment": _floats([f.payment for f in paid]),
                "venue": pa.array([f.venue for f in paid], pa.string()),
            })
        if self._liquidations:
            liq, sym = zip(*self._liquidations, strict=True)
            yield ("liquidations", {
                "ts": self._ts([e.ts for e in liq]),
                "symbol": self._names(self._symbols, sym),
                "venue": [e.venue for e in liq],
                "order_id": _ints([e.order_id for e in liq]),
                "position": _floats([e.position for e in liq]),
                "liquidation_price": _floats([e.liquidation_price for e in liq]),
                "price": _floats([e.price for e in liq]),
                "maintenance_margin": _floats([e.maintenance_margin for e in liq]),
            })
        if self._denials:
            denials, sym = zip(*self._denials, strict=True)
            yield ("risk_events", {
                "order_id": _ints([d.order_id for d in denials]),
                "ts": self._ts([d.ts for d in denials]),
                "symbol": self._names(self._symbols, sym),
                "check_name": [d.check for d in denials],
                "reason": [d.reason for d in denials],
                "limit_value": pa.array([d.limit for d in denials], type=pa.float64()),
                "actual_value": pa.array([d.value for d in denials], type=pa.float64()),
            })
        if self._routes:
            routes, sym = _transpose(self._routes, 2)
            orders, ts, venue, candidates, reason, elapsed = _fields(routes, _ROUTE_ROW)
            oid, qty = _fields(orders, _ROUTED_ORDER)
            yield ("routing_decisions", {
                "order_id": _ints(oid),
                "ts": self._ts(ts),
                "symbol": self._names(self._symbols, sym),
                "venue": list(venue),
                **_candidate_columns(candidates),
                "quantity": _floats(qty),
                "reason": list(reason),
                "elapsed_ns": _ints(elapsed),
            })
            self._routes.clear()
        if self._fills:
            fills, sym, cash, position, realized = _transpose(self._fills, 5)
            fill_id, oid, ts, venue, qty, price, fee, ref, liquidity = _fields(fills, _FILL_ROW)
            yield ("fills", {
                "fill_id": _ints(fill_id),
                "order_id": _ints(oid),
                "ts": self._ts(ts),
                "symbol": self._names(self._symbols, sym),
                "venue": list(venue),
                "quantity": _floats(qty),
                "price": _floats(price),
                "fee": _floats(fee),
                "ref_price": _floats(ref),
                "cash_after": _floats(cash),
                "position_after": _floats(position),
                "realized_pnl": _floats(realized),
                "liquidity": list(liquidity),
            })
            self._fills.clear()
