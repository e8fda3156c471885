"""Market data: loading, validation, merging in time order, and a seeded GBM generator.

Bars are held as columns (numpy arrays) per symbol; the engine walks a merged index over
all symbols ordered by (timestamp, symbol order). Bad data is rejected with the file and
line (or row) named; nothing is repaired silently.
"""

from __future__ import annotations

import hashlib
import zoneinfo
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa

PRICE_COLUMNS = ("open", "high", "low", "close")
BAR_COLUMNS = (*PRICE_COLUMNS, "volume")
NS_PER_YEAR = 365 * 86_400 * 1_000_000_000  # crypto trades every day of the year

# What to do when bars are missing against a declared interval: "fail" (an error naming the
# line after the first gap), "skip" (accept them), "ffill" (insert flat, flagged bars).
GapPolicy = Literal["fail", "skip", "ffill"]
GAP_POLICIES: tuple[str, ...] = ("fail", "skip", "ffill")


class DataError(ValueError):
    """Invalid market data; the message names the source and the offending row."""


@dataclass(frozen=True, slots=True)
class FundingRates:
    """A perpetual's funding: at each ``ts`` longs pay shorts ``rate`` x position notional
    (negative: shorts pay longs). ``rate`` is a fraction per funding interval (0.0001 =
    1 bp). Timestamps are the exchange's, kept exact (Binance stamps drift by milliseconds
    past the hour). Loaded by ``sim.loaders.load_funding``."""

    source: str
    ts: np.ndarray  # int64 ns UTC, strictly increasing
    rate: np.ndarray  # float64, finite, |rate| < 1

    def __len__(self) -> int:
        return len(self.ts)


@dataclass(frozen=True, slots=True)
class SymbolBars:
    """One symbol's validated bars as read-only columns."""

    symbol: str
    source: str
    ts: np.ndarray  # int64 ns UTC, strictly increasing
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    # Per-bar extras, when the source knows them: the regime a generator was in, and which
    # bars a gap policy filled in (never mistaken for traded bars).
    source_regime: np.ndarray | None = None
    filled: np.ndarray | None = None
    # A perpetual's funding-rate series from the file source's ``funding`` option: carried
    # with the bars for execution to charge; it is not part of the bar walk.
    funding: FundingRates | None = None

    def __len__(self) -> int:
        return len(self.ts)

    def column(self, name: str) -> np.ndarray:
        return getattr(self, name)


class BarFeed(Protocol):
    """The backtest's market-data port: bars in time order, in column batches.

    Each batch holds equal-length lists (symbol index, bar number of that symbol counting
    from 1, ts, open, high, low, close, volume): the arguments of ``Engine.on_bar``.
    Live feeds are asynchronous and deliver one bar at a time (``live.feeds``).
    """

    @property
    def symbols(self) -> tuple[str, ...]: ...

    def batches(self, size: int) -> Iterator[list[list[Any]]]: ...


