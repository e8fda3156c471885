"""``quorum sweep --out DIR``: one self-contained HTML page of the sweep (figures embedded,
no script, no external URL), like ``quorum report`` for a run.

Top to bottom: the ranking with each swept parameter as a column; the first ranking
metric against the swept parameters (a line per parameter, a heatmap per pair of
parameters with few values); the parameter set x *generated* regime heatmap (the regime
each run's data was generated in, from ``sweep_runs.regime``) and the causal-label regime
matrix; walk-forward stability; every run with a link to its report where one was
written. A figure or cell that pools several runs says how many.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from reports import sweep_figures as figs
from reports.report import _CSS, _img, _table_html
from sim.config_paths import short_name

MAX_SETS_IN_HEATMAP = 40
MAX_PAIRS = 3


@dataclass(frozen=True, slots=True)
class SweepPage:
    """What the page is about: names and options of the sweep."""

    name: str
    sweep_id: str
    description: str
    rank_by: Sequence[tuple[str, str]]  # (metric, "max" | "min")
    aggregate: str
    window_metric: str | None = None


def swept_params(ranked: Sequence[Mapping[str, Any]]) -> list[str]:
    """The parameter paths whose value is not the same in every set, in their order."""
    paths: list[str] = []
    for row in ranked:
        paths.extend(p for p in row["params"] if p not in paths)
    return [p for p in paths
            if len({repr(row["params"].get(p)) for row in ranked}) > 1]


def _aggregate(values: Sequence[float], how: str, direction: str) -> float:
    arr = np.asarray([v for v in values if not math.isnan(v)], dtype=np.float64)
    if not len(arr):
        return math.nan
    if how == "median":
        return float(np.median(arr))
    if how == "worst":
        return float(arr.min() if direction == "max" else arr.max())
    return float(arr.mean())


def _completed(members: Sequence[Mapping[str, Any]], metric: str
               ) -> list[tuple[Mapping[str, Any], float]]:
    """(member, value) of each distinct completed run (a repeated draw counts once)."""
    seen: set[str] = set()
    out = []
    for mem in members:
        if mem["status"] == "completed" and mem["run_id"] not in seen:
            seen.add(mem["run_id"])
            out.append((mem, float(mem["metrics"].get(metric, math.nan))))
    return out


def _hashable(v: Any) -> Any:
    """A parameter value usable as a key (a list or table value as its JSON)."""
    try:
        hash(v)
    except TypeError:
        return json.dumps(v, sort_keys=True)
    return v


def _value_key(v: Any) -> tuple[int, float, str]:
    return (0, float(v), "") if isinstance(v, int | float) and not isinstance(v, bool) \
        else (1, 0.0, str(v))


def metric_lines(members: Sequence[Mapping[str, Any]], param: str, metric: str, how: str,
                 direction: str) -> dict[str, list[tuple[Any, float, int]]]:
    """``{"all" | regime: [(value, aggregate, runs pooled), ...]}`` over the runs whose
    set has ``param`` = value (every other parameter, regime and seed pooled)."""
    groups: dict[str, dict[Any, list[float]]] = {}
    done = _completed(members, metric)
    regimes = {mem["regime"] or "base" for mem, _ in done}
    for mem, value in done:
        key = _hashable(mem["params"].get(param))
        for series in ("all", *([mem["regime"] or "base"] if len(regimes) > 1 else [])):
            groups.setdefault(series, {}).setdefault(key, []).append(value)
    return {series: [(v, _aggregate(vals, how, direction),
                      sum(not math.isnan(x) for x in vals))
                     for v, vals in sorted(by_value.items(), key=lambda kv: _value_key(kv[0]))]
            for series, by_value in groups.items()}


def pair_grid(members: Sequence[Mapping[str, Any]], a: str, b: str, metric: str, how: str,
              direction: str) -> tuple[list[Any], list[Any], np.ndarray, np.ndarray]:
    """(values of a, values of b, aggregate grid a x b, runs pooled per cell)."""
    cells: dict[tuple[Any, Any], list[float]] = {}
    for mem, value in _completed(members, metric):
        cells.setdefault((_hashable(mem["params"].get(a)), _hashable(mem["params"].get(b))),
                         []).append(value)
    va = sorted({k[0] for k in cells}, key=_value_key)
    vb = sorted({k[1] for k in cells}, key=_value_key)
    grid = np.full((len(va), len(vb)), np.nan)
    counts = np.zeros((len(va), len(vb)))
    for (x, y), vals in cells.items():
        i, j = va.index(x), vb.index(y)
        grid[i, j] = _aggregate(vals, how, direction)
        counts[i, j] = sum(not math.isnan(v) for v in vals)
    return va, vb, grid, counts


def set_by_regime(ranked: Sequence[Mapping[str, Any]], members: Sequence[Mapping[str, Any]],
                  metric: str, how: str, direction: str
                  ) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """Rows: the sets in rank order (at most ``MAX_SETS_IN_HEATMAP``); columns: the regime
    each run was generated in; cells: the aggregate over that cell's seeds."""
    sets = [r["param_set"] for r in ranked[:MAX_SETS_IN_HEATMAP]]
    regimes: list[str] = []
    for mem in members:
        name = mem["regime"] or "base"
        if name not in regimes:
            regimes.append(name)
    cells: dict[tuple[int, str], list[float]] = {}
    for mem, value in _completed(members, metric):
        cells.setdefault((int(mem["param_set"]), mem["regime"] or "base"), []).append(value)
    grid = np.full((len(sets), len(regimes)), np.nan)
    counts = np.zeros((len(sets), len(regimes)))
    for i, ps in enumerate(sets):
        for j, regime in enumerate(regimes):
            vals = cells.get((ps, regime), [])
            grid[i, j] = _aggregate(vals, how, direction)
            counts[i, j] = sum(not math.isnan(v) for v in vals)
    labels = {r["param_set"]: r["label"] for r in ranked}
    return [f"#{ps} {labels[ps]}" for ps in sets], regimes, grid, counts


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:.4g}"
    return "" if v is None else v


