"""The Hyperliquid adapter fulfils the live core's contract (``live.port.VenueAdapter``)
and answers in its neutral reports (``live.venue_types``), on the fake server."""

from __future__ import annotations

import asyncio

from live.port import VenueAdapter
from live.venue_types import OpenOrder, OrderRequest, VenueFill
from tests.fakes.hyperliquid import FakeHyperliquid

from .conftest import open_venue


def test_the_adapter_is_a_venue_adapter_answering_in_neutral_reports(
        fake: FakeHyperliquid) -> None:
    async def go():
        async with await open_venue(fake) as venue:
            assert isinstance(venue, VenueAdapter)
            assert venue.lot_size("ETH") == 1e-4  # szDecimals 4
            inst = venue.instrument("ETH", "hl", "ETH-PERP")
            assert inst.lot == venue.lot_size("ETH") and inst.max_leverage is not None
            cloid = "0x" + "AB" * 16
            sell = await venue.place(venue.prepare(OrderRequest(
                "ETH", False, 0.5, "limit", 2100.0, cloid.lower())))
            assert not sell.done
            (open_order,) = await venue.open_orders()
            assert open_order == OpenOrder("ETH", sell.oid, cloid.lower(), -0.5)
            buy = await venue.place(venue.prepare(OrderRequest(
                "ETH", True, 0.25, "market", 2000.0, "0x" + "0c" * 16)))
            assert buy.filled_size == 0.25
            fills = await venue.fills()
            assert fills and all(isinstance(f, VenueFill) for f in fills)
            last = max(f.time_ms for f in fills)
            assert await venue.fills(since_ms=last + 1) == []
            assert {f.tid for f in await venue.fills(since_ms=last)} == {
                f.tid for f in fills if f.time_ms == last}

    asyncio.run(go())


def test_a_neutral_request_prepares_as_the_adapter_own_shapes(fake: FakeHyperliquid) -> None:
    async def go():
        async with await open_venue(fake) as venue:
            c = "0x" + "01" * 16
            pairs = [
                (OrderRequest("ETH", True, 0.5, "market", 2000.0, c, reduce_only=True),
                 venue.prepare_market("ETH", True, 0.5, 2000.0, reduce_only=True, cloid=c)),
                (OrderRequest("ETH", True, 0.5, "limit", 1999.93, c, tif="alo"),
                 venue.prepare_limit("ETH", True, 0.5, 1999.93, tif="Alo", cloid=c,
                                     rounding="down")),
                (OrderRequest("ETH", False, 0.5, "limit", 2000.07, c, tif="ioc"),
                 venue.prepare_limit("ETH", False, 0.5, 2000.07, tif="Ioc", cloid=c,
                                     rounding="up")),
                (OrderRequest("ETH", False, 0.5, "trigger", 1900.0, c, trigger="sl",
                              reduce_only=True),
                 venue.prepare_trigger("ETH", False, 0.5, 1900.0, "sl", reduce_only=True,
                                       cloid=c)),
                (OrderRequest("ETH", False, 0.5, "trigger", 2200.0, c, trigger="tp"),
                 venue.prepare_trigger("ETH", False, 0.5, 2200.0, "tp", reduce_only=False,
                                       cloid=c)),
            ]
            for request, expected in pairs:
                assert venue.prepare(request) == expected, request

    asyncio.run(go())
