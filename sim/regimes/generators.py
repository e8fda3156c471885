"""Generated market regimes: seeded OHLCV series with known statistical properties.

``generate(regime, n, rng)`` returns one ``SymbolBars`` per symbol. Every regime is a
model of the log price simulated on a fine grid of ``substeps`` points per bar; a bar opens
where the previous one closed, closes at its last point, and its high and low are the true
extremes of the path in between (so wicks come from the model, not from a rule of thumb).
Several symbols share one clock; their driving normal shocks are correlated through the
Cholesky factor of ``correlation``.

The regimes (parameters and defaults in ``sim.regimes.params``):

- ``trend_up`` / ``trend_down``: geometric Brownian motion with drift;
- ``ranging``: Ornstein-Uhlenbeck mean reversion of log price (exact discretisation);
- ``high_volatility``: GARCH(1,1) per-bar variance, Brownian within the bar;
- ``crash``: Merton jump diffusion (GBM plus Poisson jumps), by default falling;
- ``regime_switching``: a Markov chain over the five above, one step per bar.

``source_regime`` of each bar is its regime's name (for ``regime_switching``: the state
the chain was in). All randomness comes from the ``rng`` passed in, drawn in a fixed order,
so the same seed and arguments give identical bytes. Bad input raises
``GeneratedSourceError`` (a ``DataError``) with one line naming the regime and field.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel

from sim.data import NS_PER_YEAR, SymbolBars
from sim.regimes._numerics import (
    correlation_factor,
    linear_recurrence,
    markov_chain,
    spell_starts,
)
from sim.regimes.params import (
    BASE_REGIMES,
    REGIMES,
    BarParams,
    CrashParams,
    GeneratedSourceError,
    HighVolatilityParams,
    RangingParams,
    RegimeSwitchingParams,
    params_model,
    validate_params,
)
from sim.regimes.stylized import DEFAULT_GENERATOR_VERSION, check_version, stylize

__all__ = [
    "BASE_REGIMES",
    "REGIMES",
    "GeneratedSourceError",
    "check_generator_version",
    "generate",
    "params_model",
    "validate_correlation",
    "validate_params",
]

_INT64_MAX = np.iinfo(np.int64).max
# Expected log range of a Brownian bar at 100% annual volatility, per sqrt(year):
# E[max - min] of Brownian motion over time t is sqrt(8 t / pi) * sigma.
_RANGE_PER_ROOT_YEAR = math.sqrt(8 / math.pi)


@dataclass(frozen=True, slots=True)
class _Grid:
    """What every regime kernel needs besides its parameters."""

    dt: float  # one bar, in years
    substeps: int
    rng: np.random.Generator
    factor: np.ndarray  # correlation factor, (symbols, symbols)

    @property
    def dt_sub(self) -> float:
        return self.dt / self.substeps

    def normals(self, bars: int) -> np.ndarray:
        """Correlated standard normal shocks, (symbols, bars, substeps)."""
        k = self.factor.shape[0]
        z = self.rng.standard_normal((k, bars * self.substeps))
        if k > 1:
            z = self.factor @ z
        return z.reshape(k, bars, self.substeps)


# A kernel turns shocks z (symbols, bars, substeps) for the bars of one regime (its spells
# concatenated; ``starts`` marks each spell's first bar) into log-price increments.
_Kernel = Callable[[Any, np.ndarray, np.ndarray, _Grid], np.ndarray]


def _gbm(p: Any, z: np.ndarray, starts: np.ndarray, grid: _Grid) -> np.ndarray:
    """Brownian log price with drift ``(mu - sigma**2 / 2)``: each step exactly lognormal."""
    z *= p.volatility * math.sqrt(grid.dt_sub)
    z += (p.drift - 0.5 * p.volatility**2) * grid.dt_sub
    return z


def _ou_phi(p: RangingParams, grid: _Grid) -> float:
    """Per-substep decay of a deviation from the level."""
    return math.exp(-math.log(2) / (p.half_life * grid.substeps))


def _ranging(p: RangingParams, z: np.ndarray, starts: np.ndarray, grid: _Grid) -> np.ndarray:
    """OU deviations from each spell's starting log price, as increments.

    Exact discretisation per substep: ``y = phi y_prev + e`` with ``e ~ N(0, sigma**2 (1 -
    phi**2) / (2 kappa))``. Solved in two exact stages: within each bar from zero (a loop
    over the few substeps, vectorised over bars), then across bars, where the deviation at
    a bar's close follows ``Y[t] = phi**s Y[t-1] + w[t]``. The pull towards an absolute
    ``level`` depends on where the spell starts, so ``_pull_to_level`` adds it later.
    """
    k, m, s = z.shape
    phi = _ou_phi(p, grid)
    kappa = -math.log(phi) / grid.dt_sub  # per year
    w = z
    w *= p.volatility * math.sqrt(-math.expm1(-2 * kappa * grid.dt_sub) / (2 * kappa))
    for tau in range(1, s):  # within the bar, starting from zero
        w[..., tau] += phi * w[..., tau - 1]
    a = np.full(m, phi**s)
    a[starts] = 0.0  # a spell starts at its own entry price: deviation 0
    close_dev = linear_recurrence(a, w[..., -1])
    prev = np.zeros((k, m))  # deviation at each bar's open
    prev[:, 1:] = close_dev[:, :-1]
    prev[:, starts] = 0.0
    y = w
    y += prev[..., None] * phi ** np.arange(1, s + 1)
    for tau in range(s - 1, 0, -1):  # levels to increments, in place
        y[..., tau] -= y[..., tau - 1]
    y[..., 0] -= prev
    return y


def _garch(p: HighVolatilityParams, z: np.ndarray, starts: np.ndarray, grid: _Grid) -> np.ndarray:
    """GARCH(1,1) variance per bar, Brownian within the bar at that variance.

    With ``z_bar`` the bar's total shock / sqrt(substeps) (standard normal), ``h[t] = omega +
    (alpha z_bar[t-1]**2 + beta) h[t-1]``: a linear recursion with known coefficients.
    The bar's log return is then ``mu dt - h/2 + sqrt(h) z_bar``, as GARCH prescribes.
    """
    k, m, s = z.shape
    long_run = p.volatility**2 * grid.dt
    z_bar = z.sum(axis=-1) / math.sqrt(s)
    a = np.empty((k, m))
    a[:, 0] = 0.0
    a[:, 1:] = p.alpha * z_bar[:, :-1] ** 2 + p.beta
    b = np.full((k, m), long_run * (1 - p.alpha - p.beta))
    a[:, starts] = 0.0  # each spell starts at the long-run variance
    b[:, starts] = long_run
    h_sub = linear_recurrence(a, b)[:, :, None] / s
    inc = z
    inc *= np.sqrt(h_sub)
    inc += p.drift * grid.dt_sub - 0.5 * h_sub
    return inc


def _crash(p: CrashParams, z: np.ndarray, starts: np.ndarray, grid: _Grid) -> np.ndarray:
    """GBM plus Poisson jumps, each at a uniformly drawn substep of its bar."""
    k, m, s = z.shape
    inc = _gbm(p, z, starts, grid)
    rate = p.jump_intensity * grid.dt  # expected jumps per bar
    rng = grid.rng
    if p.shared_jumps:
        bar = np.repeat(np.arange(m), rng.poisson(rate, m))
        sub = rng.integers(0, s, bar.size)
        size = p.jump_mean + p.jump_std * rng.standard_normal((k, bar.size))
        np.add.at(inc, (slice(None), bar, sub), size)  # type: ignore[arg-type]
    else:
        cell = np.repeat(np.arange(k * m), rng.poisson(rate, k * m))
        sub = rng.integers(0, s, cell.size)
        size = p.jump_mean + p.jump_std * rng.standard_normal(cell.size)
        np.add.at(inc, (cell // m, cell % m, sub), size)
    return inc


_KERNELS: dict[str, _Kernel] = {
    "trend_up": _gbm,
    "trend_down": _gbm,
    "ranging": _ranging,
    "high_volatility": _garch,
    "crash": _crash,
}


def _pull_to_level(
    inc: np.ndarray, in_state: np.ndarray, starts: np.ndarray, p: RangingParams,
    grid: _Grid, x0: float,
) -> None:
    """Add the reversion towards ``log(level)`` to the ranging spells' increments.

    Spell ``j`` starts ``d[j]`` away from the level; over its ``tau``-th substep the pull
    adds ``d[j] (phi**tau - phi**(tau-1))``. Where a spell starts depends on every earlier
    spell's pull: ``d[j] = phi**len[j-1] d[j-1] + (u[j] - u[j-1])``, with ``u`` the start
    log prices before any pull, a linear recursion over spells.
    """
    k, n, s = inc.shape
    phi = _ou_phi(p, grid)
    first = np.flatnonzero(in_state & starts)
    bar_sums = inc.sum(axis=-1)
    before = np.empty((k, n))  # log price at each bar's open, no pull yet
    before[:, 0] = x0
    np.cumsum(bar_sums[:, :-1], axis=-1, out=before[:, 1:])
    before[:, 1:] += x0
    u = before[:, first]
    all_starts = np.append(np.flatnonzero(starts), n)
    ends = all_starts[np.searchsorted(all_starts, first, side="right")]
    a = np.empty(first.size)
    a[0] = 0.0
    a[1:] = phi ** ((ends[:-1] - first[:-1]) * s)
    b = np.empty_like(u)
    assert p.level is not None
    b[:, 0] = u[:, 0] - math.log(p.level)
    b[:, 1:] = np.diff(u, axis=-1)
    d = linear_recurrence(a, b)
    rows = np.flatnonzero(in_state)
    spell = np.cumsum(starts[rows]) - 1
    tau = (rows - first[spell])[:, None] * s + np.arange(s)  # tau - 1 of each substep
    weight = np.exp(tau * math.log(phi)) * (phi - 1)
    inc[:, rows, :] += d[:, spell, None] * weight


def validate_correlation(
    correlation: Sequence[Sequence[float]] | np.ndarray | None, symbols: int
) -> np.ndarray:
    """The correlation matrix as an array: square with one row per symbol, finite,
    symmetric, unit diagonal, entries in [-1, 1], positive semi-definite (all within
    1e-9). None means independent symbols. Raises ``GeneratedSourceError``."""
    if correlation is None:
        return np.eye(symbols)
    try:
        corr = np.array(correlation, dtype=np.float64)
    except (TypeError, ValueError):
        raise GeneratedSourceError("correlation: must be a square matrix of numbers") from None
    if corr.shape != (symbols, symbols):
        raise GeneratedSourceError(
            f"correlation: must be {symbols}x{symbols} (one row and column per symbol), "
            f"got shape {corr.shape}"
        )
    if not np.isfinite(corr).all():
        raise GeneratedSourceError("correlation: entries must be finite numbers")
    tol = 1e-9
    bad = np.argwhere(np.abs(np.diag(corr) - 1) > tol)
    if bad.size:
        i = int(bad[0, 0])
        raise GeneratedSourceError(f"correlation[{i}][{i}]: is {float(corr[i, i])!r}, must be 1")
    bad = np.argwhere(np.abs(corr - corr.T) > tol)
    if bad.size:
        i, j = (int(x) for x in bad[0])
        raise GeneratedSourceError(
            f"correlation[{i}][{j}]: is {float(corr[i, j])!r} but [{j}][{i}] is "
            f"{float(corr[j, i])!r}; must be symmetric"
        )
    bad = np.argwhere(np.abs(corr) > 1 + tol)
    if bad.size:
        i, j = (int(x) for x in bad[0])
        raise GeneratedSourceError(
            f"correlation[{i}][{j}]: is {float(corr[i, j])!r}, not in [-1, 1]"
        )
    corr = (corr + corr.T) / 2
    np.fill_diagonal(corr, 1.0)
    smallest = float(np.linalg.eigvalsh(corr)[0])
    if smallest < -tol:
        raise GeneratedSourceError(
            f"correlation: not positive semi-definite (smallest eigenvalue {smallest:.6g}); "
            "no set of symbols can have these correlations"
        )
    return corr


def _check_arguments(
    n: int, symbols: Sequence[str], price: float, start_ns: int, interval_ns: int,
    substeps: int,
) -> None:
    def is_int(x: object) -> bool:
        return isinstance(x, int | np.integer) and not isinstance(x, bool)

    if not is_int(n) or n < 1:
        raise GeneratedSourceError(f"n: must be a whole number of bars >= 1, got {n!r}")
    if not is_int(substeps) or substeps < 1:
        raise GeneratedSourceError(f"substeps: must be a whole number >= 1, got {substeps!r}")
    if isinstance(symbols, str) or not symbols:
        raise GeneratedSourceError(
            f"symbols: must be a non-empty list of names, got {symbols!r}"
        )
    for sym in symbols:
        if not isinstance(sym, str) or not sym:
            raise GeneratedSourceError(f"symbols: {sym!r} is not a symbol name")
    dupes = sorted({s for s in symbols if list(symbols).count(s) > 1})
    if dupes:
        raise GeneratedSourceError(f"symbols: {dupes[0]!r} is given twice")
    is_number = isinstance(price, int | float | np.integer | np.floating)
    if isinstance(price, bool) or not is_number or not 0 < price < math.inf:
        raise GeneratedSourceError(f"price: must be a positive finite number, got {price!r}")
    if not is_int(interval_ns) or interval_ns <= 0:
        raise GeneratedSourceError(f"interval_ns: must be a positive integer, got {interval_ns!r}")
    if not is_int(start_ns):
        raise GeneratedSourceError(f"start_ns: must be an integer, got {start_ns!r}")
    if not -_INT64_MAX <= start_ns <= _INT64_MAX - interval_ns * (n - 1):
        raise GeneratedSourceError(
            f"start_ns: {n} bars of {interval_ns} ns from {start_ns} overflow int64 timestamps"
        )


def check_generator_version(model: BaseModel, version: int) -> None:
    """Version 1 has no stylized facts: ``stylized`` parameters there are an error, not
    silently ignored."""
    try:
        check_version(version)
    except ValueError as exc:
        raise GeneratedSourceError(str(exc)) from None
    if version == 1:
        given = [f"params.{name}" for name in ("stylized",) if getattr(model, name, None)]
        if isinstance(model, RegimeSwitchingParams):
            given += [f"params.state_params.{state}.stylized" for state in model.states
                      if getattr(model.params_of(state), "stylized", None) is not None]
        if given:
            raise GeneratedSourceError(f"{given[0]}: needs generator_version = 2")


def _describe(regime: str, params: BaseModel, substeps: int) -> str:
    dumped = params.model_dump(exclude_none=True)
    shared = [f for f in BarParams.model_fields if f in dumped]  # volume fields last
    order = [f for f in dumped if f not in shared] + shared
    fields = ", ".join(f"{k}={dumped[k]!r}" for k in order)
    return f"generated:{regime}({fields}; substeps={substeps})"


def generate(
    regime: str,
    n: int,
    rng: np.random.Generator,
    *,
    params: Mapping[str, Any] | BaseModel | None = None,
    symbols: Sequence[str] = ("SYN",),
    correlation: Sequence[Sequence[float]] | None = None,
    price: float = 100.0,
    start_ns: int = 0,
    interval_ns: int = 60_000_000_000,
    substeps: int = 8,
    version: int = DEFAULT_GENERATOR_VERSION,
) -> list[SymbolBars]:
    """``n`` bars of ``regime`` for each of ``symbols``, all starting at ``price``.

    ``params``: the regime's parameters (a mapping validated against
    ``params_model(regime)``, a model instance, or None for the defaults). ``correlation``:
    the correlation matrix of the symbols' driving shocks (None: independent); it is the
    correlation of log returns for the GBM regimes and, with heavier tails and
    regime-dependent scaling, approximately so for the others (jumps are not correlated
    beyond ``shared_jumps``). ``substeps``: path points per bar from which high and low
    are taken (1 gives bars with no wicks). ``version``: 2 (the default) with stylized
    facts laid over the textbook models (``sim.regimes.stylized``; each regime's
    ``stylized`` parameters), 1 the textbook models alone (every run stored before
    version 2 existed; drawn exactly as then).
    """
    if not isinstance(regime, str) or regime not in REGIMES:
        params_model(str(regime))  # raises the unknown-regime error
    try:
        model = validate_params(regime, params)
        _check_arguments(n, symbols, price, start_ns, interval_ns, substeps)
        corr = validate_correlation(correlation, len(symbols))
        check_generator_version(model, version)
    except GeneratedSourceError as exc:
        message = str(exc)
        if not message.startswith("regime "):
            message = f"regime {regime!r}: {message}"
        raise GeneratedSourceError(message) from None
    grid = _Grid(interval_ns / NS_PER_YEAR, substeps, rng, correlation_factor(corr))

    if isinstance(model, RegimeSwitchingParams):
        names = model.states
        initial = names.index(model.initial) if model.initial is not None else 0
        states = markov_chain(np.array(model.matrix()), n, initial, rng)
        state_params = [model.params_of(name) for name in names]
    else:
        names, states, state_params = (regime,), np.zeros(n, dtype=np.int8), [model]
    starts = spell_starts(states)

    k, s = len(symbols), substeps
    if len(names) == 1:
        inc = _KERNELS[names[0]](state_params[0], grid.normals(n), starts, grid)
    else:
        inc = np.zeros((k, n, s))
        for code, (name, p) in enumerate(zip(names, state_params, strict=True)):
            rows = np.flatnonzero(states == code)
            if rows.size:
                inc[:, rows] = _KERNELS[name](p, grid.normals(rows.size), starts[rows], grid)
    if version == 2:
        inc = stylize(inc, states, state_params, grid.dt_sub, rng)
    x0 = math.log(price)
    for code, p in enumerate(state_params):
        if isinstance(p, RangingParams) and p.level is not None:
            in_state = states == code
            if in_state.any():
                _pull_to_level(inc, in_state, starts, p, grid, x0)

    path = np.cumsum(inc.reshape(k, n * s), axis=-1, out=inc.reshape(k, n * s))
    path += x0
    path = path.reshape(k, n, s)  # type: ignore[assignment]
    log_close = path[:, :, -1]
    log_open = np.empty((k, n))
    log_open[:, 0] = x0
    log_open[:, 1:] = log_close[:, :-1]
    log_high = np.maximum(path.max(axis=-1), log_open)
    log_low = np.minimum(path.min(axis=-1), log_open)
    if not (np.isfinite(log_high).all() and log_high.max() < 700 and log_low.min() > -700):
        raise GeneratedSourceError(
            f"regime {regime!r}: the price path leaves the range of floating point numbers "
            "over these bars; use fewer bars or a smaller drift, volatility or jumps"
        )
    close = np.exp(log_close)
    open_ = np.exp(log_open)
    open_[:, 0] = price  # exactly the start price, not exp(log(price))
    # exp is monotone up to rounding; make the bounds hold exactly whatever the libm.
    high = np.maximum(np.exp(log_high), np.maximum(open_, close))
    low = np.minimum(np.exp(log_low), np.minimum(open_, close))
    volume = _volume(log_high - log_low, states, state_params, grid)

    ts = start_ns + interval_ns * np.arange(n, dtype=np.int64)
    labels = np.array(names, dtype=object)[states]
    source = _describe(regime, model, substeps) + ("" if version == 1 else
                                                   f" generator v{version}")
    for a in (ts, labels):
        a.setflags(write=False)
    out = []
    for i, sym in enumerate(symbols):
        o, h, lo, c, v = (np.ascontiguousarray(x[i]) for x in (open_, high, low, close, volume))
        for col in (o, h, lo, c, v):
            col.setflags(write=False)
        out.append(SymbolBars(sym, source, ts, o, h, lo, c, v, source_regime=labels))
    return out


def _volume(
    log_range: np.ndarray, states: np.ndarray, state_params: Sequence[Any], grid: _Grid
) -> np.ndarray:
    """Lognormal volume scaled up with the bar's range (see ``BarParams``)."""
    vp: list[BarParams] = list(state_params)

    def per_bar(field: str) -> np.ndarray:
        return np.array([getattr(p, field) for p in vp])[states]

    ref = _RANGE_PER_ROOT_YEAR * math.sqrt(grid.dt)
    noise = grid.rng.standard_normal(log_range.shape)
    return (per_bar("volume") * np.exp(per_bar("volume_sigma") * noise)
            * (1 + per_bar("volume_activity") * log_range / ref))
