"""Instruments end to end through ``quorum run`` on real low-priced history (Binance
ADA/BTC 5m, XRP/ETH 1m): a preset's per-symbol rules fill at the market, a spec that
cannot represent the prices exits 2 with one line naming venue, symbol and field before
anything is stored, and a fill outside the model's band stops the run as failed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.integration.test_cli import (
    DATA,
    RUN_ID,
    rows,
    run_cli,
    run_row,
    to_toml,
    write_scenario,
)

PAIRS = [("ADABTC", "binance_ADA_BTC_5m_2018-01.csv", "5m"),
         ("XRPETH", "binance_XRP_ETH_1m_2019-10.csv", "1m")]


def low_priced(**venue: Any) -> dict[str, Any]:
    return {
        "name": "low_priced", "initial_cash": 10_000.0,
        "data": [{"symbol": s, "path": str(DATA / f), "interval": i, "gaps": "ffill"}
                 for s, f, i in PAIRS],
        "agents": [{"name": "sma", "kind": "sma_crossover", "params": {"fast": 5, "slow": 20}}],
        "venues": [{"name": "hl", "preset": "hyperliquid", "symbols": [s for s, _, _ in PAIRS],
                    **venue}],
    }


def test_hyperliquid_preset_fills_low_priced_pairs_at_their_market(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Observed at 9d04f14: every ADA/BTC buy filled at 0.01 (about 180x its 5e-5 market).
    Now each fill is within a hair of its bar's open (1 bp slippage, 5 significant
    figures), and the account is not wiped out."""
    db = tmp_path / "runs.duckdb"
    code, out, err = run_cli(capsys, "run", str(write_scenario(tmp_path / "s.toml",
                                                                 low_priced())), "--db", str(db))
    assert code == 0, err
    run_id = RUN_ID.search(out).group(1)
    fills = rows(db, "SELECT f.symbol, f.price, b.open FROM fills f JOIN bars b ON "
                     "b.run_id = f.run_id AND b.symbol = f.symbol AND b.ts = f.ts "
                     "WHERE f.run_id = ?", [run_id])
    assert {f[0] for f in fills} == {"ADABTC", "XRPETH"} and len(fills) > 100
    worst = max(abs(price / open_ - 1.0) for _, price, open_ in fills)
    assert worst < 5e-4, worst
    (equity,) = rows(db, "SELECT last(equity ORDER BY ts) FROM equity WHERE run_id = ?",
                     [run_id])[0]
    assert equity > 5_000.0


def test_a_spec_that_cannot_represent_the_prices_exits_2_naming_venue_symbol_and_field(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """As a perpetual, Hyperliquid's rule allows 6 decimals: a step of 1e-6 is 1.9% of
    ADA/BTC's 5.33e-5. So is an explicit tick of 0.01 on XRP/ETH (priced 0.0014)."""
    db = tmp_path / "runs.duckdb"
    for venue, where in [
        ({"kind": "perp", "max_leverage": 2.0}, "venues.hl.instruments.ADABTC.price_decimals"),
        ({"instruments": {"XRPETH": {"tick_size": 0.01}}},
         "venues.hl.instruments.XRPETH.tick_size"),
        ({"instruments": {"ADABTC": {"lot_size": 1e9}}}, "venues.hl.instruments.ADABTC.lot_size"),
    ]:
        path = tmp_path / "bad.toml"
        raw = low_priced(**{k: v for k, v in venue.items() if k != "instruments"})
        text = to_toml(raw)
        for symbol, spec in venue.get("instruments", {}).items():
            text += f"\n[venues.instruments.{symbol}]\n" + "".join(
                f"{k} = {v!r}\n" for k, v in spec.items())
        path.write_text(text)
        code, out, err = run_cli(capsys, "run", str(path), "--db", str(db))
        assert code == 2, (code, out, err)
        assert err.startswith(f"quorum: error: {where}: venue 'hl' ") and err.count("\n") == 1
        assert "Traceback" not in err
    assert not db.exists() or rows(db, "SELECT count(*) FROM runs")[0][0] == 0


def collapse_csv(path: Path) -> Path:
    """A market that falls from 100 to 0.3, bounces to 0.36 and falls to 0.2: under a
    fixed tick of 0.4 (0.4% of the first price) the last sell can only be put on the grid
    at 0.4, above its market."""
    closes = np.concatenate([np.geomspace(100.0, 0.3, 40), np.linspace(0.3, 0.36, 12)[1:],
                             np.linspace(0.36, 0.2, 12)[1:]])
    opens = np.concatenate([[closes[0]], closes[:-1]])
    frame = pd.DataFrame({
        "timestamp": pd.date_range("2024-01-01", periods=len(closes), freq="1min",
                                   tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ"),
        "open": opens, "high": np.maximum(opens, closes) * 1.001,
        "low": np.minimum(opens, closes) * 0.999, "close": closes, "volume": 1_000.0})
    frame.to_csv(path, index=False)
    return path


def test_a_fill_outside_the_band_stops_the_run_as_failed_naming_the_order(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """At 9d04f14 the run completed with a sell filled at 0.4 against a market of about
    0.3: a fill above the market, stored as a result."""
    db = tmp_path / "runs.duckdb"
    raw = {"name": "collapse", "initial_cash": 10_000.0,
           "data": [{"symbol": "X", "path": str(collapse_csv(tmp_path / "x.csv")),
                     "interval": "1m"}],
           "agents": [{"name": "sma", "kind": "sma_crossover", "params": {"fast": 2, "slow": 5}}],
           "venues": [{"name": "v", "symbols": ["X"], "tick_size": 0.4}]}
    code, out, err = run_cli(capsys, "run", str(write_scenario(tmp_path / "c.toml", raw)),
                             "--db", str(db))
    assert code == 1, (out, err)
    assert "FillOutsideBand: fill outside the execution band: order " in err
    assert "(sell X on v) at 0.4 against a reference price of 0.33" in err
    assert err.count("\n") == 1
    (run_id,) = rows(db, "SELECT run_id FROM runs")[0]
    row = run_row(db, run_id)
    assert row["status"] == "failed" and "FillOutsideBand" in row["error"]
    # nothing outside the band was booked
    assert not rows(db, "SELECT * FROM fills f JOIN bars b ON b.run_id = f.run_id AND "
                        "b.ts = f.ts WHERE f.run_id = ? AND f.quantity < 0 AND "
                        "f.price > b.open", [run_id])
