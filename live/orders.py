"""Venue-neutral order tracking of a live run: what the core knows of each leg it sent.

A ``Tracked`` leg lives from its submission (or its adoption after a restart) until the
desk has closed it; it is keyed by the core's client order id (``cloid``, from run id,
order id and leg: ``live.records.client_order_id``) and, once the venue answers, by the
venue's order id. Nothing in it is particular to a venue: reconciliation
(``live.reconcile``) and recovery (``live.recovery``) read it the same for any adapter.
"""

from __future__ import annotations

from dataclasses import dataclass

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
