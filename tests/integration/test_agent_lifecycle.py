"""Agent lifecycle (issue 16 §1): commands applied between bars, stored in agent_events,
visible in the votes; the same commands sent to a paper session give the same rows at
the same bars; bad commands are stored rejected and the session goes on; a resumed
session takes its agent set from the store."""

from __future__ import annotations

import asyncio
import threading
import tomllib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from live.commands import CommandChannel
from live.runner import LiveRunner
from quorum.cli import main
from sim.agent_commands import AgentBatch, AgentCommand, CommandOutcome, current_agents
from sim.bus import AGENT, EventBus
from sim.bus_events import AgentStateChanged
from sim.config import parse_scenario
from sim.config_base import parse_timestamp
from sim.messages import Bar
from sim.runner import RandomStreams, load_market_data, run_scenario, scripted_commands
from sim.store import DuckDBStore
from tests.integration.test_live_cli import fake  # noqa: F401 (the fake exchange fixture)
from tests.integration.test_live_seam import _bars

OPERATIONS = Path(__file__).resolve().parents[2] / "scenarios" / "operations.toml"


def _raw() -> dict[str, Any]:
    with OPERATIONS.open("rb") as f:
        raw = tomllib.load(f)
    # Relative paths in the file are none (generated data): parse it as a dict.
    return raw


def _votes(con: Any, run_id: str, agent: str, symbol: str | None = None
           ) -> list[tuple[int, str]]:
    """(decision ts, side) of ``agent``'s votes with an opinion."""
    return con.execute(
        "SELECT epoch_ns(d.ts), v.side FROM votes v JOIN decisions d USING (run_id, decision_id)"
        " WHERE run_id = ? AND v.agent = ? AND v.side <> 'HOLD'"
        + (" AND d.symbol = ?" if symbol else "") + " ORDER BY d.ts",
        [run_id, agent, *([symbol] if symbol else [])]).fetchall()


def _events(con: Any, run_id: str) -> list[tuple[Any, ...]]:
    return con.execute(
        "SELECT agent, command, state_before, state_after, params_after, outcome"
        " FROM agent_events WHERE run_id = ? ORDER BY seq", [run_id]).fetchall()


def test_the_operations_scenario_stores_each_command_and_its_effect_on_the_votes(
        tmp_path: Path) -> None:
    config = parse_scenario(_raw())
    bus = EventBus()
    published: list[AgentStateChanged] = []
    bus.subscribe(lambda e: published.append(e.event), [AGENT])
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        run_id = run_scenario(config, store, bus=bus).run_id
        con = store.con
        rows = _events(con, run_id)
        assert [(r[0], r[1], r[2], r[3], r[5]) for r in rows] == [
            ("sma", "start", None, "active", "applied"),
            ("zscore", "start", None, "active", "applied"),
            ("ema", "start", None, "active", "applied"),
            ("sma", "pause", "active", "paused", "applied"),
            ("sma", "resume", "paused", "active", "applied"),
            ("zscore", "update", "active", "active", "applied"),
            ("momentum", "spawn", None, "active", "applied"),
            ("momentum", "update", "active", "active", "applied"),
            ("zscore", "pause", "active", "paused", "applied"),  # the batch, together
            ("breakout", "spawn", None, "active", "applied"),
            ("ema", "stop", "active", "stopped", "applied"),
            ("ema", "resume", "stopped", "stopped", "rejected: agent 'ema' is stopped"),
        ]
        assert '"window": 96' in rows[5][4] and '"entry": 2.0' in rows[5][4]  # merged
        batches = con.execute("SELECT agent, batch, reason FROM agent_events WHERE run_id = ?"
                              " AND batch IS NOT NULL ORDER BY seq", [run_id]).fetchall()
        assert [b[0] for b in batches] == ["zscore", "breakout"]
        assert len({b[1] for b in batches}) == 1 and {b[2] for b in batches} == {"rotate"}
        assert [(e.agent, e.command, e.state) for e in published] == [
            (r[0], r[1], r[3]) for r in rows]
        actors = con.execute("SELECT DISTINCT actor FROM agent_events WHERE run_id = ?"
                             " AND command <> 'start'", [run_id]).fetchall()
        assert actors == [("scenario",)]

        pause, resume = (parse_timestamp(e.at) for e in config.events[:2])
        sma = _votes(con, run_id, "sma")
        assert any(ts < pause for ts, _ in sma) and any(ts >= resume for ts, _ in sma)
        assert not [ts for ts, _ in sma if pause <= ts < resume]  # paused: no votes
        # others voted while it was paused: decisions were made without it
        assert [ts for ts, _ in _votes(con, run_id, "zscore") if pause <= ts < resume]

        spawn, widen = (parse_timestamp(e.at) for e in config.events[3:5])
        rotate, stop = parse_timestamp(config.events[5].at), parse_timestamp(config.events[7].at)
        assert min(ts for ts, _ in _votes(con, run_id, "momentum")) >= spawn
        eth = _votes(con, run_id, "momentum", "ETH")
        assert eth and min(ts for ts, _ in eth) >= widen
        ema = _votes(con, run_id, "ema")
        assert ema and max(ts for ts, _ in ema) < stop
        zscore = _votes(con, run_id, "zscore")
        assert zscore and max(ts for ts, _ in zscore) < rotate  # paused by the batch
        assert min(ts for ts, _ in _votes(con, run_id, "breakout")) >= rotate

        assert [(a.name, a.state, a.symbols) for a in current_agents(con, run_id)] == [
            ("sma", "active", None), ("zscore", "paused", None), ("ema", "stopped", ("ETH",)),
            ("momentum", "active", ("BTC", "ETH")), ("breakout", "active", None)]


