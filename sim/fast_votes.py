"""Votes in bulk for the fast path: every consensus vote of a run from the agents' batch
forms at once, so the walk stops only where a decision can make an order.

The per-bar loop, at each bar where a signal changes, records the signal, votes
(``VotingConsensus.resolve`` over the standing signals), records a decision when the
outcome (side, confidence, target) differs from the symbol's last one, and, when the
policy's target exposure is set and differs from the exposure last acted on, makes the
decision pending for the next open. Everything up to the exposure depends only on the
signals, so here it is computed for the whole run with numpy, the same IEEE operations
in the same order as ``resolve`` (weights added one agent after another, adding 0.0 where
``resolve`` adds nothing: the sums start at +0.0 and the weights are >= 0). The signal,
decision and vote rows go to the recorder as columns as the walk passes them (the same
rows, in the same order, before the same flushes). What stays sequential is whether a
decision becomes an order: the exposure last acted on moves only at bars the walk visits
(a release at an open, a flatten), so the walk visits a bar with a decision only when
its exposure differs from the one acted on at that point (``next_candidate``), and after
``Engine.on_bar`` there acts on it as ``Engine._vote`` does (``act``).

``bulk_reason`` says why a run keeps a vote per event bar instead: state the votes read
that only the walk has (stale signals, performance weights, volatility sizing), conflict
rules over per-signal reasons, a consensus or recorder the module does not know, or a
signal the engine would refuse (the run must fail where the per-bar loop fails).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Callable
from itertools import count
from operator import getitem
from typing import Any

import numpy as np

from sim.agents.batch import SignalChanges
from sim.consensus import VotingConsensus
from sim.engine import Engine, valid_signal
from sim.messages import FillTiming, Side, Signal
from sim.recorder import Recorder
from sim.risk import attributed
from sim.vote_rows import RULES

_SIDES = {int(side): side for side in Side}
_LONG, _SHORT, _FLAT, _HOLD = int(Side.LONG), int(Side.SHORT), int(Side.FLAT), int(Side.HOLD)
_MIN_AGREEMENT = RULES.index("min_agreement")
_PURE_SIZINGS = ("fixed_fraction", "confidence_exponential", "kelly")
# A candidate decision as ``act`` reads it: its place among the symbol's decisions
# (``standing``) and its columns (one ``item()``: a tuple of Python values).
_CANDIDATE = np.dtype([(name, np.int64) for name in ("local", "id", "ts")]
                      + [("side", np.int8)])
# Codes held for the whole run are kept narrow (a fast run's arrays are per decision and
# per vote: at a million bars, hundreds of thousands of each); the tables' builder
# (``sim.vote_rows``) widens them as the recorder's own rows are.
_SIDE = np.int8
_CODE = np.int32
_PICK: Callable[[list[Signal | None], int], Signal | None] = getitem  # objects[code]


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


class _Changes:
    """One agent's accepted signal changes: bar indexes, and per change a code into its
    distinct signals (``objects``; code 0 is None, no signal yet), with each distinct
    signal's fields as arrays indexed by code."""

    def __init__(self, index: np.ndarray, codes: np.ndarray, objects: list[Signal]) -> None:
        self.index = index
        self.codes = codes  # >= 1
        self.objects: list[Signal | None] = [None, *objects]
        self.side = np.array([_HOLD, *(int(o.side) for o in objects)], _SIDE)
        self.confidence = np.array([0.0, *(o.confidence for o in objects)], np.float64)
        self.has_target = np.array([False, *(o.target is not None for o in objects)])
        self.target = np.array([0.0, *(0.0 if o.target is None else o.target
                                       for o in objects)], np.float64)
        self.reason = np.array([None, *(o.reason for o in objects)], dtype=object)


