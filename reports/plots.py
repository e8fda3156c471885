"""Pictures of a run: read from the store, drawn with matplotlib (no display needed)."""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.patches import Patch

# One colour per regime label (sim.regimes.labels.LABELS), the same in every figure.
REGIME_COLOURS: dict[str, str] = {
    "warmup": "#bdbdbd",
    "trend_up": "#2e7d32",
    "trend_down": "#ef6c00",
    "ranging": "#cfd8dc",
    "high_volatility": "#8e24aa",
    "crash": "#c62828",
}
UNKNOWN_REGIME_COLOUR = "#ffffff"
MAX_PLOT_POINTS = 20_000


def plot_equity(con: duckdb.DuckDBPyConnection, run_id: str, path: Path) -> Path:
    """The report's equity-and-drawdown figure (``reports.figures.fig_equity``), alone:
    ``quorum run --out`` writes it."""
    from reports import figures
    from reports.data import RunData

    run = RunData(con, run_id)
    with plt.rc_context(figures.STYLE):
        return figures.fig_equity(run.ts, run.equity, run.initial,
                                  f"Equity and drawdown: {run.title}",
                                  figures.regime_shading(con, run_id, run.reference), path)


def plot_regimes(ts: np.ndarray, close: np.ndarray, labels: np.ndarray, path: Path, *,
                 title: str | None = None, max_points: int = MAX_PLOT_POINTS) -> Path:
    """Close price with each bar's regime shaded behind it (``REGIME_COLOURS``).

    ``ts`` is int64 ns UTC. Longer series are drawn in buckets of consecutive bars: the
    line is each bucket's last close, a band its low-high range of closes, and the shading
    each bucket's last label, so a figure stays small however many bars there are.
    """
    ts, close, labels = np.asarray(ts), np.asarray(close, dtype=np.float64), np.asarray(labels)
    if not (len(ts) == len(close) == len(labels)) or len(ts) == 0:
        raise ValueError(f"plot_regimes: ts, close and labels need the same non-zero length, "
                         f"got {len(ts)}, {len(close)}, {len(labels)}")
    n = len(ts)
    step = max(1, math.ceil(n / max_points))
    first = np.arange(0, n, step)
    last = np.minimum(first + step - 1, n - 1)
    when = ts.astype(np.int64)[first].astype("datetime64[ns]")
    line, names = close[last], labels[last].astype(str)

    fig, ax = plt.subplots(figsize=(12, 5))
    if step > 1:
        ax.fill_between(when, np.minimum.reduceat(close, first), np.maximum.reduceat(close, first),
                        color="#424242", alpha=0.25, linewidth=0)
    ax.plot(when, line, lw=0.8, color="#212121")

    # Shade runs of equal labels: one collection per regime, not one patch per bar.
    x = mdates.date2num(when)
    width = float(np.median(np.diff(x))) if len(x) > 1 else 1.0
    edges = np.append(x, x[-1] + width)
    cut = np.flatnonzero(names[1:] != names[:-1]) + 1
    starts, ends = np.concatenate(([0], cut)), np.concatenate((cut, [len(names)]))
    handles = []
    for name in [*REGIME_COLOURS, *sorted(set(names.tolist()) - set(REGIME_COLOURS))]:
        runs = names[starts] == name
        if not runs.any():
            continue
        colour = REGIME_COLOURS.get(name, UNKNOWN_REGIME_COLOUR)
        spans = list(zip(edges[starts[runs]], edges[ends[runs]] - edges[starts[runs]],
                         strict=True))
        ax.broken_barh(spans, (0, 1), transform=ax.get_xaxis_transform(), facecolors=colour,
                       alpha=0.35, linewidth=0)
        share = float((labels == name).mean())
        handles.append(Patch(facecolor=colour, alpha=0.6, label=f"{name} ({share:.0%})"))
    ax.set_xlim(edges[0], edges[-1])
    ax.set_ylabel("close")
    ax.set_title(title or "regimes")
    ax.legend(handles=handles, loc="upper left", fontsize=8, ncol=3)
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