def test_the_operations_drill_is_watched_health_and_alerts_follow_the_commands(
        tmp_path: Path) -> None:
    config = parse_scenario(_raw())
    at = [parse_timestamp(e.at) for e in config.events]
    pause, resume, rotate, rejected, kill = at[0], at[1], at[5], at[8], at[9]
    assert config.events[9].kind == "kill_switch"
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        run_id = run_scenario(config, store).run_id  # [monitor]: watched
        con = store.con
        alerts = con.execute("SELECT epoch_ns(ts), severity, source, kind FROM alerts"
                             " WHERE run_id = ? ORDER BY alert_id", [run_id]).fetchall()
        health = con.execute("SELECT epoch_ns(ts), component, previous, state, reason"
                             " FROM health WHERE run_id = ? ORDER BY seq", [run_id]).fetchall()
    kinds = {a[3] for a in alerts}
    detectors = {"drawdown_velocity", "signal_flapping", "agent_silent", "denial_burst",
                 "kill_switch"}
    assert detectors <= kinds  # five detectors, beside the lifecycle's own alerts
    assert (kill, "critical", "risk", "kill_switch") in alerts
    assert (rejected, "info", "agent:ema", "command_rejected") in alerts
    assert {a[2] for a in alerts if a[3] == "signal_flapping"} == {"agent:momentum"}
    assert min(a[0] for a in alerts if a[3] == "signal_flapping") > at[3]  # after its spawn
    # a paused agent is not "silent": silence counts for active agents only
    assert not [a for a in alerts if a[2] == "agent:sma" and a[3] == "agent_silent"
                and pause <= a[0] < resume]
    assert (pause, "agent:sma", "healthy", "degraded",
            "paused by scenario: review after a losing week") in health
    assert (resume, "agent:sma", "degraded", "healthy", "resume by scenario") in health
    assert (rotate, "agent:zscore", "healthy", "degraded", "paused by scenario: rotate") in health
    assert (rotate, "agent:breakout", None, "healthy", "spawn by scenario") in health
    assert (kill, "risk", "healthy", "critical", "kill switch engaged") in health
    overall = [h for h in health if h[1] == "overall"]
    assert overall[0][:4] == (pause, "overall", "healthy", "degraded")
    assert [h for h in overall if h[0] == kill] == [
        (kill, "overall", "degraded", "critical", "risk: kill switch engaged")]


