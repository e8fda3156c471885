"""``quorum data inspect``: what is in a bar file, before a scenario uses it.

Summary statistics, gaps against the bar interval, causal regime label counts, and a price
chart with the regimes shaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.data import NS_PER_YEAR, DataError, SymbolBars
from sim.loaders import GapReport, gap_report
from sim.regimes.labels import LabelConfig, label_counts, label_regimes


def duration_text(ns: int) -> str:
    """A span as a person reads it: '20d 0h', '5m', '1d', '1h 30m'."""
    td = pd.Timedelta(int(ns), unit="ns")
    days, rest = td.days, td - pd.Timedelta(days=td.days)
    hours, minutes = rest.seconds // 3600, rest.seconds % 3600 // 60
    seconds = rest.seconds % 60 + rest.microseconds / 1e6 + rest.nanoseconds / 1e9
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "",
             f"{minutes}m" if minutes else "", f"{seconds:g}s" if seconds else ""]
    return " ".join(p for p in parts if p) or "0s"


@dataclass(frozen=True, slots=True)
class Inspection:
    """What ``inspect_bars`` found; ``stats`` and ``regimes`` are ready to print."""

    stats: dict[str, Any]
    gaps: GapReport
    labels: np.ndarray
    regimes: dict[str, int]


def inspect_bars(bars: SymbolBars, interval_ns: int | None = None,
                 config: LabelConfig | None = None) -> Inspection:
    """Statistics of one symbol's bars. ``interval_ns``: the spacing the bars should have
    for the gap report (default: the median spacing found). Returns are log returns
    between consecutive bars; their annualised volatility scales the per-bar std by the
    bars in a 365-day year at the median spacing (so an exchange that closes at weekends
    reads higher than on a 252-day year)."""
    if len(bars) < 2:
        raise DataError(f"{bars.source}: {len(bars)} bar(s); at least 2 are needed")
    steps = np.diff(bars.ts)
    detected = int(np.median(steps))
    interval = interval_ns or detected
    returns = np.diff(np.log(bars.close))
    std = float(returns.std(ddof=1)) if len(returns) > 1 else 0.0
    gaps = gap_report(bars, interval)
    labels = label_regimes(bars.ts, bars.close, config)
    stats: dict[str, Any] = {
        "source": bars.source,
        "symbol": bars.symbol,
        "rows": len(bars),
        "first bar": str(pd.Timestamp(int(bars.ts[0]), tz="UTC")),
        "last bar": str(pd.Timestamp(int(bars.ts[-1]), tz="UTC")),
        "span": duration_text(int(bars.ts[-1] - bars.ts[0])),
        "interval (median spacing)": duration_text(detected),
        "interval (expected)": duration_text(interval),
        "gaps": gaps.gaps,
        "missing bars": gaps.missing,
        "largest gap": (duration_text((gaps.longest + 1) * interval) + f" ({gaps.longest} "
                        "bars missing)") if gaps.gaps else "none",
        "return mean (per bar)": float(returns.mean()),
        "return std (per bar)": std,
        "annualised volatility (365d)": std * float(np.sqrt(NS_PER_YEAR / detected)),
        "total return": float(bars.close[-1] / bars.close[0] - 1.0),
        "min price (low)": float(bars.low.min()),
        "max price (high)": float(bars.high.max()),
        "first close": float(bars.close[0]),
        "last close": float(bars.close[-1]),
    }
    return Inspection(stats, gaps, labels, label_counts(labels))


def chart_path(out: Path, symbol: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in symbol)
    return out / f"{safe}_regimes.png"
