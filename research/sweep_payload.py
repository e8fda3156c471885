"""What a sweep worker sends the driver, without the batches the driver already has.

A worker's runs share a few data sets (``sim.data_cache``), and each run's ``bars`` batch
is the very same Arrow table as every other run's on that data: about 80% of a bundled
sweep run's result by bytes, pickled, sent and unpickled again for every run. On a pipe
from one worker (``research.sweep_executors.run_processes``), a table the driver has
already received goes as its number instead: the worker numbers the tables it sends and
keeps the last ``SHARED_KEPT`` of them alive (so their ids stay theirs); the driver keeps
the same last ``SHARED_KEPT``. Messages on one pipe arrive in the order they were sent,
so both sides agree on what is kept without telling each other.

Only tables the worker says are shared are numbered (``TableSender.pack``'s
``shared``). Every other batch goes as Arrow IPC bytes: the same columns, schema and
values, read back in C++ (pickling a table rebuilds each of its arrays in Python: about
4 ms of a run's 25-30 ms, both ends together, against under 1 ms this way).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from research.sweep_worker import RunOutcome

SHARED_KEPT = 64
_PLACEHOLDER = pa.table({})  # where a shared batch was (an empty batch is never kept)


@dataclass(frozen=True, slots=True)
class Packed:
    """A run's outcome with every batch taken out, and what puts them back."""

    outcome: RunOutcome
    refs: list[SharedRef]
    encoded: list[tuple[int, bytes]]  # (batch index, the batch as an Arrow IPC stream)


@dataclass(frozen=True, slots=True)
class SharedRef:
    """Batch ``index`` of the run is shared table ``number``; ``table`` is given the first
    time that number is sent, None after."""

    index: int
    number: int
    table: pa.Table | None


class TableSender:
    """The worker's end of one pipe."""

    def __init__(self, kept: int = SHARED_KEPT) -> None:
        self._kept = kept
        self._numbers: OrderedDict[int, tuple[int, pa.Table]] = OrderedDict()  # by id()
        self._next = 0

    def pack(self, outcome: RunOutcome, shared: Callable[[pa.Table], bool]) -> Packed:
        """``outcome`` with each batch replaced by a placeholder (in place: the outcome
        is the worker's to send, not to keep), and what restores them."""
        refs: list[SharedRef] = []
        encoded: list[tuple[int, bytes]] = []
        batches = outcome.store.batches
        for index, (name, table) in enumerate(batches):
            if not shared(table):
                encoded.append((index, _to_ipc(table)))
                batches[index] = (name, _PLACEHOLDER)
                continue
            found = self._numbers.get(id(table))
            if found is not None and found[1] is table:
                refs.append(SharedRef(index, found[0], None))
            else:
                number = self._next
                self._next += 1
                self._numbers[id(table)] = (number, table)
                if len(self._numbers) > self._kept:
                    self._numbers.popitem(last=False)
                refs.append(SharedRef(index, number, table))
            batches[index] = (name, _PLACEHOLDER)
        return Packed(outcome, refs, encoded)


class TableReceiver:
    """The driver's end of one pipe."""

    def __init__(self, kept: int = SHARED_KEPT) -> None:
        self._kept = kept
        self._tables: dict[int, pa.Table] = {}

    def unpack(self, packed: Packed) -> RunOutcome:
        """The outcome with its batches put back (in place)."""
        batches = packed.outcome.store.batches
        for index, data in packed.encoded:
            batches[index] = (batches[index][0], pa.ipc.open_stream(data).read_all())
        for ref in packed.refs:
            if ref.table is not None:
                self._tables[ref.number] = ref.table
                self._tables.pop(ref.number - self._kept, None)  # the sender let it go
            batches[ref.index] = (batches[ref.index][0], self._tables[ref.number])
        return packed.outcome


def _to_ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()
