"""The ML, risk-manager and signal-feed agents, checked against independent references.

* walk-forward: altering bars after t changes no signal at or before t (hypothesis);
* ML: the logistic fit against scipy's optimiser and scikit-learn (when installed) and the
  first-order optimality condition; the agent's incremental features against a vectorised
  pandas computation; its model against a fit on the window it should have used;
* risk: VaR against numpy.quantile and the Gaussian formula, drawdown against a running max,
  and the veto / reduce / all-clear contract;
* feed: which bar emits which signal, CSV and JSONL alike, and one-line file errors.
"""

from __future__ import annotations

import math
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from sim.agents.base import AgentError, build_agent, registered_agents
from sim.agents.ml import MlLogistic, fit_logistic
from sim.agents.risk_manager import RiskManager, is_reduce, is_veto, quantile_linear
from sim.agents.signal_feed import SignalFeed, load_signal_file
from sim.config import parse_scenario
from sim.data import SymbolBars
from sim.messages import FLAT, HOLD, LONG, SHORT, Signal
from sim.runner import run_scenario
from sim.store import DuckDBStore
from sim.view import MarketView

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
MINUTE = 60 * 10**9
T0 = pd.Timestamp("2024-01-01T00:00:00Z").value


# -- helpers -------------------------------------------------------------------------------
def make_bars(close: np.ndarray, symbol: str = "BTC", ts: np.ndarray | None = None) -> SymbolBars:
    close = np.asarray(close, dtype=np.float64)
    n = len(close)
    ts = T0 + MINUTE * np.arange(n, dtype=np.int64) if ts is None else ts
    open_ = np.concatenate(([close[0]], close[:-1]))
    return SymbolBars(symbol, "<test>", ts, open_, np.maximum(open_, close),
                      np.minimum(open_, close), close, np.ones(n))


def drive(agent, bars: SymbolBars) -> list[Signal | None]:
    """Feed the bars one at a time, as the engine does; the agent's answer per bar."""
    view = MarketView(bars)
    out = []
    for i in range(len(bars)):
        view.n = i + 1
        view.ts = int(bars.ts[i])
        view.open, view.high, view.low = float(bars.open[i]), float(bars.high[i]), float(
            bars.low[i])
        view.close, view.volume = float(bars.close[i]), float(bars.volume[i])
        out.append(agent.on_bar(view))
    return out


def standing(signals: list[Signal | None]) -> list[Signal | None]:
    """The signal in force after each bar (a None keeps the previous one)."""
    out, cur = [], None
    for s in signals:
        cur = s if s is not None else cur
        out.append(cur)
    return out


def gbm(rng: np.random.Generator, n: int, sigma: float = 0.01, s0: float = 100.0) -> np.ndarray:
    return s0 * np.exp(np.cumsum(rng.normal(0.0, sigma, n)))


def test_agents_are_registered():
    names = registered_agents()
    for name in ("ml_logistic", "risk_manager", "signal_feed", "external"):
        assert name in names


# -- walk-forward: nothing after t reaches a signal at or before t --------------------------
ML_SMALL = {"lags": (1, 3), "vol_window": 5, "z_window": 6, "train_window": 40,
            "min_train": 20, "retrain_every": 5}


