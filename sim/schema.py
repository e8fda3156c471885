"""Every table and view of a run store, defined here and nowhere else.

The modules that write a table (its owner: ``sim.store`` and ``sim.recorder`` for a
run's rows, ``live.records``, ``live.session``, ``live.risk_state``, ``quorum.api.audit``,
``research.sweep_driver``, ``research.validation``) import its definition from here and
create it where they always did: the run tables when a store is opened
(``sim.store.DuckDBStore``), the live, control and sweep tables on first use. Columns a
table gained after stores were written with it are listed beside it (``*_ADDED``,
``VENUE_REKEYED``) for the migrations those modules run on an older store.
"""

from __future__ import annotations

SCHEMA_VERSION = 10

META_DDL = "CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)"

# -- a run's rows and the store's own tables (sim.store); created when a store opens

# table -> (column, DuckDB type); ``run_id`` is prepended to every table but ``runs``.
TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "signals": (
        ("ts", "TIMESTAMP_NS"), ("symbol", "VARCHAR"), ("agent", "VARCHAR"),
        ("side", "VARCHAR"), ("confidence", "DOUBLE"), ("target", "DOUBLE"),
        ("reason", "VARCHAR"),
    ),
    "decisions": (
        ("decision_id", "BIGINT"), ("ts", "TIMESTAMP_NS"), ("symbol", "VARCHAR"),
        ("side", "VARCHAR"), ("confidence", "DOUBLE"), ("target", "DOUBLE"),
        ("method", "VARCHAR"),
        # which rule decided (sim.consensus: "none", "quorum", "risk_veto", a conflict
        # rule, ...) and the share of opinions on the most popular side
        ("rule", "VARCHAR"), ("agreement", "DOUBLE"),
    ),
    "votes": (
        ("decision_id", "BIGINT"), ("agent", "VARCHAR"), ("side", "VARCHAR"),
        ("confidence", "DOUBLE"), ("weight", "DOUBLE"),
    ),
    # One row per order, written when it reaches its one terminal state (sim.orders).
    # ts: submitted; decision_ts: the decision's bar; arrival_ts: first reached a venue;
    # fill_ts: last fill; ref_price: the expected (decision) price; avg_fill_price: realised.
    "orders": (
        ("order_id", "BIGINT"), ("decision_id", "BIGINT"), ("ts", "TIMESTAMP_NS"),
        ("symbol", "VARCHAR"), ("quantity", "DOUBLE"), ("ref_price", "DOUBLE"),
        ("notional", "DOUBLE"), ("status", "VARCHAR"),
        ("order_type", "VARCHAR"), ("time_in_force", "VARCHAR"), ("limit_price", "DOUBLE"),
        ("stop_price", "DOUBLE"), ("post_only", "BOOLEAN"), ("reduce_only", "BOOLEAN"),
        ("role", "VARCHAR"), ("parent_id", "BIGINT"), ("replaces", "BIGINT"),
        ("venue", "VARCHAR"), ("decision_ts", "TIMESTAMP_NS"), ("arrival_ts", "TIMESTAMP_NS"),
        ("fill_ts", "TIMESTAMP_NS"), ("filled_quantity", "DOUBLE"),
        ("avg_fill_price", "DOUBLE"), ("fees", "DOUBLE"), ("reason", "VARCHAR"),
    ),
    # Every step of every order's life, in the order it happened: submitted, arrived,
    # venue_rejected / venue_expired (a venue refused or it timed out; the router may fall
    # back), then exactly one terminal event (filled, cancelled, expired, rejected, denied).
    "order_events": (
        ("order_id", "BIGINT"), ("ts", "TIMESTAMP_NS"), ("symbol", "VARCHAR"),
        ("event", "VARCHAR"), ("venue", "VARCHAR"), ("quantity", "DOUBLE"),
        ("price", "DOUBLE"), ("reason", "VARCHAR"),
    ),
    "risk_events": (
        ("order_id", "BIGINT"), ("ts", "TIMESTAMP_NS"), ("symbol", "VARCHAR"),
        ("check_name", "VARCHAR"), ("reason", "VARCHAR"), ("limit_value", "DOUBLE"),
        ("actual_value", "DOUBLE"),
    ),
    "routing_decisions": (
        ("order_id", "BIGINT"), ("ts", "TIMESTAMP_NS"), ("symbol", "VARCHAR"),
        ("venue", "VARCHAR"), ("candidates", "VARCHAR[]"), ("candidate_fees_bps", "DOUBLE[]"),
        ("candidate_scores", "DOUBLE[]"), ("quantity", "DOUBLE"), ("reason", "VARCHAR"),
        ("elapsed_ns", "BIGINT"),
    ),
    "fills": (
        ("fill_id", "BIGINT"), ("order_id", "BIGINT"), ("ts", "TIMESTAMP_NS"),
        ("symbol", "VARCHAR"), ("venue", "VARCHAR"), ("quantity", "DOUBLE"),
        ("price", "DOUBLE"), ("fee", "DOUBLE"), ("ref_price", "DOUBLE"),
        ("cash_after", "DOUBLE"), ("position_after", "DOUBLE"), ("realized_pnl", "DOUBLE"),
        ("liquidity", "VARCHAR"),
    ),
    # Perpetual funding: payment > 0 received, < 0 paid (longs pay a positive rate).
    "funding": (
        ("ts", "TIMESTAMP_NS"), ("symbol", "VARCHAR"), ("position", "DOUBLE"),
        ("mark", "DOUBLE"), ("rate", "DOUBLE"), ("payment", "DOUBLE"),
        ("venue", "VARCHAR"),  # the venue it was paid on (added: NULL in older stores)
    ),
    "liquidations": (
        ("ts", "TIMESTAMP_NS"), ("symbol", "VARCHAR"), ("venue", "VARCHAR"),
        ("order_id", "BIGINT"), ("position", "DOUBLE"), ("liquidation_price", "DOUBLE"),
        ("price", "DOUBLE"), ("maintenance_margin", "DOUBLE"),
    ),
    "bars": (
        ("ts", "TIMESTAMP_NS"), ("symbol", "VARCHAR"), ("open", "DOUBLE"), ("high", "DOUBLE"),
        ("low", "DOUBLE"), ("close", "DOUBLE"), ("volume", "DOUBLE"), ("regime", "VARCHAR"),
        ("source_regime", "VARCHAR"), ("filled", "BOOLEAN"),
    ),
    "equity": (
        ("ts", "TIMESTAMP_NS"), ("cash", "DOUBLE"), ("equity", "DOUBLE"),
        ("realized_pnl", "DOUBLE"), ("unrealized_pnl", "DOUBLE"),
    ),
    # Per agent per symbol, written once at the end of a run (sim.performance).
    "agent_performance": (
        ("symbol", "VARCHAR"), ("agent", "VARCHAR"), ("signals", "BIGINT"),
        ("scored", "BIGINT"), ("hits", "BIGINT"), ("hit_rate", "DOUBLE"),
        ("shadow_pnl", "DOUBLE"), ("votes", "BIGINT"), ("in_majority", "BIGINT"),
        ("overruled", "BIGINT"), ("weight", "DOUBLE"),
    ),
    # An agent's call to an outside service (sim.agents.external): replayed by request_hash.
    "agent_calls": (
        ("ts", "TIMESTAMP_NS"), ("symbol", "VARCHAR"), ("agent", "VARCHAR"),
        ("request_hash", "VARCHAR"), ("request", "JSON"), ("response", "JSON"),
        ("error", "VARCHAR"), ("elapsed_ms", "DOUBLE"),
    ),
    # Per agent per symbol that calls an outside service (sim.agents.base.CallStats),
    # at the end of a run: calls made, how many failed, the last error.
    # Also one row per failure an agent was forgiven (``on_error = "abstain"``,
    # sim.lifecycle): kind "exception" (its type, message and a digest of its traceback)
    # or "latency" (slower than its ``latency_budget_ms``), at bar ``bar`` of ``symbol``;
    # the summary rows have kind "calls".
    "agent_errors": (
        ("symbol", "VARCHAR"), ("agent", "VARCHAR"), ("calls", "BIGINT"),
        ("errors", "BIGINT"), ("last_error", "VARCHAR"), ("kind", "VARCHAR"),
        ("ts", "TIMESTAMP_NS"), ("bar", "BIGINT"), ("error_type", "VARCHAR"),
        ("traceback_digest", "VARCHAR"), ("elapsed_ms", "DOUBLE"),
    ),
    # Every agent lifecycle command (sim.agent_commands), applied or rejected, and the
    # kernel's own changes (command "start": the run's first agents; "error": the
    # circuit breaker). params_*: the agent's spec {kind, params, symbols} as JSON.
    "agent_events": (
        ("seq", "BIGINT"), ("ts", "TIMESTAMP_NS"), ("agent", "VARCHAR"),
        ("command", "VARCHAR"), ("state_before", "VARCHAR"), ("state_after", "VARCHAR"),
        ("params_before", "JSON"), ("params_after", "JSON"), ("actor", "VARCHAR"),
        ("reason", "VARCHAR"), ("outcome", "VARCHAR"), ("batch", "BIGINT"),
    ),
    # Watching a run (sim.monitor): alerts the detectors raised, each component's health
    # changes, and the structured log; seq is the event's bus sequence number.
    "alerts": (
        ("alert_id", "BIGINT"), ("ts", "TIMESTAMP_NS"), ("severity", "VARCHAR"),
        ("source", "VARCHAR"), ("kind", "VARCHAR"), ("message", "VARCHAR"),
        ("data", "JSON"), ("acknowledged", "BOOLEAN"), ("seq", "BIGINT"),
    ),
    "health": (
        ("ts", "TIMESTAMP_NS"), ("component", "VARCHAR"), ("state", "VARCHAR"),
        ("previous", "VARCHAR"), ("reason", "VARCHAR"), ("seq", "BIGINT"),
    ),
    "logs": (
        ("ts", "TIMESTAMP_NS"), ("level", "VARCHAR"), ("category", "VARCHAR"),
        ("agent", "VARCHAR"), ("message", "VARCHAR"), ("data", "JSON"), ("seq", "BIGINT"),
    ),
    # A session's per-agent figures as it ran (sim.monitor.figures): each time a position
    # closed, and at the end.
    "agent_figures": (
        ("ts", "TIMESTAMP_NS"), ("symbol", "VARCHAR"), ("agent", "VARCHAR"),
        ("trades", "BIGINT"), ("hit_rate", "DOUBLE"), ("win_rate", "DOUBLE"),
        ("shadow_pnl", "DOUBLE"), ("apr_30d", "DOUBLE"), ("apr_90d", "DOUBLE"),
        ("apr_inception", "DOUBLE"), ("sharpe", "DOUBLE"),
    ),
    # Farms (sim.farm_engine), only in runs with ``[[farms]]``: each farm as configured
    # (lists and tables as JSON), whose each order and decision is, each farm's ledger at
    # each time step, and capital moved between ledgers ("account": the unallocated
    # reserve; a run starts with one transfer to each farm).
    "farms": (
        ("farm", "VARCHAR"), ("agents", "JSON"), ("capital", "DOUBLE"), ("wallet", "JSON"),
        ("consensus", "JSON"), ("policy", "JSON"), ("risk", "JSON"),
    ),
    "farm_orders": (("order_id", "BIGINT"), ("decision_id", "BIGINT"), ("farm", "VARCHAR")),
    "farm_decisions": (("decision_id", "BIGINT"), ("farm", "VARCHAR")),
    "farm_equity": (
        ("ts", "TIMESTAMP_NS"), ("farm", "VARCHAR"), ("cash", "DOUBLE"), ("equity", "DOUBLE"),
        ("realized_pnl", "DOUBLE"), ("unrealized_pnl", "DOUBLE"),
    ),
    "capital_transfers": (
        ("ts", "TIMESTAMP_NS"), ("from_farm", "VARCHAR"), ("to_farm", "VARCHAR"),
        ("amount", "DOUBLE"), ("reason", "VARCHAR"),
    ),
    # Perpetuals in farms (sim.farm_desk): each farm's funding on its own position (the
    # account's, on the netted position, is in ``funding``), and each farm's position
    # closed by a liquidation: its share of the venue's liquidation of the account (the
    # order is the account's; ``fee``: the farm's share) or its own margin call (the
    # order is the farm's; its fill has the fee).
    "farm_funding": (
        ("ts", "TIMESTAMP_NS"), ("farm", "VARCHAR"), ("symbol", "VARCHAR"),
        ("position", "DOUBLE"), ("mark", "DOUBLE"), ("rate", "DOUBLE"), ("payment", "DOUBLE"),
    ),
    "farm_liquidations": (
        ("ts", "TIMESTAMP_NS"), ("farm", "VARCHAR"), ("symbol", "VARCHAR"),
        ("order_id", "BIGINT"), ("position", "DOUBLE"), ("price", "DOUBLE"),
        ("fee", "DOUBLE"), ("cause", "VARCHAR"),
    ),
    # Farm lifecycle commands (sim.farm_lifecycle), applied or rejected, numbered with
    # the run's agent_events (one seq): farm_pause/farm_resume/farm_kill (the farm's state
    # before and after: active, paused, killed) and move (agent to farm; state_*: the
    # agent's farm before and after).
    "farm_events": (
        ("seq", "BIGINT"), ("ts", "TIMESTAMP_NS"), ("farm", "VARCHAR"),
        ("command", "VARCHAR"), ("agent", "VARCHAR"), ("state_before", "VARCHAR"),
        ("state_after", "VARCHAR"), ("flatten", "BOOLEAN"), ("actor", "VARCHAR"),
        ("reason", "VARCHAR"), ("outcome", "VARCHAR"), ("batch", "BIGINT"),
    ),

    # How a run was made, one (key, value) row each: ``engine_path`` (``fast`` or
    # ``per-bar``, sim.fast_path) and ``engine_path_reason``. Never part of the results.
    "run_info": (("key", "VARCHAR"), ("value", "VARCHAR")),
}