@dataclass(frozen=True, slots=True)
class MarketData:
    """Several symbols' bars plus the merged walk order over them (a ``BarFeed``)."""

    bars: tuple[SymbolBars, ...]
    order_symbol: np.ndarray  # int32 symbol index per merged row
    order_pos: np.ndarray  # int64 row within that symbol

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(b.symbol for b in self.bars)

    def __len__(self) -> int:
        return len(self.order_symbol)

    def batches(self, size: int) -> Iterator[list[list[Any]]]:
        """Rows in merged order as Python lists (cheap per-element access), ``size`` at a
        time, so memory stays bounded however long the data."""
        offsets = np.cumsum([0] + [len(b) for b in self.bars[:-1]])
        # One symbol's columns are used as they are: a concatenated copy of a million
        # bars would hold 48 MB more for the whole run.
        flat = {col: (self.bars[0].column(col) if len(self.bars) == 1
                      else np.concatenate([b.column(col) for b in self.bars]))
                for col in ("ts", *BAR_COLUMNS)}
        for start in range(0, len(self), size):
            sym = self.order_symbol[start : start + size]
            pos = self.order_pos[start : start + size]
            idx = offsets[sym] + pos
            yield [sym.tolist(), (pos + 1).tolist(),
                   *(flat[col][idx].tolist() for col in ("ts", *BAR_COLUMNS))]

    def bars_table(self) -> pa.Table:
        """Every bar of every symbol as one Arrow table, for the store's ``bars`` table."""
        lengths = [len(b) for b in self.bars]
        symbol = pa.DictionaryArray.from_arrays(
            pa.array(np.repeat(np.arange(len(self.bars), dtype=np.int32), lengths)),
            pa.array(list(self.symbols), pa.string()),
        )
        columns: dict[str, Any] = {
            "ts": pa.array(_joined([b.ts for b in self.bars]), pa.timestamp("ns")),
            "symbol": symbol,
        }
        for col in BAR_COLUMNS:
            columns[col] = _joined([b.column(col) for b in self.bars])
        # Imported here: sim.regimes may import this module (generators build SymbolBars).
        from sim.regimes.labels import LABELS, regime_codes

        columns["regime"] = pa.DictionaryArray.from_arrays(  # causal label, per symbol
            pa.array(np.concatenate([regime_codes(b.ts, b.close) for b in self.bars])),
            pa.array(list(LABELS), pa.string()),
        )
        columns["source_regime"] = pa.concat_arrays([
            pa.nulls(len(b), pa.string()) if b.source_regime is None
            else pa.array(b.source_regime, pa.string())
            for b in self.bars
        ])
        columns["filled"] = np.concatenate([
            np.zeros(len(b), dtype=bool) if b.filled is None else b.filled.astype(bool)
            for b in self.bars
        ])
        return pa.table(columns)

    def content_hash(self) -> str:
        """Hash of every symbol's bars, so a stored run names exactly the data it saw."""
        digest = hashlib.blake2b(digest_size=16)
        for b in self.bars:
            digest.update(b.symbol.encode() + b"\0")
            for col in ("ts", *BAR_COLUMNS):  # the array's buffer: the same bytes, uncopied
                digest.update(np.ascontiguousarray(b.column(col)).view(np.uint8).data)
            if b.funding is not None:
                digest.update(b"funding\0" + b.funding.ts.tobytes() + b.funding.rate.tobytes())
        return digest.hexdigest()


def _joined(parts: Sequence[np.ndarray]) -> np.ndarray:
    """The symbols' columns end to end; one symbol's as it is (Arrow takes it without a
    copy: 8 MB less per column per million bars)."""
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def merge(bars: Sequence[SymbolBars]) -> MarketData:
    """Merge symbols into one walk ordered by (timestamp, symbol order given)."""
    if not bars:
        raise DataError("no market data: at least one symbol is needed")
    names = [b.symbol for b in bars]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DataError(f"symbol given twice: {', '.join(dupes)}")
    ts = np.concatenate([b.ts for b in bars])
    sym = np.concatenate([np.full(len(b), i, dtype=np.int32) for i, b in enumerate(bars)])
    pos = np.concatenate([np.arange(len(b), dtype=np.int64) for b in bars])
    order = np.lexsort((sym, ts))  # stable: ties in time follow symbol order
    return MarketData(tuple(bars), sym[order], pos[order])


def _row_label(source: str, i: int, csv: bool) -> str:
    # CSV: header is line 1, so data row i sits on line i + 2.
    return f"{source} line {i + 2}" if csv else f"{source} row {i}"


def _num(x: object) -> str:
    """A value as a person writes it (numpy 2 scalars would print as np.float64(...))."""
    try:
        return repr(float(x))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return repr(x)


def _duration(ns: int) -> str:
    for unit, size in (("d", 86_400 * 10**9), ("h", 3600 * 10**9), ("m", 60 * 10**9),
                       ("s", 10**9), ("ms", 10**6), ("us", 10**3)):
        if ns % size == 0:
            return f"{ns // size}{unit}"
    return f"{ns}ns"


def read_table(path: Path, *, str_columns: tuple[str, ...] = ()) -> tuple[pd.DataFrame, bool]:
    """A CSV or Parquet file as a frame, and whether it is CSV (rows are then lines)."""
    source = str(path)
    if not path.is_file():
        raise DataError(f"{source}: file not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            # Blank lines stay as rows (and fail validation) so line numbers stay true.
            frame = pd.read_csv(path, skip_blank_lines=False,
                                dtype=dict.fromkeys(str_columns, str))
        elif suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            raise DataError(f"{source}: unknown format {suffix!r} (use .csv or .parquet)")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError,
            pa.ArrowException) as exc:
        raise DataError(f"{source}: cannot read: {str(exc).splitlines()[0]}") from None
    return frame, suffix == ".csv"


