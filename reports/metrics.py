"""Performance metrics as pure functions of arrays: easy to check by hand.

Annualisation follows the bar spacing on a 365-day calendar year (crypto trades every day;
for an exchange that closes on weekends, daily bars then overstate the periods per year
by 365/252 and the Sharpe ratio by its square root; say so when comparing).
"""

from __future__ import annotations

from collections.abc import Mapping

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
    return returns_sharpe(_returns(equity, initial), per_year)


# -- return, risk and drawdown ---------------------------------------------------------
# Every function below takes the equity path one value per bar (``equity``), the equity
# before the first bar (``initial``), and either ``per_year`` (from ``periods_per_year``,
# a 365-day year: crypto trades every day) or the bar stamps ``ts_ns`` (int64 ns, UTC).
# The per-bar returns are simple returns of ``[initial, *equity]``: one per bar.

DAY_NS = 86_400 * 1_000_000_000


def _returns(equity: np.ndarray, initial: float) -> np.ndarray:
    path = np.concatenate(([initial], np.asarray(equity, dtype=np.float64)))
    return path[1:] / path[:-1] - 1.0


def _stamped_path(
    equity: np.ndarray, initial: float, ts_ns: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``[initial, *equity]`` with its stamps: ``initial`` is dated one bar (the median
    spacing) before the first bar, so the path spans ``len(equity)`` bars of time."""
    ts = np.asarray(ts_ns, dtype=np.int64)
    step = int(np.median(np.diff(ts))) if len(ts) >= 2 else 0
    path = np.concatenate(([initial], np.asarray(equity, dtype=np.float64)))
    return path, np.concatenate(([ts[0] - step], ts))


def cagr(equity: np.ndarray, initial: float, per_year: float) -> float:
    """Compound annual growth rate: ``(equity[-1] / initial) ** (per_year / n) - 1`` with
    ``n = len(equity)`` bars, i.e. ``n / per_year`` years (as empyrical's annual_return)."""
    n = len(equity)
    if n == 0 or not np.isfinite(per_year):
        return float("nan")
    with np.errstate(over="ignore"):  # a big gain over minutes compounds to inf
        return float((equity[-1] / initial) ** (per_year / n) - 1.0)


def apr(
    equity: np.ndarray, initial: float, ts_ns: np.ndarray, window_ns: int | None = None
) -> float:
    """Simple (not compounded) annualised return over the trailing ``window_ns``:

        apr = (E_end / E_start - 1) * NS_PER_YEAR / (t_end - t_start)

    ``t_end`` is the last bar; ``t_start`` the latest stamp at or before ``t_end -
    window_ns`` (an exact window for regular bars; a gap makes it reach further back);
    ``E`` the equity at those stamps. ``window_ns=None`` is since inception:
    ``E_start = initial``, dated one bar before the first. NaN when the history is
    shorter than the window (a 90-day APR of a 10-day run is not defined) or empty.
    Use ``30 * DAY_NS`` and ``90 * DAY_NS`` for the 30- and 90-day APRs."""
    if len(equity) == 0 or len(equity) != len(ts_ns):
        return float("nan")
    if len(ts_ns) < 2:  # no spacing to date the start by
        return float("nan")
    path, stamps = _stamped_path(equity, initial, ts_ns)
    if window_ns is None:
        i = 0
    else:
        start = stamps[-1] - window_ns
        if start < stamps[0]:
            return float("nan")
        i = int(np.searchsorted(stamps, start, side="right")) - 1
    span = stamps[-1] - stamps[i]
    if span <= 0:
        return float("nan")
    return float((path[-1] / path[i] - 1.0) * (NS_PER_YEAR / span))


def annual_volatility(equity: np.ndarray, initial: float, per_year: float) -> float:
    """Sample (ddof=1) standard deviation of per-bar returns times ``sqrt(per_year)``."""
    return returns_volatility(_returns(equity, initial), per_year)


def sortino_ratio(equity: np.ndarray, initial: float, per_year: float) -> float:
    """Annualised mean return over annualised downside deviation, target 0 (empyrical):

        downside = sqrt(mean(min(r, 0) ** 2)) * sqrt(per_year)

    the mean taken over ALL bars (positive returns count as zeros), not only the losing
    ones. NaN with fewer than two returns or no losing bar (empyrical gives inf there)."""
    return returns_sortino(_returns(equity, initial), per_year)


def calmar_ratio(equity: np.ndarray, initial: float, per_year: float) -> float:
    """``cagr / max_drawdown``; NaN when there is no drawdown (as empyrical)."""
    dd = max_drawdown(equity, initial)
    if dd <= 0.0:
        return float("nan")
    return float(cagr(equity, initial, per_year) / dd)


def max_drawdown_duration(
    equity: np.ndarray, initial: float, ts_ns: np.ndarray
) -> tuple[int, int]:
    """Longest drawdown as ``(bars, ns)``: from a peak (the start counts as one, dated one
    bar before the first) to the first bar whose equity is back at or above that peak,
    or to the last bar if it never recovers. A fall from 100 at bar 0 to 90 at bar 1,
    back to 100 at bar 3 lasts 3 bars. Each of the two numbers is its own maximum over
    the drawdowns (with missing bars the longest in bars need not be the longest in
    time). ``(0, 0)`` for a path that never falls."""
    if len(equity) == 0:
        return 0, 0
    ts = np.asarray(ts_ns, dtype=np.int64)
    path, stamps = _stamped_path(equity, initial, ts)
    idx = np.arange(len(path))
    peaks = np.maximum.accumulate(path)
    under = path < peaks
    last_high = np.maximum.accumulate(np.where(under, 0, idx))  # latest peak so far
    # a bar is in a drawdown (or recovers one) if it or the bar before is under water
    counted = under[1:] | under[:-1]
    if not counted.any():
        return 0, 0
    began = last_high[:-1][counted]
    ended = idx[1:][counted]
    return int(np.max(ended - began)), int(np.max(stamps[ended] - stamps[began]))


# -- the same statistics of a bare series of per-bar returns ----------------------------
# For slices of a run (the bars of one regime, an agent's shadow PnL): the equity-based
# functions above call these, so each statistic has one definition.
def returns_sharpe(returns: np.ndarray, per_year: float) -> float:
    """``mean(r) / std(r, ddof=1) * sqrt(per_year)``; NaN with fewer than 2 returns or no
    spread (empyrical's ``sharpe_ratio`` with risk-free 0)."""
    r = np.asarray(returns, dtype=np.float64)
    if len(r) < 2:
        return float("nan")
    sd = r.std(ddof=1)
    if sd == 0.0:
        return float("nan")
    return float(r.mean() / sd * np.sqrt(per_year))


def returns_volatility(returns: np.ndarray, per_year: float) -> float:
    """``std(r, ddof=1) * sqrt(per_year)``; NaN with fewer than 2 returns."""
    r = np.asarray(returns, dtype=np.float64)
    if len(r) < 2:
        return float("nan")
    return float(r.std(ddof=1) * np.sqrt(per_year))


def returns_sortino(returns: np.ndarray, per_year: float) -> float:
    """Annualised mean over annualised downside deviation, target 0 (empyrical):

        downside = sqrt(mean(min(r, 0) ** 2)) * sqrt(per_year)

    the mean taken over ALL bars (positive returns count as zeros), not only the losing
    ones. NaN with fewer than two returns or no losing bar (empyrical gives inf there)."""
    r = np.asarray(returns, dtype=np.float64)
    if len(r) < 2:
        return float("nan")
    downside = np.sqrt(np.mean(np.minimum(r, 0.0) ** 2))
    if downside == 0.0:
        return float("nan")
    return float(r.mean() * per_year / (downside * np.sqrt(per_year)))


def compounded_return(returns: np.ndarray) -> float:
    """``prod(1 + r) - 1``: 0 for no returns."""
    return float(np.prod(1.0 + np.asarray(returns, dtype=np.float64)) - 1.0)


def returns_max_drawdown(returns: np.ndarray) -> float:
    """Largest fall of the path ``cumprod(1 + r)`` from 1.0 (the start counts as a peak),
    as a positive fraction; NaN for no returns. Gluing the bars of a slice end to end
    skips the time outside it."""
    r = np.asarray(returns, dtype=np.float64)
    if not len(r):
        return float("nan")
    return max_drawdown(np.cumprod(1.0 + r), 1.0)


def pnl_max_drawdown(pnl: np.ndarray) -> float:
    """Largest fall of the running sum of ``pnl`` from its running peak (0 counts as the
    first), in the units of ``pnl``: for series that are not compounded (shadow PnL on a
    unit notional). 0 for no values."""
    curve = np.concatenate(([0.0], np.cumsum(np.asarray(pnl, dtype=np.float64))))
    return float(np.max(np.maximum.accumulate(curve) - curve))


# -- positions and trading -------------------------------------------------------------
def exposure(position: np.ndarray) -> float:
    """Share of bars with a nonzero position. ``position`` is one value per bar, or
    bars x symbols (a bar counts if any symbol is held). NaN without bars."""
    pos = np.asarray(position, dtype=np.float64)
    if pos.shape[0] == 0:
        return float("nan")
    held = pos != 0.0 if pos.ndim == 1 else (pos != 0.0).any(axis=tuple(range(1, pos.ndim)))
    return float(np.mean(held))


def turnover(quantity: np.ndarray, price: np.ndarray, equity: np.ndarray) -> float:
    """Traded notional over average equity for the whole run (not annualised):

        turnover = sum(|quantity * price|) / mean(equity)

    over every fill (buys and sells both count) and every bar's equity. 2.0 means the
    book was bought and sold once over. NaN without bars."""
    if len(equity) == 0:
        return float("nan")
    traded = np.sum(np.abs(np.asarray(quantity, dtype=np.float64) * price))
    return float(traded / np.mean(equity))


ROUND_TRIP_FIELDS = (
    "symbol", "entry_ts", "exit_ts", "direction", "quantity", "entry_notional", "fees", "pnl",
    "n_fills",
)


def round_trips(fills: Mapping[str, np.ndarray], atol: float = 0.0) -> dict[str, np.ndarray]:
    """Closed round-trip trades reconstructed from fills.

    ``fills`` maps column names to equal-length arrays, as ``fetchnumpy()`` of the store's
    ``fills`` table gives them: ``ts`` (int64 ns or datetime64), ``symbol``, ``quantity``
    (signed: + buys, - sells), ``price`` and ``fee`` (>= 0, in cash). Fills are taken in
    the order given (the store's: by ``ts`` then ``fill_id``); each symbol is followed on
    its own, from flat.

    A trade opens with the fill that takes a symbol's position away from zero and closes
    with the fill that brings it back to zero or through it. A fill that flips the position
    (long 2, sell 5) is split: the part that reaches zero (sell 2) closes the trade and
    the rest (sell 3) opens the next one; its fee is split in proportion to quantity.
    The position is the running float sum of quantities, as the engine's portfolio keeps
    it; it counts as flat when ``|position| <= atol`` (exactly zero by default).

    A trade's PnL is its cash flow net of fees: ``-sum(q * price) - sum(fee)`` over its
    fills (or fill parts). Its quantities sum to zero, so this is price PnL minus fees,
    whatever the averaging. A position still open after the last fill is not a trade.

    Returns one array per field of ``ROUND_TRIP_FIELDS``, one element per trade, ordered
    by exit: ``symbol``, ``entry_ts`` and ``exit_ts`` (the opening and closing fills'
    stamps), ``direction`` (+1 long, -1 short), ``quantity`` (largest absolute position
    held), ``entry_notional`` (``sum(|q| * price)`` of the fills that grew the
    position), ``fees``, ``pnl``, ``n_fills`` (fills or parts of fills)."""
    ts = np.asarray(fills["ts"])
    symbols = np.asarray(fills["symbol"])
    qty = np.asarray(fills["quantity"], dtype=np.float64)
    price = np.asarray(fills["price"], dtype=np.float64)
    fee = np.asarray(fills["fee"], dtype=np.float64)
    open_: dict[object, list] = {}  # symbol -> [pos, entry_ts, max_abs, notional, fees, cash, n]
    rows: list[tuple] = []
    for k in range(len(qty)):
        sym, q, p, f = symbols[k], float(qty[k]), float(price[k]), float(fee[k])
        if q == 0.0:
            continue
        t = open_.get(sym)
        if t is None:  # opens a trade
            open_[sym] = [q, ts[k], abs(q), abs(q) * p, f, -q * p - f, 1]
            continue
        pos = t[0]
        new = pos + q
        if (pos > 0.0) == (q > 0.0):  # adding
            t[0], t[2] = new, max(t[2], abs(new))
            t[3] += abs(q) * p
            t[4] += f
            t[5] -= q * p + f
            t[6] += 1
            continue
        if abs(new) <= atol or (new > 0.0) == (pos > 0.0):  # reducing or closing
            t[0] = new
            t[4] += f
            t[5] -= q * p + f
            t[6] += 1
            if abs(new) <= atol:
                rows.append((sym, t[1], ts[k], 1 if pos > 0.0 else -1, t[2], t[3], t[4], t[5],
                             t[6]))
                del open_[sym]
            continue
        # flips through zero: close with -pos, open with the rest
        share = abs(pos) / abs(q)
        f_close = f * share
        rows.append((sym, t[1], ts[k], 1 if pos > 0.0 else -1, t[2], t[3], t[4] + f_close,
                     t[5] + pos * p - f_close, t[6] + 1))
        f_open = f - f_close
        open_[sym] = [new, ts[k], abs(new), abs(new) * p, f_open, -new * p - f_open, 1]
    out: dict[str, np.ndarray] = {}
    for j, name in enumerate(ROUND_TRIP_FIELDS):
        column = [r[j] for r in rows]
        if name in ("entry_ts", "exit_ts"):
            out[name] = np.array(column, dtype=ts.dtype) if column else ts[:0].copy()
        elif name == "symbol":
            out[name] = np.array(column, dtype=object)
        elif name in ("direction", "n_fills"):
            out[name] = np.array(column, dtype=np.int64)
        else:
            out[name] = np.array(column, dtype=np.float64)
    return out


def win_rate(pnl: np.ndarray) -> float:
    """Share of trades with ``pnl > 0`` (breakeven is not a win). NaN without trades."""
    return float(np.mean(np.asarray(pnl) > 0.0)) if len(pnl) else float("nan")


def profit_factor(pnl: np.ndarray) -> float:
    """Gross profit over gross loss: ``sum(pnl > 0) / |sum(pnl < 0)|``. inf with profits and
    no losses; NaN without trades or with neither profit nor loss."""
    pnl = np.asarray(pnl, dtype=np.float64)
    gains, losses = pnl[pnl > 0.0].sum(), -pnl[pnl < 0.0].sum()
    if losses == 0.0:
        return float("inf") if gains > 0.0 else float("nan")
    return float(gains / losses)


def average_trade(pnl: np.ndarray) -> float:
    """Mean PnL per trade, in cash (net of fees). Equal, identically, to the textbook
    expectancy ``win_rate * mean_win - loss_rate * mean_loss``. NaN without trades."""
    return float(np.mean(pnl)) if len(pnl) else float("nan")


def expectancy(pnl: np.ndarray, entry_notional: np.ndarray) -> float:
    """Mean return per trade on the capital it committed: ``mean(pnl / entry_notional)``
    (a fraction; sized so that trades of different size weigh alike). NaN without trades."""
    if not len(pnl):
        return float("nan")
    return float(np.mean(np.asarray(pnl, dtype=np.float64) / entry_notional))


# -- execution -------------------------------------------------------------------------
def implementation_shortfall(quantity: np.ndarray, expected_price: np.ndarray,
                             fill_price: np.ndarray) -> np.ndarray:
    """Per fill, in cash, fees excluded: ``quantity * (fill_price - expected_price)`` with
    ``quantity`` signed (+ buy, - sell). Positive is a cost: bought dearer or sold cheaper
    than the price expected when the order was decided (Perold's execution cost on the
    filled part; the opportunity cost of what never filled is not in it)."""
    q = np.asarray(quantity, dtype=np.float64)
    return q * (np.asarray(fill_price, dtype=np.float64)
                - np.asarray(expected_price, dtype=np.float64))


def shortfall_bps(quantity: np.ndarray, expected_price: np.ndarray,
                  fill_price: np.ndarray) -> float:
    """Shortfall over the expected notional, in basis points, notional-weighted:

        1e4 * sum(q * (fill - expected)) / sum(|q| * expected)

    NaN without fills."""
    q = np.asarray(quantity, dtype=np.float64)
    notional = float(np.sum(np.abs(q) * np.asarray(expected_price, dtype=np.float64)))
    if not len(q) or notional == 0.0:
        return float("nan")
    return float(1e4 * np.sum(implementation_shortfall(q, expected_price, fill_price))
                 / notional)


def latency_summary(delay_ns: np.ndarray) -> dict[str, float]:
    """``count``, ``mean``, ``p50``, ``p90``, ``p99`` and ``max`` of delays in ns, given in
    milliseconds (percentiles linearly interpolated, as numpy's default and DuckDB's
    ``quantile_cont``). NaN statistics without delays."""
    d = np.asarray(delay_ns, dtype=np.float64) / 1e6
    if not len(d):
        nan = float("nan")
        return {"count": 0, "mean": nan, "p50": nan, "p90": nan, "p99": nan, "max": nan}
    p50, p90, p99 = np.percentile(d, [50, 90, 99])
    return {"count": len(d), "mean": float(d.mean()), "p50": float(p50), "p90": float(p90),
            "p99": float(p99), "max": float(d.max())}
