"""The README's examples as data: fenced blocks, the shell commands in them, the SQL.

Tests execute what the README shows, so a command that stops working as written fails a
test instead of a new user. Commands are split as a shell would (quotes may span lines,
``#`` starts a comment), one command per unquoted line end.
"""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
_FENCE = re.compile(r"^```(\w*)([^\n]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True, slots=True)
class Block:
    lang: str
    text: str
    line: int  # of the opening fence, 1-based, for messages
    info: str = ""  # the rest of the fence's info string, e.g. title="research/x.py"


@dataclass(frozen=True, slots=True)
class Command:
    argv: list[str]
    line: int
    comment: str  # the comment lines just above it, joined


def readme_text() -> str:
    return README.read_text(encoding="utf-8")


def fenced_blocks(text: str, lang: str) -> list[Block]:
    """Every ```lang block of ``text``, in order."""
    return [b for b in all_blocks(text) if b.lang == lang]


def all_blocks(text: str) -> list[Block]:
    """Every fenced block of ``text``, in order."""
    return [Block(m.group(1), m.group(3), text.count("\n", 0, m.start()) + 1,
                  m.group(2).strip()) for m in _FENCE.finditer(text)]


def shell_commands(block: Block) -> list[Command]:
    """The commands of a shell block, each with the comment lines above it."""
    commands: list[Command] = []
    pending: list[str] = []
    comment: list[str] = []
    start = 0
    for i, line in enumerate(block.text.splitlines()):
        if not pending and line.lstrip().startswith("#"):
            comment.append(line.lstrip("# ").rstrip())
            continue
        if not pending and not line.strip():
            comment = []
            continue
        if not pending:
            start = block.line + 1 + i
        pending.append(line[:-1] if line.endswith("\\") else line)
        if line.endswith("\\"):
            continue
        try:
            argv = shlex.split("\n".join(pending), comments=True)
        except ValueError:  # a quote still open: the command goes on
            continue
        commands.append(Command(argv, start, " ".join(comment)))
        pending, comment = [], []
    if pending:
        raise ValueError(f"README.md:{start}: unterminated command")
    return commands


def readme_commands(lang: str = "sh") -> list[Command]:
    return [c for b in fenced_blocks(readme_text(), lang) for c in shell_commands(b)]


DOCS = REPO / "docs"


def docs_pages() -> list[Path]:
    """Every page of the docs site, and the README (run the same way)."""
    return [README, *sorted(DOCS.rglob("*.md"))]


def page_commands(page: Path, lang: str = "sh") -> list[Command]:
    """The ```sh commands of one page."""
    return [c for b in fenced_blocks(page.read_text(encoding="utf-8"), lang)
            for c in shell_commands(b)]


def page_sql(page: Path) -> list[Block]:
    """The ```sql blocks of one page."""
    return fenced_blocks(page.read_text(encoding="utf-8"), "sql")


def docs_commands(lang: str = "sh") -> list[tuple[Path, Command]]:
    """The ```sh commands of every page of the docs site, with their page."""
    return [(page, c) for page in sorted(DOCS.rglob("*.md")) for c in page_commands(page, lang)]


def as_test_argv(argv: list[str]) -> list[str]:
    """A README command as the test process runs it: the venv's ``quorum`` and ``python``
    are this interpreter's (tests run in the project's venv)."""
    head, rest = argv[0], argv[1:]
    if head == ".venv/bin/quorum":
        return [sys.executable, "-m", "quorum.cli", *rest]
    if head == ".venv/bin/python":
        return [sys.executable, *rest]
    raise ValueError(f"not a venv command: {head}")