# Columns added to a table of ``TABLES`` since it was first made (stores written before).
TABLES_ADDED = {"agent_errors": TABLES["agent_errors"][5:],
                 "funding": TABLES["funding"][6:]}

# Each run's agents now: the last applied agent_events row of each (sim.agent_commands).
AGENT_STATES_VIEW = """
CREATE OR REPLACE VIEW agent_states AS
SELECT run_id, agent, arg_max(state_after, seq) AS state, arg_max(params_after, seq) AS spec,
       max(ts) AS since, min(seq) AS first_seq
FROM agent_events WHERE outcome = 'applied' AND agent <> '*'
GROUP BY run_id, agent"""

# The farm of each order, fill, decision and risk event (NULL: a run without farms, whose
# one farm is the account), and each agent's trades: every order of a decision the agent
# voted for (its vote on the decision's side), with its reasoning (its standing signal's
# reason at the decision) and strategy (its kind). ``sim.farm_engine``.
FARM_VIEWS = (
    """CREATE OR REPLACE VIEW orders_by_farm AS
SELECT o.*, f.farm FROM orders o
LEFT JOIN farm_orders f ON f.run_id = o.run_id AND f.order_id = o.order_id""",
    """CREATE OR REPLACE VIEW fills_by_farm AS
SELECT x.*, f.farm FROM fills x
LEFT JOIN farm_orders f ON f.run_id = x.run_id AND f.order_id = x.order_id""",
    """CREATE OR REPLACE VIEW risk_events_by_farm AS
SELECT x.*, f.farm FROM risk_events x
LEFT JOIN farm_orders f ON f.run_id = x.run_id AND f.order_id = x.order_id""",
    """CREATE OR REPLACE VIEW decisions_by_farm AS
SELECT d.*, f.farm FROM decisions d
LEFT JOIN farm_decisions f ON f.run_id = d.run_id AND f.decision_id = d.decision_id""",
    """CREATE OR REPLACE VIEW agent_trades AS
SELECT o.run_id, v.agent, fo.farm, o.order_id, o.decision_id, o.ts, o.symbol, d.side,
       o.quantity, o.avg_fill_price AS price, o.order_type,
       json_extract_string(st.spec, '$.kind') AS strategy, sg.reason AS reasoning,
       v.confidence, o.status, o.venue
FROM orders o
JOIN decisions d ON d.run_id = o.run_id AND d.decision_id = o.decision_id
JOIN votes v ON v.run_id = o.run_id AND v.decision_id = o.decision_id AND v.side = d.side
LEFT JOIN farm_orders fo ON fo.run_id = o.run_id AND fo.order_id = o.order_id
LEFT JOIN agent_states st ON st.run_id = o.run_id AND st.agent = v.agent
ASOF LEFT JOIN signals sg ON sg.run_id = o.run_id AND sg.agent = v.agent
    AND sg.symbol = o.symbol AND d.ts >= sg.ts""",
)

