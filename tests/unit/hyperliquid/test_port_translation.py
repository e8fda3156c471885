"""``HyperliquidPort`` only translates: Hyperliquid's pushes become the core's neutral
messages, its transport errors the contract's two failures, an IOC that matched nothing
the neutral "expired"; and an order's request is written before ``place`` returns."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from live.hyperliquid.errors import SubmissionUnresolved, TransportFailed
from live.hyperliquid.port import HyperliquidPort, translate_push
from live.hyperliquid.venue import PreparedOrder
from live.port import (
    DescribingAdapter,
    FillsReported,
    OrderNotSent,
    OrdersUpdated,
    OutcomeUnknown,
    PushingAdapter,
    Reconnected,
    VenueAdapter,
)
from live.venue_types import EXPIRED, FILLED, REJECTED, OrderState

ORDER = PreparedOrder("ETH", "0x" + "ab" * 16, 0.5, 2000.0,
                      {"type": "order", "orders": [{"t": {"limit": {"tif": "Ioc"}}}]})


class StubVenue:
    """The REST adapter's surface ``HyperliquidPort.place`` uses, scripted."""

    def __init__(self, outcome: Any) -> None:
        self.outcome = outcome
        self.calls: list[str] = []
        self.rest = SimpleNamespace(dispatch=self._dispatch)

    def _dispatch(self, action: dict[str, Any]) -> str:
        self.calls.append("dispatch")
        return "sent"

    async def place(self, order: PreparedOrder, dispatched: Any = None) -> OrderState:
        self.calls.append(f"place({dispatched})")
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


def place(outcome: Any) -> tuple[StubVenue, Any]:
    venue = StubVenue(outcome)
    port = HyperliquidPort(venue)  # type: ignore[arg-type]

    async def go() -> Any:
        reply = port.place(ORDER)
        assert venue.calls == ["dispatch"]  # written in the step, before any await
        return await reply

    try:
        return venue, asyncio.run(go())
    except Exception as exc:
        return venue, exc


def test_the_adapter_fulfils_the_contract_and_its_optional_parts() -> None:
    port = HyperliquidPort(StubVenue(None))  # type: ignore[arg-type]
    assert isinstance(port, VenueAdapter)
    assert isinstance(port, PushingAdapter) and isinstance(port, DescribingAdapter)
    assert port.venue_type(ORDER) == "ioc"


@pytest.mark.parametrize(("raised", "said"), [
    (TransportFailed("no route"), OrderNotSent),  # nothing was sent
    (TransportFailed("reply lost", ambiguous=True), OutcomeUnknown),
    (SubmissionUnresolved(ORDER.cloid, "timeouts"), OutcomeUnknown),
])
def test_transport_failures_become_the_contracts_two(raised: Exception, said: type) -> None:
    venue, got = place(raised)
    assert type(got) is said and str(got) == str(raised)
    assert venue.calls == ["dispatch", "place(sent)"]


def test_an_ioc_that_matched_nothing_expired_any_other_refusal_stays_rejected() -> None:
    unmatched = OrderState(ORDER.cloid, "ETH", REJECTED, 0.5, message="Order could not "
                           "immediately match against any resting orders. asset=1")
    assert place(unmatched)[1].status == EXPIRED
    margin = OrderState(ORDER.cloid, "ETH", REJECTED, 0.5, message="Insufficient margin")
    assert place(margin)[1] == margin
    filled = OrderState(ORDER.cloid, "ETH", FILLED, 0.5, oid=7, filled_size=0.5)
    assert place(filled)[1] == filled


def test_pushes_become_neutral_messages() -> None:
    fill = {"coin": "ETH", "px": "2001.5", "sz": "0.25", "side": "A", "time": 1_700,
            "oid": 7, "tid": 99, "fee": "0.2", "closedPnl": "0", "crossed": False,
            "cloid": ORDER.cloid}
    msg = translate_push({"channel": "userFills", "data": {"user": "0x", "fills": [fill]}})
    assert isinstance(msg, FillsReported)
    (f,) = msg.fills
    assert (f.tid, f.oid, f.size, f.price, f.fee, f.crossed, f.cloid) == (
        99, 7, -0.25, 2001.5, 0.2, False, ORDER.cloid)
    update = {"order": {"coin": "ETH", "oid": 7, "sz": "0.1", "origSz": "0.5",
                        "cloid": ORDER.cloid}, "status": "marginCanceled"}
    msg = translate_push({"channel": "orderUpdates", "data": [update]})
    assert isinstance(msg, OrdersUpdated)
    (state,) = msg.states
    assert (state.status, state.oid, state.filled_size, state.venue_status) == (
        "canceled", 7, pytest.approx(0.4), "marginCanceled")
    assert isinstance(translate_push({"channel": "reconnected"}), Reconnected)
    assert translate_push({"channel": "subscriptionResponse", "data": {}}) is None
