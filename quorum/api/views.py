"""Read endpoints about a session's agents and what watches it: agents (state, spec, live
figures), positions, per-agent metrics, alerts and logs (with CSV/JSON-lines export).

In a session the agent set, the figures and the positions come from the session itself
(``Controller``: current to the last bar); otherwise, and for everything else, from the
store, through the ``StoreReader`` (its own cursor, bounded in time). A store written
before a table existed reads as empty, never as an error.

(No ``from __future__ import annotations``: FastAPI reads the handlers' annotations.)
"""

import csv
import io
import json
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import duckdb
from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import AfterValidator, TypeAdapter
from starlette.exceptions import HTTPException

from quorum.api.access import Access, Caller
from quorum.api.control import Controller
from quorum.api.reads import StoreReader
from sim.monitor.config import SEVERITIES
from sim.monitor.logs import LEVELS

_ROWS = TypeAdapter(list[dict[str, Any]])
RunRef = Annotated[str | None, Query(description="run id or a unique prefix (default: the "
                                                 "run being watched, else the latest)")]
Name = Annotated[str | None, Query(max_length=200)]


def _storable(ts: datetime | None) -> datetime | None:
    """The store keeps nanosecond timestamps: 1678..2261 (else a 422 naming the field)."""
    if ts is not None and not 1678 <= ts.year <= 2261:
        raise ValueError("a time between the years 1678 and 2261")
    return ts


Since = Annotated[datetime | None, AfterValidator(_storable),
                  Query(description="ISO time (UTC unless it says): this and later")]
_FIGURES = ("trades", "hit_rate", "win_rate", "shadow_pnl", "apr_30d", "apr_90d",
            "apr_inception", "sharpe")


