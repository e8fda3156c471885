"""Recorded-data loaders around the core bars of ``sim.data``: trade ticks aggregated into
bars, resampling to a coarser interval, perpetual funding rates, gap policy and gap report.

Conventions (all of them checked, never repaired):

- Times are int64 nanoseconds since the epoch, UTC. A bar is labelled by its **open
  time**: the bar ``ts`` covers ``[ts, ts + interval)``. Bars built here (from trades or by
  resampling) are aligned to whole multiples of the interval since 1970-01-01 00:00 UTC,
  so 5m bars open at :00, :05, ...; 1h bars on the hour; 1d bars at 00:00 UTC (and a
  ``7d`` bar on the Thursday of the epoch's weekly grid).
- An interval with no trades (or no source bars) is a **gap**. It is never invented: the
  gap policy (``sim.data.GapPolicy``) fails, skips it, or fills it with a flat bar that is
  flagged in ``SymbolBars.filled``.
- Errors are ``DataError`` with one line naming the file and the line (CSV: header is
  line 1) or row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from sim.data import (
    DataError,
    FundingRates,
    GapPolicy,
    SymbolBars,
    _duration,
    _first,
    _num,
    _row_label,
    _when,
    check_shape,
    check_spacing,
    fill_gaps,
    load_bars,
    parse_times,
    read_table,
)

FileFormat = Literal["ohlcv", "trades"]
TRADE_COLUMNS = ("timestamp_ms", "price", "amount")  # required; trade_id and side optional
TRADE_SIDES = ("buy", "sell")
# Epoch milliseconds must fall in this window: catches seconds or microseconds given as ms.
_MS_MIN = int(pd.Timestamp("1980-01-01", tz="UTC").value // 1_000_000)
_MS_MAX = int(pd.Timestamp("2200-01-01", tz="UTC").value // 1_000_000)
MAX_FUNDING_RATE = 1.0  # |rate| per interval; 1 = 100 %, so a percentage is caught


# -- reading ---------------------------------------------------------------------------


def _finite(frame: pd.DataFrame, name: str, source: str, csv: bool) -> np.ndarray:
    raw = frame[name]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    bad = _first(~np.isfinite(values))
    if bad is not None:
        raise DataError(
            f"{_row_label(source, bad, csv)}: {name} is {_num(raw.iloc[bad])}, "
            "not a finite number"
        )
    return values


def _readonly(*arrays: np.ndarray) -> None:
    for a in arrays:
        a.setflags(write=False)


# -- trades ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Trades:
    """Validated trade ticks in file order (time order; ties keep the file's order)."""

    source: str
    ts: np.ndarray  # int64 ns UTC, non-decreasing
    price: np.ndarray  # float64 > 0
    amount: np.ndarray  # float64 > 0, base units
    trade_id: np.ndarray | None = None  # int64, unique, when the file has the column
    is_buy: np.ndarray | None = None  # bool (taker side), when the file has ``side``
    csv: bool = False  # rows are CSV lines (header = line 1), for error messages

    def __len__(self) -> int:
        return len(self.ts)


def trades_from_frame(frame: pd.DataFrame, source: str = "<dataframe>", *,
                      _csv: bool = False) -> Trades:
    """Validate ticks: ``timestamp_ms`` (epoch milliseconds, UTC), ``price``, ``amount``,
    and optionally ``trade_id`` (unique: a repeated id is a duplicated row) and ``side``
    (``buy``/``sell``)."""
    check_shape(frame, TRADE_COLUMNS, source, _csv, "trades")
    ms = _finite(frame, "timestamp_ms", source, _csv)
    bad = _first((ms != np.floor(ms)) | (ms < _MS_MIN) | (ms >= _MS_MAX))
    if bad is not None:
        raise DataError(
            f"{_row_label(source, bad, _csv)}: timestamp_ms {_num(frame['timestamp_ms'].iloc[bad])}"
            " is not whole epoch milliseconds between 1980 and 2200"
        )
    ts = ms.astype(np.int64) * 1_000_000
    price = _finite(frame, "price", source, _csv)
    amount = _finite(frame, "amount", source, _csv)
    for name, values in (("price", price), ("amount", amount)):
        bad = _first(values <= 0)
        if bad is not None:
            raise DataError(
                f"{_row_label(source, bad, _csv)}: {name} {_num(values[bad])} is not positive"
            )
    bad = _first(np.diff(ts) < 0)
    if bad is not None:
        raise DataError(
            f"{_row_label(source, bad + 1, _csv)}: timestamp_ms {ms[bad + 1]:.0f} is earlier "
            f"than the trade before ({ms[bad]:.0f}); trades must be in time order"
        )
    trade_id = None
    if "trade_id" in frame.columns:
        ids = _finite(frame, "trade_id", source, _csv)
        bad = _first(ids != np.floor(ids))
        if bad is not None:
            raise DataError(f"{_row_label(source, bad, _csv)}: trade_id {_num(ids[bad])} "
                            "is not a whole number")
        trade_id = ids.astype(np.int64)
        bad = _first(pd.Series(trade_id).duplicated().to_numpy())
        if bad is not None:
            raise DataError(f"{_row_label(source, bad, _csv)}: trade_id {trade_id[bad]} "
                            "appears twice (a duplicated trade)")
    is_buy = None
    if "side" in frame.columns:
        side = frame["side"]
        bad = _first(~side.isin(TRADE_SIDES).to_numpy())
        if bad is not None:
            raise DataError(f"{_row_label(source, bad, _csv)}: side {side.iloc[bad]!r} is "
                            "not 'buy' or 'sell'")
        is_buy = (side == "buy").to_numpy()
    _readonly(ts, price, amount, *(a for a in (trade_id, is_buy) if a is not None))
    return Trades(source, ts, price, amount, trade_id, is_buy, _csv)


def load_trades(path: str | Path) -> Trades:
    """Load and validate trade ticks from a CSV or Parquet file (``trades_from_frame``)."""
    path = Path(path)
    frame, csv = read_table(path, str_columns=("side",))
    return trades_from_frame(frame, str(path), _csv=csv)


def trades_to_bars(trades: Trades, symbol: str, interval_ns: int, *,
                   gaps: GapPolicy = "fail") -> SymbolBars:
    """OHLCV bars of ``interval_ns`` from ticks: ts = interval start (UTC, epoch-aligned),
    open = first trade's price, high/low = extremes, close = last trade's price, volume =
    sum of amounts (summed in file order in float64: exact for whole-unit amounts, else
    within float rounding of the exact decimal sum). An interval with no trade is a gap,
    handled by ``gaps``; "fail" names the line of the first trade after the gap."""
    if interval_ns <= 0:
        raise ValueError(f"interval must be positive, not {interval_ns}")
    bins = trades.ts - trades.ts % interval_ns
    starts = np.flatnonzero(np.concatenate(([True], bins[1:] != bins[:-1])))
    ends = np.append(starts[1:], len(trades)) - 1
    ts = bins[starts]
    opens, closes = trades.price[starts], trades.price[ends]
    highs = np.maximum.reduceat(trades.price, starts)
    lows = np.minimum.reduceat(trades.price, starts)
    volume = np.add.reduceat(trades.amount, starts)
    check_spacing(ts, interval_ns, gaps,
                  lambda i: _row_label(trades.source, int(starts[i]), trades.csv),
                  note=" with no trades in between")
    _readonly(ts, opens, highs, lows, closes, volume)
    bars = SymbolBars(symbol, trades.source, ts, opens, highs, lows, closes, volume)
    return fill_gaps(bars, interval_ns) if gaps == "ffill" else bars


# -- resampling ------------------------------------------------------------------------
def resample_bars(bars: SymbolBars, interval_ns: int, *, source_interval_ns: int,
                  where: Callable[[int], str] | None = None) -> SymbolBars:
    """Aggregate bars into coarser ones of ``interval_ns`` (a multiple of the source's).

    Each output bar covers ``[ts, ts + interval)`` with ts a multiple of the interval since
    the epoch (UTC), labelled by that open time; pandas' equivalent is
    ``resample(interval, label="left", closed="left", origin="epoch")``. open = first
    source bar's open, high = max, low = min, close = last source bar's close, volume =
    sum. It is built from the source bars present: an interval with none is a gap (apply
    the gap policy afterwards); the first and last may be partial. A source bar that would
    straddle a boundary (bars not aligned to their own interval) is an error, as are filled
    bars (resample first, then fill). ``source_regime``: the last source bar's.
    """
    label = where or (lambda i: f"{bars.source} row {i}")
    if source_interval_ns <= 0 or interval_ns % source_interval_ns != 0:
        raise DataError(
            f"{bars.source}: resample {_duration(interval_ns)} is not a multiple of the bar "
            f"interval {_duration(source_interval_ns)}"
        )
    if bars.filled is not None and bars.filled.any():
        raise DataError(f"{bars.source}: has filled bars; resample before filling gaps")
    bad = _first(bars.ts % interval_ns + source_interval_ns > interval_ns)
    if bad is not None:
        raise DataError(
            f"{label(bad)}: the {_duration(source_interval_ns)} bar at {_when(bars.ts[bad])} "
            f"crosses a {_duration(interval_ns)} boundary (bars must open on multiples of "
            f"{_duration(source_interval_ns)} from 00:00 UTC)"
        )
    bins = bars.ts - bars.ts % interval_ns
    starts = np.flatnonzero(np.concatenate(([True], bins[1:] != bins[:-1])))
    ends = np.append(starts[1:], len(bars)) - 1
    ts = bins[starts]
    columns = {
        "ts": ts,
        "open": bars.open[starts],
        "high": np.maximum.reduceat(bars.high, starts),
        "low": np.minimum.reduceat(bars.low, starts),
        "close": bars.close[ends],
        "volume": np.add.reduceat(bars.volume, starts),
        "filled": None,
        "source_regime": None if bars.source_regime is None else bars.source_regime[ends],
    }
    _readonly(*(a for a in columns.values() if a is not None))
    return replace(bars, **columns)


# -- funding ---------------------------------------------------------------------------
def funding_from_frame(frame: pd.DataFrame, source: str = "<dataframe>", *,
                       timezone: str = "UTC", _csv: bool = False) -> FundingRates:
    """Validate a funding series: ``timestamp`` (ISO 8601; strictly increasing) and
    ``funding_rate`` (a finite fraction per interval, |rate| < 1; negative allowed)."""
    check_shape(frame, ("timestamp", "funding_rate"), source, _csv, "funding rates")
    parsed = parse_times(frame["timestamp"], source, timezone, csv=_csv)
    ts = parsed.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    rate = _finite(frame, "funding_rate", source, _csv)
    bad = _first(np.abs(rate) >= MAX_FUNDING_RATE)
    if bad is not None:
        raise DataError(
            f"{_row_label(source, bad, _csv)}: funding_rate {_num(rate[bad])} is not a "
            "fraction per interval (|rate| < 1; 0.0001 = 1 bp)"
        )
    bad = _first(np.diff(ts) <= 0)
    if bad is not None:
        what = "duplicate" if ts[bad + 1] == ts[bad] else "unsorted"
        raise DataError(
            f"{_row_label(source, bad + 1, _csv)}: {what} timestamp {parsed.iloc[bad + 1]} "
            f"after {parsed.iloc[bad]}; funding times must be strictly increasing"
        )
    _readonly(ts, rate)
    return FundingRates(source, ts, rate)


def load_funding(path: str | Path, *, timezone: str = "UTC") -> FundingRates:
    """Load and validate a funding-rate file (CSV or Parquet; ``funding_from_frame``)."""
    path = Path(path)
    frame, csv = read_table(path, str_columns=("timestamp",))
    return funding_from_frame(frame, str(path), timezone=timezone, _csv=csv)


# -- gap report ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class GapReport:
    """Missing bars against an expected interval, between the first and last real bar.

    Bars a gap policy filled in count as missing (the report is about the data). Times
    are bar open times, ns UTC; ``None`` when nothing is missing.
    """

    interval_ns: int
    bars: int  # real (not filled) bars
    expected: int  # grid slots from the first to the last real bar
    missing: int
    gaps: int  # runs of consecutive missing bars
    first_missing: int | None
    last_missing: int | None
    longest: int  # missing bars in the longest run
    longest_start: int | None
    filled: int  # bars present only because a gap policy inserted them

    def __str__(self) -> str:
        every = _duration(self.interval_ns)
        if not self.missing:
            return f"{self.bars} bars every {every}, no gaps"
        assert self.first_missing is not None and self.last_missing is not None
        assert self.longest_start is not None
        return (
            f"{self.bars} of {self.expected} bars every {every}: {self.missing} missing in "
            f"{self.gaps} gap(s), first {_when(self.first_missing)}, last "
            f"{_when(self.last_missing)}, longest {self.longest} bar(s) from "
            f"{_when(self.longest_start)}"
            + (f"; {self.filled} filled" if self.filled else "")
        )


def gap_report(bars: SymbolBars, interval_ns: int) -> GapReport:
    """Count, first/last missing bar and longest gap of ``bars`` against ``interval_ns``
    (for ``quorum data inspect``). Bars off the interval grid are a ``DataError``."""
    filled = np.zeros(len(bars), dtype=bool) if bars.filled is None else bars.filled
    ts = bars.ts[~filled]
    check_spacing(ts, interval_ns, "skip", lambda i: f"{bars.source} bar {i}")
    if not len(ts):
        return GapReport(interval_ns, 0, 0, 0, 0, None, None, 0, None, int(filled.sum()))
    missing = np.diff(ts) // interval_ns - 1
    runs = np.flatnonzero(missing > 0)
    first = last = longest_start = None
    longest = 0
    if runs.size:
        first = int(ts[runs[0]] + interval_ns)
        last = int(ts[runs[-1] + 1] - interval_ns)
        at = int(runs[np.argmax(missing[runs])])
        longest, longest_start = int(missing[at]), int(ts[at] + interval_ns)
    total = int(missing.sum())
    return GapReport(interval_ns, len(ts), len(ts) + total, total, int(runs.size), first,
                     last, longest, longest_start, int(filled.sum()))


# -- one file source -------------------------------------------------------------------
def load_file(
    path: str | Path,
    symbol: str,
    *,
    format: FileFormat = "ohlcv",
    interval_ns: int | None = None,
    timezone: str = "UTC",
    resample_ns: int | None = None,
    gaps: GapPolicy = "fail",
    funding: str | Path | None = None,
) -> SymbolBars:
    """One recorded symbol as the ``kind = "file"`` source describes it.

    ``format="ohlcv"``: bars (``sim.data.load_bars``; ``interval_ns`` optional, zone-less
    times read in ``timezone``). ``format="trades"``: ticks aggregated into bars of
    ``interval_ns`` (required). ``resample_ns``: then aggregated to that coarser interval.
    ``gaps`` applies against the source interval for "fail" (any missing source bar is an
    error naming its line) and "skip"; "ffill" fills at the final bar size (after
    resampling: only output intervals with no source bar at all are filled).
    ``funding``: a funding-rate file attached as ``SymbolBars.funding``.
    """
    path = Path(path)
    source = str(path)
    if gaps != "fail" and interval_ns is None:
        raise DataError(f"{source}: gaps = {gaps!r} needs an interval (the expected spacing)")
    if resample_ns is not None:
        if interval_ns is None:
            raise DataError(f"{source}: resample needs the source bars' interval")
        if resample_ns % interval_ns != 0:
            raise DataError(
                f"{source}: resample {_duration(resample_ns)} is not a multiple of the bar "
                f"interval {_duration(interval_ns)}"
            )
    first_gaps: GapPolicy = "skip" if resample_ns is not None and gaps == "ffill" else gaps
    if format == "trades":
        if interval_ns is None:
            raise DataError(f"{source}: trades need an interval (the bar size)")
        if timezone != "UTC":
            raise DataError(f"{source}: trades carry epoch milliseconds (UTC); "
                            "timezone does not apply")
        bars = trades_to_bars(load_trades(path), symbol, interval_ns, gaps=first_gaps)
    elif format == "ohlcv":
        bars = load_bars(path, symbol, interval_ns=interval_ns, gaps=first_gaps,
                         timezone=timezone)
    else:
        raise DataError(f"{source}: unknown format {format!r} (use 'ohlcv' or 'trades')")
    if resample_ns is not None:
        assert interval_ns is not None
        # Trade bars are epoch-aligned by construction; a bar file's row i is CSV line i + 2.
        csv = format == "ohlcv" and path.suffix.lower() == ".csv"
        bars = resample_bars(bars, resample_ns, source_interval_ns=interval_ns,
                             where=lambda i: _row_label(source, i, csv))
        if gaps == "ffill":
            bars = fill_gaps(bars, resample_ns)
    if funding is not None:
        bars = replace(bars, funding=load_funding(funding, timezone=timezone))
    return bars
