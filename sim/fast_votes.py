"""Votes in bulk for the fast path: every consensus vote of a run from the agents' batch
forms at once, so the walk stops only where a decision can make an order.

The per-bar loop, at each bar where a signal changes, records the signal, votes
(``VotingConsensus.resolve`` over the standing signals), records a decision when the
outcome (side, confidence, target) differs from the symbol's last one, and, when the
policy's target exposure is set and differs from the exposure last acted on, makes the
decision pending for the next open. Everything up to the exposure depends only on the
signals, so here it is computed for the whole run with numpy, the same IEEE operations
in the same order as ``resolve`` (weights added one agent after another, adding 0.0 where
``resolve`` adds nothing: the sums start at +0.0 and the weights are >= 0). The signal and
decision rows are handed to the recorder as the walk passes them (the same rows, in the
same order, before the same flushes). What stays sequential is whether a decision
becomes an order: the exposure last acted on moves only at bars the walk visits (a
release at an open, a flatten), so the walk visits a bar with a decision only when its
exposure differs from the one acted on at that point (``next_candidate``), and after
``Engine.on_bar`` there the engine acts on it as ``Engine._vote`` does (``act``).

``bulk_reason`` says why a run keeps a vote per event bar instead: state the votes read
that only the walk has (stale signals, performance weights, volatility sizing), conflict
rules over per-signal reasons, a consensus or recorder the module does not know, or a
signal the engine would refuse (the run must fail where the per-bar loop fails).
"""

from __future__ import annotations

from bisect import bisect_left
from itertools import count
from operator import attrgetter
from typing import Any

import numpy as np

from sim.agents.batch import SignalChanges
from sim.consensus import VotingConsensus
from sim.engine import Engine, valid_signal
from sim.messages import Decision, FillTiming, Side, Signal
from sim.recorder import Recorder

_SIDES = {int(side): side for side in Side}
_LONG, _SHORT, _FLAT, _HOLD = int(Side.LONG), int(Side.SHORT), int(Side.FLAT), int(Side.HOLD)
# rule codes of the vectorised resolve (its order of checks)
_RULES = ("none", "quorum", "no_votes", "dissent", "hold", "conservative", "min_agreement")
_PURE_SIZINGS = ("fixed_fraction", "confidence_exponential", "kelly")


def bulk_reason(engine: Engine) -> str | None:
    """None when every vote of a fast run can be taken in bulk, else why not."""
    consensus = engine.consensus
    if not isinstance(consensus, VotingConsensus) or (
            type(consensus).resolve is not VotingConsensus.resolve):
        return "a consensus other than VotingConsensus"
    if consensus.method not in ("majority", "confidence_weighted", "unanimous"):
        return f"consensus method {consensus.method}"
    if consensus.conflict not in ("hold", "conservative"):
        return f"conflict rule {consensus.conflict}"
    if engine.max_signal_age is not None:
        return "max_signal_age (stale signals vote again)"
    if engine.performance.online:
        return "online performance weights"
    if engine.policy.sizing not in _PURE_SIZINGS:
        return f"sizing {engine.policy.sizing} (reads the bars)"
    if type(engine.recorder) is not Recorder:
        return "an observed recorder (publishes each decision)"
    return None


def _kept(changes: SignalChanges) -> tuple[np.ndarray, list[Signal]] | None:
    """The changes ``Engine.on_bar`` accepts (a signal equal to the standing one is not a
    change), or None when one would be refused (``valid_signal``)."""
    signals = list(changes.signals)
    if not signals:
        return np.zeros(0, np.int64), []
    ids: dict[int, int] = {}
    codes = np.array(list(map(ids.setdefault, map(id, signals), count())), dtype=np.int64)
    first = dict(zip(codes.tolist(), signals, strict=True))
    if not all(map(valid_signal, first.values())):
        return None
    keep = np.ones(len(codes), dtype=bool)
    prev = codes[:-1]
    differ = np.flatnonzero(codes[1:] != prev)
    same_object = np.ones(len(codes) - 1, dtype=bool)
    same_object[differ] = False
    # value-equal distinct objects: one comparison per distinct pair
    pairs = {(a, b) for a, b in zip(prev[differ].tolist(), codes[1:][differ].tolist(),
                                    strict=True)}
    equal = {pair for pair in pairs if first[pair[0]] == first[pair[1]]}
    keep[1:] = ~same_object
    if equal:
        # a dropped change leaves the earlier object standing: walk those runs in order
        standing = signals[0]
        for i in range(1, len(signals)):
            sig = signals[i]
            if sig is standing or sig == standing:
                keep[i] = False
            else:
                keep[i] = True
                standing = sig
    at = np.flatnonzero(keep)
    return changes.index[at], [signals[i] for i in at.tolist()]


