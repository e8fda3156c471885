"""Generated regimes and scripted shocks: statistics, validity, determinism, errors.

Statistical checks compare an estimator with the parameter it estimates and allow 5 of the
estimator's standard errors (stated next to each check). For an asymptotically normal
estimator that bound fails by chance with probability about 6e-7, so with fixed seeds a
failure means a wrong model, not bad luck, and a new seed would not make a test flaky.
Where the recursions matter (OU, GARCH, Markov chain) the vectorised kernels are also
checked against a plain sequential loop fed the same random draws.

The checks of a regime's textbook model (exact recursions, moments of normal shocks) run
generator version 1, which is that model alone and what stored runs reproduce; version 2
lays fat tails, clustering and reversal over it (tests/unit/test_stylized.py).
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.data import NS_PER_YEAR, DataError, SymbolBars, bars_from_frame
from sim.regimes._numerics import linear_recurrence, markov_chain
from sim.regimes.generators import (
    REGIMES,
    GeneratedSourceError,
    generate,
    params_model,
    validate_params,
)
from sim.regimes.shocks import SHOCKS, FlashCrash, apply_shocks

MINUTE = 60_000_000_000
DAY = 86_400_000_000_000
Z = 5.0  # standard errors allowed by every statistical bound (two-sided p ~ 6e-7)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def log_returns(b: SymbolBars) -> np.ndarray:
    """Per-bar log returns; the first bar opens at the start price, so none is lost."""
    return np.log(b.close / b.open)


def validated(b: SymbolBars, interval_ns: int = MINUTE) -> SymbolBars:
    """The bars through the loader's validation (OHLC consistency, spacing, positivity)."""
    frame = pd.DataFrame({
        "timestamp": pd.to_datetime(b.ts, utc=True),
        "open": b.open, "high": b.high, "low": b.low, "close": b.close, "volume": b.volume,
    })
    return bars_from_frame(frame, b.symbol, "generated", interval_ns=interval_ns)


def digest(bars: list[SymbolBars]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for b in bars:
        h.update(b.symbol.encode() + b.source.encode())
        for col in ("ts", "open", "high", "low", "close", "volume"):
            h.update(np.ascontiguousarray(b.column(col)).tobytes())
        h.update("\0".join(map(str, b.source_regime)).encode())
    return h.hexdigest()


def acf1(x: np.ndarray) -> float:
    x = x - x.mean()
    return float((x[1:] * x[:-1]).sum() / (x * x).sum())


# --- kernels against sequential references ---------------------------------------------


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 3000), lead=st.integers(1, 3), seed=st.integers(0, 2**32 - 1))
def test_linear_recurrence_matches_a_loop(n: int, lead: int, seed: int) -> None:
    g = rng(seed)
    a = g.uniform(-1, 1.2, (lead, n))
    a[g.random((lead, n)) < 0.02] = 0.0  # resets
    b = g.standard_normal((lead, n))
    expected = np.empty_like(b)
    prev = np.zeros(lead)
    for t in range(n):
        prev = a[:, t] * prev + b[:, t]
        expected[:, t] = prev
    np.testing.assert_allclose(linear_recurrence(a, b), expected, rtol=1e-9, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 5000), k=st.integers(1, 5), seed=st.integers(0, 2**32 - 1))
def test_markov_chain_matches_a_loop(n: int, k: int, seed: int) -> None:
    g = rng(seed)
    matrix = g.dirichlet(np.ones(k), size=k)
    matrix[g.random((k, k)) < 0.2] = 0.0  # some impossible moves
    matrix[np.arange(k), np.arange(k)] += 1e-3
    matrix /= matrix.sum(axis=1, keepdims=True)
    initial = int(g.integers(k))
    got = markov_chain(matrix, n, initial, rng(seed + 1))
    u = rng(seed + 1).random(n - 1) if n > 1 else []
    cum = np.cumsum(matrix, axis=1)
    cum[:, -1] = 1.0
    state, expected = initial, [initial]
    for x in u:
        state = int(np.searchsorted(cum[state], x, side="right"))
        expected.append(state)
    assert got.tolist() == expected


