"""The agent roster's rules (sim.lifecycle): a spawned or updated agent is warmed up on the
history so it behaves as if it had run from the start; a paused agent keeps its view
warm and stands it again on resume; a batch is all or none; a kill command is the
account's kill switch; bad scenario events are one line naming the field; embedders get
each decision through ``on_decision``."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from research.sweep_worker import CollectingStore
from sim.agent_commands import (
    AgentBatch,
    AgentCommand,
    CommandError,
    command_json,
    parse_command,
)
from sim.bus_events import DecisionMade
from sim.config import parse_scenario
from sim.config_base import ConfigError, parse_timestamp
from sim.engine import PRIORITY_EVENT
from sim.runner import run_scenario

START = "2024-01-01T00:00:00Z"
SPAWN_AT = "2024-01-01T05:00:00Z"  # bar 301 of 1-minute bars


def _raw(agents: list[dict[str, Any]], events: list[dict[str, Any]] | None = None,
         **extra: Any) -> dict[str, Any]:
    return {
        "name": "roster", "seed": 5,
        "data": [{"kind": "gbm", "symbol": "BTC", "bars": 600, "interval": "1m",
                  "start": START, "price": 100.0, "volatility": 1.0},
                 {"kind": "gbm", "symbol": "ETH", "bars": 600, "interval": "1m",
                  "start": START, "price": 50.0, "volatility": 1.2}],
        "agents": agents, "events": events or [],
        "venues": [{"name": "alpha", "symbols": ["BTC", "ETH"]}], **extra}


SMA = {"name": "sma", "kind": "sma_crossover", "params": {"fast": 5, "slow": 20}}
MOMENTUM = {"name": "mom", "kind": "momentum", "params": {"window": 15}}


def _rows(store: CollectingStore, table: str) -> list[dict[str, Any]]:
    found = store.table(table)
    return [] if found is None else found.to_pylist()


def _signals(store: CollectingStore, agent: str) -> list[tuple[Any, ...]]:
    return [(r["ts"], r["symbol"], r["side"], r["confidence"])
            for r in _rows(store, "signals") if r["agent"] == agent]


def test_a_spawned_agent_acts_as_if_it_had_run_from_the_start() -> None:
    from_start = CollectingStore()
    run_scenario(parse_scenario(_raw([SMA, MOMENTUM])), from_start, run_id="a")
    spawned = CollectingStore()
    run_scenario(parse_scenario(_raw([SMA], [
        {"at": SPAWN_AT, "kind": "agent_spawn", "agent": "mom", "agent_kind": "momentum",
         "params": {"window": 15}}])), spawned, run_id="b")
    at = parse_timestamp(SPAWN_AT)
    ours = _signals(spawned, "mom")
    theirs = _signals(from_start, "mom")
    assert not [s for s in ours if s[0].value < at]
    # at the spawn it stands the view the from-start agent held then (before the bars
    # of that time), and from then on it says what that agent says
    held = [(ours[0][0], sym, *[s for s in theirs if s[0].value < at and s[1] == sym][-1][2:])
            for sym in ("BTC", "ETH")]
    assert ours == held + [s for s in theirs if s[0].value >= at]
    assert len(ours) > 10


def test_a_resumed_agent_stands_the_view_it_formed_while_paused() -> None:
    pause, resume = "2024-01-01T02:00:00Z", "2024-01-01T06:00:00Z"
    store = CollectingStore()
    run_scenario(parse_scenario(_raw([SMA, MOMENTUM], [
        {"at": pause, "kind": "agent_pause", "agent": "mom"},
        {"at": resume, "kind": "agent_resume", "agent": "mom"}])), store, run_id="r")
    plain = CollectingStore()
    run_scenario(parse_scenario(_raw([SMA, MOMENTUM])), plain, run_id="p")
    t0, t1 = parse_timestamp(pause), parse_timestamp(resume)
    ours, theirs = _signals(store, "mom"), _signals(plain, "mom")
    assert not [s for s in ours if t0 <= s[0].value < t1]  # nothing stood while paused
    assert [s for s in ours if s[0].value < t0] == [s for s in theirs if s[0].value < t0]
    # on resume it stands the view it formed while paused (what an agent never paused
    # held then), then goes on as that agent
    view = [(t1, sym, *[s for s in theirs if s[0].value < t1 and s[1] == sym][-1][2:])
            for sym in ("BTC", "ETH")]
    assert [(s[0].value, *s[1:]) for s in ours if s[0].value >= t1][:2] == view
    assert [s for s in ours if s[0].value >= t1][2:] == [s for s in theirs
                                                         if s[0].value >= t1]


def test_an_update_that_drops_a_symbol_withdraws_its_vote_there() -> None:
    at = "2024-01-01T04:00:00Z"
    store = CollectingStore()
    run_scenario(parse_scenario(_raw([SMA, MOMENTUM], [
        {"at": at, "kind": "agent_update", "agent": "mom", "symbols": ["BTC"]}])), store,
        run_id="u")
    decisions = {r["decision_id"]: r for r in _rows(store, "decisions")}
    eth_after = [v for v in _rows(store, "votes") if v["agent"] == "mom"
                 and decisions[v["decision_id"]]["symbol"] == "ETH"
                 and decisions[v["decision_id"]]["ts"].value >= parse_timestamp(at)]
    assert eth_after and all(v["side"] == "HOLD" for v in eth_after)


def _run_with(config: Any, commands: list[tuple[int, AgentCommand | AgentBatch]],
              run_id: str = "c") -> CollectingStore:
    """Run ``config`` with ``commands`` on the engine's event queue at their minute after
    the start (what a scenario's events do, for commands no event kind spells)."""
    from sim import runner as runner_module

    built = runner_module.build_engine

    def capture(*args: Any, **kwargs: Any) -> Any:
        engine = built(*args, **kwargs)
        start = parse_timestamp(START)
        for minute, command in commands:
            engine.queue.push(start + minute * 60_000_000_000, PRIORITY_EVENT,
                              engine.lifecycle.apply, command)
        return engine

    runner_module.build_engine = capture  # type: ignore[assignment]
    try:
        store = CollectingStore()
        run_scenario(config, store, run_id=run_id)
    finally:
        runner_module.build_engine = built  # type: ignore[assignment]
    return store


def test_a_kill_command_is_the_account_kill_switch() -> None:
    config = parse_scenario(_raw([SMA, MOMENTUM], policy={"allow_short": True}))
    store = _run_with(config, [(300, AgentCommand("kill", "*", "risk desk", "drill",
                                                  flatten=True))])
    rows = [r for r in _rows(store, "agent_events") if r["command"] == "kill"]
    assert [(r["agent"], r["actor"], r["reason"], r["outcome"]) for r in rows] == [
        ("*", "risk desk", "drill", "applied")]
    kill_ts = rows[0]["ts"]
    flattens = {e["symbol"] for e in _rows(store, "order_events")
                if e["reason"] == "flatten" and e["event"] == "submitted"}
    assert flattens and all(e["ts"] == kill_ts for e in _rows(store, "order_events")
                            if e["reason"] == "flatten")
    later = [f for f in _rows(store, "fills") if f["ts"] > kill_ts]
    denied = [e for e in _rows(store, "order_events")
              if e["ts"] > kill_ts and e["event"] == "denied"]
    assert denied and all("kill switch" in e["reason"] for e in denied)
    for f in later:  # only reductions after the kill
        assert abs(f["position_after"]) <= abs(f["position_after"] - f["quantity"]) + 1e-9


@pytest.mark.parametrize(("event", "message"), [
    ({"kind": "agent_spawn", "agent": "x"}, "events.0: agent_kind: required"),
    ({"kind": "agent_spawn", "agent": "x", "agent_kind": "momentum",
      "params": {"window": 0}}, "params.window"),
    ({"kind": "agent_spawn", "agent": "sma", "agent_kind": "momentum"},
     "events.0.agent: 'sma' is an agent already"),
    ({"kind": "agent_pause", "agent": "ghost"}, "events.0.agent: no agent is named 'ghost'"),
    ({"kind": "agent_pause"}, "agent: required"),
    ({"kind": "agent_update", "agent": "sma"}, "params: an agent_update changes"),
    ({"kind": "agent_pause", "agent": "sma", "params": {"fast": 3}}, "params: not for"),
    ({"kind": "agent_stop", "agent": "sma", "venue": "alpha"}, "venue: not for"),
    ({"kind": "agent_update", "agent": "sma", "symbols": ["DOGE"]},
     "events.0.symbols: 'DOGE' is not in data"),
    ({"kind": "kill_switch", "agent": "sma"}, "agent: only for agent_* events"),
    ({"kind": "kill_switch", "batch": "b"}, "batch: only for agent_* events"),
    ({"kind": "agent_pause", "agent": "sma", "batch": ""}, "batch: String should have"),
])
def test_bad_agent_events_are_one_line_naming_the_field(event: dict[str, Any],
                                                        message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_scenario(_raw([SMA], [{"at": SPAWN_AT, **event}]))
    text = str(err.value)
    assert message in text and "\n" not in text


def test_a_scripted_batch_shares_its_time_and_is_applied_all_or_none() -> None:
    pause = {"at": SPAWN_AT, "kind": "agent_pause", "agent": "sma", "batch": "b"}
    with pytest.raises(ConfigError, match=r"events\.1\.at: batch 'b' is applied at "
                       f"{SPAWN_AT}; every command"):
        parse_scenario(_raw([SMA, MOMENTUM], [
            pause, {**pause, "at": "2024-01-01T06:00:00Z", "agent": "mom"}]))
    # the same time written another way is the same time
    parse_scenario(_raw([SMA, MOMENTUM], [pause, {**pause, "at": "2024-01-01 05:00",
                                                  "agent": "mom"}]))
    # resuming an active agent is refused at run time: the whole batch is, sma keeps voting
    store = CollectingStore()
    run_scenario(parse_scenario(_raw([SMA, MOMENTUM], [
        pause, {**pause, "kind": "agent_resume", "agent": "mom"},
        {"at": SPAWN_AT, "kind": "agent_pause", "agent": "mom"}])), store)
    rows = [(r["agent"], r["command"], r["outcome"].split(":")[0], r["batch"])
            for r in _rows(store, "agent_events") if r["command"] != "start"]
    batch = rows[0][3]
    assert batch is not None and rows == [
        ("sma", "pause", "rejected", batch), ("mom", "resume", "rejected", batch),
        ("mom", "pause", "applied", None)]
    spawn = parse_timestamp(SPAWN_AT)
    assert [s for s in _signals(store, "sma") if s[0].value > spawn]


def test_tolerance_fields_leave_old_scenarios_dumping_as_before() -> None:
    config = parse_scenario(_raw([SMA]))
    dumped = config.model_dump(mode="json")
    assert set(dumped["agents"][0]) == {"name", "kind", "params", "symbols", "max_error_rate"}
    set_ = parse_scenario(_raw([{**SMA, "on_error": "abstain", "max_errors": 2}]))
    assert set_.model_dump()["agents"][0]["on_error"] == "abstain"
    with pytest.raises(ConfigError, match="error_window"):
        parse_scenario(_raw([{**SMA, "error_window": "soon"}]))


def test_commands_round_trip_through_json_and_bad_ones_name_the_field() -> None:
    batch = AgentBatch((AgentCommand("spawn", "m", kind="momentum", params={"window": 3},
                                     symbols=("BTC",)),
                        AgentCommand("kill", "*", flatten=True)), actor="api", reason="r")
    assert parse_command(command_json(batch)) == batch
    with pytest.raises(CommandError, match=r"^command: Input should be"):
        parse_command({"command": "explode", "agent": "x"})
    with pytest.raises(CommandError, match=r"^batch\.0\.agent"):
        parse_command({"batch": [{"command": "pause", "agent": ""}]})
    with pytest.raises(CommandError, match=r"^colour: Extra inputs"):
        parse_command({"command": "pause", "agent": "x", "colour": "red"})


def test_on_decision_gets_every_stored_decision_in_order() -> None:
    seen: list[DecisionMade] = []
    store = CollectingStore()
    run_scenario(parse_scenario(_raw([SMA, MOMENTUM])), store, run_id="d",
                 on_decision=seen.append)
    stored = _rows(store, "decisions")
    assert [d.decision_id for d in seen] == [r["decision_id"] for r in stored]
    assert [d.side.name for d in seen] == [r["side"] for r in stored]
    assert all(d.agents == ("sma", "mom") for d in seen)


_VERBS = st.sampled_from(["pause", "resume", "stop", "update", "spawn"])
_NAMES = st.sampled_from(["sma", "mom", "new", "ghost"])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 500), _VERBS, _NAMES), max_size=8),
       st.lists(st.tuples(_VERBS, _NAMES), min_size=1, max_size=4))
