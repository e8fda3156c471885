"""Lifecycle per farm: moving an agent to another farm, pausing and resuming a farm, a
farm's own kill switch. The agent roster of a run with ``[[farms]]`` (``FarmRoster``)
plans them like every other lifecycle command (``sim.lifecycle``): sent by a scenario's
``[[events]]`` (``agent_move``, ``farm_pause``, ``farm_resume``, ``farm_kill``) or through
``AgentRoster.apply`` as ``LiveRunner.submit`` and the local channel send theirs (their
JSON parses with ``sim.agent_commands.parse_command``; sessions do not run farms yet, so
there the plain roster refuses them), applied between two bars by the pipeline's single
consumer, all or none inside a batch, and stored, applied or rejected with the reason, as
``farm_events`` rows numbered with the run's ``agent_events``.

What each does (docs/howto/farms.md says the same to users):

- ``move`` AGENT to FARM: from the next bar the agent's standing signal votes in FARM's
  consensus and no longer in its old farm's (both vote again at the next bar's close).
  Positions do not move: what the old farm traded on the agent's votes stays in the old
  farm's ledger, managed by its remaining agents (a farm left with no agent on a symbol
  holds its position there until it is killed with ``flatten`` or an agent comes back).
  A decision the old farm took before the move and has not sent yet is still sent at
  the next open. Refused: an unknown agent or farm, a stopped agent, the farm it is in, a
  killed farm.
- ``farm_pause``: the farm stops voting and sending orders; its agents keep seeing bars
  (their signals stay warm) and keep voting in no other farm. Its decision waiting for the
  next open is dropped and its working entry orders are cancelled ("farm paused");
  its positions stay open and risk-made orders (the account's kill switch, a breaker's
  flatten) still close them. ``farm_resume`` lets it vote again from its agents' current
  signals at the next bar's close.
- ``farm_kill``: the farm's kill switch, final: it never votes again, its pending
  decision is dropped, its working entries cancelled, and its own risk engine admits only
  position-reducing orders; with ``flatten`` its positions are closed at the next open
  (orders of that farm only; the other farms trade on).
"""

from __future__ import annotations

from typing import Any

from sim.agent_commands import STOPPED, AgentCommand
from sim.farm_engine import FarmEngine
from sim.farms import Farm
from sim.lifecycle import AgentRoster, Rejected, _Plan, _View

FARM_ACTIVE, FARM_PAUSED, FARM_KILLED = "active", "paused", "killed"