def test_a_replayed_operations_run_is_identical(tmp_path: Path) -> None:
    config = parse_scenario(_raw())
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        a = run_scenario(config, store).run_id
        b = run_scenario(config, store).run_id
        for table, order in (("agent_events", "seq"), ("votes", "decision_id, agent"),
                             ("signals", "ts, symbol, agent"), ("fills", "fill_id"),
                             ("alerts", "alert_id"), ("health", "seq")):
            query = f"SELECT * EXCLUDE (run_id) FROM {table} WHERE run_id = ? ORDER BY {order}"
            assert (store.con.execute(query, [a]).fetchall()
                    == store.con.execute(query, [b]).fetchall())


class _Feed:
    """Bars as fast as the loop allows; before the bar at index ``i`` it calls
    ``before[i]()`` (which may submit commands: they land between two bars)."""

    def __init__(self, bars: list[Bar], before: dict[int, Callable[[], None]]) -> None:
        self.bars = bars
        self.before = before

    async def __aiter__(self) -> AsyncIterator[Bar]:
        for i, bar in enumerate(self.bars):
            hook = self.before.get(i)
            if hook is not None:
                hook()
                await asyncio.sleep(0)
            yield bar
            await asyncio.sleep(0)


def _session(config: Any, store: DuckDBStore, hooks: Callable[[LiveRunner, list[Bar]],
             dict[int, Callable[[], None]]], **kwargs: Any) -> LiveRunner:
    data = load_market_data(config, RandomStreams.spawn(
        config.seed, len(config.data), len(config.agents)).data)
    bars = _bars(data)
    runner = LiveRunner(config, store, symbols=data.symbols, **kwargs)
    asyncio.run(runner.run([_Feed(bars, hooks(runner, bars))]))
    return runner


def _first_at(bars: list[Bar], ts: int) -> int:
    return next(i for i, b in enumerate(bars) if b.ts >= ts)


def test_the_same_commands_sent_to_a_paper_session_give_the_same_rows_at_the_same_bars(
        tmp_path: Path) -> None:
    raw = _raw()
    scripted = parse_scenario(raw)
    live_config = parse_scenario({**raw, "events": [
        e for e in raw["events"] if not e["kind"].startswith("agent_")]})
    outcomes: list[CommandOutcome] = []

    def hooks(runner: LiveRunner, bars: list[Bar]) -> dict[int, Callable[[], None]]:
        out: dict[int, Callable[[], None]] = {}
        for at, command in scripted_commands(scripted):  # the batch as one AgentBatch
            out[_first_at(bars, at)] = (
                lambda c=command: runner.submit(c).add_done_callback(
                    lambda f: outcomes.append(f.result())))
        return out

    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        backtest = run_scenario(scripted, store).run_id
        paper = _session(live_config, store, hooks).run_id
        con = store.con
        assert [o.command for o in outcomes] == [
            "pause", "resume", "update", "spawn", "update", "batch", "stop", "resume"]
        assert [o.applied for o in outcomes] == [True] * 7 + [False]
        assert _events(con, paper) == _events(con, backtest)
        for table, columns, order in (
                ("votes", "decision_id, agent, side, confidence, weight", "decision_id, agent"),
                ("decisions", "decision_id, ts, symbol, side, confidence, target",
                 "decision_id"),
                ("fills", "ts, symbol, quantity, price, fee", "fill_id")):
            query = f"SELECT {columns} FROM {table} WHERE run_id = ? ORDER BY {order}"
            assert con.execute(query, [paper]).fetchall() == con.execute(
                query, [backtest]).fetchall(), table
        # A scripted command runs at its time, before that time's bars; a submitted one
        # right after the bars before it: between the same two bars.
        stamps = "SELECT epoch_ns(ts) FROM agent_events WHERE run_id = ? AND command <> 'start'"
        bar_times = sorted({b.ts for b in _bars(load_market_data(scripted, RandomStreams.spawn(
            scripted.seed, 1, 3).data))})
        scripted_at = [r[0] for r in con.execute(stamps + " ORDER BY seq", [backtest]).fetchall()]
        sent_at = [r[0] for r in con.execute(stamps + " ORDER BY seq", [paper]).fetchall()]
        assert sent_at == [max(t for t in bar_times if t < at) for at in scripted_at]
        # Signals match too, but for the ones a command stood (stamped with its time).
        query = ("SELECT epoch_ns(ts), symbol, agent, side, confidence FROM signals"
                 " WHERE run_id = ? ORDER BY ts, symbol, agent")
        moved = set(scripted_at) | set(sent_at)
        theirs = con.execute(query, [backtest]).fetchall()
        ours = con.execute(query, [paper]).fetchall()
        assert len(theirs) == len(ours)
        assert [r for r in ours if r[0] not in moved] == [r for r in theirs
                                                          if r[0] not in moved]


