"""The control half of the API (issue 17 §2, §4) over a paper session the test steers bar
by bar: pause over HTTP and the agent's votes stop in the store, resume and they come
back, update, spawn, a batch that is all or none, the kill switch, an alert
acknowledged; every call audited (the key's id, never the key) and rate limited per key;
the role matrix over every endpoint; bad bodies and query values are a 4xx in the one
error shape, never a 5xx (hypothesis)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import duckdb
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quorum.api import audit
from quorum.api.app import create_app
from quorum.api.audit import TokenBuckets
from quorum.api.control import ControlConfig, ReadOnlyControl, SessionControl
from quorum.api.keys import KeyStore
from quorum.api.reads import StoreReader
from sim.config import load_scenario
from sim.runner import run_scenario
from sim.store import DuckDBStore
from tests.integration._api_session import PaperSession

REPO = Path(__file__).resolve().parents[2]
ROLES = ("viewer", "operator", "admin")

# Every endpoint: (method, path, body, the role it needs). Reads answer 200 to a role that
# may; control answers 409 "read_only" on a stored store (what a session does with the
# same calls is tested below).
MATRIX: list[tuple[str, str, dict[str, Any] | None, str]] = [
    ("GET", "/api/health", None, "viewer"),
    ("GET", "/api/runs", None, "viewer"),
    ("GET", "/api/runs/{run}", None, "viewer"),
    ("GET", "/api/orders", None, "viewer"),
    ("GET", "/api/orders/{order}", None, "viewer"),
    ("GET", "/api/fills", None, "viewer"),
    ("GET", "/api/decisions/{decision}", None, "viewer"),
    ("GET", "/api/market", None, "viewer"),
    ("GET", "/api/equity", None, "viewer"),
    ("GET", "/api/agents", None, "viewer"),
    ("GET", "/api/agents/sma", None, "viewer"),
    ("GET", "/api/positions", None, "viewer"),
    ("GET", "/api/metrics/agents", None, "viewer"),
    ("GET", "/api/alerts", None, "viewer"),
    ("GET", "/api/logs", None, "viewer"),
    ("GET", "/metrics", None, "viewer"),
    ("POST", "/api/agents", {"name": "m", "kind": "momentum"}, "admin"),
    ("POST", "/api/agents/batch", {"commands": [{"command": "pause", "agent": "sma"}]},
     "operator"),
    ("POST", "/api/agents/sma/pause", {"reason": "r"}, "operator"),
    ("POST", "/api/agents/sma/resume", None, "operator"),
    ("POST", "/api/agents/sma/stop", None, "operator"),
    ("PATCH", "/api/agents/sma", {"params": {"fast": 3}}, "operator"),
    ("POST", "/api/kill", {"flatten": True}, "admin"),
    ("POST", "/api/alerts/1/ack", None, "operator"),
]


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("control") / "runs.duckdb"
    with DuckDBStore(path) as s:
        run_scenario(load_scenario(REPO / "scenarios/operations.toml"), s, monitor=True)
    return path


def _ids(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    (run,) = con.execute("select run_id from runs").fetchone()
    (decision,) = con.execute("select min(decision_id) from decisions").fetchone()
    (order,) = con.execute("select min(order_id) from orders").fetchone()
    return {"run": run, "decision": decision, "order": order}


@pytest.mark.parametrize(("method", "path", "body", "needs"), MATRIX,
                         ids=[f"{m} {p}" for m, p, _, _ in MATRIX])
def test_role_matrix(stored: Path, tmp_path: Path, method: str, path: str,
                     body: dict[str, Any] | None, needs: str) -> None:
    keys = KeyStore(tmp_path / "keys.toml")
    made = {role: keys.add(role) for role in ROLES}
    con = duckdb.connect(str(stored), read_only=True)
    try:
        api = TestClient(create_app(StoreReader(con), KeyStore(tmp_path / "keys.toml")))
        url = path.format(**_ids(con))
        for key in (None, "qk_nope"):
            reply = api.request(method, url, json=body,
                                headers={"X-API-Key": key} if key else {})
            assert reply.status_code == 401, (key, reply.text)
            assert reply.json()["error"]["code"] == "unauthorized"
        for role, key in made.items():
            reply = api.request(method, url, json=body, headers={"X-API-Key": key})
            if ROLES.index(role) < ROLES.index(needs):
                assert reply.status_code == 403, (role, reply.text)
                assert reply.json()["error"]["code"] == "forbidden"
            elif method == "GET":
                assert reply.status_code == 200, (role, reply.text)
            else:
                assert reply.status_code == 409, (role, reply.text)
                assert reply.json()["error"]["code"] == "read_only"
    finally:
        con.close()


def test_every_endpoint_is_in_the_matrix(stored: Path, tmp_path: Path) -> None:
    con = duckdb.connect(str(stored), read_only=True)
    try:
        spec = create_app(StoreReader(con), KeyStore(tmp_path / "none.toml")).openapi()
    finally:
        con.close()
    served = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    # /api/events is the stream's polling form (tests/integration/test_api_stream.py)
    served.discard(("GET", "/api/events"))
    listed = {(m, p.replace("{run}", "{run}").replace("{order}", "{order_id}")
               .replace("{decision}", "{decision_id}").replace("/sma/pause", "/{name}/{action}")
               .replace("/sma/resume", "/{name}/{action}").replace("/sma/stop", "/{name}/{action}")
               .replace("/api/agents/sma", "/api/agents/{name}")
               .replace("/alerts/1/ack", "/alerts/{alert_id}/ack")) for m, p, _, _ in MATRIX}
    assert served == listed


def test_a_session_steered_over_http(tmp_path: Path) -> None:
    """Pause, resume, update, spawn, a rejected batch (nothing of it applied), kill and an
    acknowledged alert, each answered with its stored outcome; the votes in the store
    stop while the agent is paused; each call audited with the key's id."""
    keys = KeyStore(tmp_path / "keys.toml")
    operator, admin = keys.add("operator"), keys.add("admin")
    ids = {k.role: k.key_id for k in KeyStore(tmp_path / "keys.toml").keys.values()}
    as_op, as_admin = {"X-API-Key": operator}, {"X-API-Key": admin}
    with PaperSession(tmp_path) as s:
        audit.create_table(s.store.con)
        api = TestClient(create_app(
            StoreReader(s.store.con, default_run=s.run_id), KeyStore(tmp_path / "keys.toml"),
            mode="paper", controller=SessionControl(s.runner)))
        s.step(60)
        listed = api.get("/api/agents", headers=as_op).json()
        assert [(a["name"], a["state"]) for a in listed] == [("sma", "active"),
                                                             ("mom", "active")]
        assert listed[0]["params"] == {"fast": 2, "slow": 5}
        paused = api.post("/api/agents/sma/pause", json={"reason": "review"}, headers=as_op)
        assert paused.status_code == 200, paused.text
        assert paused.json()["outcome"] == "applied" and paused.json()["state"] == "paused"
        assert api.get("/api/agents/sma", headers=as_op).json()["state"] == "paused"
        again = api.post("/api/agents/sma/pause", headers=as_op)
        assert again.status_code == 409 and again.json()["error"]["code"] == "rejected"
        assert again.json()["outcome"]["outcome"].startswith("rejected: ")
        s.step(80)
        resumed = api.post("/api/agents/sma/resume", headers=as_op)
        assert resumed.json()["state"] == "active"
        updated = api.patch("/api/agents/mom", json={"params": {"window": 5}}, headers=as_op)
        assert updated.json()["outcome"] == "applied"
        assert api.get("/api/agents/mom", headers=as_op).json()["params"] == {"window": 5}
        assert api.post("/api/agents", json={"name": "m2", "kind": "momentum"},
                        headers=as_op).status_code == 403  # spawning takes an admin
        spawned = api.post("/api/agents", json={"name": "m2", "kind": "momentum",
                                                "params": {"window": 4}}, headers=as_admin)
        assert spawned.json()["outcome"] == "applied"
        batch = api.post("/api/agents/batch", headers=as_op, json={
            "commands": [{"command": "pause", "agent": "m2"},
                         {"command": "stop", "agent": "nobody"}], "reason": "drill"})
        assert batch.status_code == 409 and "batch command 2" in batch.json()["error"]["message"]
        assert api.get("/api/agents/m2", headers=as_op).json()["state"] == "active"  # none
        bad = api.patch("/api/agents/mom", json={"params": {"window": 0}}, headers=as_op)
        assert bad.status_code == 409 and "window" in bad.json()["error"]["message"]
        s.step(80)
        killed = api.post("/api/kill", json={"flatten": True, "reason": "drill"},
                          headers=as_admin)
        assert killed.status_code == 200 and killed.json()["command"] == "kill"
        assert s.runner.killed_by is not None
        s.step(5)
        deadline = time.monotonic() + 20  # the alert is stored at the next heartbeat
        while not (alerts := api.get("/api/alerts", params={"kind": "kill_switch"},
                                     headers=as_op).json()):
            assert time.monotonic() < deadline, "no kill_switch alert stored"
            time.sleep(0.05)
        health = api.get("/api/health", headers=as_op).json()
        assert health["overall"] == "critical" and health["control"] == "on"
        assert {"component": "risk", "state": "critical"} in [
            {k: c[k] for k in ("component", "state")} for c in health["components"]]
        acked = api.post(f"/api/alerts/{alerts[0]['alert_id']}/ack", headers=as_op)
        assert acked.status_code == 200 and acked.json()["acknowledged"] is True
        assert api.post("/api/alerts/999999/ack", headers=as_op).status_code == 404
        s.finish()
        con = s.store.con
        sma = s.votes("sma")
        (pause,), (resume,) = s.event_ts("sma", "pause"), s.event_ts("sma", "resume")
        assert any(t < pause for t in sma) and any(t >= resume for t in sma)
        assert not [t for t in sma if pause <= t < resume]  # paused: no votes
        assert [t for t in s.votes("mom") if pause <= t < resume]  # the other one voted
        rows = con.execute("select agent, command, actor, reason, outcome from agent_events "
                           "where run_id = ? and command <> 'start' order by seq",
                           [s.run_id]).fetchall()
        assert rows[0] == ("sma", "pause", f"api:{ids['operator']}", "review", "applied")
        assert [(r[0], r[1], r[4].split(":")[0]) for r in rows[1:]] == [
            ("sma", "pause", "rejected"), ("sma", "resume", "applied"),
            ("mom", "update", "applied"), ("m2", "spawn", "applied"),
            ("m2", "pause", "rejected"), ("nobody", "stop", "rejected"),
            ("mom", "update", "rejected"), ("*", "kill", "applied")]
        assert con.execute("select acknowledged from alerts where run_id = ? and alert_id = ?",
                           [s.run_id, alerts[0]["alert_id"]]).fetchone() == (True,)
        audited = con.execute("select key_id, role, method, path, status, outcome, body "
                              "from control_audit order by ts").fetchall()
        assert [(a[2], a[3], a[4]) for a in audited] == [
            ("POST", "/api/agents/sma/pause", 200), ("POST", "/api/agents/sma/pause", 409),
            ("POST", "/api/agents/sma/resume", 200), ("PATCH", "/api/agents/mom", 200),
            ("POST", "/api/agents", 403), ("POST", "/api/agents", 200),
            ("POST", "/api/agents/batch", 409), ("PATCH", "/api/agents/mom", 409),
            ("POST", "/api/kill", 200), ("POST", f"/api/alerts/{alerts[0]['alert_id']}/ack",
                                         200), ("POST", "/api/alerts/999999/ack", 404)]
        assert audited[0][:2] == (ids["operator"], "operator") and audited[0][5] == "applied"
        assert audited[8][:2] == (ids["admin"], "admin") and '"flatten":true' in audited[8][6]
        dump = str(con.execute("select * from control_audit").fetchall())
        assert operator not in dump and admin not in dump  # ids only, never a key


