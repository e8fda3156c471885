"""The report's figures: matplotlib (Agg), one style, every PNG ``FIG_PX`` pixels.

Regime labels (``bars.regime``, colours of ``reports.plots.REGIME_COLOURS``) are shaded
behind every time-series chart: the labels of the reference symbol behind run-wide charts,
each symbol's own labels behind its price chart.

Long runs are downsampled for plotting only (metrics always use every row): a line keeps,
per bucket of consecutive points, the bucket's minimum and maximum (at most
``MAX_POINTS`` points per line); markers are thinned evenly to ``MAX_MARKERS``; regime
shading takes each bucket's last label over at most ``MAX_SHADE_BUCKETS`` buckets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
from matplotlib.patches import Patch
from matplotlib.typing import RcKeyType

from reports.data import RAN
from reports.plots import REGIME_COLOURS, UNKNOWN_REGIME_COLOUR
from sim.sql import one_row

MAX_POINTS = 5_000
MAX_MARKERS = 5_000
MAX_SHADE_BUCKETS = 2_000
FIG_INCHES = (11.0, 5.0)
DPI = 100
FIG_PX = (int(FIG_INCHES[0] * DPI), int(FIG_INCHES[1] * DPI))  # (width, height) of every PNG

STYLE: dict[RcKeyType, Any] = {
    "font.size": 9,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.labelsize": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.fontsize": 8,
    "legend.framealpha": 0.85,
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "savefig.facecolor": "white",
    "date.converter": "concise",
}
LINE = "#1f4e79"
ACCENT = "#ef6c00"
MUTED = "#90a4ae"
BUY, SELL, EXIT = "#2e7d32", "#c62828", "#424242"
PERCENT = mticker.PercentFormatter(1.0, decimals=0)


def palette(k: int) -> Any:
    """The k-th colour of the series palette (agents, venues, runs)."""
    return plt.get_cmap("tab10")(k % 10)


def human(value: float) -> str:
    """1234567 -> '1.23M': bar labels and axis ticks that stay short."""
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}"


HUMAN = mticker.FuncFormatter(lambda v, _pos: human(v))


# -- downsampling ---------------------------------------------------------------------------
def minmax_indices(values: np.ndarray, max_points: int = MAX_POINTS) -> np.ndarray:
    """Indices to plot: all of them, or each bucket's min and max (plus the ends)."""
    n = len(values)
    if n <= max_points:
        return np.arange(n)
    buckets = max(1, max_points // 2 - 1)
    step = math.ceil(n / buckets)
    m = math.ceil(n / step)
    blocks = np.pad(np.asarray(values, np.float64), (0, m * step - n), mode="edge")
    blocks = blocks.reshape(m, step)
    base = np.arange(m) * step
    idx = np.concatenate((base + np.nanargmin(blocks, axis=1), base + np.nanargmax(blocks, axis=1),
                          [0, n - 1]))
    return np.unique(np.minimum(idx, n - 1))


def thin(n: int, max_points: int = MAX_MARKERS) -> np.ndarray:
    """Evenly spaced indices, at most ``max_points`` of them (markers only)."""
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_points).astype(np.int64))