RUNS_DDL = """
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY,
    scenario VARCHAR NOT NULL,
    config JSON NOT NULL,
    seed BIGINT NOT NULL,
    code_version VARCHAR NOT NULL,
    data_hash VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    n_bars BIGINT,
    error VARCHAR,
    mode VARCHAR NOT NULL DEFAULT 'backtest',
    writer_pid BIGINT,
    writer_host VARCHAR
)"""

# Columns added since the table was first made, for stores written before them (a run
# row's writer: the process that created it, see ``sim.liveness``).
RUNS_ADDED = (("writer_pid", "BIGINT"), ("writer_host", "VARCHAR"))

# The promotion gate's records (research.validation): one row per ``quorum validate`` (kind
# "suite") and one per explicit override of the gate (kind "override"). Not per run.
VALIDATIONS_DDL = """
CREATE TABLE IF NOT EXISTS validations (
    validation_id VARCHAR PRIMARY KEY,
    kind VARCHAR NOT NULL,
    scenario VARCHAR NOT NULL,
    config_hash VARCHAR NOT NULL,
    config JSON NOT NULL,
    suite VARCHAR,
    data_hashes JSON NOT NULL,
    code_version VARCHAR NOT NULL,
    thresholds JSON NOT NULL,
    metrics JSON NOT NULL,
    passed BOOLEAN NOT NULL,
    failures JSON NOT NULL,
    reason VARCHAR,
    created_at TIMESTAMPTZ NOT NULL
)"""

