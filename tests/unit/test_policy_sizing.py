"""Sizing methods: closed forms, a pandas reference for realised volatility, caps, presets,
and an end-to-end check that stored orders carry the size the method asked for."""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.config import PolicyConfig, ScenarioConfig, load_scenario
from sim.config_base import ConfigError
from sim.messages import Side
from sim.policy import (
    SIZINGS,
    TargetExposurePolicy,
    annualised_volatility,
    exponential_fraction,
    kelly_size,
)
from sim.runner import run_scenario
from sim.store import DuckDBStore
from sim.view import MarketView
from tests._agents import MINUTE, closes_only

L, S, F, H = Side.LONG, Side.SHORT, Side.FLAT, Side.HOLD
ROOT = Path(__file__).resolve().parents[2]


def view_at(closes: np.ndarray, n: int) -> MarketView:
    view = MarketView(closes_only(closes))
    view.n = n
    return view


# -- closed forms ----------------------------------------------------------------------
@pytest.mark.parametrize(("c", "k"), [(0.0, 3.0), (1.0, 3.0), (0.5, 3.0), (0.8, 1.0),
                                      (0.3, 10.0)])
def test_exponential_fraction_closed_form(c: float, k: float) -> None:
    assert exponential_fraction(c, k) == pytest.approx((math.exp(k * c) - 1)
                                                       / (math.exp(k) - 1), rel=1e-12)


def test_exponential_fraction_is_linear_as_k_vanishes() -> None:
    assert exponential_fraction(0.37, 0.0) == 0.37
    assert exponential_fraction(0.37, 1e-9) == pytest.approx(0.37, rel=1e-8)


@given(st.floats(0, 1), st.floats(0, 1), st.floats(0.01, 20))
def test_exponential_fraction_is_monotone_and_bounded(a: float, b: float, k: float) -> None:
    lo, hi = sorted((a, b))
    assert 0.0 <= exponential_fraction(lo, k) <= exponential_fraction(hi, k) <= 1.0 + 1e-12


@pytest.mark.parametrize(("p", "b", "frac", "cap", "expected"), [
    (0.6, 1.0, 1.0, 10.0, 0.2),        # f* = p - q/b = 0.6 - 0.4
    (0.6, 1.0, 0.5, 10.0, 0.1),        # half Kelly
    (0.4, 2.0, 1.0, 10.0, 0.1),        # 0.4 - 0.6/2
    (0.5, 1.0, 1.0, 10.0, 0.0),        # no edge
    (0.3, 1.0, 1.0, 10.0, 0.0),        # negative edge: flat, never short by Kelly
    (0.99, 1.0, 1.0, 0.25, 0.25),      # capped
])
def test_kelly_hand_computed(p: float, b: float, frac: float, cap: float,
                             expected: float) -> None:
    assert kelly_size(p, b, frac, cap) == pytest.approx(expected, abs=1e-12)


# -- realised volatility against pandas ------------------------------------------------
def test_annualised_volatility_matches_pandas_rolling_std() -> None:
    rng = np.random.default_rng(3)
    closes = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.002, 500)))
    lookback = 60
    reference = (pd.Series(np.log(closes)).diff().rolling(lookback).std(ddof=1)
                 * math.sqrt(365 * 1440))  # one-minute bars, 365 days a year
    for n in (61, 200, 500):
        got = annualised_volatility(view_at(closes, n), lookback)
        assert got == pytest.approx(reference.iloc[n - 1], rel=1e-9)
    assert annualised_volatility(view_at(closes, 60), lookback) is None  # 59 returns only


def test_volatility_target_reads_no_bar_after_now() -> None:
    rng = np.random.default_rng(4)
    closes = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.002, 300)))
    changed = closes.copy()
    changed[150:] *= np.exp(rng.normal(0, 0.05, 150))  # a different future
    a = annualised_volatility(view_at(closes, 150), 30)
    b = annualised_volatility(view_at(changed, 150), 30)
    assert a == b


def test_volatility_target_sizes_and_waits_for_history() -> None:
    rng = np.random.default_rng(5)
    closes = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.001, 200)))
    flat = np.full(200, 100.0)
    views = [view_at(closes, 10), view_at(flat, 200)]
    p = TargetExposurePolicy(sizing="volatility_target", target_volatility=0.2,
                             vol_lookback=20, views=views, allow_short=True)
    assert p.target_exposure(L, 0.9, None, 0) is None  # 9 returns < 20: cannot size yet
    assert p.target_exposure(L, 0.9, None, 1) is None  # zero volatility: nothing to size on
    views[0].n = 200
    vol = annualised_volatility(views[0], 20)
    assert vol is not None
    assert p.target_exposure(L, 0.9, None, 0) == pytest.approx(0.2 / vol, rel=1e-12)
    assert p.target_exposure(S, 0.9, None, 0) == pytest.approx(-0.2 / vol, rel=1e-12)
    assert p.target_exposure(F, 0.9, None, 0) == 0.0


def test_volatility_target_needs_views() -> None:
    with pytest.raises(ValueError, match="views"):
        TargetExposurePolicy(sizing="volatility_target")


