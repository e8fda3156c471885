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
* ``lifecycle``: after a kill switch or circuit breaker tripped live (``live_risk_trips``),
  or a lifecycle command the session applied and its replay did not (``agent_events``:
  "sma paused by operator at T (reason)"; a signal only by its own agent's commands);
* ``reconciliation``: a position adopted from the venue (an ``adjustment`` fill);
* ``carried``: follows from an earlier divergence (the position or equity an order was
  sized from already differed, its decision differed, an equity span after a fill);
* ``unexplained``: the store names no reason. In a paper session every divergence is
  (its fills are the model's own): parity there is exact or a bug.

Floats compare to ``REL`` relative (the ledger's tolerance), so representation noise is
no divergence. Rows, matching and the context causes are read from:
``reports.parity_rows``; the orders and fills stages: ``reports.parity_orders``; the
shortfall, slippage error and calibration: ``reports.parity_costs``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np

from reports.parity_costs import shortfall, slippage_and_calibration
from reports.parity_orders import orders_and_fills
from reports.parity_rows import (
    CAUSES,
    REL,
    STAGES,
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

__all__ = ["CAUSES", "REL", "STAGES", "Divergence", "Parity", "parity"]


@dataclass
class Parity:
    """A session against its replay: every divergence, and what the fills say."""

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


# -- stages ---------------------------------------------------------------------------------
def _signals(con: duckdb.DuckDBPyConnection, live: str, model: str, ctx: Context,
             out: list[Divergence]) -> None:
    sql = ("SELECT epoch_ns(ts) AS ts, symbol, agent, side, confidence, target FROM signals "
           "WHERE run_id = ? ORDER BY ts, symbol, agent")
    a = numbered(rows(con, sql, live), ("ts", "symbol", "agent"))
    b = numbered(rows(con, sql, model), ("ts", "symbol", "agent"))
    for k in sorted(set(a) | set(b), key=lambda k: (k[0], k[1], k[2], k[3])):
        x, y = a.get(k), b.get(k)
        what = row_diff(x, y, ("side",), ("confidence", "target"))
        if what:
            add(out, ctx, "signals", k[0], k[1], k[2], what, pick(x, what), pick(y, what),
                None, "", agent=k[2])


def _decisions(con: duckdb.DuckDBPyConnection, live: str, model: str, ctx: Context,
               out: list[Divergence]) -> set[tuple[int, str]]:
    sql = ("SELECT epoch_ns(ts) AS ts, symbol, side, confidence, target, rule FROM decisions "
           "WHERE run_id = ? ORDER BY decision_id")
    a = numbered(rows(con, sql, live), ("ts", "symbol"))
    b = numbered(rows(con, sql, model), ("ts", "symbol"))
    signal_diff = {(d.ts, d.symbol) for d in out if d.stage == "signals"}
    diverged = set()
    for k in sorted(set(a) | set(b)):
        x, y = a.get(k), b.get(k)
        what = row_diff(x, y, ("side", "rule"), ("confidence", "target"))
        if what:
            diverged.add((k[0], k[1]))
            cause, detail = ((None, "") if (k[0], k[1]) not in signal_diff else
                             ("carried", "the agents' signals at this bar differ"))
            if cause is not None and ctx.context_cause(k[0]):
                cause = None
            add(out, ctx, "decisions", k[0], k[1], f"#{k[2]}", what, pick(x, what),
                pick(y, what), cause, detail)
    return diverged


def _funding(con: duckdb.DuckDBPyConnection, live: str, model: str, ctx: Context,
             out: list[Divergence]) -> None:
    sql = ("SELECT epoch_ns(ts) AS ts, symbol, position, rate, payment FROM funding "
           "WHERE run_id = ? ORDER BY ts, symbol")
    a = numbered(rows(con, sql, live), ("ts", "symbol"))
    b = numbered(rows(con, sql, model), ("ts", "symbol"))
    floor = floors(a.values(), b.values(), ("payment",))
    for k in sorted(set(a) | set(b)):
        x, y = a.get(k), b.get(k)
        what = row_diff(x, y, (), ("payment",), floor)
        if not what:
            continue
        cause, detail = None, ""
        venue = ctx.venue_funding.get((k[1], k[0]))
        if x is not None and y is not None and not close(x["position"], y["position"], 1e-6):
            cause, detail = carried(ctx, k[0])
            detail = f"position {x['position']:.10g} live vs {y['position']:.10g}; {detail}"
        elif venue is not None:
            cause = "funding_rate"
            detail = (f"the venue charged rate {venue['rate']:.6g}; the model "
                      + ("none at this time" if y is None else f"{y['rate']:.6g}"))
        add(out, ctx, "funding", k[0], k[1], "", what, pick(x, "payment"),
            pick(y, "payment"), cause, detail, root=True)


def _equity(con: duckdb.DuckDBPyConnection, live: str, model: str, ctx: Context,
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
        cause, detail = carried(ctx, first)
        if cause is not None and ctx.context_cause(first) is not None:
            cause = None
        end = f"{len(span)} equity row(s) from {first} to {span[-1]}"
        add(out, ctx, "equity", first, "", f"{first}..{span[-1]}",
            "equity" if worst in a and worst in b else "missing rows",
            a.get(worst), b.get(worst), cause, f"{end}; {detail}" if detail else end)
        span.clear()

    floor = floor_of(a.values(), b.values())
    for t in sorted(set(a) | set(b)):
        if t in a and t in b and close(a[t], b[t], REL, floor):
            close_span()
        else:
            span.append(t)
    close_span()
    return curves


def parity(con: duckdb.DuckDBPyConnection, live: str, model: str, mode: str, *,
           latency_tolerance_ms: float = 100.0) -> Parity:
    """Diff session ``live`` against its replay ``model`` (runs of the store ``con``)."""
    ctx = Context(con, live, mode, model)
    out: list[Divergence] = []
    _signals(con, live, model, ctx, out)
    decisions = _decisions(con, live, model, ctx, out)
    pairs = orders_and_fills(con, live, model, ctx, out, decisions, latency_tolerance_ms)
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
                     "divergence but those a lifecycle command sent to the session explains "
                     "is unexplained by construction (parity there is exact)")
    return Parity(live, model, mode, out, counts, curves,
                  {"live": shortfall(con, live), "model": shortfall(con, model)},
                  slippage, calibration, float(np.median(dispatch)) if dispatch else None,
                  errors, notes)
