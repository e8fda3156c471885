"""Per agent, the indicator values behind each signal it gave, for ``quorum report``.

An agent class that has an ``indicators(bars, **params)`` hook (every built-in indicator
agent: ``sim.agents.indicator_series``) gets a table: each signal (time, symbol, side,
confidence, reason) with the values of its indicators at that bar, recomputed from the
stored bars and the agent's resolved params after the run. Nothing is recorded while the
run runs. Agents without the hook (a model, a service, most user agents) are listed as
such; a user agent whose module cannot be imported here is said so, not fatal.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np

from reports.data import RAN
from sim.agents.base import resolve_agent
from sim.sql import one_row

SHOWN = 12  # signals per agent in the page (the CSV has them all)


@dataclass
class AgentIndicators:
    agent: str
    kind: str
    rows: list[dict[str, Any]] = field(default_factory=list)  # every signal, with values
    note: str | None = None  # why there are no values


def resolved_params(kind: str, params: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """(the agent class or None, its params with the defaults filled in)."""
    try:
        factory = resolve_agent(kind)
    except Exception:  # a user module that no longer imports: the report goes on
        return None, dict(params)
    model = getattr(factory, "Params", None)
    if model is None:
        return factory, dict(params)
    try:
        return factory, model(**params).model_dump()
    except Exception:  # params the current code no longer accepts
        return factory, dict(params)


def _bars(con: duckdb.DuckDBPyConnection, run_id: str, symbol: str) -> dict[str, np.ndarray]:
    got = con.execute(
        "SELECT epoch_ns(ts) AS ts, open, high, low, close, volume FROM bars WHERE run_id = $r"
        f" AND symbol = $s AND {RAN} ORDER BY ts", {"r": run_id, "s": symbol}).fetchnumpy()
    out = {k: np.asarray(v, np.float64) for k, v in got.items() if k != "ts"}
    out["ts"] = np.asarray(got["ts"], np.int64)
    return out


def agent_indicators(con: duckdb.DuckDBPyConnection, run_id: str) -> list[AgentIndicators]:
    """One entry per agent of the run, in config order."""
    (config,) = one_row(con, "SELECT config FROM runs WHERE run_id = ?", [run_id])
    cfg = json.loads(config)
    signals = con.execute(
        "SELECT agent, symbol, epoch_ns(ts) AS ts, side, confidence, reason FROM signals "
        "WHERE run_id = ? ORDER BY ts, symbol, agent", [run_id]).fetchall()
    by_agent: dict[str, list[tuple[Any, ...]]] = {}
    for row in signals:
        by_agent.setdefault(row[0], []).append(row[1:])
    out = []
    cache: dict[str, dict[str, np.ndarray]] = {}
    for spec in cfg.get("agents", []):
        name, kind = str(spec.get("name")), str(spec.get("kind"))
        entry = AgentIndicators(name, kind)
        out.append(entry)
        factory, params = resolved_params(kind, spec.get("params") or {})
        hook = getattr(factory, "indicators", None)
        if factory is None:
            entry.note = f"its class {kind!r} cannot be imported here"
            continue
        if hook is None:
            entry.note = "it exposes no indicators() hook"
            continue
        series_of: dict[str, dict[str, np.ndarray]] = {}
        for symbol, ts, side, confidence, reason in by_agent.get(name, []):
            if symbol not in series_of:
                bars = cache.setdefault(symbol, _bars(con, run_id, symbol))
                try:
                    series_of[symbol] = {"ts": bars["ts"], **hook(bars, **params)}
                except Exception as exc:  # a user hook that fails: said, not fatal
                    entry.note = f"its indicators() raised {type(exc).__name__}: {exc}"
                    break
            series = series_of[symbol]
            i = int(np.searchsorted(series["ts"], ts, side="right")) - 1
            values = {k: (float(v[i]) if i >= 0 else float("nan"))
                      for k, v in series.items() if k != "ts"}
            close = float(cache[symbol]["close"][i]) if i >= 0 else float("nan")
            entry.rows.append({"ts": ts, "symbol": symbol, "side": side,
                               "confidence": confidence, "close": close, **values,
                               "reason": reason})
        if not entry.rows and entry.note is None:
            entry.note = "it gave no signal"
    return out