def ranking_rows(ranked: Sequence[Mapping[str, Any]], params: Sequence[str],
                 page: SweepPage) -> list[dict[str, Any]]:
    """The ranking with a column per swept parameter; each metric says how many of the
    set's runs its figure pools."""
    first = page.rank_by[0][0]
    rows = []
    for r in ranked:
        rows.append({
            "rank": "-" if r["rank"] is None else r["rank"], "set": f"#{r['param_set']}",
            **{short_name(p): _fmt(r["params"].get(p)) for p in params},
            "runs": f"{r['completed']}/{r['runs']}", "failed": r["failed"],
            **{f"{k} ({page.aggregate})": _fmt(r[k]) for k, _ in page.rank_by},
            f"{first} pools": f"{r[f'{first}_n']} runs",
            f"{first} std": _fmt(r[f"{first}_std"]),
        })
    return rows


def _links(members: Sequence[Mapping[str, Any]], reports: Mapping[str, Path], out: Path,
           metric: str) -> str:
    """Every run: set, regime, seed, status, the metric, and its report."""
    head = ["#", "set", "parameters", "regime", "seed", "status", metric, "report"]
    body = []
    seen: set[str] = set()
    for mem in members:
        run_id = mem["run_id"]
        if run_id in seen:
            continue
        seen.add(run_id)
        page = reports.get(run_id)
        link = (f'<a href="{html.escape(page.relative_to(out).as_posix())}">'
                f"{html.escape(run_id)}</a>" if page is not None else
                f'<span title="not written: quorum report {html.escape(run_id)}">'
                f"{html.escape(run_id)}</span>")
        value = float(mem["metrics"].get(metric, math.nan))
        cells = [str(mem["idx"]), f"#{mem['param_set']}", html.escape(mem["label"]),
                 html.escape(mem["regime"] or "base"), str(mem["seed"]),
                 html.escape(str(mem["status"] or "missing")),
                 "n/a" if math.isnan(value) else f"{value:.4g}", link]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return ("<div class=\"wide\"><table><tr>" + "".join(f"<th>{h}</th>" for h in head)
            + "</tr>" + "".join(body) + "</table></div>")


