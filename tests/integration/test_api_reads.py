"""The control API over a stored run (``quorum serve``): reads checked against the store,
keys hashed on disk and checked in constant time, the role matrix, one error shape."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from fastapi.testclient import TestClient

from quorum.api.app import create_app
from quorum.api.keys import KeyStore
from quorum.api.reads import StoreReader
from sim.config import load_scenario
from sim.runner import run_scenario
from sim.store import DuckDBStore

REPO = Path(__file__).resolve().parents[2]
READS = ["/api/health", "/api/runs", "/api/runs/{run}", "/api/orders", "/api/orders/{order}",
         "/api/fills",
         "/api/decisions/{decision}", "/api/market", "/api/equity"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("api") / "runs.duckdb"
    with DuckDBStore(path) as s:
        run_scenario(load_scenario(REPO / "scenarios/demo.toml"), s)
    return path


@pytest.fixture(scope="module")
def con(store: Path) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect(str(store), read_only=True)
    yield connection
    connection.close()


def client(con: duckdb.DuckDBPyConnection, keys: KeyStore) -> TestClient:
    return TestClient(create_app(StoreReader(con), keys))


def no_keys(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "absent.toml")


def test_reads_match_the_store(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    api = client(con, no_keys(tmp_path))
    (run_id, n_bars) = con.execute("select run_id, n_bars from runs").fetchone()
    runs = api.get("/api/runs").json()
    assert [r["run_id"] for r in runs] == [run_id]
    one = api.get(f"/api/runs/{run_id[:6]}").json()  # a prefix will do
    assert one["run_id"] == run_id and one["n_bars"] == n_bars
    assert json.loads(one["config"])["name"] == "demo"
    for table in ("orders", "fills"):
        n = con.execute(f"select count(*) from {table}").fetchone()[0]
        assert one["counts"][table] == n > 0
        got = api.get(f"/api/{table}", params={"limit": 10_000}).json()
        assert len(got) == n
    filled = api.get("/api/orders", params={"status": "filled", "limit": 3}).json()
    assert len(filled) == 3 and {o["status"] for o in filled} == {"filled"}
    last = con.execute("select symbol, close from bars qualify row_number() over "
                       "(partition by symbol order by ts desc) = 1 order by symbol").fetchall()
    assert [(m["symbol"], m["close"]) for m in api.get("/api/market").json()] == last
    equity = api.get("/api/equity", params={"limit": 5}).json()
    tail = con.execute("select equity from equity order by ts desc limit 5").fetchall()
    assert [e["equity"] for e in equity] == [r[0] for r in reversed(tail)]


def test_why_this_trade(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    """A filled order's decision, its votes, and each voter's standing signal (reason)."""
    api = client(con, no_keys(tmp_path))
    (decision_id, symbol, ts) = con.execute(
        "select d.decision_id, d.symbol, d.ts from orders o join decisions d "
        "using (run_id, decision_id) where o.status = 'filled' order by o.order_id "
        "limit 1").fetchone()
    why = api.get(f"/api/decisions/{decision_id}").json()
    assert why["symbol"] == symbol and why["orders"]
    votes = con.execute("select agent, side from votes where decision_id = ? order by agent",
                        [decision_id]).fetchall()
    assert [(v["agent"], v["side"]) for v in why["votes"]] == votes
    spoke = 0
    for vote in why["votes"]:
        expected = con.execute(
            "select side, reason from signals where agent = ? and symbol = ? and ts <= ? "
            "order by ts desc limit 1", [vote["agent"], symbol, ts]).fetchone()
        if expected is None:  # silent so far: a HOLD vote with no signal behind it
            assert vote["signal_ts"] is None and vote["side"] == "HOLD"
            continue
        spoke += 1
        assert vote["side"] == expected[0] and vote["reason"] == expected[1]
    assert spoke


def test_errors_have_one_shape(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    api = client(con, no_keys(tmp_path))
    bad = api.get("/api/orders", params={"limit": 0})
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "limit" and "limit" in bad.json()["error"]["message"]
    assert api.get("/api/runs/zzzz").json() == {"error": {
        "status": 404, "code": "not_found", "message": "no run 'zzzz'", "field": None}}
    assert api.get("/api/decisions/notanumber").json()["error"]["field"] == "decision_id"
    assert api.get("/api/decisions/999999").status_code == 404


def test_keys_are_stored_hashed_and_checked(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.toml")
    assert not store.required
    key = store.add("operator")
    text = (tmp_path / "keys.toml").read_text()
    secret = key.split("_", 2)[2]  # the secret itself may hold "_" (url-safe base64)
    assert len(secret) == 43 and key not in text and secret not in text  # only the hash is kept
    assert (tmp_path / "keys.toml").stat().st_mode & 0o777 == 0o600
    again = KeyStore(tmp_path / "keys.toml")
    assert again.required
    entry = again.check(key)
    assert entry is not None and entry.role == "operator"
    assert again.check(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert again.check(None) is None and again.check("qk_00000000_" + "x" * 43) is None
    with pytest.raises(ValueError, match="--role 'root'"):
        again.add("root")


@pytest.mark.parametrize("secret", ["_" + "a" * 42, "-" * 43, "a_b-" * 10 + "xyz"])
def test_keys_whose_secret_holds_separators_are_checked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, secret: str) -> None:
    """A url-safe secret may begin with or hold "_" and "-"; the id is still the 8 hex."""
    monkeypatch.setattr("quorum.api.keys.secrets.token_urlsafe", lambda n: secret)
    key = KeyStore(tmp_path / "keys.toml").add("viewer")
    assert key.endswith("_" + secret)
    store = KeyStore(tmp_path / "keys.toml")
    entry = store.check(key)
    assert entry is not None and entry.role == "viewer" and key.startswith(f"qk_{entry.key_id}_")
    assert secret not in (tmp_path / "keys.toml").read_text()
    assert store.check(key[:-1] + ("A" if key[-1] != "A" else "B")) is None


def test_role_matrix_for_reads(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    keys = KeyStore(tmp_path / "keys.toml")
    made = {role: keys.add(role) for role in ("viewer", "operator", "admin")}
    api = client(con, KeyStore(tmp_path / "keys.toml"))
    (run_id,) = con.execute("select run_id from runs").fetchone()
    (decision,) = con.execute("select min(decision_id) from decisions").fetchone()
    for path in READS:
        url = path.format(run=run_id, decision=decision, order=1)
        assert api.get(url).status_code == 401, url
        assert api.get(url, headers={"X-API-Key": "qk_nope"}).status_code == 401, url
        for role, key in made.items():
            assert api.get(url, headers={"X-API-Key": key}).status_code == 200, (url, role)


def quorum(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "quorum.cli", *args], capture_output=True,
                          text=True, timeout=60, cwd=cwd)


def test_serve_refuses_the_network_without_keys(store: Path, tmp_path: Path) -> None:
    done = quorum("serve", "--db", str(store), "--api", "0.0.0.0:8765", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "needs API keys" in done.stderr


def test_keys_add_prints_the_key_once_and_stores_its_hash(tmp_path: Path) -> None:
    done = quorum("keys", "add", "--role", "viewer", "--keys", "k.toml", cwd=tmp_path)
    assert done.returncode == 0
    key = done.stdout.strip()
    assert KeyStore(tmp_path / "k.toml").check(key) is not None
    listed = quorum("keys", "list", "--keys", "k.toml", cwd=tmp_path)
    assert "viewer" in listed.stdout and key not in listed.stdout


def test_metrics_of_a_stored_store(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    keys = KeyStore(tmp_path / "keys.toml")
    key = keys.add("viewer")
    api = client(con, KeyStore(tmp_path / "keys.toml"))
    assert api.get("/metrics").status_code == 401
    text = api.get("/metrics", headers={"X-API-Key": key}).text
    (n,) = con.execute("select count(*) from runs where status = 'completed'").fetchone()
    assert f'quorum_runs{{mode="backtest",status="completed"}} {float(n)}' in text
