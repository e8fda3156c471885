"""Ostium's wire: what its subgraph, price service and chain say, read into typed records.

Ostium (perpetuals on Arbitrum) has no order book and no client order ids. A trader opens
a *trade* by sending USDC collateral and a leverage to its trading contract; a market
open (or close) is an *order* a keeper executes seconds later at the oracle's price
(``orders`` entity: pending, then executed or cancelled with a reason); a limit or stop
open is a *limit* that rests until the oracle crosses its price, when the keeper executes
it as an order that names it (``limitID``). Open trades are identified by (pair id,
index), limits likewise.

Reads are GraphQL queries against Ostium's subgraph, with the entities and field names
the official ``ostium-python-sdk`` (3.x, ``subgraph.py``) queries: ``pairs``, ``trades``,
``limits``, ``orders``. Fixed point as the subgraph stores it: USDC amounts (collateral,
fees) with 6 decimals, leverage with 2, prices and asset units (``tradeNotional``) with
18; times in seconds. Prices come from Ostium's price service (``/PricePublish/
latest-prices``: a list of ``{from, to, bid, mid, ask, isMarketOpen, timestampSeconds}``).

A reply that does not have the shape read here raises ``OstiumWireError`` with one line
naming what was wrong, never a KeyError from deep inside.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

COLLATERAL_SCALE = 10**6  # USDC
LEVERAGE_SCALE = 10**2
PRICE_SCALE = 10**18
UNITS_SCALE = 10**18
LIMIT_OID_FLAG = 1 << 48  # a limit's neutral order id: flag | pair id << 16 | index
PRICES_PATH = "/PricePublish/latest-prices"

T = TypeVar("T")


class OstiumWireError(ValueError):
    """A reply from Ostium that is not what its API documents (one line)."""


@dataclass(frozen=True, slots=True)
class OstiumPair:
    """One pair quoted in USD, keyed by its base asset (BTC of BTC-USD)."""

    coin: str
    pair_id: int
    max_leverage: float | None  # ``maxLeverage`` (2 decimals); None when not published
    min_notional: float | None  # ``fee.minLevPos``: minimum leveraged position, USDC


@dataclass(frozen=True, slots=True)
class OstiumPrice:
    coin: str
    bid: float
    mid: float
    ask: float
    open: bool  # ``isMarketOpen``: the keeper executes nothing on a closed market
    time_ms: int


@dataclass(frozen=True, slots=True)
class OstiumTrade:
    """One open trade: Ostium's unit of position. ``funding`` and ``rollover``: the fees
    it has accrued (USDC; funding < 0 is received), settled when it is closed."""

    coin: str
    pair_id: int
    index: int
    is_long: bool
    collateral: float
    leverage: float
    open_price: float
    units: float  # absolute, in units of the asset
    funding: float
    rollover: float
    time_ms: int

    @property
    def size(self) -> float:
        """Signed units of the asset (positive long)."""
        return self.units if self.is_long else -self.units


@dataclass(frozen=True, slots=True)
class OstiumLimit:
    """An open limit or stop order: it opens a trade once the oracle crosses its price."""

    id: str
    coin: str
    pair_id: int
    index: int
    is_long: bool
    collateral: float
    leverage: float
    price: float
    kind: str  # "LIMIT" or "STOP"
    time_ms: int

    @property
    def oid(self) -> int:
        return limit_oid(self.pair_id, self.index)

    @property
    def units(self) -> float:
        return self.collateral * self.leverage / self.price


@dataclass(frozen=True, slots=True)
class OstiumOrder:
    """A keeper order (a market open, a close, or an executed limit): pending until the
    keeper executes or cancels it. ``units``: asset units opened or closed."""

    order_id: int
    coin: str
    pair_id: int
    is_long: bool  # the trade's direction (a close of a long is a sale)
    action: str  # "Open" or "Close" (the subgraph's ``orderAction``)
    pending: bool
    cancelled: bool
    cancel_reason: str | None
    price: float | None
    units: float
    collateral: float
    fee: float  # opening/oracle fees charged with it (USDC)
    funding: float  # funding settled by it (a close; USDC, > 0 paid)
    rollover: float  # rollover settled by it (a close; USDC)
    limit_id: str | None
    initiated_ms: int
    executed_ms: int | None

    @property
    def signed_units(self) -> float:
        """Positive bought: an open long or a close of a short."""
        buys = self.is_long == (self.action.lower() == "open")
        return self.units if buys else -self.units


def limit_oid(pair_id: int, index: int) -> int:
    """A limit's neutral order id (``OrderState.oid``, ``OpenOrder.oid``): Ostium names a
    limit by (pair id, index), the core by one integer; the two convert both ways."""
    return LIMIT_OID_FLAG | (pair_id << 16) | index


def limit_ref(oid: int) -> tuple[int, int] | None:
    """(pair id, index) of a limit's neutral id; None for a keeper order's id."""
    if not oid & LIMIT_OID_FLAG:
        return None
    rest = oid & ~LIMIT_OID_FLAG
    return rest >> 16, rest & 0xFFFF


# -- reading fields --------------------------------------------------------------------------

def _field(row: Mapping[str, Any], key: str, what: str) -> Any:
    if not isinstance(row, Mapping):
        raise OstiumWireError(f"Ostium {what}: expected an object, got {type(row).__name__}")
    if key not in row or row[key] is None:
        raise OstiumWireError(f"Ostium {what}: missing {key!r}")
    return row[key]


def _num(row: Mapping[str, Any], key: str, what: str, scale: int = 1,
         default: float | None = None) -> float:
    if default is not None and (not isinstance(row, Mapping) or row.get(key) is None):
        return default
    raw = _field(row, key, what)
    try:
        value = int(raw) / scale if scale != 1 else float(raw)
    except (TypeError, ValueError):
        raise OstiumWireError(f"Ostium {what}: {key}={raw!r} is not a number") from None
    return value


def _int(row: Mapping[str, Any], key: str, what: str) -> int:
    raw = _field(row, key, what)
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise OstiumWireError(f"Ostium {what}: {key}={raw!r} is not an integer") from None


def _rows(reply: Any, key: str, parse: Callable[[Mapping[str, Any]], T]) -> list[T]:
    if not isinstance(reply, Mapping) or not isinstance(reply.get(key), list):
        raise OstiumWireError(f"Ostium subgraph: the reply has no {key!r} list")
    return [parse(r) for r in reply[key]]


# -- entities --------------------------------------------------------------------------------

def parse_pairs(reply: Any) -> dict[str, OstiumPair]:
    """USD-quoted pairs by base asset (``pairs`` query)."""
    out = {}
    for p in _rows(reply, "pairs", lambda r: r):
        if str(_field(p, "to", "pair")) != "USD":
            continue
        coin = str(_field(p, "from", "pair"))
        lev = _num(p, "maxLeverage", f"pair {coin}", LEVERAGE_SCALE, default=0.0)
        fee: Mapping[str, Any] = p["fee"] if isinstance(p.get("fee"), Mapping) else {}
        min_pos = _num(fee, "minLevPos", f"pair {coin}", COLLATERAL_SCALE, default=0.0)
        out[coin] = OstiumPair(coin, _int(p, "id", f"pair {coin}"), lev or None,
                               min_pos or None)
    return out


def parse_prices(reply: Any) -> dict[str, OstiumPrice]:
    """USD-quoted prices by base asset (the price service's latest prices)."""
    if not isinstance(reply, list):
        raise OstiumWireError("Ostium price service: expected a list of prices, got "
                              f"{type(reply).__name__}")
    out = {}
    for r in reply:
        if not isinstance(r, Mapping) or r.get("to") != "USD":
            continue
        coin = str(_field(r, "from", "price"))
        what = f"price {coin}"
        mid = _num(r, "mid", what)
        if not mid > 0:
            raise OstiumWireError(f"Ostium {what}: mid={mid!r} is not a positive price")
        out[coin] = OstiumPrice(coin, _num(r, "bid", what, default=mid), mid,
                                _num(r, "ask", what, default=mid),
                                bool(r.get("isMarketOpen", True)),
                                int(_num(r, "timestampSeconds", what, default=0.0) * 1000))
    return out


def _pair_of(row: Mapping[str, Any], what: str, coins: Mapping[int, str]) -> tuple[int, str]:
    pair = _field(row, "pair", what)
    pair_id = _int(pair, "id", what)
    return pair_id, coins.get(pair_id) or str(pair.get("from") or pair_id)


def parse_trade(row: Mapping[str, Any], coins: Mapping[int, str]) -> OstiumTrade:
    what = "trade"
    pair_id, coin = _pair_of(row, what, coins)
    collateral = _num(row, "collateral", what, COLLATERAL_SCALE)
    leverage = _num(row, "leverage", what, LEVERAGE_SCALE)
    open_price = _num(row, "openPrice", what, PRICE_SCALE)
    if not open_price > 0:
        raise OstiumWireError(f"Ostium trade: openPrice {open_price!r} is not positive")
    units = (_num(row, "tradeNotional", what, UNITS_SCALE, default=0.0)
             or collateral * leverage / open_price)
    return OstiumTrade(coin, pair_id, _int(row, "index", what), bool(_field(row, "isBuy", what)),
                       collateral, leverage, open_price, units,
                       _num(row, "funding", what, COLLATERAL_SCALE, default=0.0),
                       _num(row, "rollover", what, COLLATERAL_SCALE, default=0.0),
                       int(_num(row, "timestamp", what, default=0.0) * 1000))


def parse_limit(row: Mapping[str, Any], coins: Mapping[int, str]) -> OstiumLimit:
    what = "limit"
    pair_id, coin = _pair_of(row, what, coins)
    price = _num(row, "openPrice", what, PRICE_SCALE)
    if not price > 0:
        raise OstiumWireError(f"Ostium limit: openPrice {price!r} is not positive")
    return OstiumLimit(str(_field(row, "id", what)), coin, pair_id, _int(row, "index", what),
                       bool(_field(row, "isBuy", what)),
                       _num(row, "collateral", what, COLLATERAL_SCALE),
                       _num(row, "leverage", what, LEVERAGE_SCALE), price,
                       str(row.get("limitType") or "LIMIT"),
                       int(_num(row, "initiatedAt", what, default=0.0) * 1000))


def parse_order(row: Mapping[str, Any], coins: Mapping[int, str]) -> OstiumOrder:
    what = "order"
    pair_id, coin = _pair_of(row, what, coins)
    pending = bool(row.get("isPending", False))
    cancelled = bool(row.get("isCancelled", False))
    price = None
    if not pending and not cancelled:
        price = _num(row, "price", what, PRICE_SCALE)
        if not price > 0:
            raise OstiumWireError(f"Ostium order {row.get('id')}: executed at price {price!r}")
    fee = sum(_num(row, k, what, COLLATERAL_SCALE, default=0.0)
              for k in ("devFee", "vaultFee", "oracleFee"))
    executed = row.get("executedAt")
    return OstiumOrder(
        _int(row, "id", what), coin, pair_id, bool(_field(row, "isBuy", what)),
        str(row.get("orderAction") or "Open"), pending, cancelled,
        str(row["cancelReason"]) if row.get("cancelReason") else None, price,
        _num(row, "tradeNotional", what, UNITS_SCALE, default=0.0),
        _num(row, "collateral", what, COLLATERAL_SCALE, default=0.0), fee,
        _num(row, "fundingFee", what, COLLATERAL_SCALE, default=0.0),
        _num(row, "rolloverFee", what, COLLATERAL_SCALE, default=0.0),
        str(row["limitID"]) if row.get("limitID") else None,
        int(_num(row, "initiatedAt", what, default=0.0) * 1000),
        None if executed in (None, "", "0", 0) else int(float(executed) * 1000))


# -- queries (field names as the SDK's subgraph queries use them) ----------------------------

PAIRS = """query pairs { pairs(first: 1000) { id from to maxLeverage fee { minLevPos } } }"""

TRADES = """query trades($trader: Bytes!) {
  trades(where: { isOpen: true, trader: $trader }, first: 1000) {
    tradeID index collateral leverage openPrice tradeNotional funding rollover isBuy timestamp
    pair { id from to }
  }
}"""

LIMITS = """query limits($trader: Bytes!) {
  limits(where: { trader: $trader, isActive: true }, first: 1000,
         orderBy: initiatedAt, orderDirection: asc) {
    id index collateral leverage openPrice isBuy limitType initiatedAt pair { id from to }
  }
}"""

_ORDER_FIELDS = """id isBuy orderAction orderType price collateral tradeNotional leverage
    isPending isCancelled cancelReason devFee vaultFee oracleFee fundingFee rolloverFee
    limitID initiatedAt executedAt pair { id from to }"""

ORDERS_SINCE = f"""query orders($trader: Bytes!, $since: BigInt!, $skip: Int!) {{
  orders(where: {{ trader: $trader, isPending: false, isCancelled: false,
                   executedAt_gte: $since }}, first: 1000, skip: $skip,
         orderBy: executedAt, orderDirection: asc) {{ {_ORDER_FIELDS} }}
}}"""

ORDERS_RECENT = f"""query ordersRecent($trader: Bytes!) {{
  orders(where: {{ trader: $trader, isPending: false, isCancelled: false }}, first: 1000,
         orderBy: executedAt, orderDirection: desc) {{ {_ORDER_FIELDS} }}
}}"""

ORDERS_INITIATED = f"""query ordersInitiated($trader: Bytes!, $since: BigInt!) {{
  orders(where: {{ trader: $trader, initiatedAt_gte: $since }}, first: 1000,
         orderBy: initiatedAt, orderDirection: asc) {{ {_ORDER_FIELDS} }}
}}"""

ORDER_BY_ID = f"""query order($id: ID!) {{ orders(where: {{ id: $id }}) {{ {_ORDER_FIELDS} }} }}"""

ORDERS_OF_LIMIT = f"""query ordersOfLimit($limit: String!) {{
  orders(where: {{ limitID: $limit }}) {{ {_ORDER_FIELDS} }}
}}"""
PAGE = 1000  # entities a subgraph reply holds at most (``first``)


def balance_of_call(token: str, holder: str) -> dict[str, Any]:
    """An ``eth_call`` of ERC-20 ``balanceOf(holder)`` on ``token`` (selector 0x70a08231)."""
    addr = holder.lower().removeprefix("0x")
    if len(addr) != 40:
        raise OstiumWireError(f"not an address: {holder!r}")
    return {"to": token, "data": "0x70a08231" + addr.rjust(64, "0")}


def parse_balance(result: Any) -> float:
    """The ``eth_call`` result of ``balanceOf`` as USDC."""
    if not isinstance(result, str) or not result.startswith("0x"):
        raise OstiumWireError(f"Ostium RPC: balanceOf returned {result!r}")
    try:
        return int(result, 16) / COLLATERAL_SCALE
    except ValueError:
        raise OstiumWireError(f"Ostium RPC: balanceOf returned {result!r}") from None
