"""Backtest-live parity: a session and its replay (``quorum.parity``), diffed stage by stage.

Reads the store only: two runs of one store, the session (``live``) and the backtest of
the bars it stored (``model``), plus what a venue session keeps beside its rows
(``venue_orders``, ``venue_fills``, ``venue_funding``, ``live_resumes``,
``live_risk_trips``, ``reconciliations``: each used when present).

Stages and how rows are matched:

* signals by (ts, symbol, agent); decisions by (ts, symbol, n-th of them);
* orders by (ts, symbol, role, n-th of them): what was asked (venue, type, quantity,
  prices) and, when one side was denied before any venue, the status;
* fills per matched order: quantity filled, average price, fee rate, and timing (the
  venue's latency, fill time minus the time the order was sent, against the model's);
* funding by (ts, symbol); equity by ts, one divergence per span of unequal rows.

Each divergence gets one cause, the most specific the store supports:

* ``partial_fill``: the venue filled less than asked and ended the rest (its leg and
  message in ``venue_orders``); ``venue_rejection``: the venue refused the order;
  ``routing``: the order went to another venue because the live router fell back
  (``routing_decisions.reason``);
* ``latency``: the venue's latency exceeds the model's by more than the tolerance;
* ``price`` / ``fee`` / ``funding_rate``: the venue's own record of the fill (or payment)
  is what was booked, and it differs from the model's;
* ``restart``: at or after the last bar stored before a restart (``live_resumes``);
* ``lifecycle``: after a kill switch or circuit breaker tripped live (``live_risk_trips``);
* ``reconciliation``: a position adopted from the venue (an ``adjustment`` fill);
* ``carried``: follows from an earlier divergence (the position or equity an order was
  sized from already differed, its decision differed, an equity span after a fill);
* ``unexplained``: the store names no reason. In a paper session every divergence is
  (its fills are the model's own): parity there is exact or a bug.

Floats compare to ``REL`` relative (the ledger's tolerance), so representation noise is
no divergence.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np

from reports.parity_costs import shortfall, slippage_and_calibration
from sim.config import parse_duration

REL = 1e-9
CAUSES = ("partial_fill", "venue_rejection", "routing", "latency", "price", "fee", "funding_rate",
          "restart", "lifecycle", "reconciliation", "carried", "unexplained")
STAGES = ("signals", "decisions", "orders", "fills", "funding", "equity")
ROOT_STAGES = ("orders", "fills", "funding")  # where an equity difference can start


@dataclass(frozen=True, slots=True)
class Divergence:
    stage: str
    ts: int  # event time (ns) of the row: the bar it belongs to
    symbol: str
    key: str  # which row: agent, order, n-th decision
    field: str  # what differs ("missing live", "quantity", "price", ...)
    live: Any
    model: Any
    cause: str
    detail: str

    @property
    def explained(self) -> bool:
        return self.cause != "unexplained"


@dataclass
class Parity:
    live_run: str
    model_run: str
    mode: str
    divergences: list[Divergence]
    counts: dict[str, dict[str, int]]  # stage -> cause -> n
    equity: dict[str, tuple[np.ndarray, np.ndarray]]  # "live"/"model" -> (ts, equity)
    shortfall: dict[str, dict[str, float]]  # "live"/"model" -> cash, bps
    slippage: list[dict[str, Any]]  # per venue: the model's price error on live fills
    calibration: list[dict[str, Any]]  # per venue: suggested settings
    dispatch_ms: float | None  # median: order's bar time -> sent to the venue
    fill_errors: dict[str, list[float]] = field(default_factory=dict)  # venue -> bps per fill
    notes: list[str] = field(default_factory=list)

    @property
    def unexplained(self) -> list[Divergence]:
        return [d for d in self.divergences if not d.explained]


def _close(a: float | None, b: float | None, rel: float = REL) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-12) or abs(a - b) < 1e-12


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables"
        " WHERE table_schema = current_schema()").fetchall()}


def _rows(con: duckdb.DuckDBPyConnection, sql: str, run_id: str) -> list[dict[str, Any]]:
    rel = con.execute(sql, [run_id])
    names = [d[0] for d in rel.description]
    return [dict(zip(names, r, strict=True)) for r in rel.fetchall()]


def _numbered(rows: list[dict[str, Any]], key: tuple[str, ...]) -> dict[tuple, dict[str, Any]]:
    """Rows keyed by ``key`` plus the n-th occurrence of that key (rows in stored order)."""
    seen: dict[tuple, int] = defaultdict(int)
    out = {}
    for row in rows:
        k = tuple(row[c] for c in key)
        out[(*k, seen[k])] = row
        seen[k] += 1
    return out


class _Context:
    """What the store says about the session beyond its rows, and the diff so far."""

    def __init__(self, con: duckdb.DuckDBPyConnection, live: str, mode: str) -> None:
        tables = _tables(con)
        self.mode = mode
        self.restart_from: int | None = None
        if "live_resumes" in tables:
            (resumed,) = con.execute("SELECT min(resumed_ns) FROM live_resumes WHERE run_id = ?",
                                     [live]).fetchone() or (None,)
            if resumed is not None:
                (last,) = con.execute(
                    "SELECT max(epoch_ns(ts)) FROM bars WHERE run_id = ? AND epoch_ns(ts) < ?",
                    [live, resumed]).fetchone() or (None,)
                self.restart_from = int(last if last is not None else resumed)
        self.interval_ns = 0  # a live bar is taken once closed: one interval after its ts
        if "live_sessions" in tables:
            row = con.execute("SELECT interval FROM live_sessions WHERE run_id = ?",
                              [live]).fetchone()
            if row is not None:
                self.interval_ns = parse_duration(str(row[0]))
        self.trips: list[tuple[int, str]] = []
        if "live_risk_trips" in tables:
            self.trips = [(int(t), str(k)) for t, k in con.execute(
                "SELECT ts, kind FROM live_risk_trips WHERE run_id = ? ORDER BY ts",
                [live]).fetchall()]
        self.legs: dict[int, list[dict[str, Any]]] = defaultdict(list)
        if "venue_orders" in tables:
            for row in _rows(con, "SELECT order_id, leg, status, size, filled, message, "
                             "sent_ns FROM venue_orders WHERE run_id = ? ORDER BY order_id, "
                             "leg", live):
                self.legs[row["order_id"]].append(row)
        self.venue_fills: dict[int, list[dict[str, Any]]] = defaultdict(list)
        if "venue_fills" in tables:
            for row in _rows(con, "SELECT order_id, quantity, price, fee, time_ms FROM "
                             "venue_fills WHERE run_id = ? ORDER BY tid", live):
                self.venue_fills[row["order_id"]].append(row)
        self.venue_funding: dict[tuple[str, int], dict[str, Any]] = {}
        if "venue_funding" in tables:
            for row in _rows(con, "SELECT symbol, time_ms, usdc, szi, rate FROM venue_funding"
                             " WHERE run_id = ?", live):
                self.venue_funding[(row["symbol"], row["time_ms"] * 1_000_000)] = row
        self.roots: list[Divergence] = []  # explained or not, the first of their chain

    def context_cause(self, ts: int) -> tuple[str, str] | None:
        """A restart before the bar at ``ts``, or a trip (wall time) before it was taken
        (its close), if any."""
        if self.restart_from is not None and ts >= self.restart_from:
            return "restart", ("at or after the last bar stored before the session was "
                               "restarted: the bars it was down for are not in the run, and "
                               "its state was rebuilt from the venue")
        for t, kind in self.trips:
            if t <= ts + self.interval_ns:
                return "lifecycle", f"{kind.replace('_', ' ')} tripped live at {t}"
        return None

    def earlier_root(self, ts: int) -> Divergence | None:
        """The first order, fill or funding divergence at or before ``ts``."""
        for d in self.roots:
            if d.ts <= ts:
                return d
        return None


def _add(out: list[Divergence], ctx: _Context, stage: str, ts: int, symbol: str, key: str,
         what: str, live: Any, model: Any, cause: str | None, detail: str,
         root: bool = False) -> None:
    if cause is None:
        found = ctx.context_cause(ts)
        if found is not None:
            cause, detail = found[0], f"{detail}; {found[1]}" if detail else found[1]
        else:
            cause = "unexplained"
    d = Divergence(stage, ts, symbol, key, what, live, model, cause, detail)
    out.append(d)
    if root and cause not in ("carried",):
        ctx.roots.append(d)
        ctx.roots.sort(key=lambda x: x.ts)


def _carried(ctx: _Context, ts: int) -> tuple[str | None, str]:
    root = ctx.earlier_root(ts)
    if root is None:
        return None, ""
    return "carried", (f"follows from the {root.stage} divergence at {root.ts} "
                       f"({root.symbol} {root.field}: {root.cause})")


# -- stages ---------------------------------------------------------------------------------
def _signals(con: duckdb.DuckDBPyConnection, live: str, model: str, ctx: _Context,
             out: list[Divergence]) -> None:
    sql = ("SELECT epoch_ns(ts) AS ts, symbol, agent, side, confidence, target FROM signals "
           "WHERE run_id = ? ORDER BY ts, symbol, agent")
    a = _numbered(_rows(con, sql, live), ("ts", "symbol", "agent"))
    b = _numbered(_rows(con, sql, model), ("ts", "symbol", "agent"))
    for k in sorted(set(a) | set(b), key=lambda k: (k[0], k[1], k[2], k[3])):
        x, y = a.get(k), b.get(k)
        what = _row_diff(x, y, ("side",), ("confidence", "target"))
        if what:
            _add(out, ctx, "signals", k[0], k[1], k[2], what, _pick(x, what), _pick(y, what),
                 None, "")


def _row_diff(x: dict[str, Any] | None, y: dict[str, Any] | None, exact: tuple[str, ...],
              floats: tuple[str, ...]) -> str:
    if x is None:
        return "missing live"
    if y is None:
        return "missing in model"
    diff = [c for c in exact if x[c] != y[c]]
    diff += [c for c in floats if not _close(x[c], y[c])]
    return ", ".join(diff)


def _pick(row: dict[str, Any] | None, what: str) -> Any:
    if row is None:
        return None
    cols = [c.strip() for c in what.split(",") if c.strip() in row]
    if not cols:
        return "present"
    return row[cols[0]] if len(cols) == 1 else tuple(row[c] for c in cols)


def _decisions(con: duckdb.DuckDBPyConnection, live: str, model: str, ctx: _Context,
               out: list[Divergence]) -> set[tuple[int, str]]:
    sql = ("SELECT epoch_ns(ts) AS ts, symbol, side, confidence, target, rule FROM decisions "
           "WHERE run_id = ? ORDER BY decision_id")
    a = _numbered(_rows(con, sql, live), ("ts", "symbol"))
    b = _numbered(_rows(con, sql, model), ("ts", "symbol"))
    signal_diff = {(d.ts, d.symbol) for d in out if d.stage == "signals"}
    diverged = set()
    for k in sorted(set(a) | set(b)):
        x, y = a.get(k), b.get(k)
        what = _row_diff(x, y, ("side", "rule"), ("confidence", "target"))
        if what:
            diverged.add((k[0], k[1]))
            cause, detail = ((None, "") if (k[0], k[1]) not in signal_diff else
                             ("carried", "the agents' signals at this bar differ"))
            if cause is not None and ctx.context_cause(k[0]):
                cause = None
            _add(out, ctx, "decisions", k[0], k[1], f"#{k[2]}", what, _pick(x, what),
                 _pick(y, what), cause, detail)
    return diverged


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
        self.orders = _rows(con, _ORDER_SQL, run_id)
        self.fills: dict[int, list[dict[str, Any]]] = defaultdict(list)
        position: dict[str, float] = defaultdict(float)
        self.before: dict[int, float] = {}  # order id -> the symbol's position before it
        fills = _rows(con, _FILL_SQL, run_id)
        self.routing = {r["order_id"]: r["reason"] or "" for r in _rows(
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
        return _numbered(self.orders, ("ts", "symbol", "role"))


def _filled(fills: list[dict[str, Any]]) -> tuple[float, float | None, float, int | None]:
    """(signed quantity, average price, fees, first fill time) of an order's fills."""
    q = sum(f["quantity"] for f in fills)
    gross = sum(abs(f["quantity"]) for f in fills)
    px = sum(abs(f["quantity"]) * f["price"] for f in fills) / gross if gross else None
    first = min((f["ts"] for f in fills), default=None)
    return q, px, sum(f["fee"] for f in fills), first


