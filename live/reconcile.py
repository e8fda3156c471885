"""Reconciliation of a live run with its venue, at start and every ``live.reconcile_every``.

A snapshot of the account (fills, positions, open orders, fetched by a task) is compared
with the store on the pipeline's single thread. Every difference is an alert: a line on
stderr and a ``reconciliations`` row (kind, symbol, coin, store and venue values, the
action taken). The rules, in the order they are applied:

1. ``fill``: a fill of one of this run's orders (by cloid or order id) that the store has
   not booked is booked now, through the same fill path (trade ids are booked once).
2. ``missing_order``: an order the store thinks is working that the venue does not list
   as open is looked up by cloid; the venue's answer decides (filled, canceled, ...), and
   one the venue does not know at all ends ``rejected`` ("never placed").
3. ``unknown_order``: an open order at the venue on one of the run's coins that the run
   did not send (or no longer tracks) is cancelled. Orders on other coins are left alone.
4. ``position``: only when nothing of the run is in flux (what still works rests at the
   venue as sent: brackets, stop entries, and the snapshot lists each one as open; its
   open orders are fetched after its positions, so a trigger that fired meanwhile shows
   there) and nothing happened while the snapshot was taken (otherwise the comparison
   waits for the next round): a
   position that differs from the venue's by more than half a lot is set to the venue's.
   The venue is the truth for positions. The difference is booked as a filled order of
   role ``adjustment`` (fills.liquidity "adjustment", no fee) at the last mark (else the
   venue's entry price), so equity at that mark is unchanged. Positions in coins the run
   does not trade are not the run's: they are not compared.
"""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from live.hyperliquid.port import HyperliquidPort, Snapshot


def reconcile(port: HyperliquidPort, snap: Snapshot) -> bool:
    """Apply the rules; True when positions were compared too (rule 4 ran)."""
    if snap.error is not None:
        print(f"quorum live: reconciliation skipped, the venue did not answer: {snap.error}",
              file=sys.stderr, flush=True)
        return False
    quiet = snap.generation == port.generation
    for fill in snap.fills:
        t = port.by_cloid.get(fill.cloid or "") or port.by_oid.get(fill.oid)
        if fill.tid not in port.booked and port.book(fill):
            port.alert("fill", port.symbol_of.get(fill.coin), fill.coin, None, fill.size,
                       "booked", f"trade {fill.tid} of order "
                       f"{t.leg.order.order_id if t else '?'} was not booked")
    open_cloids = {str(o.get("cloid")).lower() for o in snap.open_orders if o.get("cloid")}
    open_oids = {int(o["oid"]) for o in snap.open_orders}
    for t in list(port.by_cloid.values()):
        if t.placing or t.refreshing or t.done is not None:
            continue
        if t.cloid not in open_cloids and (t.oid is None or t.oid not in open_oids):
            if t.status == "resting":
                port.alert("missing_order", t.leg.order.symbol, t.coin, t.leg.remaining, None,
                           "looked up by cloid", f"order {t.leg.order.order_id} ({t.cloid}) "
                           "is working in the store, not open at the venue")
            port.refresh(t)
    for o in snap.open_orders:
        coin, oid = o["coin"], int(o["oid"])
        cloid = str(o.get("cloid") or "").lower()
        if coin not in port.symbol_of or cloid in port.by_cloid or oid in port.by_oid:
            continue
        size = float(o["sz"]) * (1 if o.get("side") == "B" else -1)
        port.alert("unknown_order", port.symbol_of[coin], coin, None, size,
                   "cancelled at the venue", f"open order {oid} ({cloid or 'no cloid'}) "
                   "was not sent by this run")
        port.cancel_foreign(coin, oid)
    if not quiet or not port.settled or any(
            t.cloid not in open_cloids and (t.oid is None or t.oid not in open_oids)
            for t in port.by_cloid.values()):
        return False
    desk = port.desk
    portfolio = desk.portfolio
    venue_positions = {p.coin: p for p in snap.positions}
    for s, symbol in enumerate(desk.symbols):
        coin = port.coins.get(symbol)
        if coin is None:
            continue
        held = portfolio.qty[s]
        position = venue_positions.get(coin)
        venue = position.size if position is not None else 0.0
        lot = 10.0 ** -port.venue.asset(coin).sz_decimals
        if abs(held - venue) <= lot / 2:
            continue
        price = portfolio.price[s]
        if not (math.isfinite(price) and price > 0):
            price = (position.entry_price if position is not None and position.entry_price
                     else portfolio.avg_price[s])
        order_id = desk.adjust(s, port.now_ns(), venue - held, price,
                               f"reconciliation: the venue holds {venue:g}, the store {held:g}")
        port.alert("position", symbol, coin, held, venue,
                   f"adjusted by {venue - held:+g} at {price:g} (order {order_id})",
                   f"the venue holds {venue:g} {coin}, the store {held:g}")
    return True