def test_ranging_is_the_exact_ou_recursion() -> None:
    """Same normals through a per-substep loop of the exact OU transition, level pull
    included: the generated closes agree to float rounding."""
    n, s, half_life, vol, level = 2_000, 4, 30.0, 0.8, 110.0
    (b,) = generate("ranging", n, rng(3), substeps=s, version=1,
                    params={"half_life": half_life, "volatility": vol, "level": level})
    z = rng(3).standard_normal(n * s)
    phi = math.exp(-math.log(2) / (half_life * s))
    kappa = -math.log(phi) / (MINUTE / NS_PER_YEAR / s)
    sd = vol * math.sqrt((1 - phi**2) / (2 * kappa))
    x, mu, closes = math.log(100.0), math.log(level), []
    for t in range(n * s):
        x = mu + phi * (x - mu) + sd * z[t]
        if t % s == s - 1:
            closes.append(x)
    np.testing.assert_allclose(np.log(b.close), closes, rtol=0, atol=1e-9)


def test_high_volatility_is_the_garch_recursion() -> None:
    n, s, vol, alpha, beta = 3_000, 4, 1.2, 0.08, 0.9
    (b,) = generate("high_volatility", n, rng(5), substeps=s, version=1,
                    params={"volatility": vol, "alpha": alpha, "beta": beta})
    z = rng(5).standard_normal((n, s)).sum(axis=1) / math.sqrt(s)
    dt = MINUTE / NS_PER_YEAR
    long_run = vol**2 * dt
    h, expected = long_run, []
    for t in range(n):
        if t:
            h = long_run * (1 - alpha - beta) + alpha * (math.sqrt(h) * z[t - 1]) ** 2 + beta * h
        expected.append(math.sqrt(h) * z[t] - 0.5 * h)
    np.testing.assert_allclose(log_returns(b), expected, rtol=0, atol=1e-12)


# --- statistics of each regime ---------------------------------------------------------


@pytest.mark.parametrize(("regime", "drift", "vol"), [
    ("trend_up", 2.0, 0.6),
    ("trend_down", -1.0, 0.4),
])
def test_gbm_drift_and_volatility(regime: str, drift: float, vol: float) -> None:
    """Daily bars, n = 100k. Log returns are iid N((mu - sigma^2/2) dt, sigma^2 dt):
    se(annualised mean) = sigma / sqrt(n dt); se(variance) = sigma^2 sqrt(2 / (n - 1))."""
    n = 100_000
    dt = DAY / NS_PER_YEAR
    (b,) = generate(regime, n, rng(11), interval_ns=DAY, substeps=4, version=1,
                    params={"drift": drift, "volatility": vol})
    r = log_returns(b)
    mean_hat = r.mean() / dt
    assert abs(mean_hat - (drift - vol**2 / 2)) < Z * vol / math.sqrt(n * dt)
    var_hat = r.var(ddof=1) / dt
    assert abs(var_hat - vol**2) < Z * vol**2 * math.sqrt(2 / (n - 1))


def test_bars_are_real_paths() -> None:
    """Open is the previous close exactly; high and low reach beyond the body on most bars
    (path extremes, not the body); with one substep there is no path and no wick."""
    (b,) = generate("trend_up", 10_000, rng(2))
    assert b.open[0] == 100.0
    assert np.array_equal(b.open[1:], b.close[:-1])
    assert (b.high > np.maximum(b.open, b.close)).mean() > 0.5
    assert (b.low < np.minimum(b.open, b.close)).mean() > 0.5
    (flat,) = generate("trend_up", 1_000, rng(2), substeps=1)
    assert np.array_equal(flat.high, np.maximum(flat.open, flat.close))
    assert np.array_equal(flat.low, np.minimum(flat.open, flat.close))


