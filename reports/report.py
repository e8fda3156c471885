"""``quorum report``: one self-contained HTML file (figures embedded as base64 PNG data URIs,
inline CSS, no script, no external URL) plus the PNGs, all read from the store.

Figures: equity and drawdown; price with entries and exits (per symbol); exposure; per-agent
contribution; consensus agreement; routing by venue; risk denials. Regime labels
(``bars.regime``, colours of ``reports.plots.REGIME_COLOURS``) are shaded behind every
time-series chart: the labels of the *reference symbol* (the first symbol of the run in
alphabetical order) behind run-wide charts, each symbol's own labels behind its price chart.

Long runs are downsampled for plotting only (metrics always use every row): a line keeps,
per bucket of consecutive points, the bucket's minimum and maximum (at most
``MAX_POINTS`` points per line); markers are thinned evenly to ``MAX_MARKERS``; regime
shading takes each bucket's last label over at most ``MAX_SHADE_BUCKETS`` buckets.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.patches import Patch

from reports import metrics as _metrics
from reports.plots import REGIME_COLOURS, UNKNOWN_REGIME_COLOUR
from reports.summary import run_summary

MAX_POINTS = 5_000
MAX_MARKERS = 5_000
MAX_SHADE_BUCKETS = 2_000
MAX_PRICE_CHARTS = 12
FIG_INCHES = (11.0, 5.0)
DPI = 100
FIG_PX = (int(FIG_INCHES[0] * DPI), int(FIG_INCHES[1] * DPI))  # (width, height) of every PNG

STYLE: dict[str, Any] = {
    "font.size": 9,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.labelsize": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.fontsize": 8,
    "legend.framealpha": 0.8,
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "savefig.facecolor": "white",
    "date.converter": "concise",
}
LINE = "#1f4e79"
BUY, SELL, EXIT = "#2e7d32", "#c62828", "#424242"


class ReportError(ValueError):
    """The run cannot be reported (unknown, or has nothing to show)."""


# -- data --------------------------------------------------------------------------------
def check_run(con: duckdb.DuckDBPyConnection, run_id: str) -> None:
    """Raise ``ReportError`` for an unknown run or one without a single equity row."""
    row = con.execute(
        "SELECT (SELECT count(*) FROM runs WHERE run_id = $r),"
        " (SELECT count(*) FROM equity WHERE run_id = $r)", {"r": run_id},
    ).fetchone()
    if not row[0]:
        raise ReportError(f"no run {run_id!r} in the store")
    if not row[1]:
        raise ReportError(f"run {run_id} is empty (no equity rows): nothing to report")


def _initial_cash(con: duckdb.DuckDBPyConnection, run_id: str) -> float:
    config = con.execute("SELECT config FROM runs WHERE run_id = ?", [run_id]).fetchone()[0]
    return float(json.loads(config)["initial_cash"])


def _equity(con: duckdb.DuckDBPyConnection, run_id: str) -> tuple[np.ndarray, np.ndarray]:
    eq = con.execute(
        "SELECT epoch_ns(ts) AS t, equity FROM equity WHERE run_id = ? ORDER BY ts", [run_id]
    ).fetchnumpy()
    return np.asarray(eq["t"], dtype=np.int64), np.asarray(eq["equity"], dtype=np.float64)


def symbols(con: duckdb.DuckDBPyConnection, run_id: str) -> list[str]:
    rows = con.execute(
        "SELECT DISTINCT symbol FROM bars WHERE run_id = ? ORDER BY symbol", [run_id]
    ).fetchall()
    return [r[0] for r in rows]


@dataclass
class Shading:
    """Regime labels as runs of equal labels: ``start[i]..end[i]`` (ns) is ``label[i]``."""

    start: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    end: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    label: np.ndarray = field(default_factory=lambda: np.zeros(0, object))
    share: dict[str, float] = field(default_factory=dict)


def regime_shading(con: duckdb.DuckDBPyConnection, run_id: str, symbol: str | None) -> Shading:
    """Each bucket's last label (buckets of consecutive bars, at most MAX_SHADE_BUCKETS),
    collapsed into runs of equal labels; exact when the symbol has fewer bars than that."""
    if symbol is None:
        return Shading()
    n = con.execute("SELECT count(*) FROM bars WHERE run_id = ? AND symbol = ?",
                    [run_id, symbol]).fetchone()[0]
    if not n:
        return Shading()
    step = max(1, math.ceil(n / MAX_SHADE_BUCKETS))
    rows = con.execute(
        """
        SELECT min(t) AS t0, max(t) AS t1, arg_max(regime, t) AS label
        FROM (SELECT epoch_ns(ts) AS t, coalesce(regime, 'unknown') AS regime,
                     (row_number() OVER (ORDER BY ts) - 1) // $step AS bucket
              FROM bars WHERE run_id = $r AND symbol = $s)
        GROUP BY bucket ORDER BY bucket
        """, {"r": run_id, "s": symbol, "step": step},
    ).fetchnumpy()
    t0 = np.asarray(rows["t0"], np.int64)
    labels = np.asarray(rows["label"]).astype(str)
    share_rows = con.execute(
        "SELECT coalesce(regime, 'unknown'), count(*) FROM bars WHERE run_id = ? AND symbol = ?"
        " GROUP BY ALL", [run_id, symbol]).fetchall()
    share = {name: k / n for name, k in share_rows}
    # a bucket reaches to the start of the next; the last one a median bucket further
    width = int(np.median(np.diff(t0))) if len(t0) > 1 else 1
    ends = np.append(t0[1:], np.asarray(rows["t1"], np.int64)[-1] + max(width // step, 1))
    cut = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    starts = np.concatenate(([0], cut))
    stops = np.concatenate((cut, [len(labels)])) - 1
    return Shading(t0[starts], ends[stops], labels[starts], share)


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


def _dt(ns: np.ndarray) -> np.ndarray:
    return np.asarray(ns, np.int64).astype("datetime64[ns]")


# -- drawing helpers ------------------------------------------------------------------------
def _figure(nrows: int = 1, **kw: Any) -> tuple[Any, Any]:
    return plt.subplots(nrows, 1, figsize=FIG_INCHES, dpi=DPI, **kw)


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


def _regime_legend(fig: Any, handles: list[Patch]) -> None:
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6),
                   fontsize=7, frameon=False, title="regime", title_fontsize=7)


def _finish(fig: Any, path: Path, handles: list[Patch] | None = None,
            tight: bool = True) -> Path:
    """Save at FIG_PX. Time-series charts (``tight=False``) use fixed margins: tight_layout
    draws the whole figure once more, which is a third of the time on long runs."""
    _regime_legend(fig, handles or [])
    if tight:
        fig.tight_layout(rect=(0, 0.07 if handles else 0, 1, 1))
    else:
        fig.subplots_adjust(left=0.075, right=0.985, top=0.93, bottom=0.17 if handles else 0.1,
                            hspace=0.12)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=11,
            color="#616161")


# -- figures --------------------------------------------------------------------------------
def fig_equity(con: duckdb.DuckDBPyConnection, run_id: str, shading: Shading, path: Path) -> Path:
    ts, equity = _equity(con, run_id)
    initial = _initial_cash(con, run_id)
    peak = np.maximum.accumulate(np.concatenate(([initial], equity)))[1:]
    dd = equity / peak - 1.0
    fig, (top, bottom) = _figure(2, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    i = minmax_indices(equity)
    top.plot(_dt(ts[i]), equity[i], lw=1.0, color=LINE, label="equity")
    top.axhline(initial, color="#9e9e9e", lw=0.8, ls="--", label="initial cash")
    top.set_ylabel("equity")
    top.set_title(f"Equity and drawdown: run {run_id}")
    top.legend(loc="upper right")
    j = minmax_indices(dd)
    bottom.fill_between(_dt(ts[j]), dd[j], 0.0, color=SELL, alpha=0.45, linewidth=0)
    bottom.set_ylabel("drawdown")
    bottom.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0, decimals=0))
    handles = _shade(top, shading)
    _shade(bottom, shading)
    return _finish(fig, path, handles, tight=False)


def fig_price(con: duckdb.DuckDBPyConnection, run_id: str, symbol: str, path: Path) -> Path:
    bars = con.execute(
        "SELECT epoch_ns(ts) AS t, close FROM bars WHERE run_id = ? AND symbol = ? ORDER BY ts",
        [run_id, symbol]).fetchnumpy()
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
    ax.plot(_dt(ts[i]), close[i], lw=0.8, color="#212121", label="close")
    for mask, marker, colour, name in (
        (entry & (after > 0), "^", BUY, "long entry"),
        (entry & (after < 0), "v", SELL, "short entry"),
        (~entry, "x", EXIT, "exit / reduce"),
    ):
        k = np.flatnonzero(mask)
        k = k[thin(len(k))]
        ax.scatter(_dt(ft[k]), price[k], marker=marker, s=18, color=colour, zorder=3,
                   label=f"{name} ({int(mask.sum())})", linewidths=1)
    ax.set_ylabel("price")
    ax.set_title(f"{symbol}: price with entries and exits")
    ax.legend(loc="upper right")
    handles = _shade(ax, regime_shading(con, run_id, symbol))
    return _finish(fig, path, handles, tight=False)


_EXPOSURE = """
WITH f AS (
  SELECT symbol, ts, arg_max(position_after, fill_id) AS position
  FROM fills WHERE run_id = $r GROUP BY symbol, ts
), pos AS (
  SELECT b.ts, b.close * coalesce(f.position, 0) AS value
  FROM bars b ASOF LEFT JOIN f ON f.symbol = b.symbol AND b.ts >= f.ts
  WHERE b.run_id = $r
), agg AS (
  SELECT ts, sum(value) AS net, sum(abs(value)) AS gross FROM pos GROUP BY ts
)
SELECT epoch_ns(e.ts) AS t, coalesce(a.net, 0) / e.equity AS net,
       coalesce(a.gross, 0) / e.equity AS gross
