"""A worker's results reach the driver whole: every batch equal to what the run stored
(schema included), a shared batch sent once per pipe and put back in every run."""

from __future__ import annotations

import pickle

import pyarrow as pa

from research.sweep_payload import TableReceiver, TableSender
from research.sweep_worker import CollectingStore, RunOutcome


def _bars(tag: str) -> pa.Table:
    return pa.table({
        "ts": pa.array([1, 2, 3], pa.timestamp("ns")),
        "symbol": pa.array([f"{tag}-BTC", f"{tag}-ETH", f"{tag}-BTC"]).dictionary_encode(),
        "close": pa.array([1.5, None, 2.5], pa.float64())})


def _outcome(run_id: str, *shared: pa.Table) -> RunOutcome:
    store = CollectingStore()
    for table in shared:
        store.append(run_id, "bars", table)
    store.append(run_id, "equity", pa.table({
        "ts": pa.array([7], pa.timestamp("ns")), "equity": [float(len(run_id))],
        "note": pa.array([None], pa.string())}))
    # two chunks with different dictionaries, as a recorder's flushes can make
    store.append(run_id, "signals", pa.concat_tables([
        pa.table({"agent": pa.array(["a", "b"]).dictionary_encode()}),
        pa.table({"agent": pa.array([run_id]).dictionary_encode()})]))
    return RunOutcome(run_id, "completed", None, store, {"sharpe": 1.0}, 0.1)


def _copy(outcome: RunOutcome) -> RunOutcome:
    """What the run stored, kept aside (``pack`` empties the outcome it is given)."""
    return RunOutcome(outcome.run_id, outcome.status, outcome.error,
                      CollectingStore(batches=list(outcome.store.batches)),
                      outcome.metrics, outcome.seconds)


def _send(sender: TableSender, receiver: TableReceiver, outcome: RunOutcome,
          shared: list[pa.Table]) -> tuple[RunOutcome, int]:
    """Through a pipe's worth of pickling; the outcome received and the bytes sent."""
    blob = pickle.dumps(sender.pack(outcome, lambda t: any(t is s for s in shared)))
    return receiver.unpack(pickle.loads(blob)), len(blob)


def _same(got: RunOutcome, want: RunOutcome) -> None:
    assert [name for name, _ in got.store.batches] == [name for name, _ in want.store.batches]
    for (_, a), (_, b) in zip(got.store.batches, want.store.batches, strict=True):
        assert a.schema.equals(b.schema, check_metadata=True)
        assert a.equals(b)
    assert (got.run_id, got.metrics) == (want.run_id, want.metrics)


def test_a_shared_batch_is_sent_once_and_restored_in_every_run() -> None:
    bars = pa.concat_tables([_bars("x")] * 2000)  # big enough to see in the bytes
    sender, receiver = TableSender(), TableReceiver()
    sizes = []
    for run_id in ("r1", "r2", "r3"):
        outcome = _outcome(run_id, bars)
        want = _copy(outcome)
        got, size = _send(sender, receiver, outcome, [bars])
        _same(got, want)
        sizes.append(size)
    assert sizes[1] < sizes[0] - bars.nbytes // 2
    assert abs(sizes[2] - sizes[1]) < 200


def test_the_receiver_lets_go_of_what_the_sender_let_go_of() -> None:
    tables = [_bars(tag) for tag in "abcd"]
    sender, receiver = TableSender(kept=2), TableReceiver(kept=2)
    # a, b, c (a forgotten by both), then a again: sent whole under a new number
    for run_id, table in [("1", tables[0]), ("2", tables[1]), ("3", tables[2]),
                          ("4", tables[0]), ("5", tables[2]), ("6", tables[3])]:
        outcome = _outcome(run_id, table)
        want = _copy(outcome)
        packed = sender.pack(outcome, lambda t: any(t is s for s in tables))
        again = run_id in ("5",)  # c is still kept on both ends
        assert (packed.refs[0].table is None) == again
        _same(receiver.unpack(pickle.loads(pickle.dumps(packed))), want)
    assert len(receiver._tables) == 2


def test_a_run_with_two_shared_batches_keeps_their_order() -> None:
    first, second = _bars("p"), _bars("q")
    sender, receiver = TableSender(), TableReceiver()
    for run_id in ("a", "b"):
        outcome = _outcome(run_id, first, second)
        want = _copy(outcome)
        got, _ = _send(sender, receiver, outcome, [first, second])
        _same(got, want)