def test_bad_commands_are_stored_rejected_and_the_session_goes_on(tmp_path: Path) -> None:
    config = parse_scenario({**_raw(), "events": []})
    outcomes: dict[str, CommandOutcome] = {}

    def send(label: str, runner: LiveRunner, command: AgentCommand | AgentBatch) -> None:
        runner.submit(command).add_done_callback(
            lambda f: outcomes.__setitem__(label, f.result()))

    def hooks(runner: LiveRunner, bars: list[Bar]) -> dict[int, Callable[[], None]]:
        def first() -> None:
            send("unknown agent", runner, AgentCommand("pause", "nobody", reason="typo"))
            send("unknown kind", runner, AgentCommand("spawn", "x", kind="no_such_agent"))
            send("bad params", runner, AgentCommand("update", "sma", params={"fast": 0}))
            send("stop", runner, AgentCommand("stop", "ema"))
            send("on stopped", runner, AgentCommand("resume", "ema"))
            send("batch", runner, AgentBatch((
                AgentCommand("pause", "sma"), AgentCommand("pause", "ghost"),
                AgentCommand("spawn", "m", kind="momentum"))))

        def later() -> None:
            send("batch ok", runner, AgentBatch((
                AgentCommand("pause", "sma"),
                AgentCommand("spawn", "m", kind="momentum", params={"window": 10}),
                AgentCommand("pause", "m")), actor="ops", reason="together"))
        return {400: first, 800: later}

    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        runner = _session(config, store, hooks)
        run_id = runner.run_id
        status = store.con.execute("SELECT status FROM runs WHERE run_id = ?",
                                   [run_id]).fetchone()
        assert status == ("completed",)
        o = outcomes
        assert o["unknown agent"].outcome.startswith("rejected: unknown agent 'nobody'")
        assert "unknown agent 'no_such_agent'" in o["unknown kind"].outcome
        assert "params.fast" in o["bad params"].outcome
        assert o["stop"].applied
        assert o["on stopped"].outcome == "rejected: agent 'ema' is stopped"
        assert o["batch"].outcome.startswith("rejected: batch command 2 (pause 'ghost')")
        assert [r.applied for r in o["batch"].results] == [False, False, False]
        assert o["batch ok"].applied and [r.state for r in o["batch ok"].results] == [
            "paused", "active", "paused"]
        rows = store.con.execute(
            "SELECT agent, command, outcome, actor, reason, batch FROM agent_events"
            " WHERE run_id = ? AND command <> 'start' ORDER BY seq", [run_id]).fetchall()
        assert [r[:2] for r in rows] == [
            ("nobody", "pause"), ("x", "spawn"), ("sma", "update"), ("ema", "stop"),
            ("ema", "resume"), ("sma", "pause"), ("ghost", "pause"), ("m", "spawn"),
            ("sma", "pause"), ("m", "spawn"), ("m", "pause")]
        assert rows[0][4] == "typo"
        assert [r[2] == "applied" for r in rows] == [False] * 3 + [True] + [False] * 4 + [
            True] * 3
        assert len({r[5] for r in rows[5:8]}) == 1 and rows[5][5] is not None
        assert {r[3] for r in rows[8:]} == {"ops"}
        assert runner.lifecycle.states() == {"sma": "paused", "zscore": "active",
                                             "ema": "stopped", "m": "paused"}
        # the paused agents' votes stop at the batch
        batch_ts = _bars_ts(store, run_id, 800)
        assert not [ts for ts, _ in _votes(store.con, run_id, "sma") if ts >= batch_ts]


