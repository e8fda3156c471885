"""A leg of the desk as the neutral order request the core hands an adapter (``live.port``).

The shapes are the core's, the same for every venue; an adapter rounds and words them for
its wire (``VenueAdapter.prepare``): a market order carries the reference price its
slippage bound is taken from (the symbol's last close, else the decision's reference); a
bracket's take-profit becomes a "tp" trigger at its level (a market order once fired); a
limit order keeps its time in force ("alo" when post-only); a stop (a stop entry, a
stop-loss) becomes an "sl" trigger. Flattening orders go reduce-only, as do the legs the
scenario marked so.
"""

from __future__ import annotations

from typing import Literal

from live.venue_types import OrderRequest
from sim.orders import FLATTEN, IOC, LIMIT, MARKET, TAKE_PROFIT, Leg, Order


def order_request(life: Order, leg: Leg, cloid: str, coin: str,
                  last_close: float) -> OrderRequest:
    """``leg`` of order ``life`` as a request for ``coin`` under client id ``cloid``."""
    is_buy = leg.quantity > 0
    size = abs(leg.quantity)
    only_reduce = reduce_only(life)
    if life.kind == MARKET:
        ref = last_close if last_close == last_close and last_close > 0 else life.ref_price
        return OrderRequest(coin, is_buy, size, "market", ref, cloid, reduce_only=only_reduce)
    if life.role == TAKE_PROFIT:  # a bracket's limit: a take-profit trigger at its level
        assert life.limit_price is not None
        return OrderRequest(coin, is_buy, size, "trigger", life.limit_price, cloid,
                            trigger="tp", reduce_only=only_reduce)
    if life.kind == LIMIT:
        tif: Literal["gtc", "ioc", "alo"] = (
            "alo" if life.post_only else ("ioc" if life.tif == IOC else "gtc"))
        assert life.limit_price is not None
        return OrderRequest(coin, is_buy, size, "limit", life.limit_price, cloid, tif=tif,
                            reduce_only=only_reduce)
    assert life.stop_price is not None
    return OrderRequest(coin, is_buy, size, "trigger", life.stop_price, cloid, trigger="sl",
                        reduce_only=only_reduce)


def reduce_only(life: Order) -> bool:
    """Whether the leg may only reduce a position at the venue (risk's flattening too)."""
    return life.reduce_only or life.role == FLATTEN