def write_sweep_report(page: SweepPage, ranked: Sequence[Mapping[str, Any]],
                       members: Sequence[Mapping[str, Any]], out: Path, *,
                       stability: Sequence[Mapping[str, Any]] = (),
                       windows: Sequence[Mapping[str, Any]] = (),
                       causal_matrix: Path | None = None,
                       run_reports: Mapping[str, Path] | None = None) -> Path:
    """Write ``sweep_<name>.html`` (and its PNGs) into ``out``; return the page."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    metric, direction = page.rank_by[0]
    how = page.aggregate
    params = swept_params(ranked)
    n_runs = len({m["run_id"] for m in members})
    seeds = sorted({m["seed"] for m in members})
    regimes = list(dict.fromkeys(m["regime"] or "base" for m in members))
    sections: list[str] = []

    def figure(title: str, path: Path, note: str) -> None:
        sections.append(f"<h2>{html.escape(title)}</h2><p class=\"note\">{html.escape(note)}"
                        f"</p>{_img(path)}")

    for param in params:
        figure(f"{metric} against {short_name(param)}",
               figs.fig_metric_lines(metric_lines(members, param, metric, how, direction),
                                     short_name(param), metric,
                                     out / f"param_{_safe(short_name(param))}.png"),
               f"The {how} of {metric} over every completed run whose set has this value: "
               "the other swept parameters, the regimes and the seeds are pooled ('all'; "
               "one line per generated regime too). The title says how many runs a point "
               "pools.")
    pairs = [(a, b) for a, b in combinations(params, 2)
             if len({repr(r["params"].get(a)) for r in ranked}) <= figs.MAX_HEATMAP_VALUES
             and len({repr(r["params"].get(b)) for r in ranked}) <= figs.MAX_HEATMAP_VALUES]
    for a, b in pairs[:MAX_PAIRS]:
        va, vb, grid, counts = pair_grid(members, a, b, metric, how, direction)
        name = f"{short_name(a)} x {short_name(b)}"
        figure(f"{metric}: {name}",
               figs.fig_heatmap(grid, counts, [figs._tick(v) for v in va],
                                [figs._tick(v) for v in vb], f"{metric} ({how}) by "
                                f"{name}", out / f"pair_{_safe(name)}.png", short_name(a),
                                short_name(b), direction == "min"),
               f"Each cell: the {how} of {metric} over the runs with both values (the other "
               "parameters, regimes and seeds pooled), and how many runs that is.")
    rows, cols, grid, counts = set_by_regime(ranked, members, metric, how, direction)
    figure("Parameter set x generated regime",
           figs.fig_heatmap(grid, counts, rows, cols, f"{metric} ({how} over seeds): set x "
                            "generated regime",
                            out / "set_by_regime.png", "", "generated regime",
                            direction == "min"),
           f"Rows: parameter sets in rank order (the first {MAX_SETS_IN_HEATMAP} at most); "
           "columns: the regime each run's data was generated in (not the causal labels); "
           f"a cell pools the set's runs in that regime over {len(seeds)} seed(s).")
    if causal_matrix is not None and causal_matrix.is_file():
        figure("Regime matrix by causal label", causal_matrix,
               "Each set's completed runs pooled over regimes and seeds and sliced by the "
               "causal regime label of each bar (the labels an agent could have known): a "
               "cell glues many runs' bars together, and says how many runs.")
    wf = ""
    if stability:
        wf_rows = [{"path": f"{s['regime'] or 'base'}" + (f" seed {s['seed']}"
                                                         if s["seed"] is not None else ""),
                    "windows": s["windows"], "changes": s["changes"],
                    "change rate": _fmt(s["change_rate"]), "distinct sets": s["distinct"],
                    "most chosen": "" if s["most_chosen_set"] is None
                    else f"#{s['most_chosen_set']} {s['most_chosen']}",
                    "share": _fmt(s["share"]), "train mean": _fmt(s["train_mean"]),
                    "test mean": _fmt(s["test_mean"]), "test std": _fmt(s["test_std"])}
                   for s in stability]
        wf = ("<h2>Walk-forward stability</h2><p class=\"note\">On each market path "
              f"(regime, seed) the best set by {html.escape(str(page.window_metric))} on "
              "each train window is scored on the next test window. 'all' pools every "
              "path's windows.</p>" + _table_html(wf_rows, "no windows"))
        if windows:
            wf += _img(figs.fig_walk_forward(windows, str(page.window_metric),
                                             out / "walk_forward.png"))
    body = [
        "<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>Quorum sweep: {html.escape(page.name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Quorum sweep: {html.escape(page.name)}</h1>",
        f"<p class=\"note\">sweep {html.escape(page.sweep_id)}. "
        f"{html.escape(page.description)} {len(ranked)} parameter sets x "
        f"{len(regimes)} regime(s) x {len(seeds)} seed(s): {n_runs} runs. Ranked by "
        f"{html.escape(', '.join(k for k, _ in page.rank_by))}, the {html.escape(how)} over "
        "each set's runs; swept: "
        f"{html.escape(', '.join(short_name(p) for p in params) or 'nothing')}.</p>",
        "<h2>Ranking</h2>", "<p class=\"note\">Every figure of a set pools its runs over "
        "regimes and seeds; 'pools' says how many runs it rests on.</p>",
        _table_html(ranking_rows(ranked, params, page), "no parameter sets"),
        *sections, wf,
        "<h2>Runs</h2>", "<p class=\"note\">Every run of the sweep. A run id links to its "
        "report where one was written (quorum sweep --run-reports N writes them for the "
        "best N sets); otherwise quorum report RUN_ID makes one.</p>",
        _links(members, run_reports or {}, out, metric),
        "</body></html>",
    ]
    path = out / f"sweep_{_safe(page.name)}.html"
    path.write_text("\n".join(body) + "\n", encoding="utf-8")
    return path


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
