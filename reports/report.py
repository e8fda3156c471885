"""``quorum report``: one self-contained HTML file (figures embedded as base64 PNG data URIs,
inline CSS, no script, no external URL) plus the PNGs, all read from the store.

Top to bottom: the run's metrics (``reports.summary.run_metrics``); tables per regime
label, per agent, per venue and per risk check (``reports.slices``); then the figures
(``reports.figures``): equity and drawdown; price with entries and exits (per symbol);
exposure; per-agent contribution; consensus agreement; routing by venue; risk denials;
and latency and implementation shortfall when the store holds them
(``reports.execution``; drawn by ``reports.execution_figures``).
"""

from __future__ import annotations

import base64
import csv
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import matplotlib.pyplot as plt
import numpy as np

from reports import data, execution, execution_figures, figures, slices
from reports.agent_indicators import SHOWN, AgentIndicators, agent_indicators
from reports.data import ReportError, check_run
from reports.farm_figures import fig_farm_equity
from reports.farms import farm_agent_table, farm_correlation, farm_curves, farm_table
from reports.scenario_tables import scenario_tables
from reports.summary import METRIC_GROUPS, NOT_STORED, fmt, run_metrics

MAX_PRICE_CHARTS = 12

__all__ = ["MAX_PRICE_CHARTS", "Report", "ReportError", "check_run", "compare_runs",
           "write_report"]


@dataclass
class Report:
    html: Path
    pngs: list[Path]
    metrics: dict[str, Any]
    tables: dict[str, list[dict[str, Any]]]


