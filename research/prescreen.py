"""``quorum sweep FILE --prescreen N``: rank every parameter set with vectorbt, run the top N
through the event engine, and say how far the pre-screen's ranking can be trusted.

For each run of the sweep the pre-screen takes the agents' batch signals
(``sim.agents.batch``: the very signals ``on_bar`` would give), replays the real
consensus (``VotingConsensus.resolve``) and sizing (``TargetExposurePolicy``) at the bars
where a signal changes only, applies the engine's decision and release rules (a decision
that asks for the exposure already acted on makes no order; with ``fill_at =
"next_open"`` it is filled at the next bar's open), and hands the target exposures to
vectorbt. Its metrics are ``reports.sweep.run_metrics`` of vectorbt's equity and orders:
the sweep's own formulas.

What it leaves out: risk limits, per-agent permissions, order types, latency, partial
fills, funding, and the router's choice between venues (the cheapest venue listing the
symbol is assumed). Where none of them apply and the strategy is long only, all in
(exposure 1), one symbol, next-open or close fills without slippage, vectorbt's
``from_signals`` with ``size=inf`` does what the engine does: both give the same
metrics (``tests/integration/test_prescreen.py``, to 1e-9). Elsewhere the agreement is
measured, per regime: Spearman's rank correlation between the pre-screen's and the
engine's figure for the top N sets, and how many of the engine's top k are also the
pre-screen's top k (k = N // 2, at least 1).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from research.sweep import RANK_METRICS, Sweep, SweepRun
from sim.config import ScenarioConfig
from sim.config_base import ConfigError


class PrescreenError(ConfigError):
    """A sweep the pre-screen cannot evaluate (one line, exit 2)."""


def _venue_costs(config: ScenarioConfig, symbol: str) -> tuple[float, float]:
    venues = [v for v in config.venues if symbol in v.symbols]
    best = min(venues, key=lambda v: v.fee_bps + v.slippage_bps)
    return best.fee_bps / 1e4, best.slippage_bps / 1e4


def _check(config: ScenarioConfig) -> None:
    if config.consensus.method == "performance_weighted":
        raise PrescreenError("--prescreen: performance_weighted consensus depends on fills, "
                             "it cannot be replayed from signals alone")
    if config.consensus.max_signal_age is not None:
        raise PrescreenError("--prescreen: consensus.max_signal_age is not supported")
    if config.execution.replay == "ticks":
        raise PrescreenError("--prescreen: tick replay is not supported")


def target_exposures(config: ScenarioConfig, bars: Any, agents: Sequence[Any]
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Per bar of one symbol, the target exposure an order is made for at that bar (NaN:
    none), and where it is filled (True: at the bar's open, False: at its close).
    ``config.agents`` are the agents trading the symbol, in order."""
    from sim.agents.batch import has_batch_form
    from sim.consensus import VotingConsensus
    from sim.messages import Signal
    from sim.performance import AgentPerformance
    from sim.policy import TargetExposurePolicy
    from sim.view import MarketView

    for cfg, agent in zip(config.agents, agents, strict=True):
        if not has_batch_form(agent):
            raise PrescreenError(f"--prescreen: agent {cfg.name!r} ({cfg.kind}) has no batch "
                                 "form (batch_signals)")
    cons = config.consensus
    consensus = VotingConsensus(cons.method, min_agreement=cons.min_agreement,
                                conflict=cons.conflict, quorum=cons.quorum,
                                performance=AgentPerformance([len(agents)], cons.decay,
                                                             online=False))
    view = MarketView(bars)
    policy = TargetExposurePolicy(**config.policy.model_dump(exclude={"preset"}),
                                  views=[view])
    changes = [agent.batch_signals(bars) for agent in agents]
    at: dict[int, list[tuple[int, Signal]]] = {}
    for pos, ch in enumerate(changes):
        for t, signal in zip(ch.index.tolist(), ch.signals, strict=True):
            at.setdefault(t, []).append((pos, signal))
    n = len(bars)
    targets = np.full(n, np.nan)
    next_open = config.execution.fill_at != "close"
    standing: list[Signal | None] = [None] * len(agents)
    last_decision = None
    acted = 0.0
    pending: tuple[int, float] | None = None
    close = bars.column("close")
    for t in sorted(at):
        if pending is not None and pending[0] < t:  # released at the open after it
            acted = pending[1]
            targets[pending[0] + 1] = acted
            pending = None
        changed = False
        for pos, signal in at[t]:
            prev = standing[pos]
            if signal is not prev and signal != prev:
                standing[pos] = signal
                changed = True
        if not changed:
            continue
        side, confidence, target, *_ = consensus.resolve(tuple(standing), 0)
        key = (side, confidence, target)
        if key == last_decision:
            continue
        last_decision = key
        view.n, view.close = t + 1, float(close[t])
        exposure = policy.target_exposure(side, confidence, target, 0)
        if exposure is None or exposure == acted:
            continue
        if next_open:
            if t + 1 < n:
                pending = (t, exposure)
        else:
            acted = exposure
            targets[t] = exposure
    if pending is not None and pending[0] + 1 < n:
        targets[pending[0] + 1] = pending[1]
    return targets, np.full(n, next_open)


