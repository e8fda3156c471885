"""Determinism by construction: simulation code never reads the wall clock or global RNGs."""

from __future__ import annotations

import re
from pathlib import Path

SIM = Path(__file__).resolve().parents[2] / "sim"
FORBIDDEN = {
    r"\bdatetime\.now\(|\bdatetime\.utcnow\(|\bdate\.today\(": "wall-clock date",
    r"\btime\.time(_ns)?\(": "wall-clock time",
    r"^\s*import random\b|^\s*from random import": "global random module",
    r"\bnp\.random\.(seed|rand|randn|randint|random|normal|uniform|choice|shuffle)\(":
        "global numpy RNG",
}


def test_sim_has_no_wall_clock_or_global_randomness() -> None:
    offences = []
    for path in sorted(SIM.rglob("*.py")):
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            for pattern, what in FORBIDDEN.items():
                if re.search(pattern, line):
                    offences.append(f"{path.relative_to(SIM.parent)}:{lineno}: {what}: {line}")
    assert not offences, "\n".join(offences)


def test_sim_never_imports_live() -> None:
    offenders = [
        str(p) for p in SIM.rglob("*.py")
        if re.search(r"^\s*(from|import) live\b", p.read_text(), re.MULTILINE)
    ]
    assert not offenders
