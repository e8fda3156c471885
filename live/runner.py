"""Live runner: bars from async feeds go through the same single-threaded pipeline.

Feeds are pumped by asyncio tasks into one queue; a single consumer appends each bar to
its symbol's growing history and calls ``Engine.on_bar``, the one entry point a backtest
uses too. The engine keeps its event-time clock (bar timestamps), so the same bars give
the same signals, decisions, orders and fills as a simulated run.

Ordering: a backtest walks bars in (timestamp, symbol order). Live arrivals of one
timestamp across symbols (or across feeds) come in any order, so bars are held until
every symbol has reported that timestamp or a later one (a per-symbol watermark), then
released in (timestamp, symbol order). A symbol missing a bar holds the others back until
its next bar arrives; when all feeds end, whatever is held is released.

After every step the buffered rows are handed to the store writer's thread as one
transaction, at most every second (a timer commits what waits when no step comes), in a
paper session as in a venue session: the loop never waits for DuckDB, and a process
killed mid-session leaves at most the last second unstored. With a real venue
(``attach_port``: the core's order manager over a venue's adapter,
``live.orders.OrderPort``), the venue's answers and pushes are queued messages too,
applied by the same consumer; after every step (a bar, a venue message) the requests
submitted in that step go out first (their ``venue_orders`` rows are in the run's journal
already: write-ahead), and the port's durable records go with the rows (at once when the
risk engine tripped).
Several accounts (``attach_port`` once per account, each with the scenario venues bound
to it): each order manager's messages reach the same consumer tagged with their account
(``_FromPort``), each account is reconciled with its own snapshots, and the legs routed
to a venue go to its account's manager; one that cannot be reached is routed to the
others (``live.orders``: the fallback).
Bars that had closed before the session started (the warm-up) never send an order: the
desk holds them (denied, check "hold"). When the feeds end, the desk cancels what is
still working and the runner waits (``settle_s``) for the venue to confirm.

The run is stored with its ``mode`` ("paper": live data, simulated fills; "live": a real
venue). The bars the run saw go to the ``bars`` table with every commit (and on a
failure or interrupt), with the same causal regime labels as a backtest's. A
``KillSwitch`` (file or signal) is applied between bars, like any other message. A
cancelled session (Ctrl-C, SIGTERM: ``quorum.signals``) is stored ``interrupted`` with
how it was stopped (``Interrupted``), its rows committed.

Split off along their seams, as mixins of ``LiveRunner``: the commands that reach the
session from outside its loop, agent lifecycle commands and the kill switch
(``live.runner_commands``); the venue accounts, attached, started and reconciled
(``live.runner_venues``); the commits of the buffered rows to the store writer
(``live.runner_store``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import heapq
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import numpy as np

from live.commands import CommandChannel
from live.farms import start_farms
from live.feeds import AsyncBarFeed
from live.history import BarHistory
from live.interpreter import StepCollector, short_thread_switches
from live.kill import KillRequested, KillSwitch
from live.observe import report_reconciliation
from live.orders import OrderPort
from live.port import Snapshot, VenueMessage
from live.reconcile import reconcile
from live.risk_state import RiskTrips
from live.runner_commands import SessionCommands, _Submitted, stored_seq
from live.runner_store import SessionCommits
from live.runner_venues import VenueAccounts, _FromPort
from live.writer import StoreWriter
from sim.agent_commands import current_agents
from sim.bus import DECISION, EventBus, QueuedSubscription
from sim.bus_events import DecisionMade
from sim.config import ScenarioConfig
from sim.config_sources import source_symbols
from sim.data import MarketData
from sim.engine import Engine, fewer_gc_passes
from sim.lifecycle import AgentRoster
from sim.messages import Bar
from sim.runner import (
    RandomStreams,
    RunResult,
    build_engine,
    check_agent_symbols,
    make_recorder,
    new_run_id,
    stored_run,
)
from sim.store import RunStore

_BEFORE_ALL = -(2**63)
_END = object()
WARMUP_HOLD = ("warm-up: the bar had closed before the session started; orders are not "
               "sent to a real venue")


class Interrupted(asyncio.CancelledError):
    """The session was stopped: a signal ("SIGTERM received") or its task cancelled. A
    ``CancelledError``, so asyncio and ``stored_run`` treat it as one (``interrupted``)."""


class LiveRunner(SessionCommands, VenueAccounts, SessionCommits):
    """One live run of ``config`` over ``symbols`` (default: the symbols of ``config.data``)."""

    def __init__(
        self,
        config: ScenarioConfig,
        store: RunStore,
        *,
        symbols: Sequence[str] | None = None,
        run_id: str | None = None,
        data_hash: str = "live",
        flush_rows: int = 10_000,
        capacity: int = 1024,
        mode: str = "paper",
        resume: bool = False,
        bus: EventBus | None = None,
        on_decision: Callable[[DecisionMade], None] | None = None,
    ) -> None:
        symbols = tuple(symbols if symbols is not None
                        else (s for d in config.data for s in source_symbols(d)))
        if not symbols:
            raise ValueError(f"scenario {config.name!r}: no symbols to trade")
        self.config = config
        self.store = store
        self.run_id = run_id or new_run_id()
        self.data_hash = data_hash
        self.mode = mode
        self.symbols = symbols
        self.histories = [BarHistory(sym, capacity) for sym in symbols]
        # A MarketData whose bars grow: build_engine wires views over them exactly as a
        # backtest does. The walk order is empty: bars come from feeds, not from here.
        # (a BarHistory has SymbolBars' columns; only its length grows)
        data = MarketData(tuple(self.histories),  # type: ignore[arg-type]
                          np.empty(0, np.int32), np.empty(0, np.int64))
        check_agent_symbols(config, data)
        streams = RandomStreams.spawn(config.seed, len(config.data), len(config.agents))
        # With a bus, the pipeline publishes what it records (sim.observed); agents abstain
        # on errors by default and are timed against their latency budgets.
        # ``on_decision`` is called with each decision on a thread of its own (a slow
        # callback never delays an order; what it could not keep up with is counted).
        self._on_decision: QueuedSubscription | None = None
        if on_decision is not None:
            bus = bus or EventBus()
            self._on_decision = bus.subscribe_queued(
                lambda envelope: on_decision(envelope.event), [DECISION], name="on_decision")
        # ``watch``: a ``live.observe.SessionWatch``, started and closed with the run.
        self.bus = bus
        self.watch: Any = None
        self.recorder = make_recorder(store, self.run_id, symbols, config, flush_rows, bus)
        self.engine: Engine = build_engine(config, data, self.recorder, streams.agents, bus,
                                           session=True, timer=time.perf_counter_ns)
        self.lifecycle: AgentRoster = self.engine.lifecycle
        self.lifecycle.on_kill = self._kill_command
        self._loop: asyncio.AbstractEventLoop | None = None
        self._commands: CommandChannel | None = None
        self._index = {sym: s for s, sym in enumerate(symbols)}
        self._watermark = [_BEFORE_ALL] * len(symbols)
        self._held: list[tuple[int, int, Bar]] = []  # heap keyed (ts, symbol index)
        self._bars_written = [0] * len(symbols)
        self.recorder.before_flush.append(self._write_bars)
        self.killed_by: str | None = None
        self.resume = resume  # continue a stored run (live.recovery restored its state)
        self.port: OrderPort | None = None  # the first (with one account: the) port
        self.ports: list[OrderPort] = []
        self.reconciled = False  # the last reconciliation compared positions too
        self.writer: StoreWriter | None = None  # while running: DuckDB off the loop
        self.trips: RiskTrips | None = None  # with a real venue: breaker/kill, durably
        self.hold_until_ns: int | None = None  # bars closed by then are the warm-up
        self.interval_ns = 0
        self.reconcile_every_s: float | None = None
        self.settle_s = 10.0
        self.flush_every_s = 1.0
        self._flushed = 0.0
        self._flush_timer: asyncio.TimerHandle | None = None
        self._warming = False
        self.queue: asyncio.Queue[object] = asyncio.Queue()
        con = getattr(store, "con", None)
        if resume and con is not None:  # the agent set the run had, not the scenario's
            self.lifecycle.restore(current_agents(con, self.run_id), stored_seq(con, self.run_id))

    @property
    def bars_seen(self) -> int:
        return self.engine.bars_seen

    async def run(
        self, feeds: Sequence[AsyncBarFeed], kill_switch: KillSwitch | None = None,
        commands: CommandChannel | None = None,
    ) -> RunResult:
        """Consume ``feeds`` until all end; the run is stored as completed, failed or
        interrupted (cancelled, Ctrl-C or SIGTERM: ``Interrupted``), like a backtest. The
        kill switch's signal is armed for the whole run, shutdown included. ``commands``:
        a local channel of agent commands (``live.commands``), watched while it runs."""
        self.queue = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._commands = commands
        if not self.resume:  # the agents it starts with, as a backtest stores them
            started = time.time_ns()
            self.lifecycle.start(started, actor="session")
            start_farms(self.engine, self.config, started)  # [[farms]]: each farm
        armed = (kill_switch.armed(self.queue) if kill_switch is not None
                 else contextlib.nullcontext())
        with armed, stored_run(self.store, self.run_id, self.config, self.data_hash,
                               self.recorder, self.engine, self.mode, resume=self.resume):
            if self.resume:
                self.store.con.execute(  # type: ignore[attr-defined]
                    "UPDATE runs SET status = 'running', finished_at = NULL, error = NULL"
                    " WHERE run_id = ?", [self.run_id])
            con = getattr(self.store, "con", None)
            if con is not None:  # DuckDB off the loop, committed on the timer (``_commit``)
                self.writer = StoreWriter(con)
            if self.watch is not None:
                self.watch.start()
            try:
                try:
                    if self.port is not None:
                        await self._start_port()
                    await self._consume(feeds, kill_switch)
                finally:
                    for port in self.ports:
                        await port.close()
                self.engine.finish()
                self._commit(force=True)
            except asyncio.CancelledError as exc:  # stored with how it was stopped
                raise Interrupted(str(exc) or "cancelled") from None
            finally:  # what was handed over is written before the run is closed
                if self._on_decision is not None and self.bus is not None:
                    self.bus.unsubscribe(self._on_decision)  # delivers what it holds
                if self.watch is not None:  # its last rows go with the writer's last job
                    self.watch.close()
                if self._flush_timer is not None:
                    self._flush_timer.cancel()
                    self._flush_timer = None
                if self.writer is not None:
                    if self.writer.error is None:
                        # Interrupted or failed (after success nothing waits any more):
                        # what waits goes together, the port's records with the
                        # recorder's rows (``stored_run`` would flush fills alone,
                        # without their trade ids and legs' outcomes, and a restart
                        # would book them again).
                        self._commit(force=True)
                    self.writer.close()
        return RunResult(self.run_id, "completed", self.bars_seen)

    def store_failed(self, exc: Exception) -> NoReturn:
        """Store the run as failed before it took anything (its venue could not be
        reached), and raise ``exc``: a session that cannot start is on record like one
        that failed later."""
        with stored_run(self.store, self.run_id, self.config, self.data_hash, self.recorder,
                        self.engine, self.mode, resume=self.resume):
            raise exc

    async def _consume(
        self, feeds: Sequence[AsyncBarFeed], kill_switch: KillSwitch | None = None
    ) -> None:
        queue = self.queue
        pumps = [asyncio.create_task(_pump(feed, queue)) for feed in feeds]
        # The watchers do not count as feeds: the session ends when the feeds do.
        watchers = ([asyncio.create_task(kill_switch.watch(queue))]
                    if kill_switch is not None else [])
        if self._commands is not None:
            watchers.append(asyncio.create_task(
                self._commands.watch(self.submit, self.submit_rejected)))
        if self.port is not None and self.reconcile_every_s:
            watchers.append(asyncio.create_task(self._reconcile_every(self.reconcile_every_s)))
        try:
            await self._consume_queue(queue, len(pumps))
        finally:
            for task in pumps + watchers:
                task.cancel()
            await asyncio.gather(*pumps, *watchers, return_exceptions=True)

    async def _consume_queue(self, queue: asyncio.Queue[object], active: int) -> None:
        """Apply queued items until ``active`` feeds have ended. The cyclic GC runs less
        often meanwhile, only between steps (``live.interpreter.StepCollector``: not on
        whichever thread allocates), and what exists when the warm-up ends is frozen out
        of its passes (``_warm_up``): a full pass over a live process's heap takes
        milliseconds, which would otherwise land between a market event and its order now
        and then."""
        gc.collect()
        gc.freeze()
        step = self.bus.step if self.bus is not None else contextlib.nullcontext
        # Collections run between steps, on this loop (``live.interpreter``).
        with fewer_gc_passes(), short_thread_switches(), StepCollector() as collector:
            idle = asyncio.create_task(collector.while_idle())
            try:
                while active:
                    item = await queue.get()
                    if item is _END:
                        active -= 1
                        continue
                    with step():  # the API's stream and other observers wait for it
                        self._handle(item)
                        if self.port is not None:  # the step's requests reach the wire
                            for port in self.ports:
                                port.start_requests()
                            await asyncio.sleep(0)
                        self._commit()
                    collector.collect_due()
            finally:
                idle.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await idle
                gc.unfreeze()
        self._release(None)
        if self.port is not None:  # the run ends: cancel what works, wait for the venue
            self.engine.desk.end_run()
            self._commit()
            await self.settle()

    def _handle(self, item: object) -> None:
        port = self.port
        if isinstance(item, _FromPort):  # several accounts: the message names its own
            port, item = self.ports[item.port], item.msg
        if isinstance(item, Snapshot):
            assert port is not None
            before = port.differences
            self.reconciled = reconcile(port, item)
            report_reconciliation(self.bus, port, before, self.reconciled)
        elif isinstance(item, VenueMessage):
            assert port is not None
            port.apply(item)
        elif isinstance(item, KillRequested):
            self.kill(item.source)
        elif isinstance(item, _Submitted):
            item.apply(self.lifecycle)
        elif isinstance(item, BaseException):
            raise item
        else:
            self.accept(item)  # type: ignore[arg-type]

    async def settle(self, timeout_s: float | None = None) -> bool:
        """Apply venue messages until nothing of ours is working at the venue (True), or
        ``timeout_s`` (default ``settle_s``) passes (False: a warning; what is left is
        resolved by the next session of the run)."""
        ports = self.ports
        assert ports
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.settle_s if timeout_s is None else timeout_s)
        self._commit(force=True)
        while not all(p.settled for p in ports):
            left = deadline - loop.time()
            if left <= 0:
                unsettled = sum(len(p.by_cloid) for p in ports)
                print(f"quorum live: {unsettled} order(s) not settled at the venue "
                      f"after {self.settle_s:g} s; `quorum live --resume {self.run_id}` "
                      "resolves them", file=sys.stderr, flush=True)
                return False
            try:
                item = await asyncio.wait_for(self.queue.get(), left)
            except TimeoutError:
                continue
            if item is not _END:
                self._handle(item)
            self._commit()
        return True

    async def _until(self, done: Any, timeout_s: float = 30.0) -> None:
        """Apply messages until one satisfies ``done`` (or the timeout passes)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while (left := deadline - loop.time()) > 0:
            try:
                item = await asyncio.wait_for(self.queue.get(), left)
            except TimeoutError:
                break
            if item is not _END:
                self._handle(item)
            self._commit()
            if done(item):
                return

    def accept(self, bar: Bar) -> None:
        """Take one closed bar; pass on every held bar all symbols have now got past."""
        s = self._index.get(bar.symbol)
        if s is None:
            raise ValueError(f"bar for unknown symbol {bar.symbol!r} (trading {self.symbols})")
        if bar.ts <= self._watermark[s]:
            raise ValueError(f"{bar.symbol}: bar at {bar.ts} does not follow the bar at "
                             f"{self._watermark[s]}: feed out of order or repeated")
        self._watermark[s] = bar.ts
        heapq.heappush(self._held, (bar.ts, s, bar))
        self._release(min(self._watermark))

    def _release(self, upto: int | None) -> None:
        """Send held bars with ts <= ``upto`` (all if None) into the engine, in sim order."""
        held = self._held
        if not held or (upto is not None and held[0][0] > upto):
            return
        on_bar = self.engine.on_bar
        histories = self.histories
        while held and (upto is None or held[0][0] <= upto):
            ts, s, bar = heapq.heappop(held)
            ts = int(ts)
            o, h, lo, c, v = (float(bar.open), float(bar.high), float(bar.low),
                              float(bar.close), float(bar.volume))
            n = histories[s].append(ts, o, h, lo, c, v)
            if self._warming:
                self._warm_up(ts)
            on_bar(s, n, ts, o, h, lo, c, v)
            if self._warming and self.resume:
                # A resumed run's warm-up only rebuilds the agents' state: what it would
                # record was recorded by the session that saw those bars live (or is a
                # time the run was down), so it is dropped, bars included.
                self.recorder.discard()
                self._bars_written[s] = len(histories[s])
        if self.writer is None:  # else the step's rows go to the writer (``_commit``)
            self.recorder.maybe_flush()

    def _warm_up(self, ts: int) -> None:
        """Hold orders while bars are history; the first live bar ends the warm-up."""
        assert self.hold_until_ns is not None
        desk = self.engine.desk
        if ts + self.interval_ns <= self.hold_until_ns:
            desk.hold = WARMUP_HOLD
            return
        desk.hold = None
        self._warming = False
        gc.collect()  # the state built so far lives as long as the session: out of GC passes
        gc.freeze()
        if self.resume:  # no equity row for the last (dropped) warm-up time
            self.engine.drop_pending_equity()


async def _pump(feed: AsyncBarFeed, queue: asyncio.Queue[object]) -> None:
    """Deliver one feed's bars to the queue; an error is delivered too, then the feed ends."""
    try:
        async for bar in feed:
            queue.put_nowait(bar)
    except Exception as exc:
        queue.put_nowait(exc)
        return
    queue.put_nowait(_END)


async def run_live(
    config: ScenarioConfig, store: RunStore, feeds: Sequence[AsyncBarFeed], **kwargs: Any
) -> RunResult:
    """Build a ``LiveRunner`` (keyword arguments go to it) and run it over ``feeds``."""
    return await LiveRunner(config, store, **kwargs).run(feeds)