def _orders_and_fills(con: duckdb.DuckDBPyConnection, live: str, model: str, ctx: _Context,
                      out: list[Divergence], decisions: set[tuple[int, str]],
                      latency_tolerance_ms: float) -> list[dict[str, Any]]:
    """Both stages at once, in time order (a fill's divergence carries into later orders).
    Returns the matched filled pairs (for the slippage error and calibration)."""
    A, B = _Book(con, live), _Book(con, model)
    a, b = A.keyed(), B.keyed()
    for adj in A.adjustments:
        _add(out, ctx, "fills", adj["ts"], adj["symbol"], f"order {adj['order_id']}",
             "adjustment", adj["quantity"], None, "reconciliation",
             "a position adopted from the venue (reconciliation)", root=True)
    pairs = []
    for k in sorted(set(a) | set(b), key=lambda k: (k[0], k[1], k[2], k[3])):
        x, y = a.get(k), b.get(k)
        ts, symbol = k[0], k[1]
        name = f"{k[2]} order {x['order_id'] if x else '-'}/{y['order_id'] if y else '-'}"
        what = _row_diff(x, y, ("venue", "order_type", "reduce_only"),
                         ("quantity", "limit_price", "stop_price"))
        denied = [r for r in (x, y) if r is not None and r["status"] == "denied"]
        if not what and denied and x["status"] != y["status"]:  # type: ignore[index]
            what = "status"
        if what:
            cause, detail = _order_cause(ctx, A, B, x, y, decisions)
            _add(out, ctx, "orders", ts, symbol, name, what, _pick(x, what), _pick(y, what),
                 cause, detail, root=True)
            if x is None or y is None or "status" in what:
                continue
        if x is None or y is None or x["status"] == "denied":
            continue
        pair = _fills(ctx, A, B, x, y, ts, symbol, name, out, latency_tolerance_ms,
                      order_diverged=bool(what))
        if pair is not None:
            pairs.append(pair)
    return pairs