def rolling_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over ``window`` points (fewer at the start): causal, no edge dip."""
    v = np.asarray(values, np.float64)
    c = np.concatenate(([0.0], np.cumsum(v)))
    idx = np.arange(1, len(v) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def _dt(ns: np.ndarray) -> np.ndarray:
    return np.asarray(ns, np.int64).astype("datetime64[ns]")


# -- regime shading -------------------------------------------------------------------------
@dataclass
class Shading:
    """Regime labels as runs of equal labels: ``start[i]..end[i]`` (ns) is ``label[i]``."""

    start: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    end: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    label: np.ndarray = field(default_factory=lambda: np.zeros(0, object))
    share: dict[str, float] = field(default_factory=dict)
    symbol: str = ""


def regime_shading(con: duckdb.DuckDBPyConnection, run_id: str, symbol: str | None) -> Shading:
    """Each bucket's last label (buckets of consecutive bars, at most MAX_SHADE_BUCKETS),
    collapsed into runs of equal labels; exact when the symbol has fewer bars than that."""
    if symbol is None:
        return Shading()
    n = one_row(con, f"SELECT count(*) FROM bars WHERE run_id = $r AND symbol = $s AND {RAN}",
                {"r": run_id, "s": symbol})[0]
    if not n:
        return Shading()
    step = max(1, math.ceil(n / MAX_SHADE_BUCKETS))
    rows = con.execute(
        f"""
        SELECT min(t) AS t0, max(t) AS t1, arg_max(regime, t) AS label
        FROM (SELECT epoch_ns(ts) AS t, coalesce(regime, 'unknown') AS regime,
                     (row_number() OVER (ORDER BY ts) - 1) // $step AS bucket
              FROM bars WHERE run_id = $r AND symbol = $s AND {RAN})
        GROUP BY bucket ORDER BY bucket
        """, {"r": run_id, "s": symbol, "step": step},
    ).fetchnumpy()
    t0 = np.asarray(rows["t0"], np.int64)
    labels = np.asarray(rows["label"]).astype(str)
    share_rows = con.execute(
        "SELECT coalesce(regime, 'unknown'), count(*) FROM bars WHERE run_id = $r"
        f" AND symbol = $s AND {RAN} GROUP BY ALL", {"r": run_id, "s": symbol}).fetchall()
    share = {name: k / n for name, k in share_rows}
    # a bucket reaches to the start of the next; the last one a median bucket further
    width = int(np.median(np.diff(t0))) if len(t0) > 1 else 1
    ends = np.append(t0[1:], np.asarray(rows["t1"], np.int64)[-1] + max(width // step, 1))
    cut = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    starts = np.concatenate(([0], cut))
    stops = np.concatenate((cut, [len(labels)])) - 1
    return Shading(t0[starts], ends[stops], labels[starts], share, symbol)


# -- drawing helpers ------------------------------------------------------------------------
def _figure(nrows: int = 1, ncols: int = 1, **kw: Any) -> tuple[Any, Any]:
    return plt.subplots(nrows, ncols, figsize=FIG_INCHES, dpi=DPI, **kw)


def _shade(ax: Any, shading: Shading, legend: bool = True) -> list[Patch]:
    """Regime runs as one broken_barh collection per label behind ``ax``'s data."""
    handles: list[Patch] = []
    if not len(shading.label):
        return handles
    x0 = mdates.date2num(_dt(shading.start))
    x1 = mdates.date2num(_dt(shading.end))
    names = [*REGIME_COLOURS, *sorted(set(shading.label.tolist()) - set(REGIME_COLOURS))]
    for name in names:
        mask = shading.label == name
        if not mask.any():
            continue
        colour = REGIME_COLOURS.get(name, UNKNOWN_REGIME_COLOUR)
        spans = list(zip(x0[mask], (x1 - x0)[mask], strict=True))
        ax.broken_barh(spans, (0, 1), transform=ax.get_xaxis_transform(), facecolors=colour,
                       alpha=0.25, linewidth=0, zorder=0)
        handles.append(Patch(facecolor=colour, alpha=0.5,
                             label=f"{name} ({shading.share.get(name, 0.0):.0%})"))
    return handles if legend else []


def _regime_legend(fig: Any, handles: list[Patch], symbol: str) -> None:
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6),
                   fontsize=7, frameon=False, title=f"regime of {symbol}", title_fontsize=7)


def _finish(fig: Any, path: Path, handles: list[Patch] | None = None,
            tight: bool = True, regime_of: str = "") -> Path:
    """Save at FIG_PX, with the regime legend (of symbol ``regime_of``) under the chart.
    Time-series charts (``tight=False``) use fixed margins: tight_layout draws the whole
    figure once more, which is a third of the time on long runs."""
    _regime_legend(fig, handles or [], regime_of)
    if tight:
        fig.tight_layout(rect=(0, 0.07 if handles else 0, 1, 1))
    else:
        fig.subplots_adjust(left=0.075, right=0.985, top=0.92, bottom=0.17 if handles else 0.1,
                            hspace=0.12, wspace=0.25)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=11,
            color="#616161")


def _time_axis(ax: Any, ts: np.ndarray) -> None:
    """Every time-series chart spans the whole run, whatever its own data covers."""
    if len(ts):
        ax.set_xlim(_dt(ts[[0, -1]]))


