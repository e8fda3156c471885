"""Agents' shadow series (reports.slices) against a hand-computed case and against the
engine's own, independent implementation (sim.performance.AgentPerformance); the
execution and funding frames read only when the store has them."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reports.execution import (
    EXECUTION_COLUMNS,
    FUNDING_COLUMNS,
    execution_by,
    execution_frame,
    execution_metrics,
    funding_frame,
    funding_paid,
)
from reports.slices import shadow_episodes, shadow_increments
from sim.messages import FLAT, HOLD, LONG, SHORT
from sim.performance import AgentPerformance
from sim.store import DuckDBStore

SIDES = {1: LONG, -1: SHORT, 0: FLAT}


def test_shadow_increments_by_hand() -> None:
    # bars 0..5 (open, close): (10, 11) (12, 12) (12, 15) (14, 13) (13, 10) (9, 8)
    ts = np.arange(6, dtype=np.int64)
    o = np.array([10.0, 12.0, 12.0, 14.0, 13.0, 9.0])
    c = np.array([11.0, 12.0, 15.0, 13.0, 10.0, 8.0])
    # LONG at bar 0's close -> entered at bar 1's open (12); SHORT at bar 2 -> the long is
    # left at bar 3's open (14) and the short entered there (14); FLAT at bar 4 -> the
    # short is left at bar 5's open (9).
    inc = shadow_increments(ts, o, c, np.array([0, 2, 4]), np.array([1, -1, 0]))
    expected = [
        0.0,                                 # bar 0: nothing held yet
        (12 - 12) / 12,                      # bar 1: long, open 12 -> close 12
        (12 - 12) / 12 + (15 - 12) / 12,     # bar 2: gap 12 -> 12, then 12 -> 15
        (14 - 15) / 12 - (13 - 14) / 14,     # bar 3: long's gap 15 -> 14; short 14 -> 13
        -(13 - 13) / 14 - (10 - 13) / 14,    # bar 4: short: gap 13 -> 13, 13 -> 10
        -(9 - 10) / 14 + 0.0,                # bar 5: short's gap 10 -> 9; then flat
    ]
    assert inc == pytest.approx(expected, rel=1e-12, abs=1e-15)
    # the episodes: long 12 -> 14, short 14 -> 9
    episodes = shadow_episodes(ts, o, c, np.array([0, 2, 4]), np.array([1, -1, 0]))
    assert episodes == pytest.approx([14 / 12 - 1, -(9 / 14 - 1)], rel=1e-12)
    assert inc.sum() == pytest.approx(episodes.sum(), rel=1e-12)


def test_a_signal_on_the_last_bar_never_enters_and_an_open_one_ends_at_the_last_close() -> None:
    ts = np.arange(4, dtype=np.int64)
    o = np.array([10.0, 11.0, 12.0, 13.0])
    c = np.array([10.5, 11.5, 12.5, 13.5])
    # LONG at bar 1 (entered at 12, bar 2's open), still open at the end: 13.5 / 12 - 1
    assert shadow_episodes(ts, o, c, np.array([1]), np.array([1])) == pytest.approx(
        [13.5 / 12 - 1])
    assert shadow_increments(ts, o, c, np.array([1]), np.array([1])).sum() == pytest.approx(
        13.5 / 12 - 1)
    # LONG on the last bar: nothing
    assert len(shadow_episodes(ts, o, c, np.array([3]), np.array([1]))) == 0
    assert not shadow_increments(ts, o, c, np.array([3]), np.array([1])).any()


def test_a_signal_off_the_bars_is_refused() -> None:
    ts = np.array([0, 10, 20], dtype=np.int64)
    with pytest.raises(ValueError, match="not on a bar"):
        shadow_increments(ts, np.ones(3), np.ones(3), np.array([5]), np.array([1]))


@st.composite
def bars_and_signals(draw: st.DrawFn):
    n = draw(st.integers(2, 120))
    steps = np.array(draw(st.lists(st.floats(-0.05, 0.05), min_size=2 * n, max_size=2 * n)))
    path = 100.0 * np.cumprod(1.0 + steps)
    opens, closes = path[0::2], path[1::2]
    at = sorted(draw(st.sets(st.integers(0, n - 1), max_size=n)))
    sides = draw(st.lists(st.sampled_from([1, -1, 0, 2]), min_size=len(at), max_size=len(at)))
    return opens, closes, np.array(at, dtype=np.int64), np.array(sides)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bars_and_signals())
def test_shadow_pnl_matches_the_engines_agent_performance(case) -> None:
    opens, closes, at, sides = case
    perf = AgentPerformance([1], online=False)
    for bar, side in zip(at, sides, strict=True):
        perf.on_signal(0, 0, SIDES.get(int(side), HOLD), int(bar) + 1, float(closes[bar]))
    engine_pnl = perf.rows(0, opens, closes)[0][6]
    signs = np.where(np.abs(sides) == 1, sides, 0)  # HOLD (2 here) holds nothing
    ts = np.arange(len(opens), dtype=np.int64) * 60
    inc = shadow_increments(ts, opens, closes, at * 60, signs)
    episodes = shadow_episodes(ts, opens, closes, at * 60, signs)
    assert inc.sum() == pytest.approx(engine_pnl, rel=1e-9, abs=1e-12)
    assert episodes.sum() == pytest.approx(engine_pnl, rel=1e-9, abs=1e-12)


# -- execution and funding frames: None until the store holds them ------------------------
def test_frames_are_none_without_the_columns(tmp_path) -> None:
    # the tables as the store wrote them before the execution issue (schema 6)
    with duckdb.connect(str(tmp_path / "s6.duckdb")) as con:
        con.execute("CREATE TABLE orders (run_id VARCHAR, order_id BIGINT, ts TIMESTAMP_NS,"
                    " ref_price DOUBLE, status VARCHAR)")
        con.execute("CREATE TABLE fills (run_id VARCHAR, fill_id BIGINT, order_id BIGINT,"
                    " ts TIMESTAMP_NS, price DOUBLE)")
        assert execution_frame(con, "any") is None
        assert funding_frame(con, "any") is None
    assert funding_paid(None) is None


def test_frames_are_read_when_the_columns_exist(tmp_path) -> None:
    # the columns the execution issue adds (store schema 7); added here if missing
    with DuckDBStore(tmp_path / "s.duckdb") as store:
        con = store.con
        for column, kind in (("decision_ts", "TIMESTAMP_NS"), ("arrival_ts", "TIMESTAMP_NS"),
                             ("fill_ts", "TIMESTAMP_NS"), ("avg_fill_price", "DOUBLE")):
            con.execute(f"ALTER TABLE orders ADD COLUMN IF NOT EXISTS {column} {kind}")
        # two orders submitted at 0 s and 60 s, expected (decision) price 100 each
        con.execute("""INSERT INTO orders (run_id, order_id, decision_id, ts, symbol, quantity,
                       ref_price, notional, status, decision_ts, arrival_ts) VALUES
            ('r', 1, 1, '2024-01-01 00:00:00', 'X', 2.0, 100.0, 200.0, 'filled',
             '2023-12-31 23:59:00', '2024-01-01 00:00:00.100'),
            ('r', 2, 2, '2024-01-01 00:01:00', 'X', -1.0, 100.0, 100.0, 'filled',
             '2024-01-01 00:00:00', '2024-01-01 00:01:00.020')""")
        con.execute("""INSERT INTO fills (run_id, fill_id, order_id, ts, symbol, venue, quantity,
                       price, fee) VALUES
            ('r', 1, 1, '2024-01-01 00:00:00.300', 'X', 'a', 2.0, 101.0, 0.1),
            ('r', 2, 2, '2024-01-01 00:01:00.050', 'X', 'b', -1.0, 99.0, 0.1)""")
        con.execute("CREATE TABLE IF NOT EXISTS funding (run_id VARCHAR, ts TIMESTAMP_NS,"
                    " symbol VARCHAR, position DOUBLE, mark DOUBLE, rate DOUBLE, payment DOUBLE)")
        # the store's sign: payment < 0 paid, > 0 received
        con.execute("INSERT INTO funding (run_id, ts, symbol, position, mark, rate, payment)"
                    " VALUES ('r', '2024-01-01 08:00', 'X', 2, 100, 0.0075, -1.5),"
                    " ('r', '2024-01-01 16:00', 'X', -1, 100, 0.0025, 0.25)")
        frame = execution_frame(con, "r")
        funding = funding_frame(con, "r")
    assert frame is not None and funding is not None
    assert set(frame) == set(EXECUTION_COLUMNS) and set(funding) == set(FUNDING_COLUMNS)
    assert frame["decision_ts"].dtype == np.int64
    assert (frame["fill_ts"] - frame["decision_ts"]).tolist() == [300_000_000, 50_000_000]
    m = execution_metrics(frame)
    # buy 2 expected 100 filled 101: 2; sell 1 expected 100 filled 99: 1 -> 3 on 300 notional
    assert m["implementation_shortfall"] == pytest.approx(3.0, rel=1e-12)
    assert m["implementation_shortfall_bps"] == pytest.approx(100.0, rel=1e-12)
    assert m["latency_to_arrival_ms_mean"] == pytest.approx((100 + 20) / 2, rel=1e-12)
    assert m["latency_to_fill_ms_mean"] == pytest.approx((300 + 50) / 2, rel=1e-12)
    by_venue = execution_by(frame, "venue")
    assert by_venue["a"]["shortfall_bps"] == pytest.approx(100.0, rel=1e-12)
    assert by_venue["b"]["shortfall"] == pytest.approx(1.0, rel=1e-12)
    # paid 1.5, received 0.25: 1.25 paid in all
    assert funding_paid(funding) == pytest.approx(1.25, rel=1e-12)


def test_information_schema_lookup_is_per_table(tmp_path) -> None:
    # a column of the same name in another table does not count
    with duckdb.connect(str(tmp_path / "x.duckdb")) as con:
        con.execute("CREATE TABLE orders (run_id VARCHAR, ts TIMESTAMP_NS, ref_price DOUBLE)")
        con.execute("CREATE TABLE other (arrival_ts TIMESTAMP_NS, payment DOUBLE)")
        assert execution_frame(con, "r") is None
        assert funding_frame(con, "r") is None
