"""The order path's speed-ups keep what they replace: a message built by ``quick_init``
is the dataclass it was (values, defaults, equality, frozen, pickling, ``replace``), the
recorder's column transpose refuses a row of the wrong width, and the equity book's
array columns hold exactly the values appended."""

from __future__ import annotations

import dataclasses
import pickle
from dataclasses import dataclass

import pytest

from sim.messages import OrderFilled, Signal, SubmitOrder, quick_init
from sim.portfolio import EquityBook
from sim.recorder_columns import _fields, _transpose


@dataclass(frozen=True, slots=True)
class _Reference:
    """SubmitOrder as ``dataclass`` alone writes it."""

    order_id: int
    decision_id: int
    ts: int
    symbol: str
    quantity: float
    ref_price: float
    kind: str = "market"
    limit_price: float | None = None
    stop_price: float | None = None
    tif: str = "gtc"
    post_only: bool = False
    reduce_only: bool = False


def test_a_quick_init_message_is_the_dataclass_it_was() -> None:
    args = (3, 2, 10**18, "BTC", -1.5, 101.25)
    fast = SubmitOrder(*args, limit_price=100.0, tif="ioc")
    plain = _Reference(*args, limit_price=100.0, tif="ioc")
    assert dataclasses.astuple(fast) == dataclasses.astuple(plain)
    assert fast == SubmitOrder(*args, limit_price=100.0, tif="ioc")
    assert hash(fast) == hash(SubmitOrder(*args, limit_price=100.0, tif="ioc"))
    assert fast != SubmitOrder(*args)
    assert pickle.loads(pickle.dumps(fast)) == fast
    assert dataclasses.replace(fast, ts=5).ts == 5
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.ts = 1  # type: ignore[misc]
    with pytest.raises(TypeError, match="ref_price"):
        SubmitOrder(1, 2, 3, "BTC", 1.0)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword"):
        SubmitOrder(*args, nope=1)  # type: ignore[call-arg]
    filled = OrderFilled(1, 3, 5, "BTC", "a", 1.0, 2.0, 0.1, 2.0)
    assert filled.liquidity == "taker"  # a default kept
    assert Signal(1, 0.5).reason is None  # type: ignore[arg-type]


def test_quick_init_refuses_a_default_factory() -> None:
    @dataclass(frozen=True, slots=True)
    class WithFactory:
        values: list[int] = dataclasses.field(default_factory=list)

    with pytest.raises(TypeError, match="default factory"):
        quick_init(WithFactory)


def test_the_transpose_gives_columns_and_refuses_a_ragged_row() -> None:
    rows = [(1, "a", None), (2, "b", 0.5)]
    assert _transpose(rows, 3) == [[1, 2], ["a", "b"], [None, 0.5]]
    with pytest.raises(ValueError, match="widths"):
        _transpose([(1, "a", None), (2, "b")], 3)
    with pytest.raises(ValueError, match="widths"):
        _transpose([(1, "a", None, 4)], 3)
    fills = [OrderFilled(1, 3, 5, "BTC", "a", 1.0, 2.0, 0.1, 2.0)]
    assert _fields(fills, ("fill_id", "venue", "fee")) == [[1], ["a"], [0.1]]


def test_the_equity_book_holds_exact_values_and_drains() -> None:
    book = EquityBook()
    seen: list[tuple[list[int], list[float]]] = []
    book.follow(lambda ts, eq, start, now: seen.append((list(ts[start:]), list(eq[start:]))))
    values = [100_000.0, 0.1 + 0.2, -1e-300, float("inf")]
    for i, v in enumerate(values):
        book.ts.append(1_700_000_000_000_000_000 + i)
        book.cash.append(v)
        book.equity.append(v)
        book.realized.append(v)
        book.unrealized.append(v)
    assert list(book.equity) == values and len(book) == 4
    assert book.ts[-1] == 1_700_000_000_000_000_003
    book.drain()
    assert seen == [([1_700_000_000_000_000_000 + i for i in range(4)], values)]
    assert len(book) == 0 and list(book.cash) == []
