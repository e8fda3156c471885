"""The live wing's layering (issue 18 §1): one venue-neutral core, adapters that only
translate. Read from the source (its imports and assignments), so a change that breaks a
rule fails here before it can be merged."""

from __future__ import annotations

import ast
import subprocess
import sys
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


def _live_modules() -> dict[str, Path]:
    out = {}
    for path in sorted((ROOT / "live").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph``, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_circles_in_live() -> None:
    """Counting every import (also under TYPE_CHECKING and inside functions): a circle
    means two modules cannot be understood, tested or moved apart."""
    modules = _live_modules()
    graph = {name: {m for m in _imports(path) if m in modules and m != name}
             for name, path in modules.items()}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_cycle_finder_finds_a_circle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def _root(node: ast.expr) -> ast.expr:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node


def _written(tree: ast.AST) -> list[ast.expr]:
    """Every assignment target in ``tree``."""
    out: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            out.extend(node.targets)
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            out.append(node.target)
    return [t for elt in out for t in (elt.elts if isinstance(elt, ast.Tuple) else [elt])]


def test_nothing_in_live_writes_another_object_private_fields() -> None:
    found = []
    for name, path in _live_modules().items():
        for target in _written(ast.parse(path.read_text())):
            node = target
            while isinstance(node, ast.Subscript):
                node = node.value
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                    and not (isinstance(node.value, ast.Name) and node.value.id == "self")):
                found.append(f"{name}:{target.lineno} {ast.unparse(target)}")
    assert not found


def test_the_core_changes_the_order_port_only_through_its_methods() -> None:
    """Reconciliation, recovery and funding ask the port (``adopt``, ``know_booked``,
    ``restore_funding``, ``note_account_difference``): none assigns to its fields or to
    what it tracks."""
    found = []
    for name in ("live.reconcile", "live.recovery", "live.funding", "live.runner",
                 "live.runner_commands", "live.runner_store", "live.runner_venues"):
        tree = ast.parse(_live_modules()[name].read_text())
        mutated = [node.func.value for node in ast.walk(tree)
                   if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                   and node.func.attr in _MUTATORS
                   and isinstance(node.func.value, (ast.Attribute, ast.Subscript))]
        for target in _written(tree) + mutated:
            if isinstance(target, ast.Name):
                continue  # a local name, not the port's state
            root = _root(target)
            if (isinstance(root, ast.Name) and root.id in ("port", "t")) or (
                    "port." in ast.unparse(target)):
                found.append(f"{name}:{target.lineno} {ast.unparse(target)}")
    assert not found


_MUTATORS = {"add", "append", "clear", "discard", "extend", "pop", "remove", "setdefault",
             "update"}


def test_the_import_contracts_hold() -> None:
    """``lint-imports`` (run by .ci/run) with pyproject.toml's contracts: the kernel
    imports neither live, reports nor the CLI; reports no live; the live core no adapter;
    adapters not each other. In a process of its own: it configures logging."""
    code = ("import sys; from importlinter.cli import lint_imports; "
            "sys.exit(lint_imports(no_cache=True, no_logo=True))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=False)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "venue adapters do not import each other KEPT" in out
    assert "the live core imports no venue adapter KEPT" in out
    assert "venue adapters hold no desk, portfolio or engine KEPT" in out


def test_every_core_module_is_under_the_no_adapter_contract() -> None:
    """A module added to live/ (outside an adapter's folder) is checked too."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"]
                   if c["name"] == "the live core imports no venue adapter"]
    core = {"live." + p.stem for p in (ROOT / "live").glob("*.py") if p.stem != "__init__"}
    assert set(contract["source_modules"]) == core
    adapters = {"live." + p.name for p in (ROOT / "live").iterdir()
                if p.is_dir() and (p / "__init__.py").exists()}
    assert set(contract["forbidden_modules"]) == adapters


def test_no_core_module_names_a_venue() -> None:
    """What is particular to a venue lives in its adapter's folder (issue 18's check:
    ``grep -ril hyperliquid live/*.py`` finds nothing)."""
    named = [p.name for p in (ROOT / "live").glob("*.py")
             if any(v in p.read_text().lower() for v in ("hyperliquid", "ostium"))]
    assert not named


_KERNEL_STATE = {"desk", "portfolio", "engine", "views"}


def _adapter_modules() -> dict[str, Path]:
    return {name: path for name, path in _live_modules().items()
            if name.count(".") >= 1 and (ROOT / "live" / name.split(".")[1]).is_dir()}


def test_adapters_hold_no_desk_portfolio_or_engine() -> None:
    """An adapter translates and does I/O (issue 18 §1): no parameter, attribute or name
    of one of its modules is the desk, the portfolio, the engine or what they hold."""
    found = []
    for name, path in _adapter_modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.arg) and node.arg in _KERNEL_STATE:
                found.append(f"{name}:{node.lineno} parameter {node.arg}")
            elif isinstance(node, ast.Attribute) and node.attr in _KERNEL_STATE:
                found.append(f"{name}:{node.lineno} .{node.attr}")
            elif isinstance(node, ast.Name) and node.id in _KERNEL_STATE:
                found.append(f"{name}:{node.lineno} {node.id}")
    assert _adapter_modules(), "no adapter found"
    assert not found


def test_no_adapter_subclasses_a_core_class() -> None:
    """Composition, not inheritance: an adapter's classes extend nothing of the core (it
    is handed to the core's order manager, which uses it through the contract)."""
    core = {".".join(p.relative_to(ROOT).with_suffix("").parts)
            for p in (ROOT / "live").glob("*.py")}
    found = []
    for name, path in _adapter_modules().items():
        tree = ast.parse(path.read_text())
        imported = {alias.asname or alias.name: node.module for node in ast.walk(tree)
                    if isinstance(node, ast.ImportFrom) and node.module in core
                    for alias in node.names}
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                found += [f"{name}.{node.name}({ast.unparse(b)})" for b in node.bases
                          if isinstance(b, ast.Name) and b.id in imported
                          and b.id not in _CONTRACT_BASES]
    assert not found


# What an adapter may extend: the contract's message and error types.
_CONTRACT_BASES = {"VenueMessage", "OrderNotSent", "OutcomeUnknown"}


def test_quorum_live_builds_venues_by_kind_and_imports_no_adapter() -> None:
    """``quorum live``'s session code finds a venue's kind in the registry (``live.venues``)
    by name: it imports no adapter folder, so a new venue needs no change there."""
    adapters = {"live." + p.name for p in (ROOT / "live").iterdir()
                if p.is_dir() and (p / "__init__.py").exists()}
    imported = _imports(ROOT / "quorum/live.py")
    assert not {m for m in imported if any(m == a or m.startswith(a + ".") for a in adapters)}
    assert "live.venues" in imported


def test_a_venue_kind_is_found_by_its_folder_name() -> None:
    import pytest

    from live.venues import kind_of, venue_kind

    kind = venue_kind("hyperliquid")  # imports live.hyperliquid, which registers it
    assert kind.name == "hyperliquid" and kind_of(kind.settings(testnet=True, url=None)) is kind
    with pytest.raises(ValueError, match=r"unknown venue 'nowhere' \(known: .*hyperliquid"):
        venue_kind("nowhere")
