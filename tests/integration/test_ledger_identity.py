"""The stored PnL columns add up: on every equity row of the demo run,
equity == initial cash + realized PnL + unrealized PnL - fees paid so far."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sim.config import load_scenario
from sim.runner import run_scenario
from sim.store import DuckDBStore

DEMO = Path(__file__).resolve().parents[2] / "scenarios" / "demo.toml"


def test_equity_is_cash_in_plus_pnl_minus_fees(tmp_path: Path) -> None:
    config = load_scenario(DEMO)
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        run_id = run_scenario(config, store).run_id
        rows = store.con.execute(
            """
            SELECT e.equity, e.realized_pnl, e.unrealized_pnl,
                   coalesce((SELECT sum(f.fee) FROM fills f
                             WHERE f.run_id = e.run_id AND f.ts <= e.ts), 0) AS fees
            FROM equity e WHERE e.run_id = ? ORDER BY e.ts
            """,
            [run_id],
        ).fetchnumpy()
        final_realized = store.con.execute(
            "SELECT sum(last_realized) FROM (SELECT arg_max(realized_pnl, fill_id)"
            " AS last_realized FROM fills WHERE run_id = ? GROUP BY symbol)", [run_id],
        ).fetchone()[0]
    assert len(rows["equity"]) == 5760
    expected = config.initial_cash + rows["realized_pnl"] + rows["unrealized_pnl"] - rows["fees"]
    np.testing.assert_allclose(rows["equity"], expected, rtol=1e-9)
    # the running total in equity rows agrees with the per-symbol figures on the fills
    np.testing.assert_allclose(rows["realized_pnl"][-1], final_realized, rtol=1e-9)
    assert np.any(rows["unrealized_pnl"] != 0.0)