def test_ou_half_life_and_spread() -> None:
    """AR(1) by OLS on log close: phi_hat has se sqrt((1 - phi^2) / n); the sample sd of
    an AR(1) has relative se about sqrt((1 + phi^2) / (2 n (1 - phi^2)))."""
    n, half_life, vol = 200_000, 50.0, 0.5
    (b,) = generate("ranging", n, rng(7), substeps=4, version=1,
                    params={"half_life": half_life, "volatility": vol})
    x = np.log(b.close)
    phi = 0.5 ** (1 / half_life)
    slope = np.polyfit(x[:-1], x[1:], 1)[0]
    bound = Z * math.sqrt((1 - phi**2) / n)
    assert abs(slope - phi) < bound
    estimated_half_life = -math.log(2) / math.log(slope)
    assert -math.log(2) / math.log(phi - bound) < estimated_half_life
    assert estimated_half_life < -math.log(2) / math.log(phi + bound)
    years = half_life * MINUTE / NS_PER_YEAR
    spread = vol * math.sqrt(years / (2 * math.log(2)))
    rel_se = math.sqrt((1 + phi**2) / (2 * n * (1 - phi**2)))
    assert abs(x.std() / spread - 1) < Z * rel_se


def test_ou_reverts_to_an_absolute_level() -> None:
    """From 100 towards 120: after 20 half-lives the mean log price is log(120); the mean
    of an AR(1) has se sd * sqrt((1 + phi) / ((1 - phi) n))."""
    n, half_life = 50_000, 20.0
    (b,) = generate("ranging", n, rng(8), params={"half_life": half_life, "level": 120.0},
                    version=1)
    x = np.log(b.close[400:])
    phi = 0.5 ** (1 / half_life)
    se = x.std() * math.sqrt((1 + phi) / ((1 - phi) * len(x)))
    assert abs(x.mean() - math.log(120.0)) < Z * se
    assert b.close[0] < 101.0  # it starts at the start price, not at the level


def test_garch_clusters_volatility_and_gbm_does_not() -> None:
    """Under iid returns the lag-1 autocorrelation of squared returns is N(0, 1/n). GARCH
    (alpha 0.1, beta 0.85) has rho1 = alpha (1 - alpha beta - beta^2) / (1 - 2 alpha beta
    - beta^2) = 0.179, far beyond 5/sqrt(n); its long-run variance has relative se
    sqrt((kappa - 1)(1 + 2 rho1 / (1 - alpha - beta)) / n) with kurtosis kappa = 3.77."""
    n = 200_000
    alpha, beta, vol = 0.1, 0.85, 1.5
    (g,) = generate("high_volatility", n, rng(21), substeps=4, version=1,
                    params={"alpha": alpha, "beta": beta, "volatility": vol})
    (w,) = generate("trend_up", n, rng(21), substeps=4, version=1)
    r = log_returns(g)
    assert acf1(r**2) > 10 / math.sqrt(n)
    assert abs(acf1(log_returns(w) ** 2)) < Z / math.sqrt(n)
    persistence = alpha + beta
    rho1 = alpha * (1 - alpha * beta - beta**2) / (1 - 2 * alpha * beta - beta**2)
    kurtosis = 3 * (1 - persistence**2) / (1 - persistence**2 - 2 * alpha**2)
    rel_se = math.sqrt((kurtosis - 1) * (1 + 2 * rho1 / (1 - persistence)) / n)
    long_run = vol**2 * MINUTE / NS_PER_YEAR
    assert abs((r**2).mean() / long_run - 1) < Z * rel_se


def test_crash_jump_frequency() -> None:
    """With no diffusion a bar moves only if it holds a jump: P = 1 - exp(-lambda dt); the
    count of such bars is binomial, se sqrt(n p (1 - p))."""
    n, intensity = 200_000, 5256.0  # 0.01 a minute
    params = {"drift": 0.0, "volatility": 0.0, "jump_intensity": intensity,
              "jump_mean": -0.01, "jump_std": 0.02}
    (b,) = generate("crash", n, rng(4), params=params, version=1)
    p = 1 - math.exp(-intensity * MINUTE / NS_PER_YEAR)
    moved = int((b.close != b.open).sum())
    assert abs(moved - n * p) < Z * math.sqrt(n * p * (1 - p))
    shared = generate("crash", n, rng(4), params=params, symbols=("A", "B"), version=1)
    apart = generate("crash", n, rng(4), params={**params, "shared_jumps": False},
                     symbols=("A", "B"), version=1)
    jumps = [(b.close != b.open) for b in shared]
    assert np.array_equal(*jumps)
    jumps = [(b.close != b.open) for b in apart]
    both = int((jumps[0] & jumps[1]).sum())
    assert both < n * p * p + Z * math.sqrt(n * p * p)  # independent: ~n p^2 together