@dataclasses.dataclass(frozen=True, slots=True)
class _Planned:
    """One run's orders, ready for vectorbt: a target exposure per bar and symbol."""

    run: SweepRun
    targets: np.ndarray  # (bars, symbols), NaN: no order at that bar
    fees: np.ndarray  # per symbol
    slippage: np.ndarray

    @property
    def all_in_long(self) -> bool:
        """Long only, all in, one symbol: vectorbt's size=inf is the engine's order."""
        ordered = self.targets[~np.isnan(self.targets)]
        return (self.targets.shape[1] == 1 and len(ordered) > 0
                and bool(np.all((ordered == 0.0) | (ordered == 1.0))))


def _plan(run: SweepRun, data: Any) -> _Planned:
    from sim.agents.base import build_agent
    from sim.runner import RandomStreams

    config = run.config
    _check(config)
    streams = RandomStreams.spawn(config.seed, len(config.data), len(config.agents))
    per_symbol = [rng.spawn(len(data.bars)) for rng in streams.agents]  # as the engine
    targets, fees, slips = [], [], []
    for s, bars in enumerate(data.bars):
        chosen = [(i, a) for i, a in enumerate(config.agents)
                  if a.symbols is None or bars.symbol in a.symbols]
        agents = [build_agent(a.kind, a.params, per_symbol[i][s]) for i, a in chosen]
        sub = config.model_copy(update={"agents": [a for _, a in chosen]})
        targets.append(target_exposures(sub, bars, agents)[0])
        fee, slippage = _venue_costs(config, bars.symbol)
        fees.append(fee)
        slips.append(slippage)
    return _Planned(run, np.column_stack(targets), np.array(fees), np.array(slips))


def screen_runs(runs: Sequence[SweepRun]) -> dict[str, dict[str, float]]:
    """The pre-screen's metrics of each run (see the module docstring), by run id. Runs on
    the same data share one load and one vectorbt portfolio (a column group per run)."""
    from research.sweep import canonical_json
    from sim.runner import RandomStreams, load_market_data

    groups: dict[str, list[SweepRun]] = {}
    for run in runs:
        c = run.config
        key = canonical_json([c.model_dump(mode="json", include={"data", "seed"}),
                              c.execution.fill_at, c.initial_cash])
        groups.setdefault(key, []).append(run)
    out: dict[str, dict[str, float]] = {}
    for group in groups.values():
        config = group[0].config
        streams = RandomStreams.spawn(config.seed, len(config.data), len(config.agents))
        data = load_market_data(config, streams.data)
        ts = np.asarray(data.bars[0].ts, dtype=np.int64)
        if any(not np.array_equal(b.ts, ts) for b in data.bars[1:]):
            raise PrescreenError("--prescreen: the symbols' bars must share their timestamps")
        planned = [_plan(run, data) for run in group]
        exact = [p for p in planned if p.all_in_long]
        other = [p for p in planned if not p.all_in_long]
        for part, all_in in ((exact, True), (other, False)):
            if part:
                out.update(_vectorbt(part, data, ts, config, all_in))
    return out


