"""The local command channel of a running session: agent commands from a shell.

``quorum agent pause NAME --db FILE`` writes the command as a JSON file into the session's
command directory (next to the store: ``runs.duckdb`` -> ``runs.commands/``), the way
``quorum kill`` makes the kill file. The session polls the directory, hands each command to
``LiveRunner.submit`` (applied by its single consumer between bars, stored in
``agent_events``) and writes the outcome beside it, which the shell command waits for and
prints. Files are written under a temporary name and renamed, so neither side ever reads
half a message.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from sim.agent_commands import (
    AgentBatch,
    AgentCommand,
    CommandError,
    CommandOutcome,
    command_json,
    outcome_json,
    parse_command,
)

_COMMAND = ".cmd.json"
_OUTCOME = ".out.json"


def default_command_dir(db: str | Path) -> Path:
    """The command directory of a session on store ``db``: ``runs.duckdb`` ->
    ``runs.commands``."""
    return Path(db).with_suffix(".commands")


def _write(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, default=str))
    os.replace(tmp, path)


class CommandChannel:
    """Watch ``directory`` (polled every ``poll_s`` seconds) for commands."""

    def __init__(self, directory: str | Path, *, poll_s: float = 0.25) -> None:
        self.directory = Path(directory)
        self.poll_s = poll_s

    async def watch(
        self,
        submit: Callable[[AgentCommand | AgentBatch], Future[CommandOutcome]],
        reject: Callable[[AgentCommand, str], Future[CommandOutcome]],
    ) -> None:
        """Submit each command that appears, oldest first, and answer with its outcome.
        A file that is no command is rejected (stored) naming the field."""
        self.directory.mkdir(parents=True, exist_ok=True)
        while True:
            for path in sorted(self.directory.glob(f"*{_COMMAND}")):
                ident = path.name.removesuffix(_COMMAND)
                try:
                    data = json.loads(path.read_text())
                except (OSError, ValueError) as exc:
                    data = {"_unreadable": str(exc)}
                path.unlink(missing_ok=True)
                try:
                    if "_unreadable" in data or not isinstance(data, dict):
                        raise CommandError(f"command: not a JSON object ({data!r})")
                    future = submit(parse_command(data))
                except CommandError as exc:
                    raw = data if isinstance(data, dict) else {}
                    future = reject(AgentCommand(
                        str(raw.get("command", "?")), str(raw.get("agent", "?")),
                        str(raw.get("actor", "operator")), str(raw.get("reason", ""))),
                        str(exc))
                outcome = await asyncio.wrap_future(future)
                _write(self.directory / f"{ident}{_OUTCOME}", outcome_json(outcome))
            await asyncio.sleep(self.poll_s)


def send(directory: str | Path, command: AgentCommand | AgentBatch, *,
         timeout_s: float = 30.0, poll_s: float = 0.05) -> dict[str, Any] | None:
    """Hand ``command`` to the session watching ``directory`` and wait for its outcome
    (``outcome_json``); None when no session took it within ``timeout_s`` (the command
    is withdrawn unless it was taken meanwhile)."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    ident = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
    request = folder / f"{ident}{_COMMAND}"
    answer = folder / f"{ident}{_OUTCOME}"
    _write(request, command_json(command))
    deadline = time.monotonic() + timeout_s
    while True:
        if answer.exists():
            data: dict[str, Any] = json.loads(answer.read_text())
            answer.unlink(missing_ok=True)
            return data
        if time.monotonic() >= deadline:
            try:
                request.unlink()
            except FileNotFoundError:  # taken just now: its answer comes
                deadline += timeout_s
                continue
            return None
        time.sleep(poll_s)