def _feed_file(tmp: Path, times: list[int]) -> Path:
    lines = ["timestamp,symbol,side,confidence,fund_pct"]
    sides = ["long", "short", "flat", "hold"]
    for k, t in enumerate(sorted(set(times))):
        lines.append(f"{pd.Timestamp(t, tz='UTC').isoformat()},BTC,{sides[k % 4]},"
                     f"{(k % 10) / 10},{(k % 5) / 5}")
    path = tmp / "feed.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@settings(deadline=None, max_examples=60)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(60, 160),
    cut=st.floats(0.0, 1.0),
    kind=st.sampled_from(["ml", "risk", "feed"]),
    gapped=st.booleans(),
)
def test_changing_bars_after_t_changes_no_signal_up_to_t(
    seed, n, cut, kind, gapped, tmp_path_factory
):
    rng = np.random.default_rng(seed)
    close = gbm(rng, n, sigma=rng.uniform(0.002, 0.05))
    k = int(cut * (n - 1))  # bars 0..k agree, everything after differs
    after = gbm(np.random.default_rng(seed + 1), n - k - 1, sigma=0.1, s0=float(close[k]) * 3)
    altered = np.concatenate([close[: k + 1], after])
    ts = T0 + MINUTE * np.arange(n, dtype=np.int64)
    steps = (np.random.default_rng(seed + 2).integers(1, 5, n) if gapped
             else np.ones(n, dtype=np.int64))
    ts_alt = np.concatenate([ts[: k + 1], ts[k] + MINUTE * np.cumsum(steps[k + 1 :])])
    a, b = make_bars(close, ts=ts), make_bars(altered, ts=ts_alt)

    def build():
        if kind == "ml":
            return MlLogistic(**ML_SMALL)
        if kind == "risk":
            return RiskManager(window=10, max_var=0.01, max_drawdown=0.05, drawdown_window=30)
        times = [int(t) for t in T0 + MINUTE * rng_times]
        return SignalFeed(str(_feed_file(tmp_path_factory.mktemp("feed"), times)))

    rng_times = np.random.default_rng(seed + 3).integers(-5, 4 * n, 12)
    sig_a, sig_b = drive(build(), a), drive(build(), b)
    assert sig_a[: k + 1] == sig_b[: k + 1]
    spoke = sum(s is not None for s in sig_a[: k + 1])
    event(f"{kind}: {'some' if spoke else 'no'} signals up to t")


# -- ML: the model -------------------------------------------------------------------------
def _problem(seed: int = 0, n: int = 400):
    rng = np.random.default_rng(seed)
    scales = np.array([1e-3, 5e-3, 1.0, 20.0, 0.1, 1e-4])
    X = rng.normal(0, 1, (n, 6)) * scales + np.array([0, 0.01, 3, -50, 0, 1])
    true = np.array([0.8, -0.5, 0.3, 0.0, 1.2, -0.7])
    eta = ((X - X.mean(0)) / X.std(0)) @ true + 0.2
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-eta))).astype(float)
    return X, y


def _objective(beta: np.ndarray, A: np.ndarray, y: np.ndarray, l2: float) -> float:
    eta = A @ beta
    return float(np.mean(np.logaddexp(0, eta) - y * eta) + 0.5 * l2 * beta[1:] @ beta[1:])


@pytest.mark.parametrize("l2", [1e-3, 1e-2, 0.5])
def test_fit_is_the_penalised_optimum(l2):
    """First-order condition of the stated objective, on the raw scale: zero gradient."""
    X, y = _problem()
    coef, intercept = fit_logistic(X, y, l2, iterations=50)
    mean, sd = X.mean(0), X.std(0)
    w = coef * sd  # back to the standardised scale the penalty is on
    b = intercept + coef @ mean
    Z = (X - mean) / sd
    p = 1 / (1 + np.exp(-(b + Z @ w)))
    grad = np.concatenate(([np.mean(p - y)], Z.T @ (p - y) / len(y) + l2 * w))
    assert np.max(np.abs(grad)) < 1e-10


@pytest.mark.parametrize("l2", [1e-3, 1e-2, 0.5])
def test_fit_matches_scipy_minimiser(l2):
    """Within 1e-6 (relative) of scipy's BFGS on the same objective."""
    optimize = pytest.importorskip("scipy.optimize")
    X, y = _problem(1)
    coef, intercept = fit_logistic(X, y, l2)
    mean, sd = X.mean(0), X.std(0)
    A = np.column_stack([np.ones(len(y)), (X - mean) / sd])
    res = optimize.minimize(_objective, np.zeros(7), args=(A, y, l2), method="BFGS",
                            options={"gtol": 1e-12, "maxiter": 10_000})
    ref_coef = res.x[1:] / sd
    ref_intercept = res.x[0] - ref_coef @ mean
    np.testing.assert_allclose(coef, ref_coef, rtol=1e-6, atol=1e-9)
    assert intercept == pytest.approx(ref_intercept, rel=1e-6, abs=1e-9)


