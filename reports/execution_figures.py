"""The report's execution figure (``reports.figures`` conventions): latency histograms and
implementation shortfall per fill, each duration in the unit that suits it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.ticker as mticker
import numpy as np

from reports.figures import ACCENT, LINE, _empty, _figure, _finish

DURATION_UNITS = ((3_600_000.0, "h"), (60_000.0, "min"), (1_000.0, "s"), (1.0, "ms"))


def duration_unit(ms: np.ndarray) -> tuple[float, str]:
    """The unit that shows durations (in ms) as numbers of a readable size: the largest
    one the median is at least two of."""
    median = float(np.median(ms)) if len(ms) else 0.0
    for size, name in DURATION_UNITS:
        if median >= 2 * size:
            return size, name
    return 1.0, "ms"


def _short(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"


def _histogram(ax: Any, values: np.ndarray, colour: str, unit: str) -> None:
    """Counts of ``values``, log-spaced when they span more than two decades (resting
    orders next to instant fills), with the median (solid) and p99 (dashed) marked."""
    bins: Any = min(60, max(5, int(np.sqrt(len(values)))))
    positive = values[values > 0]
    if len(positive) == len(values) and positive.max() > 100 * positive.min():
        bins = np.geomspace(positive.min(), positive.max(), bins + 1)
        ax.set_xscale("log")
    counts, _, _ = ax.hist(values, bins=bins, color=colour, alpha=0.85)
    ax.set_ylim(0, float(counts.max()) * 1.35)  # room for the summary, top right
    ax.yaxis.set_major_locator(mticker.MaxNLocator(integer=True))
    p50, p99 = np.percentile(values, [50, 99])
    for v, style in ((p50, "-"), (p99, "--")):
        ax.axvline(v, color="#212121", lw=0.9, ls=style)
    ax.text(0.98, 0.95, f"median {_short(p50)} {unit}\np99 {_short(p99)} {unit}\n"
            f"n {len(values):,}",
            transform=ax.transAxes, ha="right", va="top", fontsize=8,
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"})


def fig_execution(frame: dict[str, np.ndarray], path: Path) -> Path:
    """Latency histograms (submission to arrival, arrival to fill) and implementation
    shortfall per fill (bps of the expected notional; positive is a cost). Times are
    shown in the unit that suits their median; an order resting for hours and one filled
    on arrival share a log axis."""
    from reports.metrics import implementation_shortfall

    fig, axes = _figure(1, 3)
    q, exp = frame["quantity"], frame["expected_price"]
    with np.errstate(divide="ignore", invalid="ignore"):
        bps = 1e4 * implementation_shortfall(q, exp, frame["fill_price"]) / (np.abs(q) * exp)
    panels = []
    for title, ns in (("submission to arrival", frame["arrival_ts"] - frame["decision_ts"]),
                      ("arrival to fill", frame["fill_ts"] - frame["arrival_ts"])):
        size, unit = duration_unit(ns / 1e6)
        panels.append((title, ns / 1e6 / size, unit))
    panels.append(("implementation shortfall (+ is a cost)", bps[np.isfinite(bps)], "bps"))
    for ax, (title, values, unit), colour in zip(axes, panels, (LINE, "#6a1b9a", ACCENT),
                                                 strict=True):
        if not len(values):
            _empty(ax, "no fills")
        else:
            _histogram(ax, values, colour, unit)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(unit if unit != "bps" else "bps of the expected notional, per fill")
    axes[0].set_ylabel("fills")
    fig.suptitle("Execution: latency and implementation shortfall", fontweight="bold",
                 fontsize=11)
    return _finish(fig, path)
