"""The control API's HTTP app (FastAPI): reads of a run store, with keys and roles.

``create_app`` builds the same app for ``quorum serve`` (a stored run, read-only) and, with
the operator kernel's commands, for a running session. Every answer is JSON; every error
has one shape: ``{"error": {"status", "code", "message", "field"}}`` (``field`` names the
parameter or body field at fault, for a 422). OpenAPI at ``/docs``.

Access: with no key file, the server only binds to loopback and everything is allowed
(``quorum serve`` refuses another address, exit 2). Once a key file exists, every
endpoint needs ``X-API-Key``: 401 without a valid one, 403 for a role that may not.
Keys are never logged: uvicorn's access log is off.

(No ``from __future__ import annotations`` here: FastAPI reads the handlers' annotations,
which name dependencies made inside ``create_app``.)
"""


import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import duckdb
from fastapi import Depends, FastAPI, Query, Request, WebSocket, WebSocketDisconnect
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException

from quorum.api.access import Access, Caller, error
from quorum.api.audit import ControlGate, TokenBuckets
from quorum.api.commands import commands_router
from quorum.api.control import (
    CommandTimeout,
    ControlConfig,
    Controller,
    NotRunning,
    ReadOnly,
    ReadOnlyControl,
)
from quorum.api.keys import KeyStore
from quorum.api.metrics import BusMetrics, StoreMetrics
from quorum.api.reads import ReadTimeout, StoreReader, UnknownRun
from quorum.api.stream import StreamHub
from quorum.api.views import views_router
from sim.monitor.health import worst

STATIC = Path(__file__).parent / "static"  # the dashboard: shipped in the package
RowId = Annotated[int, PathParam(ge=0, le=2**63 - 1)]  # a BIGINT
Limit = Annotated[int, Query(ge=1, le=10_000, description="at most this many rows")]
RunRef = Annotated[str | None, Query(description="run id or a unique prefix (default: "
                                                 "the latest run)")]


