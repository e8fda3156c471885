"""The recorder's buffered rows as columns, one store table at a time (``Recorder``'s
flush side: ``sim.recorder`` buffers, this builds the batches; ``sim.vote_rows`` the
votes taken in bulk). Split from ``sim.recorder`` along that seam."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from itertools import chain
from operator import attrgetter, itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from sim.messages import HOLD, RouteCandidate
from sim.schema import TABLES
from sim.vote_rows import SIDE_DICT, TS, merged, vote_tables

if TYPE_CHECKING:
    from sim.recorder import Recorder

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
_ORDER_ID = attrgetter("order_id")
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


def table_columns(rec: Recorder) -> Iterator[tuple[str, dict[str, Any] | pa.Table]]:
    """Each table's columns in turn, built as they are asked for (a flush hands one
    table to the store while the next is built). The big buffers are emptied as their
    tables are taken (``Recorder._clear`` empties them all after the last)."""
    book = rec.equity
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
    for table, rows in rec._rare.items():
        if rows:
            columns = list(zip(*rows, strict=True))
            yield (table, {name: pa.array(list(col), _ARROW[kind])
                                for (name, kind), col in zip(TABLES[table], columns,
                                                             strict=True)})
    yield from rec._bulk
    yield from joined(rec, VOTE_ROWS)
    if rec._vote_cols:  # one batch per table, as for the rows given one by one
        yield from vote_tables(rec, *merged(rec._vote_cols))
        rec._vote_cols.clear()
    if rec._performance:
        perf_agents, perf_rows = zip(*rec._performance, strict=True)
        cols = list(zip(*perf_rows, strict=True))
        at = (_ints(cols[0]), _ints(perf_agents))
        yield ("agent_performance", {
            "symbol": rec._names(rec._symbols, cols[0]),
            "agent": rec._names(rec._agents, perf_agents),
            "signals": _ints(cols[2]), "scored": _ints(cols[3]), "hits": _ints(cols[4]),
            "hit_rate": pa.array(cols[5], type=pa.float64()),
            "shadow_pnl": _floats(cols[6]), "votes": rec.vote_counts[at],
            "in_majority": rec.majority_counts[at],
            "overruled": rec.overruled_counts[at],
            "weight": _floats(cols[7]),
        })
    yield from joined(rec, ORDER_ROWS[:2])
    if rec._funding:
        paid, sym = zip(*rec._funding, strict=True)
        yield ("funding", {
            "ts": rec._ts([f.ts for f in paid]),
            "symbol": rec._names(rec._symbols, sym),
            "position": _floats([f.position for f in paid]),
            "mark": _floats([f.mark for f in paid]),
            "rate": _floats([f.rate for f in paid]),
            "payment": _floats([f.payment for f in paid]),
            "venue": pa.array([f.venue for f in paid], pa.string()),
        })
    if rec._liquidations:
        liq, sym = zip(*rec._liquidations, strict=True)
        yield ("liquidations", {
            "ts": rec._ts([e.ts for e in liq]),
            "symbol": rec._names(rec._symbols, sym),
            "venue": [e.venue for e in liq],
            "order_id": _ints([e.order_id for e in liq]),
            "position": _floats([e.position for e in liq]),
            "liquidation_price": _floats([e.liquidation_price for e in liq]),
            "price": _floats([e.price for e in liq]),
            "maintenance_margin": _floats([e.maintenance_margin for e in liq]),
        })
    if rec._denials:
        denials, sym = zip(*rec._denials, strict=True)
        yield ("risk_events", {
            "order_id": _ints([d.order_id for d in denials]),
            "ts": rec._ts([d.ts for d in denials]),
            "symbol": rec._names(rec._symbols, sym),
            "check_name": [d.check for d in denials],
            "reason": [d.reason for d in denials],
            "limit_value": pa.array([d.limit for d in denials], type=pa.float64()),
            "actual_value": pa.array([d.value for d in denials], type=pa.float64()),
        })
    yield from joined(rec, ORDER_ROWS[2:])


# Rows built into Arrow chunks ahead of the flush (``Recorder.compact``), in groups: each
# builder's tables (in the order it makes them) and the builder, which empties its buffer.
Builder = Callable[["Recorder"], list[tuple[str, dict[str, Any]]]]
Group = tuple[tuple[tuple[str, ...], Builder], ...]


def joined(rec: Recorder, group: Group) -> Iterator[tuple[str, dict[str, Any] | pa.Table]]:
    """``group``'s tables: the chunks compacted since the last flush joined with the rows
    still buffered, in that order (a table's rows in the order they were given)."""
    for tables, build in group:
        made = dict(build(rec))
        for table in tables:
            columns = made.get(table)
            chunks = rec._compacted.pop(table, None)
            if not chunks:
                if columns is not None:
                    yield table, columns
                continue
            if columns is not None:
                chunks.append(pa.table(columns))
            yield table, pa.concat_tables(chunks, promote_options="default")


def compacted(rec: Recorder, group: Group) -> None:
    """``group``'s buffered rows as Arrow chunks, kept for the next flush."""
    for _, build in group:
        for table, columns in build(rec):
            rec._compacted.setdefault(table, []).append(pa.table(columns))


def _orders_columns(rec: Recorder) -> list[tuple[str, dict[str, Any]]]:
    """The ``orders`` rows buffered (terminal orders), as columns; the buffer emptied."""
    if not rec._orders:
        return []
    # One pass over the orders (attrgetter: no Python code per order), then the
    # derived columns in bulk: the same IEEE operations as Order.notional and
    # Order.avg_fill_price, so the values are identical.
    (oid, did, ts, sym, qty, ref, status, kind, tif, limit, stop, post, reduce, role,
     parent, replaces, venue, decision_ts, arrival_ts, fill_ts, filled, filled_notional,
     fees, reason) = _fields(rec._orders, _ORDER_ROW)
    quantity, ref_price = _floats(qty), _floats(ref)
    filled_qty = _floats(filled)
    unfilled = filled_qty == 0.0
    avg = np.divide(_floats(filled_notional), np.abs(filled_qty),
                    out=np.zeros_like(filled_qty), where=~unfilled)
    columns = {
        "order_id": _ints(oid),
        "decision_id": _ints(did),
        "ts": rec._ts(ts),
        "symbol": rec._names(rec._symbols, sym),
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
        "decision_ts": rec._ts(decision_ts),
        "arrival_ts": pa.array(arrival_ts, _TS),
        "fill_ts": pa.array(fill_ts, _TS),
        "filled_quantity": filled_qty,
        "avg_fill_price": pa.array(avg, pa.float64(), mask=unfilled),
        "fees": _floats(fees),
        "reason": list(reason),
    }
    rec._orders.clear()
    return [("orders", columns)]


def _order_events_columns(rec: Recorder) -> list[tuple[str, dict[str, Any]]]:
    """The ``order_events`` rows buffered, as columns; the buffer emptied."""
    if not rec._order_events:
        return []
    oid, ts, sym, event, venue, qty, price, reason = _transpose(rec._order_events, 8)
    columns = {
        "order_id": _ints(oid), "ts": rec._ts(ts),
        "symbol": rec._names(rec._symbols, sym),
        "event": list(event), "venue": pa.array(venue, pa.string()),
        "quantity": pa.array(qty, pa.float64()),
        "price": pa.array(price, pa.float64()), "reason": list(reason),
    }
    rec._order_events.clear()
    return [("order_events", columns)]


def _routes_columns(rec: Recorder) -> list[tuple[str, dict[str, Any]]]:
    """The ``routing_decisions`` rows buffered, as columns; the buffer emptied."""
    if not rec._routes:
        return []
    orders, ts, sym, venue, candidates, qty, reason, elapsed = _transpose(rec._routes, 8)
    oid = list(map(_ORDER_ID, orders))
    columns = {
        "order_id": _ints(oid),
        "ts": rec._ts(ts),
        "symbol": rec._names(rec._symbols, sym),
        "venue": list(venue),
        **_candidate_columns(candidates),
        "quantity": _floats(qty),
        "reason": list(reason),
        "elapsed_ns": _ints(elapsed),
    }
    rec._routes.clear()
    return [("routing_decisions", columns)]


def _fills_columns(rec: Recorder) -> list[tuple[str, dict[str, Any]]]:
    """The ``fills`` rows buffered, as columns; the buffer emptied."""
    if not rec._fills:
        return []
    (fill_id, oid, ts, sym, venue, qty, price, fee, ref, liquidity, cash, position,
     realized) = _transpose(rec._fills, 13)
    columns = {
        "fill_id": _ints(fill_id),
        "order_id": _ints(oid),
        "ts": rec._ts(ts),
        "symbol": rec._names(rec._symbols, sym),
        "venue": list(venue),
        "quantity": _floats(qty),
        "price": _floats(price),
        "fee": _floats(fee),
        "ref_price": _floats(ref),
        "cash_after": _floats(cash),
        "position_after": _floats(position),
        "realized_pnl": _floats(realized),
        "liquidity": list(liquidity),
    }
    rec._fills.clear()
    return [("fills", columns)]



def _signals_columns(rec: Recorder) -> list[tuple[str, dict[str, Any]]]:
    """The ``signals`` rows given one by one, as columns; the buffer emptied."""
    if not rec._signals:
        return []
    ts, sym, agent, sig = _transpose(rec._signals, 4)
    side, confidence, target, reason = _fields(sig, _SIGNAL_ROW)
    signals = {
        "ts": rec._ts(ts), "symbol": rec._names(rec._symbols, sym),
        "agent": rec._names(rec._agents, agent),
        "side": rec._sides(side),
        "confidence": _floats(confidence),
        "target": pa.array(target, type=pa.float64()),
        "reason": pa.array(reason, type=pa.string()),
    }
    rec._signals.clear()
    return [("signals", signals)]


def _decisions_columns(rec: Recorder) -> list[tuple[str, dict[str, Any]]]:
    """The ``decisions`` rows given one by one and their ``votes``, as columns (the vote
    counts added up); the buffer emptied."""
    if not rec._decisions:
        return []
    ids, ts, sym, side, conf, target, agents, votes, weights, rule, agree = (
        _transpose(rec._decisions, 11))
    decisions = {
        "decision_id": _ints(ids),
        "ts": rec._ts(ts),
        "symbol": rec._names(rec._symbols, sym),
        "side": rec._sides(side),
        "confidence": _floats(conf),
        "target": pa.array(target, type=pa.float64()),
        "method": rec._names(np.array([rec._method]), [0] * len(ids)),
        "rule": pa.array(rule, type=pa.string()),
        "agreement": _floats(agree),
    }
    # Flattened with chain (no tuple per vote: millions of them on long runs).
    vote_signals = list(chain.from_iterable(votes))
    per_decision = [len(v) for v in votes]
    vote_agents = list(chain.from_iterable(agents))
    vote_sides = [HOLD if s is None else s.side for s in vote_signals]
    rec._count_votes(sym, side, per_decision, vote_agents, vote_sides)
    votes_columns = {
        "decision_id": np.repeat(_ints(ids), per_decision),
        "agent": rec._names(rec._agents, vote_agents),
        "side": rec._sides(vote_sides),
        "confidence": _floats([0.0 if s is None else s.confidence
                               for s in vote_signals]),
        "weight": _floats(list(chain.from_iterable(weights))),
    }
    rec._decisions.clear()
    return [("decisions", decisions), ("votes", votes_columns)]


ORDER_ROWS: Group = ((("orders",), _orders_columns), (("order_events",), _order_events_columns),
                     (("routing_decisions",), _routes_columns), (("fills",), _fills_columns))
VOTE_ROWS: Group = ((("signals",), _signals_columns),
                    (("decisions", "votes"), _decisions_columns))