# One row per live or paper session (live.session): what let it trade and what fed it.
LIVE_SESSIONS_DDL = """
CREATE TABLE IF NOT EXISTS live_sessions (
    run_id VARCHAR PRIMARY KEY,
    mode VARCHAR NOT NULL,
    venue VARCHAR NOT NULL,
    network VARCHAR NOT NULL,
    data_url VARCHAR NOT NULL,
    interval VARCHAR NOT NULL,
    warmup_bars INTEGER NOT NULL,
    started_ns BIGINT NOT NULL,
    config_hash VARCHAR NOT NULL,
    validation_id VARCHAR,
    gate VARCHAR NOT NULL,
    overridden BOOLEAN NOT NULL,
    override_reason VARCHAR,
    warnings JSON NOT NULL,
    kill_file VARCHAR
)"""

# The code that made each run (sim.code_identity; sim.run_identity): a run stored by an
# older Quorum has no row, and counts as made by unknown code.
RUN_CODE_DDL = """
CREATE TABLE IF NOT EXISTS run_code (
    run_id VARCHAR PRIMARY KEY,
    config_id VARCHAR NOT NULL,
    code_id VARCHAR NOT NULL,
    quorum VARCHAR NOT NULL,
    modules JSON NOT NULL
)"""


# -- live sessions (live.session, live.records, live.risk_state) and the control API
# (quorum.api.audit); created on first use

