"""Agent failure tolerance (issue 16 §2): an agent that raises fails a backtest by default;
in a paper session it abstains (the exception stored, its signal withdrawn) until its
circuit breaker puts it in ``errored``; ``resume`` clears it; a slow agent is flagged."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from live.runner import LiveRunner
from sim.agent_commands import AgentCommand, CommandOutcome
from sim.bus import AGENT, AGENT_ERROR, Envelope, EventBus
from sim.bus_events import AgentFailed, AgentStateChanged
from sim.config import parse_scenario
from sim.messages import Bar
from sim.runner import RandomStreams, load_market_data, run_scenario
from sim.store import DuckDBStore
from tests.integration.test_live_seam import _bars

FAILING = "tests.integration._failing_agent:FailsFrom"


def _config(**broken: Any) -> Any:
    return parse_scenario({
        "name": "failures", "seed": 3,
        "data": [{"kind": "gbm", "symbol": "BTC", "bars": 200, "interval": "1m",
                  "price": 100.0, "volatility": 0.8}],
        "agents": [
            {"name": "sma", "kind": "sma_crossover", "params": {"fast": 5, "slow": 20}},
            {"name": "broken", "kind": FAILING, "params": {"fail_from": 50}, **broken},
        ],
        "venues": [{"name": "alpha", "symbols": ["BTC"]}],
    })


class _Feed:
    def __init__(self, bars: list[Bar], before: dict[int, Callable[[], None]]) -> None:
        self.bars, self.before = bars, before

    async def __aiter__(self) -> AsyncIterator[Bar]:
        for i, bar in enumerate(self.bars):
            if i in self.before:
                self.before[i]()
                await asyncio.sleep(0)
            yield bar
            await asyncio.sleep(0)


def _paper(config: Any, store: DuckDBStore, bus: EventBus | None = None,
           before: dict[int, Callable[[LiveRunner], None]] | None = None,
           **kwargs: Any) -> LiveRunner:
    data = load_market_data(config, RandomStreams.spawn(config.seed, 1, 2).data)
    runner = LiveRunner(config, store, bus=bus, **kwargs)
    hooks = {i: (lambda f=f: f(runner)) for i, f in (before or {}).items()}
    asyncio.run(runner.run([_Feed(_bars(data), hooks)]))
    return runner


def test_an_agent_that_raises_fails_a_backtest_by_default(tmp_path: Path) -> None:
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        with pytest.raises(ZeroDivisionError):
            run_scenario(_config(), store)
        row = store.con.execute("SELECT status, error FROM runs").fetchone()
        assert row is not None and row[0] == "failed" and "bar 50: broken" in row[1]


def test_a_paper_session_abstains_then_trips_the_breaker_and_completes(tmp_path: Path) -> None:
    bus = EventBus()
    seen: list[Envelope] = []
    bus.subscribe(seen.append, [AGENT, AGENT_ERROR])
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        runner = _paper(_config(max_errors=3, error_window="10m"), store, bus)
        con, run_id = store.con, runner.run_id
        assert con.execute("SELECT status FROM runs WHERE run_id = ?",
                           [run_id]).fetchone() == ("completed",)
        errors = con.execute(
            "SELECT bar, kind, error_type, last_error, traceback_digest, epoch_ns(ts)"
            " FROM agent_errors WHERE run_id = ? AND agent = 'broken' ORDER BY bar",
            [run_id]).fetchall()
        assert [(e[0], e[1], e[2], e[3]) for e in errors] == [
            (n, "exception", "ZeroDivisionError", f"bar {n}: broken") for n in (50, 51, 52)]
        assert all(len(e[4]) == 16 for e in errors)
        tripped = con.execute(
            "SELECT epoch_ns(ts), command, state_before, state_after, actor, reason"
            " FROM agent_events WHERE run_id = ? AND agent = 'broken' AND command = 'error'",
            [run_id]).fetchall()
        assert len(tripped) == 1 and tripped[0][0] == errors[-1][5]
        assert tripped[0][2:5] == ("active", "errored", "kernel")
        assert "3 errors within 600 s" in tripped[0][5] and "ZeroDivisionError" in tripped[0][5]
        assert runner.lifecycle.states()["broken"] == "errored"
        info = {a.name: a for a in runner.lifecycle.snapshot()}
        assert (info["broken"].state, info["broken"].errors, info["sma"].errors) == (
            "errored", 3, 0)
        # its vote is withdrawn from the first failure on; it voted before
        votes = con.execute(
            "SELECT epoch_ns(d.ts), v.side FROM votes v JOIN decisions d"
            " USING (run_id, decision_id) WHERE run_id = ? AND v.agent = 'broken'"
            " ORDER BY d.ts", [run_id]).fetchall()
        assert any(side != "HOLD" for ts, side in votes if ts < errors[0][5])
        assert all(side == "HOLD" for ts, side in votes if ts >= errors[0][5])
        # the other agent went on voting to the end
        last_sma = con.execute(
            "SELECT max(epoch_ns(ts)) FROM signals WHERE run_id = ? AND agent = 'sma'",
            [run_id]).fetchone()
        assert last_sma is not None and last_sma[0] > errors[-1][5]
    failed = [e.event for e in seen if isinstance(e.event, AgentFailed)]
    assert [f.bar for f in failed] == [50, 51, 52] and failed[0].kind == "exception"
    changed = [e.event for e in seen if isinstance(e.event, AgentStateChanged)
               and e.event.command == "error"]
    assert [(c.agent, c.previous, c.state) for c in changed] == [("broken", "active",
                                                                   "errored")]


def test_a_watched_paper_session_alerts_each_error_and_the_breaker(tmp_path: Path) -> None:
    """As ``quorum live`` watches it: each forgiven error is a warning, the breaker a
    critical alert (what a webhook gets), and the agent's health follows."""
    from quorum.live import watched_runner

    config = _config(max_errors=3, error_window="10m")
    data = load_market_data(config, RandomStreams.spawn(config.seed, 1, 2).data)
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        runner = watched_runner(config, store)
        asyncio.run(runner.run([_Feed(_bars(data), {})]))
        con, run_id = store.con, runner.run_id
        assert con.execute("SELECT status FROM runs WHERE run_id = ?",
                           [run_id]).fetchone() == ("completed",)
        alerts = con.execute(
            "SELECT severity, kind, message FROM alerts WHERE run_id = ? AND source ="
            " 'agent:broken' ORDER BY alert_id", [run_id]).fetchall()
        health = con.execute(
            "SELECT previous, state FROM health WHERE run_id = ? AND component ="
            " 'agent:broken' ORDER BY seq", [run_id]).fetchall()
    assert [(a[0], a[1]) for a in alerts] == [("warning", "agent_error")] * 3 + [
        ("critical", "agent_breaker")]
    assert "(bar 50): ZeroDivisionError: bar 50: broken" in alerts[0][2]
    assert "broken errored (3 errors within 600 s" in alerts[3][2]
    assert health == [("healthy", "degraded"), ("degraded", "critical")]