def test_control_calls_are_rate_limited_per_key_and_audited(stored: Path,
                                                            tmp_path: Path) -> None:
    keys = KeyStore(tmp_path / "keys.toml")
    first, second = keys.add("operator"), keys.add("operator")
    store = tmp_path / "audit.duckdb"
    con = duckdb.connect(str(stored), read_only=True)
    writable = duckdb.connect(str(store))
    audit.create_table(writable)
    try:
        api = TestClient(create_app(
            StoreReader(con), KeyStore(tmp_path / "keys.toml"),
            controller=ReadOnlyControl("read-only here", audit_con=writable),
            control=ControlConfig(rate_per_s=0.001, burst=2)))
        codes = [api.post("/api/agents/sma/pause", headers={"X-API-Key": first}).status_code
                 for _ in range(3)]
        assert codes == [409, 409, 429]
        limited = api.post("/api/kill", headers={"X-API-Key": first})
        assert limited.status_code == 429 and limited.json()["error"]["code"] == "rate_limited"
        assert int(limited.headers["retry-after"]) >= 1
        assert api.post("/api/agents/sma/pause", headers={"X-API-Key": second}
                        ).status_code == 409  # its own bucket
        assert api.get("/api/agents", headers={"X-API-Key": first}).status_code == 200  # reads
        assert api.post("/api/agents/sma/pause").status_code == 401
        rows = writable.execute("select key_id, status, outcome from control_audit "
                                "order by ts").fetchall()
        assert [r[1] for r in rows] == [409, 409, 429, 429, 409, 401]
        assert rows[0][2] == "read-only here" and rows[-1][0] is None
    finally:
        con.close()
        writable.close()


