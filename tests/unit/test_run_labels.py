"""Runs compared side by side are named by what differs between them (reports.run_labels)."""

from __future__ import annotations

import copy
from typing import Any

from reports.run_labels import labels_from_configs

BASE: dict[str, Any] = {
    "name": "trend", "seed": 1,
    "agents": [{"name": "sma", "kind": "sma_crossover", "params": {"fast": 6, "slow": 30}},
               {"name": "rsi", "kind": "rsi", "params": {"period": 14}}],
    "policy": {"exposure": 0.3}, "risk": {"max_position_notional": 5000.0},
    "data": [{"kind": "regime", "regime": "trend_up", "bars": 100}],
}


def _with(**changes: Any) -> dict[str, Any]:
    cfg = copy.deepcopy(BASE)
    for path, value in changes.items():
        node = cfg
        *head, last = path.split("__")
        for key in head:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[last] = value
    return cfg


def test_a_swept_agent_param_names_the_runs() -> None:
    got = labels_from_configs({"r1": _with(agents__0__params__fast=6),
                               "r2": _with(agents__0__params__fast=12)})
    assert got == {"r1": "sma.fast=6", "r2": "sma.fast=12"}


def test_several_differences_and_the_seed() -> None:
    got = labels_from_configs({"a": _with(seed=1, policy__exposure=0.25),
                               "b": _with(seed=2, policy__exposure=0.5)})
    assert got == {"a": "policy.exposure=0.25 seed=1", "b": "policy.exposure=0.5 seed=2"}


def test_agents_are_matched_by_name_not_position() -> None:
    swapped = _with()
    swapped["agents"] = list(reversed(swapped["agents"]))
    got = labels_from_configs({"a": _with(), "b": swapped, "c": _with(agents__1__params__period=7)})
    assert got["c"] == "rsi.period=7" and got["a"].startswith("rsi.period=14")
    assert got["a"] != got["b"]  # same config: told apart by id, not by a false difference


def test_a_regime_run_is_named_by_its_scenario_not_its_data_fields() -> None:
    a = _with(name="trend@trend_up")
    b = _with(name="trend@crash", data__0__regime="crash")
    got = labels_from_configs({"a": a, "b": b})
    assert got == {"a": "trend@trend_up", "b": "trend@crash"}


def test_nothing_differs_keeps_the_ids() -> None:
    assert labels_from_configs({"x1": _with(), "x2": _with()}) == {"x1": "x1", "x2": "x2"}


def test_long_labels_are_cut() -> None:
    got = labels_from_configs({
        "a": _with(seed=1, policy__exposure=0.1, agents__0__params__fast=1,
                   agents__0__params__slow=2, agents__1__params__period=3),
        "b": _with(seed=2)})
    assert got["a"].endswith("+1 more")
