"""``quorum console``: a terminal for the control API, interactive or one command at a time.

Every command is one or two API calls and prints what they answer; the console holds no
state of its own, so it works against a session, a watched backtest or ``quorum serve``.
Keys: ``$QUORUM_API_KEY`` or ``--key-file`` (the key file holds the key itself, for the
console only; the server's key file holds hashes). Interactive mode keeps a history and
completes commands (prompt-toolkit); ``-c "cmd; cmd"`` runs them and exits (1 when one
failed).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ENV_KEY = "QUORUM_API_KEY"
DEFAULT_URL = "http://127.0.0.1:8765"


class ConsoleError(RuntimeError):
    """A command that failed: the API's own message, in one line."""


class ApiClient:
    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    @classmethod
    def connect(cls, url: str, key: str | None, timeout_s: float = 10.0) -> ApiClient:
        headers = {"X-API-Key": key} if key else {}
        return cls(httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout_s))

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            reply = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ConsoleError(f"cannot reach {self.http.base_url}: {exc}") from None
        body = _json(reply)
        if reply.status_code >= 400:
            error = body.get("error", {}) if isinstance(body, dict) else {}
            raise ConsoleError(f"{reply.status_code} {error.get('message', reply.text[:200])}")
        return body

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, params={k: v for k, v in params.items()
                                              if v is not None})


def _json(reply: httpx.Response) -> Any:
    try:
        return reply.json()
    except ValueError:
        return {}


@dataclass(frozen=True, slots=True)
class Command:
    usage: str
    help: str
    run: Callable[[ApiClient, list[str]], str]


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    if not rows:
        return "(none)"
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else str(value)


def _status(api: ApiClient, args: list[str]) -> str:
    health = api.get("/api/health")
    runs = api.get("/api/runs", limit=1)
    latest = runs[0] if runs else {}
    return (f"{health['status']} ({health['mode']}; store {health['store']}; "
            f"{health['runs']} run(s))\nlatest run: {latest.get('run_id', '-')} "
            f"{latest.get('scenario', '')} {latest.get('mode', '')} "
            f"{latest.get('status', '')}")


def _runs(api: ApiClient, args: list[str]) -> str:
    return table(api.get("/api/runs", limit=_int(args, 0, 10)),
                 ["run_id", "scenario", "mode", "status", "n_bars", "started_at"])


def _orders(api: ApiClient, args: list[str]) -> str:
    return table(api.get("/api/orders", limit=_int(args, 0, 10)),
                 ["order_id", "ts", "symbol", "quantity", "status", "filled_quantity",
                  "avg_fill_price", "venue"])


def _market(api: ApiClient, args: list[str]) -> str:
    return table(api.get("/api/market"), ["symbol", "ts", "close", "volume"])


def _why(api: ApiClient, args: list[str]) -> str:
    if not args:
        raise ConsoleError("usage: why ORDER_ID")
    order = api.get(f"/api/orders/{_int(args, 0, 0)}")
    decision = api.get(f"/api/decisions/{order['decision_id']}", run=order["run_id"])
    head = (f"order {order['order_id']}: {order['quantity']:+.6g} {order['symbol']} "
            f"{order['status']} (filled {order['filled_quantity']:.6g} at "
            f"{_cell(order['avg_fill_price'])}, fees {order['fees']:.6g})\n"
            f"decision {decision['decision_id']} at {decision['ts']}: {decision['side']} "
            f"confidence {decision['confidence']:.3g} by {decision['method']} "
            f"(rule {decision['rule']}, agreement {decision['agreement']:.3g})")
    votes = table(decision["votes"], ["agent", "side", "confidence", "weight", "reason"])
    return f"{head}\n{votes}"


