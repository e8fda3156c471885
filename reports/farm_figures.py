"""The per-farm equity chart of a farm run's report (``reports.farms`` computes it)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from reports import figures


def fig_farm_equity(curves: list[tuple[str, np.ndarray, np.ndarray]],
                    account: tuple[np.ndarray, np.ndarray], path: Path) -> Path:
    """Top: each farm's equity over its starting capital, net of capital transfers, with
    the account's equity over its initial cash (dashed). Bottom: each farm's drawdown
    from its running peak."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=figures.FIG_INCHES, sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1]})
    for k, (name, ts, curve) in enumerate(curves):
        i = figures.minmax_indices(curve)
        top.plot(ts[i].astype("datetime64[ns]"), curve[i], lw=1.0,
                 color=figures.palette(k), label=name)
        peak = np.maximum.accumulate(np.concatenate(([1.0], curve)))[1:]
        dd = curve / peak - 1.0
        j = figures.minmax_indices(dd)
        bottom.plot(ts[j].astype("datetime64[ns]"), dd[j], lw=0.8, color=figures.palette(k))
    ts, curve = account
    if len(ts):
        i = figures.minmax_indices(curve)
        top.plot(ts[i].astype("datetime64[ns]"), curve[i], lw=1.0, ls="--",
                 color="#616161", label="account")
    top.axhline(1.0, color="#9e9e9e", lw=0.8, ls=":")
    top.set_ylabel("equity / starting capital")
    top.set_title("Equity per farm (net of capital transfers)")
    top.legend(loc="upper left")
    bottom.set_ylabel("drawdown")
    bottom.yaxis.set_major_formatter(figures.PERCENT)
    fig.subplots_adjust(left=0.075, right=0.985, top=0.92, bottom=0.1, hspace=0.12)
    fig.savefig(path, dpi=figures.DPI)
    plt.close(fig)
    return path
