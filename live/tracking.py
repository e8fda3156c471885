"""What the live core knows of its legs at one venue account, and what it keeps of them.

Each leg is a ``Tracked`` record from submission (or adoption after a restart) until the
desk closed it, keyed by the core's client order id (``cloid``, from run id, order id and
leg: ``live.records.client_order_id``), by the desk's leg and, once the venue answers,
by the venue's order id. The book also knows which venue trade ids and funding payments
the run booked (each is booked once), the run's funding cursor, and the capital the
account holds beyond the run.

Durability (``live.records``, ``live.journal``): a leg's ``venue_orders`` row is appended
to the run's journal when it is submitted (``write_ahead``), before its request may start;
status changes, booked fills and funding, the first account comparison and alerts wait
in ``Durable`` for the runner's next commit (``take_records``).

In a session trading several accounts (``VenueShare``), each account's book also keeps its
part of the ledger: the position per symbol of the fills booked at it (and the
adjustments reconciliation booked for it) and the cash they and its funding moved. The
desk's one portfolio holds the sum; reconciliation compares each account with its part.

This is the state half of the order manager (``live.orders``): it holds no adapter and no
desk, and does no I/O but the journal's append.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from live.journal import OrderJournal
from live.records import Durable
from sim.orders import Leg


@dataclass(slots=True, eq=False)
class Tracked:
    """One leg at the venue, from submission until the desk has closed it."""

    leg: Leg
    cloid: str
    coin: str
    size: float  # absolute size sent (rounded to the venue's lot)
    ioc: bool
    placing: bool = True  # the place request has not answered yet
    acked: bool = False
    oid: int | None = None
    venue_filled: float = 0.0  # absolute, as the venue reports it
    booked: float = 0.0  # absolute, booked from fills
    done: tuple[str, str] | None = None  # the venue says it ended: (desk state, reason)
    close: tuple[str, str] | None = None  # the desk asked to cancel it: (state, reason)
    cancel_sent: bool = False
    refreshing: bool = False
    status: str = "sent"
    triggered: bool = False  # a trigger order the venue has fired (it executes now)
    error: str | None = None  # why its placing failed with the outcome unknown


@dataclass(slots=True)
class VenueShare:
    """One account's part of a several-account session's ledger: ``qty`` per symbol from
    its own fills and adjustments, ``flow`` the cash they and its funding moved (so its
    equity at marks is ``flow`` + sum of qty x mark, its capital sitting in the account
    value's ``outside`` part, fixed at the first comparison)."""

    qty: dict[str, float]
    flow: float = 0.0

    def fill(self, symbol: str, quantity: float, price: float, fee: float) -> None:
        self.qty[symbol] = self.qty.get(symbol, 0.0) + quantity
        self.flow -= quantity * price + fee

    def equity_at(self, marks: Mapping[str, float]) -> float:
        return self.flow + sum(q * marks[s] for s, q in self.qty.items() if q)


class LegBook:
    """The legs of one live run at one venue account, and their durable records."""

    def __init__(self, run_id: str, coins: Mapping[str, str], *, now_ns: Callable[[], int],
                 journal: OrderJournal | None = None) -> None:
        self.run_id = run_id
        self.coins = dict(coins)  # symbol -> coin
        self.symbol_of = {c: s for s, c in self.coins.items()}
        self.now_ns = now_ns
        self.journal = journal or OrderJournal(None, run_id)
        self.by_cloid: dict[str, Tracked] = {}
        self.by_leg: dict[int, Tracked] = {}
        self.by_oid: dict[int, Tracked] = {}
        self.booked: set[int] = set()  # venue trade ids booked in this run
        self.funded: set[tuple[str, int]] = set()  # (coin, time ms) of funding booked
        # Funding settled at or before this time (ms) is not the run's: the run's start
        # (``live.recovery`` restores it for a resumed run).
        self.funding_since_ms = now_ns() // 1_000_000
        self.funding_cursor_ms = 0  # the latest funding time booked (the next fetch's start)
        # Capital the venue account holds beyond the run's equity, fixed at the run's first
        # account comparison (``live.reconcile`` rule 5), and the last difference alerted.
        self.account_outside: float | None = None
        self.account_alerted: float | None = None
        self.generation = 0  # bumped by every order event: reconciliation needs quiet
        # Every difference alerted, and the last one's (kind, detail): the session's
        # monitor reads them after each reconciliation round (``LiveRunner``).
        self.differences = 0
        self.last_difference: tuple[str, str] = ("", "")
        # A session with several accounts: the scenario venue this account is stored
        # under (its rows' ``venue`` column) and its part of the ledger; None: one account,
        # the whole ledger is its.
        self.venue_name: str | None = None
        self.share: VenueShare | None = None
        self._durable = Durable()

    # -- tracking --------------------------------------------------------------------------

    def track(self, t: Tracked) -> None:
        self.by_cloid[t.cloid] = t
        self.by_leg[id(t.leg)] = t
        if t.oid is not None:
            self.by_oid[t.oid] = t

    def untrack(self, t: Tracked) -> None:
        self.by_cloid.pop(t.cloid, None)
        self.by_leg.pop(id(t.leg), None)
        if t.oid is not None:
            self.by_oid.pop(t.oid, None)

    def learn_oid(self, t: Tracked, oid: int) -> None:
        """The venue's id of a leg, once known: its fills and pushes are found by it."""
        if t.oid is None:
            t.oid = oid
            self.by_oid[oid] = t

    def find(self, cloid: str | None, oid: int | None) -> Tracked | None:
        """The leg a venue report names, by cloid, else by the venue's id."""
        return self.by_cloid.get(cloid or "") or (
            self.by_oid.get(oid) if oid is not None else None)

    def adopt(self, leg: Leg, cloid: str, coin: str, size: float, ioc: bool,
              booked: float, *, oid: int | None = None,
              close: tuple[str, str] | None = None) -> Tracked:
        """Track a leg a previous process sent (a restart); it is looked up by cloid.
        ``oid``: the venue's id, if the previous process learnt it; ``close``: (state,
        reason) to cancel it with once the venue's answer is in (it does not stand)."""
        t = Tracked(leg, cloid, coin, size, ioc, placing=False, booked=booked,
                    status="unresolved", oid=oid, close=close)
        self.track(t)
        return t

    def know_booked(self, tids: Iterable[int]) -> None:
        """Venue trade ids a previous process of the run booked: never booked again."""
        self.booked |= set(tids)

    def restore_funding(self, since_ms: int | None, booked: Iterable[tuple[str, int]],
                        outside: float | None) -> None:
        """Continue a stored run's funding (``live.funding``): payments up to ``since_ms``
        (the run's first start) are not the run's, ``booked`` (coin, time ms) are booked
        already and the next fetch starts at the latest; ``outside`` is the capital the
        account holds beyond the run (None: not fixed yet)."""
        if since_ms is not None:
            self.funding_since_ms = since_ms
        for coin, time_ms in booked:
            self.funded.add((coin, time_ms))
            self.funding_cursor_ms = max(self.funding_cursor_ms, time_ms)
        self.account_outside = outside

    # -- durable records -------------------------------------------------------------------

    def write_ahead(self, row: dict[str, Any]) -> None:
        """A submitted leg's ``venue_orders`` row: durable (the journal) before its
        request can start, in the table with the next commit."""
        self.journal.append(row)
        self._durable.orders.append(row)

    def set_status(self, t: Tracked, status: str, message: str | None) -> None:
        t.status = status
        self._durable.updates.append({
            "cloid": t.cloid, "status": status, "oid": t.oid, "filled": t.booked,
            "message": message, "updated_ns": self.now_ns()})

    def record_fill(self, row: tuple[Any, ...]) -> None:
        """A booked fill's ``venue_fills`` row (trade id first, venue last)."""
        self._durable.fills.append((*row, self.venue_name))

    def record_funding(self, row: tuple[Any, ...]) -> None:
        """A booked payment's ``venue_funding`` row (coin and time first, venue last)."""
        self._durable.funding.append((*row, self.venue_name))

    def record_account(self, account_value: float, store_equity: float) -> None:
        """Fix the capital outside the run (its first account comparison), durably."""
        self.account_outside = account_value - store_equity
        self._durable.account = (self.now_ns(), account_value, store_equity, self.venue_name)

    def note_account_difference(self, diff: float | None) -> None:
        """The account difference last alerted (None: the account agrees again)."""
        self.account_alerted = diff

    def alert(self, kind: str, symbol: str | None, coin: str | None,
              store_value: float | None, venue_value: float | None, action: str,
              detail: str) -> None:
        """A difference between the venue and the store: stderr now, a stored row with
        the next commit."""
        where = f" at {self.venue_name}" if self.venue_name else ""
        print(f"quorum live: RECONCILIATION ALERT{where} {kind} {coin or ''}: {detail}; "
              f"{action}",
              file=sys.stderr, flush=True)
        self._durable.alerts.append((self.now_ns(), kind, symbol, coin, store_value,
                                     venue_value, action, detail, self.venue_name))
        self.differences += 1
        self.last_difference = (kind, f"{detail}; {action}")

    def take_records(self) -> Durable:
        """What waits to be written, handed over (``write_records``, on any connection)."""
        records, self._durable = self._durable, Durable()
        return records
