"""Buffers a run's rows by column and hands them to the store in Arrow batches.

Components report what happened through small methods; the per-bar equity rows (the only
per-bar table) are appended straight to their column lists by the engine. Symbols, agents
and sides are kept as small integers in the buffers and turned into names at flush.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from sim.messages import Decision, OrderDenied, OrderFilled, OrderRouted, Side, SubmitOrder
from sim.store import TABLES, RunStore

_TS = pa.timestamp("ns")
_SIDE_NAMES = {int(s): s.name for s in Side}


class Recorder:
    def __init__(
        self,
        store: RunStore,
        run_id: str,
        symbols: Sequence[str],
        agents: Sequence[str],
        method: str,
        flush_rows: int = 500_000,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self._symbols = np.array(symbols, dtype=object)
        self._agents = np.array(agents, dtype=object)
        self._method = method
        self.flush_rows = flush_rows
        self._cols: dict[str, dict[str, list]] = {
            table: {name: [] for name, _ in columns} for table, columns in TABLES.items()
        }
        eq = self._cols["equity"]
        # The engine appends to these directly: one row per timestamp.
        self.equity_ts, self.equity_cash, self.equity_value = eq["ts"], eq["cash"], eq["equity"]

    def signal(self, ts: int, symbol: int, agent: int, side: Side, confidence: float,
               target: float | None) -> None:
        c = self._cols["signals"]
        c["ts"].append(ts)
        c["symbol"].append(symbol)
        c["agent"].append(agent)
        c["side"].append(_SIDE_NAMES[side])
        c["confidence"].append(confidence)
        c["target"].append(target)

    def decision(self, decision: Decision, symbol: int, agent_slots: Sequence[int]) -> None:
        c = self._cols["decisions"]
        c["decision_id"].append(decision.decision_id)
        c["ts"].append(decision.ts)
        c["symbol"].append(symbol)
        c["side"].append(_SIDE_NAMES[decision.side])
        c["confidence"].append(decision.confidence)
        c["target"].append(decision.target)
        c["method"].append(self._method)
        v = self._cols["votes"]
        k = len(agent_slots)
        v["decision_id"].extend([decision.decision_id] * k)
        v["agent"].extend(agent_slots)
        v["side"].extend(["HOLD" if s is None else _SIDE_NAMES[s.side] for s in decision.votes])
        v["confidence"].extend([0.0 if s is None else s.confidence for s in decision.votes])
        v["weight"].extend(decision.weights)

    def order(self, order: SubmitOrder, symbol: int, status: str) -> None:
        c = self._cols["orders"]
        c["order_id"].append(order.order_id)
        c["decision_id"].append(order.decision_id)
        c["ts"].append(order.ts)
        c["symbol"].append(symbol)
        c["quantity"].append(order.quantity)
        c["ref_price"].append(order.ref_price)
        c["notional"].append(order.notional)
        c["status"].append(status)

    def denial(self, denial: OrderDenied, symbol: int) -> None:
        c = self._cols["risk_events"]
        c["order_id"].append(denial.order_id)
        c["ts"].append(denial.ts)
        c["symbol"].append(symbol)
        c["check_name"].append(denial.check)
        c["reason"].append(denial.reason)

    def routing(self, routed: OrderRouted, symbol: int) -> None:
        c = self._cols["routing_decisions"]
        c["order_id"].append(routed.order.order_id)
        c["ts"].append(routed.ts)
        c["symbol"].append(symbol)
        c["venue"].append(routed.venue)
        c["candidates"].append([cand.venue for cand in routed.candidates])
        c["candidate_fees_bps"].append([cand.fee_bps for cand in routed.candidates])
        c["reason"].append(routed.reason)
        c["elapsed_ns"].append(routed.elapsed_ns)

    def fill(self, fill: OrderFilled, symbol: int, cash: float, position: float,
             realized: float) -> None:
        c = self._cols["fills"]
        c["fill_id"].append(fill.fill_id)
        c["order_id"].append(fill.order_id)
        c["ts"].append(fill.ts)
        c["symbol"].append(symbol)
        c["venue"].append(fill.venue)
        c["quantity"].append(fill.quantity)
        c["price"].append(fill.price)
        c["fee"].append(fill.fee)
        c["ref_price"].append(fill.ref_price)
        c["cash_after"].append(cash)
        c["position_after"].append(position)
        c["realized_pnl"].append(realized)

    def pending_rows(self) -> int:
        return max(len(cols[next(iter(cols))]) for cols in self._cols.values())

    def maybe_flush(self) -> None:
        if self.pending_rows() >= self.flush_rows:
            self.flush()

    def flush(self) -> None:
        for table, cols in self._cols.items():
            if not next(iter(cols.values())):
                continue
            arrays = {name: self._to_arrow(name, values) for name, values in cols.items()}
            self.store.append(self.run_id, table, pa.table(arrays))
            for values in cols.values():
                values.clear()

    def _to_arrow(self, name: str, values: list) -> pa.Array:
        if name == "ts":
            return pa.array(np.fromiter(values, dtype=np.int64, count=len(values)), type=_TS)
        if name == "symbol":
            return pa.array(self._symbols[np.fromiter(values, dtype=np.int64, count=len(values))])
        if name == "agent":
            return pa.array(self._agents[np.fromiter(values, dtype=np.int64, count=len(values))])
        if name in ("cash", "equity"):
            return pa.array(np.fromiter(values, dtype=np.float64, count=len(values)))
        return pa.array(values)
