"""Shared strategies and store readers for the property tests.

Scenarios are drawn as plain dicts (the shape ``sim.config.parse_scenario`` takes) so a
failing example prints as something that can be pasted into a TOML file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import strategies as st

from sim.data import SymbolBars, bars_from_frame
from sim.schema import TABLES

SYMBOLS = ("AAA", "BBB", "CCC")
INTERVALS = {"1m": 60 * 10**9, "5m": 300 * 10**9, "15m": 900 * 10**9, "1h": 3600 * 10**9}
NS_PER_DAY = 86_400 * 10**9
START_NS = pd.Timestamp("2024-01-01T00:00:00Z").value

# Columns that hold a wall-time measurement or identity, never a simulated result.
NON_DETERMINISTIC = {"routing_decisions": frozenset({"elapsed_ns"})}


# -- scenario pieces -----------------------------------------------------------------
tenths = st.integers(1, 30).map(lambda x: x / 10)


@st.composite
def sma_agent(draw: st.DrawFn) -> dict[str, Any]:
    fast = draw(st.integers(2, 15))
    slow = draw(st.integers(fast + 1, fast + 40))
    return {"kind": "sma_crossover",
            "params": {"fast": fast, "slow": slow, "long_only": draw(st.booleans())}}


@st.composite
def zscore_agent(draw: st.DrawFn) -> dict[str, Any]:
    entry = draw(st.integers(5, 30)) / 10
    exit_ = draw(st.integers(0, int(entry * 10) - 1)) / 10
    return {"kind": "zscore_reversion",
            "params": {"window": draw(st.integers(5, 60)), "entry": entry, "exit": exit_,
                       "confidence_step": draw(st.sampled_from([0.05, 0.1, 0.25, 0.5, 1.0]))}}


@st.composite
def agents(
    draw: st.DrawFn, symbols: Sequence[str], min_size: int = 1, max_size: int = 4,
    both_kinds: bool = False,
) -> list[dict[str, Any]]:
    """1..4 agents (some trading only some symbols); with ``both_kinds`` at least one SMA
    and one z-score agent."""
    specs = [draw(sma_agent()), draw(zscore_agent())] if both_kinds else []
    extra = draw(st.integers(max(0, min_size - len(specs)), max(0, max_size - len(specs))))
    specs += [draw(st.one_of(sma_agent(), zscore_agent())) for _ in range(extra)]
    out = []
    for i, spec in enumerate(specs):
        agent = {"name": f"a{i}", **spec}
        if len(symbols) > 1 and draw(st.integers(0, 3)) == 0:  # sometimes a subset
            agent["symbols"] = sorted(draw(st.sets(st.sampled_from(list(symbols)), min_size=1)))
        out.append(agent)
    return out


@st.composite
def venues(
    draw: st.DrawFn, symbols: Sequence[str], slippage: bool = True, full_cover: bool = False,
) -> list[dict[str, Any]]:
    """1..3 venues. Unless ``full_cover``, some symbol may be listed nowhere (route denial)."""
    n = draw(st.integers(1, 3))
    out = []
    for i in range(n):
        listed = sorted(draw(st.sets(st.sampled_from(list(symbols)), min_size=1)))
        if full_cover and i == 0:
            listed = list(symbols)
        out.append({
            "name": f"v{i}",
            "symbols": listed,
            "fee_bps": draw(st.sampled_from([0.0, 1.0, 2.5, 7.5, 10.0, 25.0])),
            "slippage_bps": draw(st.sampled_from([0.0, 0.5, 2.0, 15.0])) if slippage else 0.0,
        })
    return out


def consensus() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({
        "method": st.sampled_from(["majority", "confidence_weighted", "unanimous",
                                   "performance_weighted"]),
        "min_agreement": st.sampled_from([0.0, 0.0, 0.5, 0.6, 0.75]),
    }, optional={
        "conflict": st.sampled_from(["hold", "highest_confidence", "conservative",
                                     "risk_override", "weighted_target"]),
        "quorum": st.integers(0, 3),
        "max_signal_age": st.sampled_from(["3m", "10m", "1h"]),
        "decay": st.sampled_from([1.0, 0.9, 0.5]),
    })


def policy(max_exposure: float = 3.0) -> st.SearchStrategy[dict[str, Any]]:
    """Every sizing method (the default most often), each with its own settings, so the
    invariants (determinism, no lookahead, limits) cover all of them."""
    return st.fixed_dictionaries({
        "sizing": st.sampled_from(["fixed_fraction", "fixed_fraction",
                                   "confidence_exponential", "volatility_target", "kelly"]),
        "exposure": st.integers(1, int(max_exposure * 10)).map(lambda x: x / 10),
        "allow_short": st.booleans(),
        "scale_by_confidence": st.booleans(),
        "min_notional": st.sampled_from([0.0, 0.0, 1.0, 50.0]),
    }, optional={
        "max_leverage": st.sampled_from([0.5, 1.0, 2.5]),
        "min_quantity": st.sampled_from([0.01, 1.0]),
        "exp_k": st.sampled_from([0.5, 3.0, 8.0]),
        "target_volatility": st.sampled_from([0.1, 0.5, 2.0]),
        "vol_lookback": st.integers(2, 40),
        "kelly_fraction": st.sampled_from([0.25, 0.5, 1.0]),
        "kelly_cap": st.sampled_from([0.5, 1.0, 3.0]),
        "payoff_ratio": st.sampled_from([0.5, 1.0, 2.0]),
    })


@st.composite
def risk(draw: st.DrawFn, symbols: Sequence[str], cash: float = 10_000.0) -> dict[str, Any]:
    """Each limit present half the time; notional limits sized against the initial cash so
    they sometimes bind and sometimes not."""
    factor = st.sampled_from([2.5, 1.0, 5.0, 0.5, 1.5, 0.8, 0.2, 0.05])
    out: dict[str, Any] = {}
    if draw(st.booleans()):
        out["max_order_notional"] = cash * draw(factor)
    if draw(st.booleans()):
        out["max_position_notional"] = cash * draw(factor)
    if draw(st.booleans()):
        out["max_orders_per_day"] = draw(st.sampled_from([10, 3, 30, 1]))
    if draw(st.booleans()):
        out["allowed_symbols"] = sorted(draw(st.sets(st.sampled_from(list(symbols)),
                                                     min_size=draw(st.sampled_from([1, 1, 0])))))
    return out


# -- data ------------------------------------------------------------------------------
def frame(ts: np.ndarray, o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray,
          v: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({
        "timestamp": pd.to_datetime(np.asarray(ts, dtype=np.int64), utc=True),
        "open": o, "high": h, "low": lo, "close": c, "volume": v,
    })


def random_ohlc(rng: np.random.Generator, n: int, price: float, sigma: float,
                gapped_opens: bool = False) -> tuple[np.ndarray, ...]:
    """Valid positive OHLCV: high >= max(open, close), low <= min(open, close)."""
    close = price * np.exp(np.cumsum(rng.normal(0.0, sigma, n)))
    if gapped_opens:  # opens unrelated to the previous close
        open_ = close * np.exp(rng.normal(0.0, sigma, n))
    else:
        open_ = np.concatenate(([price], close[:-1]))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, sigma, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, sigma, n)))
    volume = rng.lognormal(3.0, 1.0, n)
    return open_, high, low, close, volume


def bars_of(symbol: str, ts: np.ndarray, ohlcv: tuple[np.ndarray, ...]) -> SymbolBars:
    return bars_from_frame(frame(ts, *ohlcv), symbol)


# -- reading a run back ------------------------------------------------------------------
def columns(table: str, drop: Sequence[str] = ()) -> list[str]:
    return [name for name, _ in TABLES[table] if name not in drop]


def select_list(table: str, drop: Sequence[str] = (), prefix: str = "") -> str:
    """Columns of ``table`` with timestamps as exact integer nanoseconds."""
    parts = []
    for name, kind in TABLES[table]:
        if name in drop:
            continue
        col = f"{prefix}{name}"
        parts.append(f"epoch_ns({col}) AS {name}" if kind == "TIMESTAMP_NS" else col)
    return ", ".join(parts)


def table_rows(con: Any, table: str, run_id: str, *, sort: bool = True) -> list[tuple]:
    """A run's rows of ``table`` without run_id and non-deterministic columns.

    ``sort=True`` orders by every column; ``sort=False`` keeps the insertion order.
    """
    drop = NON_DETERMINISTIC.get(table, ())
    order = "ORDER BY ALL" if sort else "ORDER BY rowid"
    return con.execute(
        f"SELECT {select_list(table, drop)} FROM {table} WHERE run_id = ? {order}", [run_id]
    ).fetchall()


def digest(rows: list[tuple]) -> str:
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def records(con: Any, table: str, run_id: str) -> list[dict[str, Any]]:
    """All rows of ``table`` for a run as dicts, in insertion order."""
    names = columns(table)
    rows = con.execute(
        f"SELECT {select_list(table)} FROM {table} WHERE run_id = ? ORDER BY rowid", [run_id]
    ).fetchall()
    return [dict(zip(names, row, strict=True)) for row in rows]
