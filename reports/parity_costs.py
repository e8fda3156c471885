"""What a session's fills say about the execution model: implementation shortfall, the
slippage model's error per venue, and venue settings fitted to the live fills
(``reports.parity``'s matched fills: one dict per order filled in both runs)."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import duckdb
import numpy as np

from reports.metrics import implementation_shortfall, shortfall_bps

_SHORTFALL_SQL = """
SELECT o.venue, f.quantity, o.ref_price, f.price FROM fills f
JOIN orders o ON o.run_id = f.run_id AND o.order_id = f.order_id
WHERE f.run_id = ? AND f.liquidity != 'adjustment' AND o.ref_price IS NOT NULL
"""


def shortfall(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, float]:
    """Implementation shortfall against the decision price, as ``quorum report`` computes
    it (``reports.metrics``): cash (positive is a cost, fees excluded) and bps of the
    expected notional (NaN without fills). Adjustment fills (positions adopted from the
    venue) are no execution."""
    got = con.execute(_SHORTFALL_SQL, [run_id]).fetchnumpy()
    q, ref, px = (np.asarray(got[c], np.float64) for c in ("quantity", "ref_price", "price"))
    return {"fills": float(len(q)),
            "shortfall": float(np.sum(implementation_shortfall(q, ref, px))),
            "shortfall_bps": shortfall_bps(q, ref, px)}


def _venue_settings(con: duckdb.DuckDBPyConnection,
                    run_id: str) -> tuple[dict[str, dict[str, Any]], bool]:
    """The run's venues as configured, and whether its model applies latency."""
    row = con.execute("SELECT config FROM runs WHERE run_id = ?", [run_id]).fetchone()
    cfg = json.loads(row[0]) if row is not None else {}
    return ({v["name"]: v for v in cfg.get("venues", [])},
            bool(cfg.get("execution", {}).get("latency", False)))


def slippage_and_calibration(con: duckdb.DuckDBPyConnection, live: str,
                              pairs: list[dict[str, Any]], mode: str
                              ) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                         dict[str, list[float]]]:
    """Per venue: the model's price error on the live fills (bps, positive: live cost
    more), and settings fitted to the live fills.

    Calibration: ``slippage_bps`` is the current setting plus the median over the venue's
    market-order fills of the model's error (live price against the modelled price, in
    bps, positive when live cost more), floored at 0. The model's price grid rounding
    stays the model's; only the fixed slippage moves. The median, not the mean, so one
    fill through a thin book does not set it. ``latency_ms``
    is the mean of the venue's latency (fill time minus sent time), the quantity the
    model's fixed, exponential or lognormal latency takes as its mean; with five or more
    positive samples ``latency_sigma`` is the standard deviation of their logarithm
    (``latency_dist = "lognormal"``)."""
    venues, latency_on = _venue_settings(con, live)
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for p in pairs:
        by[p["venue"]].append(p)
    slippage, calibration = [], []
    errors: dict[str, list[float]] = {}
    for venue in sorted(by):
        ps = by[venue]
        err = np.array([p["side"] * (p["live_price"] / p["model_price"] - 1) * 1e4 for p in ps])
        errors[venue] = err.tolist()
        slippage.append({"venue": venue, "fills": len(ps), "mean_bps": float(err.mean()),
                         "median_bps": float(np.median(err)),
                         "mean_abs_bps": float(np.abs(err).mean()),
                         "rmse_bps": float(np.sqrt((err ** 2).mean()))})
        if mode != "live":
            continue
        setting = venues.get(venue, {})
        market = [e for p, e in zip(ps, err.tolist(), strict=True)
                  if p["order_type"] == "market"]
        current = float(setting.get("slippage_bps") or 0.0)
        lat = [p["live_latency_ms"] for p in ps if p["live_latency_ms"] is not None]
        row: dict[str, Any] = {
            "venue": venue, "fills": len(ps),
            "slippage_bps": setting.get("slippage_bps"),
            "suggested_slippage_bps": round(max(0.0, current + float(np.median(market))), 3)
            if market else None,
            "latency_ms": setting.get("latency_ms") if latency_on else 0.0,
            "suggested_latency_ms": round(float(np.mean(lat)), 3) if lat else None,
        }
        positive = [v for v in lat if v > 0]
        if len(positive) >= 5:
            row["suggested_latency_dist"] = "lognormal"
            row["suggested_latency_sigma"] = round(float(np.std(np.log(positive))), 4)
        calibration.append(row)
    return slippage, calibration, errors
