"""The event bus (sim.bus): numbering, topics, queued delivery that never blocks the
publisher, catch-up from a sequence number, and an observed backtest that publishes every
stored event while storing exactly the rows an unobserved one stores."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from research.sweep_worker import CollectingStore
from sim.bus import (
    ALL,
    BAR,
    DECISION,
    EQUITY,
    FILL,
    ORDER,
    ROUTE,
    SIGNAL,
    Envelope,
    EventBus,
)
from sim.bus_events import BarClosed, EquityBooked, FillBooked, SignalChanged
from sim.config import load_scenario
from sim.runner import run_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def test_events_are_numbered_in_order_and_go_to_their_topics() -> None:
    bus = EventBus()
    everything: list[Envelope] = []
    bars: list[Envelope] = []
    bus.subscribe(everything.append)
    bus.subscribe(bars.append, [BAR])
    assert bus.publish(SIGNAL, 5, "a") == 1
    assert bus.publish(BAR, 6, "b") == 2
    assert bus.publish(FILL, 7, "c") == 3
    assert [(e.seq, e.topic, e.ts, e.event) for e in everything] == [
        (1, SIGNAL, 5, "a"), (2, BAR, 6, "b"), (3, FILL, 7, "c")]
    assert [e.seq for e in bars] == [2]


def test_nothing_is_numbered_when_nobody_listens() -> None:
    bus = EventBus()
    assert not bus.wants(BAR)
    assert bus.publish(BAR, 1, "x") == 0
    sub = bus.subscribe(lambda e: None, [BAR])
    assert bus.wants(BAR) and not bus.wants(FILL)
    bus.unsubscribe(sub)
    assert not bus.wants(BAR)


def test_an_unknown_topic_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"unknown bus topic.*'bars'"):
        EventBus().subscribe(lambda e: None, ["bars"])


def test_a_stuck_queued_subscriber_never_blocks_the_publisher() -> None:
    bus = EventBus()
    release = threading.Event()
    seen: list[int] = []

    def stuck(envelope: Envelope) -> None:
        release.wait(5)
        seen.append(envelope.seq)

    sub = bus.subscribe_queued(stuck, [BAR], maxlen=3, name="stuck")
    for i in range(10):  # the handler holds event 1; the queue keeps the newest 3
        bus.publish(BAR, i, i)
    assert sub.missed >= 6  # event 1 may or may not have been taken before the flood
    release.set()
    bus.close()
    assert seen[-3:] == [8, 9, 10]
    assert len(seen) + sub.missed == 10


def test_a_failing_queued_subscriber_is_counted_not_raised() -> None:
    bus = EventBus()

    def broken(envelope: Envelope) -> None:
        raise RuntimeError("observer bug")

    sub = bus.subscribe_queued(broken, [ALL])
    bus.publish(BAR, 1, None)
    bus.publish(FILL, 2, None)
    bus.close()
    assert sub.errors == 2 and sub.delivered == 2


def test_queued_subscribers_wait_for_the_step_that_published_then_get_it_all() -> None:
    bus = EventBus()
    bus.gate.limit_s = 30.0  # the test's steps are never cut short
    seen: list[tuple[int, bool]] = []
    inside = [False]
    done = threading.Event()

    def observer(envelope: Envelope) -> None:
        seen.append((envelope.seq, inside[0]))
        if envelope.seq == 5:
            done.set()

    bus.subscribe_queued(observer, [BAR], name="observer")
    with bus.step():
        inside[0] = True
        for i in range(3):
            bus.publish(BAR, i, i)
        with bus.step():  # nested: the outer step ends the hold
            bus.publish(BAR, 3, 3)
        threading.Event().wait(0.2)  # the worker would have run by now if it could
        assert seen == []
        inside[0] = False
    bus.publish(BAR, 4, 4)  # between steps: at once
    assert done.wait(5)
    bus.close()
    assert seen == [(seq, False) for seq in range(1, 6)]


def test_a_step_past_its_limit_no_longer_holds_observers_back() -> None:
    bus = EventBus()
    bus.gate.limit_s = 0.05
    got = threading.Event()
    bus.subscribe_queued(lambda e: got.set(), [BAR], name="observer")
    with bus.step():  # a long step (a resumed session's warm-up): bounded queues
        bus.publish(BAR, 1, 1)
        assert got.wait(5)
    bus.close()


def test_catch_up_from_a_sequence_number_or_report_a_gap() -> None:
    bus = EventBus(history=4)
    for i in range(6):
        bus.publish(BAR if i % 2 else FILL, i, i)
    assert [e.seq for e in bus.since(3) or []] == [4, 5, 6]
    assert [e.seq for e in bus.since(2, [BAR]) or []] == [4, 6]
    assert bus.since(1) is None  # 2 was dropped: the caller must reload
    assert bus.since(6) == []
    assert EventBus().since(0) == []  # nothing published, nothing missed


def _tables(store: CollectingStore) -> dict[str, list[tuple[object, ...]]]:
    out: dict[str, list[tuple[object, ...]]] = {}
    # run_info says which engine path ran (an observer of each bar walks every bar), not
    # what the run did
    for name in {t for t, _ in store.batches} - {"run_info"}:
        table = store.table(name)
        assert table is not None
        # The router's elapsed time is a wall-clock measurement, not part of the simulation.
        table = table.drop_columns([c for c in table.column_names if c.startswith("elapsed")])
        out[name] = sorted(map(tuple, (r.values() for r in table.to_pylist())), key=repr)
    return out


def test_an_observed_backtest_publishes_what_it_stores_and_stores_the_same_rows() -> None:
    config = load_scenario(SCENARIOS / "demo.toml")
    plain = CollectingStore()
    run_scenario(config, plain, run_id="r")
    observed = CollectingStore()
    bus = EventBus()
    events: list[Envelope] = []
    bus.subscribe(events.append)
    run_scenario(config, observed, run_id="r", bus=bus)

    assert _tables(observed) == _tables(plain)
    counts = Counter(e.topic for e in events)
    rows = {name: table.num_rows for name in ("signals", "decisions", "fills", "equity", "bars",
                                              "order_events", "routing_decisions")
            if (table := plain.table(name)) is not None}
    assert counts[SIGNAL] == rows["signals"] > 0
    assert counts[DECISION] == rows["decisions"] > 0
    assert counts[FILL] == rows.get("fills", 0) > 0
    # The desk's rows reach the bus too (sim.observed points the recorder's row hooks at
    # its publishing methods).
    assert counts[ORDER] == rows["order_events"] > 0
    assert counts[ROUTE] == rows["routing_decisions"] > 0
    assert counts[EQUITY] == rows["equity"]
    assert counts[BAR] == rows["bars"]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    # Typed, named, and in time order (an observer never sees a bar before its equity).
    assert all(isinstance(e.event, SignalChanged) and isinstance(e.event.agent, str)
               for e in events if e.topic == SIGNAL)
    assert all(isinstance(e.event, FillBooked) for e in events if e.topic == FILL)
    assert all(isinstance(e.event, BarClosed) for e in events if e.topic == BAR)
    equity = [e.event for e in events if e.topic == EQUITY]
    assert all(isinstance(e, EquityBooked) for e in equity)
    stored_equity = plain.table("equity")
    assert stored_equity is not None
    assert [e.equity for e in equity] == stored_equity.column("equity").to_pylist()


def test_an_observed_backtest_is_deterministic() -> None:
    config = load_scenario(SCENARIOS / "demo.toml")

    def replay() -> list[tuple[int, str, int, object]]:
        bus = EventBus()
        seen: list[tuple[int, str, int, object]] = []
        bus.subscribe(lambda e: seen.append(
            (e.seq, e.topic, e.ts, replace(e.event, elapsed_ns=0) if e.topic == ROUTE
             else e.event)), [ALL])
        run_scenario(config, CollectingStore(), run_id="r", bus=bus)
        return seen

    assert replay() == replay()