# live_sessions' capital columns (live.capital), added to an older store on first use.
LIVE_SESSIONS_ADDED = (("initial_cash", "DOUBLE"), ("capital", "DOUBLE"),
                       ("account_value", "DOUBLE"), ("capital_from_account", "BOOLEAN"))

# One row per restart of a live run (live.session.record_resume).
LIVE_RESUMES_DDL = """
CREATE TABLE IF NOT EXISTS live_resumes (
    run_id VARCHAR NOT NULL,
    resumed_ns BIGINT NOT NULL,
    recovered_orders INTEGER NOT NULL,
    config_hash VARCHAR NOT NULL,
    validation_id VARCHAR
)"""

# Circuit-breaker trips and kill-switch pulls of a live run (live.risk_state); ``farm``:
# the farm whose breaker it is in a run with [[farms]] (NULL: the account's).
LIVE_RISK_TRIPS_DDL = """CREATE TABLE IF NOT EXISTS live_risk_trips (
    run_id VARCHAR NOT NULL, ts BIGINT NOT NULL, kind VARCHAR NOT NULL,
    name VARCHAR NOT NULL, value DOUBLE, until_ns BIGINT, farm VARCHAR)"""
# live_risk_trips' columns added since (farms), added to an older store on first use.
LIVE_RISK_TRIPS_ADDED = (("farm", "VARCHAR"),)