def test_crash_falls() -> None:
    """Defaults: the log change over n bars has mean n dt ((mu - sigma^2/2) + lambda mu_J)
    (negative) and variance n dt (sigma^2 + lambda (mu_J^2 + sigma_J^2))."""
    n = 20_000
    (b,) = generate("crash", n, rng(9))
    p = params_model("crash")()
    t = n * MINUTE / NS_PER_YEAR
    mean = t * (p.drift - p.volatility**2 / 2 + p.jump_intensity * p.jump_mean)
    sd = math.sqrt(t * (p.volatility**2 + p.jump_intensity * (p.jump_mean**2 + p.jump_std**2)))
    assert mean < -Z * sd / 2
    assert abs(math.log(b.close[-1] / 100.0) - mean) < Z * sd


def test_markov_transition_frequencies() -> None:
    """Each row's empirical frequencies are multinomial: se sqrt(p (1 - p) / N_i), and an
    impossible move never happens."""
    matrix = [[0.9, 0.1, 0.0], [0.05, 0.9, 0.05], [0.2, 0.0, 0.8]]
    states = ("trend_up", "ranging", "crash")
    n = 200_000
    (b,) = generate("regime_switching", n, rng(13), substeps=2,
                    params={"states": states, "transition": matrix})
    codes = np.array([states.index(s) for s in b.source_regime])
    counts = np.zeros((3, 3))
    np.add.at(counts, (codes[:-1], codes[1:]), 1)
    for i in range(3):
        total = counts[i].sum()
        for j in range(3):
            p = matrix[i][j]
            if p == 0:
                assert counts[i, j] == 0
            else:
                assert abs(counts[i, j] / total - p) < Z * math.sqrt(p * (1 - p) / total)
    assert b.source_regime[0] == "trend_up"


def test_switching_states_keep_their_character() -> None:
    """Trend bars rise, and ranging spells end at their absolute level (a 2-bar half-life
    forgets any entry within 40 bars)."""
    params = {
        "states": ("trend_up", "ranging"),
        "transition": [[0.99, 0.01], [0.01, 0.99]],
        "state_params": {"trend_up": {"drift": 50.0, "volatility": 0.3},
                         "ranging": {"level": 100.0, "half_life": 2.0}},
    }
    (b,) = generate("regime_switching", 100_000, rng(17), params=params, version=1)
    label = np.asarray(b.source_regime)
    r = log_returns(b)
    assert r[label == "trend_up"].mean() > Z * r[label == "trend_up"].std() / math.sqrt(
        (label == "trend_up").sum())
    end = np.flatnonzero((label[:-1] == "ranging") & (label[1:] != "ranging"))
    start = np.flatnonzero((label[1:] == "ranging") & (label[:-1] != "ranging")) + 1
    long_spell_ends = [e for e in end if e - start[start <= e].max() > 40]
    assert len(long_spell_ends) > 10
    assert b.close[long_spell_ends] == pytest.approx(100.0, rel=0.01)


@pytest.mark.parametrize("version", [1, 2])
def test_correlated_symbols(version: int) -> None:
    """Sample correlation has se (1 - rho^2) / sqrt(n) (iid normal pairs; version 2's
    shared volatility scale keeps the correlation, and its fat tails widen the se a
    little, well inside 5 of them)."""
    corr = [[1.0, 0.6, -0.3], [0.6, 1.0, 0.2], [-0.3, 0.2, 1.0]]
    n = 100_000
    bars = generate("trend_up", n, rng(19), symbols=("A", "B", "C"), correlation=corr,
                    substeps=4, version=version)
    got = np.corrcoef([log_returns(b) for b in bars])
    for i in range(3):
        for j in range(i + 1, 3):
            assert abs(got[i, j] - corr[i][j]) < Z * (1 - corr[i][j] ** 2) / math.sqrt(n)
    twins = generate("ranging", 1_000, rng(1), symbols=("A", "B"), version=version,
                     correlation=[[1, 1], [1, 1]])  # singular but valid
    assert np.allclose(twins[0].close, twins[1].close, rtol=1e-12)


