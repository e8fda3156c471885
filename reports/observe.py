"""What a run's observers stored (sim.monitor): the health timeline, the alerts, the
logs, and tool feedback (per external service and venue: calls, success rate, latency
percentiles and their trend). Reads the store only; a store written before these
tables existed has none of them, and reads as empty."""

from __future__ import annotations

from typing import Any

import duckdb

from sim.monitor.logs import LEVELS


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    try:
        cur = con.execute(sql, params)
    except duckdb.CatalogException:  # a store from before the table existed
        return []
    names = [c[0] for c in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def health_timeline(con: duckdb.DuckDBPyConnection, run_id: str) -> list[dict[str, Any]]:
    return _rows(con, "SELECT ts, component, previous, state, reason FROM health"
                      " WHERE run_id = ? ORDER BY seq, ts", [run_id])


def alerts(con: duckdb.DuckDBPyConnection, run_id: str, severity: str | None = None
           ) -> list[dict[str, Any]]:
    where = " AND severity = ?" if severity else ""
    return _rows(con, "SELECT alert_id, ts, severity, source, kind, message, acknowledged"
                      f" FROM alerts WHERE run_id = ?{where} ORDER BY alert_id",
                 [run_id, severity] if severity else [run_id])


def logs(con: duckdb.DuckDBPyConnection, run_id: str, *, level: str | None = None,
         agent: str | None = None, category: str | None = None, since: Any = None,
         grep: str | None = None) -> list[dict[str, Any]]:
    """The run's log records, oldest first, filtered: ``level`` and above."""
    sql = ("SELECT ts, level, category, agent, message, data FROM logs WHERE run_id = ?")
    params: list[Any] = [run_id]
    if level is not None:
        sql += " AND level IN (SELECT unnest(?))"
        params.append([name for name, rank in LEVELS.items() if rank >= LEVELS[level]])
    if agent is not None:
        sql += " AND agent = ?"
        params.append(agent)
    if category is not None:
        sql += " AND category = ?"
        params.append(category)
    if since is not None:
        sql += " AND ts >= ?"
        params.append(since)
    if grep is not None:
        sql += " AND contains(lower(message), lower(?))"
        params.append(grep)
    return _rows(con, sql + " ORDER BY seq, ts", params)


_TREND = """
    CASE WHEN count(*) < 6 THEN 'too few calls'
         WHEN median(latency_ms) FILTER (WHERE third = 3)
              > 1.2 * median(latency_ms) FILTER (WHERE third = 1) THEN 'slower'
         WHEN median(latency_ms) FILTER (WHERE third = 3)
              < 0.8 * median(latency_ms) FILTER (WHERE third = 1) THEN 'faster'
         ELSE 'steady' END
    || CASE WHEN count(*) >= 6 AND avg(failed::INT) FILTER (WHERE third = 3)
                 > avg(failed::INT) FILTER (WHERE third = 1) + 0.1
            THEN ', failing more' ELSE '' END"""


def sent_after_ms(con: duckdb.DuckDBPyConnection, run_id: str) -> float:
    """How long after its stamp a run's order leaves for its venue (ms): a session on a
    real venue stamps an order with its bar's time (the open) and sends it once the bar
    has closed, one interval later (``live_sessions.interval``); 0 otherwise."""
    from sim.config_base import parse_duration

    try:
        row = con.execute("SELECT s.interval FROM live_sessions s JOIN runs r USING (run_id)"
                          " WHERE run_id = ? AND r.mode = 'live'", [run_id]).fetchone()
    except duckdb.CatalogException:  # no session was ever stored here
        return 0.0
    return parse_duration(str(row[0])) / 1e6 if row is not None else 0.0


def tool_feedback(con: duckdb.DuckDBPyConnection, run_id: str) -> list[dict[str, Any]]:
    """Per external service (an agent's ``agent_calls``) and per venue (its orders:
    sent to arrived, refusals and timeouts): calls, success rate, latency p50/p99 (ms)
    and the trend from the first third of the run's calls to the last."""
    agents = _rows(con, f"""
        WITH c AS (SELECT agent, elapsed_ms AS latency_ms, error IS NOT NULL AS failed,
                          ntile(3) OVER (PARTITION BY agent ORDER BY ts) AS third
                   FROM agent_calls WHERE run_id = ?)
        SELECT 'agent:' || agent AS tool, count(*) AS calls,
               round(1 - avg(failed::INT), 4) AS success_rate,
               round(quantile_cont(latency_ms, 0.5), 3) AS p50_ms,
               round(quantile_cont(latency_ms, 0.99), 3) AS p99_ms, {_TREND} AS trend
        FROM c GROUP BY agent ORDER BY agent""", [run_id])
    venues = _rows(con, f"""
        WITH s AS (SELECT order_id, min(ts) AS sent FROM order_events
                   WHERE run_id = ? AND event = 'submitted' GROUP BY order_id),
        e AS (SELECT e.venue, e.ts, e.event <> 'arrived' AS failed,
                     date_diff('microsecond', s.sent, e.ts) / 1000.0 - ? AS latency_ms
              FROM order_events e JOIN s USING (order_id)
              WHERE e.run_id = ? AND e.venue IS NOT NULL
                AND e.event IN ('arrived', 'venue_rejected', 'venue_expired')),
        c AS (SELECT *, ntile(3) OVER (PARTITION BY venue ORDER BY ts) AS third FROM e)
        SELECT 'venue:' || venue AS tool, count(*) AS calls,
               round(1 - avg(failed::INT), 4) AS success_rate,
               round(quantile_cont(latency_ms, 0.5), 3) AS p50_ms,
               round(quantile_cont(latency_ms, 0.99), 3) AS p99_ms, {_TREND} AS trend
        FROM c GROUP BY venue ORDER BY venue""", [run_id, sent_after_ms(con, run_id), run_id])
    return agents + venues