def _bars_ts(store: DuckDBStore, run_id: str, index: int) -> int:
    rows = store.con.execute("SELECT DISTINCT epoch_ns(ts) FROM bars WHERE run_id = ?"
                             " ORDER BY 1", [run_id]).fetchall()
    return int(rows[index // 2][0])


def test_a_resumed_session_takes_its_agents_from_the_store(tmp_path: Path) -> None:
    config = parse_scenario({**_raw(), "events": []})

    def hooks(runner: LiveRunner, bars: list[Bar]) -> dict[int, Callable[[], None]]:
        return {300: lambda: runner.submit(AgentBatch((
            AgentCommand("spawn", "m", kind="momentum", params={"window": 12},
                         symbols=("ETH",)),
            AgentCommand("pause", "sma"), AgentCommand("stop", "ema"),
            AgentCommand("update", "zscore", params={"window": 64}))))}

    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        first = _session(config, store, hooks)
        resumed = LiveRunner(config, store, symbols=first.symbols, run_id=first.run_id,
                             resume=True)
        assert resumed.lifecycle.states() == {"sma": "paused", "zscore": "active",
                                              "ema": "stopped", "m": "active"}
        assert resumed.lifecycle.agents["zscore"].params["window"] == 64
        assert resumed.lifecycle.agents["m"].symbols == ("ETH",)
        assert resumed.lifecycle.seq == first.lifecycle.seq


def test_quorum_agent_from_a_shell_reaches_a_running_session(tmp_path: Path) -> None:
    config = parse_scenario({**_raw(), "events": []})
    db = tmp_path / "runs.duckdb"
    channel = CommandChannel(tmp_path / "runs.commands", poll_s=0.01)
    codes: list[int] = []
    done = threading.Event()

    def shell() -> None:
        codes.append(main(["agent", "pause", "sma", "--db", str(db), "--reason", "manual",
                           "--wait", "20"]))
        codes.append(main(["agent", "pause", "nobody", "--db", str(db), "--wait", "20"]))
        done.set()

    class Slow(_Feed):
        async def __aiter__(self) -> AsyncIterator[Bar]:
            for i, bar in enumerate(self.bars):
                if i == 200:
                    threading.Thread(target=shell, daemon=True).start()
                if i >= 200 and not done.is_set():
                    await asyncio.sleep(0.005)
                yield bar
                await asyncio.sleep(0)

    data = load_market_data(config, RandomStreams.spawn(config.seed, 1, 3).data)
    with DuckDBStore(db) as store:
        runner = LiveRunner(config, store, symbols=data.symbols)
        asyncio.run(runner.run([Slow(_bars(data), {})], commands=channel))
        assert codes == [0, 1]
        rows = store.con.execute(
            "SELECT agent, command, actor, reason, outcome FROM agent_events"
            " WHERE run_id = ? AND command <> 'start' ORDER BY seq", [runner.run_id]).fetchall()
        assert rows[0] == ("sma", "pause", "operator", "manual", "applied")
        assert rows[1][:2] == ("nobody", "pause") and rows[1][4].startswith("rejected")


def test_quorum_agent_without_a_session_says_so(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["agent", "resume", "sma", "--db", str(tmp_path / "x.duckdb"),
                 "--wait", "0.2"]) == 1
    assert "no session took the command" in capsys.readouterr().out
    assert list((tmp_path / "x.commands").iterdir()) == []  # withdrawn
    assert main(["agent", "spawn", "m", "--db", str(tmp_path / "x.duckdb")]) == 2


def test_quorum_agent_steers_a_quorum_live_paper_session_on_the_fake(
        tmp_path: Path, fake: Any) -> None:  # noqa: F811 (the fixture)
    """End to end, as the README says it: ``quorum live --paper`` in a child process on
    the fake exchange, ``quorum agent`` from this one; outcomes come back while it runs."""
    import signal as signals

    from live.hyperliquid.stream import candle
    from tests.integration.test_live_cli import Child, pusher

    child = Child(tmp_path, fake)
    child.wait(lambda: fake.subscribed(candle("ETH", "1m")) == 1, "subscription")
    db = str(child.db)
    assert main(["agent", "pause", "sma", "--reason", "review", "--db", db]) == 0
    assert main(["agent", "spawn", "mom", "--kind", "momentum", "--param", "window=3",
                 "--db", db]) == 0
    assert main(["agent", "update", "mom", "--param", "window=0", "--db", db]) == 1
    assert main(["agent", "resume", "sma", "mom", "--db", db]) == 1  # mom is active
    pusher(fake, 3).join(5)
    assert main(["agent", "kill", "--flatten", "--reason", "drill", "--db", db]) == 0
    child.wait(lambda: child.saw("KILL SWITCH pulled by command by operator (drill)"),
               "the kill command")
    child.proc.send_signal(signals.SIGINT)
    assert child.end() == 130, "".join(child.lines)
    with DuckDBStore(child.db) as store:
        rows = store.con.execute(
            "SELECT agent, command, outcome, reason FROM agent_events ORDER BY seq").fetchall()
        states = store.con.execute("SELECT agent, state FROM agent_states ORDER BY first_seq"
                                   ).fetchall()
    assert [(r[0], r[1], r[2].split(":")[0]) for r in rows] == [
        ("sma", "start", "applied"), ("sma", "pause", "applied"), ("mom", "spawn", "applied"),
        ("mom", "update", "rejected"), ("sma", "resume", "rejected"),
        ("mom", "resume", "rejected"), ("*", "kill", "applied")]
    assert "params.window" in rows[3][2] and rows[1][3] == "review"
    assert states == [("sma", "paused"), ("mom", "active")]


def test_parity_explains_what_a_command_sent_to_the_session_changed(tmp_path: Path) -> None:
    """``quorum parity`` replays a session's bars without the commands sent to it: each
    divergence they cause is explained from agent_events ("sma paused by ops at T"),
    none is left unexplained."""
    from quorum.parity import replay
    from reports.parity import parity

    config = parse_scenario({**_raw(), "events": []})
    sent: dict[str, int] = {}

    def hooks(runner: LiveRunner, bars: list[Bar]) -> dict[int, Callable[[], None]]:
        def pause() -> None:
            runner.submit(AgentCommand("pause", "sma", actor="ops", reason="review"))

        def spawn() -> None:
            runner.submit(AgentCommand("spawn", "mom", actor="ops", kind="momentum",
                                       params={"window": 12}))
        return {400: pause, 900: spawn}

    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        session = _session(config, store, hooks).run_id
        for agent, ts in store.con.execute(
                "SELECT agent, epoch_ns(ts) FROM agent_events WHERE run_id = ? AND actor = 'ops'",
                [session]).fetchall():
            sent[agent] = ts
        rep = replay(store.con, session)
    try:
        result = parity(rep.store.con, rep.live_run, rep.replay_run, rep.mode)
    finally:
        rep.store.close()
    assert result.divergences and not result.unexplained
    assert {d.cause for d in result.divergences} <= {"lifecycle", "carried"}
    signals = [d for d in result.divergences if d.stage == "signals"]
    assert {d.key for d in signals} == {"sma", "mom"}  # nobody else's signals moved
    for d in signals:
        assert d.cause == "lifecycle" and d.ts >= sent[d.key]
    said = {d.key: d.detail for d in signals}
    assert said["sma"].startswith("sma paused by ops at ") and said["sma"].endswith("(review)")
    assert said["mom"].startswith("mom spawned by ops at ")
    first = min(d.ts for d in result.divergences)
    assert sent["sma"] <= first < sent["mom"]  # nothing diverged before the first command