# -- caps and the order size -----------------------------------------------------------
@given(st.sampled_from(SIZINGS), st.sampled_from([L, S]), st.floats(0, 1),
       st.one_of(st.none(), st.floats(0, 3)), st.floats(0.1, 5), st.floats(0.1, 5))
def test_no_sizing_exceeds_its_caps(sizing: str, side: Side, conf: float,
                                    target: float | None, exposure: float,
                                    max_leverage: float) -> None:
    closes = 100.0 * np.exp(np.cumsum(np.random.default_rng(1).normal(0, 0.001, 100)))
    p = TargetExposurePolicy(exposure, allow_short=True, sizing=sizing, kelly_cap=4.0,
                             max_leverage=max_leverage, views=[view_at(closes, 100)],
                             vol_lookback=30, target_volatility=0.5)
    got = p.target_exposure(side, conf, target, 0)
    assert got is not None
    assert abs(got) <= max_leverage + 1e-12
    if target is not None:
        assert abs(got) <= target + 1e-12
    assert got * side >= 0  # never against the decided side


def test_min_quantity_skips_small_trades() -> None:
    p = TargetExposurePolicy(min_quantity=2.0)
    assert p.order_quantity(0.015, 0.0, 10_000.0, 100.0) == 0.0  # 1.5 units
    assert p.order_quantity(0.025, 0.0, 10_000.0, 100.0) == pytest.approx(2.5)


def test_confidence_exponential_and_kelly_in_the_policy() -> None:
    e = TargetExposurePolicy(0.5, sizing="confidence_exponential", exp_k=2.0)
    assert e.target_exposure(L, 0.7, None) == pytest.approx(0.5 * math.expm1(1.4)
                                                            / math.expm1(2.0))
    k = TargetExposurePolicy(sizing="kelly", kelly_fraction=0.5, kelly_cap=1.0)
    assert k.target_exposure(L, 0.8, None) == pytest.approx(0.3)  # 0.5 * (0.8 - 0.2)
    assert k.target_exposure(L, 0.8, 0.1) == pytest.approx(0.1)   # the decision's target


# -- config ----------------------------------------------------------------------------
def test_preset_fills_unset_fields_and_explicit_settings_win() -> None:
    cfg = PolicyConfig(preset="balanced")
    assert cfg.sizing == "volatility_target" and cfg.max_leverage == 1.5
    cfg = PolicyConfig(preset="balanced", max_leverage=0.8)
    assert cfg.max_leverage == 0.8 and cfg.target_volatility == 0.15


def _scenario_with_policy(policy: dict[str, object]) -> dict[str, object]:
    return {
        "name": "sizing", "seed": 11, "initial_cash": 10_000.0,
        "data": [{"kind": "gbm", "symbol": "X", "bars": 3_000, "interval": "1m",
                  "start": "2024-01-01T00:00:00Z", "price": 100.0, "drift": 0.0,
                  "volatility": 0.6}],
        "agents": [{"name": "sma", "kind": "sma_crossover",
                    "params": {"fast": 5, "slow": 30}}],
        "policy": policy,
        "venues": [{"name": "v", "symbols": ["X"]}],
    }


@pytest.mark.parametrize("field", ["target_volatility", "kelly_cap", "vol_lookback"])
def test_out_of_range_sizing_setting_names_the_field(tmp_path: Path, field: str) -> None:
    raw = _scenario_with_policy({"sizing": "kelly", field: -1})
    with pytest.raises(Exception, match=field):
        ScenarioConfig.model_validate(raw)
    path = tmp_path / "s.toml"
    path.write_text(f'name = "x"\n[policy]\n{field} = -1\n')
    with pytest.raises(ConfigError, match=field):
        load_scenario(path)


def test_stored_orders_carry_the_volatility_target_size(tmp_path: Path) -> None:
    """End to end: each entry order's notional / equity equals target_volatility over the
    realised volatility of the stored bars up to the decision, computed here with pandas."""
    config = ScenarioConfig.model_validate(_scenario_with_policy(
        {"sizing": "volatility_target", "target_volatility": 0.3, "vol_lookback": 50,
         "max_leverage": 5.0}))
    store = DuckDBStore(tmp_path / "runs.duckdb")
    run_id = run_scenario(config, store).run_id
    store.close()
    db = duckdb.connect(str(tmp_path / "runs.duckdb"), read_only=True)
    bars = db.execute("select ts, close from bars where run_id = ? order by ts",
                      [run_id]).df()
    vol = (np.log(bars["close"]).diff().rolling(50).std(ddof=1)
           * math.sqrt(365 * 86_400 * 10**9 / MINUTE))
    vol.index = bars["ts"].astype("int64")
    first = db.execute(
        "select d.ts, o.quantity, o.ref_price from orders o join decisions d "
        "using (run_id, decision_id) where o.run_id = ? order by o.order_id limit 1",
        [run_id]).fetchone()
    assert first is not None, "the scenario made no order"
    decided_ts, qty, price = first
    decided_ts = pd.Timestamp(decided_ts).value if not isinstance(decided_ts, int) else decided_ts
    expected = min(0.3 / vol.loc[decided_ts], 5.0)
    assert qty * price / 10_000.0 == pytest.approx(expected, rel=1e-9)