def test_fit_matches_sklearn_logistic_regression():
    """Equal to LogisticRegression(C = 1 / (n * l2)) on standardised features, within 1e-6."""
    linear = pytest.importorskip("sklearn.linear_model")
    X, y = _problem(2)
    l2 = 0.02
    coef, intercept = fit_logistic(X, y, l2)
    mean, sd = X.mean(0), X.std(0)
    ref = linear.LogisticRegression(C=1 / (len(y) * l2), tol=1e-12, max_iter=10_000)
    ref.fit((X - mean) / sd, y)
    np.testing.assert_allclose(coef * sd, ref.coef_[0], rtol=1e-6, atol=1e-8)
    assert intercept + coef @ mean == pytest.approx(ref.intercept_[0], rel=1e-6, abs=1e-8)


def reference_features(close: np.ndarray, lags, vol_window: int, z_window: int) -> np.ndarray:
    """The ML agent's features, vectorised with pandas (population deviations)."""
    x = pd.Series(np.log(close))
    cols = [x - x.shift(k) for k in lags]
    cols.append(x.diff().rolling(vol_window).std(ddof=0))
    mean = x.rolling(z_window).mean()
    cols.append((x - mean) / x.rolling(z_window).std(ddof=0))
    return np.column_stack(cols)


def test_incremental_features_and_walk_forward_fit_match_the_reference():
    params = {"lags": (1, 2, 7), "vol_window": 9, "z_window": 12, "train_window": 120,
              "min_train": 60, "retrain_every": 17, "l2": 0.05, "iterations": 50}
    close = gbm(np.random.default_rng(5), 700, sigma=0.01)
    agent = MlLogistic(**params)
    signals = drive(agent, make_bars(close))
    assert agent.fits > 10 and any(s is not None for s in signals)

    F = reference_features(close, params["lags"], params["vol_window"], params["z_window"])
    ret = np.diff(np.log(close))
    # the agent's training window now: rows of bars t-120 .. t-1 (t the last bar), each
    # labelled by the return of the bar after it
    t = len(close) - 1
    X, y = agent.training_rows
    rows = np.arange(t - params["train_window"], t)
    np.testing.assert_allclose(X, F[rows], rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(y, np.where(ret[rows] > 0, 1.0, 0.0))

    # the model in force: fitted at bar n = fitted_at on rows up to that bar's predecessor
    tf = agent.fitted_at - 1
    rows = np.arange(tf - params["train_window"], tf)
    keep = ret[rows] != 0
    coef, intercept = fit_logistic(F[rows][keep], (ret[rows] > 0)[keep].astype(float),
                                   params["l2"], params["iterations"])
    np.testing.assert_allclose(agent.coef, coef, rtol=1e-7, atol=1e-9)
    assert agent.intercept == pytest.approx(intercept, rel=1e-7, abs=1e-9)

    # the last signal is the prediction on the last bar's features
    p = 1 / (1 + math.exp(-(intercept + F[t] @ coef)))
    last = standing(signals)[-1]
    if abs(p - 0.5) <= 0.02:
        assert last.side is HOLD
    else:
        assert last.side is (LONG if p > 0.5 else SHORT)
        assert last.confidence == pytest.approx(round(abs(2 * p - 1) * 10) / 10 or 0.1)


def test_ml_waits_for_both_classes_and_abstains_until_fitted():
    agent = MlLogistic(**ML_SMALL)
    rising = 100 * np.exp(0.001 * np.arange(200))  # every return up: one class, no fit
    assert drive(agent, make_bars(rising)) == [None] * 200
    assert agent.fits == 0


def test_ml_long_only_never_shorts():
    agent = MlLogistic(**ML_SMALL, long_only=True, threshold=0.0)
    sides = {s.side for s in drive(agent, make_bars(gbm(np.random.default_rng(3), 600))) if s}
    assert SHORT not in sides and sides


def test_ml_bad_params_are_one_line_errors():
    with pytest.raises(AgentError, match="min_train") as info:
        build_agent("ml_logistic", {"train_window": 50, "min_train": 80},
                    np.random.default_rng(0))
    assert "\n" not in str(info.value)
    with pytest.raises(AgentError, match="lags"):
        build_agent("ml_logistic", {"lags": [1, 1]}, np.random.default_rng(0))
    with pytest.raises(AgentError, match="cannot import"):
        build_agent("ml_logistic", {"estimator": "no_such_pkg:Model"}, np.random.default_rng(0))


def test_ml_with_a_scikit_learn_estimator_is_deterministic():
    pytest.importorskip("sklearn")
    params = {**ML_SMALL, "estimator": "sklearn.ensemble:RandomForestClassifier",
              "estimator_params": {"n_estimators": 5, "max_depth": 3}, "retrain_every": 40}
    bars = make_bars(gbm(np.random.default_rng(8), 150))
    runs = [drive(build_agent("ml_logistic", params, np.random.default_rng(42)), bars)
            for _ in range(2)]
    assert runs[0] == runs[1]
    assert any(s is not None for s in runs[0])


def test_ml_sklearn_logistic_path_agrees_with_the_builtin_fit():
    """The same model through the estimator path gives the same signals: the plumbing
    (fit on the window, predict_proba on the row, class order) is right."""
    pytest.importorskip("sklearn")
    bars = make_bars(gbm(np.random.default_rng(9), 400))
    window = 60
    base = {**ML_SMALL, "train_window": window, "min_train": window, "retrain_every": 10}
    # the estimator is fitted unstandardised, so compare with a penalty too small to matter
    ours = standing(drive(MlLogistic(**{**base, "l2": 1e-9, "iterations": 100}), bars))
    sk = MlLogistic(**base, estimator="sklearn.linear_model:LogisticRegression",
                    estimator_params={"C": 1e9, "tol": 1e-12, "max_iter": 100_000})
    theirs = standing(drive(sk, bars))
    agree = sum(a is not None and b is not None and a.side is b.side
                for a, b in zip(ours, theirs, strict=True))
    assert agree >= 0.95 * sum(a is not None for a in ours)


# -- risk manager --------------------------------------------------------------------------
def test_quantile_matches_numpy():
    rng = np.random.default_rng(0)
    for n in (2, 3, 10, 250, 1001):
        v = rng.normal(size=n)
        for q in (0.0, 0.001, 0.01, 0.05, 0.3, 0.5, 0.77, 1.0):
            assert quantile_linear(sorted(v.tolist()), q) == np.quantile(v, q)


@pytest.mark.parametrize("level", [0.95, 0.99, 0.975])
def test_var_and_drawdown_match_numpy_every_bar(level):
    rng = np.random.default_rng(int(level * 1000))
    close = gbm(rng, 800, sigma=0.02)
    w = 50
    agent = RiskManager(window=w, level=level, method="worst", max_var=0.5, max_drawdown=0.9,
                        drawdown_window=100)
    bars = make_bars(close)
    view = MarketView(bars)
    ret = close[1:] / close[:-1] - 1
    z = NormalDist().inv_cdf(level)
    for i in range(len(close)):
        view.n, view.ts, view.close = i + 1, int(bars.ts[i]), float(close[i])
        agent.on_bar(view)
        peak = close[max(0, i - 99) : i + 1].max()
        assert agent.drawdown == pytest.approx(1 - close[i] / peak, abs=1e-15)
        if i < w:
            assert math.isnan(agent.var_historical)
            continue
        window = ret[i - w : i]
        assert agent.var_historical == pytest.approx(-np.quantile(window, 1 - level), abs=1e-15)
        gauss = z * window.std(ddof=1) - window.mean()
        assert agent.var_gaussian == pytest.approx(gauss, rel=1e-9, abs=1e-13)


def test_gaussian_var_matches_scipy_norm():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(4)
    close = gbm(rng, 300, sigma=0.01)
    agent = RiskManager(window=100, level=0.99, method="gaussian", max_var=0.5)
    drive(agent, make_bars(close))
    window = (close[1:] / close[:-1] - 1)[-100:]
    ref = -stats.norm.ppf(0.01, loc=window.mean(), scale=window.std(ddof=1))
    assert agent.var_gaussian == pytest.approx(ref, rel=1e-9)


def test_risk_contract_reduce_veto_and_all_clear():
    # calm, then volatile (VaR breach: reduce), then a crash (drawdown veto), then a
    # recovery to a new high and calm again (all clear)
    rng = np.random.default_rng(11)
    calm = rng.normal(0, 0.001, 150)
    wild = rng.normal(0, 0.02, 60)
    crash = np.full(10, -0.03)
    recover = np.full(60, 0.02)
    calm2 = rng.normal(0, 0.001, 400)
    close = 100 * np.exp(np.cumsum(np.concatenate([calm, wild, crash, recover, calm2])))
    max_var, step = 0.01, 0.1
    agent = RiskManager(window=50, level=0.99, max_var=max_var, target_step=step,
                        max_drawdown=0.2, release_drawdown=0.1)
    bars = make_bars(close)
    view = MarketView(bars)
    events = []
    for i in range(len(close)):
        view.n, view.ts, view.close = i + 1, int(bars.ts[i]), float(close[i])
        s = agent.on_bar(view)
        if s is not None:
            events.append((i, s, agent.var_historical, agent.drawdown))
    kinds = ["veto" if is_veto(s) else "reduce" if is_reduce(s) else "clear"
             for _, s, _, _ in events]
    assert kinds[0] == "reduce"  # nothing before the first breach
    assert "veto" in kinds and kinds[-1] == "clear"
    for _, s, var, dd in events:
        if is_veto(s):
            assert s.side is FLAT and s.target == 0.0 and s.reason.startswith("veto: ")
            assert dd >= 0.1
        elif is_reduce(s):
            assert s.side is HOLD and 0 < s.target < 1 and s.reason.startswith("reduce: ")
            assert var > max_var and dd < 0.2
            assert s.target == pytest.approx(math.floor(max_var / var / step + 1e-9) * step)
        else:
            assert s.side is HOLD and s.confidence == 0.0 and s.target is None
    first_veto = next(i for i, s, _, _ in events if is_veto(s))
    dd = 1 - close / np.maximum.accumulate(close)
    assert first_veto == int(np.argmax(dd >= 0.2))  # at the first bar past the limit


def test_risk_params_need_a_limit():
    with pytest.raises(AgentError, match="max_var, max_drawdown"):
        build_agent("risk_manager", {"max_var": None, "max_drawdown": None},
                    np.random.default_rng(0))
    with pytest.raises(AgentError, match="release_drawdown"):
        build_agent("risk_manager", {"max_drawdown": 0.1, "release_drawdown": 0.2},
                    np.random.default_rng(0))


# -- signal feed ---------------------------------------------------------------------------
EXPECTED_BTC = {  # bar index (1m bars from 00:00Z) -> (side, confidence, target)
    0: (LONG, 0.6, 0.25),   # published 23:58 the day before: usable at the first bar
    3: (SHORT, 0.8, 0.5),   # published at 00:03 exactly: that bar
    6: (FLAT, 1.0, 0.0),    # 00:05:30, mid-bar: the next bar to open, 00:06
    8: (LONG, 0.7, 0.3),    # 00:07:10 and 00:07:50: only the latest, at 00:08
    12: (HOLD, 0.0, None),  # 01:12+01:00 = 00:12Z
}


@pytest.mark.parametrize("name", ["signals_sample.csv", "signals_sample.jsonl"])
def test_feed_emits_each_signal_at_the_first_bar_at_or_after_it(name):
    agent = SignalFeed(str(FIXTURES / name))
    out = drive(agent, make_bars(np.full(60, 100.0)))
    got = {i: (s.side, s.confidence, s.target) for i, s in enumerate(out) if s is not None}
    assert got == EXPECTED_BTC
    assert out[8].reason.endswith("the latest before 00:08, with a comma")
    eth = drive(SignalFeed(str(FIXTURES / name)), make_bars(np.full(10, 1.0), "ETH"))
    assert [(i, s.side) for i, s in enumerate(eth) if s] == [(3, LONG)]
    assert drive(SignalFeed(str(FIXTURES / name)), make_bars(np.ones(5), "XRP")) == [None] * 5


def test_feed_in_a_run_records_signals_at_the_expected_bars(tmp_path):
    raw = {
        "name": "feed", "seed": 1,
        "data": [{"kind": "gbm", "symbol": "BTC", "bars": 60, "interval": "1m",
                  "start": "2024-01-01T00:00:00Z"}],
        "agents": [{"name": "feed", "kind": "signal_feed",
                    "params": {"path": str(FIXTURES / "signals_sample.csv")}}],
        "venues": [{"name": "v", "symbols": ["BTC"]}],
    }
    with DuckDBStore(tmp_path / "r.duckdb") as store:
        run = run_scenario(parse_scenario(raw), store)
        rows = store.con.execute(
            "SELECT epoch_ns(ts), side, confidence, target FROM signals WHERE run_id = ?"
            " ORDER BY ts", [run.run_id]).fetchall()
    assert rows == [(T0 + MINUTE * i, side.name, c, t)
                    for i, (side, c, t) in EXPECTED_BTC.items()]


BAD_FILES = {
    "bad_side": ("timestamp,symbol,side,confidence,fund_pct\n"
                 "2024-01-01T00:00:00Z,BTC,long,0.5,0.1\n2024-01-01T00:01:00Z,BTC,up,0.5,0.1\n",
                 ".csv", ["line 3", "side", "'up'"]),
    "confidence": ("timestamp,symbol,side,confidence,fund_pct\n"
                   "2024-01-01T00:00:00Z,BTC,long,1.5,0.1\n", ".csv", ["line 2", "confidence"]),
    "percent": ("timestamp,symbol,side,confidence,fund_pct\n"
                "2024-01-01T00:00:00Z,BTC,long,0.5,25\n", ".csv", ["line 2", "25% is 0.25"]),
    "order": ("timestamp,symbol,side,confidence,fund_pct\n"
              "2024-01-01T00:05:00Z,BTC,long,0.5,0.1\n2024-01-01T00:01:00Z,ETH,long,0.5,0.1\n",
              ".csv", ["line 3", "time order"]),
    "duplicate": ("timestamp,symbol,side,confidence,fund_pct\n"
                  "2024-01-01T00:05:00Z,BTC,long,0.5,0.1\n"
                  "2024-01-01T00:05:00Z,BTC,short,0.5,0.1\n", ".csv", ["line 3", "line 2"]),
    "unknown_column": ("timestamp,symbol,side,confidence,fund_pct,size\n", ".csv",
                       ["line 1", "'size'"]),
    "missing_column": ("timestamp,side,confidence,fund_pct\n", ".csv", ["line 1", "symbol"]),
    "timestamp": ("timestamp,symbol,side,confidence,fund_pct\nyesterday,BTC,long,0.5,0.1\n",
                  ".csv", ["line 2", "'yesterday'"]),
    "fields": ("timestamp,symbol,side,confidence,fund_pct\n2024-01-01T00:00:00Z,BTC,long\n",
               ".csv", ["line 2", "3 fields"]),
    "blank": ("timestamp,symbol,side,confidence,fund_pct\n"
              "2024-01-01T00:00:00Z,BTC,long,0.5,0.1\n\n2024-01-02T00:00:00Z,BTC,long,0.5,0.1\n",
              ".csv", ["line 3", "blank"]),
    "not_json": ('{"timestamp": "2024-01-01T00:00:00Z", "symbol": "BTC", "side": "long", '
                 '"confidence": 0.5, "fund_pct": 0.1}\n{oops\n', ".jsonl", ["line 2", "JSON"]),
    "json_number": ('{"timestamp": "2024-01-01T00:00:00Z", "token": "BTC", "side": "long", '
                    '"confidence": "high", "fund_pct": 0.1}\n', ".jsonl",
                    ["line 1", "confidence", "'high'"]),
    "suffix": ("x", ".txt", ["unknown signal file type"]),
    "empty": ("timestamp,symbol,side,confidence,fund_pct\n", ".csv", ["no signals"]),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_signal_file_is_a_one_line_error_naming_the_line(case, tmp_path):
    text, suffix, words = BAD_FILES[case]
    path = tmp_path / f"bad{suffix}"
    path.write_text(text)
    with pytest.raises(AgentError) as info:
        build_agent("signal_feed", {"path": str(path)}, np.random.default_rng(0))
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    for word in words:
        assert word in message, (word, message)


def test_missing_signal_file_fails_scenario_validation(tmp_path):
    raw = {"name": "x", "data": [{"kind": "gbm", "symbol": "BTC", "bars": 10}],
           "agents": [{"name": "feed", "kind": "signal_feed",
                       "params": {"path": str(tmp_path / "nope.csv")}}],
           "venues": [{"name": "v", "symbols": ["BTC"]}]}
    with pytest.raises(ValueError, match="signal file not found"):
        parse_scenario(raw)


def test_feed_file_is_read_once_while_unchanged():
    path = FIXTURES / "signals_sample.csv"
    assert load_signal_file(path) is load_signal_file(str(path))
    assert load_signal_file(path).rows == 8
