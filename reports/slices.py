"""A run's numbers sliced per agent, per venue, per regime label and per risk check.

Each table is a list of dicts (one per row, the same keys in every row), computed from the
stored tables with the definitions of ``reports.metrics``; nothing is downsampled.

* **Per regime** (``regime_table``): every equity row belongs to the causal regime label
  (``bars.regime``) of the *reference symbol* (``RunData.reference``: the first by name)
  at its timestamp, and so does every fill, denial and bar of agreement at that time. A
  bar's return ``equity[t] / equity[t-1] - 1`` (the first from the initial cash) goes to
  that bar's label; a slice's statistics are those of its returns glued end to end.
* **Per venue** (``venue_table``): fills, traded notional, fees, slippage against the
  order's reference price and routing time, per venue that filled or was routed to.
* **Per agent** (``agent_table``): the engine's ``agent_performance`` rows summed over
  symbols (signals, hit rate, votes in the majority or overruled, shadow PnL), and the
  statistics of each agent's *shadow* series, rebuilt here from its signals and the bars
  (``shadow_increments``): the agent trading its own signals alone, one unit of notional
  per symbol, no fees, as ``sim.performance`` defines it.
* **Per risk check** (``denials_table``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from reports import data
from reports.metrics import (
    compounded_return,
    exposure,
    pnl_max_drawdown,
    profit_factor,
    returns_max_drawdown,
    returns_sharpe,
    returns_sortino,
    returns_volatility,
    shortfall_bps,
    win_rate,
)
from reports.plots import REGIME_COLOURS


def _ordered(codes: np.ndarray, names: list[str]) -> list[int]:
    """Codes of the labels that occur, in the order of ``REGIME_COLOURS``, then by name."""
    present = set(np.unique(codes).tolist())
    known = [names.index(n) for n in REGIME_COLOURS if n in names]
    rest = sorted((i for i in range(len(names)) if i not in known), key=lambda i: names[i])
    return [k for k in known + rest if k in present]


# -- per regime -----------------------------------------------------------------------------
def slice_stats(returns: np.ndarray, per_year: float) -> dict[str, float]:
    """The return and risk statistics of one slice of per-bar returns."""
    return {"return": compounded_return(returns) if len(returns) else float("nan"),
            "volatility": returns_volatility(returns, per_year),
            "sharpe": returns_sharpe(returns, per_year),
            "sortino": returns_sortino(returns, per_year),
            "max_drawdown": returns_max_drawdown(returns)}


def regime_returns(run: data.RunData) -> dict[str, np.ndarray]:
    """Per regime label of the reference symbol: the returns of the equity rows that
    carry it, in time order (``{label: returns}``, labels in ``REGIME_COLOURS`` order)."""
    codes, names = run.regimes
    return {names[k]: run.returns[codes == k] for k in _ordered(codes, names)}


def regime_table(run: data.RunData) -> list[dict[str, Any]]:
    """One row per regime label of the reference symbol (see the module docstring)."""
    codes, names = run.regimes
    f = run.fills
    fill_codes = run.label_at(f["ts"])
    notional = np.abs(f["quantity"] * f["price"])
    trips = run.trips
    trip_codes = run.label_at(trips["entry_ts"])
    denial_ts = run.con.execute("SELECT epoch_ns(ts) AS t FROM risk_events WHERE run_id = ?",
                                [run.run_id]).fetchnumpy()["t"]
    denial_codes = run.label_at(np.asarray(denial_ts, np.int64))
    agree = run.agreement
    agree_codes = run.label_at(agree["ts"])
    gross = run.exposure["gross"]
    rows = []
    for k in _ordered(codes, names):
        m = codes == k
        fm, tm, am = fill_codes == k, trip_codes == k, agree_codes == k
        n_agree = agree["n"][am].sum()
        rows.append({
            "regime": names[k], "bars": int(m.sum()), "share": float(m.mean()),
            **slice_stats(run.returns[m], run.per_year),
            "time_in_market": exposure(gross[m]),
            "fills": int(fm.sum()), "notional": float(notional[fm].sum()),
            "fees": float(f["fee"][fm].sum()),
            "trades_opened": int(tm.sum()), "win_rate": win_rate(trips["pnl"][tm]),
            "denials": int((denial_codes == k).sum()),
            "mean_agreement": float((agree["agreement"][am] * agree["n"][am]).sum() / n_agree)
            if n_agree else float("nan"),
        })
    return rows


# -- per venue ------------------------------------------------------------------------------
_ROUTED = """
SELECT venue, count(*) AS legs, avg(elapsed_ns) / 1e3 AS mean_route_us
FROM routing_decisions WHERE run_id = ? GROUP BY venue
"""


def venue_table(run: data.RunData) -> list[dict[str, Any]]:
    """One row per venue that was routed to or filled: routing legs, fills, traded
    notional (``sum |q| * price``) and its share, fees and fees in bps of that notional,
    slippage in bps against the order's reference price (``reports.metrics.shortfall_bps``
    with the reference price as the expected one: positive is a cost), turnover
    (notional over the run's mean equity) and the mean time the router took (µs)."""
    f = run.fills
    routed = {v: (n, us) for v, n, us in run.con.execute(_ROUTED, [run.run_id]).fetchall()}
    mean_equity = float(np.mean(run.equity))
    venues = np.asarray(f["venue"]).astype(str)
    notional = np.abs(f["quantity"] * f["price"])
    total = float(notional.sum())
    rows = []
    for name in sorted(set(venues.tolist()) | set(routed)):
        m = venues == name
        n_legs, route_us = routed.get(name, (0, float("nan")))
        traded = float(notional[m].sum())
        fees = float(f["fee"][m].sum())
        rows.append({
            "venue": name, "legs_routed": int(n_legs), "fills": int(m.sum()),
            "notional": traded, "notional_share": traded / total if total else float("nan"),
            "fees": fees, "fee_bps": 1e4 * fees / traded if traded else float("nan"),
            "slippage_bps": shortfall_bps(f["quantity"][m], f["ref_price"][m], f["price"][m]),
            "turnover": traded / mean_equity if mean_equity else float("nan"),
            "mean_route_us": float(route_us) if route_us is not None else float("nan"),
        })
    return rows


# -- per agent ------------------------------------------------------------------------------
def shadow_increments(bar_ts: np.ndarray, opens: np.ndarray, closes: np.ndarray,
                      signal_ts: np.ndarray, sides: np.ndarray) -> np.ndarray:
    """Per bar, the change of one agent's shadow PnL on one symbol (fraction of a unit
    notional), marked at each bar's close.

    As ``sim.performance``: every signal starts an episode (a repeated side too); a LONG
    (SHORT) episode is +1 (-1) unit of notional entered at the open of the bar after the
    signal's bar and left at the open after the bar of the next signal, or at the last
    close; FLAT and HOLD hold nothing. While an episode entered at ``E`` is held, its
    value moves by ``side * (price change) / E``: over bar ``k`` from its open to its
    close, and over the gap from the previous close to this open for the episode held
    before the open. The increments of an episode sum to ``side * (exit / E - 1)``, so
    each (agent, symbol)'s increments sum to its stored ``shadow_pnl`` (up to rounding).
    ``sides`` are +1, -1 or 0; signals must be on bars of ``bar_ts`` and in time order."""
    n = len(bar_ts)
    out = np.zeros(n)
    if n < 2 or not len(signal_ts):
        return out
    at = np.searchsorted(bar_ts, signal_ts)
    if np.any(at >= n) or np.any(bar_ts[np.minimum(at, n - 1)] != signal_ts):
        raise ValueError("shadow_increments: a signal is not on a bar of its symbol")
    # the episode standing at the close of bar j: the latest signal at or before j
    ep = np.searchsorted(at, np.arange(n), side="right") - 1
    side = np.where(ep >= 0, np.asarray(sides, np.float64)[np.maximum(ep, 0)], 0.0)
    entry_bar = np.minimum(at[np.maximum(ep, 0)] + 1, n - 1)
    entry = opens[entry_bar]
    # bar k's own move belongs to the episode standing at close k-1 ...
    out[1:] = side[:-1] * (closes[1:] - opens[1:]) / entry[:-1]
    # ... the gap close k-1 -> open k to the one standing at close k-2 (held over bar k-1)
    out[2:] += side[:-2] * (opens[2:] - closes[1:-1]) / entry[:-2]
    return out


def shadow_episodes(bar_ts: np.ndarray, opens: np.ndarray, closes: np.ndarray,
                    signal_ts: np.ndarray, sides: np.ndarray) -> np.ndarray:
    """Each directional episode's return ``side * (exit / entry - 1)`` (entered ones
    only: a signal on the last bar never enters)."""
    n = len(bar_ts)
    at = np.searchsorted(bar_ts, signal_ts)
    sides = np.asarray(sides, np.float64)
    keep = (sides != 0.0) & (at + 1 <= n - 1)
    if not n or not len(at):
        return np.zeros(0)
    nxt = np.append(at[1:], n)  # the bar of the replacing signal, or past the end
    # left at the open after the replacing bar, or at the last close if there is none
    exits = np.where(nxt + 1 <= n - 1, opens[np.minimum(nxt + 1, n - 1)], closes[-1])
    entry = opens[np.minimum(at + 1, n - 1)]
    return (sides * (exits / entry - 1.0))[keep]


_PERFORMANCE = """
SELECT agent, sum(signals) AS signals, sum(scored) AS scored, sum(hits) AS hits,
       sum(shadow_pnl) AS stored_shadow_pnl, sum(votes) AS votes,
       sum(in_majority) AS in_majority, sum(overruled) AS overruled,
       avg(weight) AS mean_weight
FROM agent_performance WHERE run_id = ? GROUP BY agent ORDER BY agent
"""


_SIGNALS = """
SELECT dense_rank() OVER (ORDER BY symbol, agent) - 1 AS grp, symbol, agent,
       epoch_ns(ts) AS t, CASE side WHEN 'LONG' THEN 1 WHEN 'SHORT' THEN -1 ELSE 0 END AS side
FROM signals WHERE run_id = ? ORDER BY symbol, agent, ts
"""


def agent_shadow(run: data.RunData) -> dict[str, Any]:
    """Per agent: ``increments`` on the equity timeline (summed over its symbols),
    ``episodes`` (returns), ``held`` and ``bars`` (symbol-bars in a position, and all its
    symbol-bars) and ``per_symbol`` sums; plus ``ts``, the equity timeline."""
    eq_ts = run.ts
    sig = run.con.execute(_SIGNALS, [run.run_id]).fetchnumpy()
    group = np.asarray(sig["grp"], np.int64)
    sig_ts = np.asarray(sig["t"], np.int64)
    sig_side = np.asarray(sig["side"], np.float64)
    starts = np.flatnonzero(np.diff(group, prepend=-1))  # first row of each (symbol, agent)
    ends = np.append(starts[1:], len(group))[:len(starts)]  # none without signals
    out: dict[str, Any] = {"ts": eq_ts, "agents": {}}
    for first, stop in zip(starts, ends, strict=True):
        symbol, agent = str(sig["symbol"][first]), str(sig["agent"][first])
        b = run.bars[symbol]
        bt, o, c = b["ts"], b["open"], b["close"]
        t, side = sig_ts[first:stop], sig_side[first:stop]
        inc = shadow_increments(bt, o, c, t, side)
        a = out["agents"].setdefault(agent, {
            "increments": np.zeros(len(eq_ts)), "episodes": [], "held": 0, "bars": 0,
            "per_symbol": {}})
        a["increments"] += np.bincount(np.searchsorted(eq_ts, bt), weights=inc,
                                       minlength=len(eq_ts))
        a["episodes"].append(shadow_episodes(bt, o, c, t, side))
        ep = np.searchsorted(np.searchsorted(bt, t), np.arange(len(bt)), side="right") - 1
        held_side = np.where(ep >= 0, side[np.maximum(ep, 0)], 0.0)
        a["held"] += int(np.count_nonzero(held_side[:-1]))  # held over the next bar
        a["bars"] += len(bt)
        a["per_symbol"][symbol] = float(inc.sum())
    out["agents"] = dict(sorted(out["agents"].items()))
    for a in out["agents"].values():
        a["episodes"] = np.concatenate(a["episodes"]) if a["episodes"] else np.zeros(0)
    return out


def agent_table(run: data.RunData,
                shadow: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One row per agent: the engine's ``agent_performance`` summed over symbols
    (``hit_rate = hits / scored``; ``majority_share = in_majority / (in_majority +
    overruled)``; ``mean_weight``: its final consensus weight, averaged over symbols) and
    its shadow statistics: ``shadow_pnl`` (sum of the increments, in units of notional),
    ``shadow_sharpe`` (of the per-bar increments, annualised by the bar spacing),
    ``shadow_max_drawdown`` (of their running sum, in units of notional), ``episodes``,
    ``episode_win_rate``, ``episode_profit_factor``, ``mean_episode_return`` and
    ``time_in_market`` (share of its symbol-bars with a position)."""
    shadow = shadow if shadow is not None else agent_shadow(run)
    rel = run.con.execute(_PERFORMANCE, [run.run_id])
    names = [d[0] for d in rel.description]
    perf = {r[0]: dict(zip(names, r, strict=True)) for r in rel.fetchall()}
    rows = []
    for agent in sorted(set(perf) | set(shadow["agents"])):
        p = perf.get(agent, {})
        s = shadow["agents"].get(agent)
        inc = s["increments"] if s else np.zeros(0)
        episodes = s["episodes"] if s else np.zeros(0)
        scored, majority, overruled = (int(p.get(k) or 0)
                                       for k in ("scored", "in_majority", "overruled"))
        rows.append({
            "agent": agent, "signals": int(p.get("signals") or 0),
            "hit_rate": int(p.get("hits") or 0) / scored if scored else float("nan"),
            "votes": int(p.get("votes") or 0), "in_majority": majority,
            "overruled": overruled,
            "majority_share": majority / (majority + overruled)
            if majority + overruled else float("nan"),
            "mean_weight": float(p["mean_weight"]) if p.get("mean_weight") is not None
            else float("nan"),
            "shadow_pnl": float(inc.sum()),
            "shadow_sharpe": returns_sharpe(inc, run.per_year),
            "shadow_max_drawdown": pnl_max_drawdown(inc),
            "episodes": len(episodes), "episode_win_rate": win_rate(episodes),
            "episode_profit_factor": profit_factor(episodes),
            "mean_episode_return": float(np.mean(episodes)) if len(episodes)
            else float("nan"),
            "time_in_market": s["held"] / s["bars"] if s and s["bars"] else float("nan"),
        })
    return rows


# -- per risk check -------------------------------------------------------------------------
_DENIALS = """
SELECT check_name, count(*) AS denials, count(DISTINCT symbol) AS symbols,
       strftime(min(ts), '%Y-%m-%d %H:%M') AS first, strftime(max(ts), '%Y-%m-%d %H:%M') AS last,
       any_value(reason ORDER BY ts) AS example
FROM risk_events WHERE run_id = ? GROUP BY check_name ORDER BY denials DESC, check_name
"""


def denials_table(run: data.RunData) -> list[dict[str, Any]]:
    """Denied orders per risk check: how many, on how many symbols, first and last (UTC)
    and the first reason given."""
    rel = run.con.execute(_DENIALS, [run.run_id])
    names = [d[0] for d in rel.description]
    return [dict(zip(names, r, strict=True)) for r in rel.fetchall()]