# --- validity, determinism, API ----------------------------------------------------------


@pytest.mark.parametrize("regime", REGIMES)
def test_every_regime_passes_validation(regime: str) -> None:
    bars = generate(regime, 5_000, rng(1), symbols=("A", "B"),
                    correlation=[[1, 0.5], [0.5, 1]], start_ns=1_700_000_000 * 10**9)
    for b in bars:
        validated(b)
        assert len(b) == 5_000 and b.ts[0] == 1_700_000_000 * 10**9
        assert b.source.startswith(f"generated:{regime}(")
        assert b.source_regime is not None and len(b.source_regime) == 5_000
        for col in ("ts", "open", "high", "low", "close", "volume", "source_regime"):
            assert not b.column(col).flags.writeable
        if regime != "regime_switching":
            assert set(b.source_regime) == {regime}
    shocked = apply_shocks(bars, [{"kind": kind} for kind in SHOCKS], rng(2))
    for b in shocked:
        validated(b)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    regime=st.sampled_from(REGIMES),
    n=st.integers(1, 400),
    substeps=st.integers(1, 16),
    k=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
    shocks=st.lists(st.sampled_from(SHOCKS), max_size=4),
)
def test_generated_and_shocked_bars_are_always_valid(
    regime: str, n: int, substeps: int, k: int, seed: int, shocks: list[str]
) -> None:
    symbols = tuple(f"S{i}" for i in range(k))
    bars = generate(regime, n, rng(seed), symbols=symbols, substeps=substeps)
    for b in bars:
        validated(b)
    fitting = [{"kind": kind, "bars": 1, "recovery_bars": 1} if kind == "flash_crash"
               else {"kind": kind} if kind == "gap" else {"kind": kind, "bars": 1}
               for kind in shocks]
    if n >= 2:
        for b in apply_shocks(bars, fitting, rng(seed)):
            validated(b)


@pytest.mark.parametrize("regime", REGIMES)
def test_same_seed_same_bytes(regime: str) -> None:
    kwargs = {"symbols": ("A", "B"), "correlation": [[1, 0.3], [0.3, 1]]}
    first = generate(regime, 2_000, rng(42), **kwargs)
    assert digest(first) == digest(generate(regime, 2_000, rng(42), **kwargs))
    assert digest(first) != digest(generate(regime, 2_000, rng(43), **kwargs))
    shocks = [{"kind": "flash_crash"}, {"kind": "volatility_burst"}]
    assert (digest(apply_shocks(first, shocks, rng(1)))
            == digest(apply_shocks(first, shocks, rng(1))))


def test_params_models() -> None:
    for regime in REGIMES:
        model = params_model(regime)
        assert validate_params(regime, None) == model()
        assert validate_params(regime, model()) == model()
    with pytest.raises(GeneratedSourceError, match="params must be RangingParams"):
        validate_params("ranging", params_model("crash")())