def test_token_buckets_refill_at_their_rate() -> None:
    now = [0.0]
    buckets = TokenBuckets(rate_per_s=2.0, burst=3, clock=lambda: now[0])
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)
    assert buckets.take("b") == 0.0  # another caller's bucket is full
    now[0] = 0.5
    assert buckets.take("a") == 0.0 and buckets.take("a") > 0
    now[0] = 100.0  # never more than the burst
    assert [buckets.take("a") == 0.0 for _ in range(4)] == [True, True, True, False]


# -- the fuzz: every body and query value, against a running session -------------------
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
FIELDS = ["name", "kind", "params", "symbols", "reason", "flatten", "commands", "command",
          "agent", "bogus"]
BODY = (JSON | st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=5)
        | st.fixed_dictionaries({"commands": st.lists(
            st.dictionaries(st.sampled_from(FIELDS), JSON | st.sampled_from(
                ["pause", "resume", "stop", "update", "spawn", "sma", "mom", "momentum"]),
                max_size=5), max_size=3)}))
WRITES = [("POST", "/api/agents"), ("POST", "/api/agents/batch"),
          ("POST", "/api/agents/{name}/pause"), ("POST", "/api/agents/{name}/resume"),
          ("POST", "/api/agents/{name}/stop"), ("PATCH", "/api/agents/{name}"),
          ("POST", "/api/kill"), ("POST", "/api/alerts/{name}/ack")]