# -- figures --------------------------------------------------------------------------------
def fig_equity(ts: np.ndarray, equity: np.ndarray, initial: float, title: str,
               shading: Shading, path: Path) -> Path:
    peak = np.maximum.accumulate(np.concatenate(([initial], equity)))[1:]
    dd = equity / peak - 1.0
    fig, (top, bottom) = _figure(2, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    i = minmax_indices(equity)
    top.plot(_dt(ts[i]), equity[i], lw=1.0, color=LINE, label="equity")
    top.axhline(initial, color="#9e9e9e", lw=0.8, ls="--", label="initial cash")
    top.set_ylabel("equity")
    top.yaxis.set_major_formatter(HUMAN)
    top.set_title(title)
    top.legend(loc="upper left")
    j = minmax_indices(dd)
    bottom.fill_between(_dt(ts[j]), dd[j], 0.0, color=SELL, alpha=0.45, linewidth=0)
    bottom.set_ylabel("drawdown")
    bottom.yaxis.set_major_formatter(PERCENT)
    _time_axis(bottom, ts)
    handles = _shade(top, shading)
    _shade(bottom, shading)
    return _finish(fig, path, handles, tight=False, regime_of=shading.symbol)


def fig_price(con: duckdb.DuckDBPyConnection, run_id: str, symbol: str, shading: Shading,
              path: Path) -> Path:
    """Close with fills marked; ``shading``: this symbol's own regime labels."""
    bars = con.execute(
        f"SELECT epoch_ns(ts) AS t, close FROM bars WHERE run_id = $r AND symbol = $s AND {RAN}"
        " ORDER BY ts", {"r": run_id, "s": symbol}).fetchnumpy()
    ts, close = np.asarray(bars["t"], np.int64), np.asarray(bars["close"], np.float64)
    fills = con.execute(
        "SELECT epoch_ns(ts) AS t, price, quantity, position_after FROM fills"
        " WHERE run_id = ? AND symbol = ? ORDER BY ts, fill_id", [run_id, symbol]).fetchnumpy()
    ft = np.asarray(fills["t"], np.int64)
    price = np.asarray(fills["price"], np.float64)
    after = np.asarray(fills["position_after"], np.float64)
    before = after - np.asarray(fills["quantity"], np.float64)
    entry = np.abs(after) > np.abs(before)
    fig, ax = _figure()
    i = minmax_indices(close)
    # dense fills shrink and fade, so the price stays readable under thousands of markers
    dense = min(1.0, math.sqrt(300 / max(len(ft), 1)))
    ax.plot(_dt(ts[i]), close[i], lw=0.8, color="#212121", label="close", zorder=2)
    for mask, marker, colour, name in (
        (entry & (after > 0), "^", BUY, "long entry / add"),
        (entry & (after < 0), "v", SELL, "short entry / add"),
        (~entry, "x", EXIT, "exit / reduce"),
    ):
        if not mask.any():
            continue
        k = np.flatnonzero(mask)
        shown = k[thin(len(k))]
        note = "" if len(shown) == len(k) else f", {len(shown):,} shown"
        ax.scatter(_dt(ft[shown]), price[shown], marker=marker, s=max(3.0, 18 * dense),
                   color=colour, alpha=max(0.35, dense), zorder=3, linewidths=1,
                   label=f"{name} ({len(k):,}{note})")
    ax.set_ylabel("price")
    ax.set_title(f"{symbol}: price with entries and exits")
    ax.legend(loc="best")
    _time_axis(ax, ts)
    return _finish(fig, path, _shade(ax, shading), tight=False, regime_of=symbol)


def fig_exposure(ex: dict[str, np.ndarray], shading: Shading, path: Path) -> Path:
    fig, ax = _figure()
    for key, colour, label, width in (("gross", "#6a1b9a", "gross |value| / equity", 1.6),
                                      ("net", LINE, "net value / equity", 0.9)):
        i = minmax_indices(ex[key])
        ax.plot(_dt(ex["ts"][i]), ex[key][i], lw=width, color=colour, label=label,
                alpha=0.6 if key == "gross" else 1.0)
    ax.axhline(0.0, color="#9e9e9e", lw=0.8)
    ax.yaxis.set_major_formatter(PERCENT)
    ax.set_ylabel("exposure")
    ax.set_title("Exposure over time (position value / equity)")
    ax.legend(loc="upper left")
    _time_axis(ax, ex["ts"])
    return _finish(fig, path, _shade(ax, shading), tight=False, regime_of=shading.symbol)


def fig_agents(shadow: dict[str, Any], agents: list[dict[str, Any]], shading: Shading,
               path: Path) -> Path:
    """Per-agent contribution: each agent's cumulative shadow PnL (its signals traded
    alone, a unit of notional per symbol, no fees) and how often its vote carried."""
    fig = plt.figure(figsize=FIG_INCHES, dpi=DPI)
    # fixed boxes (no tight_layout pass): the right panel leaves room for agent names
    left = fig.add_axes((0.065, 0.17, 0.58, 0.73))
    right = fig.add_axes((0.79, 0.17, 0.19, 0.73))
    ts = shadow["ts"]
    names = [a["agent"] for a in agents]
    if not names:
        _empty(left, "no agent signals")
        _empty(right, "no votes")
    else:
        for k, name in enumerate(names):
            s = shadow["agents"].get(name)
            if s is None:
                continue
            curve = np.cumsum(s["increments"])
            i = minmax_indices(curve)
            left.plot(_dt(ts[i]), curve[i], lw=1.0, color=palette(k),
                      label=f"{name} ({curve[-1]:+.2f})")
        left.axhline(0.0, color="#9e9e9e", lw=0.8)
        left.set_ylabel("shadow PnL (units of notional)")
        if shadow["agents"]:
            left.legend(loc="upper left", ncol=2 if len(names) > 5 else 1)
        else:
            _empty(left, "no agent signals")
        _time_axis(left, ts)
        y = np.arange(len(names))
        majority = np.array([a["in_majority"] for a in agents], float)
        overruled = np.array([a["overruled"] for a in agents], float)
        right.barh(y, majority, color=LINE, label="in the majority")
        right.barh(y, overruled, left=majority, color=MUTED, label="overruled")
        for k, a in enumerate(agents):
            share = a["majority_share"]
            if np.isfinite(share):
                right.text(majority[k] + overruled[k], k, f" {share:.0%}", va="center",
                           fontsize=8)
        right.set_yticks(y, [n if len(n) <= 16 else n[:15] + "…" for n in names])
        right.invert_yaxis()
        right.xaxis.set_major_formatter(HUMAN)
        right.set_xlabel("votes on decided outcomes")
        right.set_title("Votes in the majority (blue)\nor overruled (grey)", fontsize=9)
        right.set_xlim(0, max(1.0, float((majority + overruled).max())) * 1.22)
    left.set_title("Per-agent contribution: shadow PnL of each agent's own signals")
    _regime_legend(fig, _shade(left, shading), shading.symbol)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def fig_consensus(agree: dict[str, np.ndarray], decisions: dict[str, np.ndarray],
                  eq_ts: np.ndarray, shading: Shading, path: Path) -> Path:
    """Agreement (share of opinions on the most popular side) of every decision, and the
    agreement standing at each bar, as a trailing mean over ~1% of the bars."""
    fig, ax = _figure()
    ts, value, n = agree["ts"], agree["agreement"], agree["n"]
    if not len(decisions["ts"]):
        _empty(ax, "no decisions")
    else:
        k = thin(len(decisions["ts"]))
        ax.scatter(_dt(decisions["ts"][k]), decisions["agreement"][k], s=6, color=MUTED,
                   alpha=0.6, label="agreement of each decision", linewidths=0)
        window = max(1, len(ts) // 100)
        for series, colour, label in (
            (value, ACCENT, "agreement standing per bar"),
            (agree["confidence"], LINE, "confidence standing per bar (weight on the "
                                        "decided side)"),
        ):
            smooth = rolling_mean(series, window)
            i = minmax_indices(smooth)
            ax.plot(_dt(ts[i]), smooth[i], color=colour, lw=1.2,
                    label=f"{label}, trailing mean of {window} bars")
        mean = float((value * n).sum() / n.sum()) if n.sum() else float("nan")
        ax.axhline(mean, color=ACCENT, lw=0.9, ls="--", label=f"mean agreement {mean:.1%}")
        ax.set_ylim(-0.03, 1.3)  # the legend sits above 100 %, clear of the data
        ax.set_yticks(np.linspace(0.0, 1.0, 6))
        ax.yaxis.set_major_formatter(PERCENT)
        ax.legend(loc="upper center", ncol=2, fontsize=7.5)
    ax.set_ylabel("share")
    ax.set_title("Consensus agreement over time")
    _time_axis(ax, eq_ts)
    return _finish(fig, path, _shade(ax, shading), tight=False, regime_of=shading.symbol)


def fig_routing(venues: list[dict[str, Any]], path: Path) -> Path:
    fig, axes = _figure(1, 4)
    if not venues:
        for ax in axes:
            _empty(ax, "no routed orders")
    else:
        names = [v["venue"] for v in venues]
        colours = [palette(k) for k in range(len(names))]
        specs = (("legs_routed", "orders routed (legs)", human),
                 ("notional", "notional filled", human),
                 ("fees", "fees paid", human),
                 ("fee_bps", "fees, bps of notional", lambda v: f"{v:.3g}"))
        for ax, (key, title, label) in zip(axes, specs, strict=True):
            vals = [float(np.nan_to_num(v[key])) for v in venues]
            ax.bar(names, vals, color=colours)
            ax.set_title(title, fontsize=10)
            ax.yaxis.set_major_formatter(HUMAN)
            ax.set_ylim(0, max([*vals, 1e-12]) * 1.15)
            for x, v in enumerate(vals):
                ax.text(x, v, label(v), ha="center", va="bottom", fontsize=8)
            ax.tick_params(axis="x", labelrotation=30 if len(names) > 3 else 0)
    fig.suptitle("Routing by venue", fontweight="bold", fontsize=11)
    return _finish(fig, path)


def fig_risk(con: duckdb.DuckDBPyConnection, run_id: str, eq_ts: np.ndarray,
             shading: Shading, path: Path) -> Path:
    got = con.execute(
        "SELECT epoch_ns(ts) AS t, check_name FROM risk_events WHERE run_id = ? ORDER BY ts",
        [run_id]).fetchnumpy()
    ts = np.asarray(got["t"], np.int64)
    checks = np.asarray(got["check_name"]).astype(str)
    fig, ax = _figure()
    _time_axis(ax, eq_ts)
    ax.set_yticks([])
    if not len(ts):
        _empty(ax, "no risk denials")
    else:
        names = sorted(set(checks.tolist()))
        for y, name in enumerate(names):
            k = np.flatnonzero(checks == name)
            ax.scatter(_dt(ts[k[thin(len(k))]]), np.full(len(k[thin(len(k))]), y),
                       marker="|", s=200, color=SELL, linewidths=1.2, zorder=2)
            # the check's name inside the axes, above its row: never clipped
            ax.text(0.005, y + 0.22, f"{name} ({len(k)})", transform=ax.get_yaxis_transform(),
                    fontsize=8, va="bottom", ha="left", zorder=3,
                    bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1})
        ax.set_ylim(-0.6, len(names) - 0.2)
    ax.set_title(f"Risk denials on a timeline ({len(ts)} in all)")
    return _finish(fig, path, _shade(ax, shading), tight=False, regime_of=shading.symbol)


def fig_compare(curves: list[tuple[str, np.ndarray, np.ndarray]], path: Path) -> Path:
    """Overlaid equity curves: ``(label, days since start, equity / initial)`` each."""
    fig, ax = _figure()
    for k, (label, days, curve) in enumerate(curves):
        i = minmax_indices(curve)
        ax.plot(days[i], curve[i], lw=1.0, color=palette(k), label=label)
    ax.axhline(1.0, color="#9e9e9e", lw=0.8, ls="--")
    ax.set_xlabel("days since start")
    ax.set_ylabel("equity / initial")
    ax.set_title("Equity, normalised to 1.0 at the start")
    ax.legend(loc="best")
    return _finish(fig, path)

