"""Fit a calibrated regime model (``sim.regimes.calibrated``) to recorded bars.

Three stages, the first two with well-kept libraries (imported here, lazily, so importing
``sim`` never pays for them):

1. **States**: a Markov-switching regression with switching mean and variance
   (``statsmodels`` ``MarkovRegression``) on the returns (several symbols: the mean of
   their standardised returns on common bars, so the chain is the market's). States are
   ordered by volatility and named by it (``calm``, ..., ``turbulent``); the transition
   matrix is the fit's; each bar is given its most probable (smoothed) state.
2. **Per symbol**: drift and volatility of each state from its bars; a GJR-GARCH(1,1)
   with an AR(1) mean and Student-t innovations (``arch``) on the returns standardised
   by their state, which gives the fast volatility clustering, the leverage term, the
   reversal and the tails; jumps where the standardised residuals exceed 5 more often
   than the fitted t allows; the wick and volume regressions on the fitted volatility.
3. **Moment matching**: the maximum-likelihood fit describes the data's dynamics, but
   what strategies feel are the sample facts. With common random numbers (fixed seeds,
   so calibration is deterministic), paths of the fitted model are simulated and
   ``reversal``, ``nu``, the GARCH reaction and persistence and the volatility level
   are adjusted until the median over paths of the lag-1 autocorrelation of returns,
   the excess kurtosis, the autocorrelation of ``|r|`` at lags 1 and 20 and the
   standard deviation match the source's.

``calibrate`` raises ``DataError`` (one line naming the file) for data it cannot fit.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from sim.data import NS_PER_YEAR, DataError, SymbolBars, load_bars
from sim.regimes.calibrated import CalibratedModel, StateModel, SymbolModel, simulate_returns
from sim.regimes.facts import acf, bars_per_year, kurtosis
from sim.regimes.params import describe_validation_error

__all__ = ["TUNED_FACTS", "calibrate", "tuned_facts"]

STATE_NAMES = {1: ("normal",), 2: ("calm", "turbulent"), 3: ("calm", "active", "turbulent")}
TUNED_FACTS = ("excess_kurtosis", "acf_abs_1", "acf_abs_20", "acf_1", "std")
_PATHS, _PATH_BARS = 6, 20_000  # simulated paths per evaluation while tuning
_FINAL_PATHS = 30  # for the final reversal and volatility level
_JUMP_Z = 5.0
_MIN_NU, _M4_BOUND = 8.5, 0.85
_MAX_GARCH_PERSISTENCE, _SV_PERSISTENCE, _MAX_SV_SD = 0.95, 0.99, 0.6
_MIN_SPELL = 10.0  # bars: a chain state must last longer than this on average
_MIN_BARS = 500
_NO_WICK = -30.0  # wick level of data without wicks: exp(-30) volatilities, nothing


@dataclass(frozen=True, slots=True)
class _Series:
    bars: SymbolBars
    ts: np.ndarray  # timestamp of each return's bar
    r: np.ndarray  # log returns of consecutive bars


def tuned_facts(r: np.ndarray) -> dict[str, float]:
    """The facts calibration matches (``TUNED_FACTS``) of one return series."""
    a = np.abs(r) - np.mean(np.abs(r))
    a2 = float(np.sum(a * a))
    d = r - np.mean(r)
    return {"excess_kurtosis": kurtosis(r), "acf_abs_1": float(np.sum(a[1:] * a[:-1])) / a2,
            "acf_abs_20": float(np.sum(a[20:] * a[:-20])) / a2,
            "acf_1": float(np.sum(d[1:] * d[:-1]) / np.sum(d * d)), "std": float(np.std(r))}


def _load(paths: Sequence[Path], interval_ns: int | None,
          symbols: Sequence[str] | None = None) -> tuple[list[_Series], int]:
    names = symbols if symbols is not None else [Path(p).stem for p in paths]
    loaded = [load_bars(p, name) for p, name in zip(paths, names, strict=True)]
    for b in loaded:
        if len(b) < _MIN_BARS:
            raise DataError(f"{b.source}: {len(b)} bars; calibration needs at least {_MIN_BARS}")
    if interval_ns is None:
        found = {int(np.median(np.diff(b.ts))) for b in loaded}
        if len(found) > 1:
            raise DataError("files have different bar intervals; calibrate them separately "
                            "or pass --interval")
        interval_ns = found.pop()
    out = []
    for b in loaded:
        steps = np.diff(b.ts)
        keep = steps == interval_ns
        if interval_ns >= 86_400 * 10**9:  # daily and longer: closed days are not gaps
            keep = steps <= np.median(steps) * 4
        if keep.sum() < _MIN_BARS:
            raise DataError(f"{b.source}: fewer than {_MIN_BARS} consecutive bars at the "
                            f"interval {interval_ns} ns")
        r = np.diff(np.log(b.close))
        if not np.isfinite(r).all():
            raise DataError(f"{b.source}: log returns are not finite")
        out.append(_Series(b, b.ts[1:][keep], r[keep]))
    return out, interval_ns


def _bars_per_year(series: Sequence[_Series], interval_ns: int) -> float:
    return bars_per_year(series[0].bars) if interval_ns >= 86_400 * 10**9 \
        else NS_PER_YEAR / interval_ns


def _fit_states(series: Sequence[_Series], k: int) -> tuple[np.ndarray, np.ndarray,
                                                              list[np.ndarray]]:
    """Transition matrix (rows: from) and each series' state per return."""
    if k == 1:
        return np.ones((1, 1)), np.ones(1), [np.zeros(s.r.size, dtype=np.int64) for s in series]
    from statsmodels.tsa.regime_switching.markov_regression import MarkovRegression

    common = series[0].ts
    for s in series[1:]:
        common = np.intersect1d(common, s.ts)
    if common.size < _MIN_BARS:
        raise DataError("the files share fewer than 500 bars; calibrate them separately")
    y = np.mean([s.r[np.searchsorted(s.ts, common)] / s.r.std() for s in series], axis=0)
    # A switching model on single bars may explain fat tails by a state that flickers
    # (spells of a bar or two) instead of finding the slow regimes; then it is fitted
    # again on sums of ``block`` bars, and its transition matrix taken back to one bar.
    for block in (1, 4, 12):
        m = y.size // block
        agg = y[: m * block].reshape(m, block).sum(axis=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = MarkovRegression(agg, k_regimes=k, trend="c", switching_variance=True).fit(
                disp=False)
        stay = np.diag(np.asarray(fit.regime_transition)[..., 0]) ** (1.0 / block)
        if (1.0 / np.maximum(1.0 - stay, 1e-12)).min() >= _MIN_SPELL:
            break
    else:
        return _fit_states(series, 1)
    order = np.argsort(fit.params[[f"sigma2[{i}]" for i in range(k)]].to_numpy()
                       if hasattr(fit.params, "to_numpy") else
                       np.asarray(fit.params)[-k:])
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(k)
    to_from = np.asarray(fit.regime_transition)[..., 0]  # [to, from]
    matrix = to_from.T[np.ix_(order, order)]
    if block > 1:  # per bar: stay ** (1 / block), moves in the block's proportions
        stay = np.diag(matrix) ** (1.0 / block)
        moves = matrix - np.diag(np.diag(matrix))
        share = moves / np.maximum(moves.sum(axis=1, keepdims=True), 1e-300)
        matrix = share * (1 - stay)[:, None] + np.diag(stay)
    matrix = matrix / matrix.sum(axis=1, keepdims=True)
    probs = np.asarray(fit.smoothed_marginal_probabilities)
    state = np.repeat(rank[np.argmax(probs, axis=1)], block)
    state = np.concatenate([state, np.full(y.size - state.size, state[-1])])
    per_series = []
    for s in series:
        at = np.clip(np.searchsorted(common, s.ts, side="right") - 1, 0, common.size - 1)
        per_series.append(state[at])
    return matrix, np.asarray(fit.params), per_series


def _fit_symbol(s: _Series, states: np.ndarray, k: int) -> SymbolModel:
    from arch import arch_model
    from scipy import stats

    r = s.r
    drift = np.zeros(k)
    vol = np.full(k, float(r.std()))
    for j in range(k):
        inside = r[states == j]
        if inside.size >= 20:
            drift[j], vol[j] = float(inside.mean()), float(inside.std())
    u = (r - drift[states]) / vol[states]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = arch_model(u, mean="AR", lags=1, vol="GARCH", p=1, o=1, q=1, dist="t",
                         rescale=False).fit(disp="off", show_warning=False)
    p = dict(zip(fit.params.index, fit.params.to_numpy(), strict=True))
    reversal = float(np.clip(p.get("y[1]", 0.0), -0.9, 0.9))
    alpha, gamma, beta = (float(max(p[n], 0.0)) for n in ("alpha[1]", "gamma[1]", "beta[1]"))
    total = alpha + gamma / 2 + beta
    if total >= 0.995:  # keep a long-run level: shrink towards it
        alpha, gamma, beta = (x * 0.995 / total for x in (alpha, gamma, beta))
    nu = float(np.clip(p["nu"], 2.5, 200.0))
    z = np.asarray(fit.std_resid)
    cv = np.asarray(fit.conditional_volatility)
    ok = np.isfinite(z) & np.isfinite(cv)
    tail = 2 * stats.t.sf(_JUMP_Z * math.sqrt(nu / (nu - 2)), nu)
    excess = round(np.count_nonzero(np.abs(z[ok]) > _JUMP_Z) - tail * ok.sum())
    jump = {"jump_intensity": 0.0, "jump_mean": 0.0, "jump_std": 0.0}
    if excess >= 3:
        big = np.argsort(-np.where(ok, np.abs(z), 0))[:excess]
        jump = {"jump_intensity": excess / r.size, "jump_mean": float(r[big].mean()),
                "jump_std": float(r[big].std())}
    sigma = np.where(ok, vol[states] * np.where(ok, cv, 1.0), vol[states])
    return SymbolModel(
        name=s.bars.symbol, price=float(s.bars.close[0]),
        states=[StateModel(drift=float(d), volatility=float(v)) for d, v in zip(drift, vol,
                                                                                 strict=True)],
        reversal=reversal, alpha=alpha, gamma=gamma, beta=beta, nu=nu, **jump,
        **_bar_shape(s, sigma),
    )


def _bar_shape(s: _Series, sigma: np.ndarray) -> dict[str, float]:
    """Wick and volume regressions on the fitted volatility of each return's bar."""
    b = s.bars
    at = np.searchsorted(b.ts, s.ts)
    o, h, lo, c, v = (np.asarray(x)[at] for x in (b.open, b.high, b.low, b.close, b.volume))
    log_range = np.log(h / lo)
    wick = log_range - np.abs(np.log(c / o))
    # Wicks of a tick or less are price discreteness, not volatility: fitted on the rest,
    # with a robust spread (1.4826 MAD) so a few rounding-sized wicks do not inflate it.
    ok = wick > 0.05 * sigma
    if ok.sum() < 20:  # bars without wicks (open and close are the extremes)
        level, slope, wick_sd = _NO_WICK, 1.0, 0.0
    else:
        slope, level = np.polyfit(np.log(sigma[ok]), np.log(wick[ok]), 1)
        resid = np.log(wick[ok]) - (level + slope * np.log(sigma[ok]))
        wick_sd = float(1.4826 * np.median(np.abs(resid - np.median(resid))))
    ok = (v > 0) & (log_range > 0)
    if ok.sum() < 20:
        return {"wick_level": float(level), "wick_slope": float(slope), "wick_sd": wick_sd}
    v_slope, v_level = np.polyfit(np.log(log_range[ok]), np.log(v[ok]), 1)
    resid = np.log(v[ok]) - (v_level + v_slope * np.log(log_range[ok]))
    ar = acf(resid, 1)[0]  # NaN for a volume the regression explains fully (constant)
    return {"wick_level": float(level), "wick_slope": float(slope), "wick_sd": wick_sd,
            "volume_level": float(v_level), "volume_slope": float(v_slope),
            "volume_sd": float(resid.std()),
            "volume_ar": float(np.clip(ar, -0.95, 0.95)) if np.isfinite(ar) else 0.0}


def _simulated(model: CalibratedModel, seed: int, paths: int = _PATHS) -> dict[str, float]:
    """Median over ``paths`` simulated paths of each tuned fact (common random numbers)."""
    runs = [tuned_facts(simulate_returns(model, _PATH_BARS, np.random.default_rng([seed, j]))[0])
            for j in range(paths)]
    return {k: float(np.median([f[k] for f in runs])) for k in TUNED_FACTS}


def _finite_fourth_moment(react: float, persist: float, share: float, nu: float) -> float:
    """The largest reaction <= ``react`` whose GJR-GARCH keeps a finite fourth moment
    (``E[(a e**2 + beta)**2] <= _M4_BOUND``) at the persistence given, for t(``nu``) shocks
    with ``nu >= _MIN_NU``. An infinite fourth moment makes the sample kurtosis of every
    path a lottery: the calibrated kurtosis would hold for the median path only."""
    kappa = 3.0 + 6.0 / (max(nu, _MIN_NU) - 4.0)  # E[e**4] of a unit t

    def m4(r: float) -> float:
        alpha, gamma = r * share, 2 * r * (1 - share)
        beta = persist - r
        return beta**2 + 2 * beta * r + (alpha**2 + alpha * gamma + gamma**2 / 2) * kappa

    while react > 0.005 and m4(react) > _M4_BOUND:
        react *= 0.95
    return react


def _tune(model: CalibratedModel, target: dict[str, float], seed: int) -> SymbolModel:
    """Adjust one symbol's free parameters until the simulated facts match ``target``.

    The reversal moves the lag-1 autocorrelation of returns almost alone and the
    volatility level only scales, so they are set directly; the clustering and tail
    parameters interact (a stronger GARCH also fattens the tails), so they are solved
    together by bounded least squares (``scipy.optimize.least_squares``) over the GARCH
    reaction, the slow log-volatility's persistence and spread, ``nu``, the states'
    volatility contrast and the jump rate.
    """
    from scipy.optimize import least_squares

    sm = model.symbols[0]
    share = sm.alpha / (sm.alpha + sm.gamma / 2) if sm.alpha + sm.gamma > 0 else 1.0
    persist = min(sm.alpha + sm.gamma / 2 + sm.beta, _MAX_GARCH_PERSISTENCE)

    fitted_vols = np.array([st.volatility for st in sm.states])
    typical = math.exp(float(np.mean(np.log(fitted_vols))))

    def shaped(x: np.ndarray, base: SymbolModel) -> SymbolModel:
        react, slack, sv_sd, nu = (math.exp(x[0]), math.exp(x[1]), math.exp(x[2]),
                                   2 + math.exp(x[3]))
        react = _finite_fourth_moment(min(react, persist - 0.01), persist, share, nu)
        alpha = react * share
        # The states' volatility contrast, as fitted (x[4] = 0) or shrunk or stretched.
        level = np.mean([st.volatility for st in base.states]) / np.mean(fitted_vols)
        vols = level * typical * (fitted_vols / typical) ** math.exp(x[4])
        return base.model_copy(update={
            "alpha": alpha, "gamma": 2 * (react - alpha), "beta": persist - react,
            "sv_persistence": 1 - slack, "sv_sd": sv_sd, "nu": nu,
            "jump_intensity": math.exp(x[5]),
            "states": [st.model_copy(update={"volatility": float(v)})
                       for st, v in zip(base.states, vols, strict=True)]})

    def sim(candidate: SymbolModel, paths: int = _PATHS) -> dict[str, float]:
        return _simulated(model.model_copy(update={"symbols": [candidate]}), seed, paths)

    def residuals(x: np.ndarray, base: SymbolModel) -> np.ndarray:
        got = sim(shaped(x, base))
        return np.array([
            (got["acf_abs_1"] - target["acf_abs_1"]) / 0.02,
            (got["acf_abs_20"] - target["acf_abs_20"]) / 0.02,
            math.log((got["excess_kurtosis"] + 3) / (target["excess_kurtosis"] + 3)) / 0.05,
            (x[1] - math.log(1 - _SV_PERSISTENCE)) * 0.2,  # weak pulls: more unknowns
            x[4] * 0.5,  # than facts, so keep what the fits found unless it must change
            (x[5] - x0[5]) * 0.1,
        ])

    def direct(candidate: SymbolModel, paths: int = _PATHS) -> SymbolModel:
        got = sim(candidate, paths)
        scale = target["std"] / got["std"]
        return candidate.model_copy(update={
            "reversal": float(np.clip(candidate.reversal + target["acf_1"] - got["acf_1"],
                                      -0.9, 0.9)),
            "states": [st.model_copy(update={"volatility": st.volatility * scale})
                       for st in candidate.states],
            "jump_mean": candidate.jump_mean * scale, "jump_std": candidate.jump_std * scale})

    # Jumps give kurtosis without clustering (a series with fat tails but little
    # clustering needs them): their rate is solved for too, their size kept as found in
    # the residuals or, where none were found, a move of _JUMP_Z typical volatilities.
    if sm.jump_std <= 0:
        sm = sm.model_copy(update={"jump_mean": 0.0, "jump_std": _JUMP_Z * typical})
    lower = np.log([0.002, 0.002, 0.01, _MIN_NU - 2, 0.1, 1e-5])
    upper = np.log([0.3, 0.1, _MAX_SV_SD, 198.0, 2.0, 0.02])
    # Start from light t tails and a moderate slow volatility: from there, clustering and
    # tails are traded off; started at the fit's low nu, the solver can stall with all
    # the kurtosis in the tails and too little clustering.
    x0 = np.clip(np.log([max(sm.alpha + sm.gamma / 2, 0.01), 1 - _SV_PERSISTENCE, 0.3,
                         28.0, 1.0, max(sm.jump_intensity, 1e-4)]), lower + 1e-9, upper - 1e-9)
    x = x0
    for _ in range(2):
        sm = direct(sm)
        fit = least_squares(residuals, x, bounds=(lower, upper), args=(sm,), diff_step=0.1,
                            max_nfev=40, x_scale=1.0)
        x = fit.x
        sm = shaped(x, sm)
    # The last steps on many more paths: the few paths of the search share one draw of
    # sampling error (a few percent of volatility, more of kurtosis) that the final
    # model should not carry. nu is bisected once more, near where the search left it.
    lo, hi = max(x[3] - 1.0, lower[3]), min(x[3] + 1.0, upper[3])
    for _ in range(5):
        mid = (lo + hi) / 2
        got = sim(sm.model_copy(update={"nu": 2 + math.exp(mid)}), _FINAL_PATHS)
        lo, hi = (mid, hi) if got["excess_kurtosis"] > target["excess_kurtosis"] else (lo, mid)
    nu = 2 + math.exp((lo + hi) / 2)
    react = _finite_fourth_moment(sm.alpha + sm.gamma / 2, persist, share, nu)
    sm = sm.model_copy(update={"nu": nu, "alpha": react * share,
                               "gamma": 2 * react * (1 - share), "beta": persist - react})
    return direct(direct(sm, _FINAL_PATHS), _FINAL_PATHS)


def calibrate(paths: Sequence[str | Path], *, interval_ns: int | None = None,
              states: int = 2, seed: int = 0, tune: bool = True,
              symbols: Sequence[str] | None = None) -> CalibratedModel:
    """A model of the bars in ``paths`` (one symbol per file, named by the file's stem).

    ``states``: regimes of the chain (1-3). ``seed``: the common random numbers of the
    moment matching (the fit is deterministic for a given seed). ``tune`` False keeps
    the maximum-likelihood parameters as fitted. ``symbols``: names for the files'
    symbols (default each file's stem).
    """
    from sim.data import _duration

    if states not in STATE_NAMES:
        raise DataError(f"states: {states} is not 1, 2 or 3")
    if not paths:
        raise DataError("no files to calibrate")
    if symbols is not None and len(symbols) != len(paths):
        raise DataError(f"symbols: {len(symbols)} name(s) for {len(paths)} file(s)")
    series, interval_ns = _load([Path(p) for p in paths], interval_ns, symbols)
    matrix, _, per_series = _fit_states(series, states)
    states = len(matrix)  # one, where no slow states could be found (see _fit_states)
    fitted = [_fit_symbol(s, st, states) for s, st in zip(series, per_series, strict=True)]
    corr = None
    if len(series) > 1:
        common = series[0].ts
        for s in series[1:]:
            common = np.intersect1d(common, s.ts)
        corr = np.corrcoef([s.r[np.searchsorted(s.ts, common)] for s in series]).tolist()
    model = CalibratedModel(
        interval=_duration(interval_ns), bars_per_year=_bars_per_year(series, interval_ns),
        sources=[str(p) for p in paths], states=list(STATE_NAMES[states]),
        transition=matrix.tolist(), correlation=corr, symbols=fitted,
    )
    if tune:
        tuned = []
        for i, s in enumerate(series):
            alone = model.model_copy(update={"symbols": [model.symbols[i]], "correlation": None})
            tuned.append(_tune(alone, tuned_facts(s.r), seed))
        model = model.model_copy(update={"symbols": tuned})
    try:
        return CalibratedModel.model_validate(model.model_dump())
    except ValidationError as exc:  # e.g. a fit that returned NaN: say so, in one line
        raise DataError(f"{paths[0]}: the fit gives no valid model: "
                        f"{describe_validation_error(exc, 'model')}") from None
