"""The live wing's layering (issue 18 §1): one venue-neutral core, adapters that only
translate. Read from the source (its imports and assignments), so a change that breaks a
rule fails here before it can be merged."""

from __future__ import annotations

import ast
from pathlib import Path

import live.hyperliquid.venue as hl_venue
import live.ostium.venue as ostium_venue
from live import venue_types

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (also under TYPE_CHECKING)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def test_ostium_borrows_nothing_from_the_hyperliquid_adapter() -> None:
    imported = _imports(ROOT / "live/ostium/venue.py")
    assert not {m for m in imported if m.startswith("live.hyperliquid")}


def test_both_adapters_answer_with_the_neutral_report_types() -> None:
    for name in ("OrderState", "Position", "AccountState", "FundingPayment", "VenueFill",
                 "RESTING", "FILLED", "CANCELED", "REJECTED", "TRIGGERED"):
        assert getattr(hl_venue, name) is getattr(venue_types, name), name
    for name in ("OrderState", "Position", "REJECTED", "RESTING"):
        assert getattr(ostium_venue, name) is getattr(venue_types, name), name


def test_the_neutral_types_name_no_venue() -> None:
    source = (ROOT / "live/venue_types.py").read_text().lower()
    assert "hyperliquid" not in source and "ostium" not in source
    assert not {m for m in _imports(ROOT / "live/venue_types.py") if m.startswith("live.")}
