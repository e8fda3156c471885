"""The orders and fills stages of a parity diff (``reports.parity``), in one pass in time
order: a fill's divergence carries into the orders sized after it.

Orders match by (ts, symbol, role, n-th of them): what was asked (venue, type,
quantity, prices) and, when one side was denied before any venue, the status. Fills
compare per matched order: quantity filled, average price, fee rate, and timing (the
venue's latency, fill time minus the time the order was sent, against the model's,
submission to arrival)."""

from __future__ import annotations

import bisect
from collections import defaultdict
from typing import Any

import duckdb
import numpy as np

from reports.parity_rows import (
    REL,
    Context,
    Divergence,
    add,
    carried,
    close,
    floor_of,
    floors,
    numbered,
    pick,
    row_diff,
    rows,
)

_ORDER_SQL = """
SELECT order_id, epoch_ns(ts) AS ts, epoch_ns(decision_ts) AS decision_ts, symbol, role,
       venue, order_type, quantity, ref_price, limit_price, stop_price, reduce_only, status,
       epoch_ns(arrival_ts) AS arrival_ts,
       filled_quantity, avg_fill_price, fees, reason
FROM orders WHERE run_id = ? ORDER BY order_id
"""
_FILL_SQL = """
SELECT order_id, epoch_ns(ts) AS ts, symbol, venue, quantity, price, fee, liquidity,
       position_after
FROM fills WHERE run_id = ? ORDER BY fill_id
"""


class _Book:
    """One run's orders and fills, with the position each order was sized from."""

    def __init__(self, con: duckdb.DuckDBPyConnection, run_id: str) -> None:
        self.orders = rows(con, _ORDER_SQL, run_id)
        self.fills: dict[int, list[dict[str, Any]]] = defaultdict(list)
        position: dict[str, float] = defaultdict(float)
        self.before: dict[int, float] = {}  # order id -> the symbol's position before it
        fills = rows(con, _FILL_SQL, run_id)
        self.routing = {r["order_id"]: r["reason"] or "" for r in rows(
            con, "SELECT order_id, reason FROM routing_decisions WHERE run_id = ?", run_id)}
        self.adjustments = [f for f in fills if f["liquidity"] == "adjustment"]
        by_order: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for f in fills:
            by_order[f["order_id"]].append(f)
        for o in self.orders:
            self.before[o["order_id"]] = position[o["symbol"]]
            for f in by_order.get(o["order_id"], []):
                position[o["symbol"]] += f["quantity"]
                self.fills[o["order_id"]].append(f)
        eq = con.execute("SELECT epoch_ns(ts), equity FROM equity WHERE run_id = ? ORDER BY ts",
                         [run_id]).fetchnumpy()
        self.eq_ts: list[int] = np.asarray(eq["epoch_ns(ts)"], dtype=np.int64).tolist()
        self.eq: list[float] = np.asarray(eq["equity"], dtype=np.float64).tolist()
        # each symbol's position after each order, in order: (order ts, position)
        self._path: dict[str, tuple[list[int], list[float]]] = defaultdict(lambda: ([], []))
        for o in self.orders:
            times, after = self._path[o["symbol"]]
            times.append(o["ts"])
            after.append(self.before[o["order_id"]] + sum(
                f["quantity"] for f in self.fills.get(o["order_id"], [])))

    def equity_before(self, ts: int) -> float | None:
        i = bisect.bisect_left(self.eq_ts, ts) - 1
        return None if i < 0 else self.eq[i]

    def position_before(self, symbol: str, ts: int) -> float:
        """The symbol's position after every order submitted before ``ts``."""
        times, after = self._path.get(symbol, ([], []))
        i = bisect.bisect_left(times, ts) - 1
        return 0.0 if i < 0 else after[i]

    def keyed(self) -> dict[tuple, dict[str, Any]]:
        return numbered(self.orders, ("ts", "symbol", "role"))


def _filled(fills: list[dict[str, Any]]) -> tuple[float, float | None, float, int | None]:
    """(signed quantity, average price, fees, first fill time) of an order's fills."""
    q = sum(f["quantity"] for f in fills)
    gross = sum(abs(f["quantity"]) for f in fills)
    px = sum(abs(f["quantity"]) * f["price"] for f in fills) / gross if gross else None
    first = min((f["ts"] for f in fills), default=None)
    return q, px, sum(f["fee"] for f in fills), first


