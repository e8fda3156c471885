"""Stylized facts of a bar series: the statistics generated bars must share with real ones.

``stylized_facts(bars, bars_per_year)`` measures one symbol; ``compare_facts`` puts two
series side by side with a tolerance and a verdict per fact. The facts are the ones
strategies feel: fat tails (excess kurtosis, Hill tail index), volatility clustering (the
autocorrelation of ``|r|`` and ``r**2``), short-horizon reversal (lag-1 autocorrelation of
``r``), the leverage effect (a fall raises later volatility), the level of volatility,
the intrabar range, volume, and how long the causal regime labels last.

Returns are log close-to-close returns of consecutive bars; a return across a gap in the
data (a spacing above the median) is left out, so a weekend or a missing hour is not
counted as one bar's move. Pure numpy, used by calibration (its targets), ``quorum data
compare`` and the acceptance tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from sim.data import SymbolBars

__all__ = ["FACTS", "Fact", "FactRow", "acf", "bar_returns", "bars_per_year",
           "compare_facts", "hill_index", "kurtosis", "stylized_facts"]

MAX_LAG = 50
HILL_SHARE = 0.025  # the largest 2.5% of |r| estimate the tail index
LEVERAGE_LAGS = 10


@dataclass(frozen=True, slots=True)
class Fact:
    """A fact's name, what it is, and how close two series must be: ``abs`` within
    ``tolerance`` of the real value, or ``rel`` within ``tolerance`` times it."""

    name: str
    what: str
    mode: Literal["abs", "rel"]
    tolerance: float


FACTS: tuple[Fact, ...] = (
    Fact("excess_kurtosis", "excess kurtosis of log returns (fat tails)", "rel", 0.35),
    Fact("hill_tail_index", f"Hill tail index of |r|, top {HILL_SHARE:.1%}", "rel", 0.25),
    Fact("acf_abs_1", "autocorrelation of |r|, lag 1 (volatility clustering)", "abs", 0.06),
    Fact("acf_abs_20", "autocorrelation of |r|, lag 20", "abs", 0.06),
    Fact("acf_sq_mean", f"mean autocorrelation of r^2, lags 1-{MAX_LAG}", "abs", 0.05),
    Fact("acf_1", "autocorrelation of r, lag 1 (short-horizon reversal)", "abs", 0.05),
    Fact("leverage", f"mean corr(r_t, |r_t+k|), k = 1-{LEVERAGE_LAGS}", "abs", 0.05),
    Fact("annual_volatility", "annualised volatility of log returns", "rel", 0.10),
    Fact("range_median", "median log(high/low) per bar", "rel", 0.30),
    Fact("range_p90", "90th percentile of log(high/low)", "rel", 0.30),
    Fact("volume_median", "median volume per bar", "rel", 0.30),
    Fact("log_volume_sd", "standard deviation of log volume (bars with volume)", "rel", 0.30),
    Fact("regime_duration", "mean spell of the causal regime labels, in bars", "rel", 0.50),
)


def bar_returns(bars: SymbolBars) -> np.ndarray:
    """Log returns of consecutive bars, leaving out those across a gap (for daily bars:
    a gap longer than four days)."""
    r = np.diff(np.log(np.asarray(bars.close, dtype=np.float64)))
    if len(bars.ts) > 2:
        steps = np.diff(bars.ts)
        usual = np.median(steps)
        # Daily bars: a weekend or a holiday is the market's calendar, not missing data.
        r = r[steps <= (4 * usual if usual >= 86_400 * 10**9 else usual)]
    return r


def acf(x: np.ndarray, lags: int) -> np.ndarray:
    """Sample autocorrelation at lags 1..``lags`` (the usual biased estimator)."""
    x = np.asarray(x, dtype=np.float64) - np.mean(x)
    denom = float(np.sum(x * x))
    if denom == 0 or x.size <= lags:
        return np.full(lags, np.nan)
    # Elementwise products, not ``@``: a BLAS dot may spin threads, which on a busy
    # machine costs milliseconds a call.
    return np.array([float(np.sum(x[:-k] * x[k:])) / denom for k in range(1, lags + 1)])


def kurtosis(r: np.ndarray) -> float:
    """Excess kurtosis (0 for a normal)."""
    d = np.asarray(r, dtype=np.float64) - np.mean(r)
    var = float(np.mean(d * d))
    return float(np.mean(d**4)) / var**2 - 3.0 if var > 0 else math.nan


def hill_index(r: np.ndarray, share: float = HILL_SHARE) -> float:
    """Hill estimate of the tail index of ``|r|`` from its largest ``share``: lower is
    fatter (about 3-5 for returns; infinite for a normal, finite in any sample)."""
    a = np.sort(np.abs(r))[::-1]
    k = max(int(a.size * share), 10)
    if a.size <= k or a[k] <= 0:
        return math.nan
    return 1.0 / float(np.mean(np.log(a[:k] / a[k])))


def _spell_mean(labels: np.ndarray) -> float:
    labels = labels[labels != "warmup"]
    if labels.size == 0:
        return math.nan
    changes = int(np.count_nonzero(labels[1:] != labels[:-1]))
    return labels.size / (changes + 1)


def bars_per_year(bars: SymbolBars) -> float:
    """Bars in a year for annualising: intraday bars count the calendar year (crypto
    trades every day); daily and longer bars count the bars a year the data actually has
    (about 252 for a stock index)."""
    from sim.data import NS_PER_YEAR

    if len(bars) < 3:
        raise ValueError(f"{bars.source}: at least 3 bars are needed")
    interval = int(np.median(np.diff(bars.ts)))
    if interval < 86_400 * 10**9:
        return NS_PER_YEAR / interval
    years = (int(bars.ts[-1]) - int(bars.ts[0])) / (365.25 * 86_400 * 10**9)
    return float(round((len(bars) - 1) / years))


def stylized_facts(bars: SymbolBars, bars_per_year: float) -> dict[str, float]:
    """Every fact in ``FACTS`` for one symbol's bars."""
    from sim.regimes.labels import label_regimes

    r = bar_returns(bars)
    a = np.abs(r)
    abs_acf = acf(a, 20)
    lev = [float(np.corrcoef(r[:-k], a[k:])[0, 1]) for k in range(1, LEVERAGE_LAGS + 1)]
    log_range = np.log(np.asarray(bars.high) / np.asarray(bars.low))
    vol = np.asarray(bars.volume)
    vol = vol[vol > 0]
    return {
        "excess_kurtosis": kurtosis(r),
        "hill_tail_index": hill_index(r),
        "acf_abs_1": float(abs_acf[0]),
        "acf_abs_20": float(abs_acf[19]),
        "acf_sq_mean": float(np.mean(acf(r * r, MAX_LAG))),
        "acf_1": float(acf(r, 1)[0]),
        "leverage": float(np.mean(lev)),
        "annual_volatility": float(np.std(r, ddof=1) * math.sqrt(bars_per_year)),
        "range_median": float(np.median(log_range)),
        "range_p90": float(np.quantile(log_range, 0.9)),
        "volume_median": float(np.median(vol)) if vol.size else math.nan,
        "log_volume_sd": float(np.std(np.log(vol))) if vol.size > 1 else math.nan,
        "regime_duration": _spell_mean(label_regimes(bars.ts, bars.close)),
    }


@dataclass(frozen=True, slots=True)
class FactRow:
    fact: Fact
    real: float
    generated: float

    @property
    def allowed(self) -> float:
        """The largest difference that passes."""
        return self.fact.tolerance * (abs(self.real) if self.fact.mode == "rel" else 1.0)

    @property
    def passed(self) -> bool:
        diff = abs(self.generated - self.real)
        return bool(np.isfinite(diff) and diff <= self.allowed)


def compare_facts(real: dict[str, float], generated: dict[str, float]) -> list[FactRow]:
    """One row per fact: both values and whether they agree within its tolerance."""
    return [FactRow(f, real[f.name], generated[f.name]) for f in FACTS]