def _rows(reader: StoreReader, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    try:
        return reader.rows(sql, params)
    except duckdb.CatalogException:  # a store from before the table existed
        return []


def _naive(ts: datetime | None) -> datetime | None:
    """A timestamp as the store keeps them: UTC, no zone."""
    if ts is None or ts.tzinfo is None:
        return ts
    return ts.astimezone(UTC).replace(tzinfo=None)


def agent_views(reader: StoreReader, controller: Controller, run_id: str
                ) -> list[dict[str, Any]]:
    """Every agent of the run: state and spec (the session's own, else the store's
    ``agent_states``), errors, signals and votes stored so far, figures per symbol."""
    live = controller.agents()
    agents: list[dict[str, Any]]
    if live is not None:
        agents = [{"name": a.name, "state": a.state, "kind": a.kind, "params": a.params,
                   "symbols": None if a.symbols is None else list(a.symbols),
                   "errors": a.errors, "slow_bars": a.slow_bars} for a in live]
    else:
        errors = {r["agent"]: r["n"] for r in _rows(
            reader, "select agent, count(*) as n from agent_errors where run_id = ? and "
            "kind in ('exception', 'latency') group by agent", [run_id])}
        agents = []
        for r in _rows(reader, "select agent, state, spec::varchar as spec, since from "
                       "agent_states where run_id = ? order by first_seq", [run_id]):
            spec = json.loads(r["spec"]) if r["spec"] else {}
            agents.append({"name": r["agent"], "state": r["state"],
                           "kind": spec.get("kind", ""), "params": spec.get("params") or {},
                           "symbols": spec.get("symbols"), "since": r["since"],
                           "errors": errors.get(r["agent"], 0), "slow_bars": None})
    counts = {r["agent"]: r for r in _rows(
        reader, "select agent, count(*) as signals from signals where run_id = ? "
        "group by agent", [run_id])}
    votes = {r["agent"]: r["votes"] for r in _rows(
        reader, "select agent, count(*) filter (where side <> 'HOLD') as votes from votes "
        "where run_id = ? group by agent", [run_id])}
    figures: dict[str, list[dict[str, Any]]] = {}
    for f in agent_figures(reader, controller, run_id):
        figures.setdefault(f["agent"], []).append(
            {k: v for k, v in f.items() if k != "agent"})
    for a in agents:
        a["signals"] = counts.get(a["name"], {}).get("signals", 0)
        a["votes"] = votes.get(a["name"], 0)
        a["figures"] = figures.get(a["name"], [])
    return agents


def agent_figures(reader: StoreReader, controller: Controller, run_id: str
                  ) -> list[dict[str, Any]]:
    """Per agent and symbol: the session's figures now, else the last stored
    ``agent_figures`` row, else the run's final ``agent_performance``."""
    live = controller.figures()
    if live:
        return [asdict(f) for f in live]
    stored = _rows(reader, "select agent, symbol, ts, trades, hit_rate, win_rate, "
                   "shadow_pnl, apr_30d, apr_90d, apr_inception, sharpe from agent_figures "
                   "where run_id = ? qualify row_number() over (partition by agent, symbol "
                   "order by ts desc) = 1 order by agent, symbol", [run_id])
    if stored:
        return stored
    return _rows(reader, "select agent, symbol, null as ts, null as trades, hit_rate, "
                 "null as win_rate, shadow_pnl, null as apr_30d, null as apr_90d, "
                 "null as apr_inception, null as sharpe from agent_performance "
                 "where run_id = ? order by agent, symbol", [run_id])


def positions(reader: StoreReader, controller: Controller, run_id: str
              ) -> list[dict[str, Any]]:
    """Open positions: the session's book (with average entry, unrealised PnL and the
    working take-profit/stop-loss), else each symbol's last fill and last close."""
    live = controller.positions()
    if live is not None:
        return [asdict(p) for p in live]
    return _rows(reader, """
        select f.symbol, f.venue, f.position_after as quantity, null as average_entry,
               b.close as mark, null as unrealized_pnl, null as take_profit,
               null as stop_loss, f.price as last_fill_price, f.ts as last_fill_ts
        from (select * from fills where run_id = ? qualify row_number() over
              (partition by symbol order by ts desc, fill_id desc) = 1) f
        left join (select symbol, close from bars where run_id = ? qualify row_number()
                   over (partition by symbol order by ts desc) = 1) b using (symbol)
        where f.position_after <> 0 order by f.symbol""", [run_id, run_id])


def _table(rows: list[dict[str, Any]], fmt: str, columns: list[str]) -> Response:
    def text(value: Any) -> Any:
        return value.isoformat() if isinstance(value, datetime) else value

    if fmt == "jsonl":
        body = "".join(json.dumps({k: text(v) for k, v in r.items()}, default=str) + "\n"
                       for r in rows)
        return Response(body, media_type="application/x-ndjson")
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for r in rows:
        writer.writerow([text(r.get(c)) for c in columns])
    return Response(out.getvalue(), media_type="text/csv")


def views_router(reader: StoreReader, controller: Controller, access: Access) -> APIRouter:
    router = APIRouter()
    Viewer = Annotated[Caller, Depends(access.require("viewer"))]

    @router.get("/api/agents", summary="the agents: state, kind, params, symbols, figures")
    def agents(who: Viewer, run: RunRef = None) -> list[dict[str, Any]]:
        return agent_views(reader, controller, reader.run_id(run))

    @router.get("/api/agents/{name}", summary="one agent: state, spec, live figures")
    def agent(who: Viewer, name: str, run: RunRef = None) -> dict[str, Any]:
        run_id = reader.run_id(run)
        for a in agent_views(reader, controller, run_id):
            if a["name"] == name:
                return a
        raise HTTPException(404, f"run {run_id} has no agent {name!r}")

    @router.get("/api/positions", summary="open positions")
    def open_positions(who: Viewer, run: RunRef = None) -> list[dict[str, Any]]:
        return positions(reader, controller, reader.run_id(run))

    @router.get("/api/metrics/agents",
                summary="per agent and symbol: signals, votes, errors and figures")
    def agent_metrics(who: Viewer, run: RunRef = None) -> list[dict[str, Any]]:
        run_id = reader.run_id(run)
        counts = {(r["agent"], r["symbol"]): r for r in _rows(reader, """
            select agent, symbol, sum(signals) as signals, sum(votes) as votes,
                   sum(errors) as errors from (
              select agent, symbol, count(*) as signals, 0 as votes, 0 as errors
              from signals where run_id = ? group by all
              union all
              select v.agent, d.symbol, 0, count(*) filter (where v.side <> 'HOLD'), 0
              from votes v join decisions d using (run_id, decision_id)
              where v.run_id = ? group by all
              union all
              select agent, symbol, 0, 0, count(*) from agent_errors where run_id = ?
                and kind in ('exception', 'latency') group by all)
            group by agent, symbol""", [run_id, run_id, run_id])}
        figures = {(f["agent"], f["symbol"]): f
                   for f in agent_figures(reader, controller, run_id)}
        out = []
        for key in sorted(set(counts) | set(figures)):
            c, f = counts.get(key, {}), figures.get(key, {})
            out.append({"agent": key[0], "symbol": key[1],
                        **{n: int(c.get(n) or 0) for n in ("signals", "votes", "errors")},
                        **{n: f.get(n) for n in _FIGURES}})
        return out

    @router.get("/api/alerts", summary="alerts, newest first (filters)")
    def alerts(who: Viewer, run: RunRef = None,
               severity: Annotated[Literal["info", "warning", "critical"] | None,
                                   Query(description="this severity and above")] = None,
               kind: Name = None, source: Name = None,
               acknowledged: bool | None = None, since: Since = None,
               limit: Annotated[int, Query(ge=1, le=10_000)] = 200) -> list[dict[str, Any]]:
        run_id = reader.run_id(run)
        where: list[str] = ["run_id = ?"]
        params: list[Any] = [run_id]
        if severity is not None:
            where.append("severity in (select unnest(?))")
            params.append(list(SEVERITIES[SEVERITIES.index(severity):]))
        for column, value in (("kind", kind), ("source", source),
                              ("acknowledged", acknowledged)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            where.append("ts >= ?")
            params.append(_naive(since))
        rows = _rows(reader, "select alert_id, ts, severity, source, kind, message, "
                     f"data::varchar as data, acknowledged from alerts where "
                     f"{' and '.join(where)} order by alert_id desc limit ?", [*params, limit])
        for r in rows:
            r["data"] = json.loads(r["data"]) if r["data"] else None
        return rows

    @router.get("/api/logs", summary="the structured log, oldest first (filters; "
                                     "format=csv|jsonl to export)", response_model=None)
    def logs(who: Viewer, run: RunRef = None,
             level: Annotated[Literal["debug", "info", "trade", "warning", "error"] | None,
                              Query(description="this level and above")] = None,
             agent: Name = None, category: Name = None, since: Since = None,
             text: Annotated[str | None, Query(max_length=200)] = None,
             limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
             format: Literal["json", "csv", "jsonl"] = "json"
             ) -> list[dict[str, Any]] | Response:
        run_id = reader.run_id(run)
        where: list[str] = ["run_id = ?"]
        params: list[Any] = [run_id]
        if level is not None:
            where.append("level in (select unnest(?))")
            params.append([n for n, rank in LEVELS.items() if rank >= LEVELS[level]])
        for column, value in (("agent", agent), ("category", category)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            where.append("ts >= ?")
            params.append(_naive(since))
        if text:
            where.append("contains(lower(message), lower(?))")
            params.append(text)
        rows = _rows(reader, "select * from (select seq, ts, level, category, agent, "
                     f"message, data::varchar as data from logs where {' and '.join(where)}"
                     " order by seq desc, ts desc limit ?) order by seq, ts",
                     [*params, limit])
        if format != "json":
            return _table(rows, format, ["seq", "ts", "level", "category", "agent",
                                         "message", "data"])
        for r in rows:
            r["data"] = json.loads(r["data"]) if r["data"] else None
        # pydantic's serializer, as for the typed routes (a route that may answer CSV has
        # no response model, and FastAPI's generic encoder walks every value in Python).
        return Response(_ROWS.dump_json(rows), media_type="application/json")

    return router
