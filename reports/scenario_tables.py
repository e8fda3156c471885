"""The scenario a run ran, as resolved (``runs.config``), in tables for ``quorum report``:
what was traded with what, so a report read weeks later needs no TOML beside it.

Agents with their params (defaults filled in from the agent's ``Params`` where it has
them), consensus, policy, risk, venues and data, as stored with the run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import duckdb

from reports.agent_indicators import resolved_params
from sim.sql import one_row


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings to dotted keys; lists as compact JSON."""
    out: dict[str, Any] = {}
    if isinstance(value, Mapping):
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(value, list):
        out[prefix] = json.dumps(value, separators=(",", ":"))
    else:
        out[prefix] = value
    return out


def _rows(items: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per item; columns: every key any item has (blank where one has none)."""
    flat = [_flat(item) for item in items]
    names: list[str] = []
    for row in flat:
        names.extend(k for k in row if k not in names)
    return [{k: ("" if row.get(k) is None else row.get(k)) for k in names} for row in flat]


def scenario_tables(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, Any]:
    """``{"run": [...], "agents": [...], "consensus": [...], "policy": [...], "risk":
    [...], "venues": [...], "data": [...]}`` of table rows (field/value pairs for the
    single settings, one row per item for agents, venues and data)."""
    (config,) = one_row(con, "SELECT config FROM runs WHERE run_id = ?", [run_id])
    cfg = json.loads(config)
    agents = []
    for spec in cfg.get("agents", []):
        _, params = resolved_params(str(spec.get("kind")), spec.get("params") or {})
        agents.append({"name": spec.get("name"), "kind": spec.get("kind"),
                       "symbols": ", ".join(spec.get("symbols") or []) or "all",
                       "params": ", ".join(f"{k}={v}" for k, v in params.items()),
                       **{k: v for k, v in spec.items()
                          if k not in ("name", "kind", "symbols", "params")}})
    tables: dict[str, Any] = {
        "run": [{"field": k, "value": cfg[k]} for k in ("name", "description", "seed",
                                                       "initial_cash") if k in cfg],
        "agents": agents,
    }
    for key in ("consensus", "policy", "risk"):
        section = cfg.get(key)
        tables[key] = ([{"field": k, "value": "" if v is None else v}
                        for k, v in _flat(section).items()]
                       if isinstance(section, Mapping) else [])
    tables["venues"] = _rows(cfg.get("venues") or [])
    tables["data"] = _rows(cfg.get("data") or [])
    return tables
