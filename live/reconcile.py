"""Reconciliation of a live run with its venue, at start and every ``live.reconcile_every``.

A snapshot of the account (fills, positions and account value, open orders, funding
payments, fetched by a task) is compared with the store on the pipeline's single thread.
Funding is not a difference: each payment of the run's coins settled after the run's
start is booked once, first (``OrderPort.book_funding``: the ledger, the
``funding`` table, its key in ``venue_funding``). Every difference is an alert: a line on
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
5. ``account``: under the same condition as rule 4, after it: the venue's account value
   (``clearinghouseState`` ``marginSummary.accountValue``) is compared with the store's
   equity at the venue's marks (cash plus each position at the venue's mark, less any
   funding the venue settled after its account snapshot was taken). The first
   comparison of a run fixes the capital the account holds outside the run
   (``venue_accounts``: zero when the session trades the whole account, what
   ``live.capital`` leaves out otherwise; a notice on stderr when it is not zero);
   later ones alert when
   ``account value - outside - store equity`` exceeds ``ACCOUNT_TOLERANCE_USD`` or
   ``ACCOUNT_TOLERANCE_FRACTION`` of the store's equity, whichever is larger (float and
   decimal rounding of fills, fees and funding stay far below it; a deposit, a
   withdrawal, a builder fee or trading the account elsewhere do not). Alert only: the
   store is never repaired, the venue is not touched, and a difference that persists is
   alerted once (again when it moves by more than the tolerance).

In a run with ``[[farms]]`` the account's ledger is the sum of the farms' ledgers (and
of what is booked to no farm), checked at every time step (``sim.farm_engine``), so
these rules reconcile the sum of the farm ledgers with the venue account. A position
adjustment (rule 4) is booked to the one farm trading the symbol, else to no farm; its
alert says which ledger (``ExecutionDesk.holders``), as does the ``adjustment`` order's
reason.

A session trading several accounts reconciles each with its own part of the ledger
(``OrderPort.share``): rule 4 compares the account's position with the fills booked at
it (and its earlier adjustments; a new one is booked at its venue), rule 5 its account
value with that part's equity at the account's marks. A snapshot that fails marks the
account's venues down for the router (orders go to the others); one that answers marks
them up (``OrderPort.mark_down`` / ``mark_up``).
"""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from live.orders import OrderPort
    from live.port import Snapshot

ACCOUNT_TOLERANCE_USD = 1.0
ACCOUNT_TOLERANCE_FRACTION = 1e-4


def reconcile(port: OrderPort, snap: Snapshot) -> bool:
    """Apply the rules; True when positions were compared too (rule 4 ran)."""
    if snap.error is not None:
        print(f"quorum live: reconciliation skipped, the venue did not answer: {snap.error}",
              file=sys.stderr, flush=True)
        port.mark_down(f"the venue did not answer: {snap.error}")
        return False
    port.mark_up()
    quiet = snap.generation == port.generation
    for pay in snap.funding:
        port.book_funding(pay)
    for fill in snap.fills:
        t = port.by_cloid.get(fill.cloid or "") or port.by_oid.get(fill.oid)
        if fill.tid not in port.booked and port.book(fill):
            port.alert("fill", port.symbol_of.get(fill.coin), fill.coin, None, fill.size,
                       "booked", f"trade {fill.tid} of order "
                       f"{t.leg.order.order_id if t else '?'} was not booked")
    open_cloids = {o.cloid for o in snap.open_orders if o.cloid}
    open_oids = {o.oid for o in snap.open_orders}
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
        coin, oid, cloid = o.coin, o.oid, o.cloid or ""
        if coin not in port.symbol_of or cloid in port.by_cloid or oid in port.by_oid:
            continue
        port.alert("unknown_order", port.symbol_of[coin], coin, None, o.size,
                   "cancelled at the venue", f"open order {oid} ({cloid or 'no cloid'}) "
                   "was not sent by this run")
        port.cancel_foreign(coin, oid)
    if not quiet or not port.settled or any(
            t.cloid not in open_cloids and (t.oid is None or t.oid not in open_oids)
            for t in port.by_cloid.values()):
        return False
    desk = port.desk
    portfolio = desk.portfolio
    share = port.share
    venue_positions = {p.coin: p for p in snap.positions}
    for s, symbol in enumerate(desk.symbols):
        traded = port.coins.get(symbol)
        if traded is None:
            continue
        coin = traded
        held = portfolio.qty[s] if share is None else share.qty.get(symbol, 0.0)
        position = venue_positions.get(coin)
        venue = position.size if position is not None else 0.0
        lot = port.venue.lot_size(coin)
        if abs(held - venue) <= lot / 2:
            continue
        price = portfolio.price[s]
        if not (math.isfinite(price) and price > 0):
            price = (position.entry_price if position is not None and position.entry_price
                     else portfolio.avg_price[s])
        reason = f"reconciliation: the venue holds {venue:g}, the store {held:g}"
        ledger = desk.holders(s)  # farms: whose ledger disagrees, if one can tell
        if ledger is not None:
            reason += f"; {ledger}"
        if share is None:
            order_id = desk.adjust(s, port.now_ns(), venue - held, price, reason)
        else:  # booked at the account's venue, so its part of the ledger holds it
            assert port.venue_name is not None
            order_id = desk.adjust(s, port.now_ns(), venue - held, price, reason,
                                   port.venue_name)
            share.fill(symbol, venue - held, price, 0.0)
        port.alert("position", symbol, coin, held, venue,
                   f"adjusted by {venue - held:+g} at {price:g} (order {order_id})"
                   + ("" if ledger is None else f", booked to {ledger}"),
                   f"the venue holds {venue:g} {coin}, the store {held:g}")
    _compare_account(port, snap)
    return True