def orders_and_fills(con: duckdb.DuckDBPyConnection, live: str, model: str, ctx: Context,
                     out: list[Divergence], decisions: set[tuple[int, str]],
                      latency_tolerance_ms: float) -> list[dict[str, Any]]:
    """Both stages at once, in time order (a fill's divergence carries into later orders).
    Returns the matched filled pairs (for the slippage error and calibration)."""
    A, B = _Book(con, live), _Book(con, model)
    a, b = A.keyed(), B.keyed()
    for adj in A.adjustments:
        # stamped by the wall clock when booked: it counts from the bar being formed then
        # (a live bar is taken at its close, one interval after its ts)
        add(out, ctx, "fills", adj["ts"] - ctx.interval_ns, adj["symbol"],
            f"order {adj['order_id']}", "adjustment", adj["quantity"], None,
            "reconciliation", f"a position adopted from the venue (reconciliation), booked "
            f"at {adj['ts']}", root=True)
    pairs = []
    floor = floors(A.orders, B.orders, ("quantity", "limit_price", "stop_price"))
    fills = [f for book in (A, B) for order in book.fills.values() for f in order]
    floor |= {"filled": floor_of(f["quantity"] for f in fills),
              "price": floor_of(f["price"] for f in fills)}
    for k in sorted(set(a) | set(b), key=lambda k: (k[0], k[1], k[2], k[3])):
        x, y = a.get(k), b.get(k)
        if x is not None and x["role"] == "adjustment":
            continue  # a position adopted from the venue: its fill is the divergence
        ts, symbol = k[0], k[1]
        name = f"{k[2]} order {x['order_id'] if x else '-'}/{y['order_id'] if y else '-'}"
        what = row_diff(x, y, ("venue", "order_type", "reduce_only"),
                        ("quantity", "limit_price", "stop_price"), floor)
        denied = [r for r in (x, y) if r is not None and r["status"] == "denied"]
        if not what and denied and x["status"] != y["status"]:  # type: ignore[index]
            what = "status"
        if what:
            cause, detail = _order_cause(ctx, A, B, x, y, decisions)
            add(out, ctx, "orders", ts, symbol, name, what, pick(x, what), pick(y, what),
                cause, detail, root=True)
            if x is None or y is None or "status" in what:
                continue
        if x is None or y is None or x["status"] == "denied":
            continue
        pair = _fills(ctx, A, B, x, y, ts, symbol, name, out, latency_tolerance_ms,
                      order_diverged=bool(what), floor=floor)
        if pair is not None:
            pairs.append(pair)
    return pairs


def _order_cause(ctx: Context, A: _Book, B: _Book, x: dict[str, Any] | None,
                 y: dict[str, Any] | None,
                 decisions: set[tuple[int, str]]) -> tuple[str | None, str]:
    row = x or y
    assert row is not None
    found = ctx.context_cause(row["ts"])
    if found is not None:
        return found
    if row["decision_ts"] is not None and (row["decision_ts"], row["symbol"]) in decisions:
        return "carried", "its decision differs"
    if x is not None and y is not None and x["venue"] != y["venue"]:
        reason = A.routing.get(x["order_id"], "")
        if reason.startswith("fallback"):
            return "routing", f"the live router fell back: {reason}"
    pa_ = (A.before[x["order_id"]] if x is not None
           else A.position_before(row["symbol"], row["ts"]))
    pb = (B.before[y["order_id"]] if y is not None
          else B.position_before(row["symbol"], row["ts"]))
    ea, eb = A.equity_before(row["ts"]), B.equity_before(row["ts"])
    if not close(pa_, pb, 1e-6) or not close(ea, eb, 1e-6):
        cause, detail = carried(ctx, row["ts"])
        state = (f"sized from position {pa_:.10g} live vs {pb:.10g} modelled, equity "
                 f"{_g(ea)} vs {_g(eb)}")
        return cause, f"{state}; {detail}" if detail else state
    flight = _sized_in_flight(ctx, A, x) if x is not None and y is not None else None
    if flight is not None:
        return "latency", flight
    return None, ""


def _sized_in_flight(ctx: Context, book: _Book, order: dict[str, Any]) -> str | None:
    """Why a live order of a bar was sized differently from the model's when the state
    before the bar agrees: an order of the same bar sent before it was still in flight
    (its fills landed after this one was sent), so the session sized it without them,
    while the model books each fill before it sizes the next order."""
    sent = min((leg["sent_ns"] for leg in ctx.legs.get(order["order_id"], [])), default=None)
    if sent is None:
        return None
    for other in book.orders:
        if other["ts"] != order["ts"] or other["order_id"] >= order["order_id"]:
            continue
        landed = max((f["ts"] for f in book.fills.get(other["order_id"], [])), default=None)
        if landed is not None and landed > sent:
            return (f"sized while order {other['order_id']} of the same bar was in flight "
                    f"live (its last fill landed {(landed - sent) / 1e6:.6g} ms after this "
                    "order was sent); the model books each fill before it sizes the next")
    return None


def _g(v: float | None) -> str:
    return "-" if v is None else f"{v:.10g}"


