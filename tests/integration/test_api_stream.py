"""The live stream (quorum.api.stream): bus events reach WebSocket and polling clients on
their topics with the bus sequence number; a client that reconnects with its last number
loses nothing; one older than the buffer is told of the gap; a slow client is dropped."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import duckdb
import pytest
from fastapi.testclient import TestClient

from quorum.api.app import create_app
from quorum.api.keys import KeyStore
from quorum.api.reads import StoreReader
from quorum.api.stream import StreamHub
from sim.bus import AGENT, ALERT, BAR, DECISION, FILL, LOG, ORDER_CLOSED, EventBus
from sim.bus_events import (
    AgentStateChanged,
    AlertRaised,
    BarClosed,
    DecisionMade,
    LogRecord,
    OrderClosed,
)
from sim.messages import LONG, Signal


def settle(hub: StreamHub, seq: int) -> None:
    """Wait until the hub's worker has taken event ``seq`` (it runs off the publisher)."""
    for _ in range(500):
        if hub.last_seq >= seq:
            return
        asyncio.run(asyncio.sleep(0.01))
    raise AssertionError(f"hub stuck at {hub.last_seq}, waiting for {seq}")


def app_with(hub: StreamHub | None, tmp_path: Path, keys: KeyStore | None = None):
    con = duckdb.connect(":memory:")
    return TestClient(create_app(StoreReader(con), keys or KeyStore(tmp_path / "none.toml"),
                                 hub=hub))


def test_messages_reach_their_topics_with_sequence_numbers(tmp_path: Path) -> None:
    bus = EventBus()
    hub = StreamHub(bus)
    api = app_with(hub, tmp_path)
    with api.websocket_connect("/ws") as ws:
        ws.send_json({"subscribe": ["market:update", "trades:sma", "logs:sma"]})
        while hub.clients == 0:
            asyncio.run(asyncio.sleep(0.01))
        s1 = bus.publish(BAR, 1, BarClosed(1, "BTC", 1.0, 2.0, 0.5, 1.5, 10.0))
        bus.publish(LOG, 2, LogRecord(2, "info", "agent", "other agent", agent="ema"))
        vote = Signal(LONG, 0.8)
        bus.publish(DECISION, 3, DecisionMade(7, 3, "BTC", LONG, 0.8, None, ("sma", "ema"),
                                              (vote, None), (1.0, 0.0), "none", 1.0))
        s4 = bus.publish(ORDER_CLOSED, 4, OrderClosed(9, 7, 4, "BTC", "filled", "entry", 1.0,
                                                      1.0, 1.5, 0.01, "alpha", ""))
        s5 = bus.publish(LOG, 5, LogRecord(5, "warning", "agent", "mine", agent="sma"))
        got = [json.loads(ws.receive_text()) for _ in range(3)]
    assert [m["seq"] for m in got] == [s1, s4, s5]
    assert [m["topic"] for m in got] == ["market:update", "trades:all", "logs:all"]
    assert "trades:sma" in got[1]["topics"] and "trades:ema" not in got[1]["topics"]
    assert got[0]["data"] == {"ts": 1, "symbol": "BTC", "open": 1.0, "high": 2.0,
                              "low": 0.5, "close": 1.5, "volume": 10.0}
    assert got[2]["data"]["message"] == "mine"
    bus.close()


def test_a_reconnecting_client_gets_what_it_missed(tmp_path: Path) -> None:
    bus = EventBus()
    hub = StreamHub(bus)
    api = app_with(hub, tmp_path)
    seqs = [bus.publish(AGENT, i, AgentStateChanged(i, "sma", "paused", "active", "pause",
                                                    "ops", "", "applied")) for i in range(5)]
    settle(hub, seqs[-1])
    with api.websocket_connect("/ws") as ws:  # saw up to the second, then dropped
        ws.send_json({"subscribe": ["agent:update"], "since": seqs[1]})
        got = [json.loads(ws.receive_text())["seq"] for _ in range(3)]
    assert got == seqs[2:]
    polled = api.get("/api/events", params={"since": seqs[3], "topics": "agent:update"})
    assert [e["seq"] for e in polled.json()["events"]] == seqs[4:]
    bus.close()


def test_a_client_older_than_the_buffer_is_told_of_the_gap(tmp_path: Path) -> None:
    bus = EventBus()
    hub = StreamHub(bus, buffer=3)
    api = app_with(hub, tmp_path)
    last = 0
    for i in range(10):
        last = bus.publish(ALERT, i, AlertRaised(i, i, "critical", "risk", "kill_switch",
                                                 "pulled", {}))
    settle(hub, last)
    assert api.get("/api/events", params={"since": 2}).status_code == 410
    assert api.get("/api/events", params={"since": 2}).json()["error"]["code"] == "gap"
    assert len(api.get("/api/events", params={"since": last - 3}).json()["events"]) == 3
    with api.websocket_connect("/ws") as ws:
        ws.send_json({"subscribe": ["trade:alert"], "since": 2})
        assert json.loads(ws.receive_text()) == {"type": "gap", "since": 2,
                                                 "oldest": last - 2}
    bus.close()


