"""Dotted paths into a scenario config, as sweeps address parameters.

``agents.sma.params.fast`` walks the validated ``ScenarioConfig``: a model's field by
name, a list entry by position or by its ``name`` (agents, venues) or ``symbol`` (data),
a dict by key. Every segment but the last must exist; the last may add a key to a dict,
and an agent's ``params`` only the parameters its ``Params`` model declares. Anything else
is a ``PathError`` naming the path, before any value is set.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from sim.agents.base import AgentError, describe_agent
from sim.config import AgentConfig, ScenarioConfig
from sim.config_base import ConfigError


class PathError(ConfigError):
    """A dotted path that names nothing in the scenario."""


def _segment_error(path: str, upto: Sequence[str], message: str) -> PathError:
    where = ".".join(upto)
    return PathError(f"unknown parameter {path!r}: {message}"
                     + (f" (at {where!r})" if where else ""))


def _element(items: list[Any], segment: str, path: str, upto: Sequence[str]) -> int:
    """The index a list segment names: a position, or an element's name/symbol."""
    if segment.isdigit():
        if int(segment) >= len(items):
            raise _segment_error(path, upto,
                                 f"index {segment} is past the {len(items)} entries")
        return int(segment)
    for i, item in enumerate(items):
        if segment in (getattr(item, "name", None), getattr(item, "symbol", None)):
            return i
    names = [str(getattr(it, "name", None) or getattr(it, "symbol", None) or i)
             for i, it in enumerate(items)]
    raise _segment_error(path, upto, f"no entry named {segment!r} (have: {', '.join(names)})")


def resolve_path(config: ScenarioConfig, path: str) -> tuple[str | int, ...]:
    """The concrete key path (list indices as ints) that ``path`` names in ``config``.

    Every segment but the last must exist; the last must be a field of its model, a key
    already in a dict, or a parameter declared by the agent whose ``params`` it extends."""
    segments = path.split(".")
    if not path or any(not s for s in segments):
        raise PathError(f"unknown parameter {path!r}: not a dotted path like "
                        "'agents.sma.params.fast'")
    node: Any = config
    keys: list[str | int] = []
    agent: AgentConfig | None = None
    for depth, seg in enumerate(segments):
        last = depth == len(segments) - 1
        upto = segments[:depth]
        if isinstance(node, BaseModel):
            fields = type(node).model_fields
            if seg not in fields:
                raise _segment_error(path, upto, f"{type(node).__name__} has no field "
                                                 f"{seg!r} (fields: {', '.join(fields)})")
            if isinstance(node, AgentConfig):
                agent = node
            keys.append(seg)
            node = getattr(node, seg)
        elif isinstance(node, list):
            i = _element(node, seg, path, upto)
            keys.append(i)
            node = node[i]
        elif isinstance(node, dict):
            if seg not in node:
                if not last:
                    raise _segment_error(path, upto, f"no key {seg!r}")
                if agent is not None and keys[-1] == "params":
                    _check_agent_param(agent, seg, path)
            keys.append(seg)
            node = node.get(seg)
        else:
            raise _segment_error(path, upto, "goes inside a value that is not a table or list")
    return tuple(keys)


def _check_agent_param(agent: AgentConfig, name: str, path: str) -> None:
    try:
        declared = [p["name"] for p in describe_agent(agent.kind)]
    except AgentError:
        return
    if declared and name not in declared:
        raise PathError(f"unknown parameter {path!r}: agent {agent.name!r} "
                        f"({agent.kind}) has parameters {', '.join(declared)}")


def set_value(raw: dict[str, Any], keys: Sequence[str | int], value: Any) -> None:
    """Set ``value`` at a concrete key path in a plain (dumped) scenario dict."""
    node: Any = raw
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value


def short_name(path: str) -> str:
    """``agents.sma.params.fast`` -> ``sma.fast`` (for labels)."""
    parts = path.split(".")
    if parts[0] == "agents" and len(parts) > 2:
        parts = parts[1:]
    return ".".join(p for p in parts if p != "params") or path
