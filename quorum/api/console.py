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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when the console connects, not to parse ``quorum``'s options
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
        import httpx

        headers = {"X-API-Key": key} if key else {}
        return cls(httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout_s))

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

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


def _agents(api: ApiClient, args: list[str]) -> str:
    rows = api.get("/api/agents")
    for r in rows:
        r["symbols"] = ",".join(r["symbols"]) if r.get("symbols") else "(all)"
        r["params"] = json.dumps(r.get("params") or {}, separators=(",", ":"))
    return table(rows, ["name", "state", "kind", "symbols", "params", "signals", "votes",
                        "errors"])


def _outcome(reply: Any) -> str:
    results = reply.get("results") or []
    if results:
        return "\n".join(f"{r['command']} {r['agent']}: {r['outcome']}" for r in results)
    return f"{reply['command']} {reply['agent']}: {reply['outcome']} (state {reply['state']})"


def _lifecycle(action: str) -> Callable[[ApiClient, list[str]], str]:
    """pause/resume/stop NAME...: one agent a call, several as one batch (all or none)."""
    def run(api: ApiClient, args: list[str]) -> str:
        names = [a for a in args if not a.startswith("--reason=")]
        reason = next((a.partition("=")[2] for a in args if a.startswith("--reason=")), "")
        if not names:
            raise ConsoleError(f"usage: {action} NAME... [--reason=WHY]")
        if len(names) == 1:
            return _outcome(api.call("POST", f"/api/agents/{names[0]}/{action}",
                                     json={"reason": reason}))
        return _outcome(api.call("POST", "/api/agents/batch", json={
            "commands": [{"command": action, "agent": n} for n in names], "reason": reason}))
    return run


def _pairs(words: list[str]) -> dict[str, Any]:
    """``k=v`` words as params; a value is read as JSON when it is one (3, 0.5, true)."""
    out: dict[str, Any] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise ConsoleError(f"{word!r}: expected key=value")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def _spawn(api: ApiClient, args: list[str]) -> str:
    words = list(args)
    name = symbols = None
    params: list[str] = []
    kind = None
    while words:
        word = words.pop(0)
        if word in ("--name", "--symbols", "--param") and not words:
            raise ConsoleError(f"{word} needs a value")
        if word == "--name":
            name = words.pop(0)
        elif word == "--symbols":
            symbols = [s for s in words.pop(0).split(",") if s]
        elif word == "--param":
            params.append(words.pop(0))
        elif kind is None:
            kind = word
        else:
            raise ConsoleError(f"unexpected {word!r}")
    if kind is None:
        raise ConsoleError("usage: spawn KIND [--name NAME] [--symbols A,B] [--param k=v]")
    body: dict[str, Any] = {"name": name or kind, "kind": kind, "params": _pairs(params)}
    if symbols:
        body["symbols"] = symbols
    return _outcome(api.call("POST", "/api/agents", json=body))


def _set(api: ApiClient, args: list[str]) -> str:
    if len(args) < 2:
        raise ConsoleError("usage: set NAME k=v... (or symbols=A,B)")
    pairs = _pairs(args[1:])
    body: dict[str, Any] = {}
    if "symbols" in pairs:
        body["symbols"] = [s for s in str(pairs.pop("symbols")).split(",") if s]
    if pairs:
        body["params"] = pairs
    return _outcome(api.call("PATCH", f"/api/agents/{args[0]}", json=body))


def _kill(api: ApiClient, args: list[str]) -> str:
    flatten = "--flatten" in args
    return _outcome(api.call("POST", "/api/kill", json={"flatten": flatten,
                                                        "reason": "console"}))


def _alerts(api: ApiClient, args: list[str]) -> str:
    return table(api.get("/api/alerts", limit=_int(args, 0, 20)),
                 ["alert_id", "ts", "severity", "source", "kind", "message", "acknowledged"])


def _ack(api: ApiClient, args: list[str]) -> str:
    if not args:
        raise ConsoleError("usage: ack ALERT_ID")
    reply = api.call("POST", f"/api/alerts/{_int(args, 0, 0)}/ack")
    return f"alert {reply['alert_id']}: acknowledged"


def _logs(api: ApiClient, args: list[str]) -> str:
    words, params = list(args), {}
    follow = "-f" in words
    words = [w for w in words if w != "-f"]
    while words:
        word = words.pop(0)
        if word in ("--agent", "--level", "--category", "--grep") and words:
            params["text" if word == "--grep" else word[2:]] = words.pop(0)
        else:
            raise ConsoleError(f"unexpected {word!r}: logs [-f] [--agent A] [--level L] "
                               "[--category C] [--grep TEXT]")
    seen = 0
    while True:
        rows = api.get("/api/logs", limit=50, **params)
        fresh = [r for r in rows if (r.get("seq") or 0) > seen]
        lines = [f"{r['ts']} {r['level']:<7} {r['category']:<7} "
                 f"{(r['agent'] or '-'):<10} {r['message']}" for r in fresh]
        if not follow:
            return "\n".join(lines) or "(none)"
        for line in lines:
            print(line, flush=True)
        seen = max([seen, *(r.get("seq") or 0 for r in fresh)])
        time.sleep(1.0)


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
    "agents": Command("agents", "the agents: state, kind, symbols, params", _agents),
    "pause": Command("pause NAME... [--reason=WHY]", "pause agents (operator)",
                     _lifecycle("pause")),
    "resume": Command("resume NAME...", "let paused agents vote again", _lifecycle("resume")),
    "stop": Command("stop NAME...", "remove agents", _lifecycle("stop")),
    "spawn": Command("spawn KIND [--name N] [--symbols A,B] [--param k=v]",
                     "start an agent (admin)", _spawn),
    "set": Command("set NAME k=v... [symbols=A,B]", "change an agent's params or symbols",
                   _set),
    "kill": Command("kill [--flatten]", "pull the kill switch (admin)", _kill),
    "alerts": Command("alerts [N]", "the latest alerts", _alerts),
    "ack": Command("ack ALERT_ID", "acknowledge an alert", _ack),
    "logs": Command("logs [-f] [--agent A] [--level L] [--grep TEXT]",
                    "the session's log (-f: follow)", _logs),
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
            from sim.config_base import ConfigError

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
