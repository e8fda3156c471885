"""What the execution desk's mixins (``sim.desk_matching``, ``sim.desk_made``,
``sim.desk_external``) share: the desk's state and the steps they call on one another,
declared once for the type checker. ``sim.execution.ExecutionDesk`` defines all of it;
at run time this base class is empty."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sim.clock import SimClock
    from sim.desk_external import ExternalPort
    from sim.event_queue import EventQueue
    from sim.matching import Proposal
    from sim.orders import ExecutionSettings, Leg, Order
    from sim.portfolio import Portfolio
    from sim.recorder import Recorder
    from sim.router import VenueRouter
    from sim.venue import SimVenue
    from sim.view import MarketView


class DeskState:
    """The execution desk's state and steps, as its mixins see them."""

    if TYPE_CHECKING:
        symbols: tuple[str, ...]
        views: Sequence[MarketView]
        execution: ExecutionSettings
        portfolio: Portfolio
        recorder: Recorder
        router: VenueRouter
        queue: EventQueue
        clock: SimClock
        external: dict[str, ExternalPort]
        perp: list[SimVenue | None]
        tick_volume: list[float]
        n_working: list[int]
        watch: list[bool]
        _venues_of: list[tuple[SimVenue, ...]]
        _live: dict[int, Order]
        _obs_ts: list[int]
        _budget: list[tuple[int, dict[str, float]]]
        _vol_slippage: bool
        _leg_seq: int
        _order_id: int
        _fill_id: int
        _flattening: bool
        _on_flatten: Callable[[int], None]

        def _submit(self, s: int, life: Order, position: float, equity: float,
                    last_close: float, agents: tuple[str, ...]) -> None: ...
        def _refused(self, life: Order, venue: SimVenue, qty: float, reason: str,
                     code: str) -> None: ...
        def _book_fill(self, life: Order, s: int, ts: int, venue: str, quantity: float,
                       price: float, fee: float, liquidity: str = ...) -> None: ...
        def _close_leg(self, leg: Leg, code: str, reason: str,
                       confirmed: bool = ...) -> None: ...
        def _maybe_final(self, life: Order, now: int) -> None: ...
        def _rewatch(self, s: int) -> None: ...
        def _ledger_of(self, life: Order) -> Portfolio: ...
        def _cancel_working(self, s: int, now: int, reason: str, *,
                            entries_only: bool = ..., reduce_only: bool = ...,
                            code: str = ..., ledger: Portfolio | None = ...) -> int: ...
        def _liquidate(self, s: int, now: int, proposal: Proposal) -> None: ...