def store_equity_at(port: OrderPort, marks: dict[str, float]) -> float:
    """The store's equity with each position at the venue's mark of its coin (the
    store's own last price where the venue has none); with several accounts, the part of
    it this account holds (``OrderPort.share``)."""
    portfolio = port.desk.portfolio
    share = port.share
    if share is not None:
        prices = {}
        for s, symbol in enumerate(port.desk.symbols):
            mark = marks.get(port.coins.get(symbol, ""))
            if mark is None:
                mark = portfolio.price[s]
                if not (math.isfinite(mark) and mark > 0):
                    mark = portfolio.avg_price[s]
            prices[symbol] = mark
        return share.equity_at(prices)
    equity = portfolio.cash
    for s, symbol in enumerate(port.desk.symbols):
        qty = portfolio.qty[s]
        if qty == 0.0:
            continue
        mark = marks.get(port.coins.get(symbol, ""))
        if mark is None:
            mark = portfolio.price[s]
            if not (math.isfinite(mark) and mark > 0):
                mark = portfolio.avg_price[s]
        equity += qty * mark
    return equity


def _compare_account(port: OrderPort, snap: Snapshot) -> None:
    """Rule 5 (see the module): alert only."""
    account = snap.account
    if account is None:
        return
    late = sum(p.usdc for p in snap.funding
               if p.time_ms > account.time_ms and (p.coin, p.time_ms) in port.funded)
    equity = store_equity_at(port, account.marks) - late
    venue = account.account_value
    if port.account_outside is None:
        port.record_account(venue, equity)
        outside = venue - equity
        if abs(outside) > _tolerance(equity) and port.share is None:
            print(f"quorum live: the venue account holds {venue:.2f}, the run {equity:.2f}: "
                  f"{outside:+.2f} is taken as capital outside the run", file=sys.stderr,
                  flush=True)
        return
    expected = equity + port.account_outside
    diff = venue - expected
    tolerance = _tolerance(equity)
    if abs(diff) <= tolerance:
        port.note_account_difference(None)
        return
    if port.account_alerted is not None and abs(diff - port.account_alerted) <= tolerance:
        return  # alerted already
    port.note_account_difference(diff)
    port.alert("account", None, None, expected, venue, "alert only: nothing repaired",
               f"the venue's account value {venue:.6g} differs from the store's equity at "
               f"the venue's marks {equity:.6g} (+ {port.account_outside:.6g} outside the "
               f"run) by {diff:+.6g} (tolerance {tolerance:.6g})")


def _tolerance(equity: float) -> float:
    return max(ACCOUNT_TOLERANCE_USD, ACCOUNT_TOLERANCE_FRACTION * abs(equity))