def _error(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    return error(status, code, message, field)


def create_app(reader: StoreReader, keys: KeyStore, *, mode: str = "read-only",
               store: str = "", hub: StreamHub | None = None,
               metrics: BusMetrics | None = None, controller: Controller | None = None,
               control: ControlConfig | None = None) -> FastAPI:
    """``controller``: what steers the agents (default: none, ``ReadOnlyControl``);
    ``control``: the control endpoints' limits."""
    app = FastAPI(title="Quorum", summary="Watch and steer Quorum runs and sessions",
                  version="1")
    controller = controller or ReadOnlyControl(
        "read-only: this server reads a run store; steer a session served by "
        "`quorum live --api`")
    control = control or ControlConfig()
    access = Access(keys)

    # -- errors: one shape -------------------------------------------------------------
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        if first.get("type") == "json_invalid":
            return _error(422, "invalid", f"body: not JSON ({first.get('msg', '')})")
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "body",
                                                                            "path"))
        return _error(422, "invalid", f"{where or 'request'}: {first.get('msg', 'invalid')}",
                      where or None)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        code = {401: "unauthorized", 403: "forbidden", 404: "not_found",
                405: "method_not_allowed"}.get(exc.status_code, "error")
        return _error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(UnknownRun)
    async def _unknown(request: Request, exc: UnknownRun) -> JSONResponse:
        return _error(404, "not_found", str(exc.args[0]))

    @app.exception_handler(ReadTimeout)
    async def _slow(request: Request, exc: ReadTimeout) -> JSONResponse:
        return _error(503, "timeout", str(exc))

    @app.exception_handler(ReadOnly)
    async def _read_only(request: Request, exc: ReadOnly) -> JSONResponse:
        return _error(409, "read_only", str(exc))

    @app.exception_handler(NotRunning)
    async def _not_running(request: Request, exc: NotRunning) -> JSONResponse:
        return _error(503, "not_running", str(exc))

    @app.exception_handler(CommandTimeout)
    async def _late(request: Request, exc: CommandTimeout) -> JSONResponse:
        return _error(504, "timeout", str(exc))

    # -- the dashboard: its page and assets need no key (the page asks for one) ---------
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    # -- access, and the control calls' gate (rate limit, audit) ------------------------
    Viewer = Annotated[Caller, Depends(access.require("viewer"))]
    app.add_middleware(ControlGate, access=access,
                       buckets=TokenBuckets(control.rate_per_s, control.burst),
                       controller=controller, run_id=lambda: reader.default_run,
                       max_body=control.max_body_bytes)
    app.include_router(views_router(reader, controller, access))
    app.include_router(commands_router(reader, controller, access, control))

    # -- reads (sync handlers: FastAPI runs them in its thread pool, off the loop) ------
    @app.get("/api/health", summary="the server, and the store it reads")
    def health(who: Viewer) -> dict[str, Any]:
        """``status``: this server; ``overall`` and ``components``: the watched (else the
        latest) run's health as its monitor last stored it (none: not watched)."""
        runs = reader.rows("select count(*) as n from runs")[0]["n"]
        components: list[dict[str, Any]] = []
        if runs:
            try:
                components = reader.rows(
                    "select component, arg_max(state, seq) as state, arg_max(reason, seq) "
                    "as reason, max(ts) as since from health where run_id = ? and "
                    "component <> 'overall' group by component order by component",
                    [reader.run_id(None)])
            except (UnknownRun, duckdb.CatalogException):
                components = []
        return {"status": "healthy", "mode": mode, "store": store, "runs": runs,
                "control": controller.read_only or "on",
                "overall": worst(*(c["state"] for c in components)) if components else None,
                "components": components}

    @app.get("/api/runs", summary="stored runs, newest first")
    def runs(who: Viewer, limit: Limit = 50,
             status: Annotated[str | None, Query(max_length=20)] = None,
             mode: Annotated[str | None, Query(max_length=20)] = None) -> list[dict[str, Any]]:
        where, params = ["true"], []
        for column, value in (("status", status), ("mode", mode)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        return reader.rows(
            "select run_id, scenario, mode, status, seed, n_bars, started_at, finished_at "
            f"from runs where {' and '.join(where)} order by started_at desc limit ?",
            [*params, limit])

    @app.get("/api/runs/{run}", summary="one run: provenance, config and row counts")
    def run(who: Viewer, run: str) -> dict[str, Any]:
        run_id = reader.run_id(run)
        row = reader.rows("select * exclude (config), config::varchar as config from runs "
                          "where run_id = ?", [run_id])[0]
        counts = {t: reader.rows(f"select count(*) as n from {t} where run_id = ?",
                                 [run_id])[0]["n"]
                  for t in ("signals", "decisions", "orders", "fills")}
        return {**row, "counts": counts}

    @app.get("/api/orders", summary="a run's orders in their terminal state, newest first")
    def orders(who: Viewer, run: RunRef = None, limit: Limit = 100,
               status: Annotated[str | None, Query(max_length=20)] = None,
               symbol: Annotated[str | None, Query(max_length=64)] = None
               ) -> list[dict[str, Any]]:
        run_id = reader.run_id(run)
        where, params = ["run_id = ?"], [run_id]
        for column, value in (("status", status), ("symbol", symbol)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        return reader.rows(f"select * exclude (run_id) from orders where {' and '.join(where)}"
                           " order by ts desc, order_id desc limit ?", [*params, limit])

    @app.get("/api/orders/{order_id}", summary="one order, its events and its fills")
    def order(who: Viewer, order_id: RowId, run: RunRef = None) -> dict[str, Any]:
        run_id = reader.run_id(run)
        found = reader.rows("select * exclude (run_id) from orders where run_id = ? and "
                            "order_id = ?", [run_id, order_id])
        if not found:
            raise HTTPException(404, f"run {run_id} has no order {order_id}")
        events = reader.rows("select * exclude (run_id, order_id) from order_events where "
                             "run_id = ? and order_id = ? order by ts", [run_id, order_id])
        fills = reader.rows("select * exclude (run_id, order_id) from fills where "
                            "run_id = ? and order_id = ? order by ts", [run_id, order_id])
        return {**found[0], "run_id": run_id, "events": events, "fills": fills}

    @app.get("/api/fills", summary="a run's fills, newest first")
    def fills(who: Viewer, run: RunRef = None, limit: Limit = 100,
              symbol: Annotated[str | None, Query(max_length=64)] = None
              ) -> list[dict[str, Any]]:
        run_id = reader.run_id(run)
        extra = " and symbol = ?" if symbol is not None else ""
        params = [run_id, symbol] if symbol is not None else [run_id]
        return reader.rows("select * exclude (run_id) from fills where run_id = ?"
                           f"{extra} order by ts desc, fill_id desc limit ?", [*params, limit])

    @app.get("/api/decisions/{decision_id}",
             summary="why this trade: a decision, its votes, the signals behind them")
    def decision(who: Viewer, decision_id: RowId, run: RunRef = None) -> dict[str, Any]:
        run_id = reader.run_id(run)
        found = reader.rows("select * exclude (run_id) from decisions where run_id = ? and "
                            "decision_id = ?", [run_id, decision_id])
        if not found:
            raise HTTPException(404, f"run {run_id} has no decision {decision_id}")
        made = found[0]
        votes = reader.rows(  # each vote with the agent's signal standing at the decision
            "select v.agent, v.side, v.confidence, v.weight, s.ts as signal_ts, s.target, "
            "s.reason from votes v left join (select agent, ts, target, reason from signals "
            "where run_id = ? and symbol = ? and ts <= ? qualify row_number() over "
            "(partition by agent order by ts desc) = 1) s using (agent) "
            "where v.run_id = ? and v.decision_id = ? order by v.agent",
            [run_id, made["symbol"], made["ts"], run_id, decision_id])
        orders = reader.rows("select order_id, status, quantity, filled_quantity, "
                             "avg_fill_price, venue from orders where run_id = ? and "
                             "decision_id = ? order by order_id", [run_id, decision_id])
        return {**made, "run_id": run_id, "votes": votes, "orders": orders}

    @app.get("/api/market", summary="the last bar of each symbol")
    def market(who: Viewer, run: RunRef = None) -> list[dict[str, Any]]:
        run_id = reader.run_id(run)
        return reader.rows("select symbol, ts, open, high, low, close, volume from bars "
                           "where run_id = ? qualify row_number() over (partition by symbol "
                           "order by ts desc) = 1 order by symbol", [run_id])

    @app.get("/api/equity", summary="the account over time (the last rows)")
    def equity(who: Viewer, run: RunRef = None, limit: Limit = 1000) -> list[dict[str, Any]]:
        run_id = reader.run_id(run)
        return reader.rows("select * from (select ts, cash, equity, realized_pnl, "
                           "unrealized_pnl from equity where run_id = ? order by ts desc "
                           "limit ?) order by ts", [run_id, limit])

    exposed: BusMetrics | StoreMetrics = metrics or StoreMetrics(reader)

    @app.get("/metrics", summary="Prometheus exposition", response_class=Response)
    def prometheus(who: Viewer) -> Response:
        return Response(exposed.exposition(), media_type=CONTENT_TYPE_LATEST)

    # -- the live stream ---------------------------------------------------------------
    @app.get("/api/events", summary="stream messages after a sequence number (polling)")
    def events(who: Viewer, since: Annotated[int, Query(ge=0)] = 0,
               topics: Annotated[str, Query(max_length=2000, description="comma-separated "
                                            "stream topics")] = "") -> Any:
        if hub is None:
            raise HTTPException(404, "no live stream: this server reads a stored run")
        wanted = [t for t in topics.split(",") if t] or list(ALL_TOPICS)
        found = hub.since(since, wanted)
        if found is None:
            return _gap_error(since, hub)
        return {"last_seq": hub.last_seq, "events": [json.loads(text) for _, text in found]}

    @app.websocket("/ws")
    async def stream(ws: WebSocket) -> None:
        """Send ``{"subscribe": [topics], "since": SEQ}`` first; then messages come, one
        a frame; with ``"batch": true`` a frame holds what waited for the client, one
        message a line (JSON lines: far fewer frames for a busy stream)."""
        if keys.required:  # browsers cannot set headers on a WebSocket: ?key= too
            entry = keys.check(ws.headers.get("x-api-key") or ws.query_params.get("key"))
            if entry is None:
                await ws.close(code=1008, reason="a valid key is needed")
                return
        await ws.accept()
        if hub is None:
            await ws.close(code=1011, reason="no live stream: this server reads a stored run")
            return
        try:
            hello = await ws.receive_json()
            wanted = list(hello.get("subscribe") or ALL_TOPICS)
            since = hello.get("since")
            batch = 500 if hello.get("batch") is True else 1
        except (WebSocketDisconnect, ValueError, AttributeError):
            await ws.close(code=1003, reason='expected {"subscribe": [...], "since": SEQ}')
            return
        client = hub.connect(wanted, asyncio.get_running_loop())
        sent = 0
        try:
            if since is not None:
                backlog = hub.since(int(since), wanted)
                if backlog is None:
                    await ws.send_json({"type": "gap", "since": since,
                                        "oldest": hub.evicted_upto + 1})
                else:
                    for i in range(0, len(backlog), batch):
                        part = backlog[i:i + batch]
                        await ws.send_text("\n".join(text for _, text in part))
                        sent = part[-1][0]
            while True:
                item = await client.queue.get()
                items = [item]
                while item is not None and len(items) < batch:
                    try:
                        item = client.queue.get_nowait()
                    except asyncio.QueueEmpty:
                        break
                    items.append(item)
                fresh = [i for i in items if i is not None and i[0] > sent]  # not in backlog
                if fresh:
                    await ws.send_text("\n".join(text for _, text in fresh))
                    sent = fresh[-1][0]
                if items[-1] is None:
                    await ws.close(code=1013, reason="too slow: reconnect with since")
                    return
        except WebSocketDisconnect:
            return
        finally:
            hub.disconnect(client)

    return app


ALL_TOPICS = ("market:update", "agent:update", "trades:all", "trade:alert", "logs:all",
              "health", "equity", "system:event")


def _gap_error(since: int, hub: StreamHub) -> JSONResponse:
    return _error(410, "gap", f"events after {since} are no longer kept (oldest kept: "
                  f"{hub.evicted_upto + 1}); reload from the REST endpoints")
