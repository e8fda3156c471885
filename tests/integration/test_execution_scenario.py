"""The bundled execution-realism scenario loads, runs, exercises every part (latency,
limit entries, brackets, a perpetual with recorded funding, venue faults with fallback)
and gives identical tables for the same seed."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sim.config import load_scenario
from sim.runner import run_scenario
from sim.schema import TABLES
from sim.store import DuckDBStore

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "execution_realism.toml"


def run_tables(path: Path) -> dict[str, pd.DataFrame]:
    config = load_scenario(SCENARIO)
    with DuckDBStore(path) as store:
        run_id = run_scenario(config, store).run_id
        out = {}
        for table in TABLES:
            frame = store.con.execute(
                f"SELECT * EXCLUDE (run_id) FROM {table} WHERE run_id = ? ORDER BY ALL",
                [run_id]).df()
            out[table] = frame.drop(columns=["elapsed_ns"], errors="ignore")  # wall time
        return out


def test_execution_realism_scenario(tmp_path: Path) -> None:
    first = run_tables(tmp_path / "a.duckdb")
    again = run_tables(tmp_path / "b.duckdb")
    for table in TABLES:
        pd.testing.assert_frame_equal(first[table], again[table], check_exact=True)
    orders, events, fills = first["orders"], first["order_events"], first["fills"]
    assert set(orders["order_type"]) == {"limit", "stop"}
    assert {"entry", "take_profit", "stop_loss"} <= set(orders["role"])
    assert {"filled", "cancelled", "expired"} <= set(orders["status"])
    assert (orders["arrival_ts"] > orders["ts"]).all()  # latency on every order
    assert {"maker", "taker"} <= set(fills["liquidity"])
    assert (fills.loc[(fills["liquidity"] == "maker") & (fills["venue"] == "hl"), "fee"]
            < 0).all()  # the maker rebate
    assert len(first["funding"]) > 0
    # faults met orders in flight: timed out (hl is slower than its timeout for a day)
    assert "venue_expired" in set(events["event"])
    assert {"hl", "backup"} == set(fills["venue"])  # and the router fell back
