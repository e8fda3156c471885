"""Per-agent figures and the positions view while a run goes on (issue 16 §6).

``Engine.finish`` stores each agent's final figures (``agent_performance``); a session
needs them as it runs. ``agent_figures`` computes them from the engine's own record of
each agent's signal episodes (``sim.performance``: an episode is a signal from the bar
that gave it to the bar that replaced it) at any moment:

* ``trades``: directional (LONG/SHORT) episodes entered so far; ``hit_rate``: share of
  scored episodes whose close moved the signalled way (as ``agent_performance``);
  ``win_rate``: share of trades whose shadow return is > 0;
* ``shadow_pnl``: the sum of the trades' shadow returns (one unit of notional, entered at
  the open after the signal, left at the open after the replacing bar, or marked at the
  last close while open; no fees), as ``agent_performance``;
* ``apr_30d``/``apr_90d``: the shadow returns of trades that ended (or are open) within
  the last 30/90 days of bar time, summed and scaled to a year; ``apr_inception`` the
  same since the first bar; ``sharpe``: mean over standard deviation of the trades'
  returns, scaled by the square root of trades per year (None below two trades).

``positions`` is the account's book per symbol: quantity, average entry, mark,
unrealised PnL, the venue it last filled on and the working take-profit/stop-loss.
``LiveFigures`` keeps both current in a session: on every fill that closes or flips a
position and at each heartbeat, on the observer's thread.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim.bus import FILL, Envelope, EventBus, Subscription
from sim.orders import STOP_LOSS, TAKE_PROFIT, WORKING

DAY_NS = 86_400 * 1_000_000_000
YEAR_DAYS = 365.0


@dataclass(frozen=True, slots=True)
class AgentFigures:
    ts: int
    agent: str
    symbol: str
    trades: int
    hit_rate: float | None
    win_rate: float | None
    shadow_pnl: float
    apr_30d: float | None
    apr_90d: float | None
    apr_inception: float | None
    sharpe: float | None


@dataclass(frozen=True, slots=True)
class PositionView:
    symbol: str
    venue: str | None
    quantity: float
    average_entry: float
    mark: float
    unrealized_pnl: float
    take_profit: float | None
    stop_loss: float | None


def trade_returns(starts: np.ndarray, sides: np.ndarray, opens: np.ndarray,
                  closes: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
    """For the episodes of one agent on one symbol (``starts``: 1-based bar numbers of
    each signal, ``sides`` their sides): the end bar number and shadow return of each
    trade (directional episode entered so far), and the scored and hit counts, by the
    definitions of ``sim.performance``."""
    last = len(closes)
    keep = starts <= last
    starts, sides = starts[keep], sides[keep]
    ends = np.append(starts[1:], last)
    directional = (sides == 1) | (sides == -1)
    scored = directional & (ends > starts)
    hits = scored & ((closes[ends - 1] - closes[starts - 1]) * sides > 0.0)
    trade = directional & (starts < last)
    ends_t, starts_t, sides_t = ends[trade], starts[trade], sides[trade]
    exits = np.where(ends_t < last, opens[np.minimum(ends_t, last - 1)],
                     closes[-1] if last else 0.0)
    returns = sides_t * (exits / opens[starts_t] - 1.0)
    return ends_t, returns, int(scored.sum()), int(hits.sum())


def _apr(returns: np.ndarray, ends_ts: np.ndarray, now: int, days: float,
         first_ts: int) -> float | None:
    """Shadow returns of trades ending (or open) within the last ``days``, a year's worth;
    None until the run has that much history."""
    if now - first_ts < days * DAY_NS:
        return None
    within = ends_ts >= now - days * DAY_NS
    return float(returns[within].sum()) * YEAR_DAYS / days


def agent_figures(engine: Any) -> list[AgentFigures]:
    """Every agent's figures on every symbol it trades, as of the engine's last bar."""
    out: list[AgentFigures] = []
    perf = engine.performance
    for s, view in enumerate(engine.views):
        if not view.n or not engine.agents[s]:
            continue
        opens = np.asarray(view.history("open"), dtype=np.float64)
        closes = np.asarray(view.history("close"), dtype=np.float64)
        ts = np.asarray(view.history("ts"), dtype=np.int64)
        now, first = int(ts[-1]), int(ts[0])
        years = (now - first) / (YEAR_DAYS * DAY_NS)
        for pos, slot in enumerate(engine.agents[s]):
            starts, sides = perf.episodes(s, pos)
            ends, returns, scored, hits = trade_returns(starts, sides, opens, closes)
            ends_ts = ts[ends - 1] if len(ends) else np.zeros(0, np.int64)
            n = len(returns)
            spread = float(returns.std(ddof=1)) if n >= 2 else 0.0
            sharpe = (float(returns.mean()) / spread * math.sqrt(n / years)
                      if spread > 0 and years > 0 else None)
            out.append(AgentFigures(
                now, slot.name, engine.symbols[s], n, hits / scored if scored else None,
                float((returns > 0).mean()) if n else None, float(returns.sum()),
                _apr(returns, ends_ts, now, 30.0, first),
                _apr(returns, ends_ts, now, 90.0, first),
                float(returns.sum()) / years if years > 0 else None, sharpe))
    return out


def positions(engine: Any, last_venue: dict[str, str] | None = None) -> list[PositionView]:
    """The open positions, each with its working take-profit and stop-loss prices."""
    portfolio = engine.portfolio
    out = []
    for s, symbol in enumerate(engine.symbols):
        qty = portfolio.qty[s]
        if qty == 0.0:
            continue
        tp = sl = None
        for venue in engine.router.venues:
            for leg in list(venue.book.get(s, ())):
                order = leg.order
                if leg.status != WORKING:
                    continue
                if order.role == TAKE_PROFIT:
                    tp = order.limit_price
                elif order.role == STOP_LOSS:
                    sl = order.stop_price
        mark, entry = portfolio.price[s], portfolio.avg_price[s]
        out.append(PositionView(symbol, (last_venue or {}).get(symbol), qty, entry, mark,
                                (mark - entry) * qty, tp, sl))
    return out


class LiveFigures:
    """Keeps ``figures`` and ``positions`` current: refreshed when a fill closes or flips
    a position (a fill subscriber) and when ``refresh`` is called (a heartbeat).
    ``on_update(figures, positions, why)`` is told each refresh, ``why`` "close" or
    "timer" (the store keeps the first kind, an API shows both)."""

    def __init__(self, bus: EventBus, engine: Any, on_update: Any = None) -> None:
        self.bus = bus
        self.engine = engine
        self.on_update = on_update
        self.figures: list[AgentFigures] = []
        self.positions: list[PositionView] = []
        self._last_venue: dict[str, str] = {}
        self._held: dict[str, float] = {}
        self._lock = threading.Lock()
        self.subscription: Subscription | None = None

    def attach(self, *, queued: bool = True) -> Subscription:
        self.subscription = (self.bus.subscribe_queued(self.on_fill, (FILL,), name="figures")
                             if queued else self.bus.subscribe(self.on_fill, (FILL,)))
        return self.subscription

    def on_fill(self, env: Envelope) -> None:
        fill, after = env.event.fill, env.event.position
        self._last_venue[fill.symbol] = fill.venue
        before = self._held.get(fill.symbol, 0.0)
        self._held[fill.symbol] = after
        if before != 0.0 and (after == 0.0 or (after > 0) != (before > 0)):
            self.refresh("close")  # a position closed (or flipped): the figures moved
        else:
            with self._lock:
                self.positions = positions(self.engine, self._last_venue)

    def refresh(self, why: str = "timer") -> None:
        with self._lock:
            self.figures = agent_figures(self.engine)
            self.positions = positions(self.engine, self._last_venue)
            figures, held = self.figures, self.positions
        if self.on_update is not None:
            self.on_update(figures, held, why)


def figures_table(figures: list[AgentFigures]) -> Any:
    """Rows of the store's ``agent_figures`` table."""
    import pyarrow as pa

    names = ("ts", "symbol", "agent", "trades", "hit_rate", "win_rate", "shadow_pnl",
             "apr_30d", "apr_90d", "apr_inception", "sharpe")
    columns = {name: [getattr(f, name) for f in figures] for name in names}
    return pa.table({**columns, "ts": pa.array(columns["ts"], pa.timestamp("ns")),
                     "trades": pa.array(columns["trades"], pa.int64()),
                     **{n: pa.array(columns[n], pa.float64()) for n in names[4:]}})