def test_resume_clears_an_errored_agent(tmp_path: Path) -> None:
    outcomes: list[CommandOutcome] = []

    def resume(runner: LiveRunner) -> None:
        runner.submit(AgentCommand("resume", "broken")).add_done_callback(
            lambda f: outcomes.append(f.result()))

    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        runner = _paper(_config(max_errors=2, error_window=None), store,
                        before={100: resume})
        assert outcomes[0].applied and outcomes[0].state == "active"
        rows = store.con.execute(
            "SELECT command, state_after FROM agent_events WHERE run_id = ? AND agent ="
            " 'broken' ORDER BY seq", [runner.run_id]).fetchall()
        # errored at bar 51, resumed before bar 101, errored again at bar 102
        assert rows == [("start", "active"), ("error", "errored"), ("resume", "active"),
                        ("error", "errored")]
        bars = store.con.execute(
            "SELECT bar FROM agent_errors WHERE run_id = ? AND kind = 'exception'"
            " ORDER BY bar", [runner.run_id]).fetchall()
        assert [b[0] for b in bars] == [50, 51, 101, 102]


def test_abstain_in_a_backtest_when_asked(tmp_path: Path) -> None:
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        result = run_scenario(_config(on_error="abstain", max_errors=0), store)
        assert result.status == "completed"
        n = store.con.execute("SELECT count(*) FROM agent_errors WHERE run_id = ? AND"
                              " kind = 'exception'", [result.run_id]).fetchone()
        assert n == (151,)  # bars 50..200, never tripped
        summary = store.con.execute("SELECT count(*) FROM agent_errors WHERE run_id = ? AND"
                                    " kind = 'calls'", [result.run_id]).fetchone()
        assert summary == (0,)


def test_a_slow_agent_is_flagged_in_a_session(tmp_path: Path, monkeypatch: Any) -> None:
    """The timer is the session's monotonic clock; here a fake one makes every call of
    the sma agent take 7 ms, against a budget of 5 ms."""
    ticks = iter(range(0, 10**15, 7_000_000))
    monkeypatch.setattr("live.runner.time.perf_counter_ns", lambda: next(ticks))
    bus = EventBus()
    flagged: list[AgentFailed] = []
    bus.subscribe(lambda e: flagged.append(e.event), [AGENT_ERROR])
    config = parse_scenario({
        "name": "slow", "seed": 1,
        "data": [{"kind": "gbm", "symbol": "BTC", "bars": 30, "interval": "1m"}],
        "agents": [{"name": "sma", "kind": "sma_crossover", "params": {"fast": 3, "slow": 8},
                    "latency_budget_ms": 5.0},
                   {"name": "fast", "kind": "sma_crossover", "params": {"fast": 2, "slow": 5}}],
        "venues": [{"name": "alpha", "symbols": ["BTC"]}],
    })
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        runner = _paper(config, store, bus)
        rows = store.con.execute(
            "SELECT agent, kind, elapsed_ms FROM agent_errors WHERE run_id = ?",
            [runner.run_id]).fetchall()
        assert rows == [("sma", "latency", 7.0)] * 30
        assert runner.lifecycle.agents["sma"].slow_bars == 30
        assert runner.lifecycle.states() == {"sma": "active", "fast": "active"}
    assert len(flagged) == 30 and flagged[0].kind == "latency"


def test_on_decision_in_a_session_gets_every_stored_decision(tmp_path: Path) -> None:
    from sim.bus_events import DecisionMade

    seen: list[DecisionMade] = []
    config = _config(on_error="abstain", max_errors=0)
    data = load_market_data(config, RandomStreams.spawn(config.seed, 1, 2).data)
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        runner = LiveRunner(config, store, on_decision=seen.append)
        asyncio.run(runner.run([_Feed(_bars(data), {})]))
        stored = store.con.execute(
            "SELECT decision_id, side FROM decisions WHERE run_id = ? ORDER BY decision_id",
            [runner.run_id]).fetchall()
    assert stored and [(d.decision_id, d.side.name) for d in seen] == stored