# What a session against a real venue keeps durably (live.records).
VENUE_DDL = (
    """CREATE TABLE IF NOT EXISTS venue_orders (
        run_id VARCHAR NOT NULL, order_id BIGINT NOT NULL, leg INTEGER NOT NULL,
        cloid VARCHAR NOT NULL, venue VARCHAR NOT NULL, symbol VARCHAR NOT NULL,
        coin VARCHAR NOT NULL, quantity DOUBLE NOT NULL, size DOUBLE NOT NULL,
        price DOUBLE, venue_type VARCHAR NOT NULL, reduce_only BOOLEAN NOT NULL,
        decision_id BIGINT NOT NULL, ts BIGINT NOT NULL, decision_ts BIGINT NOT NULL,
        ref_price DOUBLE NOT NULL, kind VARCHAR NOT NULL, tif VARCHAR NOT NULL,
        limit_price DOUBLE, stop_price DOUBLE, post_only BOOLEAN NOT NULL,
        role VARCHAR NOT NULL, parent_id BIGINT NOT NULL, replaces BIGINT NOT NULL,
        status VARCHAR NOT NULL, oid BIGINT, filled DOUBLE NOT NULL DEFAULT 0,
        message VARCHAR, sent_ns BIGINT NOT NULL, updated_ns BIGINT NOT NULL,
        PRIMARY KEY (run_id, order_id, leg))""",
    """CREATE TABLE IF NOT EXISTS venue_fills (
        run_id VARCHAR NOT NULL, tid BIGINT NOT NULL, fill_id BIGINT NOT NULL,
        order_id BIGINT NOT NULL, cloid VARCHAR, oid BIGINT NOT NULL, coin VARCHAR NOT NULL,
        quantity DOUBLE NOT NULL, price DOUBLE NOT NULL, fee DOUBLE NOT NULL,
        time_ms BIGINT NOT NULL, venue VARCHAR NOT NULL DEFAULT '',
        PRIMARY KEY (run_id, venue, tid))""",
    """CREATE TABLE IF NOT EXISTS venue_funding (
        run_id VARCHAR NOT NULL, coin VARCHAR NOT NULL, time_ms BIGINT NOT NULL,
        symbol VARCHAR NOT NULL, usdc DOUBLE NOT NULL, szi DOUBLE NOT NULL,
        rate DOUBLE NOT NULL, hash VARCHAR, venue VARCHAR NOT NULL DEFAULT '',
        PRIMARY KEY (run_id, venue, coin, time_ms))""",
    """CREATE TABLE IF NOT EXISTS venue_accounts (
        run_id VARCHAR NOT NULL, ts BIGINT NOT NULL, account_value DOUBLE NOT NULL,
        store_equity DOUBLE NOT NULL, outside DOUBLE NOT NULL,
        venue VARCHAR NOT NULL DEFAULT '', PRIMARY KEY (run_id, venue))""",
    """CREATE TABLE IF NOT EXISTS reconciliations (
        run_id VARCHAR NOT NULL, ts BIGINT NOT NULL, kind VARCHAR NOT NULL,
        symbol VARCHAR, coin VARCHAR, store_value DOUBLE, venue_value DOUBLE,
        action VARCHAR NOT NULL, detail VARCHAR NOT NULL, venue VARCHAR)""",
)
# Tables whose key gained ``venue``: an older store's table is rebuilt with its rows
# (one-account sessions: venue ''). Their columns before, in order.
VENUE_REKEYED = {
    "venue_fills": "run_id, tid, fill_id, order_id, cloid, oid, coin, quantity, price, fee,"
                   " time_ms",
    "venue_funding": "run_id, coin, time_ms, symbol, usdc, szi, rate, hash",
    "venue_accounts": "run_id, ts, account_value, store_equity, outside",
}

# Every control call on record (quorum.api.audit).
CONTROL_AUDIT_DDL = """
CREATE TABLE IF NOT EXISTS control_audit (
    ts TIMESTAMP_NS NOT NULL,
    run_id VARCHAR,
    key_id VARCHAR,
    role VARCHAR,
    method VARCHAR NOT NULL,
    path VARCHAR NOT NULL,
    body VARCHAR,
    body_sha256 VARCHAR NOT NULL,
    status INTEGER NOT NULL,
    outcome VARCHAR
)"""


# -- sweeps (research.sweep_driver); created on first use
SWEEP_DDL = (
    """CREATE TABLE IF NOT EXISTS sweeps (
        sweep_id VARCHAR PRIMARY KEY, name VARCHAR NOT NULL, source VARCHAR NOT NULL,
        spec JSON NOT NULL, n_runs BIGINT NOT NULL, created_at TIMESTAMPTZ NOT NULL)""",
    # One row per combination; run_id joins runs (several rows may share a run).
    """CREATE TABLE IF NOT EXISTS sweep_runs (
        sweep_id VARCHAR NOT NULL, idx BIGINT NOT NULL, run_id VARCHAR NOT NULL,
        param_set BIGINT NOT NULL, params JSON NOT NULL, label VARCHAR NOT NULL,
        regime VARCHAR, seed BIGINT NOT NULL, PRIMARY KEY (sweep_id, idx))""",
    # Per run, computed where the run ran (reports.sweep.run_metrics), NaN stored as NULL.
    """CREATE TABLE IF NOT EXISTS run_metrics (
        run_id VARCHAR NOT NULL, metric VARCHAR NOT NULL, value DOUBLE,
        PRIMARY KEY (run_id, metric))""",
)