def check_shape(frame: pd.DataFrame, required: Sequence[str], source: str, csv: bool,
                what: str) -> None:
    """Columns present, at least one row, and (for CSV) no blank line."""
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {', '.join(repr(c) for c in missing)}")
    if len(frame) == 0:
        raise DataError(f"{source}: no {what}")
    if csv:
        bad = _first(frame.isna().all(axis=1).to_numpy())
        if bad is not None:
            raise DataError(f"{_row_label(source, bad, csv)}: blank line")


def _first(mask: np.ndarray) -> int | None:
    idx = np.flatnonzero(mask)
    return int(idx[0]) if idx.size else None


def _when(ns: int | np.integer) -> pd.Timestamp:
    return pd.Timestamp(int(ns), tz="UTC")


def time_zone(name: str) -> zoneinfo.ZoneInfo:
    """An IANA time zone by name; ``ValueError`` with a one-line message if unknown."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(
            f"{name!r} is not a known time zone (use an IANA name like 'UTC' or "
            "'America/New_York')"
        ) from None


# A time part followed by Z or a UTC offset: "...T09:30:00Z", "... 09:30-05:00".
_HAS_ZONE = r"[T ]\d.*(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$"


def parse_times(
    raw: pd.Series, source: str, timezone: str = "UTC", *, csv: bool = False,
    column: str = "timestamp",
) -> pd.Series:
    """ISO 8601 strings (or datetimes) -> tz-aware UTC Series, one row per input row.

    A time written with ``Z`` or an offset is converted to UTC. A time without a zone is
    wall-clock time in ``timezone``; one that a daylight-saving change makes ambiguous or
    skips is an error (write it with its offset), never a guess.
    """
    try:
        zone = time_zone(timezone)
    except ValueError as exc:
        raise DataError(f"{source}: timezone {exc}") from None
    raw = raw.reset_index(drop=True)  # positions, whatever the caller's index
    try:
        if pd.api.types.is_datetime64_any_dtype(raw):
            parsed = pd.Series(pd.to_datetime(raw))
            naive = np.full(len(raw), parsed.dt.tz is None)
            parsed = parsed.dt.tz_localize("UTC") if parsed.dt.tz is None \
                else parsed.dt.tz_convert("UTC")
        else:
            parsed = pd.Series(pd.to_datetime(raw, utc=True, format="ISO8601", errors="coerce"))
            naive = None
    except (ValueError, TypeError) as exc:  # mixed garbage pandas refuses outright
        raise DataError(f"{source}: column {column!r} is not ISO 8601 ({exc})") from None
    bad = _first(parsed.isna().to_numpy())
    if bad is not None:
        raise DataError(f"{_row_label(source, bad, csv)}: bad {column} {raw.iloc[bad]!r}")
    if timezone == "UTC":
        return parsed  # a time without a zone is already UTC
    if naive is None:
        naive = ~raw.astype(str).str.contains(_HAS_ZONE, regex=True).to_numpy()
    if naive.any():
        wall = parsed[naive].dt.tz_localize(None)  # the wall-clock time as written
        local = wall.dt.tz_localize(zone, ambiguous="NaT", nonexistent="NaT")
        bad = _first(local.isna().to_numpy())
        if bad is not None:
            row = int(np.flatnonzero(naive)[bad])
            exists = not pd.isna(wall.iloc[bad].tz_localize(zone, ambiguous=True,
                                                             nonexistent="NaT"))
            raise DataError(
                f"{_row_label(source, row, csv)}: {column} {raw.iloc[row]!r} "
                f"{'is ambiguous' if exists else 'does not exist'} in {timezone} "
                "(a daylight-saving change); write it with its UTC offset"
            )
        parsed = parsed.copy()
        parsed[naive] = local.dt.tz_convert("UTC")
    return parsed


def check_spacing(
    ts: np.ndarray, interval_ns: int, gaps: GapPolicy, where: Callable[[int], str],
    *, note: str = "",
) -> None:
    """Bars one ``interval_ns`` apart. ``gaps="fail"``: any missing bar is an error naming
    ``where(i)`` of the bar after the first gap. Otherwise a gap must be a whole number of
    missing bars: a bar off the interval grid is an error under every policy."""
    if gaps not in GAP_POLICIES:
        raise ValueError(f"gaps must be one of {', '.join(GAP_POLICIES)}, not {gaps!r}")
    steps = np.diff(ts)
    every = _duration(interval_ns)
    if gaps == "fail":
        bad = _first(steps != interval_ns)
        if bad is not None:
            raise DataError(
                f"{where(bad + 1)}: gap: {_when(ts[bad + 1])} follows {_when(ts[bad])}"
                f"{note} (expected one bar every {every}); "
                'set gaps = "skip" or "ffill" to accept gaps'
            )
        return
    bad = _first(steps % interval_ns != 0)
    if bad is not None:
        raise DataError(
            f"{where(bad + 1)}: {_when(ts[bad + 1])} is {_duration(int(steps[bad]))} after "
            f"{_when(ts[bad])}, not a whole number of {every} bars"
        )


def fill_gaps(bars: SymbolBars, interval_ns: int) -> SymbolBars:
    """Insert a flat bar (open = high = low = close = the previous close, volume 0) in
    every missing slot of the ``interval_ns`` grid between the first and last bar, flagged
    in ``filled`` so it is never mistaken for a traded bar. A per-bar ``source_regime``
    carries the previous bar's. Bars must already be on the grid (``check_spacing``)."""
    offset = bars.ts - bars.ts[0]
    bad = _first(offset % interval_ns != 0)
    if bad is not None:
        raise DataError(
            f"{bars.source} row {bad}: {_when(bars.ts[bad])} is off the "
            f"{_duration(interval_ns)} grid that starts at {_when(bars.ts[0])}"
        )
    slot = offset // interval_ns
    n = int(slot[-1]) + 1
    if n == len(bars):
        return bars
    src = np.searchsorted(slot, np.arange(n), side="right") - 1  # last real bar at or before
    real = np.zeros(n, dtype=bool)
    real[slot] = True
    prev_close = bars.close[src]
    filled = ~real if bars.filled is None else ~real | bars.filled[src]
    columns: dict[str, Any] = {
        "ts": bars.ts[0] + interval_ns * np.arange(n, dtype=np.int64),
        **{name: np.where(real, bars.column(name)[src], prev_close) for name in PRICE_COLUMNS},
        "volume": np.where(real, bars.volume[src], 0.0),
        "filled": filled,
    }
    if bars.source_regime is not None:
        columns["source_regime"] = bars.source_regime[src]
    for a in columns.values():
        a.setflags(write=False)
    return replace(bars, **columns)


