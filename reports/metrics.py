"""Performance metrics as pure functions of arrays: easy to check by hand.

Annualisation follows the bar spacing on a 365-day calendar year (crypto trades every day;
for an exchange that closes on weekends, daily bars then overstate the periods per year
by 365/252 and the Sharpe ratio by its square root; say so when comparing).
"""

from __future__ import annotations

import numpy as np

NS_PER_YEAR = 365 * 86_400 * 1_000_000_000


def total_return(equity: np.ndarray, initial: float) -> float:
    return float(equity[-1] / initial - 1.0) if len(equity) else 0.0


def max_drawdown(equity: np.ndarray, initial: float) -> float:
    """Largest peak-to-trough fall as a positive fraction; the start counts as a peak."""
    if not len(equity):
        return 0.0
    path = np.concatenate(([initial], equity))
    peaks = np.maximum.accumulate(path)
    return float(np.max(1.0 - path / peaks))


def periods_per_year(ts_ns: np.ndarray) -> float:
    if len(ts_ns) < 2:
        return float("nan")
    return NS_PER_YEAR / float(np.median(np.diff(ts_ns)))


def sharpe_ratio(equity: np.ndarray, initial: float, per_year: float) -> float:
    """Annualised mean over standard deviation of simple per-bar returns (risk-free 0)."""
    path = np.concatenate(([initial], equity))
    returns = path[1:] / path[:-1] - 1.0
    if len(returns) < 2:
        return float("nan")
    sd = returns.std(ddof=1)
    if sd == 0.0:
        return float("nan")
    return float(returns.mean() / sd * np.sqrt(per_year))
