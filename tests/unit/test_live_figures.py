"""Per-agent figures while a run goes on: refreshed when a position closes, each
refresh equal to what ``AgentPerformance.rows`` (the end-of-run figures) gives over the
bars seen by then; the positions view matches the ledger."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sim.bus import EventBus
from sim.config import load_scenario
from sim.monitor.figures import LiveFigures, agent_figures, trade_returns
from sim.runner import RandomStreams, build_engine, load_market_data, make_recorder
from sim.store import DuckDBStore

ROOT = Path(__file__).resolve().parents[2]


def test_figures_refresh_on_closes_and_match_the_end_of_run_definitions(tmp_path: Path):
    config = load_scenario(ROOT / "scenarios" / "regimes" / "crash.toml")
    streams = RandomStreams.spawn(config.seed, len(config.data), len(config.agents))
    data = load_market_data(config, streams.data)
    bus = EventBus()
    snapshots = []
    with DuckDBStore(tmp_path / "f.duckdb") as store:
        store.create_run("r", config.name, {}, 0, "x", "h")
        recorder = make_recorder(store, "r", data.symbols, config, bus=bus)
        engine = build_engine(config, data, recorder, streams.agents, bus)

        def on_update(figures, held, why):
            assert why == "close"
            expected = {}
            for s, view in enumerate(engine.views):
                rows = engine.performance.rows(s, view.history("open"), view.history("close"))
                for row in rows:
                    expected[(engine.symbols[s], engine.agents[s][row[1]].name)] = row
            qty = {sym: q for sym, q in zip(engine.symbols, engine.portfolio.qty,
                                            strict=True) if q}
            snapshots.append((engine.views[0].n, figures, held, expected, qty))

        live = LiveFigures(bus, engine, on_update)
        live.attach(queued=False)
        engine.run(data)
    total = sum(len(b) for b in data.bars) // len(data.bars)
    assert len(snapshots) >= 2  # refreshed during the run, at closes and flips
    assert snapshots[0][0] < total  # ... not only at the end
    for _, figures, held, expected, qty in snapshots:
        assert {(f.symbol, f.agent) for f in figures} == set(expected)
        for f in figures:
            row = expected[(f.symbol, f.agent)]
            assert f.hit_rate == row[5]
            assert np.isclose(f.shadow_pnl, row[6], rtol=1e-12, atol=1e-12)
        assert {p.symbol: p.quantity for p in held} == qty
        for p in held:
            assert np.isclose(p.unrealized_pnl, (p.mark - p.average_entry) * p.quantity)
            assert p.venue == "alpha"


def test_trade_returns_by_hand():
    # bars 1..5; LONG at bar 1, SHORT at bar 3, FLAT at bar 4
    opens = np.array([10.0, 11.0, 12.0, 11.0, 10.0])
    closes = np.array([11.0, 12.0, 11.0, 10.0, 10.0])
    starts, sides = np.array([1, 3, 4]), np.array([1, -1, 0])
    ends, returns, scored, hits = trade_returns(starts, sides, opens, closes)
    # LONG: enter open[1]=11, leave open[3]=11 -> 0; SHORT: enter open[3]=11, leave open[4]=10
    assert ends.tolist() == [3, 4]
    assert np.allclose(returns, [0.0, 1 - 10 / 11])
    # LONG scored: close[2]=11 > close[0]=11? no; SHORT: close[3]=10 < close[2]=11: hit
    assert (scored, hits) == (2, 1)


def test_figures_with_no_history_yet():
    class Empty:
        views: list = []
        agents: list = []
        symbols: tuple = ()
        performance = None
    assert agent_figures(Empty()) == []