def test_no_agent_that_is_not_active_ever_votes_and_a_batch_is_all_or_none(
        singles: list[tuple[int, str, str]], batch: list[tuple[str, str]]) -> None:
    """Random command sequences (many rejected): the stored votes of an agent between a
    command that left it inactive and the next that made it active are all HOLD, and a
    batch's rows are all applied or all rejected."""
    def command(verb: str, name: str) -> AgentCommand:
        if verb == "spawn":
            return AgentCommand("spawn", name, kind="momentum", params={"window": 7})
        if verb == "update":
            return AgentCommand("update", name, params={"window": 9} if name != "sma"
                                else {"fast": 4})
        return AgentCommand(verb, name)

    store = _run_with(parse_scenario(_raw([SMA, MOMENTUM])), [
        *[(minute, command(verb, name)) for minute, verb, name in singles],
        (550, AgentBatch(tuple(command(v, n) for v, n in batch)))])
    events = sorted(_rows(store, "agent_events"), key=lambda r: r["seq"])
    batch_rows = [r for r in events if r["batch"] is not None]
    assert len({r["outcome"] == "applied" for r in batch_rows}) == 1
    assert len(batch_rows) == len(batch)
    # each agent's state over time, from the applied rows
    timeline: dict[str, list[tuple[int, str]]] = {}
    for r in events:
        if r["outcome"] == "applied" and r["agent"] != "*":
            timeline.setdefault(r["agent"], []).append((r["ts"].value, r["state_after"]))
    decisions = {r["decision_id"]: r["ts"].value for r in _rows(store, "decisions")}
    for vote in _rows(store, "votes"):
        states = [s for t, s in timeline.get(vote["agent"], []) if t <= decisions[
            vote["decision_id"]]]
        if states and states[-1] != "active":
            assert vote["side"] == "HOLD", (vote, states)


def test_commands_queued_outside_the_scenarios_events_keep_the_per_bar_loop() -> None:
    """The fast path hands its event bars to agents whose signal changes; a command
    queued on the engine by other means than ``[[events]]`` (here directly) changes
    agents it cannot see coming, so the run takes the per-bar loop and says why."""
    store = _run_with(parse_scenario(_raw([SMA, MOMENTUM])),
                      [(550, AgentCommand("pause", "sma"))])
    info = {r["key"]: r["value"] for r in _rows(store, "run_info")}
    assert info == {"engine_path": "per-bar", "engine_path_reason":
                    "agent lifecycle commands queued change agents mid-run"}