READS = ["/api/agents", "/api/agents/{name}", "/api/positions", "/api/metrics/agents",
         "/api/alerts", "/api/logs", "/api/orders", "/api/fills", "/api/equity",
         "/api/market", "/api/runs", "/api/orders/{name}", "/api/decisions/{name}",
         "/api/runs/{name}", "/api/events"]
PARAMS = ["run", "limit", "severity", "kind", "source", "acknowledged", "since", "level",
          "agent", "category", "text", "format", "status", "symbol", "mode", "topics"]
NAME = st.sampled_from(["sma", "mom", "nobody", "1", "-1", "99999999999999999999999"]) \
    | st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/?#%"),
              min_size=1, max_size=12)
VALUE = st.text(max_size=30) | st.integers(-(2**70), 2**70).map(str) \
    | st.sampled_from(["true", "csv", "jsonl", "warning", "2024-01-01T00:00:00Z",
                       "9999-01-01", "0", "-5"])


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("fuzz")
    with PaperSession(tmp) as s:
        audit.create_table(s.store.con)
        s.step(50)
        yield TestClient(create_app(
            StoreReader(s.store.con, default_run=s.run_id), KeyStore(tmp / "none.toml"),
            mode="paper", controller=SessionControl(s.runner),
            control=ControlConfig(rate_per_s=10_000, burst=100_000)))


def _holds_the_shape(reply: Any) -> None:
    assert reply.status_code < 500, (reply.status_code, reply.text)
    if reply.status_code >= 400:
        error = reply.json()["error"]
        assert set(error) == {"status", "code", "message", "field"}
        assert error["status"] == reply.status_code and error["message"]


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(where=st.sampled_from(WRITES), name=NAME, body=BODY, raw=st.booleans())
def test_bad_bodies_are_a_4xx_never_a_5xx(live_api: Any, where: tuple[str, str], name: str,
                                          body: Any, raw: bool) -> None:
    method, path = where
    url = path.format(name=quote(name, safe=""))
    if raw:  # bytes that may not even be JSON
        text = str(body).encode()
        reply = live_api.request(method, url, content=text,
                                 headers={"content-type": "application/json"})
    else:
        reply = live_api.request(method, url, json=body)
    _holds_the_shape(reply)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(path=st.sampled_from(READS), name=NAME,
       params=st.dictionaries(st.sampled_from(PARAMS), VALUE, max_size=4))
