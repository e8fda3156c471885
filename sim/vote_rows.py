"""The signals, decisions and votes tables of rows given as columns (``Recorder.
vote_columns``: a fast run's votes taken in bulk by ``sim.fast_votes``), built as the
recorder builds them from rows given one by one: the same Arrow types, the same values,
and the same per (symbol, agent) vote counts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
from numpy.lib.stride_tricks import as_strided

from sim.messages import HOLD, Side

if TYPE_CHECKING:
    from sim.recorder import Recorder

TS = pa.timestamp("ns")
# Side values -1..2 index this dictionary after adding 1.
SIDE_DICT = pa.array([Side(v).name for v in range(-1, 3)])
# The rule that decided a vote (sim.consensus), by the code sim.fast_votes gives it (the
# order of resolve's checks).
RULES = ("none", "quorum", "no_votes", "dissent", "hold", "conservative", "min_agreement")
_RULE_DICT = pa.array(RULES, pa.string())


def _codes(lookup: np.ndarray, codes: np.ndarray) -> pa.Array:
    """Integer codes -> a dictionary-encoded string column (``Recorder._names``)."""
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)),
                                          pa.array(list(lookup), pa.string()))


def _sides(codes: np.ndarray) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array((codes + 1).astype(np.int32)), SIDE_DICT)


def merged(parts: list[tuple[list[np.ndarray], ...]]
           ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Several ``vote_columns`` calls' (signals, decisions, votes, [starts]) as one."""
    if len(parts) == 1:
        signals, decisions, votes, (starts,) = parts[0]
        return signals, decisions, votes, starts

    def joined(k: int) -> list[np.ndarray]:
        given = [p[k] for p in parts if p[k] and len(p[k][0])]
        return [_join(cols) for cols in zip(*given, strict=True)] if given else []

    signals, decisions, votes = joined(0), joined(1), joined(2)
    ends, offset = [np.zeros(1, np.int64)], 0
    for p in parts:
        starts = p[3][0]
        if len(starts) > 1:
            ends.append(starts[1:] - starts[0] + offset)
            offset += int(starts[-1] - starts[0])
    return (signals or [np.zeros(0)], decisions, votes, np.concatenate(ends))


def _join(pieces: Sequence[np.ndarray]) -> np.ndarray:
    """``pieces`` end to end: a read-only view when they are consecutive slices of one
    array (``BulkVotes.record_upto`` hands a fast run's columns over chunk by chunk, as
    slices of the run's arrays), else a copy. (An empty slice has no place: left out.)"""
    pieces = [piece for piece in pieces if len(piece)] or list(pieces[:1])
    first = pieces[0]
    base, step = first.base, first.itemsize
    if len(pieces) > 1 and base is not None and first.ndim == 1 and first.strides == (step,):
        end = first.__array_interface__["data"][0] + first.nbytes
        for piece in pieces[1:]:
            if (piece.base is not base or piece.dtype != first.dtype
                    or piece.strides != (step,)
                    or piece.__array_interface__["data"][0] != end):
                break
            end += piece.nbytes
        else:  # every piece starts where the one before ends, in the same buffer
            return as_strided(first, shape=(sum(map(len, pieces)),), strides=(step,),
                              writeable=False)
    return np.concatenate(pieces)


def vote_tables(rec: Recorder, signals: list[np.ndarray], decisions: list[np.ndarray],
                votes: list[np.ndarray], starts: np.ndarray
                ) -> list[tuple[str, dict[str, Any]]]:
    """The tables of one ``vote_columns`` call (see there for the columns); adds the
    decisions' votes to ``rec``'s vote counts, as its flush does."""
    out: list[tuple[str, dict[str, Any]]] = []
    if len(signals[0]):
        ts, sym, agent, side, conf, target, has_target, reason = signals
        out.append(("signals", {
            "ts": pa.array(ts, type=TS), "symbol": _codes(rec._symbols, sym),
            "agent": _codes(rec._agents, agent),
            "side": _sides(side),
            "confidence": np.ascontiguousarray(conf, np.float64),
            "target": pa.array(target, type=pa.float64(), mask=~has_target),
            "reason": pa.array(reason, type=pa.string()),
        }))
    if decisions and len(decisions[0]):
        ids, ts, sym, side, conf, target, has_target, rule, agree = decisions
        out.append(("decisions", {
            "decision_id": ids,
            "ts": pa.array(ts, type=TS),
            "symbol": _codes(rec._symbols, sym),
            "side": _sides(side),
            "confidence": conf,
            "target": pa.array(target, type=pa.float64(), mask=~has_target),
            "method": _codes(np.array([rec._method]), np.zeros(len(ids), np.int64)),
            "rule": pa.DictionaryArray.from_arrays(pa.array(rule.astype(np.int32)),
                                                   _RULE_DICT),
            "agreement": agree,
        }))
        agent, vside, vconf, weight = votes
        per = np.diff(starts)
        _count(rec, np.repeat(sym, per), np.repeat(side, per), agent, vside)
        out.append(("votes", {
            "decision_id": np.repeat(ids, per),
            "agent": _codes(rec._agents, agent),
            "side": _sides(vside),
            "confidence": vconf,
            "weight": weight,
        }))
    return out


def _count(rec: Recorder, symbol: np.ndarray, outcome: np.ndarray, agent: np.ndarray,
           vote: np.ndarray) -> None:
    """``Recorder._count_votes`` of vote rows given as arrays (one entry per vote)."""
    hold = int(HOLD)
    voted = vote != hold
    ruled = voted & (outcome != hold)
    agreed = vote == outcome
    shape = rec.vote_counts.shape
    # (symbol, agent) as one index, counted by bincount (codes may come narrow)
    cell = symbol.astype(np.int64) * shape[1] + agent
    size = shape[0] * shape[1]
    for counts, where in ((rec.vote_counts, voted), (rec.majority_counts, ruled & agreed),
                          (rec.overruled_counts, ruled & ~agreed)):
        counts += np.bincount(cell[where], minlength=size).reshape(shape)
