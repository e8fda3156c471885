"""Generator version 2 (the default): stylized facts laid over a named regime's path.

Version 1 (what every run stored before version 2 used; a scenario pins it with
``generator_version = 1``) draws each regime as its textbook model: normal shocks, no
clustering outside ``high_volatility``, no reversal. Version 2 keeps each regime's
structure (its drift, mean reversion, GARCH, jumps) and reshapes the noise of every bar
with ``StylizedParams`` of the bar's regime:

- each bar's noise (its substep increments minus the regime's mean step) is scaled by
  ``sqrt(w) exp(v - vol_of_vol**2)``: ``w = (nu - 2) / chi2(nu)`` makes the bar's
  return Student-t (fat tails), ``v`` a Gaussian AR(1) with persistence
  ``vol_persistence`` (volatility clustering); both have mean square 1, so the regime's
  volatility stays the average level. Both are drawn once per bar for all symbols, so
  the symbols keep their correlation;
- the bar totals then pass through an AR(1), ``x[t] = reversal x[t-1] + e[t]`` (noise
  scaled by ``sqrt(1 - reversal**2)`` first, so the variance is kept), the difference
  spread evenly over the bar's substeps (the close moves, the wicks keep their shape).

The draws come after every version-1 draw, from the same ``rng``, so version 1 is
untouched and version 2 is as deterministic per seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sim.regimes._numerics import linear_recurrence
from sim.regimes.params import (
    CrashParams,
    HighVolatilityParams,
    StylizedParams,
    TrendDownParams,
    TrendUpParams,
)

GENERATOR_VERSIONS: tuple[int, ...] = (1, 2)
DEFAULT_GENERATOR_VERSION = 2  # new scenarios; stored runs without the field ran 1


def _mean_step(p: Any, dt_sub: float) -> float:
    """The deterministic part of a regime's log step, per substep."""
    if isinstance(p, TrendUpParams | TrendDownParams | CrashParams):
        return (p.drift - 0.5 * p.volatility**2) * dt_sub
    if isinstance(p, HighVolatilityParams):
        return p.drift * dt_sub
    return 0.0  # ranging: the pull to its level is added after


def stylize(inc: np.ndarray, states: np.ndarray, state_params: Sequence[Any], dt_sub: float,
            rng: np.random.Generator) -> np.ndarray:
    """``inc`` (symbols, bars, substeps) of log-price increments, reshaped in place."""
    _, n, s = inc.shape
    sty = [p.stylized or StylizedParams() for p in state_params]

    def per_bar(field: str) -> np.ndarray:
        return np.array([getattr(x, field) for x in sty], dtype=np.float64)[states]

    nu, rho, spread, phi = (per_bar(f) for f in ("tail_nu", "vol_persistence", "vol_of_vol",
                                                  "reversal"))
    mu = np.array([_mean_step(p, dt_sub) for p in state_params])[states]
    noise = inc  # reshaped in place: one pass less over the substeps
    noise -= mu[None, :, None]
    # One mixing variable and one log-volatility per bar, shared by every symbol: a
    # market's volatility moves together, and scales drawn per symbol would weaken the
    # symbols' correlation by the square of the scale's mean (0.7 became ~0.5).
    w = (nu - 2) / (2.0 * rng.standard_gamma(nu / 2))
    eta = rng.standard_normal(n)
    b = spread * np.sqrt(1 - rho**2) * eta
    b[0] = spread[0] * eta[0]  # type: ignore[index]  # the first bar at the stationary spread
    v = linear_recurrence(rho, b)
    scale = np.sqrt(w) * np.exp(v - spread**2) * np.sqrt(1 - phi**2)
    noise *= scale[None, :, None]
    total = noise.sum(axis=-1)
    extra = linear_recurrence(phi, total) - total  # reversal * x[t-1]
    extra /= s
    extra += mu
    noise += extra[..., None]
    return noise


def check_version(version: int) -> None:
    if version not in GENERATOR_VERSIONS:
        raise ValueError(f"generator_version: {version!r} is not one of "
                         f"{', '.join(map(str, GENERATOR_VERSIONS))}")


__all__ = ["DEFAULT_GENERATOR_VERSION", "GENERATOR_VERSIONS", "check_version", "stylize"]
