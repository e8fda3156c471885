"""Calibrated regimes: bars from a model fitted to recorded history (``model.toml``).

The model (written by ``quorum data calibrate``, ``sim.regimes.calibrate``) is a Markov
chain over ``k`` states shared by every symbol, and per symbol and bar ``t``::

    g[t] = c + (alpha + gamma [e[t-1] < 0]) e[t-1]**2 g[t-1] + beta g[t-1]   (unit GJR-GARCH)
    sigma[t] = volatility[s[t]] sqrt(g[t])                                (state level)
    x[t] = reversal x[t-1] + sigma[t] e[t] + J[t]                          (AR(1) reversal)
    r[t] = drift[s[t]] + x[t]                                              (log return)

with ``c = 1 - alpha - gamma / 2 - beta`` (so ``g`` averages 1), ``e`` Student-t with
``nu`` degrees of freedom scaled to unit variance, and ``J`` Poisson jumps
(``jump_intensity`` per bar, sizes N(``jump_mean``, ``jump_std``)). A slow log-volatility
AR(1) multiplies ``sigma`` by ``exp(v[t] - sv_sd**2)`` (``v`` Gaussian, persistence
``sv_persistence``, stationary sd ``sv_sd``). The time scales, the state chain and the
log-volatility (slow) and GARCH (fast), give volatility clustering that decays the way
real markets' does while every moment stays finite (kurtosis is then a stable number,
not one a single path's largest shock decides); the t innovations and the jumps give
fat tails; a negative ``reversal`` the short-horizon reversal (bid-ask bounce) of
intraday bars.

A bar's wick (``log(high / low) - |r|``) is ``exp(wick_level + wick_slope log sigma +
wick_sd N)``, split between the upper and lower wick by a uniform draw; its volume is
``exp(volume_level + volume_slope log(range) + y)`` with ``y`` a Gaussian AR(1)
(``volume_ar``, stationary sd ``volume_sd``). Busy bars are wide bars, as in the data.

Symbols' shocks ``e`` are correlated through ``correlation`` (the normal parts are
correlated more strongly so that the t shocks, which divide by independent chi-squared
draws, come out at about the given correlation). Everything is vectorised (the
recursions run through ``linear_recurrence``), and each component draws from its own
stream spawned from the ``rng`` passed in, so the same seed gives the same bytes.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sim.data import SymbolBars
from sim.regimes._numerics import correlation_factor, linear_recurrence, markov_chain
from sim.regimes.params import ROW_SUM_TOLERANCE, GeneratedSourceError, describe_validation_error

__all__ = [
    "MODEL_FORMAT",
    "CalibratedModel",
    "StateModel",
    "SymbolModel",
    "generate_calibrated",
    "load_model",
    "model_to_toml",
    "simulate_returns",
    "t_correlation_factor",
]

MODEL_FORMAT = "quorum.calibrated/1"
_UNIT = Annotated[float, Field(ge=0, lt=1)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class StateModel(_Model):
    """One state of one symbol: per-bar drift and unconditional volatility (log returns)."""

    drift: float = Field(gt=-1, lt=1)
    volatility: float = Field(gt=0, lt=1)


class SymbolModel(_Model):
    """Everything about one symbol except the shared state chain."""

    name: str = Field(min_length=1)
    price: float = Field(gt=0)  # default start price: the source's first close
    states: list[StateModel] = Field(min_length=1)
    reversal: float = Field(default=0.0, gt=-1, lt=1)  # AR(1) of returns
    alpha: _UNIT = 0.05
    gamma: _UNIT = 0.0  # extra reaction to a fall (leverage effect)
    beta: _UNIT = 0.9
    nu: float = Field(default=8.0, gt=2, le=1000)  # Student-t degrees of freedom
    sv_persistence: float = Field(default=0.0, ge=0, lt=1)  # slow log-volatility AR(1)
    sv_sd: float = Field(default=0.0, ge=0, le=3)  # its stationary standard deviation
    jump_intensity: float = Field(default=0.0, ge=0, le=1)  # expected jumps per bar
    jump_mean: float = Field(default=0.0, gt=-1, lt=1)
    jump_std: float = Field(default=0.0, ge=0, lt=1)
    wick_level: float = -0.5
    wick_slope: float = 1.0
    wick_sd: float = Field(default=0.5, ge=0, le=10)
    volume_level: float = 0.0
    volume_slope: float = 0.0
    volume_sd: float = Field(default=0.5, ge=0, le=10)
    volume_ar: float = Field(default=0.0, gt=-1, lt=1)

    @model_validator(mode="after")
    def _stationary(self) -> SymbolModel:
        if self.alpha + self.gamma / 2 + self.beta >= 1:
            raise ValueError(
                f"alpha + gamma/2 + beta = {self.alpha + self.gamma / 2 + self.beta:.6g} must "
                "be < 1 (otherwise the variance has no long-run level)")
        return self


class CalibratedModel(_Model):
    """A calibrated market: the state chain, the symbols, their correlation."""

    format: str = MODEL_FORMAT
    interval: str  # the bar interval the model was fitted on, e.g. "5m"
    bars_per_year: float = Field(gt=0)  # for annualised figures (252 for a stock index)
    sources: list[str] = Field(default_factory=list)  # the files it was fitted to
    states: list[str] = Field(min_length=1)  # state names, stored as each bar's regime
    transition: list[list[float]]
    correlation: list[list[float]] | None = None
    symbols: list[SymbolModel] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> CalibratedModel:
        from sim.config_base import parse_duration

        if self.format != MODEL_FORMAT:
            raise ValueError(f"format: {self.format!r} is not {MODEL_FORMAT!r}")
        parse_duration(self.interval)
        k = len(self.states)
        if len(set(self.states)) != k:
            raise ValueError("states: a state name is listed twice")
        if len(self.transition) != k or any(len(row) != k for row in self.transition):
            raise ValueError(f"transition: must be {k}x{k} (one row and column per state)")
        for i, row in enumerate(self.transition):
            if any(not 0 <= p <= 1 for p in row) or abs(math.fsum(row) - 1) > ROW_SUM_TOLERANCE:
                raise ValueError(f"transition: row {i} is not probabilities summing to 1")
        names = [s.name for s in self.symbols]
        if len(set(names)) != len(names):
            raise ValueError("symbols: a symbol name is listed twice")
        for s in self.symbols:
            if len(s.states) != k:
                raise ValueError(f"symbols.{s.name}.states: needs {k} entries, one per state")
        if self.correlation is not None:
            from sim.regimes.generators import validate_correlation

            validate_correlation(self.correlation, len(self.symbols))
        return self

    def stationary(self) -> np.ndarray:
        """The chain's long-run share of each state."""
        p = np.array(self.transition)
        values, vectors = np.linalg.eig(p.T)
        v = np.real(vectors[:, np.argmin(np.abs(values - 1))])
        return v / v.sum()


