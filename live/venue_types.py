"""The neutral reports every venue adapter answers with (``live.port``).

The live core (order tracking, reconciliation, recovery, funding) reads a venue only
through these: an order's state, a fill, a position, the account, a funding payment, an
open order. Each adapter (a folder per venue under ``live/``) translates its own wire
into them, so the core never learns a venue's field names and a second venue needs no
change to the core. Status words are the adapter's normalisation of the venue's; the
venue's own word is kept beside it (``OrderState.venue_status``) for messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# An order's normalised status at the venue.
RESTING, FILLED, CANCELED, REJECTED, TRIGGERED = (
    "resting", "filled", "canceled", "rejected", "triggered")
# The venue ended it without a fill because it could not match at once (an IOC against an
# empty book): not a refusal of the order, so the core ends the leg ``expired``.
EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class OrderState:
    """Where an order stands at the venue. ``filled_size`` of ``size`` has filled (an
    IOC's unfilled rest is canceled by the venue); ``message`` says why it was rejected
    or canceled when known; ``venue_status`` is the venue's own word for it."""

    cloid: str
    coin: str
    status: str
    size: float
    oid: int | None = None
    filled_size: float = 0.0
    avg_price: float | None = None
    message: str | None = None
    venue_status: str | None = None

    @property
    def done(self) -> bool:
        return self.status in (FILLED, CANCELED, REJECTED, EXPIRED)


@dataclass(frozen=True, slots=True)
class Position:
    coin: str
    size: float  # signed: positive long
    entry_price: float | None
    unrealized_pnl: float
    leverage: float | None
    liquidation_price: float | None


@dataclass(frozen=True, slots=True)
class AccountState:
    """The account as the venue reports it in one snapshot: ``account_value`` is its cash
    plus every position at the venue's mark, ``marks`` the mark of each position,
    ``time_ms`` when the venue took the snapshot."""

    positions: tuple[Position, ...]
    account_value: float
    marks: dict[str, float]
    time_ms: int


@dataclass(frozen=True, slots=True)
class FundingPayment:
    """One funding settlement of one position: ``usdc`` > 0 received, < 0 paid; ``szi``
    the signed position it was charged on, ``rate`` the funding rate. Identified by
    (coin, time_ms): a venue settles each coin once per funding time."""

    time_ms: int
    coin: str
    usdc: float
    szi: float
    rate: float
    hash: str = ""


@dataclass(frozen=True, slots=True)
class VenueFill:
    """One fill of the account, identified by the venue's trade id ``tid``."""

    tid: int
    oid: int
    coin: str
    size: float  # signed: positive bought
    price: float
    fee: float
    time_ms: int
    closed_pnl: float
    cloid: str | None
    crossed: bool = True  # took liquidity (taker); False: a maker fill


@dataclass(frozen=True, slots=True)
class OpenOrder:
    """An order the venue lists as open on the account (ours or anyone's)."""

    coin: str
    oid: int
    cloid: str | None  # lower case; None when it was sent without one
    size: float  # signed: positive buys


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """One order as the core asks a venue to place it, before the venue's rounding.

    ``price`` is the limit price of a limit order, the trigger price of a trigger order,
    and the reference price a market order's slippage bound is taken from. A limit price
    is rounded toward the passive side (never worse than asked), a trigger price likewise
    (buys down, sells up)."""

    coin: str
    is_buy: bool
    size: float  # absolute, in units of the asset
    kind: Literal["market", "limit", "trigger"]
    price: float
    cloid: str
    tif: Literal["gtc", "ioc", "alo"] = "gtc"  # a limit order's time in force
    trigger: Literal["tp", "sl"] | None = None  # a trigger order's kind
    reduce_only: bool = False
