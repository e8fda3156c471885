"""``quorum agent``: send a lifecycle command to a running live session over its local
channel (``live.commands``) and print the outcome the session stored.

Exit codes: 0 applied, 1 rejected by the session (its reason printed) or no session took
the command within ``--wait`` seconds, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console

from sim.agent_commands import AgentBatch, AgentCommand

VERBS = ("spawn", "pause", "resume", "stop", "update", "kill")


def add_agent_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("verb", choices=VERBS, help="what to do")
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="the agent(s); several names make one batch, applied all or none")
    p.add_argument("--kind", help="spawn: the agent kind (e.g. momentum, or module:Class)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="spawn/update: a parameter (VALUE read as JSON when it parses, "
                        "e.g. window=24), repeatable")
    p.add_argument("--symbols", metavar="A,B",
                   help="spawn/update: the symbols it trades (default on spawn: all)")
    p.add_argument("--flatten", action="store_true",
                   help="kill: also close every position of the account")
    p.add_argument("--reason", default="", help="why (stored with the command)")
    p.add_argument("--actor", default="operator", help="who (default: operator)")
    p.add_argument("--wait", type=float, default=30.0, metavar="SECONDS",
                   help="how long to wait for the session's answer (default: 30)")
    p.add_argument("--commands-dir", metavar="PATH",
                   help="the session's command directory (default: the store's name with "
                        ".commands, e.g. runs.commands)")


def _params(pairs: list[str], usage: type[Exception]) -> dict[str, Any] | None:
    if not pairs:
        return None
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise usage(f"--param {pair!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


def build_command(args: argparse.Namespace, usage: type[Exception]
                  ) -> AgentCommand | AgentBatch:
    verb, names = args.verb, list(args.names)
    if verb == "kill":
        if names:
            raise usage("kill stops the whole account's new exposure: it takes no NAME")
        return AgentCommand("kill", "*", args.actor, args.reason, flatten=args.flatten)
    if not names:
        raise usage(f"{verb}: name the agent")
    if args.flatten:
        raise usage("--flatten: only with kill")
    params = _params(args.param, usage)
    symbols = (tuple(s.strip() for s in args.symbols.split(",") if s.strip())
               if args.symbols else None)
    if verb not in ("spawn", "update") and (params or symbols or args.kind):
        raise usage(f"{verb}: takes no --kind, --param or --symbols")
    if verb == "spawn" and not args.kind:
        raise usage("spawn: --kind is required")
    commands = tuple(AgentCommand(verb, name, args.actor, args.reason, args.kind, params,
                                  symbols) for name in names)
    if len(commands) == 1:
        return commands[0]
    return AgentBatch(commands, args.actor, args.reason)


def send_agent_command(args: argparse.Namespace, console: Console,
                       usage: type[Exception]) -> int:
    from pathlib import Path

    from live.commands import default_command_dir, send

    command = build_command(args, usage)
    folder = Path(args.commands_dir) if args.commands_dir else default_command_dir(args.db)
    answer = send(folder, command, timeout_s=args.wait)
    if answer is None:
        console.print(f"no session took the command within {args.wait:g} s (is a live "
                      f"session running on {args.db}? it watches {folder})")
        return 1
    for result in answer.get("results") or [answer]:
        console.print(f"{result['outcome']}: {result['command']} {result['agent']!r}"
                      + (f" (now {result['state']})" if result.get("state") else "")
                      + f" [agent_events seq {result['seq']}]")
    if answer.get("results") and answer["outcome"] != "applied":
        console.print(answer["outcome"])
    return 0 if answer["outcome"] == "applied" else 1