def screen_run(run: SweepRun) -> dict[str, float]:
    return screen_runs([run])[run.run_id]


def _vectorbt(planned: Sequence[_Planned], data: Any, ts: np.ndarray, config: ScenarioConfig,
              all_in: bool) -> dict[str, dict[str, float]]:
    """One portfolio, a column per run and symbol, grouped by run with shared cash."""
    import pandas as pd
    import vectorbt as vbt

    from reports.sweep import run_metrics

    n_sym = len(data.bars)
    next_open = config.execution.fill_at != "close"
    index = pd.DatetimeIndex(pd.to_datetime(ts, utc=True))
    cols = pd.RangeIndex(len(planned) * n_sym)

    def tiled(column: str) -> pd.DataFrame:
        one = np.column_stack([np.asarray(b.column(column), dtype=np.float64)
                               for b in data.bars])
        return pd.DataFrame(np.tile(one, (1, len(planned))), index=index, columns=cols)

    size = pd.DataFrame(np.hstack([p.targets for p in planned]), index=index, columns=cols)
    freq = pd.Timedelta(int(np.diff(ts)[0]) if len(ts) > 1 else 60_000_000_000, unit="ns")
    common = {"close": tiled("close"), "price": tiled("open" if next_open else "close"),
              "fees": np.concatenate([p.fees for p in planned])[None, :],
              "slippage": np.concatenate([p.slippage for p in planned])[None, :],
              "init_cash": config.initial_cash, "freq": freq}
    if all_in:  # the engine's all-in trim is vectorbt's size=inf (exact)
        pf = vbt.Portfolio.from_signals(entries=size == 1.0, exits=size == 0.0,
                                        size=np.inf, size_type="amount",
                                        direction="longonly", accumulate=False,
                                        lock_cash=False, allow_partial=True, **common)
    else:  # one account per run for its symbols, sells before buys at each bar
        pf = vbt.Portfolio.from_orders(size=size, size_type="targetpercent",
                                       direction="both", allow_partial=True,
                                       group_by=np.repeat(np.arange(len(planned)), n_sym),
                                       cash_sharing=True, call_seq="auto", **common)
    records = pf.orders.records
    col = records["col"].to_numpy()
    signed = np.where(records["side"].to_numpy() == 0, 1.0, -1.0) * records["size"].to_numpy()
    price, fee, idx = (records["price"].to_numpy(), records["fees"].to_numpy(),
                       records["idx"].to_numpy())
    symbols = np.asarray([b.symbol for b in data.bars], dtype=object)
    values = np.asarray(pf.value(), dtype=np.float64).reshape(len(ts), -1)
    out = {}
    for g, p in enumerate(planned):
        mine = np.flatnonzero(col // n_sym == g)  # records are in time order per column
        mine = mine[np.lexsort((col[mine], idx[mine]))]
        fills = {"ts": ts[idx[mine]], "symbol": symbols[col[mine] % n_sym],
                 "quantity": signed[mine], "price": price[mine], "fee": fee[mine]}
        out[p.run.run_id] = run_metrics(config.initial_cash, ts, values[:, g], fills)
    return out


def _members(runs: Sequence[SweepRun], metrics: dict[str, dict[str, float]],
             status: dict[str, str] | None = None) -> list[dict[str, Any]]:
    from research.sweep import describe_params

    return [{"idx": r.idx, "param_set": r.param_set, "label": describe_params(r.params),
             "params": r.params, "run_id": r.run_id, "regime": r.regime,
             "status": (status or {}).get(r.run_id, "completed") if r.run_id in metrics
             else "missing", "metrics": metrics.get(r.run_id, {})} for r in runs]


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation of the pairs where both are known (NaN: < 3 pairs or
    no spread)."""
    from scipy.stats import spearmanr

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = ~(np.isnan(x) | np.isnan(y))
    if keep.sum() < 3 or np.ptp(x[keep]) == 0 or np.ptp(y[keep]) == 0:
        return math.nan
    return float(spearmanr(x[keep], y[keep]).statistic)


def _top(values: dict[int, float], k: int, direction: str) -> set[int]:
    known = [(v, p) for p, v in values.items() if not math.isnan(v)]
    known.sort(key=lambda vp: (-vp[0] if direction == "max" else vp[0], vp[1]))
    return {p for _, p in known[:k]}


def agreement(sweep: Sweep, top_sets: Sequence[int], screened: dict[str, dict[str, float]],
              engine: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """Per regime (and over all), how the pre-screen's figure of the first ``rank_by``
    metric ranks the top sets against the engine's."""
    from reports.sweep import rank_param_sets

    metric = sweep.config.rank_by[0]
    direction = RANK_METRICS[metric]
    rank_by = [(metric, direction)]
    runs = [r for r in sweep.runs if r.param_set in set(top_sets)]
    pre = {row["param_set"]: row for row in rank_param_sets(
        _members(runs, screened), rank_by, sweep.config.aggregate)}
    eng = {row["param_set"]: row for row in rank_param_sets(
        _members(runs, engine), rank_by, sweep.config.aggregate)}
    k = max(1, len(top_sets) // 2)
    regimes = sorted({r.regime or "base" for r in runs})
    out = []
    for regime in [*regimes, "all"] if len(regimes) > 1 else regimes:
        def figure(row: dict[str, Any], regime: str = regime) -> float:
            return row[metric] if regime == "all" else row["by_regime"].get(regime, math.nan)

        p = {s: figure(pre[s]) for s in top_sets}
        e = {s: figure(eng[s]) for s in top_sets}
        out.append({"regime": regime, "metric": metric, "sets": len(top_sets),
                    "spearman": spearman([p[s] for s in top_sets], [e[s] for s in top_sets]),
                    "top_k": k, "top_k_kept": len(_top(p, k, direction) & _top(e, k, direction)),
                    "max_abs_diff": max((abs(p[s] - e[s]) for s in top_sets
                                         if not math.isnan(p[s] - e[s])), default=math.nan)})
    return out


def prescreen(sweep: Sweep, top_n: int) -> tuple[list[dict[str, Any]], dict[str, dict[str, float]],
                                                 Sweep]:
    """Screen every run, rank the parameter sets, and return the ranking, every run's
    screened metrics and the sweep cut down to the top ``top_n`` sets' runs."""
    from reports.sweep import rank_param_sets

    if top_n < 1:
        raise PrescreenError(f"--prescreen must be >= 1, got {top_n}")
    runs = sweep.unique_runs()
    screened = screen_runs(runs)
    rank_by = [(m, RANK_METRICS[m]) for m in sweep.config.rank_by]
    ranking = rank_param_sets(_members(sweep.runs, screened), rank_by, sweep.config.aggregate)
    top = {row["param_set"] for row in ranking[:top_n]}
    kept = tuple(r for r in sweep.runs if r.param_set in top)
    return ranking, screened, dataclasses.replace(sweep, runs=kept)


def engine_metrics(con: Any, run_ids: Sequence[str]) -> dict[str, dict[str, float]]:
    rows = con.execute("SELECT run_id, metric, value FROM run_metrics WHERE run_id IN "
                       "(SELECT unnest($ids))", {"ids": list(run_ids)}).fetchall()
    out: dict[str, dict[str, float]] = {}
    for run_id, metric, value in rows:
        out.setdefault(run_id, {})[metric] = math.nan if value is None else float(value)
    return out
