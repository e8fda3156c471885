"""Regime matrix: how each configuration did in each regime, from several stored runs.

Slicing is ``reports.slices.regime_returns``: every bar's equity return ``equity[t] /
equity[t-1] - 1`` (the first from the initial cash) is attributed to the causal regime
label (``bars.regime``) of the run's *reference symbol* (its first symbol in alphabetical
order) at that bar's timestamp, taken as of the latest bar of that symbol at or before it.
Per (row, label) the returns of every matching bar, pooled over the row's runs in run
order, give (``reports.slices.slice_stats``)

* ``return``: compounded, ``prod(1 + r) - 1``;
* ``sharpe``: ``mean(r) / std(r) * sqrt(periods per year)`` (the median bar spacing of the
  row's runs; NaN with fewer than 2 bars or zero spread);
* ``max_drawdown``: the largest fall of the compounded path of those returns, concatenated
  (segments are glued end to end, so time out of the regime is skipped);
* ``bars``: how many bars carried the label;
* ``runs``: how many of the row's runs had such bars (``row_runs``: the row's runs), so a
  cell pooled from one run of twelve says so.

Rows are runs grouped by ``by``: ``"scenario"`` (the scenario name), ``"config"`` (the
agents with their kinds and params, consensus, policy and risk: the same configuration run
in different regimes shares a row; ``config_label``), or ``"run"``; or given per run id by
``row_labels`` (e.g. a sweep's parameter sets).
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from reports.data import RunData
from reports.figures import DPI, STYLE
from reports.plots import REGIME_COLOURS
from reports.slices import regime_returns, slice_stats

STATS = ("sharpe", "return", "max_drawdown")
MIN_COLOURED_BARS = 30  # a cell with fewer bars keeps its number but gets no colour
SHARPE_COLOUR_LIMIT = 5.0
GROUPINGS = ("scenario", "config", "run")

def _row_label(run: RunData, by: str) -> str:
    if by == "run":
        return f"{run.scenario} {run.run_id}"
    if by == "scenario":
        return run.scenario
    return config_label(run.config)


def config_label(cfg: Mapping[str, Any]) -> str:
    """``sma+zscore / confidence_weighted [1a2b3c]``: the agents and consensus method, and a
    hash of what makes the configuration: each agent's kind and params, the consensus,
    policy and risk. Not the data, the agents' symbols or the venues (a suite run points
    them at its regime's symbols), so one configuration meets every regime in one row."""
    agents = sorted(cfg.get("agents", []), key=lambda a: str(a.get("name")))
    names = "+".join(str(a.get("name")) for a in agents)
    method = cfg.get("consensus", {}).get("method", "?")
    what = {k: cfg.get(k) for k in ("policy", "risk", "consensus")}
    what["agents"] = [{k: a.get(k) for k in ("name", "kind", "params")} for a in agents]
    digest = hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:6]
    return f"{names} / {method} [{digest}]"


def regime_matrix(con: duckdb.DuckDBPyConnection, run_ids: Sequence[str],
                  by: str = "scenario", row_labels: Mapping[str, str] | None = None,
                  ) -> dict[str, Any]:
    """``{"rows": [...], "labels": [...], "row_runs": [...], "sharpe"|"return"|
    "max_drawdown"|"bars"|"runs": 2-D arrays rows x labels}`` (NaN, or 0 bars and runs,
    where a row never saw a label)."""
    if by not in GROUPINGS:
        raise ValueError(f"by must be one of {GROUPINGS}, got {by!r}")
    runs = RunData.many(con, run_ids)  # every run's rows in a few queries
    pooled: dict[str, dict[str, list[np.ndarray]]] = {}
    per_year: dict[str, list[float]] = {}
    for run_id in run_ids:
        run = runs[run_id]
        row = row_labels[run_id] if row_labels is not None else _row_label(run, by)
        per_year.setdefault(row, []).append(run.per_year)
        cells = pooled.setdefault(row, {})
        for name, returns in regime_returns(run).items():
            if len(returns):
                cells.setdefault(name, []).append(returns)
    known = [n for n in REGIME_COLOURS if any(n in c for c in pooled.values())]
    other = sorted({n for c in pooled.values() for n in c} - set(known))
    labels_all = known + other
    rows = list(pooled)
    out: dict[str, Any] = {"rows": rows, "labels": labels_all,
                           "row_runs": [len(per_year[row]) for row in rows]}
    for stat in (*STATS, "bars", "runs"):
        out[stat] = np.full((len(rows), len(labels_all)), np.nan)
    for i, row in enumerate(rows):
        ppy = float(np.nanmedian(per_year[row])) if per_year[row] else float("nan")
        for j, name in enumerate(labels_all):
            parts = pooled[row].get(name)
            r = np.concatenate(parts) if parts else np.zeros(0)
            out["bars"][i, j] = len(r)
            out["runs"][i, j] = len(parts or ())
            if not len(r):
                continue
            stats = slice_stats(r, ppy)
            for stat in STATS:
                out[stat][i, j] = stats[stat]
    return out


