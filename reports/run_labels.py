"""Names for runs shown side by side: what differs between them, not their ids.

``quorum compare a1b2 c3d4`` labelled its columns, curves and matrix rows by run id, so a
researcher comparing two sweep members had to look up which was ``sma.fast=6``. Each run's
resolved config (``runs.config``) is flattened to dotted paths (agents by name, so
``agents.sma.params.fast``; lists by position), and the label is the paths whose values
differ among the runs compared: ``sma.fast=6 seed=2``. A data source that differs is said
by the scenario name when that differs too (a sweep names its regime runs
``base@regime``), else by its differing fields. Runs with the same config (the same run
made twice) keep their id.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import duckdb

from sim.config_paths import short_name

MAX_ITEMS = 4  # a label lists at most this many differences, then "+N more"


def flatten(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """``{"agents.sma.params.fast": 6, "policy.exposure": 0.3, ...}``; agents by name."""
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, list) and prefix == "agents":
            for i, agent in enumerate(value):
                name = agent.get("name", i) if isinstance(agent, Mapping) else i
                walk(f"agents.{name}", {k: v for k, v in agent.items() if k != "name"}
                     if isinstance(agent, Mapping) else agent)
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            for i, item in enumerate(value):
                walk(f"{prefix}.{i}", item)
        else:
            out[prefix] = json.dumps(value, sort_keys=True) if isinstance(value, list) \
                else value
    walk("", cfg)
    return out


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "none" if v is None else str(v)


def differing(configs: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The flattened paths whose values are not the same in every config, in path order
    (a path missing from one config differs)."""
    flat = [flatten(c) for c in configs.values()]
    paths = sorted({p for f in flat for p in f})

    def seen(f: Mapping[str, Any], p: str) -> str:
        return json.dumps(f[p], sort_keys=True, default=str) if p in f else "<missing>"

    return [p for p in paths if len({seen(f, p) for f in flat}) > 1]


def labels_from_configs(configs: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """``run_id -> label`` of what differs between the runs (ids where nothing does)."""
    paths = differing(configs)
    if "name" in paths:  # the name says which data (base@regime); its fields would not
        paths = [p for p in paths if not p.startswith("data.")]
    shown = [p for p in paths if p != "name"]
    labels: dict[str, str] = {}
    for run_id, cfg in configs.items():
        flat = flatten(cfg)
        items = [str(cfg.get("name"))] if "name" in paths else []
        items += [f"{'seed' if p == 'seed' else short_name(p)}={_value(flat.get(p))}"
                  for p in shown]
        if len(items) > MAX_ITEMS:
            items = [*items[:MAX_ITEMS], f"+{len(items) - MAX_ITEMS} more"]
        labels[run_id] = " ".join(items) or run_id
    seen: dict[str, int] = {}
    for label in labels.values():
        seen[label] = seen.get(label, 0) + 1
    return {r: (label if seen[label] == 1 or label == r else f"{label} [{r[:6]}]")
            for r, label in labels.items()}


def run_labels(con: duckdb.DuckDBPyConnection, run_ids: Sequence[str]) -> dict[str, str]:
    """``labels_from_configs`` of the stored runs, in ``run_ids`` order."""
    rows = dict(con.execute("SELECT run_id, config FROM runs WHERE list_contains(?, run_id)",
                            [list(run_ids)]).fetchall())
    configs = {r: json.loads(rows[r]) for r in run_ids if r in rows}
    if len(configs) < 2:
        return {r: r for r in run_ids}
    return labels_from_configs(configs)