class BulkVotes:
    """Every signal and decision row of a fast run, and the decisions the walk must act on
    (see the module docstring). ``rows_of[s]``: symbol ``s``'s rows in the walk's order."""

    def __init__(self, engine: Engine, bars: list[Any], rows_of: list[np.ndarray],
                 changes: list[list[SignalChanges]]) -> None:
        self.engine = engine
        self.ok = True
        sig_rows: list[np.ndarray] = []
        sig_pos: list[np.ndarray] = []
        sig_cols: list[tuple[list[Any], ...]] = []
        dec_rows: list[np.ndarray] = []
        dec_cols: list[tuple[list[Any], ...]] = []
        self.cand_rows: list[list[int]] = []
        self.cand_exposure: list[list[float]] = []
        # per symbol: row -> (index in the decisions, target exposure), where it is set
        self.at: list[dict[int, tuple[int, float]]] = []
        self.final: list[tuple[list[Signal | None], Any]] = []
        offset = 0
        for s, per_agent in enumerate(changes):
            kept = [_kept(c) for c in per_agent]
            if any(k is None for k in kept):
                self.ok = False
                return
            ts = bars[s].ts
            agent_ix = engine._agent_indexes[s]
            for pos, (idx, sigs) in enumerate(kept):  # type: ignore[misc]
                engine.performance.on_signals(s, pos, idx + 1, np.fromiter(
                    map(int, map(attrgetter("side"), sigs)), np.int64, count=len(sigs)))
                sig_rows.append(rows_of[s][idx])
                sig_pos.append(np.full(len(idx), pos, np.int64))
                sig_cols.append((ts[idx].tolist(), [s] * len(idx), [agent_ix[pos]] * len(idx),
                                 sigs))
            votes = self._votes(s, kept, np.asarray(ts))  # type: ignore[arg-type]
            if votes is None:
                self.cand_rows.append([])
                self.cand_exposure.append([])
                self.at.append({})
                self.final.append(([None] * len(per_agent), None))
                continue
            where, cols, exposure = votes
            rows = rows_of[s][where]
            dec_rows.append(rows)
            dec_cols.append(cols)
            has = [i for i, e in enumerate(exposure) if e is not None]
            row_list = rows.tolist()
            self.cand_rows.append([row_list[i] for i in has])
            self.cand_exposure.append([exposure[i] for i in has])  # type: ignore[misc]
            self.at.append({row_list[i]: (offset + i, exposure[i]) for i in has})
            offset += len(row_list)
        # signals in the walk's order: by row, then the agents' order
        if sig_rows:
            srow = np.concatenate(sig_rows)
            order = np.lexsort((np.concatenate(sig_pos), srow))
            self.sig_row = srow[order]
            idx = order.tolist()
            self.signals = [_take([v for c in sig_cols for v in c[k]], idx) for k in range(4)]
        else:
            self.sig_row = np.zeros(0, np.int64)
            self.signals = [[], [], [], []]
        # decisions: numbered in the walk's order
        if dec_rows:
            drow = np.concatenate(dec_rows)
            order = np.argsort(drow, kind="stable")
            self.dec_row = drow[order]
            idx = order.tolist()
            self.decisions = [_take([v for c in dec_cols for v in c[k]], idx)
                              for k in range(10)]
            rank = np.empty(len(order), np.int64)
            rank[order] = np.arange(len(order))
            first = engine._decision_id + 1
            self.decisions.insert(0, list(range(first, first + len(order))))
            ranks = rank.tolist()
            self.at = [{r: (ranks[i], e) for r, (i, e) in at.items()} for at in self.at]
        else:
            self.dec_row = np.zeros(0, np.int64)
            self.decisions = [[] for _ in range(11)]
        self._sig_done = self._dec_done = 0
        self._ptr = [0] * len(changes)
        self._seen: list[float | None] = [None] * len(changes)

    def _votes(self, s: int, kept: list[tuple[np.ndarray, list[Signal]]],
               bar_ts: np.ndarray) -> Any:
        """Symbol ``s``'s decisions: (their bar indexes, row columns but the id, the
        target exposure of each); None when no signal is ever given."""
        engine = self.engine
        consensus: VotingConsensus = engine.consensus  # type: ignore[assignment]
        idxs = [k[0] for k in kept]
        if not any(len(i) for i in idxs):
            return None
        bars_at = np.unique(np.concatenate(idxs))
        m = len(bars_at)
        by_conf = consensus.method == "confidence_weighted"
        long = np.zeros(m)
        short = np.zeros(m)
        flat = np.zeros(m)
        n_long = np.zeros(m, np.int64)
        n_short = np.zeros(m, np.int64)
        n_flat = np.zeros(m, np.int64)
        sides, weights, standing, targets = [], [], [], []
        for idx, sigs in kept:
            j = np.searchsorted(idx, bars_at, side="right") - 1  # -1: none yet
            present = j >= 0
            jj = np.maximum(j, 0)
            side = np.fromiter(map(int, map(attrgetter("side"), sigs)), np.int64,
                               count=len(sigs))
            conf = np.fromiter(map(attrgetter("confidence"), sigs), np.float64,
                               count=len(sigs))
            tgt_obj = list(map(attrgetter("target"), sigs))
            has_t = np.fromiter((t is not None for t in tgt_obj), bool, count=len(sigs))
            tgt = np.array([0.0 if t is None else t for t in tgt_obj], dtype=np.float64)
            sd = np.where(present, side[jj] if len(sigs) else 0, _HOLD)
            opinion = sd != _HOLD
            w = np.where(opinion, conf[jj] if by_conf and len(sigs) else 1.0, 0.0)
            counted = opinion & (w != 0.0)
            for arr, n, code in ((long, n_long, _LONG), (short, n_short, _SHORT),
                                 (flat, n_flat, _FLAT)):
                on = counted & (sd == code)
                arr += np.where(on, w, 0.0)
                n += on
            sides.append(sd)
            weights.append(w)
            standing.append(([None, *sigs], j + 1))
            targets.append((opinion & (has_t[jj] if len(sigs) else False),
                            tgt[jj] if len(sigs) else np.zeros(m)))
        voters = n_long + n_short + n_flat
        agreement = np.divide(np.maximum(np.maximum(n_long, n_short), n_flat), voters,
                              out=np.zeros(m), where=voters > 0)
        total = long + short
        total += flat
        best = np.full(m, _HOLD, np.int64)
        top = np.zeros(m)
        rule = np.zeros(m, np.int64)
        win_l = (long > short) & (long > flat)
        win_s = (short > long) & (short > flat)
        win_f = (flat > long) & (flat > short)
        best[win_l], top[win_l] = _LONG, long[win_l]
        best[win_s], top[win_s] = _SHORT, short[win_s]
        best[win_f], top[win_f] = _FLAT, flat[win_f]
        tie = ~(win_l | win_s | win_f)
        if consensus.conflict == "conservative":
            best[tie], top[tie], rule[tie] = _FLAT, flat[tie], _RULES.index("conservative")
        else:
            best[tie], rule[tie] = _HOLD, _RULES.index("hold")
        share = np.divide(top, total, out=np.zeros(m), where=total > 0.0)
        low = (rule == 0) & (share < consensus.min_agreement)
        rule[low] = _RULES.index("min_agreement")
        best[low] = _HOLD
        conf = np.where(best == _HOLD, 0.0, share)
        conf[low] = share[low]
        # the first check that applies decides (resolve's order); later ones are overruled
        checks = [voters < consensus.quorum, total <= 0.0]
        if consensus.method == "unanimous":
            checks.append((n_long > 0).astype(np.int64) + (n_short > 0) + (n_flat > 0) > 1)
        decided = np.zeros(m, dtype=bool)
        for code, hit in enumerate(checks, start=1):
            hit = hit & ~decided
            best[hit], conf[hit], rule[hit] = _HOLD, 0.0, code
            decided |= hit
        # target: the mean of the winners' targets, in the agents' order
        tsum = np.zeros(m)
        tn = np.zeros(m, np.int64)
        for (given, t), sd in zip(targets, sides, strict=True):
            mine = given & (sd == best)
            tsum += np.where(mine, t, 0.0)
            tn += mine
        has_target = (tn > 0) & (best != _HOLD) & (rule != _RULES.index("min_agreement"))
        target = np.divide(tsum, tn, out=np.zeros(m), where=has_target)
        # a decision where the outcome changes (the first vote always)
        new = np.ones(m, dtype=bool)
        new[1:] = ((best[1:] != best[:-1]) | (conf[1:] != conf[:-1])
                   | (has_target[1:] != has_target[:-1])
                   | (has_target[1:] & (target[1:] != target[:-1])))
        at = np.flatnonzero(new)
        side_l = list(map(_SIDES.__getitem__, best[at].tolist()))
        conf_l = conf[at].tolist()
        tgt_l = [t if h else None for t, h in zip(target[at].tolist(),
                                                  has_target[at].tolist(), strict=True)]
        ats = at.tolist()
        votes = list(zip(*[_take(objs, j[at].tolist()) for objs, j in standing],
                         strict=True))
        weight = list(zip(*[w[at].tolist() for w in weights], strict=True))
        rules = list(map(_RULES.__getitem__, rule[at].tolist()))
        policy = engine.policy
        exposure = [policy.target_exposure(side, c, t, s)
                    for side, c, t in zip(side_l, conf_l, tgt_l, strict=True)]
        ts = bar_ts[bars_at[at]].tolist()
        cols = (ts, [s] * len(ats), side_l, conf_l, tgt_l,
                [engine._agent_indexes[s]] * len(ats), votes, weight, rules,
                agreement[at].tolist())
        last_standing = [objs[j[-1]] for objs, j in standing]
        self.final.append((last_standing, (side_l[-1], conf_l[-1], tgt_l[-1])))
        return bars_at[at], cols, exposure

    # -- during the walk -----------------------------------------------------------------
    def record_upto(self, row: int) -> None:
        """Hand the recorder the signal and decision rows of rows before ``row``."""
        k = int(np.searchsorted(self.sig_row, row))
        if k > self._sig_done:
            a = self._sig_done
            self.engine.recorder._signals.extend(zip(*(c[a:k] for c in self.signals),
                                                     strict=True))
            self._sig_done = k
        k = int(np.searchsorted(self.dec_row, row))
        if k > self._dec_done:
            a = self._dec_done
            self.engine.recorder._decisions.extend(zip(*(c[a:k] for c in self.decisions),
                                                       strict=True))
            self._dec_done = k

    def next_candidate(self, s: int, p: int, n: int) -> int:
        """The first row at or after ``p`` where symbol ``s`` has a decision whose exposure
        differs from the one acted on now (``n``: none)."""
        rows, exposure = self.cand_rows[s], self.cand_exposure[s]
        acted = self.engine._acted_target[s]
        i = self._ptr[s]
        if acted != self._seen[s]:  # acted on since the last search: look again from p
            i = bisect_left(rows, p)
            self._seen[s] = acted
        end = len(rows)
        while i < end and (rows[i] < p or exposure[i] == acted):
            i += 1
        self._ptr[s] = i
        return rows[i] if i < end else n

    def act(self, s: int, row: int, close: float) -> None:
        """After ``on_bar`` at ``row``: what ``Engine._vote`` does with its decision once
        recorded (the walk calls this at each row it visits that has a decision)."""
        found = self.at[s].get(row)
        if found is None:
            return
        d, exposure = found
        engine = self.engine
        if exposure == engine._acted_target[s]:
            return
        (decision_id, ts, _, side, confidence, target, _, votes, weights, _, _) = (
            c[d] for c in self.decisions)
        decision = Decision(decision_id, ts, engine.symbols[s], side, confidence, target,
                            engine._agent_names[s], votes, weights)
        if engine.fill_timing is FillTiming.CLOSE:
            engine._release(s, ts, close, decision, exposure)
        else:
            engine._pending[s] = (decision, exposure)

    def finish(self) -> None:
        """The engine's vote state as the per-bar loop leaves it."""
        engine = self.engine
        for s, (standing, last) in enumerate(self.final):
            engine._standing[s][:] = standing
            if last is not None:
                engine._last_decision[s] = last
        engine._decision_id += len(self.dec_row)


def _take(values: list[Any], idx: list[int]) -> list[Any]:
    return list(map(values.__getitem__, idx))


__all__ = ["BulkVotes", "bulk_reason"]
