"""The parity report as a page and as lines: ``quorum parity``'s HTML and terminal summary.

Same conventions as ``quorum report`` (``reports.report``): one self-contained HTML file
(figures as base64 PNG data URIs, inline CSS, no script, no external URL) with the PNGs
beside it. Sections: the verdict and counts per stage and cause; every unexplained
divergence, then the explained ones; the equity curves overlaid with their difference;
implementation shortfall live against modelled; the slippage model's error per venue
(with a figure per fill); the suggested calibration and how it is computed.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from reports import figures
from reports.parity import CAUSES, STAGES, Divergence, Parity
from reports.report import _CSS, _img, _safe, _table_html

MAX_ROWS = 500  # divergences listed per group in the page (all are counted)


@dataclass
class ParityReport:
    html: Path
    pngs: list[Path]


def _ts(ns: int) -> str:
    return np.datetime_as_string(np.datetime64(int(ns), "ns"), unit="ms") + "Z"


def divergence_rows(items: list[Divergence]) -> list[dict[str, Any]]:
    return [{"time": _ts(d.ts), "stage": d.stage,
             "symbol": d.symbol, "row": d.key, "field": d.field, "live": d.live,
             "model": d.model, "cause": d.cause, "detail": d.detail} for d in items]


def counts_rows(p: Parity) -> list[dict[str, Any]]:
    causes = [c for c in CAUSES if any(c in p.counts[s] for s in STAGES)]
    return [{"stage": s, **{c: p.counts[s].get(c, 0) for c in causes},
             "total": sum(p.counts[s].values())} for s in STAGES]


def shortfall_rows(p: Parity) -> list[dict[str, Any]]:
    return [{"run": f"{name} ({run})", "fills": int(v["fills"]), "shortfall": v["shortfall"],
             "shortfall_bps": v["shortfall_bps"]}
            for name, run, v in (("live", p.live_run, p.shortfall["live"]),
                                 ("modelled", p.model_run, p.shortfall["model"]))]


def summary_lines(p: Parity) -> list[str]:
    """What the terminal shows: the verdict, counts, unexplained rows, calibration."""
    n, bad = len(p.divergences), len(p.unexplained)
    lines = [f"parity of {p.mode} session {p.live_run} with its replay {p.model_run}: "
             f"{n} divergence(s), {n - bad} explained, {bad} unexplained"]
    for s in STAGES:
        if p.counts[s]:
            parts = ", ".join(f"{c} {p.counts[s][c]}" for c in CAUSES if c in p.counts[s])
            lines.append(f"  {s}: {parts}")
    roots = [d for d in p.divergences if d.cause not in ("carried", "unexplained")]
    for d in roots[:20]:
        lines.append(f"  {_ts(d.ts)} {d.stage} {d.symbol} {d.key} {d.field}: {d.cause}: "
                     f"{d.detail}")
    if len(roots) > 20:
        lines.append(f"  ... {len(roots) - 20} more explained (see the report)")
    for d in p.unexplained[:20]:
        lines.append(f"  UNEXPLAINED {_ts(d.ts)} {d.stage} {d.symbol} {d.key} {d.field}: "
                     f"live {d.live!r}, model {d.model!r}")
    if bad > 20:
        lines.append(f"  ... {bad - 20} more unexplained (see the report)")
    sl, sm = p.shortfall["live"], p.shortfall["model"]
    lines.append(f"  implementation shortfall: live {sl['shortfall']:.6g} "
                 f"({sl['shortfall_bps']:.4g} bps), modelled {sm['shortfall']:.6g} "
                 f"({sm['shortfall_bps']:.4g} bps)")
    if p.dispatch_ms is not None:
        lines.append(f"  orders reached the venue a median {p.dispatch_ms:.6g} ms after their "
                     "bar's time (a bar is taken once it has closed)")
    for row in p.calibration:
        lines.append(f"  calibration {row['venue']}: slippage_bps {row['slippage_bps']} -> "
                     f"{row['suggested_slippage_bps']}, latency_ms {row['latency_ms']} -> "
                     f"{row['suggested_latency_ms']}"
                     + (f" (lognormal, latency_sigma {row['suggested_latency_sigma']})"
                        if "suggested_latency_sigma" in row else "")
                     + f" from {row['fills']} fill(s)")
    lines += [f"  note: {n}" for n in p.notes]
    return lines


def _fig_equity(p: Parity, path: Path) -> Path:
    fig, (ax, dx) = plt.subplots(2, 1, figsize=figures.FIG_INCHES, dpi=figures.DPI,
                                 sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    series = {}
    for k, name in enumerate(("live", "model")):
        ts, eq = p.equity[name]
        t = ts.astype("datetime64[ns]")
        i = figures.minmax_indices(eq)
        ax.plot(t[i], eq[i], lw=1.0, color=figures.palette(k),
                label="live session" if name == "live" else "replay (modelled)")
        series[name] = dict(zip(ts.tolist(), eq.tolist(), strict=True))
    common = sorted(set(series["live"]) & set(series["model"]))
    if common:
        diff = np.array([series["live"][t] - series["model"][t] for t in common])
        dx.plot(np.array(common, np.int64).astype("datetime64[ns]"), diff, lw=0.9,
                color="#8a1c1c")
    dx.axhline(0.0, color="#9e9e9e", lw=0.8, ls="--")
    dx.set_ylabel("live - model")
    ax.set_ylabel("equity")
    ax.set_title("Equity: the session and its replay")
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _fig_slippage(errors: dict[str, list[float]], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=figures.FIG_INCHES, dpi=figures.DPI)
    for k, (venue, err) in enumerate(sorted(errors.items())):
        ax.plot(np.arange(len(err)), err, "o", ms=3, color=figures.palette(k), label=venue)
    ax.axhline(0.0, color="#9e9e9e", lw=0.8, ls="--")
    ax.set_xlabel("matched fill (in time order)")
    ax.set_ylabel("live price vs modelled, bps (+: live cost more)")
    ax.set_title("Slippage model error per venue")
    if errors:
        ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_parity_report(p: Parity, out: Path) -> ParityReport:
    """``parity_<session>.html`` and its PNGs into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with plt.rc_context(figures.STYLE):
        eq = _fig_equity(p, out / "parity_equity.png")
        sl = _fig_slippage(p.fill_errors, out / "parity_slippage.png")
    n, bad = len(p.divergences), len(p.unexplained)
    verdict = (f"{n} divergence(s): {n - bad} explained, {bad} unexplained" if n
               else "no divergence: the session is its backtest, row for row")
    explained = [d for d in p.divergences if d.explained]
    body = [
        "<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>Quorum parity: {html.escape(p.live_run)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Quorum parity: {html.escape(p.mode)} session {html.escape(p.live_run)}</h1>",
        f"<p class=\"{'warn' if bad else 'note'}\">{html.escape(verdict)}.</p>",
        "<p class=\"note\">The session's stored bars replayed through the backtest engine "
        f"with its resolved config and seed (replay run {html.escape(p.model_run)}, kept in "
        "memory), then compared stage by stage. A divergence's cause is the most specific "
        "the store names; 'carried' follows from an earlier one, which it names.</p>",
        *[f"<p class=\"note\">{html.escape(n)}.</p>" for n in p.notes],
        "<h2>Divergences per stage and cause</h2>", _table_html(counts_rows(p), ""),
        "<h2>Unexplained</h2>",
        _table_html(divergence_rows(p.unexplained[:MAX_ROWS]), "none"),
        "<h2>Explained</h2>", _table_html(divergence_rows(explained[:MAX_ROWS]), "none"),
    ]
    if len(explained) > MAX_ROWS or bad > MAX_ROWS:
        body.append(f"<p class=\"note\">The first {MAX_ROWS} of each list.</p>")
    body += [
        "<h2>Equity</h2>", "<p class=\"note\">Both curves per bar; below, live minus "
        "modelled.</p>", _img(eq),
        "<h2>Implementation shortfall</h2>", "<p class=\"note\">Fill price against the "
        "decision price (the order's reference price), summed over fills; bps of the expected "
        "notional; positive is a cost.</p>", _table_html(shortfall_rows(p), "no fills"),
    ]
    if p.dispatch_ms is not None:
        body.append(f"<p class=\"note\">Orders reached the venue a median "
                    f"{p.dispatch_ms:,.6g} ms after their bar's time: a live bar is taken "
                    "once it has closed, the model fills at its open.</p>")
    body += [
        "<h2>Slippage model error per venue</h2>", "<p class=\"note\">Per order filled in "
        "both runs: the live average price against the modelled one, in bps, positive when "
        "live cost the account more.</p>", _table_html(p.slippage, "no matched fills"),
        _img(sl),
        "<h2>Suggested calibration</h2>",
        "<p class=\"note\">slippage_bps: the current setting plus the median model error over "
        "the venue's market-order fills, floored at 0 (the model's price grid rounding stays "
        "the model's). latency_ms: the mean of the venue's latency, fill time minus the time "
        "the order was sent (the mean the model's fixed, exponential or lognormal latency "
        "takes; it applies with execution.latency = true); with five or more positive "
        "samples, latency_sigma is the standard deviation of their logarithm, for "
        "latency_dist = \"lognormal\". A paper session has nothing to calibrate: its fills "
        "are the model's.</p>",
        _table_html(p.calibration, "nothing to calibrate"),
        "</body></html>",
    ]
    page = out / f"parity_{_safe(p.live_run)}.html"
    page.write_text("\n".join(body) + "\n", encoding="utf-8")
    return ParityReport(page, [eq, sl])