def load_model(path: str | Path) -> CalibratedModel:
    """A model file, validated; ``GeneratedSourceError`` naming the file and field."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GeneratedSourceError(f"{path}: model file not found") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise GeneratedSourceError(f"{path}: cannot read model: {exc}") from None
    try:
        return CalibratedModel.model_validate(raw)
    except ValidationError as exc:
        raise GeneratedSourceError(f"{path}: {describe_validation_error(exc, 'model')}") from None
    except GeneratedSourceError as exc:
        raise GeneratedSourceError(f"{path}: model.correlation: {exc}") from None


def _mean_root_weight(nu: float) -> float:
    """E[sqrt(w)] for the t scale ``w = (nu - 2) / chi2(nu)``."""
    if nu > 300:
        return 1.0
    return math.sqrt((nu - 2) / 2) * math.exp(math.lgamma((nu - 1) / 2) - math.lgamma(nu / 2))


def t_correlation_factor(correlation: np.ndarray, nus: Sequence[float]) -> np.ndarray:
    """Factor of the normal shocks' correlation that gives t shocks ``correlation``.

    Two unit t shocks ``z_i sqrt(w_i)`` with independent ``w`` have correlation
    ``corr(z) E[sqrt w_i] E[sqrt w_j]``; the normal correlation is scaled up by that,
    capped at 1, and made positive semi-definite again if the scaling broke it.
    """
    m = np.array([_mean_root_weight(nu) for nu in nus])
    target = np.array(correlation, dtype=np.float64) / np.outer(m, m)
    np.fill_diagonal(target, 1.0)
    target = np.clip(target, -1.0, 1.0)
    values, vectors = np.linalg.eigh(target)
    if values[0] < 0:
        fixed = (vectors * np.clip(values, 0, None)) @ vectors.T
        d = np.sqrt(np.diag(fixed))
        target = fixed / np.outer(d, d)
    return correlation_factor(target)


def _state_path(model: CalibratedModel, n: int, rng: np.random.Generator) -> np.ndarray:
    """The chain, started from a draw of its long-run distribution."""
    start = int(np.searchsorted(np.cumsum(model.stationary()), rng.random(), side="right"))
    start = min(start, len(model.states) - 1)
    return markov_chain(np.array(model.transition), n, start, rng)


def _returns(sm: SymbolModel, states: np.ndarray, z: np.ndarray,
             streams: Sequence[np.random.Generator]) -> tuple[np.ndarray, np.ndarray]:
    """One symbol's log returns and conditional volatility from its normal shocks ``z``."""
    n = z.size
    rng_w, rng_jump, rng_sv = streams
    w = (sm.nu - 2) / (2.0 * rng_w.standard_gamma(sm.nu / 2, n))
    e = z * np.sqrt(w)
    a = np.empty(n)
    a[0] = 0.0
    e2 = e[:-1] ** 2
    a[1:] = (sm.alpha + sm.gamma * (e[:-1] < 0)) * e2 + sm.beta
    b = np.full(n, 1.0 - sm.alpha - sm.gamma / 2 - sm.beta)
    b[0] = 1.0
    g = linear_recurrence(a, b)
    vol = np.array([s.volatility for s in sm.states])[states]
    sigma = vol * np.sqrt(g)
    if sm.sv_sd > 0:
        rho, sd = sm.sv_persistence, sm.sv_sd
        b = sd * math.sqrt(1 - rho**2) * rng_sv.standard_normal(n)
        b[0] /= math.sqrt(1 - rho**2)  # the first bar at the stationary spread
        sigma *= np.exp(linear_recurrence(np.full(n, rho), b) - sd**2)  # E[sigma**2] kept
    shock = sigma * e
    if sm.jump_intensity > 0:
        count = rng_jump.poisson(sm.jump_intensity, n)
        hit = np.flatnonzero(count)
        c = count[hit]
        shock[hit] += sm.jump_mean * c + sm.jump_std * np.sqrt(c) * rng_jump.standard_normal(
            hit.size)
    x = linear_recurrence(np.full(n, sm.reversal), shock)
    drift = np.array([s.drift for s in sm.states])[states]
    return drift + x, sigma


