"""Run a docs page as a reader would: its files written, its commands run in order.

A page is read top to bottom in a scratch directory (with ``scenarios/`` beside it):

* a fenced block with ``title="PATH"`` is written to ``PATH`` (the reader saves it);
* each command of a ```sh block runs as written, through this interpreter's ``quorum``;
  ``VAR=value`` prefixes become its environment (their values filled in as arguments are);
* a command ending in ``&`` runs in the background until the page ends; the first
  ``http://127.0.0.1:PORT`` it prints replaces ``http://127.0.0.1:PORT`` in later commands;
* ``RUN_ID`` in a command is the latest run in the store the commands chose
  (``quorum.store_path``), ``PREV_RUN_ID`` the one before it;
* a ```sql block runs as ``quorum query`` against that store, where the page's commands
  so far left it;
* a command exits 0, unless the comment above it says ``exits N``.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from quorum.store_path import default_store
from tests._readme import all_blocks, as_test_argv, shell_commands

_TITLE = re.compile(r'title="([^"]+)"')
_EXITS = re.compile(r"\bexits? (\d+)\b")
_URL = re.compile(r"http://127\.0\.0\.1:\d+")
_ENV = re.compile(r"^[A-Z_][A-Z0-9_]*=")
PLACEHOLDER_URL = "http://127.0.0.1:PORT"


@dataclass
class PageRun:
    page: Path
    cwd: Path
    url: str | None = None
    env: dict[str, str] = field(default_factory=dict)  # added to every command's
    background: list[subprocess.Popen[str]] = field(default_factory=list)
    ran: int = 0

    def where(self, line: int) -> str:
        return f"{self.page.name}:{line}"

    def latest_run(self, back: int = 0) -> str:
        """The latest run in the store the page's commands wrote (``back`` runs before)."""
        store = default_store(self.cwd, environ={}).path
        with duckdb.connect(str(store), read_only=True) as con:
            row = con.execute("select run_id from runs order by started_at desc "
                              "limit 1 offset ?", [back]).fetchone()
        assert row is not None, f"RUN_ID: fewer than {back + 1} runs in {store}"
        return str(row[0])

    def fill(self, arg: str) -> str:
        if "PREV_RUN_ID" in arg:
            arg = arg.replace("PREV_RUN_ID", self.latest_run(back=1))
        if "RUN_ID" in arg:
            arg = arg.replace("RUN_ID", self.latest_run())
        if PLACEHOLDER_URL in arg:
            assert self.url is not None, f"{arg}: no background server printed a URL"
            arg = arg.replace(PLACEHOLDER_URL, self.url)
        return arg

    def run(self, argv: list[str], line: int, comment: str, timeout: float) -> None:
        env = {**os.environ, "COLUMNS": "200", **self.env}
        while argv and _ENV.match(argv[0]):
            name, _, value = argv.pop(0).partition("=")
            env[name] = self.fill(value)
        background = argv[-1] == "&"
        argv = [self.fill(a) for a in as_test_argv(argv[:-1] if background else argv)]
        if background:
            self.start(argv, env, line)
            return
        done = subprocess.run(argv, cwd=self.cwd, capture_output=True, text=True, env=env,
                              timeout=timeout)
        wanted = int(m.group(1)) if (m := _EXITS.search(comment)) else 0
        assert done.returncode == wanted, (
            f"{self.where(line)}: exit {done.returncode}, expected {wanted}: "
            f"{done.stderr[-2000:]}")
        assert (done.stdout + done.stderr).strip(), f"{self.where(line)}: no output"
        self.ran += 1

    def start(self, argv: list[str], env: dict[str, str], line: int) -> None:
        proc = subprocess.Popen(argv, cwd=self.cwd, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True, env=env)
        self.background.append(proc)
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            text = proc.stdout.readline()
            if not text:
                break
            if m := _URL.search(text):
                self.url = m.group(0)
                self.ran += 1
                return
        raise AssertionError(f"{self.where(line)}: the background command printed no URL")

    def stop(self) -> None:
        for proc in self.background:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def run_page(page: Path, cwd: Path, timeout: float = 300,
             env: dict[str, str] | None = None) -> int:
    """Run every file, command and SQL block of ``page`` in ``cwd``; how many of the
    commands and SQL blocks ran."""
    state = PageRun(page, cwd, env=dict(env or {}))
    try:
        for block in all_blocks(page.read_text(encoding="utf-8")):
            if m := _TITLE.search(block.info):
                target = cwd / m.group(1)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(block.text, encoding="utf-8")
            elif block.lang == "sh":
                for command in shell_commands(block):
                    state.run(list(command.argv), command.line, command.comment, timeout)
            elif block.lang == "sql":
                state.run([".venv/bin/quorum", "query", block.text], block.line, "", timeout)
    finally:
        state.stop()
    return state.ran
