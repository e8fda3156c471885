"""The engine of a run with ``[[farms]]``: one event loop, several pipelines.

Every bar goes through the same loop as ``sim.engine.Engine`` (agents see it in the
scenario's order, each signal recorded once); then each farm trading the symbol votes on
its own agents' signals with its own consensus, and its decision is sized by its own
policy on its own ledger and judged by its own limits before the account's
(``sim.farm_desk``). Farms release their pending decisions at the next open in the order
the scenario lists them, so two farms' opposite orders on one bar are both sent, the
earlier-listed farm first (no internal crossing: each pays its fees and both fills reach
the venue, which nets them in the account's position).

At every time step each farm's equity is booked (the ``farm_equity`` table) and the
account ledger is checked to be the sum of the farm ledgers (``sim.farms.check_ledgers``);
a mismatch fails the run naming it. With perpetuals, each farm under its own maintenance
margin is closed first (``FarmDesk.margin_calls``), before the step's rows are booked.

The agent set may change while the run goes (``sim.lifecycle``): an agent moved to
another symbol votes there in its farm, and a spawned agent joins the farm its event
names or a farm of its own, made then and funded from the reserve (``add_farm``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from sim.allocator import Allocator
from sim.consensus import expire
from sim.engine import AgentSlot, Engine, _Revote
from sim.farm_desk import FarmDesk
from sim.farms import Farm, buy_split, check_ledgers, margin_split
from sim.messages import Decision, FillTiming
from sim.observed import ObservedEngine
from sim.policy import InvertedOrderError, inverted
from sim.risk import attributed_agents

# A symbol's pending decisions: farm index -> (decision, target exposure).
_Batch = dict[int, tuple[Decision, float]]


class FarmEngine(Engine):
    """``Engine`` with ``farms`` (``sim.farms.Farm``, in the scenario's order) and the
    account's unallocated cash ``reserve``."""

    per_bar_reason = "farms: each farm's ledger is booked on every bar"

    def __init__(self, *args: Any, farms: Sequence[Farm], reserve: float,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.farms = list(farms)  # spawned farms join at the end (add_farm)
        self.reserve = reserve
        for farm in self.farms:
            self._prepare(farm)
        self._checked: list[float] = []  # the ledgers when their sum last held
        self._book_account_ts = self._book_ts
        self._book_ts = self._book_step
        self._voters: list[tuple[Farm, ...]] = []
        self.refresh_voters()
        self._farm_of_agent = {name: f for f in self.farms for name in f.members}
        # Spawned agents' farms (sim.farm_build.SpawnFarms), set by sim.runner.
        self.spawns: Any = None
        self.desk = FarmDesk(
            self.symbols, self.views, self.risk, self.router, self.portfolio,
            self.recorder, self.queue, self.clock, self.execution, self.farms,
            dispatch_before=self._drain_before, on_flatten=self._forget_farm_decision)
        self._perps = any(p is not None for p in self.desk.perp)
        if self._perps:
            self.on_bar = self._on_bar_margin  # type: ignore[method-assign]
            self._snapshot = self._snapshot_margin  # type: ignore[method-assign]
        self._watch = self.desk.watch
        self._n_working = self.desk.n_working
        self._tick_volume = self.desk.tick_volume
        self.recorder.before_flush.append(self._write_farm_equity)
        self.recorder.before_take.append(self._write_farm_equity)  # a live session's writer
        self.recorder.on_discard.append(self._discard_farm_equity)
        self.allocator: Allocator | None = None  # set by sim.farm_build.schedule_allocator

    def _prepare(self, farm: Farm) -> None:
        farm.ledger.price = self.portfolio.price  # one mark per symbol for all
        farm.last_decision = [None] * len(self.symbols)
        farm.acted_target = [0.0] * len(self.symbols)

    def add_farm(self, farm: Farm, ts: int, amount: float, reason: str) -> None:
        """A farm that joins while the run goes (an agent spawned as a farm of its own),
        funded with ``amount`` from the account's unallocated reserve."""
        if amount > self.reserve * (1.0 + 1e-12):
            raise ValueError(f"farm {farm.name}: the reserve {self.reserve!r} cannot pay "
                             f"{amount!r}")
        self.reserve -= amount
        self._prepare(farm)
        self.farms.append(farm)
        self.desk.add_farm(farm)  # type: ignore[attr-defined]
        self.recorder.rare_row("capital_transfers", (ts, "account", farm.name, amount,
                                                     reason))

    # -- the agent set changes: a new slot votes in its agent's farm ---------------------
    def add_slot(self, s: int, slot: AgentSlot) -> int:
        """An agent instance on s (spawned, or moved to s by an update) votes in its
        farm; a spawned agent's farm is made first if it is one of its own."""
        farm = self._farm_of_agent.get(slot.name)
        if farm is None:
            assert self.spawns is not None, f"agent {slot.name!r} is in no farm"
            farm = self._farm_of_agent[slot.name] = self.spawns.farm_for(slot.name, self)
            farm.members.add(slot.name)
        pos = super().add_slot(s, slot)
        farm.columns[s] = (*farm.columns[s], pos)
        farm.agent_indexes[s] = (*farm.agent_indexes[s], slot.index)
        farm.agent_names[s] = (*farm.agent_names[s], slot.name)
        self.refresh_voters()
        return pos

    # -- time steps: book each farm, check the sum ----------------------------------------
    def _book_step(self, ts: int) -> None:
        """``Engine._book_ts``: wherever the account books a time step (the bar path,
        ``_snapshot``), each farm books it too, after the sum is checked."""
        self._book_account_ts(ts)
        self._book_farms(ts)

    # Farms with perpetuals answer their own margin calls at a step's marks before the
    # step is booked (the account's equity is taken before ``_book_ts``): these replace
    # ``on_bar`` and ``_snapshot`` on such an engine only (``__init__``).
    def _on_bar_margin(self, s: int, n: int, ts: int, o: float, h: float, lo: float,
                       c: float, v: float) -> None:
        last_ts = self._last_ts
        if last_ts is not None and ts > last_ts:
            self.desk.margin_calls(last_ts)  # type: ignore[attr-defined]
        type(self).on_bar(self, s, n, ts, o, h, lo, c, v)  # the class's (an observer's too)

    def _snapshot_margin(self, ts: int) -> None:
        self.desk.margin_calls(ts)  # type: ignore[attr-defined]
        type(self)._snapshot(self, ts)

    def _book_farms(self, ts: int) -> None:
        # The sum is checked whenever a ledger changed since it last held (most steps
        # book no fill, and the same amounts cannot add up differently). A live
        # session's bookings to no farm are part of the sum once there are any.
        desk: FarmDesk = self.desk  # type: ignore[assignment]
        apart = desk.unattributed if desk.booked_unattributed else None
        account = self.portfolio
        state = [account.cash, account.fees_paid, account.funding_total, self.reserve,
                 *account.qty]
        for ledger in [farm.ledger for farm in self.farms] + ([apart] if apart else []):
            state += (ledger.cash, ledger.fees_paid, ledger.funding_total, *ledger.qty)
        if state != self._checked:
            check_ledgers(account, self.farms, self.reserve, ts, apart, desk.sizes)
            self._checked = state
        if self.allocator is not None:
            self.allocator.observe([farm.ledger.equity() for farm in self.farms])
        for farm in self.farms:
            ledger = farm.ledger
            book = ledger.book
            equity = ledger.equity()
            book.ts.append(ts)
            book.cash.append(ledger.cash)
            book.equity.append(equity)
            book.realized.append(ledger.realized_total)
            book.unrealized.append(ledger.unrealized(equity))

    def _write_farm_equity(self) -> None:
        """Before the recorder writes: each farm's booked rows become ``farm_equity``
        rows (one block of columns per farm, farms in the scenario's order), and its risk
        engine sees them first (``EquityBook.drain``)."""
        for farm in self.farms:
            book = farm.ledger.book
            n = len(book.ts)
            if n:
                # Copies: the book's arrays are cleared below (an exporting one could not).
                self.recorder.rare_columns("farm_equity", {
                    "ts": pa.array(np.array(book.ts, dtype=np.int64), type=pa.timestamp("ns")),
                    "farm": pa.DictionaryArray.from_arrays(
                        pa.array(np.zeros(n, dtype=np.int32)), pa.array([farm.name])),
                    "cash": np.array(book.cash, dtype=np.float64),
                    "equity": np.array(book.equity, dtype=np.float64),
                    "realized_pnl": np.array(book.realized, dtype=np.float64),
                    "unrealized_pnl": np.array(book.unrealized, dtype=np.float64)})
            book.drain()

    def _discard_farm_equity(self) -> None:
        """A resumed live session's warm-up: the rows were booked, and followed by each
        farm's risk engine, by the session that first saw those bars."""
        for farm in self.farms:
            farm.ledger.book.discard()

    # -- decisions, farm by farm ----------------------------------------------------------
    def _open(self, s: int, ts: int, o: float, h: float, lo: float, c: float, v: float,
              pending: Any) -> bool:
        changed = False
        bars = not self.execution.ticks  # in tick replay, trades drive the working orders
        if bars and self._watch[s]:
            self.desk.venue_open(s, ts, o, v)
        if pending is not None:
            self._pending[s] = None
            if pending.__class__ is _Revote:
                changed = True
                pending = pending.held
            if pending:
                self._release_held(s, ts, o, pending)
        if bars and self._watch[s]:
            self.desk.venue_path(s, ts, o, h, lo, c, v)
        return changed

    def _release_held(self, s: int, ts: int, price: float, held: Any) -> None:
        """Each farm's pending decision on s, in the scenario's order, at ``price``."""
        batch: _Batch = held
        last_close = self.portfolio.price[s]
        for index in sorted(batch):
            decision, target = batch[index]
            self._release_farm(self.farms[index], s, ts, price, last_close, decision, target)

    def _vote(self, s: int, ts: int, close: float) -> None:
        standing = self._standing[s]
        for farm in self._voters[s]:
            columns = farm.columns[s]
            signals = tuple([standing[p] for p in columns])
            if self.max_signal_age is not None:
                given = self._signal_ts[s]
                signals = expire(signals, [given[p] for p in columns], ts,
                                 self.max_signal_age)
            side, confidence, target, weights, rule, agreement = farm.consensus.resolve(
                signals, s)
            key = (side, confidence, target)
            if key == farm.last_decision[s]:
                continue
            farm.last_decision[s] = key
            self._decision_id += 1
            decision_id = self._decision_id
            self.recorder.decision(decision_id, ts, s, side, confidence, target,
                                   farm.agent_indexes[s], signals, weights, rule, agreement)
            self.recorder.rare_row("farm_decisions", (decision_id, farm.name))
            exposure = farm.policy.target_exposure(side, confidence, target, s)
            if exposure is None or exposure == farm.acted_target[s]:
                continue
            decision = Decision(decision_id, ts, self.symbols[s], side, confidence, target,
                                farm.agent_names[s], signals, weights)
            if self.fill_timing is FillTiming.CLOSE:
                self._release_farm(farm, s, ts, close, self.portfolio.price[s], decision,
                                   exposure)
            else:
                batch: _Batch | None = self._pending[s]  # type: ignore[assignment]
                if batch is None:
                    self._pending[s] = batch = {}  # type: ignore[call-overload]
                batch[farm.index] = (decision, exposure)

    def _release_farm(self, farm: Farm, s: int, ts: int, price: float, last_close: float,
                      decision: Decision, target: float) -> None:
        """``Engine._release`` for one farm: sized on the farm's ledger by its policy, a
        buy trimmed to what the farm's free cash (not reserved by its working orders)
        pays for at the order's price bound (``FarmDesk.decision_unit``)."""
        farm.acted_target[s] = target
        self.portfolio.price[s] = price
        desk: FarmDesk = self.desk  # type: ignore[assignment]
        desk.farm = farm
        replaced = desk.replace_working(s, ts) if self._n_working[s] else 0
        ledger = farm.ledger
        position = ledger.qty[s]
        equity = ledger.equity()
        qty = farm.policy.order_quantity(target, position, equity, price)
        cost = desk.farm_risk.cost_margin
        lev = farm.leverage[s] if farm.leverage else None
        if lev is not None and qty:  # a perpetual: what the farm's own margin allows
            cover, opening, affordable = margin_split(
                qty, position, farm.free_collateral() - (ledger.cash - farm.free_cash()),
                price, lev, cost)
            if opening > affordable:
                qty = math.copysign(cover + affordable, qty)
        elif qty > 0.0:  # a farm buys with its own cash only: trimmed to it, as a venue trims
            cover, opening, affordable = buy_split(
                qty, position, farm.free_collateral() - (ledger.cash - farm.free_cash()),
                desk.decision_unit(s, price))
            if opening > affordable:
                qty = cover + affordable
        if qty == 0.0:
            if not (target and equity <= 0.0 and position == 0.0):
                return
        elif inverted(target, position, qty):
            raise InvertedOrderError(
                f"farm {farm.name}: decision {decision.decision_id} ({decision.side.name}, "
                f"target exposure {target:+.6g}) on {self.symbols[s]} made an order of "
                f"{qty:+.6g} that takes the position from {position:+.6g} to "
                f"{position + qty:+.6g}: an order opposite to its decision")
        agents = attributed_agents(decision) if self._attribute else ()
        desk.submit_decision(s, ts, price, qty, decision.decision_id, decision.ts, position,
                             equity, last_close, agents, replaced)

    # -- farm lifecycle (sim.farm_lifecycle), between bars only ------------------------
    def refresh_voters(self) -> None:
        """The farms voting on each symbol, in the scenario's order: active farms with an
        agent there (after a move, pause, resume or kill)."""
        self._voters = [tuple(f for f in self.farms if f.columns[s] and f.state == "active")
                        for s in range(len(self.symbols))]

    def drop_farm_pending(self, farm: Farm) -> None:
        """``farm``'s decisions waiting for the next open are dropped (paused, killed)."""
        for s in range(len(self.symbols)):
            pending = self._pending[s]
            if pending.__class__ is _Revote:
                pending = pending.held  # type: ignore[union-attr]
            if pending:
                pending.pop(farm.index, None)  # type: ignore[union-attr,attr-defined]

    def _forget_farm_decision(self, farm: Farm, s: int) -> None:
        """Risk is flattening ``farm`` on s: its target is flat, its pending decision
        there dropped."""
        farm.acted_target[s] = 0.0
        pending = self._pending[s]
        if pending.__class__ is _Revote:
            pending = pending.held  # type: ignore[union-attr]
        if pending:
            pending.pop(farm.index, None)  # type: ignore[union-attr,attr-defined]


class ObservedFarmEngine(ObservedEngine, FarmEngine):
    """A farm run whose bars and account equity are published on a bus as they happen
    (``sim.observed.ObservedEngine``: ``quorum live --api``'s stream, a watched
    backtest); the farms run as in ``FarmEngine``, the stored rows are the same."""
