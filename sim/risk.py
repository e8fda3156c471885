"""Pre-trade risk: every order passes these checks before it may be routed.

Each check is a small pure function ``check_x(order, ctx) -> Breach | None`` over the
order and an immutable snapshot of the state it is judged against (``RiskContext``: the
position, the account, the counters, the limits). ``RiskEngine`` owns the mutable state
(day and window counters, the circuit breaker, the kill switch), builds the snapshot and
runs the checks in ``CHECK_ORDER`` (those whose limits are set); the first breach denies
the order, stored with the check's name, the limit, the value found and the reason.
Nothing is trimmed silently.

Definitions
-----------
* Notional is quantity x the order's reference price (the market price it was sized at,
  before slippage), as exposure limits are usually marked.
* An order *grows* a position when ``|pos + q| > |pos|``. It *reduces* it when
  ``pos != 0``, ``|pos + q| <= |pos|`` and it does not cross zero; only reducing orders
  pass a tripped circuit breaker or an engaged kill switch (so flattening always works).
  Position notional limits judge every order that is not a reduction: one that grows the
  position, and one that flips it to the other side, even to a smaller size (it opens
  a new position, at today's price).
* Days (``max_orders_per_day``, the daily loss limit, an agent's ``max_trades_per_day``)
  are calendar days in ``timezone`` (default UTC), computed only when an order is checked.
* Daily loss = (equity at the start of the day - equity now) / equity at the start of the
  day, where the start-of-day equity is the last equity row booked before the day began
  (initial cash if none). Drawdown = (peak equity - equity now) / peak, the peak taken
  over booked equity rows and the equity at each check (booked rows come from the
  ledger's equity book, ``sim.portfolio.EquityBook``, never from the recorder: the view
  is the same whenever and by whom the rows are written). Either breaching its limit trips
  the circuit breaker: the daily-loss breaker lasts until the day ends, the drawdown
  breaker and the kill switch for the rest of the run. ``flatten_on_trip`` makes the
  engine close every open position when the breaker trips or the switch is pulled.
  The breaker is evaluated when an order is checked, never per bar (no cost on the
  no-trade path): it trips at the first order after the breach, and a flatten happens
  then, not at the bar where equity first crossed the limit.
* Equity <= 0 (the account lost more than it had): only reducing orders pass, like a
  tripped breaker; any other is denied (check ``equity``, the equity as the value). Always
  on: sizing aims at flat then (``sim.policy``), so this is the backstop for every
  order, whoever made it.
* Leverage = gross exposure after the order (sum |qty| x mark over symbols, this one at
  the order's price) / equity, checked when the order grows its position.
* Price band (fat finger): deny when ``|ref_price / last_close - 1| > price_band``; the
  last close is the symbol's previous mark (no check before the first close).
* Order rate: orders that reached a venue within the last ``order_window_ns`` (counted,
  like the daily count, only once sent).
* A restarted live run continues this state (``RiskEngine.restore``, from plain values
  its store holds: ``live.risk_state``): the day's and the window's orders, the
  start-of-day equity and the peak, a tripped breaker, a pulled kill switch.

Per-agent permissions
---------------------
An order is attributed to the agents whose standing votes are on the decision's winning
side (``Decision.side``). It must satisfy the permissions of **every** attributed agent
that has any (agents without permissions are unrestricted; an order nobody is attributed
to, e.g. a risk flatten, is checked against account limits only): the strictest limit of
the voters binds. Permissions: ``max_trade_notional`` (order notional),
``max_position_notional`` (symbol position after an order that is not a reduction),
``max_trades_per_day`` (orders attributed to the agent that reached a venue today),
``allowed_symbols`` and ``risk_level`` ("low", "medium", "high": a gross leverage cap of
1x, 2x, 5x on growing orders, ``RISK_LEVEL_LEVERAGE``).

The checks themselves, pure functions with the limits and the snapshot they read, are in
``sim.risk_checks`` (split off along that seam; every name is re-exported here); this
module keeps ``RiskEngine``, the mutable state and the check run.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import deque
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sim.messages import OrderDenied
from sim.risk_checks import (  # re-exported: defined here before
    _NAN,
    CHECK_NAMES,
    CHECK_ORDER,
    RISK_LEVEL_LEVERAGE,
    AgentPermissions,
    Breach,
    Check,
    RiskContext,
    RiskLimits,
    Ticket,
    attributed,
    attributed_agents,
    check_agent_permissions,
    check_allowed_symbols,
    check_circuit_breaker,
    check_daily_loss,
    check_drawdown,
    check_equity,
    check_kill_switch,
    check_leverage,
    check_order_notional,
    check_order_rate,
    check_orders_per_day,
    check_position_notional,
    check_price_band,
    daily_loss,
    drawdown,
    grows,
    leverage_after,
    reduces,
)

__all__ = [
    "CHECK_NAMES", "CHECK_ORDER", "RISK_LEVEL_LEVERAGE", "AgentPermissions", "Breach",
    "Check", "RiskContext", "RiskEngine", "RiskLimits", "Ticket", "attributed",
    "attributed_agents", "check_agent_permissions", "check_allowed_symbols",
    "check_circuit_breaker", "check_daily_loss", "check_drawdown", "check_equity",
    "check_kill_switch", "check_leverage", "check_order_notional", "check_order_rate",
    "check_orders_per_day", "check_position_notional", "check_price_band", "daily_loss",
    "drawdown", "grows", "leverage_after", "reduces",
]


class RiskEngine:
    """Holds the limits and the mutable risk state; ``check`` runs the pure checks."""

    def __init__(
        self,
        max_order_notional: float | None = None,
        max_position_notional: float | None = None,
        max_orders_per_day: int | None = None,
        allowed_symbols: Iterable[str] | None = None,
        *,
        limits: RiskLimits | None = None,
        initial_equity: float = _NAN,
    ) -> None:
        if limits is None:
            limits = RiskLimits(
                max_order_notional, max_position_notional, max_orders_per_day,
                None if allowed_symbols is None else frozenset(allowed_symbols),
            )
        self.limits = limits
        self._tz = ZoneInfo(limits.timezone)
        self._day_start = 0
        self._day_end = -1  # [start, end) of the current day, ns UTC
        self._orders_today = 0
        self._agent_trades: dict[str, int] = {}
        self._sent: deque[int] = deque()
        self.initial_equity = initial_equity
        self.peak_equity = initial_equity
        self.day_start_equity = initial_equity
        # booked equity history (ts ascending), fed lazily by ``observe_equity``
        self._last_booked_equity = initial_equity
        self.breaker: str | None = None
        self.breaker_value: float | None = None
        self._breaker_until: int | None = None  # daily-loss breaker: end of its day
        self.killed = False
        self.tripped_now = False  # set by ``check`` when this check tripped the breaker
        # Wanted by ``check`` only for account checks; the engine skips work otherwise.
        # Only the checks whose limits are set run (the kill switch always does).
        active: dict[Check, bool] = {
            check_circuit_breaker: limits.needs_equity_history,
            check_daily_loss: limits.daily_loss_limit is not None,
            check_drawdown: limits.max_drawdown is not None,
            check_allowed_symbols: limits.allowed_symbols is not None,
            check_orders_per_day: limits.max_orders_per_day is not None,
            check_order_rate: limits.max_orders_per_window is not None,
            check_price_band: limits.price_band is not None,
            check_order_notional: limits.max_order_notional is not None,
            check_position_notional: limits.max_position_notional is not None,
            check_leverage: limits.max_leverage is not None,
            check_agent_permissions: bool(limits.agents),
        }
        self.checks = tuple(c for c in CHECK_ORDER if active.get(c, True))
        # Only the checks that are always on (kill switch, equity): ``check`` answers
        # without building a context while neither can deny (see there).
        self._always_on_only = self.checks == (check_kill_switch, check_equity)
        self.needs_account = (
            limits.needs_equity_history or limits.max_leverage is not None
            or any(p.risk_level is not None for p in limits.agents.values())
        )

    # -- state fed by the engine -----------------------------------------------------------
    def observe_equity(
        self, ts: Sequence[int], values: Sequence[float], start: int, now: int
    ) -> None:
        """Booked equity rows ``[start:]`` (ascending ts, all before ``now``): the peak and
        the start-of-day equity follow them. Called by the equity book before a check
        and before its rows are written (``EquityBook.follow``), never per bar."""
        if start < len(values):
            peak = max(values[start:])
            if not peak <= self.peak_equity:  # also replaces a NaN peak
                self.peak_equity = peak
        self._roll_day(now)
        if start < len(values):
            # Start-of-day equity: the last row booked before the current day began.
            k = bisect_left(ts, self._day_start, start)
            if k > start:
                self.day_start_equity = values[k - 1]
            self._last_booked_equity = values[-1]

    def kill(self) -> None:
        self.killed = True

    @property
    def breaker_until(self) -> int | None:
        """When a tripped daily-loss breaker ends (ns); None for the others."""
        return self._breaker_until

    def restore(
        self, now: int, *, sent: Iterable[int] = (), equity_ts: Sequence[int] = (),
        equity: Sequence[float] = (), breaker: tuple[str, float | None, int | None] | None = None,
        killed: bool = False, agent_trades: Iterable[tuple[int, Sequence[str]]] = (),
    ) -> None:
        """Continue a run's risk state after a restart, from plain values (a live run
        reads them from its store: ``live.risk_state``), as if the process never died.

        ``now``: the time of the restart (its day is the current day); ``sent``: the time
        of every order of the run that reached a venue (counted toward the day's and the
        window's limits, as ``on_order_sent`` counted them); ``equity_ts``/``equity``: the
        booked equity rows, ascending (the drawdown peak over them and the initial equity;
        the start-of-day equity: the last row before today began, else the initial
        equity); ``breaker``: (check, value, until ns or None) of a tripped circuit breaker
        (a daily-loss breaker whose day has ended is not restored); ``killed``: the kill
        switch was pulled; ``agent_trades``: (time, agents attributed) of every decision's
        order that reached a venue (an agent's ``max_trades_per_day``)."""
        self.peak_equity = self.day_start_equity = self.initial_equity
        self._last_booked_equity = self.initial_equity
        self._day_end = -1  # the day is rolled to ``now`` afresh: counters start at 0
        self._roll_day(now)
        if len(equity):
            self.observe_equity(equity_ts, equity, 0, now)
        times = sorted(sent)
        start, end = self._day_start, self._day_end
        self._orders_today = sum(1 for t in times if start <= t < end)
        self._sent = deque(times) if self.limits.max_orders_per_window is not None else deque()
        self._agent_trades.clear()
        for ts, agents in agent_trades:
            if start <= ts < end:
                for a in agents:
                    self._agent_trades[a] = self._agent_trades.get(a, 0) + 1
        self.breaker = self.breaker_value = self._breaker_until = None
        if breaker is not None:
            name, value, until = breaker
            if until is None or now < until:
                self.breaker, self.breaker_value, self._breaker_until = name, value, until
        self.killed = self.killed or killed

    def _roll_day(self, ts: int) -> None:
        if self._day_start <= ts < self._day_end:
            return
        local = datetime.fromtimestamp(ts / 1e9, self._tz)
        midnight = datetime(local.year, local.month, local.day, tzinfo=self._tz)
        nxt = midnight + timedelta(days=1)
        nxt = datetime(nxt.year, nxt.month, nxt.day, tzinfo=self._tz)
        start = int(midnight.timestamp()) * 1_000_000_000
        end = int(nxt.timestamp()) * 1_000_000_000
        if ts < start:  # float rounding at the boundary
            start, end = end - 86_400 * 1_000_000_000, start
        self._day_start, self._day_end = start, end
        self._orders_today = 0
        self._agent_trades.clear()
        # A new day starts from the last equity booked before it.
        self.day_start_equity = self._last_booked_equity
        if self._breaker_until is not None and ts >= self._breaker_until:
            self.breaker = self.breaker_value = self._breaker_until = None

    def trip(self, name: str, value: float, until: int | None) -> None:
        """Trip the breaker from outside the checks (a farm's daily loss in money,
        ``sim.farms``): until ``until`` (None: for good) only reductions pass."""
        self.breaker, self.breaker_value, self._breaker_until = name, value, until
        self.tripped_now = True

    def shift_equity(self, delta: float) -> None:
        """Capital moved in (``delta`` > 0) or out: the equity references move with it,
        so a transfer never reads as a gain or a loss (``sim.allocator``)."""
        self.initial_equity += delta
        self.peak_equity += delta
        self.day_start_equity += delta
        self._last_booked_equity += delta

    def day_bounds(self, ts: int) -> tuple[int, int]:
        self._roll_day(ts)
        return self._day_start, self._day_end

    # -- the check -------------------------------------------------------------------------
    def check(
        self, order: Ticket, position: float, *, equity: float = _NAN,
        gross_exposure: float = 0.0, last_close: float = _NAN,
        agents: tuple[str, ...] = (),
    ) -> OrderDenied | None:
        """Deny with the first failed check, or return None if the order may go.

        With only the always-on checks and the switch not pulled, an order on an account
        with positive (or unknown, NaN) equity passes both: no context is built for it
        (most orders of most runs). The state ``first_breach`` keeps is kept the same."""
        if self._always_on_only and not self.killed and not equity <= 0.0:
            self.tripped_now = False
            ts = order.ts
            if not self._day_start <= ts < self._day_end:
                self._roll_day(ts)
            if not equity <= self.peak_equity and equity == equity:
                self.peak_equity = equity
            return None
        breach = self.first_breach(order, position, equity=equity,
                                   gross_exposure=gross_exposure, last_close=last_close,
                                   agents=agents)
        if breach is None:
            return None
        return OrderDenied(order.order_id, order.ts, order.symbol, breach.check,
                           breach.reason, breach.limit, breach.value)

    def first_breach(
        self, order: Ticket, position: float, *, equity: float = _NAN,
        gross_exposure: float = 0.0, last_close: float = _NAN,
        agents: tuple[str, ...] = (),
    ) -> Breach | None:
        self.tripped_now = False
        self._roll_day(order.ts)
        limits = self.limits
        if not math.isnan(equity) and not equity <= self.peak_equity:
            self.peak_equity = equity
        in_window = 0
        if limits.max_orders_per_window is not None and limits.order_window_ns is not None:
            sent, since = self._sent, order.ts - limits.order_window_ns
            while sent and sent[0] <= since:
                sent.popleft()
            in_window = len(sent)
        ctx = RiskContext(
            limits, position, equity, gross_exposure, last_close, self._orders_today,
            in_window, self.day_start_equity, self.peak_equity, self.breaker,
            self.breaker_value, self.killed, agents,
            tuple([self._agent_trades.get(a, 0) for a in agents]) if agents else (),
        )
        # The breaker trips on the account's state, whatever the order.
        if self.breaker is None and limits.needs_equity_history:
            for name, limit, value, until in (
                ("daily_loss_limit", limits.daily_loss_limit, daily_loss(ctx), self._day_end),
                ("max_drawdown", limits.max_drawdown, drawdown(ctx), None),
            ):
                if limit is not None and value >= limit:
                    self.breaker, self.breaker_value, self._breaker_until = name, value, until
                    self.tripped_now = True
                    break
        for check in self.checks:
            breach = check(order, ctx)
            if breach is not None:
                return breach
        return None

    def on_order_sent(self, order: Ticket, agents: tuple[str, ...] = ()) -> None:
        """Count an order against the day's, the window's and its agents' limits once it
        has actually reached a venue."""
        if not self._day_start <= order.ts < self._day_end:
            self._roll_day(order.ts)
        self._orders_today += 1
        if self.limits.max_orders_per_window is not None:
            self._sent.append(order.ts)
        for a in agents:
            self._agent_trades[a] = self._agent_trades.get(a, 0) + 1