def bars_from_frame(
    frame: pd.DataFrame,
    symbol: str,
    source: str = "<dataframe>",
    *,
    interval_ns: int | None = None,
    gaps: GapPolicy = "fail",
    timezone: str = "UTC",
    _csv: bool = False,
) -> SymbolBars:
    """Validate a frame with a ``timestamp`` column (or DatetimeIndex) and OHLCV columns.

    Times without a zone are read in ``timezone``; with ``interval_ns`` missing bars are
    handled by ``gaps`` (see ``GapPolicy``; ``"ffill"`` inserts flagged flat bars).
    """
    if "timestamp" not in frame.columns:
        if isinstance(frame.index, pd.DatetimeIndex):
            frame = frame.reset_index(names="timestamp")
        else:
            raise DataError(f"{source}: missing column 'timestamp'")
    check_shape(frame, BAR_COLUMNS, source, _csv, "rows")
    parsed = parse_times(frame["timestamp"], source, timezone, csv=_csv)
    ts = parsed.to_numpy(dtype="datetime64[ns]").astype(np.int64)

    columns: dict[str, np.ndarray] = {}
    for name in BAR_COLUMNS:
        raw = frame[name]
        values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
        bad = _first(~np.isfinite(values))
        if bad is not None:
            raise DataError(
                f"{_row_label(source, bad, _csv)}: {name} is {_num(raw.iloc[bad])}, "
                "not a finite number"
            )
        columns[name] = values

    steps = np.diff(ts)
    bad = _first(steps == 0)
    if bad is not None:
        raise DataError(
            f"{_row_label(source, bad + 1, _csv)}: duplicate timestamp {parsed.iloc[bad + 1]}"
        )
    bad = _first(steps < 0)
    if bad is not None:
        raise DataError(
            f"{_row_label(source, bad + 1, _csv)}: timestamp {parsed.iloc[bad + 1]} is "
            f"earlier than the row before ({parsed.iloc[bad]}); rows must be sorted"
        )
    if interval_ns is not None:
        check_spacing(ts, interval_ns, gaps, lambda i: _row_label(source, i, _csv))

    o, h, lo, c, v = (columns[n] for n in BAR_COLUMNS)
    for name in PRICE_COLUMNS:
        bad = _first(columns[name] <= 0)
        if bad is not None:
            raise DataError(
                f"{_row_label(source, bad, _csv)}: {name} {_num(columns[name][bad])} "
                "is not positive"
            )
    bad = _first(v < 0)
    if bad is not None:
        raise DataError(f"{_row_label(source, bad, _csv)}: volume {_num(v[bad])} is negative")
    bad = _first(h < np.maximum(o, c))
    if bad is not None:
        raise DataError(
            f"{_row_label(source, bad, _csv)}: high {_num(h[bad])} is below max(open, close) "
            f"{_num(max(o[bad], c[bad]))}"
        )
    bad = _first(lo > np.minimum(o, c))
    if bad is not None:
        raise DataError(
            f"{_row_label(source, bad, _csv)}: low {_num(lo[bad])} is above min(open, close) "
            f"{_num(min(o[bad], c[bad]))}"
        )
    arrays = [ts, o, h, lo, c, v]
    for a in arrays:
        a.setflags(write=False)
    bars = SymbolBars(symbol, source, *arrays)
    return fill_gaps(bars, interval_ns) if interval_ns is not None and gaps == "ffill" else bars