FROM equity e LEFT JOIN agg a ON a.ts = e.ts
WHERE e.run_id = $r ORDER BY e.ts
"""


def exposure_series(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, np.ndarray]:
    """Per equity row: net and gross position value (positions from fills, marked at each
    bar's close) over equity."""
    got = con.execute(_EXPOSURE, {"r": run_id}).fetchnumpy()
    return {"ts": np.asarray(got["t"], np.int64), "net": np.asarray(got["net"], np.float64),
            "gross": np.asarray(got["gross"], np.float64)}


def fig_exposure(ex: dict[str, np.ndarray], shading: Shading, path: Path) -> Path:
    fig, ax = _figure()
    for key, colour, label in (("gross", "#6a1b9a", "gross |value| / equity"),
                               ("net", LINE, "net value / equity")):
        i = minmax_indices(ex[key])
        ax.plot(_dt(ex["ts"][i]), ex[key][i], lw=0.9, color=colour, label=label)
    ax.axhline(0.0, color="#9e9e9e", lw=0.8)
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0, decimals=0))
    ax.set_ylabel("exposure")
    ax.set_title("Exposure over time (position value / equity)")
    ax.legend(loc="upper right")
    return _finish(fig, path, _shade(ax, shading), tight=False)


def fig_agents(con: duckdb.DuckDBPyConnection, run_id: str, path: Path) -> Path:
    sig = con.execute(
        "SELECT agent, side, count(*) FROM signals WHERE run_id = ? GROUP BY ALL ORDER BY ALL",
        [run_id]).fetchall()
    votes = con.execute(
        """SELECT v.agent, count(*) FILTER (WHERE v.side <> 'HOLD') AS active,
                  count(*) FILTER (WHERE v.side = d.side AND v.side <> 'HOLD') AS with_outcome
           FROM votes v JOIN decisions d USING (run_id, decision_id)
           WHERE v.run_id = ? GROUP BY v.agent ORDER BY v.agent""", [run_id]).fetchall()
    fig, (left, right) = plt.subplots(1, 2, figsize=FIG_INCHES, dpi=DPI)
    agents = sorted({a for a, _, _ in sig} | {a for a, _, _ in votes})
    if not agents:
        _empty(left, "no signals")
        _empty(right, "no votes")
    else:
        sides = sorted({s for _, s, _ in sig})
        colours = {"LONG": BUY, "SHORT": SELL, "FLAT": "#90a4ae", "HOLD": "#cfd8dc"}
        bottom = np.zeros(len(agents))
        counts = {(a, s): n for a, s, n in sig}
        for side in sides:
            h = np.array([counts.get((a, side), 0) for a in agents], float)
            left.barh(agents, h, left=bottom, color=colours.get(side, "#607d8b"), label=side)
            bottom += h
        left.set_title("Signals per agent (changes, by side)")
        left.set_xlabel("signals")
        left.legend(loc="lower right")
        by_agent = {a: (act, w) for a, act, w in votes}
        active = np.array([by_agent.get(a, (0, 0))[0] for a in agents], float)
        agreed = np.array([by_agent.get(a, (0, 0))[1] for a in agents], float)
        y = np.arange(len(agents))
        right.barh(y, active, color="#b0bec5", label="non-HOLD votes")
        right.barh(y, agreed, color=LINE, label="votes with the outcome (majority)")
        for k, (act, agr) in enumerate(zip(active, agreed, strict=True)):
            if act:
                right.text(act, k, f" {agr / act:.0%}", va="center", fontsize=8)
        right.set_yticks(y, agents)
        right.set_title("Votes in the majority (share of active votes)")
        right.set_xlabel("votes")
        right.legend(loc="lower right")
    return _finish(fig, path)


