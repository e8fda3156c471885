"""Pictures of a run: read from the store, drawn with matplotlib (no display needed)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def plot_equity(con: duckdb.DuckDBPyConnection, run_id: str, path: Path) -> Path:
    """Equity curve with drawdown underneath, fills marked on the curve."""
    eq = con.execute(
        "SELECT ts, equity FROM equity WHERE run_id = ? ORDER BY ts", [run_id]
    ).df()
    fills = con.execute(
        "SELECT f.ts, f.quantity, e.equity FROM fills f JOIN equity e"
        " ON e.run_id = f.run_id AND e.ts = f.ts WHERE f.run_id = ? ORDER BY f.ts",
        [run_id],
    ).df()
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(11, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    top.plot(eq["ts"], eq["equity"], lw=1.0, color="#1f4e79", label="equity")
    buys, sells = fills[fills["quantity"] > 0], fills[fills["quantity"] < 0]
    top.scatter(buys["ts"], buys["equity"], marker="^", s=12, color="#2e7d32", label="buy")
    top.scatter(sells["ts"], sells["equity"], marker="v", s=12, color="#c62828", label="sell")
    top.set_ylabel("equity")
    scenario = con.execute("SELECT scenario FROM runs WHERE run_id = ?", [run_id]).fetchone()
    top.set_title(f"{scenario[0] if scenario else '?'}: run {run_id}")
    top.legend(loc="best", fontsize=8)
    top.grid(alpha=0.3)
    peak = eq["equity"].cummax()
    bottom.fill_between(eq["ts"], eq["equity"] / peak - 1.0, 0.0, color="#c62828", alpha=0.4)
    bottom.set_ylabel("drawdown")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
