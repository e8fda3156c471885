"""A calibrated source's bar interval is its model's: a walk-forward sweep knows its span
before any run (windows too long for it are refused up front) and a live session its
candle interval (both read an ``interval`` the source does not have before: a traceback)."""

from __future__ import annotations

from pathlib import Path

import pytest

from research.sweep import SweepError, load_sweep

REPO = Path(__file__).resolve().parents[2]
SCENARIO = REPO / "scenarios/regimes/calibrated.toml"  # 5,760 bars of 5 minutes: 20 days


def _sweep(tmp_path: Path, train: str, test: str) -> Path:
    path = tmp_path / "sweep.toml"
    path.write_text(f'name = "cal"\nscenario = "{SCENARIO}"\nseeds = [1]\n'
                    '[grid]\n"agents.sma.params.fast" = [6, 12]\n'
                    f'[walk_forward]\ntrain = "{train}"\ntest = "{test}"\n')
    return path


def test_windows_that_fit_the_models_span_load(tmp_path: Path) -> None:
    sweep = load_sweep(_sweep(tmp_path, "12d", "4d"))
    assert len(sweep.runs) == 2


def test_windows_longer_than_the_models_span_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SweepError, match="walk_forward"):
        load_sweep(_sweep(tmp_path, "16d", "5d"))


def test_a_live_session_reads_the_calibrated_models_interval() -> None:
    from quorum.live import live_interval_ns
    from sim.config import load_scenario

    assert live_interval_ns(load_scenario(SCENARIO)) == 5 * 60 * 1_000_000_000
