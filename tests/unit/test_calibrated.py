"""Calibrated regimes (``sim.regimes.calibrated``): the model file, the generator's
recursions against a plain sequential loop, its stylized facts for known parameters,
validity across price scales, determinism, and the scenario source.

Statistical bounds allow several standard errors of the estimator (stated at each
check), with fixed seeds, so a failure means a wrong model rather than bad luck.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.config import load_scenario
from sim.config_base import ConfigError
from sim.regimes.calibrated import (
    CalibratedModel,
    generate_calibrated,
    load_model,
    t_correlation_factor,
)
from sim.regimes.facts import acf, kurtosis
from sim.regimes.params import GeneratedSourceError
from sim.runner import RandomStreams, load_market_data


def symbol(name: str = "A", **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": name, "price": 100.0, "states": [{"drift": 0.0, "volatility": 0.002}],
        "alpha": 0.0, "gamma": 0.0, "beta": 0.0, "nu": 1000.0,
    }
    return {**base, **changes}


def model(*symbols: dict[str, Any], **changes: Any) -> CalibratedModel:
    k = len(symbols[0]["states"])
    raw: dict[str, Any] = {
        "interval": "5m", "bars_per_year": 105120, "states": [f"s{i}" for i in range(k)],
        "transition": np.eye(k).tolist() if k == 1 else
        [[0.99 if i == j else 0.01 / (k - 1) for j in range(k)] for i in range(k)],
        "symbols": list(symbols),
    }
    return CalibratedModel.model_validate({**raw, **changes})


def returns(m: CalibratedModel, n: int, seed: int = 0, i: int = 0) -> np.ndarray:
    bars = generate_calibrated(m, n, np.random.default_rng(seed))
    return np.log(bars[i].close / bars[i].open)


def test_recursions_match_a_sequential_loop_on_the_same_draws() -> None:
    """GJR-GARCH variance, state scale, slow log-volatility, jumps and AR(1) reversal,
    recomputed bar by bar from the same streams the generator spawns."""
    sm = symbol(states=[{"drift": 1e-4, "volatility": 0.002},
                        {"drift": -2e-4, "volatility": 0.006}],
                reversal=-0.2, alpha=0.08, gamma=0.06, beta=0.85, nu=6.0,
                sv_persistence=0.97, sv_sd=0.3, jump_intensity=0.02, jump_mean=-0.01,
                jump_std=0.02)
    m = model(sm)
    n = 3000
    got = returns(m, n, seed=5)

    rng_chain, rng_z, _bar, rng_w, rng_jump, rng_sv = np.random.default_rng(5).spawn(6)
    from sim.regimes.calibrated import _state_path

    states = _state_path(m, n, rng_chain)
    z = rng_z.standard_normal((1, n))[0]
    w = (6.0 - 2) / (2.0 * rng_w.standard_gamma(3.0, n))
    e = z * np.sqrt(w)
    count = rng_jump.poisson(0.02, n)
    hit = np.flatnonzero(count)
    jump_noise = rng_jump.standard_normal(hit.size)
    rho, sd = 0.97, 0.3
    eta = rng_sv.standard_normal(n)
    vol = [0.002, 0.006]
    drift = [1e-4, -2e-4]
    g, v, x = 1.0, sd * eta[0], 0.0
    expected = np.empty(n)
    jumps = dict(zip(hit.tolist(), range(hit.size), strict=True))
    for t in range(n):
        if t > 0:
            prev = e[t - 1]
            g = (1 - 0.08 - 0.03 - 0.85) + (0.08 + 0.06 * (prev < 0)) * prev**2 * g + 0.85 * g
            v = rho * v + sd * math.sqrt(1 - rho**2) * eta[t]
        sigma = vol[states[t]] * math.sqrt(g) * math.exp(v - sd**2)
        shock = sigma * e[t]
        if t in jumps:
            c = count[t]
            shock += -0.01 * c + 0.02 * math.sqrt(c) * jump_noise[jumps[t]]
        x = -0.2 * x + shock
        expected[t] = drift[states[t]] + x
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


def test_reversal_tails_and_clustering_come_from_their_parameters() -> None:
    n = 200_000
    # AR(1): lag-1 autocorrelation = reversal; se ~ 1/sqrt(n) = 0.0022, bound 0.015.
    r = returns(model(symbol(reversal=-0.2)), n)
    assert abs(acf(r, 1)[0] + 0.2) < 0.015
    # Unit t(12) shocks: excess kurtosis 6 / (nu - 4) = 0.75 (se ~ 0.03 here), bound 0.2.
    r = returns(model(symbol(nu=12.0)), n)
    assert abs(kurtosis(r) - 0.75) < 0.2
    # No GARCH, one state: |r| uncorrelated; with GARCH(0.1, 0.85) clearly clustered.
    assert abs(acf(np.abs(returns(model(symbol()), n)), 1)[0]) < 0.015
    assert acf(np.abs(returns(model(symbol(alpha=0.1, beta=0.85, nu=8.0)), n)), 1)[0] > 0.1
    # The slow log-volatility keeps |r| correlated at lag 20.
    slow = returns(model(symbol(sv_persistence=0.995, sv_sd=0.4)), n)
    assert acf(np.abs(slow), 20)[-1] > 0.05
    # Jumps fatten the tails of an otherwise normal series.
    jumpy = returns(model(symbol(jump_intensity=0.01, jump_std=0.02)), n)
    assert kurtosis(jumpy) > 5


def test_volatility_level_and_state_labels() -> None:
    n = 200_000
    sm = symbol(states=[{"drift": 0.0, "volatility": 0.001}, {"drift": 0.0, "volatility": 0.004}])
    m = model(sm, transition=[[0.99, 0.01], [0.04, 0.96]])
    bars = generate_calibrated(m, n, np.random.default_rng(1))[0]
    labels = bars.source_regime
    assert set(labels) == {"s0", "s1"}
    share = float(np.mean(labels == "s1"))
    assert abs(share - 0.2) < 0.03  # stationary share 0.01 / 0.05; spells ~25-100 bars
    r = np.log(bars.close / bars.open)
    for name, vol in (("s0", 0.001), ("s1", 0.004)):
        assert abs(r[labels == name].std() / vol - 1) < 0.03


def test_symbols_get_the_model_correlation_despite_t_shocks() -> None:
    """Independent chi-squared scales shrink the correlation of t shocks by
    E[sqrt w]**2 (about 0.80 at nu = 5); the generator correlates the normals more."""
    m = model(symbol("A", nu=5.0), symbol("B", nu=5.0), correlation=[[1, 0.6], [0.6, 1]])
    bars = generate_calibrated(m, 100_000, np.random.default_rng(2))
    ra, rb = (np.log(b.close / b.open) for b in bars)
    assert abs(np.corrcoef(ra, rb)[0, 1] - 0.6) < 0.02  # se ~ 0.003
    factor = t_correlation_factor(np.array([[1, 0.6], [0.6, 1]]), [5.0, 5.0])
    assert (factor @ factor.T)[0, 1] > 0.7


def test_same_seed_same_bytes_other_seed_other_bars() -> None:
    m = model(symbol("A", alpha=0.05, beta=0.9, nu=6.0, jump_intensity=0.01, jump_std=0.01),
              symbol("B"), correlation=[[1, 0.3], [0.3, 1]])
    a = generate_calibrated(m, 5000, np.random.default_rng(7))
    b = generate_calibrated(m, 5000, np.random.default_rng(7))
    c = generate_calibrated(m, 5000, np.random.default_rng(8))
    for x, y in zip(a, b, strict=True):
        for col in ("ts", "open", "high", "low", "close", "volume"):
            assert x.column(col).tobytes() == y.column(col).tobytes()
    assert not np.array_equal(a[0].close, c[0].close)


@settings(max_examples=40, deadline=None)
@given(price=st.floats(1e-8, 1e6), vol=st.floats(1e-5, 0.05), nu=st.floats(2.2, 50),
       wick_sd=st.floats(0, 2), seed=st.integers(0, 2**32 - 1))
def test_bars_are_valid_ohlc_at_every_scale(price: float, vol: float, nu: float,
                                             wick_sd: float, seed: int) -> None:
    m = model(symbol(price=price, states=[{"drift": 0.0, "volatility": vol}], nu=nu,
                     alpha=0.05, beta=0.9, wick_sd=wick_sd, reversal=-0.1))
    b = generate_calibrated(m, 500, np.random.default_rng(seed))[0]
    assert b.open[0] == price
    assert np.all(b.open[1:] == b.close[:-1])
    assert np.all(b.high >= np.maximum(b.open, b.close))
    assert np.all(b.low <= np.minimum(b.open, b.close))
    assert np.all(b.low > 0) and np.all(np.isfinite(b.high))
    assert np.all(b.volume > 0) and np.all(np.isfinite(b.volume))


def test_model_errors_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="transition"):
        model(symbol(), transition=[[0.5, 0.4]])
    with pytest.raises(ValueError, match=r"alpha \+ gamma/2 \+ beta"):
        model(symbol(alpha=0.5, beta=0.6))
    bad = tmp_path / "m.toml"
    bad.write_text('format = "quorum.calibrated/1"\ninterval = "5m"\nbars_per_year = 1\n'
                   'states = ["a"]\ntransition = [[1.0]]\n[[symbols]]\nname = "X"\n'
                   'price = 1.0\nnu = 1.5\n[[symbols.states]]\ndrift = 0.0\nvolatility = 0.01\n')
    with pytest.raises(GeneratedSourceError, match=r"m.toml: model.symbols.0.nu"):
        load_model(bad)
    with pytest.raises(GeneratedSourceError, match="model file not found"):
        load_model(tmp_path / "missing.toml")


def _write_model(path: Path, m: CalibratedModel) -> None:
    from sim.regimes.calibrated import model_to_toml

    path.write_text(model_to_toml(m), encoding="utf-8")


def test_model_toml_round_trips_exactly(tmp_path: Path) -> None:
    m = model(symbol("A", alpha=0.0123456789, beta=0.9, nu=6.5, reversal=-0.1234),
              symbol("B"), correlation=[[1, 0.25], [0.25, 1]])
    _write_model(tmp_path / "m.toml", m)
    assert load_model(tmp_path / "m.toml") == m


def scenario(tmp_path: Path, source: str) -> Path:
    path = tmp_path / "s.toml"
    path.write_text(f'name = "cal"\nseed = 4\n[[data]]\nkind = "calibrated"\n{source}\n'
                    '[[agents]]\nname = "sma"\nkind = "sma_crossover"\n'
                    '[[venues]]\nname = "v"\nsymbols = ["X", "Y"]\n', encoding="utf-8")
    return path


def test_scenario_source_resolves_the_model_and_is_deterministic(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    m = model(symbol("A", nu=6.0), symbol("B"), correlation=[[1, 0.5], [0.5, 1]])
    _write_model(tmp_path / "models" / "m.toml", m)
    path = scenario(tmp_path, 'model = "models/m.toml"\nbars = 300\nsymbols = ["X", "Y"]\n'
                              'start = "2024-03-01T00:00:00Z"')
    config = load_scenario(path)
    data = [load_market_data(config, RandomStreams.spawn(4, 1, 1).data) for _ in range(2)]
    assert data[0].symbols == ("X", "Y")
    assert data[0].content_hash() == data[1].content_hash()
    first = data[0].bars[0]
    assert int(first.ts[1] - first.ts[0]) == 300 * 10**9  # the model's 5m bars
    assert first.source_regime is not None


def test_scenario_source_errors_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="model file not found"):
        load_scenario(scenario(tmp_path, 'model = "nope.toml"\nbars = 10'))
    _write_model(tmp_path / "m.toml", model(symbol("A"), symbol("B")))
    with pytest.raises(ConfigError, match=r"symbols: the model has 2 symbol\(s\), 1 given"):
        load_scenario(scenario(tmp_path, 'model = "m.toml"\nbars = 10\nsymbols = ["X"]'))
    with pytest.raises(ConfigError, match="bars"):
        load_scenario(scenario(tmp_path, 'model = "m.toml"\nbars = 0'))


def test_run_identity_follows_the_model_content_not_its_path(tmp_path: Path) -> None:
    """A refitted model is a new run (a sweep must not reuse the old one's rows); the
    same model at another path is the same run."""
    from sim.run_identity import run_identity

    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        _write_model(tmp_path / sub / "m.toml", model(symbol("A"), symbol("B")))
    ids = []
    for sub in ("a", "b"):
        path = scenario(tmp_path / sub, 'model = "m.toml"\nbars = 50\nsymbols = ["X", "Y"]')
        ids.append(run_identity(load_scenario(path)))
    assert ids[0] == ids[1]
    _write_model(tmp_path / "b" / "m.toml", model(symbol("A", nu=7.0), symbol("B")))
    changed = run_identity(load_scenario(tmp_path / "b" / "s.toml"))
    assert changed != ids[0]
