"""Digests of every stored table of a run, for "the rows are the same" checks.

``run_digests`` hashes, per table, every row a run stored (sorted, so the order rows
were appended in does not count), over the tables and columns of ``TABLES`` at the
commit the fixtures were made on (``COLUMNS``): a table or column added later is an
addition, not a changed row. Wall-clock measurements (``elapsed_*``) are left out; the
run id is not a column. Also a script: ``PYTHONPATH=TREE python tests/_run_digests.py
OUT.json`` runs every bundled scenario with TREE's code and writes their digests, so a
change can be compared with another commit's rows in the same run.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# The digests made at da22740 (``main`` below, with that commit's code).
FIXTURE = ROOT / "tests" / "fixtures" / "run_digests_da22740.json"


def pinned_digests() -> dict[str, dict[str, str]]:
    """The fixture: case (a scenario path or a ``SYNTHETIC`` name) -> table -> digest."""
    return dict(json.loads(FIXTURE.read_text()))

# The bundled scenarios whose rows are pinned: every scenario file under scenarios/ that
# runs offline (no outside service, no recorded data file missing), shortened where long.
SCENARIOS = (
    "scenarios/demo.toml",
    "scenarios/execution_realism.toml",
    "scenarios/monitor_faults.toml",
    "scenarios/operations.toml",
    "scenarios/validated.toml",
    "scenarios/regimes/calibrated.toml",
    "scenarios/regimes/crash.toml",
    "scenarios/regimes/eth_btc_recorded.toml",
    "scenarios/regimes/high_volatility.toml",
    "scenarios/regimes/ranging.toml",
    "scenarios/regimes/regime_switching.toml",
    "scenarios/regimes/trend_down.toml",
    "scenarios/regimes/trend_up.toml",
    "scenarios/templates/bollinger_reversion.toml",
    "scenarios/templates/donchian_breakout.toml",
    "scenarios/templates/ema_crossover.toml",
    "scenarios/templates/ml_logistic.toml",
    "scenarios/templates/momentum.toml",
    "scenarios/templates/risk_manager.toml",
    "scenarios/templates/rsi.toml",
    "scenarios/templates/signal_feed.toml",
    "scenarios/templates/sma_crossover.toml",
    "scenarios/templates/smc.toml",
    "scenarios/templates/zscore_reversion.toml",
)

# sim.store.TABLES at da22740, the commit the fixtures were computed on.
COLUMNS: dict[str, tuple[str, ...]] = {
    "signals": ("ts", "symbol", "agent", "side", "confidence", "target", "reason"),
    "decisions": ("decision_id", "ts", "symbol", "side", "confidence", "target", "method",
                  "rule", "agreement"),
    "votes": ("decision_id", "agent", "side", "confidence", "weight"),
    "orders": ("order_id", "decision_id", "ts", "symbol", "quantity", "ref_price", "notional",
               "status", "order_type", "time_in_force", "limit_price", "stop_price",
               "post_only", "reduce_only", "role", "parent_id", "replaces", "venue",
               "decision_ts", "arrival_ts", "fill_ts", "filled_quantity", "avg_fill_price",
               "fees", "reason"),
    "order_events": ("order_id", "ts", "symbol", "event", "venue", "quantity", "price",
                     "reason"),
    "risk_events": ("order_id", "ts", "symbol", "check_name", "reason", "limit_value",
                    "actual_value"),
    "routing_decisions": ("order_id", "ts", "symbol", "venue", "candidates",
                          "candidate_fees_bps", "candidate_scores", "quantity", "reason"),
    "fills": ("fill_id", "order_id", "ts", "symbol", "venue", "quantity", "price", "fee",
              "ref_price", "cash_after", "position_after", "realized_pnl", "liquidity"),
    "funding": ("ts", "symbol", "position", "mark", "rate", "payment"),
    "liquidations": ("ts", "symbol", "venue", "order_id", "position", "liquidation_price",
                     "price", "maintenance_margin"),
    "bars": ("ts", "symbol", "open", "high", "low", "close", "volume", "regime",
             "source_regime", "filled"),
    "equity": ("ts", "cash", "equity", "realized_pnl", "unrealized_pnl"),
    "agent_performance": ("symbol", "agent", "signals", "scored", "hits", "hit_rate",
                          "shadow_pnl", "votes", "in_majority", "overruled", "weight"),
    "agent_calls": ("ts", "symbol", "agent", "request_hash", "request", "response", "error"),
    "agent_errors": ("symbol", "agent", "calls", "errors", "last_error", "kind", "ts", "bar",
                     "error_type", "traceback_digest"),
    "agent_events": ("seq", "ts", "agent", "command", "state_before", "state_after",
                     "params_before", "params_after", "actor", "reason", "outcome", "batch"),
    "alerts": ("alert_id", "ts", "severity", "source", "kind", "message", "data",
               "acknowledged", "seq"),
    "health": ("ts", "component", "state", "previous", "reason", "seq"),
    "logs": ("ts", "level", "category", "agent", "message", "data", "seq"),
    "agent_figures": ("ts", "symbol", "agent", "trades", "hit_rate", "win_rate", "shadow_pnl",
                      "apr_30d", "apr_90d", "apr_inception", "sharpe"),
}


# Scenarios built here for paths the bundled files take rarely: many orders a bar apart
# (the per-order benchmark's strategy), four agents on two venues (the throughput bench),
# stop entries with a time to live, split routing and a perpetual with leverage and
# brackets, a fill at the close.
SYNTHETIC: dict[str, dict[str, Any]] = {
    "order_cost_sma_2_3": {
        "name": "order_cost", "seed": 1,
        "data": [{"kind": "gbm", "symbol": "BTCUSD", "bars": 20_000, "interval": "1m"}],
        "agents": [{"name": "sma", "kind": "sma_crossover",
                    "params": {"fast": 2, "slow": 3, "long_only": True}}],
        "venues": [{"name": "alpha", "symbols": ["BTCUSD"], "fee_bps": 10.0}]},
    "bench_4_agents": {
        "name": "bench", "seed": 1,
        "data": [{"kind": "gbm", "symbol": "BTCUSD", "bars": 20_000, "interval": "1m"}],
        "agents": [
            {"name": "sma_10_50", "kind": "sma_crossover", "params": {"fast": 10, "slow": 50}},
            {"name": "zscore_50", "kind": "zscore_reversion", "params": {"window": 50}},
            {"name": "sma_20_100", "kind": "sma_crossover",
             "params": {"fast": 20, "slow": 100}},
            {"name": "zscore_200", "kind": "zscore_reversion", "params": {"window": 200}}],
        "consensus": {"method": "confidence_weighted"},
        "venues": [{"name": "alpha", "symbols": ["BTCUSD"], "fee_bps": 10.0},
                   {"name": "beta", "symbols": ["BTCUSD"], "fee_bps": 7.5,
                    "slippage_bps": 1.0}]},
    "stops_ttl_split_perp": {
        "name": "stops", "seed": 3, "initial_cash": 10_000.0,
        "data": [{"kind": "gbm", "symbol": "ETH", "bars": 3_000, "interval": "5m"},
                 {"kind": "gbm", "symbol": "SOL", "bars": 3_000, "interval": "5m"}],
        "agents": [{"name": "sma", "kind": "sma_crossover", "params": {"fast": 3, "slow": 9}}],
        "policy": {"exposure": 2.0, "allow_short": True},
        "execution": {"order_type": "stop", "offset_bps": 5.0, "order_ttl": "30m",
                      "take_profit": 0.01, "stop_loss": 0.01},
        "risk": {"max_leverage": 4.0, "max_orders_per_day": 200},
        "router": {"policy": "split"},
        "venues": [{"name": "a", "symbols": ["ETH", "SOL"], "fee_bps": 4.0, "kind": "perp",
                    "max_leverage": 3.0, "maintenance_margin": 0.3, "lot_size": 0.001,
                    "max_order_notional": 5_000.0},
                   {"name": "b", "symbols": ["ETH", "SOL"], "fee_bps": 6.0, "kind": "perp",
                    "max_leverage": 3.0, "maintenance_margin": 0.3, "lot_size": 0.001}]},
    "close_fills_limits": {
        "name": "limits", "seed": 5,
        "data": [{"kind": "gbm", "symbol": "BTC", "bars": 5_000, "interval": "1m"}],
        "agents": [{"name": "z", "kind": "zscore_reversion", "params": {"window": 20}}],
        "execution": {"fill_at": "close", "order_type": "limit", "offset_bps": 2.0,
                      "order_ttl": "10m"},
        "risk": {"max_drawdown": 0.05, "flatten_on_trip": True},
        "venues": [{"name": "a", "symbols": ["BTC"], "fee_bps": 5.0, "maker_fee_bps": 1.0}]},
}


def run_digests(con: Any, run_id: str) -> dict[str, str]:
    """table -> sha256 (16 hex digits) of the run's rows in it, sorted, with row count."""
    out = {}
    for table, columns in COLUMNS.items():
        rows = con.execute(f"SELECT {', '.join(columns)} FROM {table} WHERE run_id = ?"
                           " ORDER BY ALL", [run_id]).fetchall()
        # paths the config resolved against the checkout: the same rows in any clone
        text = repr(rows).replace(str(ROOT), "<repo>")
        out[table] = f"{len(rows)}:{hashlib.sha256(text.encode()).hexdigest()[:16]}"
    return out


def scenario_digests(path: str, store: Any) -> dict[str, str]:
    """Run the bundled scenario ``path`` (relative to the repository) into ``store``."""
    from sim.config import load_scenario
    from sim.runner import run_scenario

    config = load_scenario(ROOT / path)
    result = run_scenario(config, store)
    return run_digests(store.con, result.run_id)


def synthetic_digests(name: str, store: Any) -> dict[str, str]:
    from sim.config import parse_scenario
    from sim.runner import run_scenario

    result = run_scenario(parse_scenario(SYNTHETIC[name], name), store)
    return run_digests(store.con, result.run_id)


def main(out: str) -> None:
    from sim.store import DuckDBStore

    digests = {}
    with tempfile.TemporaryDirectory() as tmp, DuckDBStore(Path(tmp) / "d.duckdb") as store:
        for path in SCENARIOS:
            digests[path] = scenario_digests(path, store)
        for name in SYNTHETIC:
            digests[name] = synthetic_digests(name, store)
    Path(out).write_text(json.dumps(digests, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