def load_bars(
    path: str | Path,
    symbol: str,
    *,
    interval_ns: int | None = None,
    gaps: GapPolicy = "fail",
    timezone: str = "UTC",
) -> SymbolBars:
    """Load and validate one symbol's bars from a CSV or Parquet file (see
    ``bars_from_frame``; trades, resampling and funding are in ``sim.loaders``)."""
    path = Path(path)
    frame, csv = read_table(path, str_columns=("timestamp",))
    return bars_from_frame(
        frame, symbol, str(path), interval_ns=interval_ns, gaps=gaps, timezone=timezone,
        _csv=csv,
    )


def gbm_bars(
    symbol: str,
    n: int,
    rng: np.random.Generator,
    *,
    start_ns: int,
    interval_ns: int,
    s0: float = 100.0,
    drift: float = 0.0,
    volatility: float = 0.8,
) -> SymbolBars:
    """Geometric Brownian motion bars; ``drift`` and ``volatility`` are annualised.

    Each bar opens at the previous close; high and low reach beyond the body by a
    half-normal excursion of the same per-bar scale, so OHLC stay consistent.
    """
    if n <= 0:
        raise DataError(f"{symbol}: generated series needs at least one bar, got {n}")
    dt = interval_ns / NS_PER_YEAR
    step_sd = volatility * np.sqrt(dt)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):  # checked below
        log_ret = (drift - 0.5 * volatility**2) * dt + step_sd * rng.standard_normal(n)
        close = s0 * np.exp(np.cumsum(log_ret))
        open_ = np.concatenate(([s0], close[:-1]))
        wick = np.abs(rng.standard_normal((2, n))) * step_sd * 0.5
        high = np.maximum(open_, close) * np.exp(wick[0])
        low = np.minimum(open_, close) * np.exp(-wick[1])
    volume = rng.lognormal(mean=3.0, sigma=0.5, size=n)
    if not (np.isfinite(high).all() and np.isfinite(low).all() and low.min() > 0.0):
        raise DataError(f"{symbol}: the generated price leaves the range of floating point "
                        "numbers over these bars; use fewer bars or a smaller drift or "
                        "volatility")
    if start_ns + interval_ns * (n - 1) > np.iinfo(np.int64).max:
        raise DataError(f"{symbol}: {n} bars of {interval_ns} ns from {start_ns} overflow "
                        "nanosecond timestamps")
    ts = start_ns + interval_ns * np.arange(n, dtype=np.int64)
    arrays = [ts, open_, high, low, close, volume]
    for a in arrays:
        a.setflags(write=False)
    return SymbolBars(symbol, f"generated:gbm(drift={drift}, volatility={volatility})", *arrays)