def one_line_error(call, *args, **kwargs) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(GeneratedSourceError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert isinstance(info.value, DataError) and isinstance(info.value, ValueError)
    return message


@pytest.mark.parametrize(("regime", "kwargs", "expected"), [
    ("sideways", {}, "unknown regime 'sideways' (use one of trend_up,"),
    ("trend_up", {"params": {"volatility": -0.1}},
     "regime 'trend_up': params.volatility: must be greater than or equal to 0"),
    ("trend_up", {"params": {"drift": 0.1, "volatility": 0.8}},
     "regime 'trend_up': params: drift 0.1 must exceed volatility**2/2"),
    ("trend_down", {"params": {"drift": 0.5}}, "params.drift: must be less than 0"),
    ("ranging", {"params": {"half_life": 0}},
     "regime 'ranging': params.half_life: must be greater than 0"),
    ("ranging", {"params": {"halflife": 3}}, "params.halflife: unknown field"),
    ("high_volatility", {"params": {"alpha": 0.2, "beta": 0.8}},
     "regime 'high_volatility': params: alpha + beta = 1.0 must be < 1"),
    ("crash", {"params": {"jump_std": float("nan")}}, "params.jump_std: must be a finite"),
    ("regime_switching", {"params": {"transition": [[0.9, 0.1, 0], [0.5, 0.4, 0],
                                                    [0, 0, 1]]}},
     "regime 'regime_switching': params.transition: row 1 sums to 0.9"),
    ("regime_switching", {"params": {"transition": [[0.5, 0.5], [0.5, 0.5]]}},
     "params: transition must be 3x3"),
    ("regime_switching", {"params": {"states": ["trend_up", "sideways"]}},
     "params.states: unknown state 'sideways'"),
    ("regime_switching", {"params": {"state_params": {"ranging": {"half_life": -1}}}},
     "params.state_params.ranging.half_life: must be greater than 0"),
    ("regime_switching", {"params": {"state_params": {"crash": {}}}},
     "state_params.crash is set but 'crash' is not in states"),
    ("trend_up", {"symbols": ("A", "B"), "correlation": [[1, 2], [2, 1]]},
     "regime 'trend_up': correlation[0][1]: is 2.0, not in [-1, 1]"),
    ("trend_up", {"symbols": ("A", "B", "C"),
                  "correlation": [[1, 0.9, -0.9], [0.9, 1, 0.9], [-0.9, 0.9, 1]]},
     "correlation: not positive semi-definite (smallest eigenvalue -0."),
    ("trend_up", {"symbols": ("A", "B"), "correlation": [[1, 0.5], [0.4, 1]]},
     "must be symmetric"),
    ("trend_up", {"symbols": ("A", "B"), "correlation": [[1, 0.5], [0.5, 0.9]]},
     "correlation[1][1]: is 0.9, must be 1"),
    ("trend_up", {"symbols": ("A", "B"), "correlation": [[1.0]]}, "correlation: must be 2x2"),
    ("trend_up", {"symbols": ("A", "A")}, "symbols: 'A' is given twice"),
    ("trend_up", {"symbols": "BTC"}, "symbols: must be a non-empty list"),
    ("trend_up", {"price": -1.0}, "price: must be a positive finite number"),
    ("trend_up", {"substeps": 0}, "substeps: must be a whole number >= 1"),
    ("trend_up", {"interval_ns": 0}, "interval_ns: must be a positive integer"),
    ("crash", {"params": {"drift": -1e9}}, "leaves the range of floating point numbers"),
])
def test_bad_input_is_one_clear_line(regime: str, kwargs: dict, expected: str) -> None:
    assert expected in one_line_error(generate, regime, 100, rng(), **kwargs)


def test_bad_bar_count() -> None:
    assert "n: must be a whole number of bars >= 1, got 0" in one_line_error(
        generate, "ranging", 0, rng())


# --- shocks ------------------------------------------------------------------------------


def base(n: int = 400) -> list[SymbolBars]:
    return generate("trend_up", n, rng(31), symbols=("A", "B"), params={"volatility": 0.3})


def test_flash_crash_path() -> None:
    (a, _) = before = base()
    shock = {"kind": "flash_crash", "at": 100, "drop": 0.2, "bars": 4, "recovery": 0.25,
             "recovery_bars": 10, "symbols": ["A"]}
    (x, y) = apply_shocks(before, [shock], rng())
    ratio = x.close / a.close
    assert np.array_equal(x.close[:100], a.close[:100])
    np.testing.assert_allclose(ratio[100:104], 0.8 ** (np.arange(1, 5) / 4), rtol=1e-12)
    np.testing.assert_allclose(ratio[113:], 0.8 ** 0.75, rtol=1e-12)
    assert np.array_equal(x.open[1:], x.close[:-1])
    assert list(x.source_regime[99:115]) == (["trend_up"] + ["trend_up:flash_crash"] * 14
                                             + ["trend_up"])
    assert y is before[1]  # untargeted symbol untouched
    assert x.source.endswith("+flash_crash@100")
    assert a.close[100] == before[0].close[100]  # inputs not changed


def test_gap_and_burst_and_drought() -> None:
    (a, _) = bars = base()
    (g, _) = apply_shocks(bars, [{"kind": "gap", "at": 50, "size": 0.1}], rng())
    assert g.open[50] / g.close[49] == pytest.approx(1.1, rel=1e-12)
    np.testing.assert_allclose(g.close[50:] / a.close[50:], 1.1, rtol=1e-12)
    assert list(np.flatnonzero(g.source_regime != "trend_up")) == [50]

    (v, _) = apply_shocks(bars, [{"kind": "volatility_burst", "at": 200, "bars": 20,
                                  "factor": 3.0}], rng())
    np.testing.assert_allclose(log_returns(v)[200:220], 3 * log_returns(a)[200:220],
                               rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(log_returns(v)[220:], log_returns(a)[220:], atol=1e-13)
    wick = np.log(a.high / np.maximum(a.open, a.close))[200:220]
    np.testing.assert_allclose(np.log(v.high / np.maximum(v.open, v.close))[200:220],
                               3 * wick, rtol=1e-6, atol=1e-12)

    (d, _) = apply_shocks(bars, [{"kind": "liquidity_drought", "at": 10, "bars": 5,
                                  "volume_factor": 0.1, "spread_bps": 40}], rng())
    np.testing.assert_allclose(d.volume[10:15], 0.1 * a.volume[10:15])
    np.testing.assert_allclose(d.high[10:15], a.high[10:15] * 1.002)
    np.testing.assert_allclose(d.low[10:15], a.low[10:15] * 0.998)
    assert np.array_equal(d.close, a.close) and np.array_equal(d.volume[15:], a.volume[15:])


def test_shocks_on_recorded_bars() -> None:
    frame = pd.DataFrame({
        "timestamp": pd.date_range("2024-01-01", periods=50, freq="1min", tz="UTC"),
        "open": np.linspace(100, 110, 50), "close": np.linspace(100.5, 110.5, 50),
        "volume": 5.0,
    })
    frame["high"] = frame[["open", "close"]].max(axis=1) + 0.3
    frame["low"] = frame[["open", "close"]].min(axis=1) - 0.3
    bars = [bars_from_frame(frame, "ETH", "eth.csv", interval_ns=MINUTE)]
    (x,) = apply_shocks(bars, [FlashCrash(at=10, bars=2, recovery_bars=3),
                               {"kind": "gap", "at": 30}], rng())
    validated(x)
    labels = list(x.source_regime)
    assert labels[10:15] == ["flash_crash"] * 5 and labels[30] == "gap"
    assert labels.count(None) == 44


def test_unplaced_shocks_are_drawn_from_the_rng() -> None:
    bars = base()
    ats = {apply_shocks(bars, [{"kind": "gap"}], rng(seed))[0].source for seed in range(8)}
    assert len(ats) > 1
    once = apply_shocks(bars, [{"kind": "gap"}], rng(5))
    assert once[0].source == apply_shocks(bars, [{"kind": "gap"}], rng(5))[0].source
    assert once[0].source.rsplit("@", 1)[1] == once[1].source.rsplit("@", 1)[1]


@pytest.mark.parametrize(("shock", "expected"), [
    ({"kind": "earthquake"}, "shocks[0].kind: 'earthquake' is not one of flash_crash"),
    ({"kind": "flash_crash", "drop": 1.5}, "shocks[0].drop: must be less than 1"),
    ({"kind": "flash_crash", "recovery_bars": 0}, "recovery_bars must be >= 1"),
    ({"kind": "gap", "size": -1}, "shocks[0].size: must be greater than -1"),
    ({"kind": "gap", "at": 0}, "shocks[0] (gap).at: must be >= 1"),
    ({"kind": "volatility_burst", "at": 390}, "(volatility_burst).at: bars 390..419 run past"),
    ({"kind": "volatility_burst", "factor": 0}, "shocks[0].factor: must be greater than 0"),
    ({"kind": "liquidity_drought", "symbols": ["X"]}, "symbols: 'X' is not in the data"),
    ({"kind": "liquidity_drought", "bars": 500}, "needs 500 bars but 'A' has 400"),
    ({"kind": "liquidity_drought", "volume": 3}, "shocks[0].volume: unknown field"),
])
def test_bad_shocks_are_one_clear_line(shock: dict, expected: str) -> None:
    assert expected in one_line_error(apply_shocks, base(), [shock], rng())
