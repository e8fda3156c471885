"""Market data: loading, validation, merging in time order, and a seeded GBM generator.

Bars are held as columns (numpy arrays) per symbol; the engine walks a merged index over
all symbols ordered by (timestamp, symbol order). Bad data is rejected with the file and
line (or row) named; nothing is repaired silently.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa

PRICE_COLUMNS = ("open", "high", "low", "close")
BAR_COLUMNS = (*PRICE_COLUMNS, "volume")
NS_PER_YEAR = 365 * 86_400 * 1_000_000_000  # crypto trades every day of the year


class DataError(ValueError):
    """Invalid market data; the message names the source and the offending row."""


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
        flat = {col: np.concatenate([b.column(col) for b in self.bars])
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
            "ts": pa.array(np.concatenate([b.ts for b in self.bars]), pa.timestamp("ns")),
            "symbol": symbol,
        }
        for col in BAR_COLUMNS:
            columns[col] = np.concatenate([b.column(col) for b in self.bars])
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
            for col in ("ts", *BAR_COLUMNS):
                digest.update(np.ascontiguousarray(b.column(col)).tobytes())
        return digest.hexdigest()


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


def _first(mask: np.ndarray) -> int | None:
    idx = np.flatnonzero(mask)
    return int(idx[0]) if idx.size else None


def bars_from_frame(
    frame: pd.DataFrame,
    symbol: str,
    source: str = "<dataframe>",
    *,
    interval_ns: int | None = None,
    allow_gaps: bool = False,
    _csv: bool = False,
) -> SymbolBars:
    """Validate a frame with a ``timestamp`` column (or DatetimeIndex) and OHLCV columns."""
    if "timestamp" not in frame.columns:
        if isinstance(frame.index, pd.DatetimeIndex):
            frame = frame.reset_index(names="timestamp")
        else:
            raise DataError(f"{source}: missing column 'timestamp'")
    missing = [c for c in BAR_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {', '.join(repr(c) for c in missing)}")
    if len(frame) == 0:
        raise DataError(f"{source}: no rows")

    if _csv:
        bad = _first(frame.isna().all(axis=1).to_numpy())
        if bad is not None:
            raise DataError(f"{_row_label(source, bad, _csv)}: blank line")
    raw_ts = frame["timestamp"]
    try:
        if pd.api.types.is_datetime64_any_dtype(raw_ts):
            parsed = pd.to_datetime(raw_ts, utc=True)
        else:
            parsed = pd.to_datetime(raw_ts, utc=True, format="ISO8601", errors="coerce")
    except (ValueError, TypeError) as exc:  # mixed garbage pandas refuses outright
        raise DataError(f"{source}: column 'timestamp' is not ISO 8601 ({exc})") from None
    bad = _first(parsed.isna().to_numpy())
    if bad is not None:
        raise DataError(
            f"{_row_label(source, bad, _csv)}: bad timestamp {raw_ts.iloc[bad]!r}"
        )
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
    if interval_ns is not None and not allow_gaps:
        bad = _first(steps != interval_ns)
        if bad is not None:
            raise DataError(
                f"{_row_label(source, bad + 1, _csv)}: gap: {parsed.iloc[bad + 1]} follows "
                f"{parsed.iloc[bad]} (expected one bar every {_duration(interval_ns)}); "
                "set allow_gaps = true to accept gaps"
            )

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
    return SymbolBars(symbol, source, *arrays)


def load_bars(
    path: str | Path,
    symbol: str,
    *,
    interval_ns: int | None = None,
    allow_gaps: bool = False,
) -> SymbolBars:
    """Load and validate one symbol's bars from a CSV or Parquet file."""
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise DataError(f"{source}: file not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            # Blank lines stay as rows (and fail validation) so line numbers stay true.
            frame = pd.read_csv(path, dtype={"timestamp": str}, skip_blank_lines=False)
        elif suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            raise DataError(f"{source}: unknown format {suffix!r} (use .csv or .parquet)")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError,
            pa.ArrowException) as exc:
        raise DataError(f"{source}: cannot read: {str(exc).splitlines()[0]}") from None
    return bars_from_frame(
        frame, symbol, source, interval_ns=interval_ns, allow_gaps=allow_gaps,
        _csv=suffix == ".csv",
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
    log_ret = (drift - 0.5 * volatility**2) * dt + step_sd * rng.standard_normal(n)
    close = s0 * np.exp(np.cumsum(log_ret))
    open_ = np.concatenate(([s0], close[:-1]))
    wick = np.abs(rng.standard_normal((2, n))) * step_sd * 0.5
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])
    volume = rng.lognormal(mean=3.0, sigma=0.5, size=n)
    ts = start_ns + interval_ns * np.arange(n, dtype=np.int64)
    arrays = [ts, open_, high, low, close, volume]
    for a in arrays:
        a.setflags(write=False)
    return SymbolBars(symbol, f"generated:gbm(drift={drift}, volatility={volatility})", *arrays)
