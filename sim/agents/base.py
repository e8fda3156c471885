"""The agent protocol and how a scenario names an agent.

An agent gets ``on_bar(view)`` once per bar of its symbol, after the bar has closed, and
returns a ``Signal`` when its view changes, or None to let its last signal stand. It must be
deterministic: any randomness comes from the ``rng`` it is given at construction.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from sim.messages import Signal
from sim.view import MarketView


class AgentError(ValueError):
    """An agent that cannot be found, built, or that returned something invalid."""


@runtime_checkable
class Agent(Protocol):
    def on_bar(self, view: MarketView) -> Signal | None: ...


@dataclass(frozen=True, slots=True)
class CallStats:
    """An agent's calls to an outside service so far, and how many failed (it abstained
    or kept its last view instead of crashing the run). An agent that calls out reports
    them from an optional ``call_stats()`` method; the run stores them at its end
    (``agent_errors``) and fails when errors / calls passes the agent's
    ``max_error_rate``, so a dead service cannot go unnoticed."""

    calls: int
    errors: int
    last_error: str | None = None


AgentFactory = Callable[..., Agent]
_BUILTINS: dict[str, str] = {
    "sma_crossover": "sim.agents.sma:SmaCrossover",
    "zscore_reversion": "sim.agents.zscore:ZScoreReversion",
    "ema_crossover": "sim.agents.classic:EmaCrossover",
    "donchian_breakout": "sim.agents.classic:DonchianBreakout",
    "bollinger_reversion": "sim.agents.classic:BollingerReversion",
    "rsi": "sim.agents.classic:Rsi",
    "momentum": "sim.agents.classic:Momentum",
    "smc": "sim.agents.smc:SmcAgent",
    "ml_logistic": "sim.agents.ml:MlLogistic",
    "risk_manager": "sim.agents.risk_manager:RiskManager",
    "signal_feed": "sim.agents.signal_feed:SignalFeed",
    "external": "sim.agents.external:ExternalAgent",
}


def register_agent(name: str, target: str) -> None:
    """Make ``"module:Class"`` available under a short scenario name."""
    _BUILTINS[name] = target


def registered_agents() -> Mapping[str, str]:
    return dict(_BUILTINS)


def resolve_agent(kind: str) -> AgentFactory:
    """Find an agent class by registered name or ``"package.module:Class"``."""
    target = _BUILTINS.get(kind, kind)
    if ":" not in target:
        known = ", ".join(sorted(_BUILTINS))
        raise AgentError(f"unknown agent {kind!r}: use one of {known} or 'module:Class'")
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise AgentError(f"agent {kind!r}: cannot import module {module_name!r}: {exc}") from None
    factory = getattr(module, attr, None)
    if factory is None:
        raise AgentError(f"agent {kind!r}: module {module_name!r} has no {attr!r}")
    if not callable(getattr(factory, "on_bar", None)):
        raise AgentError(f"agent {kind!r}: {target} has no on_bar(view) method")
    return factory


class AgentParams(BaseModel):
    """Base for an agent's ``Params``: declare fields with defaults and bounds; the scenario's
    ``params`` table is validated against it before the agent is built."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _validated(kind: str, factory: AgentFactory, params: Mapping[str, Any]) -> dict[str, Any]:
    model = getattr(factory, "Params", None)
    if model is None:  # a user agent without a Params model: its constructor checks
        return dict(params)
    try:
        return model.model_validate(dict(params)).model_dump()
    except ValidationError as exc:
        problems = "; ".join(
            ".".join(["params", *(str(x) for x in e["loc"])]) + ": "
            + ("unknown parameter" if e["type"] == "extra_forbidden" else e["msg"])
            .replace("Value error, ", "")
            for e in exc.errors()
        )
        raise AgentError(f"agent {kind!r}: bad parameters: {problems}") from None


def describe_agent(kind: str) -> list[dict[str, Any]]:
    """Each parameter of an agent type: name, type, default, description."""
    model = getattr(resolve_agent(kind), "Params", None)
    if model is None:
        return []
    return [
        {"name": name, "type": getattr(f.annotation, "__name__", str(f.annotation)),
         "required": f.is_required(), "default": None if f.is_required() else f.default,
         "description": f.description or ""}
        for name, f in model.model_fields.items()
    ]


# Per agent factory, the names its constructor takes: ``inspect.signature`` costs about
# 0.1 ms, four times a sweep run (an agent per symbol). By the factory object, so a
# reloaded module's class is looked at again.
_ACCEPTED: dict[Any, frozenset[str]] = {}


def _accepted(factory: AgentFactory) -> frozenset[str]:
    try:
        hash(factory)
    except TypeError:  # an unhashable factory: looked at each time
        return _parameters(factory)
    names = _ACCEPTED.get(factory)
    if names is None:
        names = _ACCEPTED[factory] = _parameters(factory)
    return names


def _parameters(factory: AgentFactory) -> frozenset[str]:
    try:
        return frozenset(inspect.signature(factory).parameters)
    except (TypeError, ValueError):
        return frozenset()


def build_agent(
    kind: str, params: Mapping[str, Any], rng: np.random.Generator, call_log: Any = None,
) -> Agent:
    """Validate ``params`` (against the agent's ``Params`` model if it has one) and build the
    agent; ``rng`` and ``call_log`` (the run's record of an agent's outside calls, a
    ``sim.agents.external.CallLog``) are passed only to agents whose constructor takes them."""
    factory = resolve_agent(kind)
    kwargs = _validated(kind, factory, params)
    accepted = _accepted(factory)
    if "rng" in accepted:
        kwargs["rng"] = rng
    if call_log is not None and "call_log" in accepted:
        kwargs["call_log"] = call_log
    try:
        return factory(**kwargs)
    except (TypeError, ValueError) as exc:
        raise AgentError(f"agent {kind!r}: bad parameters {dict(params)}: {exc}") from None
    except Exception as exc:  # the user's constructor: one line naming it, no traceback
        raise AgentError(f"agent {kind!r}: its constructor raised {type(exc).__name__}: "
                         f"{exc}") from None