def fig_consensus(con: duckdb.DuckDBPyConnection, run_id: str, shading: Shading,
                  path: Path) -> Path:
    got = con.execute(
        """SELECT epoch_ns(d.ts) AS t, d.confidence AS confidence,
                  coalesce(sum(v.weight) FILTER (WHERE v.side = d.side)
                           / nullif(sum(v.weight), 0), 0) AS agreement
           FROM decisions d LEFT JOIN votes v USING (run_id, decision_id)
           WHERE d.run_id = ? GROUP BY d.decision_id, d.ts, d.confidence
           ORDER BY d.ts, d.decision_id""", [run_id]).fetchnumpy()
    ts = np.asarray(got["t"], np.int64)
    fig, ax = _figure()
    if not len(ts):
        _empty(ax, "no decisions")
    else:
        conf = np.nan_to_num(np.asarray(got["confidence"], np.float64))
        agree = np.asarray(got["agreement"], np.float64)
        k = thin(len(ts))
        ax.scatter(_dt(ts[k]), conf[k], s=6, color=LINE, alpha=0.5, label="decision confidence")
        window = max(1, len(ts) // 100)
        smooth = np.convolve(agree, np.ones(window) / window, mode="same")
        i = minmax_indices(smooth)
        ax.plot(_dt(ts[i]), smooth[i], color="#ef6c00", lw=1.2,
                label=f"vote weight with the outcome (mean of {window})")
        ax.set_ylim(-0.05, 1.05)
        ax.legend(loc="lower right")
    ax.set_ylabel("confidence / agreement")
    ax.set_title("Consensus agreement over time")
    return _finish(fig, path, _shade(ax, shading), tight=False)


def fig_routing(con: duckdb.DuckDBPyConnection, run_id: str, path: Path) -> Path:
    rows = con.execute(
        """SELECT r.venue, count(*) AS routed,
                  coalesce(sum(abs(f.quantity * f.price)), 0) AS notional,
                  coalesce(sum(f.fee), 0) AS fees
           FROM routing_decisions r
           LEFT JOIN fills f ON f.run_id = r.run_id AND f.order_id = r.order_id
           WHERE r.run_id = ? GROUP BY r.venue ORDER BY r.venue""", [run_id]).fetchall()
    fig, axes = plt.subplots(1, 3, figsize=FIG_INCHES, dpi=DPI)
    if not rows:
        for ax in axes:
            _empty(ax, "no routed orders")
    else:
        venues = [r[0] for r in rows]
        palette = plt.get_cmap("tab10")
        colours = [palette(k % 10) for k in range(len(venues))]
        for ax, col, title in zip(axes, (1, 2, 3),
                                  ("orders routed", "filled notional", "fees paid"), strict=True):
            vals = [r[col] for r in rows]
            ax.bar(venues, vals, color=colours)
            ax.set_title(title)
            for x, v in enumerate(vals):
                ax.text(x, v, f"{v:,.0f}" if col == 1 else f"{v:,.4g}", ha="center",
                        va="bottom", fontsize=8)
    fig.suptitle("Routing by venue", fontweight="bold")
    return _finish(fig, path)


def fig_risk(con: duckdb.DuckDBPyConnection, run_id: str, shading: Shading, path: Path) -> Path:
    got = con.execute(
        "SELECT epoch_ns(ts) AS t, check_name FROM risk_events WHERE run_id = ? ORDER BY ts",
        [run_id]).fetchnumpy()
    ts = np.asarray(got["t"], np.int64)
    checks = np.asarray(got["check_name"]).astype(str)
    fig, ax = _figure()
    eq_ts, _ = _equity(con, run_id)
    ax.set_xlim(_dt(eq_ts[[0, -1]]))
    if not len(ts):
        _empty(ax, "no risk denials")
        ax.set_yticks([])
    else:
        names = sorted(set(checks.tolist()))
        for y, name in enumerate(names):
            k = np.flatnonzero(checks == name)
            n = len(k)
            k = k[thin(n)]
            ax.scatter(_dt(ts[k]), np.full(len(k), y), marker="|", s=200, color=SELL,
                       linewidths=1.2)
        ax.set_yticks(range(len(names)),
                      [f"{n} ({int((checks == n).sum())})" for n in names])
        ax.set_ylim(-0.7, len(names) - 0.3)
    ax.set_title(f"Risk denials on a timeline ({len(ts)} in all)")
    return _finish(fig, path, _shade(ax, shading), tight=False)


# -- metrics --------------------------------------------------------------------------------
def _guarded(name: str, *args: Any) -> Any:
    """``reports.metrics.<name>(*args)``, or None if it is not there (yet) or fails."""
    fn: Callable[..., Any] | None = getattr(_metrics, name, None)
    if fn is None:
        return None
    try:
        return fn(*args)
    except Exception:  # a metric that cannot be computed is left out, not fatal
        return None


def run_metrics(con: duckdb.DuckDBPyConnection, run_id: str,
                ex: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """``run_summary`` plus every further metric ``reports.metrics`` offers (skipped
    gracefully when absent). Always from every row, never downsampled."""
    out = run_summary(con, run_id)
    ts, equity = _equity(con, run_id)
    initial = out["initial_equity"]
    per_year = _metrics.periods_per_year(ts)
    extra: dict[str, Any] = {
        "cagr": _guarded("cagr", equity, initial, per_year),
        "annual_volatility": _guarded("annual_volatility", equity, initial, per_year),
        "sortino": _guarded("sortino_ratio", equity, initial, per_year),
        "calmar": _guarded("calmar_ratio", equity, initial, per_year),
    }
    dur = _guarded("max_drawdown_duration", equity, initial, ts)
    if isinstance(dur, tuple) and len(dur) == 2:
        extra["max_dd_bars"] = int(dur[0])
        extra["max_dd_days"] = round(dur[1] / 86_400e9, 2)
    if ex is None:
        ex = exposure_series(con, run_id)
    extra["time_in_market"] = _guarded("exposure", ex["gross"])
    extra["mean_gross_exposure"] = float(np.mean(ex["gross"])) if len(ex["gross"]) else None
    fills = con.execute(
        "SELECT epoch_ns(ts) AS ts, symbol, quantity, price, fee FROM fills WHERE run_id = ?"
        " ORDER BY ts, fill_id", [run_id]).fetchnumpy()
    fills = {k: np.asarray(v) for k, v in fills.items()}
    extra["turnover"] = _guarded("turnover", fills["quantity"], fills["price"], equity)
    trips = _guarded("round_trips", fills)
    if isinstance(trips, dict) and "pnl" in trips:
        pnl = trips["pnl"]
        extra["round_trips"] = len(pnl)
        extra["win_rate"] = _guarded("win_rate", pnl)
        extra["profit_factor"] = _guarded("profit_factor", pnl)
        extra["average_trade"] = _guarded("average_trade", pnl)
        if "entry_notional" in trips:
            extra["expectancy"] = _guarded("expectancy", pnl, trips["entry_notional"])
    out.update({k: v for k, v in extra.items() if v is not None})
    return out


def fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:,.6g}" if abs(value) < 1e6 else f"{value:,.2f}"
    if isinstance(value, (int, np.integer)):
        return f"{value:,}"
    return str(value)


# -- the report -----------------------------------------------------------------------------
@dataclass
class Report:
    html: Path
    pngs: list[Path]
    metrics: dict[str, Any]


_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1150px; color: #212121; }
h1 { font-size: 1.5em; margin-bottom: .2em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
p.note { color: #616161; font-size: .9em; }
table.metrics { border-collapse: collapse; font-size: .9em; }
table.metrics td, table.metrics th { border-bottom: 1px solid #e0e0e0; padding: .25em .8em;
       text-align: right; } table.metrics td:first-child { text-align: left; }
div.grid { display: grid; grid-template-columns: repeat(3, auto); gap: 0 2em; }
img { max-width: 100%; border: 1px solid #eeeeee; }
"""


def _metrics_table(metrics: dict[str, Any]) -> str:
    cells = [f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(fmt(v))}</td></tr>"
             for k, v in metrics.items()]
    per = math.ceil(len(cells) / 3)
    cols = ["<table class=\"metrics\">" + "".join(cells[i:i + per]) + "</table>"
            for i in range(0, len(cells), per)]
    return "<div class=\"grid\">" + "".join(cols) + "</div>"


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def write_report(con: duckdb.DuckDBPyConnection, run_id: str, out: Path) -> Report:
    """Write ``report_<run_id>.html`` and one PNG per figure into ``out``."""
    check_run(con, run_id)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    syms = symbols(con, run_id)
    reference = syms[0] if syms else None
    shading = regime_shading(con, run_id, reference)
    ex = exposure_series(con, run_id)
    metrics = run_metrics(con, run_id, ex)
    sections: list[tuple[str, Path, str]] = []
    with plt.rc_context(STYLE):
        sections.append(("Equity and drawdown", fig_equity(con, run_id, shading,
                                                           out / "equity_drawdown.png"),
                         "Equity per bar; drawdown from the running peak (initial cash counts "
                         "as the first peak)."))
        for sym in syms[:MAX_PRICE_CHARTS]:
            sections.append((f"Price: {sym}",
                             fig_price(con, run_id, sym, out / f"price_{_safe(sym)}.png"),
                             "Close; triangles open or add to a position, crosses reduce or "
                             "close it. Shading: this symbol's regime labels."))
        sections.append(("Exposure", fig_exposure(ex, shading, out / "exposure.png"),
                         "Position (from fills) marked at each bar's close, over equity."))
        sections.append(("Agents", fig_agents(con, run_id, out / "agents.png"),
                         "Signals are changes of an agent's signal; a vote is in the majority "
                         "when its side is the decision's side."))
        sections.append(("Consensus", fig_consensus(con, run_id, shading,
                                                    out / "consensus.png"),
                         "Each decision's confidence, and the share of vote weight on the "
                         "decided side (rolling mean)."))
        sections.append(("Routing", fig_routing(con, run_id, out / "routing.png"),
                         "Orders routed to each venue, with the notional filled and fees."))
        sections.append(("Risk", fig_risk(con, run_id, shading, out / "risk.png"),
                         "One tick per denied order, by the check that denied it."))
    scenario = metrics.get("scenario", "")
    more = "" if len(syms) <= MAX_PRICE_CHARTS else \
        f" Price charts for the first {MAX_PRICE_CHARTS} of {len(syms)} symbols."
    body = [
        "<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>Quorum report: {html.escape(str(scenario))} {html.escape(run_id)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Quorum report: {html.escape(str(scenario))}</h1>",
        f"<p class=\"note\">run {html.escape(run_id)}. Regime shading behind run-wide charts: "
        f"labels of {html.escape(str(reference))} (first symbol alphabetically). Charts of long "
        f"runs are downsampled (per-bucket min/max, at most {MAX_POINTS:,} points per line); "
        f"the metrics use every row.{more}</p>",
        "<h2>Metrics</h2>", _metrics_table(metrics),
    ]
    for title, path, note in sections:
        body += [f"<h2>{html.escape(title)}</h2>", f"<p class=\"note\">{html.escape(note)}</p>",
                 _img(path)]
    body.append("</body></html>")
    page = out / f"report_{_safe(run_id)}.html"
    page.write_text("\n".join(body) + "\n", encoding="utf-8")
    return Report(page, [p for _, p, _ in sections], metrics)


# -- compare --------------------------------------------------------------------------------
def compare_runs(con: duckdb.DuckDBPyConnection, run_ids: Sequence[str],
                 out: Path) -> tuple[list[dict[str, Any]], Path]:
    """Metrics of each run (one dict per run) and an overlaid equity PNG, each curve
    divided by its run's initial cash (1.0 at the start), against days since its start."""
    for run_id in run_ids:
        check_run(con, run_id)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = [run_metrics(con, r) for r in run_ids]
    with plt.rc_context(STYLE):
        fig, ax = _figure()
        palette = plt.get_cmap("tab10")
        for k, (run_id, m) in enumerate(zip(run_ids, rows, strict=True)):
            ts, equity = _equity(con, run_id)
            curve = np.concatenate(([1.0], equity / m["initial_equity"]))
            days = np.concatenate(([0.0], (ts - ts[0]) / 86_400e9))
            if len(ts) > 1:  # the start is one bar before the first bar closes
                days[1:] += float(np.median(np.diff(ts))) / 86_400e9
            i = minmax_indices(curve)
            ax.plot(days[i], curve[i], lw=1.0, color=palette(k % 10),
                    label=f"{m['scenario']} {run_id} ({m['total_return']:+.1%})")
        ax.axhline(1.0, color="#9e9e9e", lw=0.8, ls="--")
        ax.set_xlabel("days since start")
        ax.set_ylabel("equity / initial")
        ax.set_title("Equity, normalised to 1.0 at the start")
        ax.legend(loc="best")
        path = _finish(fig, out / "compare_equity.png")
    return rows, path
