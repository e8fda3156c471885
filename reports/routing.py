"""Routing statistics of one run, read from the store (``quorum show RUN --routing``)."""

from __future__ import annotations

from typing import Any

_BY_VENUE_SYMBOL = """
SELECT r.venue, r.symbol, count(*) AS routed,
       count(f.fill_id) AS filled,
       round(count(f.fill_id) / count(*), 4) AS success_rate,
       round(avg(r.elapsed_ns) / 1e3, 2) AS mean_route_us,
       round(quantile_cont(r.elapsed_ns, 0.99) / 1e3, 2) AS p99_route_us
FROM routing_decisions r
LEFT JOIN fills f
  ON f.run_id = r.run_id AND f.order_id = r.order_id AND f.venue = r.venue
WHERE r.run_id = ?
GROUP BY ALL ORDER BY r.venue, r.symbol
"""

_TOTAL = """
SELECT
  (SELECT count(*) FROM orders WHERE run_id = $1) AS orders,
  (SELECT count(DISTINCT order_id) FROM routing_decisions WHERE run_id = $1) AS routed_orders,
  (SELECT count(*) FROM orders WHERE run_id = $1 AND status = 'filled') AS filled_orders,
  (SELECT count(*) FROM risk_events WHERE run_id = $1 AND check_name = 'route') AS unroutable,
  (SELECT round(avg(elapsed_ns) / 1e3, 2) FROM routing_decisions WHERE run_id = $1)
    AS mean_route_us,
  (SELECT round(quantile_cont(elapsed_ns, 0.99) / 1e3, 2) FROM routing_decisions
    WHERE run_id = $1) AS p99_route_us
"""


def routing_by_venue(con: Any, run_id: str) -> list[dict[str, Any]]:
    """Per venue and symbol: legs routed, legs filled, success rate, routing time (µs).

    A leg is one routing row (an order split across venues has one per venue)."""
    rel = con.execute(_BY_VENUE_SYMBOL, [run_id])
    names = [d[0] for d in rel.description]
    return [dict(zip(names, row, strict=True)) for row in rel.fetchall()]


def routing_totals(con: Any, run_id: str) -> dict[str, Any]:
    """Orders, how many were routed and filled (success rate = filled / routed), how many
    could not be routed, and the routing time."""
    rel = con.execute(_TOTAL, [run_id])
    names = [d[0] for d in rel.description]
    out = dict(zip(names, rel.fetchone(), strict=True))
    routed = out["routed_orders"]
    out["success_rate"] = round(out["filled_orders"] / routed, 4) if routed else None
    return out