def _kept(changes: SignalChanges) -> _Changes | None:
    """The changes ``Engine.on_bar`` accepts (a signal equal to the standing one is not a
    change, and the standing one stays), or None when one would be refused."""
    signals = changes.signals
    if changes.codes is not None:
        codes, objects = _table_codes(changes.codes, changes.table)
    else:
        ids: dict[int, int] = {}
        raw = np.fromiter(map(ids.setdefault, map(id, signals), count()), np.int64,
                          count=len(signals))
        # raw[i] is the position of the first object with signal i's id: i itself there
        first = raw == np.arange(len(raw))
        codes = (np.cumsum(first) - 1)[raw]
        objects = [signals[i] for i in np.flatnonzero(first).tolist()]
    if not all(map(valid_signal, objects)):
        return None
    keep = np.ones(len(codes), dtype=bool)
    if len(codes) > 1:
        prev = codes[:-1]
        differ = np.flatnonzero(codes[1:] != prev)
        keep[1:] = False
        keep[1:][differ] = True
        k = len(objects)  # each distinct (previous, next) pair of codes once
        pairs = np.unique(prev[differ] * k + codes[1:][differ]).tolist()
        if any(objects[a // k] == objects[a % k] for a in pairs):
            # a value-equal change is dropped and leaves the earlier object standing
            standing = signals[0]
            for i in range(1, len(signals)):
                sig = signals[i]
                keep[i] = not (sig is standing or sig == standing)
                if keep[i]:
                    standing = sig
    at = np.flatnonzero(keep)
    return _Changes(changes.index[at], codes[at] + 1, objects)


def _table_codes(picked: np.ndarray, table: tuple[Signal, ...]
                 ) -> tuple[np.ndarray, list[Signal]]:
    """Codes into the distinct objects (by identity) of a batch form's changes given as
    codes into its table, and those objects: the table's entries the changes use."""
    used = np.flatnonzero(np.bincount(picked, minlength=len(table))).tolist()
    ids: dict[int, int] = {}
    objects: list[Signal] = []
    remap = np.zeros(len(table), np.int64)
    for t in used:
        code = ids.setdefault(id(table[t]), len(objects))
        if code == len(objects):
            objects.append(table[t])
        remap[t] = code
    return remap[picked], objects


class BulkVotes:
    """Every signal, decision and vote row of a fast run, and the decisions the walk must
    act on (module docstring). ``rows_of[s]``: symbol ``s``'s rows in the walk's order."""

    def __init__(self, engine: Engine, bars: list[Any], rows_of: list[np.ndarray],
                 changes: list[list[SignalChanges]]) -> None:
        self.engine = engine
        self.ok = True
        n_sym = len(changes)
        kept: list[list[_Changes]] = []
        for per_agent in changes:
            mine = [_kept(c) for c in per_agent]
            if any(k is None for k in mine):
                self.ok = False
                return
            kept.append(mine)  # type: ignore[arg-type]
        self.kept = kept
        self._signal_columns(engine, bars, rows_of, kept)
        # per symbol, the decisions whose exposure is set (candidates), in order: their
        # rows, exposures, the first candidate after each one's run of equal exposures
        # (``array``s: read one value at a time, as a list would be, at a fifth of the
        # memory), what ``act`` reads of each (``_CANDIDATE``), and a byte per walk row
        # (1: one)
        self.cand_rows: list[array[int]] = [array("q") for _ in range(n_sym)]
        self.cand_exposure: list[array[float]] = [array("d") for _ in range(n_sym)]
        self.cand_run_end: list[array[int]] = [array("q") for _ in range(n_sym)]
        self.cand_record: list[np.ndarray] = [np.zeros(0, _CANDIDATE)] * n_sym
        n_rows = sum(map(len, rows_of))
        self.cand_at: list[bytes] = [bytes(n_rows)] * n_sym
        # per symbol, by decision (rows) and agent (columns): the standing signal's code
        # in that agent's ``objects``; and the agents' objects
        self.standing: list[np.ndarray] = [np.zeros((0, 0), _CODE)] * n_sym
        self.objects = [[ch.objects for ch in per_agent] for per_agent in kept]
        self._last: dict[int, tuple[Side, float, float | None]] = {}
        parts = [self._votes(s, kept[s], np.asarray(bars[s].ts), rows_of[s])
                 for s in range(n_sym)]
        self._decision_columns(engine, [p for p in parts if p is not None], n_rows)
        self._sig_done = self._dec_done = 0
        self._ptr = [0] * n_sym

    def _signal_columns(self, engine: Engine, bars: list[Any], rows_of: list[np.ndarray],
                        kept: list[list[_Changes]]) -> None:
        rows, pos, cols = [], [], []
        for s, per_agent in enumerate(kept):
            ts = np.asarray(bars[s].ts, dtype=np.int64)
            for p, ch in enumerate(per_agent):
                idx, c = ch.index, ch.codes
                engine.performance.on_signals(s, p, idx + 1, ch.side[c])
                rows.append(rows_of[s][idx])
                pos.append(np.full(len(idx), p, np.int64))
                cols.append((ts[idx], np.full(len(idx), s, _CODE),
                             np.full(len(idx), engine._agent_indexes[s][p], _CODE),
                             ch.side[c], ch.confidence[c], ch.target[c], ch.has_target[c],
                             ch.reason[c]))
        srow = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        order = np.lexsort((np.concatenate(pos), srow)) if rows else srow
        self.sig_row = srow[order]
        self.signals = [np.concatenate([c[k] for c in cols])[order] if cols
                        else np.zeros(0) for k in range(8)]

    def _votes(self, s: int, kept: list[_Changes], bar_ts: np.ndarray,
               rows_of: np.ndarray) -> tuple[Any, ...] | None:
        """Symbol ``s``'s decisions as columns (rows, ts, side, confidence, target, has
        target, rule, agreement, exposure, vote sides/confidences/weights per agent);
        None when no signal is ever given."""
        engine = self.engine
        consensus: VotingConsensus = engine.consensus  # type: ignore[assignment]
        if not any(len(k.index) for k in kept):
            return None
        given = np.zeros(len(bar_ts), dtype=bool)
        for k in kept:
            given[k.index] = True
        bars_at = np.flatnonzero(given)
        m = len(bars_at)
        by_conf = consensus.method == "confidence_weighted"
        sums = {code: np.zeros(m) for code in (_LONG, _SHORT, _FLAT)}
        counts = {code: np.zeros(m, np.int64) for code in (_LONG, _SHORT, _FLAT)}
        standing, sides, weights = [], [], []
        for ch in kept:
            j = np.searchsorted(ch.index, bars_at, side="right") - 1
            std = np.where(j >= 0, ch.codes[np.maximum(j, 0)] if len(j) and len(ch.codes)
                           else 0, 0)
            sd = ch.side[std]
            opinion = sd != _HOLD
            w = np.where(opinion, ch.confidence[std] if by_conf else 1.0, 0.0)
            counted = opinion & (w != 0.0)
            for code in (_LONG, _SHORT, _FLAT):
                on = counted & (sd == code)
                sums[code] += np.where(on, w, 0.0)
                counts[code] += on
            standing.append(std)
            sides.append(sd)
            weights.append(w)
        long, short, flat = sums[_LONG], sums[_SHORT], sums[_FLAT]
        n_long, n_short, n_flat = counts[_LONG], counts[_SHORT], counts[_FLAT]
        voters = n_long + n_short + n_flat
        agreement = np.divide(np.maximum(np.maximum(n_long, n_short), n_flat), voters,
                              out=np.zeros(m), where=voters > 0)
        total = long + short
        total += flat
        best = np.full(m, _HOLD, np.int64)
        top = np.zeros(m)
        rule = np.zeros(m, np.int64)
        for code, win in ((_LONG, (long > short) & (long > flat)),
                          (_SHORT, (short > long) & (short > flat)),
                          (_FLAT, (flat > long) & (flat > short))):
            best[win] = code
            top[win] = sums[code][win]
        tie = best == _HOLD
        if consensus.conflict == "conservative":
            best[tie], top[tie], rule[tie] = _FLAT, flat[tie], RULES.index("conservative")
        else:
            rule[tie] = RULES.index("hold")
        share = np.divide(top, total, out=np.zeros(m), where=total > 0.0)
        low = (rule == 0) & (share < consensus.min_agreement)
        rule[low] = _MIN_AGREEMENT
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
        # the target: the mean of the winners' targets (any weight), in the agents' order
        tsum = np.zeros(m)
        tn = np.zeros(m, np.int64)
        for ch, std, sd in zip(kept, standing, sides, strict=True):
            mine = ch.has_target[std] & (sd == best) & (sd != _HOLD)
            tsum += np.where(mine, ch.target[std], 0.0)
            tn += mine
        has_target = (tn > 0) & (best != _HOLD) & (rule != _MIN_AGREEMENT)
        target = np.divide(tsum, tn, out=np.zeros(m), where=has_target)
        # a decision where the outcome changes (the first vote always)
        new = np.ones(m, dtype=bool)
        new[1:] = ((best[1:] != best[:-1]) | (conf[1:] != conf[:-1])
                   | (has_target[1:] != has_target[:-1])
                   | (has_target[1:] & (target[1:] != target[:-1])))
        at = np.flatnonzero(new)
        best, conf, target, has_target = best[at], conf[at], target[at], has_target[at]
        exposure = self._exposures(s, best, conf, target, has_target)
        self.standing[s] = np.stack([std[at].astype(_CODE) for std in standing], axis=1)
        vote_weight = np.stack([w[at] for w in weights], axis=1)
        vote_side = np.stack([sd[at] for sd in sides], axis=1)
        vote_conf = np.stack([ch.confidence[std[at]] for ch, std in zip(
            kept, standing, strict=True)], axis=1)
        return (s, rows_of[bars_at[at]], bar_ts[bars_at[at]], best.astype(_SIDE), conf,
                target, has_target, rule[at].astype(_SIDE), agreement[at], exposure,
                vote_side, vote_conf, vote_weight)

    def _exposures(self, s: int, best: np.ndarray, conf: np.ndarray, target: np.ndarray,
                   has_target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``policy.target_exposure`` of each decision, and where it is set (not None),
        vectorised for ``fixed_fraction`` with the same operations."""
        policy = self.engine.policy
        if policy.sizing != "fixed_fraction":
            tgts = [t if h else None for t, h in zip(target.tolist(), has_target.tolist(),
                                                     strict=True)]
            got = [policy.target_exposure(_SIDES[b], c, t, s) for b, c, t in zip(
                best.tolist(), conf.tolist(), tgts, strict=True)]
            has = np.array([e is not None for e in got], dtype=bool)
            return np.array([0.0 if e is None else e for e in got], np.float64), has
        cap = policy.exposure
        # min(target, cap): the target unless cap < target
        size = np.where(has_target & ~(cap < target), target, cap)
        if policy.scale_by_confidence:
            size = size * conf
        if policy.max_leverage is not None:
            size = np.where(size > policy.max_leverage, policy.max_leverage, size)
        size = np.where(best == _LONG, size, -size)
        zero = (best == _FLAT) | ((best == _SHORT) & (not policy.allow_short))
        size[zero] = 0.0
        return size, best != _HOLD

    def _decision_columns(self, engine: Engine, parts: list[tuple[Any, ...]],
                          n_rows: int) -> None:
        """The decisions of every symbol numbered in the walk's order, their vote rows, and
        each symbol's candidates."""
        if not parts:
            self.dec_row = np.zeros(0, np.int64)
            self.decisions: list[np.ndarray] = []
            self.votes: list[np.ndarray] = []
            self.vote_start = np.zeros(1, np.int64)
            return
        first = engine._decision_id + 1
        agents = np.concatenate([np.tile(np.asarray(engine._agent_indexes[p[0]], _CODE),
                                         len(p[1])) for p in parts])
        if len(parts) == 1:  # one symbol: its decisions and votes are in the walk's order
            (p,) = parts
            m, k = p[10].shape
            rank = np.arange(m, dtype=np.int64)
            self.dec_row = p[1]
            self.decisions = [rank + first, p[2], np.full(m, p[0], _CODE),
                              *(p[j] for j in (3, 4, 5, 6, 7, 8))]
            self.vote_start = np.arange(0, m * k + 1, k, dtype=np.int64)
            self.votes = [agents] + [p[j].ravel() for j in (10, 11, 12)]
        else:
            rank = self._merge(parts, first, agents)
        offset = 0
        for p in parts:
            s, rows, (exposure, has) = p[0], p[1], p[9]
            local = np.flatnonzero(has)
            self.cand_rows[s] = array("q", rows[local].astype(np.int64, copy=False).tobytes())
            at = np.zeros(n_rows, np.uint8)
            at[rows[local]] = 1
            self.cand_at[s] = at.tobytes()
            e = exposure[local]
            self.cand_exposure[s] = array("d", e.tobytes())
            starts = np.flatnonzero(np.diff(e) != 0.0) + 1  # where a run of equal ones ends
            self.cand_run_end[s] = array("q", np.repeat(
                np.append(starts, len(e)), np.diff(np.concatenate(([0], starts, [len(e)])))
            ).astype(np.int64, copy=False).tobytes())
            record = np.empty(len(local), _CANDIDATE)
            record["local"] = local
            g = rank[offset + local]
            for name, j in (("id", 0), ("ts", 1), ("side", 3)):
                record[name] = self.decisions[j][g]
            self.cand_record[s] = record
            offset += len(rows)
            last = len(rows) - 1
            self._last[s] = (_SIDES[int(p[3][last])], float(p[4][last]),
                             float(p[5][last]) if p[6][last] else None)

    def _merge(self, parts: list[tuple[Any, ...]], first: int, agents: np.ndarray
               ) -> np.ndarray:
        """The decision and vote columns of several symbols in the walk's order; returns
        each decision's place in it (``parts``' order)."""
        drow = np.concatenate([p[1] for p in parts])
        order = np.argsort(drow, kind="stable")
        rank = np.empty(len(order), np.int64)
        rank[order] = np.arange(len(order))
        self.dec_row = drow[order]
        ids = np.arange(first, first + len(order), dtype=np.int64)
        syms = np.concatenate([np.full(len(p[1]), p[0], _CODE) for p in parts])
        k_of = np.concatenate([np.full(len(p[1]), p[10].shape[1], np.int64) for p in parts])
        self.decisions = [ids] + [np.concatenate([p[k] for p in parts])[order]
                                  for k in (2, 3, 4, 5, 6, 7, 8)]
        self.decisions.insert(2, syms[order])
        # ids, ts, symbol, side, confidence, target, has_target, rule, agreement
        per = k_of[order]
        self.vote_start = np.concatenate(([0], np.cumsum(per)))
        # vote rows: by decision, then the agents' order
        vrank = np.concatenate([np.repeat(rank[o:o + len(p[1])], p[10].shape[1])
                                for o, p in zip(np.cumsum([0] + [len(p[1]) for p in parts]),
                                                parts, strict=False)])
        vpos = np.concatenate([np.tile(np.arange(p[10].shape[1]), len(p[1])) for p in parts])
        vorder = np.lexsort((vpos, vrank))
        self.votes = [agents[vorder]] + [np.concatenate([p[k].ravel() for p in parts])[vorder]
                                         for k in (10, 11, 12)]
        return rank

    # -- during the walk -----------------------------------------------------------------
    def record_upto(self, row: int) -> None:
        """Hand the recorder the signal, decision and vote rows of rows before ``row``."""
        a, k = self._sig_done, int(np.searchsorted(self.sig_row, row))
        b, d = self._dec_done, int(np.searchsorted(self.dec_row, row))
        if k > a or d > b:
            va, vb = int(self.vote_start[b]), int(self.vote_start[d])
            self.engine.recorder.vote_columns(
                [c[a:k] for c in self.signals], [c[b:d] for c in self.decisions],
                [c[va:vb] for c in self.votes], self.vote_start[b:d + 1] - va)
            self._sig_done, self._dec_done = k, d

    def next_candidate(self, s: int, p: int, n: int) -> int:
        """The first row at or after ``p`` where symbol ``s`` has a decision whose exposure
        differs from the one acted on now (``n``: none)."""
        rows = self.cand_rows[s]
        end = len(rows)
        i = self._ptr[s] = bisect_left(rows, p, self._ptr[s])
        if i < end and self.cand_exposure[s][i] == self.engine._acted_target[s]:
            i = self.cand_run_end[s][i]  # the next exposure that differs
        return rows[i] if i < end else n

    def act(self, s: int, row: int, close: float) -> None:
        """After ``on_bar`` at ``row``: what ``Engine._vote`` does with its decision once
        recorded (the walk calls this at each row it visits that has one in
        ``cand_at``)."""
        c = bisect_left(self.cand_rows[s], row)
        exposure = self.cand_exposure[s][c]
        engine = self.engine
        if exposure == engine._acted_target[s]:
            return
        i, decision_id, ts, side = self.cand_record[s].item(c)
        side = _SIDES[side]
        agents = (attributed(side, engine._agent_names[s],
                             tuple(map(_PICK, self.objects[s], self.standing[s][i].tolist())))
                  if engine._attribute else ())
        if engine.fill_timing is FillTiming.CLOSE:
            engine._release(s, ts, close, decision_id, ts, side, exposure, agents)
        else:
            engine._pending[s] = (decision_id, ts, side, exposure, agents)

    def finish(self) -> None:
        """The engine's vote state as the per-bar loop leaves it (the last decisions were
        set when they were made)."""
        engine = self.engine
        for s, per_agent in enumerate(self.kept):
            engine._standing[s][:] = [ch.objects[int(ch.codes[-1])] if len(ch.codes)
                                      else None for ch in per_agent]
        for s, key in self._last.items():
            engine._last_decision[s] = key
        engine._decision_id += len(self.dec_row)


__all__ = ["BulkVotes", "bulk_reason"]
