"""``sim.vote_rows``: a fast run's vote columns, handed over chunk by chunk as slices of
the run's arrays, are joined without a copy only when the slices are consecutive."""

from __future__ import annotations

import numpy as np
import pytest

from sim.vote_rows import _join, merged


@pytest.mark.parametrize("column", [
    np.arange(20, dtype=np.int64),
    np.linspace(0.0, 1.0, 20),
    np.array([f"r{i % 3}" for i in range(20)], dtype=object),
    np.arange(40.0).reshape(20, 2)[:, ::-1].copy().ravel()[:20],  # a view of a 2-D array
])
def test_consecutive_slices_join_as_a_view_of_the_same_values(column: np.ndarray) -> None:
    pieces = [column[0:3], column[3:3], column[3:11], column[11:20]]
    joined = _join(pieces)
    assert joined.dtype == column.dtype
    assert joined.tolist() == column.tolist()
    assert np.shares_memory(joined, column)
    assert not joined.flags.writeable


@pytest.mark.parametrize("pieces", [
    lambda x: [x[0:3], x[4:9]],  # a gap
    lambda x: [x[3:9], x[0:3]],  # out of order
    lambda x: [x[0:3], x[0:3]],  # the same rows twice
    lambda x: [x[0:4], x[4:8].copy()],  # another buffer
    lambda x: [x[0:10:2], x[10:20:2]],  # strided
    lambda x: [x[0:4], x.astype(np.int32)[4:8]],  # another type
])
def test_other_pieces_are_copied_end_to_end(pieces: object) -> None:
    x = np.arange(20, dtype=np.int64)
    parts = pieces(x)  # type: ignore[operator]
    joined = _join(parts)
    assert joined.tolist() == np.concatenate(parts).tolist()
    assert not np.shares_memory(joined, x)


def test_merged_chunks_are_the_whole_columns() -> None:
    ids = np.arange(10, dtype=np.int64)
    votes = np.arange(30, dtype=np.int64)
    starts = np.arange(0, 31, 3, dtype=np.int64)
    sig = np.arange(7, dtype=np.int64)
    parts = [([sig[a:b]], [ids[c:d]], [votes[3 * c:3 * d]], [starts[c:d + 1]])
             for a, b, c, d in ((0, 2, 0, 4), (2, 2, 4, 4), (2, 7, 4, 10))]
    signals, decisions, vote_cols, ends = merged(parts)  # type: ignore[arg-type]
    assert signals[0].tolist() == sig.tolist()
    assert decisions[0].tolist() == ids.tolist()
    assert vote_cols[0].tolist() == votes.tolist()
    assert ends.tolist() == starts.tolist()