def test_bad_query_values_are_a_4xx_never_a_5xx(live_api: Any, path: str, name: str,
                                                params: dict[str, str]) -> None:
    _holds_the_shape(live_api.get(path.format(name=quote(name, safe="")), params=params))


def test_the_console_steers_a_session(tmp_path: Path) -> None:
    """The console's control commands, each one or two API calls, against a session."""
    from quorum.api.console import ApiClient, ConsoleError, run_line

    with PaperSession(tmp_path) as s:
        audit.create_table(s.store.con)
        console = ApiClient(TestClient(create_app(
            StoreReader(s.store.con, default_run=s.run_id), KeyStore(tmp_path / "none.toml"),
            mode="paper", controller=SessionControl(s.runner))))
        s.step(30)
        assert run_line(console, "pause sma --reason=look") == (
            "pause sma: applied (state paused)")
        listing = run_line(console, "agents").splitlines()
        assert listing[0].split()[:3] == ["name", "state", "kind"]
        assert listing[1].split()[:2] == ["sma", "paused"]
        with pytest.raises(ConsoleError, match=r"409 batch command 2 .resume 'mom'."):
            run_line(console, "resume sma mom")  # a batch: all or none
        assert run_line(console, "set mom window=4") == "update mom: applied (state active)"
        assert s.runner.lifecycle.snapshot()[1].params == {"window": 4}
        assert run_line(console, "spawn momentum --name m3 --param window=3").endswith(
            "applied (state active)")
        with pytest.raises(ConsoleError, match=r"409 .*window"):
            run_line(console, "set mom window=0")
        assert run_line(console, "kill --flatten").startswith("kill *: applied")
        s.finish()
        rows = s.store.con.execute(
            "select agent, command, reason, outcome from agent_events where run_id = ? and "
            "command <> 'start' order by seq", [s.run_id]).fetchall()
    assert [(r[0], r[1], r[3].split(":")[0]) for r in rows] == [
        ("sma", "pause", "applied"), ("sma", "resume", "rejected"),
        ("mom", "resume", "rejected"), ("mom", "update", "applied"),
        ("m3", "spawn", "applied"), ("mom", "update", "rejected"), ("*", "kill", "applied")]
    assert rows[0][2] == "look"


def test_a_session_not_running_or_not_answering_is_a_5xx_in_the_one_shape(
        stored: Path, tmp_path: Path) -> None:
    """Before the session runs its commands are refused (503 not_running); a command
    the session does not apply in time is a 504 (it stays queued), never a hung call."""
    from concurrent.futures import Future

    from quorum.live import watched_runner
    from sim.config import parse_scenario
    from tests.integration._api_session import SCENARIO

    con = duckdb.connect(str(stored), read_only=True)
    store = DuckDBStore(tmp_path / "idle.duckdb")
    try:
        runner = watched_runner(parse_scenario(SCENARIO), store, symbols=["ETH"])
        idle = TestClient(create_app(StoreReader(con), KeyStore(tmp_path / "none.toml"),
                                     controller=SessionControl(runner)))
        reply = idle.post("/api/agents/sma/pause")
        assert reply.status_code == 503 and reply.json()["error"]["code"] == "not_running"

        class Silent(SessionControl):  # a session that never gets to the command
            def submit(self, command: Any) -> Future[Any]:
                return Future()

        slow = TestClient(create_app(StoreReader(con), KeyStore(tmp_path / "none.toml"),
                                     controller=Silent(runner),
                                     control=ControlConfig(command_timeout_s=0.2)))
        reply = slow.post("/api/kill", json={"flatten": False})
        assert reply.status_code == 504 and reply.json()["error"]["code"] == "timeout"
        assert "stays queued" in reply.json()["error"]["message"]
    finally:
        con.close()
        store.close()