def _order_cause(ctx: _Context, A: _Book, B: _Book, x: dict[str, Any] | None,
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
    if not _close(pa_, pb, 1e-6) or not _close(ea, eb, 1e-6):
        cause, detail = _carried(ctx, row["ts"])
        state = (f"sized from position {pa_:.10g} live vs {pb:.10g} modelled, equity "
                 f"{_g(ea)} vs {_g(eb)}")
        return cause, f"{state}; {detail}" if detail else state
    return None, ""


def _g(v: float | None) -> str:
    return "-" if v is None else f"{v:.10g}"


def _fills(ctx: _Context, A: _Book, B: _Book, x: dict[str, Any], y: dict[str, Any], ts: int,
           symbol: str, name: str, out: list[Divergence], latency_tolerance_ms: float,
           order_diverged: bool) -> dict[str, Any] | None:
    qa, pxa, fa, ta = _filled(A.fills[x["order_id"]])
    qb, pxb, fb, tb = _filled(B.fills[y["order_id"]])
    legs = ctx.legs.get(x["order_id"], [])
    venue_fills = ctx.venue_fills.get(x["order_id"], [])
    if not _close(qa, qb, 1e-9) or (x["status"] != y["status"] and not order_diverged):
        cause, detail = None, ""
        ended = [leg for leg in legs if leg["status"] not in ("filled",)]
        if x["status"] == "rejected" and ended:
            cause = "venue_rejection"
            detail = f"the venue refused it: {ended[-1]['message'] or x['reason']}"
        elif ended and abs(qa) < sum(leg["size"] for leg in legs) - 1e-12:
            cause = "partial_fill"
            detail = (f"the venue filled {abs(qa):.10g} of {sum(leg['size'] for leg in legs):.10g}"
                      f" and ended the rest ({ended[-1]['status']}"
                      + (f": {ended[-1]['message']}" if ended[-1]["message"] else "") + ")")
        elif order_diverged:
            cause, detail = "carried", "the order itself differs"
        _add(out, ctx, "fills", ts, symbol, name, "filled quantity" if not _close(qa, qb, 1e-9)
             else "status", qa if not _close(qa, qb, 1e-9) else x["status"],
             qb if not _close(qa, qb, 1e-9) else y["status"], cause, detail, root=True)
    if pxa is None or pxb is None:
        return None
    side = 1.0 if qa > 0 else -1.0
    if not _close(pxa, pxb):
        cause, detail = None, ""
        _, vpx, _, _ = _filled([{"quantity": f["quantity"], "price": f["price"], "fee": 0.0,
                                 "ts": 0} for f in venue_fills])
        if vpx is not None and _close(vpx, pxa):
            cause = "price"
            detail = (f"the venue's price {pxa:.10g} against the model's {pxb:.10g}: "
                      f"{side * (pxa / pxb - 1) * 1e4:+.3g} bps for the account")
        _add(out, ctx, "fills", ts, symbol, name, "price", pxa, pxb, cause, detail, root=True)
    rate_a = fa / (abs(qa) * pxa) if qa else 0.0
    rate_b = fb / (abs(qb) * pxb) if qb else 0.0
    if not _close(rate_a, rate_b, 1e-6):
        cause, detail = None, ""
        if venue_fills and _close(sum(f["fee"] for f in venue_fills), fa, 1e-6):
            cause = "fee"
            detail = (f"the venue charged {rate_a * 1e4:.4g} bps, the model "
                      f"{rate_b * 1e4:.4g} bps")
        _add(out, ctx, "fills", ts, symbol, name, "fee rate", rate_a, rate_b, cause, detail,
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
        _add(out, ctx, "fills", ts, symbol, name, "timing", live_lat, model_lat, cause,
             detail, root=True)
    return {"venue": x["venue"], "order_type": x["order_type"], "side": side,
            "ref_price": x["ref_price"], "live_price": pxa,
            "model_price": pxb, "live_latency_ms": (ta - sent) / 1e6
            if sent is not None and ta is not None else None,
            "dispatch_ms": (sent - x["ts"]) / 1e6 if sent is not None else None}


def _funding(con: duckdb.DuckDBPyConnection, live: str, model: str, ctx: _Context,
             out: list[Divergence]) -> None:
    sql = ("SELECT epoch_ns(ts) AS ts, symbol, position, rate, payment FROM funding "
           "WHERE run_id = ? ORDER BY ts, symbol")
    a = _numbered(_rows(con, sql, live), ("ts", "symbol"))
    b = _numbered(_rows(con, sql, model), ("ts", "symbol"))
    for k in sorted(set(a) | set(b)):
        x, y = a.get(k), b.get(k)
        what = _row_diff(x, y, (), ("payment",))
        if not what:
            continue
        cause, detail = None, ""
        venue = ctx.venue_funding.get((k[1], k[0]))
        if x is not None and y is not None and not _close(x["position"], y["position"], 1e-6):
            cause, detail = _carried(ctx, k[0])
            detail = f"position {x['position']:.10g} live vs {y['position']:.10g}; {detail}"
        elif venue is not None:
            cause = "funding_rate"
            detail = (f"the venue charged rate {venue['rate']:.6g}; the model "
                      + ("none at this time" if y is None else f"{y['rate']:.6g}"))
        _add(out, ctx, "funding", k[0], k[1], "", what, _pick(x, "payment"),
             _pick(y, "payment"), cause, detail, root=True)


def _equity(con: duckdb.DuckDBPyConnection, live: str, model: str, ctx: _Context,
            out: list[Divergence]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    curves = {}
    for name, run in (("live", live), ("model", model)):
        got = con.execute("SELECT epoch_ns(ts), equity FROM equity WHERE run_id = ? ORDER BY ts",
                          [run]).fetchall()
        curves[name] = (np.array([r[0] for r in got], np.int64),
                        np.array([r[1] for r in got], np.float64))
    a = dict(zip(curves["live"][0].tolist(), curves["live"][1].tolist(), strict=True))
    b = dict(zip(curves["model"][0].tolist(), curves["model"][1].tolist(), strict=True))
    span: list[int] = []

    def close_span() -> None:
        if not span:
            return
        worst = max(span, key=lambda t: abs(a.get(t, math.nan) - b.get(t, math.nan))
                    if t in a and t in b else math.inf)
        first = span[0]
        cause, detail = _carried(ctx, first)
        if cause is not None and ctx.context_cause(first) is not None:
            cause = None
        end = f"{len(span)} equity row(s) from {first} to {span[-1]}"
        _add(out, ctx, "equity", first, "", f"{first}..{span[-1]}",
             "equity" if worst in a and worst in b else "missing rows",
             a.get(worst), b.get(worst), cause, f"{end}; {detail}" if detail else end)
        span.clear()

    for t in sorted(set(a) | set(b)):
        if t in a and t in b and _close(a[t], b[t]):
            close_span()
        else:
            span.append(t)
    close_span()
    return curves


def parity(con: duckdb.DuckDBPyConnection, live: str, model: str, mode: str, *,
           latency_tolerance_ms: float = 100.0) -> Parity:
    """Diff session ``live`` against its replay ``model`` (runs of the store ``con``)."""
    ctx = _Context(con, live, mode)
    out: list[Divergence] = []
    _signals(con, live, model, ctx, out)
    decisions = _decisions(con, live, model, ctx, out)
    pairs = _orders_and_fills(con, live, model, ctx, out, decisions, latency_tolerance_ms)
    _funding(con, live, model, ctx, out)
    curves = _equity(con, live, model, ctx, out)
    counts: dict[str, dict[str, int]] = {s: {} for s in STAGES}
    for d in out:
        counts[d.stage][d.cause] = counts[d.stage].get(d.cause, 0) + 1
    slippage, calibration, errors = slippage_and_calibration(con, live, pairs, mode)
    dispatch = [p["dispatch_ms"] for p in pairs if p["dispatch_ms"] is not None]
    notes = []
    if mode == "paper":
        notes.append("paper session: its fills are the scenario's simulated venues, so every "
                     "divergence is unexplained by construction (parity there is exact)")
    return Parity(live, model, mode, out, counts, curves,
                  {"live": shortfall(con, live), "model": shortfall(con, model)},
                  slippage, calibration, float(np.median(dispatch)) if dispatch else None,
                  errors, notes)
