"""The venue's own instrument rules replace the scenario's in a session on a real venue.

A scenario's instruments are what the backtest assumed; the account trades under the
rules its venue publishes (the adapter's ``instrument``: price grid, lot, minimums,
leverage cap; ``sim.instruments`` for the rule itself). Before the first order each
traded symbol's instrument on every scenario venue (all of them route to this account)
is replaced with the venue's, and every difference is said in one line per (venue,
symbol), so a backtest's assumption never silently differs from what the account trades.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from sim.instruments import Instrument
from sim.venue import SimVenue


def _terms(inst: Instrument) -> dict[str, str]:
    """What a trader compares: the price grid, the lot, the minimums, the leverage cap."""
    return {"price grid": inst.describe_price(),
            "lot": f"{inst.lot:g}" if inst.lot > 0.0 else "any size",
            "min_size": f"{inst.min_size:g}", "min_notional": f"{inst.min_notional:g}",
            "max_leverage": "none" if inst.max_leverage is None else f"{inst.max_leverage:g}"}


def adopt_instruments(venues: Sequence[SimVenue], coins: Mapping[str, str],
                      instrument: Callable[[str, str, str], Instrument],
                      title: str) -> list[str]:
    """Give each venue's traded symbols (``coins``: symbol -> coin) the instrument the
    real venue ``title`` has for their coin (``instrument(coin, venue, symbol)``, after
    its markets are loaded); one line per (venue, symbol) whose instrument differed from
    the scenario's (or was not resolved yet)."""
    lines = []
    for venue in venues:
        for symbol, coin in coins.items():
            if symbol not in venue.symbols:
                continue
            live = instrument(coin, venue.name, symbol)
            before = venue.instruments.get(symbol)
            venue.set_instrument(live)
            now = _terms(live)
            if before is None:
                said = "; ".join(f"{k} {v}" for k, v in now.items())
                lines.append(f"{venue.name} {symbol}: {title}'s rules ({coin}): {said} "
                             "(the scenario's rule had left them to the first price)")
                continue
            was = _terms(before)
            changes = [f"{k} {was[k]} -> {now[k]}" for k in now if was[k] != now[k]]
            if changes:
                lines.append(f"{venue.name} {symbol}: the scenario's instrument differs from "
                             f"{title}'s ({coin}), which is used: {'; '.join(changes)}")
    return lines