def _fills(ctx: Context, A: _Book, B: _Book, x: dict[str, Any], y: dict[str, Any], ts: int,
           symbol: str, name: str, out: list[Divergence], latency_tolerance_ms: float,
           order_diverged: bool, floor: dict[str, float]) -> dict[str, Any] | None:
    """The fills of a matched order pair: quantity filled, average price, fee rate and
    timing; ``floor``: the noise floors of quantities filled and prices (``floors``)."""
    qa, pxa, fa, ta = _filled(A.fills[x["order_id"]])
    qb, pxb, fb, tb = _filled(B.fills[y["order_id"]])
    legs = ctx.legs.get(x["order_id"], [])
    venue_fills = ctx.venue_fills.get(x["order_id"], [])
    filled, price = floor["filled"], floor["price"]
    if not close(qa, qb, 1e-9, filled) or (x["status"] != y["status"] and not order_diverged):
        cause, detail = None, ""
        ended = [leg for leg in legs if leg["status"] not in ("filled",)]
        if x["status"] == "rejected" and (ended or (ctx.mode == "live" and x["reason"])):
            # refused by the venue, or by the adapter before sending on the venue's own
            # rules (its minimum order value: ``quorum live: instruments``)
            cause = "venue_rejection"
            why = ended[-1]["message"] if ended and ended[-1]["message"] else x["reason"]
            detail = f"the venue refused it: {why}"
        elif ended and abs(qa) < sum(leg["size"] for leg in legs) - 1e-12:
            cause = "partial_fill"
            detail = (f"the venue filled {abs(qa):.10g} of {sum(leg['size'] for leg in legs):.10g}"
                      f" and ended the rest ({ended[-1]['status']}"
                      + (f": {ended[-1]['message']}" if ended[-1]["message"] else "") + ")")
        elif short := [leg for leg in legs if leg["filled"] < leg["size"]
                       and not close(leg["filled"], leg["size"], 1e-9, 0.0)]:
            # reported filled, for less than asked: a venue that sizes a position by its
            # notional at its own price (Ostium: collateral x leverage / open price)
            cause = "partial_fill"
            detail = "; ".join(
                f"leg {leg['leg']}: the venue filled {leg['filled']:.10g} of "
                f"{leg['size']:.10g} and reported it {leg['status']}" for leg in short)
        elif order_diverged:
            cause, detail = "carried", "the order itself differs"
        differs = not close(qa, qb, 1e-9, filled)
        add(out, ctx, "fills", ts, symbol, name, "filled quantity" if differs else "status",
            qa if differs else x["status"], qb if differs else y["status"], cause, detail,
            root=True)
    if pxa is None or pxb is None:
        return None
    side = 1.0 if qa > 0 else -1.0
    if not close(pxa, pxb, REL, price):
        cause, detail = None, ""
        _, vpx, _, _ = _filled([{"quantity": f["quantity"], "price": f["price"], "fee": 0.0,
                                 "ts": 0} for f in venue_fills])
        if vpx is not None and close(vpx, pxa, REL, price):
            cause = "price"
            detail = (f"the venue's price {pxa:.10g} against the model's {pxb:.10g}: "
                      f"{side * (pxa / pxb - 1) * 1e4:+.3g} bps for the account")
        add(out, ctx, "fills", ts, symbol, name, "price", pxa, pxb, cause, detail, root=True)
    rate_a = fa / (abs(qa) * pxa) if qa else 0.0
    rate_b = fb / (abs(qb) * pxb) if qb else 0.0
    if not close(rate_a, rate_b, 1e-6):
        cause, detail = None, ""
        if venue_fills and close(sum(f["fee"] for f in venue_fills), fa, 1e-6):
            cause = "fee"
            detail = (f"the venue charged {rate_a * 1e4:.4g} bps, the model "
                      f"{rate_b * 1e4:.4g} bps")
        add(out, ctx, "fills", ts, symbol, name, "fee rate", rate_a, rate_b, cause, detail,
            root=True)
    sent = min((leg["sent_ns"] for leg in legs), default=None)
    live_lat = (ta - sent) / 1e6 if sent is not None and ta is not None else \
        (ta - x["ts"]) / 1e6 if ta is not None else None
    # the model's latency is submission -> arrival at the venue (what ``latency_ms``
    # models); on bars its fill then waits for the first open after arrival
    model_lat = ((y["arrival_ts"] - y["ts"]) / 1e6 if y["arrival_ts"] is not None
                 else (tb - y["ts"]) / 1e6 if tb is not None else None)
    if live_lat is not None and model_lat is not None and \
            abs(live_lat - model_lat) > latency_tolerance_ms:
        cause, detail = None, ""
        if sent is not None:
            cause = "latency"
            detail = (f"the venue filled it {live_lat:.6g} ms after it was sent; the model "
                      f"{model_lat:.6g} ms after submission")
        add(out, ctx, "fills", ts, symbol, name, "timing", live_lat, model_lat, cause,
            detail, root=True)
    return {"venue": x["venue"], "order_type": x["order_type"], "side": side,
            "ref_price": x["ref_price"], "live_price": pxa,
            "model_price": pxb, "live_latency_ms": (ta - sent) / 1e6
            if sent is not None and ta is not None else None,
            "dispatch_ms": (sent - x["ts"]) / 1e6 if sent is not None else None}