def generate_calibrated(
    model: CalibratedModel,
    n: int,
    rng: np.random.Generator,
    *,
    symbols: Sequence[str] | None = None,
    prices: Sequence[float] | None = None,
    start_ns: int = 0,
    interval_ns: int | None = None,
    source: str = "generated:calibrated",
) -> list[SymbolBars]:
    """``n`` bars of every symbol in ``model`` (named ``symbols``, default the model's).

    ``prices``: start prices (default each source's first close). ``interval_ns``: the
    bar spacing of the timestamps (default and normally the model's own interval: the
    dynamics are per bar, fitted at that interval).
    """
    from sim.config_base import parse_duration

    if not isinstance(n, int | np.integer) or isinstance(n, bool) or n < 1:
        raise GeneratedSourceError(f"calibrated: bars must be a whole number >= 1, got {n!r}")
    k = len(model.symbols)
    names = list(symbols) if symbols is not None else [s.name for s in model.symbols]
    if len(names) != k:
        raise GeneratedSourceError(
            f"calibrated: symbols: the model has {k} symbol(s), {len(names)} name(s) given")
    start_prices = list(prices) if prices is not None else [s.price for s in model.symbols]
    step = interval_ns if interval_ns is not None else parse_duration(model.interval)

    states, paths, rng_bar = _simulate(model, n, rng)
    ts = start_ns + step * np.arange(n, dtype=np.int64)
    labels = np.array(model.states, dtype=object)[states]
    for a in (ts, labels):
        a.setflags(write=False)
    return [_bars(sm, name, r, sigma, float(start_prices[i]), ts, labels, rng_bar, source)
            for i, (sm, name, (r, sigma)) in enumerate(zip(model.symbols, names, paths,
                                                            strict=True))]