_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1150px; color: #212121; }
h1 { font-size: 1.5em; margin-bottom: .2em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
h3 { font-size: .95em; margin: .6em 0 .2em; color: #1f4e79; }
p.note { color: #616161; font-size: .9em; }
p.warn { color: #8a1c1c; background: #fdecea; padding: .4em .7em; font-weight: 600; }
table { border-collapse: collapse; font-size: .85em; }
td, th { border-bottom: 1px solid #e0e0e0; padding: .2em .7em; text-align: right;
         white-space: nowrap; }
th { background: #f5f5f5; } td:first-child, th:first-child { text-align: left; }
div.grid { display: grid; grid-template-columns: repeat(3, auto); gap: .2em 2em;
           align-items: start; }
div.wide { overflow-x: auto; }
img { max-width: 100%; border: 1px solid #eeeeee; }
"""


def _metrics_html(metrics: dict[str, Any]) -> str:
    """One small two-column table per group of ``METRIC_GROUPS``, in a grid."""
    blocks = []
    for group, names in METRIC_GROUPS.items():
        rows = [f"<tr><td>{html.escape(n)}</td><td>{html.escape(fmt(metrics[n], n))}</td></tr>"
                for n in names if n in metrics]
        if rows:
            blocks.append(f"<div><h3>{html.escape(group)}</h3><table>{''.join(rows)}</table>"
                          "</div>")
    return "<div class=\"grid\">" + "".join(blocks) + "</div>"


def _table_html(rows: list[dict[str, Any]], empty: str) -> str:
    if not rows:
        return f"<p class=\"note\">{html.escape(empty)}</p>"
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(v, str(k)))}</td>"
                                    for k, v in row.items()) + "</tr>" for row in rows)
    return f"<div class=\"wide\"><table><tr>{head}</tr>{body}</table></div>"


def _img(path: Path) -> str:
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{encoded}">'


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def write_report(con: duckdb.DuckDBPyConnection, run_id: str, out: Path) -> Report:
    """Write ``report_<run_id>.html`` and one PNG per figure into ``out``."""
    check_run(con, run_id)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    run = data.RunData(con, run_id)
    partial = data.coverage(con, run_id).note()
    syms, reference = run.symbols, run.reference
    shading = figures.regime_shading(con, run_id, reference)
    ts, equity, ex = run.ts, run.equity, run.exposure
    metrics = run_metrics(run)
    shadow = slices.agent_shadow(run)
    frame = execution.execution_frame(con, run_id)
    tables = {
        "regimes": slices.regime_table(run),
        "agents": slices.agent_table(run, shadow),
        "venues": slices.venue_table(run),
        "denials": slices.denials_table(run),
    }
    farms = farm_table(con, run_id)  # a run with [[farms]] only
    if farms:
        tables["farms"] = farms
        tables["farm_correlation"] = farm_correlation(con, run_id)
        tables["farm_agents"] = farm_agent_table(con, run_id, tables["agents"])
    if frame is not None:
        tables["execution"] = [{"venue": v, **row}
                               for v, row in execution.execution_by(frame, "venue").items()]
    sections: list[tuple[str, Path, str]] = []
    with plt.rc_context(figures.STYLE):
        sections.append(("Equity and drawdown",
                         figures.fig_equity(ts, equity, run.initial,
                                            f"Equity and drawdown: {run.title}", shading,
                                            out / "equity_drawdown.png"),
                         "Equity per bar; drawdown from the running peak (initial cash counts "
                         "as the first peak)."))
        for sym in syms[:MAX_PRICE_CHARTS]:
            own = shading if sym == reference else figures.regime_shading(con, run_id, sym)
            sections.append((f"Price: {sym}",
                             figures.fig_price(con, run_id, sym, own,
                                               out / f"price_{_safe(sym)}.png"),
                             "Close; triangles open or add to a position, crosses reduce or "
                             "close it. Shading: this symbol's regime labels."))
        sections.append(("Exposure", figures.fig_exposure(ex, shading, out / "exposure.png"),
                         "Position (from fills) marked at each bar's close, over equity."))
        sections.append(("Per-agent contribution",
                         figures.fig_agents(shadow, tables["agents"], shading,
                                            out / "agents.png"),
                         "Left: each agent's signals traded alone (one unit of notional per "
                         "symbol, no fees), cumulated; the final value is its shadow PnL. "
                         "Right: its votes on decided outcomes, with the decided side or "
                         "against it."))
        sections.append(("Consensus agreement",
                         figures.fig_consensus(run.agreement, run.decisions, ts, shading,
                                               out / "consensus.png"),
                         "Agreement: the share of the agents with an opinion that are on the "
                         "most popular side. Dots: each stored decision; line: the agreement "
                         "standing at each bar (the symbol's latest decision), trailing mean."))
        sections.append(("Routing by venue",
                         figures.fig_routing(tables["venues"], out / "routing.png"),
                         "Routing legs, filled notional and fees per venue."))
        sections.append(("Risk denials",
                         figures.fig_risk(con, run_id, ts, shading, out / "risk.png"),
                         "One tick per denied order, one row per check that denied it."))
        if farms:
            sections.append(("Equity per farm",
                             fig_farm_equity(farm_curves(con, run_id),
                                             (ts, equity / run.initial),
                                             out / "farm_equity.png"),
                             "Each farm's equity over its starting capital, compounded from "
                             "its per-step returns net of capital transfers; dashed: the "
                             "account over its initial cash. Below: each farm's drawdown."))
        if frame is not None:
            sections.append(("Execution: latency and implementation shortfall",
                             execution_figures.fig_execution(frame, out / "execution.png"),
                             "Per fill: time from submission to arrival at the venue and from "
                             "arrival to fill; fill price against the decision price, in bps "
                             "of the expected notional (positive is a cost)."))
    scenario = scenario_tables(con, run_id)
    behind = agent_indicators(con, run_id)
    for entry in behind:  # every signal with its indicator values, for a closer look
        if entry.rows:
            _write_rows(out / f"indicators_{_safe(entry.agent)}.csv", entry.rows)
    page = out / f"report_{_safe(run_id)}.html"
    page.write_text(_page(run_id, reference, syms, metrics, tables, sections, frame is None,
                          partial, _scenario_html(scenario) + _indicators_html(behind)),
                    encoding="utf-8")
    return Report(page, [p for _, p, _ in sections], metrics,
                  {**tables, **{f"scenario.{k}": v for k, v in scenario.items()},
                   **{f"indicators.{e.agent}": e.rows for e in behind}})


def _write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({**r, "ts": _iso(r["ts"])} for r in rows)


def _iso(ts_ns: int) -> str:
    return np.datetime_as_string(np.datetime64(int(ts_ns), "ns"), unit="s").replace("T", " ")


def _scenario_html(tables: dict[str, list[dict[str, Any]]]) -> str:
    """The resolved scenario: run settings, agents, consensus, policy, risk, venues, data."""
    parts = ["<h2>Scenario (as resolved and stored with the run)</h2>",
             "<p class=\"note\">What the run traded with: every setting after defaults, as in "
             "<code>quorum show RUN --config</code>.</p>", "<div class=\"grid\">"]
    for key in ("run", "consensus", "policy", "risk"):
        parts.append(f"<div><h3>{key}</h3>{_table_html(tables[key], 'defaults')}</div>")
    parts.append("</div>")
    for key in ("agents", "venues", "data"):
        parts.append(f"<h3>{key}</h3>{_table_html(tables[key], 'none')}")
    return "\n".join(parts)


def _indicators_html(entries: list[AgentIndicators]) -> str:
    """Per agent, its latest signals with the indicator values it compared."""
    parts = ["<h2>What each agent decided on</h2>",
             f"<p class=\"note\">Each agent's signals (the latest {SHOWN}; every one in "
             "indicators_AGENT.csv alongside) with its indicators' values at that bar, "
             "recomputed after the run from the stored bars and the agent's params by the "
             "agent class's indicators() hook.</p>"]
    for e in entries:
        title = f"<h3>{html.escape(e.agent)} ({html.escape(e.kind)})</h3>"
        if not e.rows:
            parts.append(f"{title}<p class=\"note\">No indicator values: "
                         f"{html.escape(e.note or 'none')}.</p>")
            continue
        shown = [{**r, "ts": _iso(r["ts"])} for r in e.rows[-SHOWN:]]
        more = f" ({len(e.rows):,} signals in all)" if len(e.rows) > SHOWN else ""
        parts.append(f"{title}{_table_html(shown, 'no signals')}"
                     + (f"<p class=\"note\">{html.escape(more.strip(' ()'))}</p>"
                        if more else ""))
    return "\n".join(parts)


def _page(run_id: str, reference: str | None, syms: list[str], metrics: dict[str, Any],
          tables: dict[str, list[dict[str, Any]]], sections: list[tuple[str, Path, str]],
          no_execution: bool, partial: str | None = None, extra: str = "") -> str:
    scenario = html.escape(str(metrics.get("scenario", "")))
    more = "" if len(syms) <= MAX_PRICE_CHARTS else \
        f" Price charts for the first {MAX_PRICE_CHARTS} of {len(syms)} symbols."
    missing = []
    if no_execution:
        missing.append("latency and implementation shortfall")
    if metrics.get("funding_paid") == NOT_STORED:
        missing.append("funding payments")
    body = [
        "<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>Quorum report: {scenario} {html.escape(run_id)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Quorum report: {scenario}</h1>",
        *([f"<p class=\"warn\">{html.escape(partial[0].upper() + partial[1:])}.</p>"]
          if partial else []),
        f"<p class=\"note\">run {html.escape(run_id)}. Annualised figures use the bar spacing "
        "on a 365-day year (crypto trades every day). Regime labels of "
        f"{html.escape(str(reference))} (first symbol alphabetically) slice run-wide numbers "
        "and shade the run-wide charts. Charts of long runs are downsampled (per-bucket "
        f"min/max, at most {figures.MAX_POINTS:,} points per line); every number uses every "
        f"row.{more}</p>",
        "<h2>Metrics</h2>", _metrics_html(metrics),
    ]
    if missing:
        body.append(f"<p class=\"note\">Not in this run's store: {', '.join(missing)}.</p>")
    for key, title, note, empty in (
        ("regimes", "Per regime label",
         "Each bar's return, fills, denials and standing agreement go to the reference "
         "symbol's label at that time; return and drawdown compound the slice's bars glued "
         "end to end; trades by the label when they opened.", "no bars"),
        ("agents", "Per agent",
         "From agent_performance (summed over symbols) and each agent's shadow series: its "
         "own signals traded alone, one unit of notional per symbol, no fees. Shadow PnL and "
         "drawdown are in units of notional.", "no agents"),
        ("venues", "Per venue",
         "Slippage: fill price against the order's reference price, bps of notional "
         "(positive is a cost). Turnover: notional over mean equity.", "no routed orders"),
        ("execution", "Execution per venue", "Implementation shortfall against the decision "
         "price, and median decision-to-fill latency.", "no fills"),
        ("denials", "Risk denials by check", "", "no risk denials"),
        ("farms", "Per farm",
         "Each farm's own ledger: returns time-weighted and net of capital transfers; "
         "contribution is its share of the account's PnL.", "no farms"),
        ("farm_correlation", "Correlation of the farms' returns", "", "fewer than 2 farms"),
        ("farm_agents", "Per agent inside each farm",
         "Votes: the agent's votes in the farm's decisions (with_decision: on the side "
         "decided); orders: those decisions' orders attributed to it (agent_trades). Hit "
         "rate and shadow PnL follow its signals over the run, whatever farm they voted "
         "in.", "no votes"),
    ):
        if key not in tables:
            continue
        body += [f"<h2>{html.escape(title)}</h2>"]
        if note:
            body.append(f"<p class=\"note\">{html.escape(note)}</p>")
        body.append(_table_html(tables[key], empty))
    body.append(extra)  # the resolved scenario, and what each agent decided on
    for title, path, note in sections:
        body += [f"<h2>{html.escape(title)}</h2>", f"<p class=\"note\">{html.escape(note)}</p>",
                 _img(path)]
    body.append("</body></html>")
    return "\n".join(body) + "\n"


# -- compare --------------------------------------------------------------------------------
def compare_runs(con: duckdb.DuckDBPyConnection, run_ids: Sequence[str],
                 out: Path, labels: Mapping[str, str] | None = None,
                 ) -> tuple[list[dict[str, Any]], Path]:
    """Metrics of each run (one dict per run, also written to ``compare_metrics.csv``:
    one row per metric, one column per run, full precision, a ``label`` row first) and an
    overlaid equity PNG, each curve divided by its run's initial cash (1.0 at the start),
    against days since its start. ``labels``: each run's name in the legend and the CSV
    (``reports.run_labels``: what differs between the runs); default the run ids."""
    labels = labels or {r: r for r in run_ids}
    for run_id in run_ids:
        check_run(con, run_id)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = [data.RunData(con, r) for r in run_ids]
    rows = [run_metrics(run) for run in runs]
    curves = []
    for run_id, run, m in zip(run_ids, runs, rows, strict=True):
        ts, equity = run.ts, run.equity
        curve = np.concatenate(([1.0], equity / m["initial_equity"]))
        days = np.concatenate(([0.0], (ts - ts[0]) / 86_400e9))
        if len(ts) > 1:  # the start is one bar before the first bar closes
            days[1:] += float(np.median(np.diff(ts))) / 86_400e9
        status = "" if m["status"] == "completed" else f", {m['status']}"
        curves.append((f"{labels.get(run_id, run_id)} ({m['total_return']:+.1%}{status})",
                       days, curve))
    with (out / "compare_metrics.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["metric", *run_ids])
        writer.writerow(["label", *(labels.get(r, r) for r in run_ids)])
        for name in rows[0]:
            if name != "run_id":
                writer.writerow([name, *(r.get(name) for r in rows)])
    with plt.rc_context(figures.STYLE):
        path = figures.fig_compare(curves, out / "compare_equity.png")
    return rows, path