def test_a_slow_client_is_dropped_not_waited_for() -> None:
    bus = EventBus()
    hub = StreamHub(bus)

    async def go() -> bool:
        client = hub.connect(["equity", "market:update"], asyncio.get_running_loop())
        for i in range(1500):  # nobody reads the client's queue (bound 1000)
            client.offer(i, "{}")
        await asyncio.sleep(0.05)  # the loop runs the hand-overs
        return client.dropped and client.queue.get_nowait() is None

    assert asyncio.run(go())
    bus.close()


def test_the_stream_needs_a_key_once_keys_exist(tmp_path: Path) -> None:
    bus = EventBus()
    keys = KeyStore(tmp_path / "keys.toml")
    key = keys.add("viewer")
    api = app_with(StreamHub(bus), tmp_path, KeyStore(tmp_path / "keys.toml"))
    with pytest.raises(Exception), api.websocket_connect("/ws") as ws:  # noqa: B017
        ws.receive_text()
    assert api.get("/api/events").status_code == 401
    assert api.get("/api/events", headers={"X-API-Key": key}).status_code == 200
    with api.websocket_connect(f"/ws?key={key}") as ws:
        ws.send_json({"subscribe": ["health"], "since": 0})
    bus.close()


def test_an_event_that_cannot_be_sent_is_counted_not_raised() -> None:
    bus = EventBus()
    hub = StreamHub(bus)
    bus.publish(FILL, 1, object())  # routed to system:event, but no JSON form
    bus.close()
    assert hub.subscription.errors == 1  # an object is not JSON: counted, never raised


def test_a_batching_client_gets_every_message_as_json_lines(tmp_path: Path) -> None:
    """``"batch": true``: what waited goes as one frame, a message a line, in order; the
    backlog, then the live messages, none twice and none missing."""
    bus = EventBus()
    hub = StreamHub(bus)
    api = app_with(hub, tmp_path)
    first = [bus.publish(BAR, t, BarClosed(t, "BTC", 1.0, 2.0, 0.5, 1.5, 10.0))
             for t in range(1, 31)]
    settle(hub, first[-1])
    with api.websocket_connect("/ws") as ws:
        ws.send_json({"subscribe": ["market:update"], "since": 0, "batch": True})
        frame = ws.receive_text()
        assert [json.loads(line)["seq"] for line in frame.split("\n")] == first
        later = [bus.publish(BAR, t, BarClosed(t, "BTC", 1.0, 2.0, 0.5, 1.5, 10.0))
                 for t in range(31, 61)]
        seqs: list[int] = []
        while len(seqs) < len(later):
            seqs += [json.loads(line)["seq"] for line in ws.receive_text().split("\n")]
        assert seqs == later
    bus.close()


def test_what_a_step_publishes_reaches_each_client_in_one_hand_over() -> None:
    """One wake-up of the clients' loop per step, each client given its own topics' share,
    in order: the 50-client fan-out costs the process (and the interpreter lock it shares
    with trading) one batch per step, not one per message."""

    class Loop:  # stands for the server's event loop: records the hand-overs
        def __init__(self) -> None:
            self.calls: list[tuple[object, ...]] = []

        def call_soon_threadsafe(self, fn: object, *args: object) -> None:
            self.calls.append((fn, *args))

    bus = EventBus()
    bus.gate.limit_s = 30.0
    hub = StreamHub(bus)
    loop = Loop()
    bars = hub.connect(["market:update"], loop)  # type: ignore[arg-type]
    alerts = hub.connect(["trade:alert"], loop)  # type: ignore[arg-type]
    with bus.step():
        for k in range(3):
            bus.publish(BAR, k, BarClosed(k, "BTC", 1.0, 1.0, 1.0, 1.0, 1.0))
        bus.publish(ALERT, 3, AlertRaised(1, 3, "warning", "risk", "drawdown", "x", {}))
    settle(hub, 4)
    assert len(loop.calls) == 1
    fn, batch = loop.calls[0]
    fn(batch)  # type: ignore[operator]
    got = {id(c): [c.queue.get_nowait()[0] for _ in range(c.queue.qsize())]
           for c in (bars, alerts)}
    assert got == {id(bars): [1, 2, 3], id(alerts): [4]}
    bus.close()
