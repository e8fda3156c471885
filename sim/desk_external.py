"""The execution desk's side of venues it does not simulate (a live exchange behind an
``ExternalPort``), and of a restart or reconciliation: orders taken back, ids continued,
positions adjusted to what the venue says.

Split from ``sim.execution`` along that seam: a backtest never calls these. An external
leg is handed to its port when routed; the port does the I/O elsewhere and reports back
through ``external_accepted`` / ``external_fill`` / ``external_closed``, on the desk's
single thread. Fills go through the desk's one booking (``_book_fill``) into the one
ledger; a cancel of an external leg is a request, and the leg ends when the venue says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from sim.desk_state import DeskState
from sim.orders import ENDED, FILLED, REJECTED, WORKING, Leg, Order

if TYPE_CHECKING:
    from sim.venue import SimVenue


class ExternalPort(Protocol):
    """A venue whose orders are handled outside the simulation (a live exchange). Both
    calls only start work and return at once; outcomes come back through the desk's
    ``external_*`` methods."""

    def submit(self, leg: Leg, leg_no: int) -> None: ...

    def cancel(self, leg: Leg, code: str, reason: str) -> None: ...


class ExternalLegs(DeskState):
    """``ExecutionDesk``'s methods for external venues and restarts (a mixin: the state
    and the steps it calls are the desk's, declared in ``DeskState``)."""

    # -- external venues (live) ----------------------------------------------------------
    def attach_external(self, name: str, port: ExternalPort) -> None:
        """Send the legs routed to venue ``name`` to ``port`` instead of matching them
        here (the venue keeps its routing settings: fees, lot, tick, health)."""
        venue = self.router.venue(name)
        self.external[name] = port
        self._venues_of = [tuple(v for v in vs if v is not venue) for vs in self._venues_of]
        self.perp = [None if p is venue else p for p in self.perp]

    def _send_external(self, life: Order, venue: SimVenue, qty: float, now: int) -> None:
        """A leg of ``qty`` goes to an external venue: it works (in the venue's book,
        which nothing here matches) until the port reports it closed."""
        s = life.s
        self._leg_seq += 1
        leg = Leg(life, venue, qty, qty, now, self._leg_seq)
        life.add_leg(leg)
        life.venue = venue.name
        venue.book.setdefault(s, []).append(leg)
        self.n_working[s] += 1
        self.watch[s] = True
        self.recorder.order_event(life.order_id, now, s, "sent", venue.name, qty, None, "")
        self.external[venue.name].submit(leg, len(life.legs))

    def external_accepted(self, leg: Leg, now: int) -> None:
        """The venue took the leg (it rests, or filled at once)."""
        life = leg.order
        if life.arrival_ts is None:
            life.arrival_ts = now
        self.recorder.order_event(life.order_id, now, life.s, "arrived", leg.venue.name,
                                  leg.quantity, None, "")

    def external_fill(self, leg: Leg, now: int, quantity: float, price: float, fee: float,
                      liquidity: str) -> int:
        """Book a fill the venue reported (signed ``quantity``); returns its fill id."""
        life = leg.order
        leg.remaining -= quantity
        self._book_fill(life, life.s, now, leg.venue.name, quantity, price, fee, liquidity)
        return self._fill_id

    def external_closed(self, leg: Leg, now: int, code: str, reason: str) -> None:
        """The venue says the leg is done (``code``: filled, cancelled, expired, rejected)."""
        self._close_leg(leg, code, reason, confirmed=True)
        self._maybe_final(leg.order, now)
        self._rewatch(leg.order.s)

    def external_refused(self, leg: Leg, reason: str) -> None:
        """The external venue of ``leg`` never got it (unreachable, nothing filled): the
        leg ends rejected and the router tries the venues not tried yet, as after a simulated
        venue's refusal (``_refused``: a fallback is a routing decision with its reason;
        with none left the order ends rejected)."""
        life = leg.order
        if leg.status != WORKING:
            return
        s = life.s
        leg.status = REJECTED
        leg.venue.book[s].remove(leg)
        self.n_working[s] -= 1  # it stays among the order's legs, numbered, never working
        self._refused(life, leg.venue, leg.quantity, reason, REJECTED)  # the engine's clock
        self._rewatch(s)

    def adopt_external(self, life: Order, venue: str, quantity: float) -> Leg:
        """Take back an order a previous process sent to external venue ``venue`` (a
        restart): it works again here until its port reports it closed."""
        s = life.s
        self._live[life.order_id] = life
        self._leg_seq += 1
        leg = Leg(life, self.router.venue(venue), quantity, quantity, life.ts, self._leg_seq)
        life.add_leg(leg)
        life.venue = venue
        leg.venue.book.setdefault(s, []).append(leg)
        self.n_working[s] += 1
        self.watch[s] = True
        return leg

    def working_external(self) -> list[Leg]:
        """External legs still working, oldest first."""
        return [leg for life in self._live.values() for leg in life.legs
                if leg.status == WORKING and leg.venue.name in self.external]

    def holders(self, s: int) -> str | None:
        """Which ledger a reconciliation adjustment on symbol s is booked to, in words
        (None: the one ledger there is; farms name theirs)."""
        return None

    def farm_name(self, order_id: int) -> str | None:
        """The farm whose order ``order_id`` is (None: a run without ``[[farms]]``)."""
        return None

    def restore_ids(self, order_id: int, fill_id: int) -> None:
        """Continue a stored run: new orders and fills number after these."""
        self._order_id = max(self._order_id, order_id)
        self._fill_id = max(self._fill_id, fill_id)

    def adjust(self, s: int, now: int, quantity: float, price: float, reason: str,
               venue: str = "reconciliation") -> int:
        """Book a position adjustment (reconciliation with a venue: the venue is the truth)
        as a filled order of role "adjustment" at ``price`` without fee, through the one
        fill path (its fill's ``venue``: the account's, when a session has several);
        returns its order id."""
        self._order_id += 1
        life = Order(self._order_id, 0, now, now, self.symbols[s], s, quantity, price,
                     role="adjustment", reason=reason)
        life.arrival_ts = now
        self.recorder.order_event(life.order_id, now, s, "submitted", None, quantity, price,
                                  "adjustment")
        self._book_fill(life, s, now, venue, quantity, price, 0.0, "adjustment")
        life.outcomes += ENDED[FILLED]
        self._maybe_final(life, now)
        return life.order_id