class FarmRoster(AgentRoster):
    """``AgentRoster`` of a ``FarmEngine``: it also plans the farm commands."""

    def __init__(self, engine: FarmEngine, *args: Any, **kwargs: Any) -> None:
        super().__init__(engine, *args, **kwargs)
        self.farm_engine = engine
        self._farms = {f.name: f for f in engine.farms}
        # What a command (or a batch's next one) is checked against: each farm's state and
        # each agent's farm, as the commands planned so far leave them.
        self._farm_view: dict[str, str] = {}
        self._home_view: dict[str, str] = {}

    def homes(self) -> dict[str, str]:
        """Each agent's farm now."""
        out = {}
        for farm in self.farm_engine.farms:
            for names in farm.agent_names:
                for name in names:
                    out[name] = farm.name
        for name in self.agents:  # an agent on no symbol's columns (none today) is homeless
            out.setdefault(name, "")
        return out

    def _view(self) -> _View:
        self._farm_view = {f.name: f.state for f in self.farm_engine.farms}
        self._home_view = self.homes()
        return super()._view()

    def _farm_plan(self, command: AgentCommand, view: _View, ts: int) -> _Plan:
        verb, name = command.command, command.farm
        if name is None:
            raise Rejected(f"farm: required for {verb}")
        if command.params is not None or command.symbols is not None or command.kind:
            raise Rejected(f"{verb} takes no kind, params or symbols")
        if command.flatten and verb != "farm_kill":
            raise Rejected("flatten: only for kill and farm_kill")
        if name not in self._farms:
            raise Rejected(f"unknown farm {name!r} (farms: {', '.join(self._farms)})")
        state = self._farm_view[name]
        if verb == "move":
            return self._plan_move(command, name, view, ts)
        if state == FARM_KILLED:
            raise Rejected(f"farm {name!r} is killed")
        if verb == "farm_pause":
            if state != FARM_ACTIVE:
                raise Rejected(f"farm {name!r} is {state}, not active")
            self._farm_view[name] = FARM_PAUSED
            return _Plan(command, state, FARM_PAUSED, None, None,
                         lambda: self._commit_farm_pause(self._farms[name], ts))
        if verb == "farm_resume":
            if state == FARM_ACTIVE:
                raise Rejected(f"farm {name!r} is active already")
            self._farm_view[name] = FARM_ACTIVE
            return _Plan(command, state, FARM_ACTIVE, None, None,
                         lambda: self._commit_farm_resume(self._farms[name]))
        # farm_kill
        self._farm_view[name] = FARM_KILLED
        return _Plan(command, state, FARM_KILLED, None, None,
                     lambda: self._commit_farm_kill(self._farms[name], ts, command.flatten))

    def _plan_move(self, command: AgentCommand, target: str, view: _View, ts: int
                   ) -> _Plan:
        agent = command.agent
        known = view.get(agent)
        if known is None:
            raise Rejected(f"unknown agent {agent!r} (agents: {', '.join(view) or 'none'})")
        if known[0] == STOPPED:
            raise Rejected(f"agent {agent!r} is stopped")
        home = self._home_view.get(agent, "")
        if home == target:
            raise Rejected(f"agent {agent!r} is in farm {target!r} already")
        if self._farm_view[target] == FARM_KILLED:
            raise Rejected(f"farm {target!r} is killed")
        self._home_view[agent] = target
        return _Plan(command, home or None, target, None, None,
                     lambda: self._commit_move(agent, target))

    # -- applying -----------------------------------------------------------------------
    def _commit_move(self, agent: str, target: str) -> None:
        engine = self.farm_engine
        state = self.agents[agent]
        into = self._farms[target]
        for s, pos in state.positions.items():
            slot = engine.agents[s][pos]
            for farm in engine.farms:
                if pos in farm.columns[s]:
                    k = farm.columns[s].index(pos)
                    farm.columns[s] = _without(farm.columns[s], k)
                    farm.agent_indexes[s] = _without(farm.agent_indexes[s], k)
                    farm.agent_names[s] = _without(farm.agent_names[s], k)
            # Its column joins the farm's in the engine's order (a farm's votes are listed
            # in its agents' order on the symbol).
            k = sum(1 for p in into.columns[s] if p < pos)
            into.columns[s] = (*into.columns[s][:k], pos, *into.columns[s][k:])
            into.agent_indexes[s] = (*into.agent_indexes[s][:k], slot.index,
                                     *into.agent_indexes[s][k:])
            into.agent_names[s] = (*into.agent_names[s][:k], slot.name,
                                   *into.agent_names[s][k:])
            engine.revote(s)
        engine.refresh_voters()

    def _commit_farm_pause(self, farm: Farm, ts: int) -> None:
        farm.state = FARM_PAUSED
        self._stand_down(farm, ts, "farm paused")

    def _commit_farm_resume(self, farm: Farm) -> None:
        engine = self.farm_engine
        farm.state = FARM_ACTIVE
        engine.refresh_voters()
        for s, columns in enumerate(farm.columns):
            farm.last_decision[s] = None  # it decides afresh on its agents' signals now
            if columns:
                engine.revote(s)

    def _commit_farm_kill(self, farm: Farm, ts: int, flatten: bool) -> None:
        farm.state = FARM_KILLED
        farm.risk.kill()
        self._stand_down(farm, ts, "farm kill switch")
        if flatten:
            self.farm_engine.desk.flatten_farm(farm, ts)  # type: ignore[attr-defined]

    def _stand_down(self, farm: Farm, ts: int, reason: str) -> None:
        engine = self.farm_engine
        engine.refresh_voters()
        engine.drop_farm_pending(farm)
        engine.desk.cancel_farm_entries(farm, ts, reason)  # type: ignore[attr-defined]


def _without(items: tuple[Any, ...], k: int) -> tuple[Any, ...]:
    return (*items[:k], *items[k + 1:])