def simulate_returns(model: CalibratedModel, n: int, rng: np.random.Generator) -> np.ndarray:
    """The log returns ``generate_calibrated`` would give with this ``rng``, (symbols,
    bars), without building bars: what calibration simulates while it tunes."""
    return np.array([r for r, _ in _simulate(model, n, rng)[1]])


def _simulate(model: CalibratedModel, n: int, rng: np.random.Generator) -> tuple[
        np.ndarray, list[tuple[np.ndarray, np.ndarray]], np.random.Generator]:
    """States, each symbol's (returns, volatility), and the stream left for the bars."""
    k = len(model.symbols)
    rng_chain, rng_z, rng_bar, *rest = rng.spawn(3 + 3 * k)
    states = _state_path(model, n, rng_chain)
    z = rng_z.standard_normal((k, n))
    if k > 1 and model.correlation is not None:
        z = t_correlation_factor(np.array(model.correlation),
                                 [s.nu for s in model.symbols]) @ z
    paths = [_returns(sm, states, z[i], rest[3 * i: 3 * i + 3])
             for i, sm in enumerate(model.symbols)]
    return states, paths, rng_bar


def _bars(sm: SymbolModel, name: str, r: np.ndarray, sigma: np.ndarray, price: float,
          ts: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
          source: str) -> SymbolBars:
    n = r.size
    log_close = math.log(price) + np.cumsum(r)
    log_open = np.empty(n)
    log_open[0] = math.log(price)
    log_open[1:] = log_close[:-1]
    noise = rng.standard_normal((2, n))
    split = rng.random(n)
    wick = np.exp(sm.wick_level + sm.wick_slope * np.log(sigma) + sm.wick_sd * noise[0])
    log_high = np.maximum(log_open, log_close) + split * wick
    log_low = np.minimum(log_open, log_close) - (1 - split) * wick
    if not (np.isfinite(log_high).all() and log_high.max() < 700 and log_low.min() > -700):
        raise GeneratedSourceError(
            f"calibrated {name!r}: the price path leaves the range of floating point numbers")
    close, open_ = np.exp(log_close), np.exp(log_open)
    open_[0] = price
    high = np.maximum(np.exp(log_high), np.maximum(open_, close))
    low = np.minimum(np.exp(log_low), np.minimum(open_, close))
    log_range = np.maximum(log_high - log_low, 1e-12)
    phi = sm.volume_ar
    b = sm.volume_sd * math.sqrt(1 - phi**2) * noise[1]
    b[0] = sm.volume_sd * noise[1, 0]  # the first bar at the stationary spread
    y = linear_recurrence(np.full(n, phi), b)
    volume = np.exp(sm.volume_level + sm.volume_slope * np.log(log_range) + y)
    for col in (open_, high, low, close, volume):
        col.setflags(write=False)
    return SymbolBars(name, source, ts, open_, high, low, close, volume, source_regime=labels)


def model_to_toml(model: CalibratedModel) -> str:
    """The model as TOML (``load_model`` reads it back exactly: floats in repr form)."""
    def value(v: object) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(float(v)) if isinstance(v, float) else str(v)
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        raise TypeError(type(v))

    data = model.model_dump()
    lines = ["# A calibrated market model (quorum data calibrate); see sim/regimes/calibrated.py",
             "# Per-bar units: drift and volatility are per bar of the log price."]
    for key in ("format", "interval", "bars_per_year", "sources", "states", "transition",
                "correlation"):
        if data[key] is not None:
            lines.append(f"{key} = {value(data[key])}")
    for sym in data["symbols"]:
        lines += ["", "[[symbols]]"]
        lines += [f"{k} = {value(v)}" for k, v in sym.items() if k != "states"]
        for st in sym["states"]:
            lines += ["", "[[symbols.states]]"]
            lines += [f"{k} = {value(v)}" for k, v in st.items()]
    return "\n".join(lines) + "\n"