def _events(api: ApiClient, args: list[str]) -> str:
    follow = "-f" in args
    topics = ",".join(a for a in args if a != "-f")
    since = 0
    lines: list[str] = []
    while True:
        found = api.get("/api/events", since=since, topics=topics or None)
        for event in found["events"]:
            line = (f"{event['seq']:>8} {event['topic']:<14} "
                    f"{json.dumps(event['data'], separators=(',', ':'))[:160]}")
            if follow:
                print(line, flush=True)
            else:
                lines.append(line)
        since = found["last_seq"]
        if not follow:
            return "\n".join(lines[-50:]) or "(none)"
        time.sleep(0.5)


def _int(args: list[str], i: int, default: int) -> int:
    if len(args) <= i:
        return default
    try:
        return int(args[i])
    except ValueError:
        raise ConsoleError(f"{args[i]!r}: expected a number") from None


COMMANDS: dict[str, Command] = {
    "status": Command("status", "health of the server and the latest run", _status),
    "runs": Command("runs [N]", "the latest runs", _runs),
    "orders": Command("orders [N]", "the latest orders of the latest run", _orders),
    "market": Command("market", "the last bar of each symbol", _market),
    "why": Command("why ORDER_ID", "the decision, votes and signals behind an order", _why),
    "events": Command("events [TOPIC...] [-f]", "the live stream (-f: follow)", _events),
}


def help_text() -> str:
    width = max(len(c.usage) for c in COMMANDS.values())
    return "\n".join([f"{c.usage:<{width}}  {c.help}" for c in COMMANDS.values()]
                     + [f"{'help':<{width}}  this list", f"{'exit':<{width}}  leave"])


def run_line(api: ApiClient, line: str) -> str:
    """One console line -> its output; ConsoleError for a command that failed."""
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise ConsoleError(str(exc)) from None
    if not words:
        return ""
    name, args = words[0], words[1:]
    if name == "help":
        return help_text()
    command = COMMANDS.get(name)
    if command is None:
        raise ConsoleError(f"unknown command {name!r}: type help")
    return command.run(api, args)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("console", help="a terminal for the control API (history, completion"
                                       "; -c for scripts)")
    p.add_argument("--url", default=DEFAULT_URL, help=f"the API (default {DEFAULT_URL})")
    p.add_argument("--key-file", metavar="FILE",
                   help=f"a file holding the API key (default: ${ENV_KEY})")
    p.add_argument("-c", dest="commands", metavar="COMMANDS",
                   help='run these commands ("cmd; cmd") and exit')
    p.set_defaults(func=cmd_console)


def cmd_console(args: argparse.Namespace) -> int:
    key = os.environ.get(ENV_KEY) or None
    if args.key_file:
        try:
            key = Path(args.key_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            from sim.config import ConfigError

            raise ConfigError(f"--key-file {args.key_file}: {exc.strerror}") from None
    api = ApiClient.connect(args.url, key)
    if args.commands is not None:
        failed = 0
        for line in args.commands.split(";"):
            try:
                out = run_line(api, line)
            except ConsoleError as exc:
                print(f"error: {exc}", file=sys.stderr)
                failed = 1
                continue
            if out:
                print(out)
        return failed
    return interactive(api, args.url)


def interactive(api: ApiClient, url: str) -> int:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.completion import WordCompleter
    from prompt_toolkit.history import FileHistory

    history = Path.home() / ".quorum_console_history"
    session: PromptSession[str] = PromptSession(
        history=FileHistory(str(history)),
        completer=WordCompleter([*COMMANDS, "help", "exit"], sentence=True))
    print(f"quorum console on {url}: help lists the commands", flush=True)
    while True:
        try:
            line = session.prompt("quorum> ")
        except (EOFError, KeyboardInterrupt):
            return 0
        if line.strip() in ("exit", "quit"):
            return 0
        try:
            out = run_line(api, line)
        except ConsoleError as exc:
            out = f"error: {exc}"
        except KeyboardInterrupt:  # leaves `events -f`
            out = ""
        if out:
            print(out, flush=True)
