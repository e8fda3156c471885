"""The figures of a sweep's HTML report (``reports.sweep_report``): a metric against the
swept parameters (a line for one parameter, a heatmap for a pair), the parameter set x
generated regime heatmap, and the walk-forward choices. Every cell and point says how
many runs it pools, for a figure that glues runs together must say so."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from reports.figures import DPI, STYLE

MAX_HEATMAP_VALUES = 15  # a parameter with more distinct values is drawn as points


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and math.isfinite(float(value)):
        return float(value)
    return None


def _tick(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _cell_ink(image: Any, value: float) -> str:
    r, g, b, _ = image.cmap(image.norm(value))
    return "white" if 0.299 * r + 0.587 * g + 0.114 * b < 0.5 else "#212121"


def fig_metric_lines(points: Mapping[str, Sequence[tuple[Any, float, int]]], param: str,
                     metric: str, path: Path) -> Path:
    """``metric`` against ``param``: one line per series (``points``: label -> (value,
    metric, runs pooled)); numbers on a numeric axis, anything else by category."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(7.5, 3.6), dpi=DPI)
        values = sorted({v for pts in points.values() for v, _, _ in pts},
                        key=lambda v: (_number(v) is None, _number(v) or 0.0, str(v)))
        numeric = all(_number(v) is not None for v in values)
        where: dict[Any, float] = {v: (_number(v) or 0.0) if numeric else float(i)
                                   for i, v in enumerate(values)}
        for label, pts in points.items():
            pts = sorted(pts, key=lambda p: where[p[0]])
            xs = [where[v] for v, _, _ in pts]
            ys = [y for _, y, _ in pts]
            ax.plot(xs, ys, marker="o", ms=4, lw=1.4 if label == "all" else 1.0,
                    color="#212121" if label == "all" else None, label=label)
        if not numeric:
            ax.set_xticks(range(len(values)), [_tick(v) for v in values])
        pooled = sorted({n for pts in points.values() for _, _, n in pts})
        ax.set_xlabel(param)
        ax.set_ylabel(metric)
        ax.set_title(f"{metric} against {param} (each point pools "
                     f"{'/'.join(map(str, pooled))} runs)")
        if len(points) > 1:
            ax.legend(fontsize=7, ncol=min(4, len(points)))
        fig.tight_layout()
        fig.savefig(path, dpi=DPI)
        plt.close(fig)
    return path


def fig_heatmap(grid: np.ndarray, counts: np.ndarray, rows: Sequence[str],
                cols: Sequence[str], title: str, path: Path, row_name: str = "",
                col_name: str = "", lower_is_better: bool = False) -> Path:
    """A labelled heatmap; each cell shows its value and the runs it pools."""
    with plt.rc_context({**STYLE, "axes.grid": False}):
        width = max(7.5, 3.5 + 0.9 * len(cols))
        height = max(2.8, 1.2 + 0.38 * len(rows))
        fig, ax = plt.subplots(figsize=(min(width, 18.0), min(height, 30.0)), dpi=DPI)
        shown = np.ma.masked_invalid(grid)
        finite = shown.compressed()
        lim = float(np.abs(finite).max()) if finite.size else 1.0
        cmap = "RdYlGn_r" if lower_is_better else "RdYlGn"
        vmin, vmax = ((float(finite.min()), float(finite.max())) if lower_is_better and
                      finite.size else (-lim or -1.0, lim or 1.0))
        if vmin == vmax:
            vmin, vmax = vmin - 1.0, vmax + 1.0
        image = ax.imshow(shown, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
        for i in range(len(rows)):
            for j in range(len(cols)):
                n = int(counts[i, j])
                if not n:
                    ax.text(j, i, "—", ha="center", va="center", fontsize=7, color="#757575")
                    continue
                v = grid[i, j]
                text = "n/a" if not np.isfinite(v) else f"{v:.3g}"
                ax.text(j, i, f"{text}\n({n} run{'s' if n != 1 else ''})", ha="center",
                        va="center", fontsize=6.5,
                        color="#757575" if not np.isfinite(v) else _cell_ink(image, v))
        ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right")
        ax.set_yticks(range(len(rows)), rows)
        if row_name:
            ax.set_ylabel(row_name)
        if col_name:
            ax.set_xlabel(col_name)
        ax.set_title(title)
        fig.colorbar(image, ax=ax, fraction=0.03, pad=0.02)
        fig.tight_layout()
        fig.savefig(path, dpi=DPI)
        plt.close(fig)
    return path


def fig_walk_forward(windows: Sequence[Mapping[str, Any]], metric: str, path: Path) -> Path:
    """Per market path (regime, seed): the set chosen on each train window (top) and its
    test score (bottom)."""
    paths: dict[str, list[Mapping[str, Any]]] = {}
    for w in windows:
        paths.setdefault(f"{w['regime'] or 'base'} seed {w['seed']}", []).append(w)
    with plt.rc_context(STYLE):
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(9.0, 5.2), dpi=DPI, sharex=True)
        for label, rows in paths.items():
            xs = [int(r["window"]) for r in rows]
            top.step(xs, [int(r["param_set"]) for r in rows], where="mid", label=label, lw=1)
            bottom.plot(xs, [r["test_score"] for r in rows], marker=".", lw=0.8, label=label)
        top.set_ylabel("set chosen (#)")
        top.set_title("Walk-forward: the best set on each train window, then its test")
        bottom.set_ylabel(f"test {metric}")
        bottom.set_xlabel("window")
        if len(paths) <= 12:
            top.legend(fontsize=6.5, ncol=min(4, len(paths)))
        fig.tight_layout()
        fig.savefig(path, dpi=DPI)
        plt.close(fig)
    return path