def _ink(image: Any, value: Any, faint: bool) -> str:
    """Text colour on a heatmap cell: white on dark colours, grey on uncoloured cells."""
    if faint or np.ma.is_masked(value):
        return "#757575"
    r, g, b, _ = image.cmap(image.norm(float(value)))
    return "white" if 0.299 * r + 0.587 * g + 0.114 * b < 0.5 else "#212121"


def write_regime_matrix(con: duckdb.DuckDBPyConnection, run_ids: Sequence[str], out: Path,
                        by: str = "scenario", row_labels: Mapping[str, str] | None = None,
                        ) -> tuple[Path, Path]:
    """``regime_matrix.png`` (three heatmaps) and ``regime_matrix.csv`` in ``out``."""
    m = regime_matrix(con, run_ids, by, row_labels)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "regime_matrix.csv"
    with csv_path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["row", "regime", "bars", *STATS, "runs", "row_runs"])
        for i, row in enumerate(m["rows"]):
            for j, name in enumerate(m["labels"]):
                if m["bars"][i, j]:
                    w.writerow([row, name, int(m["bars"][i, j]),
                                *(f"{m[s][i, j]:.6g}" for s in STATS),
                                int(m["runs"][i, j]), m["row_runs"][i]])
    rows, labels = m["rows"], m["labels"]
    height = max(3.5, 1.2 + 0.45 * len(rows))
    with plt.rc_context({**STYLE, "axes.grid": False}):
        fig, axes = plt.subplots(1, 3, figsize=(max(11.0, 3.2 * len(labels)), height), dpi=DPI,
                                 sharey=True)
        specs = (("sharpe", "Sharpe", "RdYlGn"), ("return", "return", "RdYlGn"),
                 ("max_drawdown", "max drawdown", "Reds"))
        few = m["bars"] < MIN_COLOURED_BARS  # too few bars to mean much: not coloured
        for ax, (key, title, cmap) in zip(axes, specs, strict=True):
            data = m[key]
            shown = np.ma.masked_where(few | ~np.isfinite(data), data)
            finite = shown.compressed()
            if key == "max_drawdown":
                vmin, vmax = 0.0, float(finite.max()) if finite.size else 1.0
            else:
                lim = float(np.abs(finite).max()) if finite.size else 1.0
                if key == "sharpe":  # beyond +-5 colours saturate: short slices run wild
                    lim = min(lim, SHARPE_COLOUR_LIMIT)
                vmin, vmax = -lim or -1.0, lim or 1.0
            image = ax.imshow(shown, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
            for i in range(len(rows)):
                for j in range(len(labels)):
                    v, n = data[i, j], int(m["bars"][i, j])
                    text = "—" if not n else ("n/a" if not np.isfinite(v) else
                                              (f"{v:.2f}" if key == "sharpe" else f"{v:.1%}"))
                    k, total = int(m["runs"][i, j]), m["row_runs"][i]
                    rests = f"({n})" if total == 1 else f"({n} · {k}/{total} runs)"
                    ax.text(j, i, f"{text}\n{rests}" if n else text, ha="center",
                            va="center", fontsize=7,
                            color=_ink(image, shown[i, j], few[i, j]))
            ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
            ax.set_yticks(range(len(rows)), rows)
            ax.set_title(title)
        rows_are = by if row_labels is None else "parameter set"
        fig.suptitle(f"Regime matrix ({rows_are} x causal regime of the first symbol; cell: value "
                     f"(bars · runs); under {MIN_COLOURED_BARS} bars not coloured)",
                     fontweight="bold")
        fig.tight_layout()
        png = out / "regime_matrix.png"
        fig.savefig(png, dpi=DPI)
        plt.close(fig)
    return png, csv_path
